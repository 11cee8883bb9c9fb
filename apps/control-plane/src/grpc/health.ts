import * as grpc from '@grpc/grpc-js';

// The standard gRPC health service (grpc.health.v1.Health, doc/health-checking.md in grpc/grpc), so
// that `helm test`, grpc-health-probe and load balancers can check the gRPC port over the same TLS
// and mutual TLS data planes use. Its two messages have one field each, so they are encoded here
// rather than generated: adding them to proto/ would put a message that never crosses the boundary
// among those that do. Check needs no credential and tells nothing but whether this replica serves.

/** grpc.health.v1.HealthCheckResponse.ServingStatus. */
export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2 } as const;
export type ServingStatus = (typeof ServingStatus)[keyof typeof ServingStatus];

/** The services a Check may name; the empty name is the server as a whole. */
export const HEALTH_SERVICE_NAMES = ['', 'cairn.worker.v1.WorkerService', 'cairn.gateway.v1.GatewayService'] as const;

/** Reads HealthCheckRequest: `string service = 1`; other fields are skipped as protobuf says. */
export function decodeHealthCheckRequest(bytes: Buffer): { service: string } {
  let service = '';
  let at = 0;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = bytes[at++];
      if (b === undefined) throw new Error('truncated varint');
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
    throw new Error('varint too long');
  };
  while (at < bytes.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const length = varint();
      if (at + length > bytes.length) throw new Error('truncated field');
      if (field === 1) service = bytes.subarray(at, at + length).toString('utf8');
      at += length;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  if (at > bytes.length) throw new Error('truncated field');
  return { service };
}

/** Writes HealthCheckResponse: `ServingStatus status = 1` (the zero value is left out, as proto3 does). */
export function encodeHealthCheckResponse(status: ServingStatus): Buffer {
  return status === ServingStatus.UNKNOWN ? Buffer.alloc(0) : Buffer.from([0x08, status]);
}

const passThrough = (b: Buffer): Buffer => b;

/** The service definition of grpc.health.v1.Health (Check only; Watch answers UNIMPLEMENTED). */
export const healthServiceDefinition: grpc.ServiceDefinition = {
  check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: passThrough,
    requestDeserialize: passThrough,
    responseSerialize: passThrough,
    responseDeserialize: passThrough,
    originalName: 'Check',
  },
};

/** Handlers answering SERVING while `serving()` holds, for the server and each of its services. */
export function healthHandlers(serving: () => boolean): grpc.UntypedServiceImplementation {
  return {
    check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      let service: string;
      try {
        service = decodeHealthCheckRequest(call.request).service;
      } catch {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: 'HealthCheckRequest does not decode' });
        return;
      }
      if (!(HEALTH_SERVICE_NAMES as readonly string[]).includes(service)) {
        callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        return;
      }
      callback(null, encodeHealthCheckResponse(serving() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING));
    },
  };
}
