// The route tree's trunk: sign-in, and the project layout every page sits in (/p/:project/…).
import type { ReactNode } from 'react';
import { useState, type SubmitEvent } from 'react';
import { useQuery, useQueryClient, type QueryClient } from '@tanstack/react-query';
import { Link, Outlet, createRootRouteWithContext, createRoute, redirect, useNavigate, useRouterState } from '@tanstack/react-router';
import { cp, isUnauthenticated, unwrap } from '../api/control-plane.js';
import { ApiError } from '../api/errors.js';
import { ErrorMessage } from '../components/common.js';
import { clearSession, readSession, writeSession } from '../session.js';

export interface RouterContext {
  readonly queryClient: QueryClient;
}

export const rootRoute = createRootRouteWithContext<RouterContext>()({
  component: () => <Outlet />,
  notFoundComponent: () => (
    <main id="main" className="page narrow">
      <h1>Not found</h1>
      <p>
        There is no page at this address. <Link to="/">Go to the runs</Link>.
      </p>
    </main>
  ),
});

/** The projects the key can see; the first is where `/` goes. */
async function firstProject(): Promise<string> {
  const who = await unwrap(cp.GET('/v1/whoami'));
  const projects = await unwrap(cp.GET('/v1/projects'));
  const own = projects.projects.find((p) => p.id === who.projectId) ?? projects.projects[0];
  if (own === undefined) throw new ApiError('answer', 'This API key can see no project. Create one with `cairn projects create`.');
  return own.name;
}

export const indexRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/',
  beforeLoad: async () => {
    if (readSession() === null) throw redirect({ to: '/signin', search: { next: undefined } });
    throw redirect({ to: '/p/$project/runs', params: { project: await firstProject() }, search: {} });
  },
  errorComponent: ({ error }) => (
    <main id="main" className="page narrow">
      <h1>Cairn</h1>
      <ErrorMessage error={error} />
      <p>
        <Link to="/signin" search={{ next: undefined }}>
          Sign in again
        </Link>
      </p>
    </main>
  ),
});

function SignIn(): ReactNode {
  const { next } = signInRoute.useSearch();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [key, setKey] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: SubmitEvent): Promise<void> => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    writeSession({ apiKey: key.trim() });
    try {
      const project = await firstProject();
      queryClient.clear();
      if (next !== undefined && next.startsWith('/p/')) window.location.assign(next);
      else await navigate({ to: '/p/$project/runs', params: { project }, search: {} });
    } catch (err) {
      clearSession();
      setError(
        isUnauthenticated(err)
          ? new ApiError('answer', 'The control plane does not know this API key, or it was revoked or has expired.')
          : err,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" className="page narrow">
      <h1>Sign in to Cairn</h1>
      <form onSubmit={(e) => void submit(e)} className="stack">
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          required
          value={key}
          onChange={(e) => setKey(e.target.value)}
          placeholder="ck_…"
        />
        <p className="muted">
          The key is held in this tab for the session only. Create one with <code>cairn api-keys create</code>.
        </p>
        <button type="submit" disabled={busy || key.trim() === ''}>
          Sign in
        </button>
        {error === null ? null : <ErrorMessage error={error} />}
      </form>
    </main>
  );
}

export const signInRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/signin',
  validateSearch: (search: Record<string, unknown>): { next: string | undefined } => ({
    next: typeof search['next'] === 'string' ? search['next'] : undefined,
  }),
  component: SignIn,
});

/** The pages of a project, in the order of the navigation. */
const NAV = [
  { to: '/p/$project/runs', label: 'Runs' },
  { to: '/p/$project/approvals', label: 'Approvals' },
  { to: '/p/$project/workflows', label: 'Workflows' },
  { to: '/p/$project/schedules', label: 'Schedules' },
  { to: '/p/$project/usage', label: 'Usage' },
  { to: '/p/$project/audit', label: 'Audit' },
  { to: '/p/$project/data-planes', label: 'Data planes' },
  { to: '/p/$project/api-keys', label: 'API keys' },
  { to: '/p/$project/residency', label: 'Residency' },
] as const;

function ProjectLayout(): ReactNode {
  const { project } = projectRoute.useParams();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const pathname = useRouterState({ select: (s) => s.location.pathname });
  const projects = useQuery({ queryKey: ['projects'], queryFn: () => unwrap(cp.GET('/v1/projects')), staleTime: 60_000 });
  const signOut = (): void => {
    clearSession();
    queryClient.clear();
    void navigate({ to: '/signin', search: { next: undefined } });
  };
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link to="/" className="brand">
          Cairn
        </Link>
        <nav aria-label="Pages">
          <ul>
            {NAV.map((item) => (
              <li key={item.to}>
                <Link to={item.to} params={{ project }} activeProps={{ 'aria-current': 'page', className: 'active' }}>
                  {item.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="account">
          <label htmlFor="project-switch" className="visually-hidden">
            Project
          </label>
          <select
            id="project-switch"
            value={project}
            onChange={(e) => void navigate({ to: '/p/$project/runs', params: { project: e.target.value }, search: {} })}
          >
            {(projects.data?.projects ?? [{ id: project, name: project }]).map((p) => (
              <option key={p.id} value={p.name}>
                {p.name}
              </option>
            ))}
          </select>
          <button type="button" className="link" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" className="page" key={pathname.split('/').slice(0, 4).join('/')}>
        <Outlet />
      </main>
    </>
  );
}

export const projectRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/p/$project',
  beforeLoad: ({ location }) => {
    if (readSession() === null) throw redirect({ to: '/signin', search: { next: location.href } });
  },
  component: ProjectLayout,
});
