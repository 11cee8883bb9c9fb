// The README is the reference of `ctx`: every member of WorkflowContext appears in it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import ts from 'typescript';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const source = ts.createSourceFile(
  'workflow.ts',
  readFileSync(new URL('../src/workflow.ts', import.meta.url), 'utf8'),
  ts.ScriptTarget.Latest,
);

function members(interfaceName: string): string[] {
  const found = new Set<string>();
  source.forEachChild((node) => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === interfaceName) {
      for (const m of node.members) if (m.name && ts.isIdentifier(m.name)) found.add(m.name.text);
    }
  });
  return [...found];
}

describe('the SDK README', () => {
  it('documents every member of ctx', () => {
    const all = members('WorkflowContext');
    assert.ok(all.length >= 15, `found only ${all.join(', ')}`);
    assert.deepEqual(
      all.filter((name) => !readme.includes(`ctx.${name}`)),
      [],
      'members of WorkflowContext that packages/sdk/README.md never mentions as ctx.<member>',
    );
  });
});
