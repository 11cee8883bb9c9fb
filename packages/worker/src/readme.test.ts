// The README's environment table is the worker's reference: it must name every variable the worker
// reads, and nothing it does not.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { WORKER_ENVIRONMENT_VARIABLES } from './config.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The variables in the first column of the table under "## Running a worker". */
function documentedVariables(): Set<string> {
  const section = readme.slice(readme.indexOf('## Running a worker'), readme.indexOf('\n## ', readme.indexOf('## Running a worker') + 1));
  const names = new Set<string>();
  for (const line of section.split('\n')) {
    if (!line.startsWith('| `')) continue;
    for (const m of line.split('|')[1]!.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) names.add(m[1]!);
  }
  return names;
}

describe('the worker README', () => {
  it('documents exactly the environment variables the worker reads', () => {
    const documented = documentedVariables();
    assert.deepEqual(
      [...WORKER_ENVIRONMENT_VARIABLES].filter((v) => !documented.has(v)),
      [],
      'read but not documented',
    );
    assert.deepEqual(
      [...documented].filter((v) => !WORKER_ENVIRONMENT_VARIABLES.includes(v)),
      [],
      'documented but not read',
    );
  });
});
