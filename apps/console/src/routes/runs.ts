// The runs list is the first page a sign-in opens, so its code is in the first bundle rather than
// a chunk fetched after it (which would add a request to the first page's critical path).
import { createRoute } from '@tanstack/react-router';
import { RunsPage } from '../pages/runs.js';
import { projectRoute } from './root.js';
import { validateRunsSearch } from './runs-search.js';

export const runsRoute = createRoute({
  getParentRoute: () => projectRoute,
  path: 'runs',
  validateSearch: validateRunsSearch,
  component: RunsPage,
});
