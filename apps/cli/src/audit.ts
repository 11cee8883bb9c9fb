// Verifying the audit log without trusting the control plane: the chain is fetched entry by entry
// and every hash recomputed here (@cairn/common's AuditChainVerifier, the same code the control
// plane seals with), checkpoints are checked against public keys the user pinned, and the chain
// must still contain each checkpoint's head. Nothing here takes the server's ok:true for an answer.
import { existsSync, readFileSync } from 'node:fs';
import {
  AuditChainVerifier,
  CairnError,
  auditPrunedStart,
  ErrorCodes,
  parseAuditCheckpoint,
  parseAuditPublicKeys,
  verifyAuditCheckpointSignature,
  type AuditAnchor,
  type AuditChainEntry,
  type AuditChainVerification,
  type AuditCheckpoint,
  type AuditPublicKey,
  type AuditPruneAnchor,
  type AuditPublicKeyJwk,
} from '@cairn/common';
import { CliError, ExitCode } from './errors.js';
import type { components } from './gen/control-plane.js';
import type { HttpClient } from './http.js';

/** What `cairn audit checkpoint --out FILE` writes: the signed checkpoint, and the key that verified it then. */
export type SavedCheckpoint = AuditCheckpoint & {
  /** The public key the checkpoint verified with when it was saved (trusted on first use unless a key is pinned). */
  readonly publicKey?: AuditPublicKeyJwk;
};

/** A checkpoint from a file, with the key saved beside it. */
export interface CheckpointFile {
  readonly path: string;
  readonly checkpoint: AuditCheckpoint;
  readonly savedKeys: AuditPublicKey[];
}

/** The keys the control plane publishes (`/.well-known/cairn-audit-keys`). */
export async function publishedKeys(cp: HttpClient): Promise<{ keys: AuditPublicKeyJwk[]; parsed: AuditPublicKey[] }> {
  const body = await cp.get<{ keys?: AuditPublicKeyJwk[] }>('/.well-known/cairn-audit-keys');
  const keys = Array.isArray(body.keys) ? body.keys : [];
  return { keys, parsed: keys.length === 0 ? [] : parseAuditPublicKeys(JSON.stringify({ keys }), 'the published key set') };
}

/** Keys from `--public-key` values: each a file (PEM, JWK or key set) or the key itself. */
export function pinnedKeys(values: readonly string[]): AuditPublicKey[] {
  return values.flatMap((value) => {
    const isFile = !value.trim().startsWith('-----BEGIN') && !value.trim().startsWith('{') && existsSync(value);
    let text = value;
    if (isFile) {
      try {
        text = readFileSync(value, 'utf8');
      } catch (err) {
        throw new CliError(
          ExitCode.USAGE,
          `Cannot read the public key file ${value}: ${(err as NodeJS.ErrnoException).code ?? String(err)}.`,
        );
      }
    }
    try {
      return parseAuditPublicKeys(text, isFile ? `the file ${value}` : 'the --public-key value');
    } catch (err) {
      throw asUsage(err, 'Give the key `cairn audit keys` prints (its x value), its PEM, or a file with either.');
    }
  });
}

/** Reads a checkpoint file `cairn audit checkpoint --out` wrote. */
export function readCheckpointFile(path: string): CheckpointFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(ExitCode.USAGE, `Cannot read the checkpoint file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}.`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CliError(
      ExitCode.USAGE,
      `[${ErrorCodes.AUDIT_CHECKPOINT_INVALID}] The checkpoint file ${path} is not JSON: ${(err as Error).message}.`,
      {
        code: ErrorCodes.AUDIT_CHECKPOINT_INVALID,
        hint: 'Use a file `cairn audit checkpoint --out FILE` wrote.',
      },
    );
  }
  try {
    const checkpoint = parseAuditCheckpoint(json, `the file ${path}`);
    const saved = (json as { publicKey?: unknown }).publicKey;
    const savedKeys = saved === undefined ? [] : parseAuditPublicKeys(JSON.stringify(saved), `the public key saved in ${path}`);
    return { path, checkpoint, savedKeys };
  } catch (err) {
    throw asUsage(err, 'Use a file `cairn audit checkpoint --out FILE` wrote.');
  }
}

