// The usage and audit pages' filters, as they are written in their addresses: read by the routes
// (search validation) and by the pages' filter forms, so the two agree.

/**
 * A filter form's draft of a page's search: a field the user cleared holds undefined until the
 * draft is validated into the search.
 */
export type SearchDraft<T> = { [K in keyof T]?: T[K] | undefined };

export interface UsageSearch {
  from?: string;
  to?: string;
}

const DAY = /^\d{4}-\d\d-\d\d$/;

export function validateUsageSearch(search: Record<string, unknown>): UsageSearch {
  const out: UsageSearch = {};
  for (const key of ['from', 'to'] as const) {
    const value = search[key];
    if (typeof value === 'string' && DAY.test(value)) out[key] = value;
  }
  return out;
}

export interface AuditSearch {
  action?: string;
  targetType?: string;
  targetId?: string;
}

export function validateAuditSearch(search: Record<string, unknown>): AuditSearch {
  const out: AuditSearch = {};
  for (const key of ['action', 'targetType', 'targetId'] as const) {
    const value = search[key];
    if (typeof value === 'string' && value.trim() !== '') out[key] = value.trim();
  }
  return out;
}
