// The audit chain's formats as a third party recomputes them (the worked example of docs/audit.md,
// RFC 8785 details), checkpoint signatures and their tampering, and the verifier's findings for each
// way a chain can be cut, changed or rewritten.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  AUDIT_GENESIS_HASH,
  AuditChainVerifier,
  auditCheckpointSigningInput,
  auditPrunedStart,
  auditEntryHash,
  auditHashInput,
  auditPublicKeyJwk,
  loadAuditSigningKey,
  parseAuditCheckpoint,
  parseAuditPublicKeys,
  signAuditCheckpoint,
  verifyAuditCheckpointSignature,
  type AuditChainEntry,
  type AuditHashedEntry,
} from './index.js';

const docs = readFileSync(new URL('../../../docs/audit.md', import.meta.url), 'utf8');
const block = (marker: string): string => {
  const match = new RegExp(`<!-- audit-example: ${marker} -->\\n\`\`\`\\w*\\n([^\\n]*)\\n\`\`\``).exec(docs);
  assert.ok(match, `docs/audit.md has the ${marker} block`);
  return match[1]!;
};

const example: AuditHashedEntry = {
  id: '41',
  organizationId: '6f1d2c3b-8a4e-4c1f-9b2a-0d3e5f7a9c11',
  projectId: '2b7e9f0a-1c3d-4e5f-8a6b-7c8d9e0f1a2b',
  occurredAt: '2026-11-27T09:30:00.123456Z',
  actorType: 'api_key',
  actorId: 'c0ffee00-1111-4222-8333-444455556666',
  action: 'api_key.created',
  targetType: 'api_key',
  targetId: 'aa11bb22-cc33-4d44-8e55-ff6600778899',
  metadata: { role: 'viewer', name: 'reader', organizationWide: false, expiresAt: null },
};

const pem = (): string => generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();

/** A sealed chain of `n` entries, hashed as the control plane seals. */
function chain(n: number): AuditChainEntry[] {
  let previous = AUDIT_GENESIS_HASH;
  return Array.from({ length: n }, (_, i) => {
    const entry = { ...example, id: String(100 + i), metadata: { ...example.metadata, name: `k${i}` } };
    previous = auditEntryHash(previous, entry, i + 1);
    return { ...entry, position: i + 1, hash: previous };
  });
}

function walk(
  entries: readonly AuditChainEntry[],
  anchors: Array<{ position: number; hash: string }> = [],
  head?: { position: number; hash: string } | null,
) {
  const v = new AuditChainVerifier(anchors.map((a) => ({ ...a, label: `the checkpoint at ${a.position}` })));
  for (const e of entries) if (v.add(e)) break;
  return v.finish(head);
}

describe('the audit chain hash', () => {
  it('is the documented RFC 8785 text and SHA-256, so a third party reproduces the worked example', () => {
    assert.equal(auditHashInput(example, 1), block('input'));
    const expected = block('hash');
    assert.equal(auditEntryHash(AUDIT_GENESIS_HASH, example, 1), expected);
    // The same hash from the text alone, as `printf … | sha256sum` computes it.
    assert.equal(
      createHash('sha256')
        .update(AUDIT_GENESIS_HASH + block('input'))
        .digest('hex'),
      expected,
    );
  });

  it('orders members by UTF-16 code units and writes numbers as ECMAScript does (RFC 8785)', () => {
    const text = auditHashInput({ ...example, metadata: { b: 1e21, a: 1e-7, c: 0.000001, Z: -0, é: 'x', '\u{1F600}': 1, ﬀ: 2 } }, 7);
    assert.match(text, /"metadata":\{"Z":0,"a":1e-7,"b":1e\+21,"c":0.000001,"é":"x","\u{1F600}":1,"ﬀ":2\}/u);
    // 😀 (U+1F600) sorts before ﬀ (U+FB00): by UTF-16 code units (0xD83D < 0xFB00), not by code point.
    // Key order of the input object does not matter.
    const shuffled = Object.fromEntries(Object.entries(example).reverse()) as unknown as AuditHashedEntry;
    assert.equal(auditHashInput(shuffled, 1), auditHashInput(example, 1));
  });

  it('refuses values that have no canonical JSON', () => {
    assert.throws(() => auditHashInput({ ...example, metadata: { n: Number.NaN } }, 1), /\[CAIRN-1101\] audit entry 41 is not plain JSON/);
    assert.throws(() => auditHashInput({ ...example, targetId: '\ud800' }, 1), /Lone surrogate/);
  });
});

