import { Controller, Get, Inject, Post, Query } from '@nestjs/common';
import { z } from 'zod';
import { CairnError, ErrorCodes } from '@cairn/common';
import type { AuditEntry } from '../db/audit.repository.js';
import type { Project } from '../db/tenant.repository.js';
import { AuditService, type VerifyResult } from '../services/audit.service.js';
import { Api, CurrentProject } from './api.js';
import { isoTimeSchema, limitSchema } from './schemas.js';
import { AuditList, AuditVerification } from './responses.js';
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
  constructor(@Inject(AuditService) private readonly audit: AuditService) {}

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
      'Answers {ok:true, entries, head} or {ok:false, entries, head, broken:{position, entryId, reason, detail}}: the first position ' +
      'whose entry is missing or does not match its hash.',
  })
  async verify(@CurrentProject() project: Project): Promise<VerifyResult> {
    return this.audit.verify(project.id);
  }
}
