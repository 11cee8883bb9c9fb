// The console's routes. Each page defines its route beside its component; this file assembles
// the tree. Every address is shareable: the project, the run and list filters are in the URL.
import type { QueryClient } from '@tanstack/react-query';
import { createRouter } from '@tanstack/react-router';
import { indexRoute, projectRoute, rootRoute, signInRoute } from './routes/root.js';
import { apiKeysRoute } from './pages/api-keys.js';
import { auditRoute } from './pages/audit.js';
import { dataPlanesRoute } from './pages/data-planes.js';
import { residencyRoute } from './pages/residency.js';
import { runRoute } from './pages/run.js';
import { runsRoute } from './pages/runs.js';
import { approvalsRoute } from './pages/approvals.js';
import { runFormRoute } from './pages/run-form.js';
import { workflowsRoute } from './pages/workflows.js';
import { workflowRoute } from './pages/workflows-detail.js';
import { schedulesRoute } from './pages/schedules.js';
import { usageRoute } from './pages/usage.js';

const routeTree = rootRoute.addChildren([
  indexRoute,
  signInRoute,
  projectRoute.addChildren([
    runsRoute,
    runRoute,
    approvalsRoute,
    workflowsRoute,
    workflowRoute,
    runFormRoute,
    schedulesRoute,
    usageRoute,
    auditRoute,
    dataPlanesRoute,
    apiKeysRoute,
    residencyRoute,
  ]),
]);

export function createConsoleRouter(queryClient: QueryClient) {
  return createRouter({ routeTree, context: { queryClient }, defaultPreload: 'intent', scrollRestoration: true });
}

declare module '@tanstack/react-router' {
  interface Register {
    router: ReturnType<typeof createConsoleRouter>;
  }
}
