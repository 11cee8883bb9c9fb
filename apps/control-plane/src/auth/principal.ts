import type { Role } from '../tenancy/tenant.repository.js';

/** Who is calling a REST route: the API key, its organisation, the project it acts in, its role. */
export interface Principal {
  readonly keyId: string;
  readonly organizationId: string;
  /** The project the key is scoped to; null for an organisation-wide key. */
  readonly keyProjectId: string | null;
  readonly role: Role;
}
