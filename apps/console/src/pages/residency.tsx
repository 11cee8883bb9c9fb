// The residency report, for a compliance reviewer: what crosses from the data plane to the
// control plane (every field of every message, its class, bounds and what it carries), the
// classes in plain words, and what never crosses. Built by the control plane from the same proto
// descriptors it enforces (`cairn residency report` renders the same data as Markdown).
import { useState, type ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { createLazyRoute } from '@tanstack/react-router';
import { cp, unwrap } from '../api/control-plane.js';
import { ErrorMessage, Loading } from '../components/common.js';

const anchor = (message: string): string => `msg-${message.replace(/[^A-Za-z0-9]+/g, '-')}`;

function ResidencyPage(): ReactNode {
  const [classFilter, setClassFilter] = useState('');
  const report = useQuery({
    queryKey: ['residency'],
    queryFn: ({ signal }) => unwrap(cp.GET('/v1/residency', { signal })),
    staleTime: Infinity,
  });
  if (report.isPending) return <Loading what="the residency report" />;
  if (report.error !== null) return <ErrorMessage error={report.error} title="The residency report could not be read" />;
  const r = report.data;
  const messages = r.messages
    .map((m) => ({ ...m, fields: classFilter === '' ? m.fields : m.fields.filter((f) => f.class === classFilter) }))
    .filter((m) => classFilter === '' || m.fields.length > 0);
  return (
    <>
      <h1>Residency report</h1>
      <p className="lead">{r.title}.</p>
      <p>
        Built from the protobuf descriptors of {r.files.map((f, i) => [i === 0 ? '' : ', ', <code key={f}>{f}</code>])}, which the control
        plane enforces: every value the data plane sends is checked against its field's class on receipt, and refused when it does not fit.
        Payloads have no field: they stay in the data plane. {r.totals.messages} messages, {r.totals.fields} fields.
      </p>
      {r.problems.length === 0 ? (
        <p className="verified ok" role="status">
          ✓ Every field of the contract is classified and bounded.
        </p>
      ) : (
        <div className="verified broken" role="alert">
          <p>
            <strong>The contract has declarations that break the rules:</strong>
          </p>
          <ul>
            {r.problems.map((p) => (
              <li key={p}>{p}</li>
            ))}
          </ul>
        </div>
      )}

      <section aria-labelledby="never-heading" className="panel">
        <h2 id="never-heading">What never crosses</h2>
        <p>No field of the contract can carry these; they stay in the customer's data plane:</p>
        <ul>
          {r.neverCrosses.map((n) => (
            <li key={n}>{n}</li>
          ))}
        </ul>
      </section>

      <section aria-labelledby="classes-heading">
        <h2 id="classes-heading">What crosses, by class</h2>
        <table aria-label="Residency classes">
          <thead>
            <tr>
              <th scope="col">Class</th>
              <th scope="col">What it admits</th>
              <th scope="col">Fields</th>
            </tr>
          </thead>
          <tbody>
            {Object.entries(r.classes).map(([cls, meaning]) => (
              <tr key={cls}>
                <th scope="row">{cls}</th>
                <td className="wrap">{meaning}</td>
                <td className="num">{r.totals.byClass[cls] ?? 0}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>

      <section aria-labelledby="messages-heading">
        <h2 id="messages-heading">Messages, field by field</h2>
        <div className="filters">
          <div className="field">
            <label htmlFor="class-filter">Show fields of class</label>
            <select id="class-filter" value={classFilter} onChange={(e) => setClassFilter(e.target.value)}>
              <option value="">every class</option>
              {Object.keys(r.classes).map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </select>
          </div>
        </div>
        <nav aria-label="Messages">
          <ul className="inline-list">
            {messages.map((m) => (
              <li key={m.message}>
                <a href={`#${anchor(m.message)}`}>{m.message.split('.').at(-1)}</a>
              </li>
            ))}
          </ul>
        </nav>
        {messages.map((m) => (
          <section key={m.message} aria-labelledby={anchor(m.message)} className="message">
            <h3 id={anchor(m.message)} className="mono">
              {m.message}
            </h3>
            <p className="muted">
              Sent through {m.via.map((v, i) => [i === 0 ? '' : ', ', <code key={v}>{v}</code>])} ({m.file}).
            </p>
            {m.fields.length === 0 ? (
              <p className="muted">No fields.</p>
            ) : (
              <table aria-label={`Fields of ${m.message}`}>
                <thead>
                  <tr>
                    <th scope="col">#</th>
                    <th scope="col">Field</th>
                    <th scope="col">Type</th>
                    <th scope="col">Class</th>
                    <th scope="col">Bounds</th>
                    <th scope="col">Carries</th>
                  </tr>
                </thead>
                <tbody>
                  {m.fields.map((f) => (
                    <tr key={f.number}>
                      <td className="num">{f.number}</td>
                      <td className="mono">{f.field}</td>
                      <td className="mono">
                        {f.repeated ? 'repeated ' : ''}
                        {f.type}
                      </td>
                      <td>{f.class}</td>
                      <td className="wrap">
                        {f.maxLength === null ? null : <>≤ {f.maxLength} chars </>}
                        {f.pattern === null ? null : <code className="pattern">{f.pattern}</code>}
                      </td>
                      <td className="wrap">{f.carries}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
        ))}
      </section>
    </>
  );
}

export const Route = createLazyRoute('/p/$project/residency')({ component: ResidencyPage });
