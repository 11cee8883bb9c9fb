import type { DescMessage, DescService, MessageShape } from '@bufbuild/protobuf';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { rootCertificates } from 'node:tls';
import { credentials, experimental, type ChannelCredentials, type MethodDefinition, type ServiceDefinition } from '@grpc/grpc-js';

/**
 * Builds a grpc-js service definition from a protobuf-es service descriptor, so both ends of a
 * connection serialize with the generated code (path `/${typeName}/${method}`).
 */
export function grpcServiceDefinition(service: DescService): ServiceDefinition {
  const definition: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
      responseStream: method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
    };
  }
  return definition;
}

function serializer(desc: DescMessage) {
  return (value: unknown): Buffer => {
    const bytes = toBinary(desc, value as MessageShape<DescMessage>);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer<Desc extends DescMessage>(desc: Desc) {
  return (bytes: Buffer): MessageShape<Desc> => fromBinary(desc, bytes);
}

/** How a data-plane process dials the control plane: plaintext, TLS, or mutual TLS. */
export interface ControlPlaneTls {
  /** TLS on; with no CA file the system's trusted roots verify the control plane. */
  readonly enabled: boolean;
  /** PEM bundle of the CA that signed the control plane's certificate. */
  readonly caFile?: string | undefined;
  /** PEM client certificate and key, for a control plane that requires mutual TLS. */
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
}

/**
 * Channel credentials for {@link ControlPlaneTls}; file problems are thrown with the variable's name.
 * The files are read again every `refreshIntervalMs` (default 60 s), so a client certificate or CA
 * bundle renewed in place (a Kubernetes Secret updated by cert-manager) is presented from the next
 * connection on, without a restart.
 */
export function controlPlaneChannelCredentials(
  tls: ControlPlaneTls,
  read: (path: string) => Buffer,
  options: { readonly refreshIntervalMs?: number } = {},
): ChannelCredentials {
  if (!tls.enabled) return credentials.createInsecure();
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new Error('CAIRN_CP_TLS_CERT_FILE and CAIRN_CP_TLS_KEY_FILE must be set together (the client certificate and its key)');
  }
  const load = (variable: string, path: string | undefined): Buffer | null => {
    if (path === undefined) return null;
    try {
      return read(path);
    } catch (error) {
      throw new Error(`cannot read ${variable} (${path}): ${(error as Error).message}`, { cause: error });
    }
  };
  // Read once here so that a missing or unreadable file stops the process at start-up, named.
  load('CAIRN_CP_TLS_CA_FILE', tls.caFile);
  load('CAIRN_CP_TLS_KEY_FILE', tls.keyFile);
  load('CAIRN_CP_TLS_CERT_FILE', tls.certFile);
  if (tls.caFile === undefined && tls.certFile === undefined) return credentials.createSsl();
  const refreshIntervalMs = options.refreshIntervalMs ?? 60_000;
  const identity =
    tls.certFile === undefined || tls.keyFile === undefined
      ? null
      : new experimental.FileWatcherCertificateProvider({ certificateFile: tls.certFile, privateKeyFile: tls.keyFile, refreshIntervalMs });
  const ca =
    tls.caFile === undefined
      ? new StaticCaProvider(Buffer.from(rootCertificates.join('\n')))
      : new experimental.FileWatcherCertificateProvider({ caCertificateFile: tls.caFile, refreshIntervalMs });
  return experimental.createCertificateProviderChannelCredentials(ca, identity);
}

/** The system's trusted roots, for a client certificate without a CA file of its own. */
class StaticCaProvider implements experimental.CertificateProvider {
  readonly #ca: Buffer;
  constructor(ca: Buffer) {
    this.#ca = ca;
  }
  addCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    process.nextTick(listener, { caCertificate: this.#ca });
  }
  removeCaCertificateListener(): void {
    // Nothing to stop: the roots never change.
  }
  addIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    process.nextTick(listener, null);
  }
  removeIdentityCertificateListener(): void {
    // Nothing to stop.
  }
}
