// The runs this run started as children (control-plane metadata, listed by parent).
import type { ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Link } from '@tanstack/react-router';
import { cp, unwrap } from '../../api/control-plane.js';
import { ErrorMessage, Loading, StatusBadge, Time } from '../../components/common.js';

export function ChildRuns({ project, runId, live }: { project: string; runId: string; live: boolean }): ReactNode {
  const children = useQuery({
    queryKey: ['runs', project, { parentRunId: runId }],
    queryFn: ({ signal }) =>
      unwrap(cp.GET('/v1/projects/{project}/runs', { params: { path: { project }, query: { parentRunId: runId, limit: '100' } }, signal })),
    refetchInterval: live ? 3_000 : false,
  });
  if (children.isPending) return <Loading what="child runs" />;
  if (children.error !== null) return <ErrorMessage error={children.error} title="Child runs could not be listed" />;
  const runs = children.data.runs;
  if (runs.length === 0) return null;
  return (
    <section aria-labelledby="children-heading">
      <h2 id="children-heading">Child runs</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Workflow</th>
            <th scope="col">Status</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((run) => (
            <tr key={run.id}>
              <td>
                <Link to="/p/$project/runs/$runId" params={{ project, runId: run.id }} search={{}} className="mono">
                  {run.id}
                </Link>
              </td>
              <td>
                {run.workflowName}
                <span className="muted">@{run.workflowVersion}</span>
              </td>
              <td>
                <StatusBadge status={run.status} />
              </td>
              <td>
                <Time at={run.createdAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {children.data.nextCursor === null ? null : (
        <p>
          <Link to="/p/$project/runs" params={{ project }} search={{ parentRunId: runId }}>
            All child runs
          </Link>
        </p>
      )}
    </section>
  );
}
