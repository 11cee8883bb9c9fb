// The Cairn worker runtime: runs workflows defined with @cairn/sdk against the data-plane journal
// and keeps one outbound stream to the control plane.
export { Worker, PROTOCOL_VERSION, type WorkerOptions, type WorkerRetained } from './worker.js';
export { runWorkerFromEnv, loadWorkerConfig, type WorkerConfig } from './config.js';
export { UNLISTED_MODEL_PREFIX, UNLISTED_PROVIDER, parseModelList, type ListedModel } from './residency.js';
export { Hasher, KeyRing, PayloadStore, type PayloadStoreOptions } from '@cairn/payload-store';
export { CAIRN_SPAN_ATTRIBUTES } from './telemetry.js';
export { WorkerMetrics } from './metrics.js';