function asUsage(err: unknown, hint: string): CliError {
  if (err instanceof CliError) return err;
  const e = CairnError.from(err);
  return new CliError(ExitCode.USAGE, e.message, { code: e.code, hint });
}

/** One checkpoint's signature check, for the report. */
export interface CheckpointReport {
  readonly source: string;
  readonly position: number;
  readonly hash: string;
  readonly signedAt: string;
  readonly keyId: string;
  /** Where the key that verified it came from. */
  readonly keySource: 'pinned' | 'saved with the checkpoint' | 'published by the control plane' | null;
  readonly signature: 'valid' | 'unknown_key' | 'signature_mismatch';
  readonly detail?: string;
}

/**
 * Checks a checkpoint's signature with the first key source that has its key ID: pinned keys when
 * any were given (then nothing else is trusted), else the saved ones, else the published ones.
 */
export function checkSignature(
  source: string,
  checkpoint: AuditCheckpoint,
  keys: { pinned: AuditPublicKey[]; saved: AuditPublicKey[]; published: AuditPublicKey[] },
): CheckpointReport {
  const sources: Array<[CheckpointReport['keySource'], AuditPublicKey[]]> =
    keys.pinned.length > 0
      ? [['pinned', keys.pinned]]
      : [
          ['saved with the checkpoint', keys.saved],
          ['published by the control plane', keys.published],
        ];
  const base = { source, position: checkpoint.position, hash: checkpoint.hash, signedAt: checkpoint.signedAt, keyId: checkpoint.keyId };
  const candidates = sources.filter(([, list]) => list.some((k) => k.keyId === checkpoint.keyId));
  const [keySource, list] = candidates[0] ?? [null, sources.flatMap(([, l]) => l)];
  const checked = verifyAuditCheckpointSignature(checkpoint, list);
  if (checked.ok) return { ...base, keySource, signature: 'valid' };
  return { ...base, keySource, signature: checked.reason, detail: checked.detail };
}

/** An entry as `GET …/audit/chain` returns it (and as `cairn audit chain` writes it, one per line). */
export type ApiEntry = components['schemas']['AuditEntry'];
type ChainPage = components['schemas']['AuditChainPage'];

const toChainEntry = (e: ApiEntry): AuditChainEntry => ({
  id: e.id,
  position: e.position ?? 0,
  occurredAt: e.occurredAt,
  organizationId: e.organizationId,
  projectId: e.projectId,
  actorType: e.actor.type,
  actorId: e.actor.id,
  action: e.action,
  targetType: e.target.type,
  targetId: e.target.id,
  metadata: e.metadata,
  hash: e.hash,
});

/** What a verification found about a prune: where the chain now starts, and the kept checkpoints the prune covered. */
export interface PrunedReport {
  /** The last pruned position: entries 1 to this were deleted under the retention policy. */
  readonly position: number;
  readonly hash: string;
  readonly pruned: number;
  readonly prunedBefore: string;
  readonly prunedAt: string;
  /** The signed checkpoint recorded at the cut, and how its signature checked. */
  readonly checkpoint: CheckpointReport;
  /** Positions of kept checkpoints at or before the cut. */
  readonly covered: number[];
}

/**
 * Fetches the project's chain page by page and verifies it here against `anchors`; the head the
 * server recorded is compared last (it is not trusted, only checked). A pruned chain starts from
 * its anchor once `checkAnchor` verified the checkpoint recorded at the cut.
 */
