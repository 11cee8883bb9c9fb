import type { Role } from '../tenancy/tenant.repository.js';

/**
 * What each role may do. Every REST route names one permission; the role matrix test walks the
 * OpenAPI document and checks every route against this table.
 */
export const PERMISSIONS = {
  /** Read projects, runs, workflows, schedules, data planes and usage. */
  'project.read': ['admin', 'developer', 'operator', 'viewer', 'auditor'],
  /** Register and deprecate workflow versions. */
  'workflows.write': ['admin', 'developer'],
  /** Create, change and delete schedules. */
  'schedules.write': ['admin', 'developer'],
  /** Pause, resume, trigger and backfill schedules. */
  'schedules.operate': ['admin', 'developer', 'operator'],
  /** Cancel, terminate and fork runs. */
  'runs.operate': ['admin', 'developer', 'operator'],
  /** Register and revoke data planes. */
  'data-planes.manage': ['admin'],
  /** Create, list and revoke API keys; set quotas and limits. */
  'project.admin': ['admin'],
  /** Read and verify the audit log. */
  'audit.read': ['admin', 'auditor'],
  /** Create projects; needs an organisation-wide key. */
  'organization.admin': ['admin'],
} as const satisfies Record<string, readonly Role[]>;

export type Permission = keyof typeof PERMISSIONS;

export function allows(role: Role, permission: Permission): boolean {
  return (PERMISSIONS[permission] as readonly Role[]).includes(role);
}

/** "operator, developer or admin" — for error messages. */
export function rolesFor(permission: Permission): string {
  const roles = [...PERMISSIONS[permission]].reverse();
  return roles.length === 1 ? roles[0]! : `${roles.slice(0, -1).join(', ')} or ${roles[roles.length - 1]!}`;
}
