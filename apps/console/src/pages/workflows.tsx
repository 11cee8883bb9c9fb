// The workflow registry of a project: every registered workflow with its versions (deprecated ones
// on request), its flow control, and links to its runs, its settings and its run form. Names and
// versions come from the control plane; nothing here is a payload.
import type { ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Link, createLazyRoute, getRouteApi } from '@tanstack/react-router';
import { cp, unwrap, type Schemas } from '../api/control-plane.js';
import { ErrorMessage, Loading, Time, formatDuration } from '../components/common.js';
import { projectRoute } from '../routes/root.js';

const route = getRouteApi('/p/$project/workflows');

export type FlowControl = Schemas['FlowControl'];

/** Flow control in a few words: "at most 5 running (per key), 10 per 1 min". */
export function describeFlowControl(flow: FlowControl): string {
  const parts: string[] = [];
  if (flow.concurrency !== null) {
    parts.push(`at most ${flow.concurrency.limit} running${flow.concurrency.perKey ? ' per concurrency key' : ''}`);
  }
  if (flow.rateLimit !== null) {
    parts.push(
      `${flow.rateLimit.limit} start${flow.rateLimit.limit === 1 ? '' : 's'} per ${formatDuration(flow.rateLimit.periodMs)}${flow.rateLimit.perKey ? ' per concurrency key' : ''}`,
    );
  }
  return parts.length === 0 ? 'none' : parts.join('; ');
}

function WorkflowsPage(): ReactNode {
  const { project } = projectRoute.useParams();
  const { includeDeprecated } = route.useSearch();
  const navigate = route.useNavigate();
  const workflows = useQuery({
    queryKey: ['workflows', project, includeDeprecated === true],
    queryFn: ({ signal }) =>
      unwrap(
        cp.GET('/v1/projects/{project}/workflows', {
          params: { path: { project }, query: { includeDeprecated: includeDeprecated === true ? 'true' : 'false' } },
          signal,
        }),
      ),
  });
  const list = [...(workflows.data?.workflows ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <>
      <h1>Workflows</h1>
      <div className="filters">
        <label className="check">
          <input
            type="checkbox"
            checked={includeDeprecated === true}
            onChange={(e) => void navigate({ search: e.target.checked ? { includeDeprecated: true } : {} })}
          />
          Show deprecated versions
        </label>
      </div>
      {workflows.error === null ? null : <ErrorMessage error={workflows.error} title="Workflows could not be listed" />}
      {workflows.isPending ? <Loading what="workflows" /> : null}
      {workflows.isSuccess && list.length === 0 ? (
        <p>
          No workflow is registered in this project yet. Workers register theirs when they start (in development), or run{' '}
          <code>cairn workflows register</code>.
        </p>
      ) : null}
      {list.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th scope="col">Workflow</th>
              <th scope="col">Versions</th>
              <th scope="col">Newest registered</th>
              <th scope="col">Flow control</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.map((w) => {
              const newest = [...w.versions].sort((a, b) => b.registeredAt.localeCompare(a.registeredAt))[0];
              return (
                <tr key={w.name}>
                  <td>
                    <Link to="/p/$project/workflows/$name" params={{ project, name: w.name }}>
                      {w.name}
                    </Link>
                  </td>
                  <td>
                    <ul className="inline-list">
                      {w.versions.map((v) => (
                        <li key={v.version}>
                          {v.version}
                          {v.deprecated ? <span className="badge status-cancelled">deprecated</span> : null}
                        </li>
                      ))}
                    </ul>
                  </td>
                  <td>
                    <Time at={newest?.registeredAt} />
                  </td>
                  <td>{describeFlowControl(w.flowControl)}</td>
                  <td>
                    <div className="actions">
                      <Link to="/p/$project/runs" params={{ project }} search={{ workflow: w.name }} aria-label={`Runs of ${w.name}`}>
                        Runs
                      </Link>
                      <Link
                        to="/p/$project/workflows/$name/run"
                        params={{ project, name: w.name }}
                        search={{}}
                        aria-label={`Start a run of ${w.name}`}
                      >
                        Start a run
                      </Link>
                    </div>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
    </>
  );
}

export const Route = createLazyRoute('/p/$project/workflows')({ component: WorkflowsPage });