export async function verifyChain(
  cp: HttpClient,
  projectPath: string,
  anchors: readonly AuditAnchor[],
  checkAnchor: (checkpoint: AuditCheckpoint) => CheckpointReport,
): Promise<{ verification: AuditChainVerification; pruned: PrunedReport | null }> {
  let verifier: AuditChainVerifier | undefined;
  let pruned: PrunedReport | null = null;
  let after = 0;
  let head: { position: number; hash: string } | null;
  for (;;) {
    const page = await cp.get<ChainPage>(`${projectPath}/audit/chain`, { after });
    head = page.head;
    if (verifier === undefined) {
      const anchor = page.anchor as AuditPruneAnchor | null | undefined;
      if (anchor) {
        let report: CheckpointReport;
        try {
          report = checkAnchor(parseAuditCheckpoint(anchor.checkpoint, 'the checkpoint recorded at the cut'));
        } catch (err) {
          const e = CairnError.from(err);
          return {
            verification: {
              ok: false,
              entries: 0,
              head: null,
              broken: { position: anchor.position, entryId: null, reason: 'checkpoint_rejected', detail: e.message },
            },
            pruned,
          };
        }
        const signature =
          report.signature === 'valid'
            ? ({ ok: true, keyId: report.keyId } as const)
            : ({ ok: false, reason: report.signature, detail: report.detail ?? report.signature } as const);
        const start = auditPrunedStart(anchor, signature, anchors);
        pruned = {
          position: anchor.position,
          hash: anchor.hash,
          pruned: anchor.pruned,
          prunedBefore: anchor.prunedBefore,
          prunedAt: anchor.prunedAt,
          checkpoint: report,
          covered: start.ok ? start.covered.map((c) => c.position) : [],
        };
        if (!start.ok) return { verification: { ok: false, entries: 0, head: null, broken: start.broken }, pruned };
        verifier = new AuditChainVerifier(anchors, start.from);
      } else {
        verifier = new AuditChainVerifier(anchors);
      }
    }
    for (const entry of page.entries) if (verifier.add(toChainEntry(entry))) return { verification: verifier.finish(head), pruned };
    // A server that keeps answering the same page would loop forever: positions must move on.
    if (page.nextAfter === null || page.nextAfter <= after) break;
    after = page.nextAfter;
  }
  return { verification: verifier.finish(head), pruned };
}

/** Every sealed entry of the project in chain order, page by page (for `cairn audit chain`). */
export async function* chainEntries(cp: HttpClient, projectPath: string): AsyncGenerator<ApiEntry> {
  let after = 0;
  for (;;) {
    const page = await cp.get<ChainPage>(`${projectPath}/audit/chain`, { after });
    yield* page.entries;
    if (page.nextAfter === null || page.nextAfter <= after) return;
    after = page.nextAfter;
  }
}

/** Reads a chain saved with `cairn audit chain --out FILE`: one entry per line, in chain order. */
export function readEntriesFile(path: string): ApiEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(ExitCode.USAGE, `Cannot read the entries file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}.`);
  }
  const entries: ApiEntry[] = [];
  for (const [index, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new CliError(ExitCode.USAGE, `Line ${index + 1} of ${path} is not JSON: ${(err as Error).message}.`, {
        hint: 'Use a file `cairn audit chain --out FILE` wrote: one entry per line.',
      });
    }
    const e = typeof value === 'object' ? (value as Partial<ApiEntry> | null) : null;
    if (
      e === null ||
      typeof e.id !== 'string' ||
      typeof e.position !== 'number' ||
      typeof e.occurredAt !== 'string' ||
      typeof e.actor !== 'object' ||
      typeof e.target !== 'object' ||
      typeof e.metadata !== 'object'
    ) {
      throw new CliError(
        ExitCode.USAGE,
        `Line ${index + 1} of ${path} is not an audit entry (id, position, occurredAt, actor, target, metadata, …).`,
        {
          hint: 'Use a file `cairn audit chain --out FILE` wrote: one entry per line.',
        },
      );
    }
    entries.push(value as ApiEntry);
  }
  return entries;
}

/** Verifies saved entries against `anchors`, with no server: there is no recorded head to compare. */
export function verifyEntries(entries: readonly ApiEntry[], anchors: readonly AuditAnchor[]): AuditChainVerification {
  const verifier = new AuditChainVerifier(anchors);
  for (const entry of entries) if (verifier.add(toChainEntry(entry))) break;
  return verifier.finish();
}
