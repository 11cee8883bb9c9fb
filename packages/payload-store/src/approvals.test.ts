import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CairnError } from '@cairn/common';
import { Hasher } from './crypto.js';
import {
  APPROVAL_KEYED_NAME_MAX_LENGTH,
  APPROVAL_NAME_MAX_LENGTH,
  STRICT_NAME_PATTERN,
  approvalSignalName,
  crossingWorkflowName,
  strictNameDigest,
} from './approvals.js';

describe('approvalSignalName', () => {
  const hasher = new Hasher(Buffer.alloc(32, 7));

  it('is approval.<name>, with 32 hex digits of the key digest when there is a key', () => {
    assert.equal(approvalSignalName('refund'), 'approval.refund');
    const digest = hasher.digest('order-1');
    assert.equal(approvalSignalName('refund', digest), `approval.refund.${digest.slice(0, 32)}`);
    assert.notEqual(approvalSignalName('refund', hasher.digest('order-2')), approvalSignalName('refund', digest));
  });

  it('keeps the signal name within the name limit and says how long a name may be', () => {
    assert.equal(APPROVAL_NAME_MAX_LENGTH, 91);
    assert.equal(APPROVAL_KEYED_NAME_MAX_LENGTH, 58);
    assert.equal(approvalSignalName('a'.repeat(91)).length, 100);
    assert.equal(approvalSignalName('a'.repeat(58), hasher.digest('k')).length, 100);
    assert.throws(
      () => approvalSignalName('a'.repeat(92)),
      (err: unknown) =>
        err instanceof CairnError && err.code === 'CAIRN-1107' && /at most 91 characters \(58 with a key\)/.test(err.message),
    );
    assert.throws(() => approvalSignalName('a'.repeat(59), hasher.digest('k')), /at most 58 characters with a key/);
    assert.throws(() => approvalSignalName('bob@example.com'), /Invalid approval name/);
    assert.throws(() => approvalSignalName('ok', 'not-a-digest'), /HMAC-SHA256 hex digest/);
  });
});

describe('crossingWorkflowName', () => {
  const hasher = new Hasher(Buffer.alloc(32, 7));
  const other = new Hasher(Buffer.alloc(32, 8));

  it('is the name in standard mode and a keyed digest, apart from step names, in strict mode', () => {
    assert.equal(crossingWorkflowName(hasher, 'standard', 'order-refund'), 'order-refund');
    const digest = crossingWorkflowName(hasher, 'strict', 'order-refund');
    assert.match(digest, STRICT_NAME_PATTERN);
    assert.equal(digest, crossingWorkflowName(hasher, 'strict', 'order-refund'), 'the same name gives the same digest');
    assert.notEqual(digest, strictNameDigest(hasher, 'step', 'order-refund'), 'a step of the same name crosses under another digest');
    assert.notEqual(digest, crossingWorkflowName(other, 'strict', 'order-refund'), 'another key gives another digest');
    assert.equal(crossingWorkflowName(hasher, 'strict', digest), digest, 'a digest is not digested again');
  });
});
