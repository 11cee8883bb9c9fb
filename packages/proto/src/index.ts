export * from './gen/cairn/options/v1/residency_pb.js';
export * from './gen/cairn/run/v1/run_pb.js';
export * from './gen/cairn/worker/v1/worker_pb.js';
export * from './gen/cairn/gateway/v1/gateway_pb.js';
/** KEDA's external-scaler contract (served in the data plane to KEDA; not part of the boundary contract). */
export * as keda from './gen/keda/externalscaler_pb.js';
export { MAX_CONSUMED_SIGNAL_IDS } from './limits.js';
export { controlPlaneChannelCredentials, grpcServiceDefinition, type ControlPlaneTls } from './grpc.js';
export {
  contractFiles,
  contractMessages,
  declarationProblems,
  fieldRule,
  residencyViolations,
  type FieldRule,
  type ResidencyViolation,
} from './residency.js';
export {
  create,
  fromBinary,
  toBinary,
  toJson,
  fromJson,
  isMessage,
  type MessageInitShape,
  type MessageShape,
  type DescMessage,
} from '@bufbuild/protobuf';
export { fieldComments } from './gen/comments.js';
export {
  CLASS_MEANINGS,
  NEVER_CROSSES,
  buildResidencyReport,
  type ReportField,
  type ReportMessage,
  type ResidencyReport,
} from './residency-report.js';
