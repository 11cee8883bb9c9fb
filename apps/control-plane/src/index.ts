export { startControlPlane, type ControlPlane, type StartOptions } from './control-plane.js';
export {
  loadControlPlaneConfig,
  loadDatabaseConfig,
  loadMigrationConfig,
  type ControlPlaneConfig,
  type DatabaseConfig,
  type MigrationConfig,
} from './config.js';
export { createDataPlane, migrate } from './admin.js';
export { migrations, type Migration } from './db/migrations.js';
export { controlPlaneOpenApi } from './openapi-document.js';
export { runListStatement, type RunListQuery } from './runs/run.repository.js';