describe('checkpoint signatures', () => {
  const key = loadAuditSigningKey(pem());
  const head = {
    organizationId: 'o-1',
    projectId: 'p-1',
    position: 3,
    hash: 'a'.repeat(64),
    entries: 3,
    signedAt: '2026-11-27T10:00:00.000Z',
  };

  it('sign the RFC 8785 JSON of every other member with Ed25519, verifiable with the published key alone', () => {
    const checkpoint = signAuditCheckpoint(head, key);
    assert.equal(checkpoint.format, 'cairn.audit.checkpoint.v1');
    assert.match(checkpoint.keyId, /^ed25519-[0-9a-f]{16}$/);
    assert.equal(
      auditCheckpointSigningInput(checkpoint),
      `{"algorithm":"Ed25519","entries":3,"format":"cairn.audit.checkpoint.v1","hash":"${'a'.repeat(64)}","keyId":"${checkpoint.keyId}","organizationId":"o-1","position":3,"projectId":"p-1","signedAt":"2026-11-27T10:00:00.000Z"}`,
    );
    const published = parseAuditPublicKeys(JSON.stringify({ keys: [auditPublicKeyJwk(key)] }), 'the key set');
    assert.deepEqual(verifyAuditCheckpointSignature(checkpoint, published), { ok: true, keyId: key.keyId });
    // The public key in every form a user may pin it.
    const jwk = auditPublicKeyJwk(key);
    for (const form of [jwk.pem, jwk.x, JSON.stringify(jwk), JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: jwk.x })]) {
      assert.deepEqual(verifyAuditCheckpointSignature(checkpoint, parseAuditPublicKeys(form, 'pinned')), { ok: true, keyId: key.keyId });
    }
  });

  it('detect a changed member, a signature from another key, and an unknown key', () => {
    const checkpoint = signAuditCheckpoint(head, key);
    for (const changed of [
      { ...checkpoint, position: 2 },
      { ...checkpoint, hash: 'b'.repeat(64) },
      { ...checkpoint, entries: 2 },
      { ...checkpoint, signedAt: '2026-11-28T10:00:00.000Z' },
    ]) {
      const result = verifyAuditCheckpointSignature(changed, [key]);
      assert.equal(result.ok, false);
      assert.equal(!result.ok && result.reason, 'signature_mismatch');
    }
    // An attacker's key under the real key's ID: the signature does not verify with the real key.
    const attacker = loadAuditSigningKey(pem(), key.keyId);
    const forged = signAuditCheckpoint({ ...head, position: 9 }, attacker);
    const byRealKey = verifyAuditCheckpointSignature(forged, [key]);
    assert.equal(!byRealKey.ok && byRealKey.reason, 'signature_mismatch');
    // Under its own ID, the attacker's key is simply not trusted.
    const other = signAuditCheckpoint(head, loadAuditSigningKey(pem()));
    const unknown = verifyAuditCheckpointSignature(other, [key]);
    assert.equal(!unknown.ok && unknown.reason, 'unknown_key');
    assert.match(!unknown.ok ? unknown.detail : '', /not among the trusted keys/);
  });

  it('refuse malformed checkpoints, keys and signing keys with what is wrong', () => {
    assert.throws(
      () => parseAuditCheckpoint({ format: 'x', position: -1 }, 'the file a.json'),
      /\[CAIRN-1151\] the file a.json is not an audit checkpoint \(format: expected "cairn.audit.checkpoint.v1"; .*position: /,
    );
    assert.throws(
      () => parseAuditPublicKeys('not a key', 'the --public-key value'),
      /\[CAIRN-1151\] the --public-key value is not an audit public key/,
    );
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    assert.throws(() => loadAuditSigningKey(rsa), /\[CAIRN-1151\] the audit signing key is a rsa key; audit checkpoints use Ed25519 keys/);
    assert.throws(() => loadAuditSigningKey('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----'), /not a PEM private key/);
    assert.throws(() => loadAuditSigningKey(pem(), 'has space'), /an audit key ID is 1 to 64/);
  });
});

