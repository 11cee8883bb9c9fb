// The Cairn worker runtime: runs workflows defined with @cairn/sdk against the data-plane journal
// and keeps one outbound stream to the control plane.
export { Worker, PROTOCOL_VERSION, type WorkerOptions } from './worker.js';
export { runWorkerFromEnv, loadWorkerConfig, type WorkerConfig } from './config.js';
export { Engine, type EngineOptions, type RunAssignment, type RunExecution, type RunOutcome, type StepDefaults } from './engine.js';
export { SignalHub, SignalSubscription } from './signals.js';
export { systemClock, type Clock, type ClockTimer } from './clock.js';
export { createWorkerTracerProvider, type WorkerTracingOptions } from './telemetry.js';
