import { Controller, Get, Inject, Post, Query, Res } from '@nestjs/common';
import { z } from 'zod';
import { CairnError, ErrorCodes } from '@cairn/common';
import type { AuditEntry } from '../audit/audit.repository.js';
import type { Project } from '../tenancy/tenant.repository.js';
import { AuditCheckpointService, presentCheckpoint } from '../audit/audit-checkpoint.service.js';
import { AuditService, type VerifyResult } from '../audit/audit.service.js';
import { Api, CurrentProject } from './api.js';
import { isoTimeSchema, limitSchema } from './schemas.js';
import { AuditChainPage, AuditCheckpointAnswer, AuditCheckpointList, AuditList, AuditVerification } from './responses.js';
import type { AuditEntry as AuditEntrySchema } from './responses.js';

const AuditQuery = z.strictObject({
  from: isoTimeSchema.optional(),
  to: isoTimeSchema.optional(),
  action: z
    .string()
    .max(100)
    .regex(/^[a-z][a-z0-9_.]*\*?$/, 'expected an action such as run.completed, or a prefix ending in * such as run.*')
    .optional(),
  targetType: z
    .string()
    .max(64)
    .regex(/^[A-Za-z][A-Za-z0-9_]*$/, 'expected a target type such as run, api_key or schedule')
    .optional(),
  targetId: z
    .string()
    .max(200)
    .regex(/^[\x21-\x7e]+$/, 'expected a target ID')
    .optional(),
  limit: limitSchema,
  cursor: z.string().max(200).optional(),
});

export function presentAuditEntry(entry: AuditEntry): z.input<typeof AuditEntrySchema> {
  return {
    id: entry.id,
    position: entry.position,
    occurredAt: entry.occurredAt,
    organizationId: entry.organizationId,
    projectId: entry.projectId,
    actor: { type: entry.actorType, id: entry.actorId },
    action: entry.action,
    target: { type: entry.targetType, id: entry.targetId },
    metadata: entry.metadata,
    hash: entry.hash,
  };
}

const CheckpointQuery = z.strictObject({
  limit: limitSchema,
  cursor: z
    .string()
    .regex(/^\d{1,19}$/, 'expected nextCursor from a previous page')
    .optional(),
});

const CHAIN_PAGE_MAX = 5_000;
const ChainQuery = z.strictObject({
  after: z
    .string()
    .regex(/^\d{1,15}$/, 'expected a position (a whole number, 0 for the start)')
    .transform(Number)
    .optional(),
  limit: z
    .string()
    .regex(/^\d{1,4}$/, `expected a whole number from 1 to ${CHAIN_PAGE_MAX}`)
    .transform(Number)
    .refine((n) => n >= 1 && n <= CHAIN_PAGE_MAX, `expected a whole number from 1 to ${CHAIN_PAGE_MAX}`)
    .optional(),
});

function encodeCursor(position: { occurredAt: string; id: string }): string {
  return Buffer.from(JSON.stringify([position.occurredAt, position.id])).toString('base64url');
}

function decodeCursor(cursor: string): { occurredAt: string; id: string } {
  const bad = new CairnError(
    ErrorCodes.INVALID_ARGUMENT,
    'query parameter cursor is not a cursor this API returned: use nextCursor from a previous page, or omit it',
    { details: { field: 'cursor' } },
  );
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad;
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) throw bad;
  const [occurredAt, id] = parsed as unknown[];
  if (typeof occurredAt !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(occurredAt)) throw bad;
  if (typeof id !== 'string' || !/^\d{1,19}$/.test(id)) throw bad;
  return { occurredAt, id };
}

/** The project's audit log: administrative actions and run lifecycle transitions, hash-chained. */
@Controller('v1/projects/:project/audit')
export class AuditController {
  constructor(
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(AuditCheckpointService) private readonly checkpoints: AuditCheckpointService,
  ) {}

  @Get()
  @Api({
    response: AuditList,
    permission: 'audit.read',
    tag: 'audit',
    summary: 'List audit entries, newest first',
    description:
      'Filters: from/to (ISO times; from inclusive, to exclusive), action (exact, or a prefix ending in *), targetType, targetId. ' +
      'Entries not sealed yet have position and hash null.',
    query: AuditQuery,
  })
  async list(
    @CurrentProject() project: Project,
    @Query() query: z.infer<typeof AuditQuery>,
  ): Promise<{ entries: unknown[]; nextCursor: string | null }> {
    const page = await this.audit.list({
      projectId: project.id,
      ...(query.from === undefined ? {} : { from: new Date(query.from) }),
      ...(query.to === undefined ? {} : { to: new Date(query.to) }),
      ...(query.action === undefined ? {} : { action: query.action }),
      ...(query.targetType === undefined ? {} : { targetType: query.targetType }),
      ...(query.targetId === undefined ? {} : { targetId: query.targetId }),
      limit: query.limit ?? 50,
      ...(query.cursor === undefined ? {} : { after: decodeCursor(query.cursor) }),
    });
    return { entries: page.entries.map(presentAuditEntry), nextCursor: page.next ? encodeCursor(page.next) : null };
  }

