// The console's routes. Each page's route (address, search validation) is in routes/; its component
// is in pages/, loaded when the page is first visited; this file assembles the tree.
// Every address is shareable: the project, the run and list filters are in the URL.
import type { QueryClient } from '@tanstack/react-query';
import { createRouter } from '@tanstack/react-router';
import { PageError, PagePending } from './components/route-states.js';
import { indexRoute, projectRoute, rootRoute, signInRoute } from './routes/root.js';
import {
  apiKeysRoute,
  approvalsRoute,
  auditRoute,
  dataPlanesRoute,
  residencyRoute,
  runFormRoute,
  runRoute,
  schedulesRoute,
  usageRoute,
  workflowRoute,
  workflowsRoute,
} from './routes/pages.js';
import { runsRoute } from './routes/runs.js';

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
  return createRouter({
    routeTree,
    context: { queryClient },
    defaultPreload: 'intent',
    scrollRestoration: true,
    // A page's chunk usually arrives well within 200 ms; past that, say so rather than show nothing.
    // No minimum time on screen: the page (or the sign-in link's redirect) shows as soon as it is ready.
    defaultPendingMs: 200,
    defaultPendingMinMs: 0,
    defaultPendingComponent: PagePending,
    defaultErrorComponent: PageError,
  });
}

declare module '@tanstack/react-router' {
  interface Register {
    router: ReturnType<typeof createConsoleRouter>;
  }
}
