import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { env, loadConfig } from './config.js';

describe('loadConfig with secrets in files', () => {
  const shape = { SECRET_URL: env.postgresUrl(), PLAIN: env.optionalString() };

  it('reads a secret from <NAME>_FILE only for the variables named secret, and refuses both at once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-config-'));
    try {
      const path = join(dir, 'url');
      writeFileSync(path, 'postgres://u:pw@db/x\n');
      const config = loadConfig('test', shape, { SECRET_URL_FILE: path }, { secrets: ['SECRET_URL'] });
      assert.equal(config.SECRET_URL, 'postgres://u:pw@db/x');
      // A variable not named secret has no file variant.
      assert.throws(() => loadConfig('test', shape, { SECRET_URL_FILE: path }), /SECRET_URL: is required/);
      assert.throws(
        () => loadConfig('test', shape, { SECRET_URL: 'postgres://a', SECRET_URL_FILE: path }, { secrets: ['SECRET_URL'] }),
        /SECRET_URL, SECRET_URL_FILE: set one of them/,
      );
      writeFileSync(path, 'mysql://u:pw@db/x');
      const bad = (() => {
        try {
          loadConfig('test', shape, { SECRET_URL_FILE: path }, { secrets: ['SECRET_URL'] });
        } catch (err) {
          return (err as Error).message;
        }
        return '';
      })();
      assert.match(bad, /SECRET_URL \(read from SECRET_URL_FILE\): expected a postgres:\/\/ connection URL/);
      assert.ok(!bad.includes('pw@db'), 'the value is never echoed');
      assert.throws(
        () => loadConfig('test', shape, { SECRET_URL_FILE: join(dir, 'missing') }, { secrets: ['SECRET_URL'] }),
        /SECRET_URL_FILE: cannot read .*missing \(ENOENT\)/,
      );
      writeFileSync(path, '\n');
      assert.throws(
        () => loadConfig('test', shape, { SECRET_URL_FILE: path }, { secrets: ['SECRET_URL'] }),
        /SECRET_URL_FILE: .* is empty/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
