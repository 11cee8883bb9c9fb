// The project's pages as routes: each route's address and search validation are here, in the
// first bundle, so that links, search parsing and preloading work before a page's code is
// fetched; each page's component is a separate chunk, loaded on first visit (or on hover, as the
// router preloads on intent). The runs page, the first page, is in the first bundle (./runs.ts).
import { createRoute } from '@tanstack/react-router';
import { validateAuditSearch, validateUsageSearch } from './pages-search.js';
import { projectRoute } from './root.js';

export interface ApprovalsSearch {
  workflow?: string;
}

export const approvalsRoute = createRoute({
  getParentRoute: () => projectRoute,
  path: 'approvals',
  validateSearch: (search: Record<string, unknown>): ApprovalsSearch =>
    typeof search['workflow'] === 'string' && search['workflow'].trim() !== '' ? { workflow: search['workflow'].trim() } : {},
}).lazy(() => import('../pages/approvals.js').then((m) => m.Route));

export interface RunSearch {
  /** The journal position of the selected call (undefined when navigating: none selected). */
  call?: number | undefined;
}

export const runRoute = createRoute({
  getParentRoute: () => projectRoute,
  path: 'runs/$runId',
  validateSearch: (search: Record<string, unknown>): RunSearch => {
    const call = Number(search['call']);
    return search['call'] !== undefined && Number.isInteger(call) && call >= 0 ? { call } : {};
  },
}).lazy(() => import('../pages/run.js').then((m) => m.Route));

export interface WorkflowsSearch {
  includeDeprecated?: boolean;
}

export const workflowsRoute = createRoute({
  getParentRoute: () => projectRoute,
  path: 'workflows',
  validateSearch: (search: Record<string, unknown>): WorkflowsSearch =>
    search['includeDeprecated'] === true || search['includeDeprecated'] === 'true' ? { includeDeprecated: true } : {},
}).lazy(() => import('../pages/workflows.js').then((m) => m.Route));

export const workflowRoute = createRoute({
  getParentRoute: () => projectRoute,
  path: 'workflows/$name',
}).lazy(() => import('../pages/workflows-detail.js').then((m) => m.Route));

export interface RunFormSearch {
  version?: string;
}

export const runFormRoute = createRoute({
  getParentRoute: () => projectRoute,
  path: 'workflows/$name/run',
  validateSearch: (search: Record<string, unknown>): RunFormSearch =>
    typeof search['version'] === 'string' && search['version'] !== ''
      ? { version: search['version'] }
      : typeof search['version'] === 'number'
        ? { version: String(search['version']) }
        : {},
}).lazy(() => import('../pages/run-form.js').then((m) => m.Route));

export const schedulesRoute = createRoute({
  getParentRoute: () => projectRoute,
  path: 'schedules',
}).lazy(() => import('../pages/schedules.js').then((m) => m.Route));

export const usageRoute = createRoute({
  getParentRoute: () => projectRoute,
  path: 'usage',
  validateSearch: validateUsageSearch,
}).lazy(() => import('../pages/usage.js').then((m) => m.Route));

export const auditRoute = createRoute({
  getParentRoute: () => projectRoute,
  path: 'audit',
  validateSearch: validateAuditSearch,
}).lazy(() => import('../pages/audit.js').then((m) => m.Route));

export const dataPlanesRoute = createRoute({
  getParentRoute: () => projectRoute,
  path: 'data-planes',
}).lazy(() => import('../pages/data-planes.js').then((m) => m.Route));

export const apiKeysRoute = createRoute({
  getParentRoute: () => projectRoute,
  path: 'api-keys',
}).lazy(() => import('../pages/api-keys.js').then((m) => m.Route));

export const residencyRoute = createRoute({
  getParentRoute: () => projectRoute,
  path: 'residency',
}).lazy(() => import('../pages/residency.js').then((m) => m.Route));
