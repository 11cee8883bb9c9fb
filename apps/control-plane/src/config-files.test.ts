// The control plane's secrets given as files (`<NAME>_FILE`), as the chart's Secrets are mounted.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CONTROL_PLANE_SECRETS } from './config.js';
import { loadControlPlaneConfig, loadMigrationConfig } from './config.js';

describe('control plane secrets in files', () => {
  it('reads the database URLs, the bootstrap key and the metrics token from files, never from the environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-cp-secrets-'));
    try {
      const values: Record<(typeof CONTROL_PLANE_SECRETS)[number], string> = {
        CAIRN_CP_DATABASE_URL: 'postgres://cairn_cp_service:pw-service@db/cp',
        CAIRN_CP_MIGRATION_DATABASE_URL: 'postgres://cairn_cp_owner:pw-owner@db/cp',
        CAIRN_BOOTSTRAP_ADMIN_KEY: 'bootstrap-admin-key-0123456789abcdef',
        CAIRN_METRICS_TOKEN: 'mT7qZ2vK9pW4xL8nB3cY6tD1fH5jR0sQeUa',
      };
      const files: Record<string, string> = {};
      for (const [name, value] of Object.entries(values)) {
        const path = join(dir, name.toLowerCase());
        writeFileSync(path, `${value}\n`, { mode: 0o600 });
        files[`${name}_FILE`] = path;
      }
      const serve = loadControlPlaneConfig(files);
      assert.equal(serve.databaseUrl, values.CAIRN_CP_DATABASE_URL);
      assert.equal(serve.bootstrap?.adminKey, values.CAIRN_BOOTSTRAP_ADMIN_KEY);
      assert.equal(serve.telemetry.metricsToken, values.CAIRN_METRICS_TOKEN);
      const migrate = loadMigrationConfig({ CAIRN_CP_MIGRATION_DATABASE_URL_FILE: files['CAIRN_CP_MIGRATION_DATABASE_URL_FILE']! });
      assert.equal(migrate.migrationDatabaseUrl, values.CAIRN_CP_MIGRATION_DATABASE_URL);

      assert.throws(
        () => loadControlPlaneConfig({ ...files, CAIRN_BOOTSTRAP_ADMIN_KEY: values.CAIRN_BOOTSTRAP_ADMIN_KEY }),
        (err: Error) => {
          assert.match(err.message, /CAIRN_BOOTSTRAP_ADMIN_KEY, CAIRN_BOOTSTRAP_ADMIN_KEY_FILE: set one of them/);
          assert.ok(!err.message.includes(values.CAIRN_BOOTSTRAP_ADMIN_KEY), 'the key is never echoed');
          return true;
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
