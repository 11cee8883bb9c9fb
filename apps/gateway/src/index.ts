export { buildGateway, ROUTES, MAX_WAIT_SECONDS, DEFAULT_WAIT_SECONDS, type Gateway, type GatewayDeps } from './app.js';
export { API, buildOpenApi, type RouteSpec } from './api.js';
export { loadGatewayConfig, loadGatewayConfigWithKeys, type GatewayConfig } from './config.js';
export { ControlPlane, ControlPlaneError, type ControlPlaneOptions } from './control-plane.js';
export { startGateway, type RunningGateway } from './server.js';
export { GatewayMetrics } from './telemetry.js';