  @Post('verify')
  @Api({
    response: AuditVerification,
    permission: 'audit.read',
    tag: 'audit',
    summary: "Seal pending entries, then verify the project's hash chain",
    description:
      'Answers {ok:true, entries, head, checkpoint} or {ok:false, entries, head, checkpoint, broken:{position, entryId, reason, detail}}: ' +
      'the first position whose entry is missing or does not match its hash, or where the chain no longer contains the newest signed ' +
      'checkpoint. This is the control plane checking itself; `cairn audit verify --checkpoint FILE` checks it independently.',
  })
  async verify(@CurrentProject() project: Project): Promise<VerifyResult> {
    return this.checkpoints.verify(project.id);
  }

  @Get('chain')
  @Api({
    response: AuditChainPage,
    permission: 'audit.read',
    tag: 'audit',
    summary: 'Sealed entries in chain order, for verifying the chain outside the control plane',
    description:
      `Entries with position > after (default 0), at most limit (default and maximum ${CHAIN_PAGE_MAX}), in position order, with the ` +
      'recorded head read in the same snapshot. Recompute each hash as docs/audit.md says; do not trust the hash field. A pruned ' +
      'chain starts after anchor, the signed checkpoint recorded at the cut.',
    query: ChainQuery,
  })
  async chain(@CurrentProject() project: Project, @Query() query: z.infer<typeof ChainQuery>): Promise<z.input<typeof AuditChainPage>> {
    const limit = query.limit ?? CHAIN_PAGE_MAX;
    const page = await this.audit.chain(project.id, query.after ?? 0, limit);
    const last = page.entries[page.entries.length - 1];
    const { anchor } = page;
    return {
      entries: page.entries.map(presentAuditEntry),
      head: page.head,
      anchor: anchor && { ...anchor, checkpoint: presentCheckpoint(anchor.checkpoint) },
      nextAfter: page.entries.length === limit && last?.position != null ? last.position : null,
    };
  }

  @Post('checkpoints')
  @Api({
    response: AuditCheckpointAnswer,
    permission: 'audit.read',
    tag: 'audit',
    status: 201,
    alsoStatus: [200],
    summary: "Seal pending entries and sign the chain's head: a checkpoint to keep outside Cairn",
    description:
      '201 with a new checkpoint, or 200 with the newest one when it already covers the head. 409 CAIRN-1154 when the control plane ' +
      'has no signing key; 409 CAIRN-1150 when the chain does not verify (nothing is signed). Verify the signature with a key from ' +
      '/.well-known/cairn-audit-keys.',
  })
  async checkpoint(
    @CurrentProject() project: Project,
    @Res({ passthrough: true }) reply: { status(code: number): unknown },
  ): Promise<{ checkpoint: unknown }> {
    const { checkpoint, created } = await this.checkpoints.checkpoint(project);
    if (!created) reply.status(200);
    return { checkpoint };
  }

  @Get('checkpoints')
  @Api({
    response: AuditCheckpointList,
    permission: 'audit.read',
    tag: 'audit',
    summary: "The project's signed checkpoints, newest first",
    description: 'Every checkpoint signed so far (periodic and on demand), with a cursor; each verifies on its own.',
    query: CheckpointQuery,
  })
  async listCheckpoints(
    @CurrentProject() project: Project,
    @Query() query: z.infer<typeof CheckpointQuery>,
  ): Promise<{ checkpoints: unknown[]; nextCursor: string | null }> {
    const page = await this.checkpoints.list(project.id, query.limit ?? 50, query.cursor);
    return { checkpoints: page.checkpoints, nextCursor: page.next };
  }
}

/**
 * The public keys that verify audit checkpoints: a JWK set (OKP/Ed25519, with each key's PEM).
 * Public and unauthenticated, like any published verification key; customers should pin the key
 * they trust rather than fetch it at verification time.
 */
@Controller('.well-known')
export class AuditKeysController {
  constructor(@Inject(AuditCheckpointService) private readonly checkpoints: AuditCheckpointService) {}

  @Get('cairn-audit-keys')
  keys(): { keys: unknown[] } {
    return { keys: this.checkpoints.publicKeys() };
  }
}
