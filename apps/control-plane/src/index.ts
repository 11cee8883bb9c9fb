export { startControlPlane, type ControlPlane, type StartOptions } from './control-plane.js';
export { loadControlPlaneConfig, loadDatabaseConfig, type ControlPlaneConfig, type DatabaseConfig } from './config.js';
export { createDataPlane, migrate } from './admin.js';
export { migrations, type Migration } from './db/migrations.js';
export { controlPlaneOpenApi } from './openapi-document.js';
