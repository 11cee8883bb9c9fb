import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ScalarType, create } from '@bufbuild/protobuf';
import {
  ConnectRequestSchema,
  StartRunRequestSchema,
  contractMessages,
  declarationProblems,
  fieldRule,
  residencyViolations,
} from './index.js';
import { ResidencyClass } from './gen/cairn/options/v1/residency_pb.js';

describe('the boundary contract', () => {
  it('classifies every field of every message that crosses, with no bytes and no free text', () => {
    const messages = contractMessages();
    assert.ok(messages.length >= 30, `expected the whole contract, found ${messages.length} messages`);
    const problems = messages.flatMap((m) => m.fields.flatMap((f) => declarationProblems(f)));
    assert.deepEqual(problems, []);
  });

  it('bounds every string by a pattern and a length', () => {
    for (const m of contractMessages()) {
      for (const f of m.fields) {
        if (f.fieldKind === 'scalar' && f.scalar === ScalarType.STRING) {
          const rule = fieldRule(f);
          assert.ok(rule?.pattern, `${m.typeName}.${f.name} has no pattern`);
          if (!rule) continue;
          assert.ok(rule.maxLength > 0 && rule.maxLength <= 100, `${m.typeName}.${f.name} max_length ${rule.maxLength}`);
          assert.ok([ResidencyClass.ID, ResidencyClass.NAME, ResidencyClass.DIGEST].includes(rule.class));
        }
      }
    }
  });

  it('detects an unclassified field and a bytes field', async () => {
    // Build a descriptor on the fly with the same rules applied.
    const { createFileRegistry } = await import('@bufbuild/protobuf');
    const { FieldDescriptorProto_Label, FieldDescriptorProto_Type, FileDescriptorProtoSchema } = await import('@bufbuild/protobuf/wkt');
    const fileProto = create(FileDescriptorProtoSchema, {
      name: 'bad.proto',
      package: 'cairn.bad.v1',
      syntax: 'proto3',
      messageType: [
        {
          name: 'Leaky',
          field: [
            {
              name: 'note',
              number: 1,
              type: FieldDescriptorProto_Type.STRING,
              label: FieldDescriptorProto_Label.OPTIONAL,
              jsonName: 'note',
            },
            {
              name: 'blob',
              number: 2,
              type: FieldDescriptorProto_Type.BYTES,
              label: FieldDescriptorProto_Label.OPTIONAL,
              jsonName: 'blob',
            },
          ],
        },
      ],
    });
    const registry = createFileRegistry(fileProto, () => undefined);
    const leaky = registry.getMessage('cairn.bad.v1.Leaky');
    if (!leaky) throw new Error('descriptor not built');
    const problems = leaky.fields.flatMap((f) => declarationProblems(f));
    assert.ok(problems.some((p) => p.includes('Leaky.note: no residency class')));
    assert.ok(problems.some((p) => p.includes('Leaky.blob: no residency class')));
  });

  it('rejects free text smuggled into classified fields at run time', () => {
    const msg = create(ConnectRequestSchema, {
      sequence: 1n,
      message: {
        case: 'hello',
        value: {
          workerId: 'customer email: jane@example.com',
          workflows: [{ name: 'refund', version: '1', taskQueue: 'Dear customer, your refund' }],
        },
      },
    });
    const violations = residencyViolations(ConnectRequestSchema, msg);
    assert.deepEqual(
      violations.map((v) => v.path),
      ['hello.worker_id', 'hello.workflows[0].task_queue'],
    );
    const ok = create(StartRunRequestSchema, {
      runId: '0190a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b',
      workflowName: 'order-refund',
      idempotencyDigest: 'a'.repeat(64),
    });
    assert.deepEqual(residencyViolations(StartRunRequestSchema, ok), []);
    const tooLong = create(StartRunRequestSchema, { workflowName: 'a'.repeat(101) });
    assert.equal(residencyViolations(StartRunRequestSchema, tooLong)[0]?.problem, 'longer than 100 characters');
  });
});
