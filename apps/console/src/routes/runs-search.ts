// The runs list's filters, as they are written in its address.
import type { RunStatus } from '../api/control-plane.js';

export const RUN_STATUSES: readonly RunStatus[] = [
  'queued',
  'running',
  'suspended',
  'completed',
  'failed',
  'cancelled',
  'terminated',
  'timed_out',
];

export interface RunsSearch {
  status?: RunStatus[];
  workflow?: string;
  version?: string;
  scheduleId?: string;
  parentRunId?: string;
  createdAfter?: string;
  createdBefore?: string;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);

export function validateRunsSearch(search: Record<string, unknown>): RunsSearch {
  const raw = search['status'];
  const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : [];
  const status = list.filter((s): s is RunStatus => RUN_STATUSES.includes(s as RunStatus));
  const out: RunsSearch = {};
  if (status.length > 0) out.status = status;
  for (const key of ['workflow', 'version', 'scheduleId', 'parentRunId', 'createdAfter', 'createdBefore'] as const) {
    const value = text(search[key]);
    if (value !== undefined) out[key] = value;
  }
  return out;
}