describe('the chain verifier', () => {
  const entries = chain(6);

  it('accepts an intact chain, with its head and checkpoints', () => {
    const result = walk(entries, [{ position: 4, hash: entries[3]!.hash! }], { position: 6, hash: entries[5]!.hash! });
    assert.deepEqual(result, { ok: true, entries: 6, head: { position: 6, hash: entries[5]!.hash } });
  });

  it('finds a deleted entry as a gap, and positions that go backwards', () => {
    const gap = walk([...entries.slice(0, 2), ...entries.slice(3)]);
    assert.deepEqual(!gap.ok && [gap.broken.reason, gap.broken.position, gap.broken.entryId, gap.entries], ['missing_entry', 3, '103', 2]);
    const repeated = walk([...entries.slice(0, 3), entries[1]!]);
    assert.equal(!repeated.ok && repeated.broken.reason, 'out_of_order');
  });

  it('finds a changed entry by recomputing its hash, whatever hash is stored with it', () => {
    const forged = entries.map((e, i) => (i === 2 ? { ...e, metadata: { ...e.metadata, role: 'admin' } } : e));
    const result = walk(forged);
    assert.deepEqual(!result.ok && [result.broken.reason, result.broken.position, result.entries], ['hash_mismatch', 3, 2]);
  });

  it('finds a truncated chain against a checkpoint, even when the server head was moved back with it', () => {
    const cut = entries.slice(0, 3);
    const result = walk(cut, [{ position: 5, hash: entries[4]!.hash! }], { position: 3, hash: cut[2]!.hash! });
    assert.deepEqual(!result.ok && [result.broken.reason, result.broken.position], ['truncated', 4]);
    assert.match(!result.ok ? result.broken.detail : '', /the chain ends at position 3 but the checkpoint at 5 covers position 5/);
    const empty = walk([], [{ position: 5, hash: entries[4]!.hash! }], null);
    assert.equal(!empty.ok && empty.broken.reason, 'truncated');
  });

  it('finds a rewritten history whose hashes were all recomputed, by the checkpoint it no longer contains', () => {
    let previous = AUDIT_GENESIS_HASH;
    const rewritten = entries.map((e, i) => {
      const entry = i === 1 ? { ...e, metadata: { ...e.metadata, role: 'admin' } } : e;
      previous = auditEntryHash(previous, entry, i + 1);
      return { ...entry, hash: previous };
    });
    // On its own the rewritten chain is consistent: only the kept checkpoint shows the rewrite.
    assert.equal(walk(rewritten, [], { position: 6, hash: previous }).ok, true);
    const result = walk(rewritten, [{ position: 4, hash: entries[3]!.hash! }], { position: 6, hash: previous });
    assert.deepEqual(!result.ok && [result.broken.reason, result.broken.position], ['checkpoint_mismatch', 4]);
  });

  it("checks the server's head last, and starts from a verified point when given one", () => {
    const short = walk(entries.slice(0, 4), [], { position: 6, hash: entries[5]!.hash! });
    assert.deepEqual(!short.ok && [short.broken.reason, short.broken.position], ['missing_entry', 5]);
    const headless = walk(entries, [], null);
    assert.equal(!headless.ok && headless.broken.reason, 'head_mismatch');
    const v = new AuditChainVerifier([], { position: 3, hash: entries[2]!.hash! });
    for (const e of entries.slice(3)) assert.equal(v.add(e), null);
    assert.deepEqual(v.finish({ position: 6, hash: entries[5]!.hash! }), {
      ok: true,
      entries: 6,
      head: { position: 6, hash: entries[5]!.hash },
    });
  });
});

describe('a pruned chain', () => {
  const entries = chain(8);
  const key = loadAuditSigningKey(pem());
  const signed = (position: number) =>
    signAuditCheckpoint(
      {
        organizationId: example.organizationId,
        projectId: example.projectId,
        position,
        hash: entries[position - 1]!.hash!,
        entries: position,
        signedAt: '2026-11-27T10:00:00.000Z',
      },
      key,
    );
  const anchorAt = (position: number) => ({
    position,
    hash: entries[position - 1]!.hash!,
    entries: position,
    pruned: position,
    prunedBefore: '2026-11-28T00:00:00.000Z',
    prunedAt: '2026-12-01T03:17:00.000Z',
    checkpoint: signed(position),
  });
  const kept = (position: number, hash = entries[position - 1]!.hash!) => ({ position, hash, label: `the checkpoint at ${position}` });
  const check = (a: ReturnType<typeof anchorAt>) => verifyAuditCheckpointSignature(a.checkpoint, [key]);

  it('starts from a signed anchor: kept checkpoints before it are covered, later ones still checked, deletions after it found', () => {
    const anchor = anchorAt(4);
    const start = auditPrunedStart(anchor, check(anchor), [kept(2), kept(4), kept(7)]);
    assert.ok(start.ok);
    assert.deepEqual(
      start.covered.map((c) => c.position),
      [2, 4],
    );
    const v = new AuditChainVerifier([kept(7)], start.from);
    for (const e of entries.slice(4)) assert.equal(v.add(e), null);
    assert.equal(v.finish({ position: 8, hash: entries[7]!.hash! }).ok, true);
    // A row deleted after the cut.
    const gap = new AuditChainVerifier([kept(7)], start.from);
    for (const e of entries.slice(5)) if (gap.add(e)) break;
    const found = gap.finish({ position: 8, hash: entries[7]!.hash! });
    assert.deepEqual(!found.ok && [found.broken.reason, found.broken.position], ['missing_entry', 5]);
  });

  it('refuses an anchor whose checkpoint does not verify, that is not its checkpoint, or that a kept checkpoint contradicts', () => {
    const anchor = anchorAt(4);
    const forged = { ...anchor, checkpoint: { ...anchor.checkpoint, signature: 'A'.repeat(86) } };
    const rejected = auditPrunedStart(forged, check(forged), []);
    assert.deepEqual(!rejected.ok && [rejected.broken.reason, rejected.broken.position], ['checkpoint_rejected', 4]);
    const moved = { ...anchor, position: 6, hash: entries[5]!.hash! };
    const notIts = auditPrunedStart(moved, check(moved), []);
    assert.match(!notIts.ok ? notIts.broken.detail : '', /is not the checkpoint recorded with it/);
    const contradicted = auditPrunedStart(anchor, check(anchor), [kept(4, 'c'.repeat(64))]);
    assert.deepEqual(!contradicted.ok && [contradicted.broken.reason, contradicted.broken.position], ['checkpoint_mismatch', 4]);
  });
});
