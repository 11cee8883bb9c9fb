// Small pieces every page uses: error and loading states, status badges, times, byte sizes.
import type { ReactNode } from 'react';
import { ApiError } from '../api/errors.js';

/** An error said plainly, in the panel where it happened (never a blank page). */
export function ErrorMessage({ error, title }: { error: unknown; title?: string }): ReactNode {
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof ApiError && error.code !== null ? ` [${error.code}]` : '';
  return (
    <div role="alert" className="error">
      {title === undefined ? null : <strong>{title}: </strong>}
      {message}
      {code}
    </div>
  );
}

export function Loading({ what }: { what: string }): ReactNode {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  );
}

export function StatusBadge({ status }: { status: string }): ReactNode {
  return <span className={`badge status-${status}`}>{status.replace('_', ' ')}</span>;
}

/** A time as the browser's locale shows it, with the ISO time on hover. */
export function Time({ at }: { at: string | null | undefined }): ReactNode {
  if (at === null || at === undefined) return <span className="muted">—</span>;
  const date = new Date(at);
  return (
    <time dateTime={at} title={at}>
      {date.toLocaleString()}
    </time>
  );
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Pretty JSON for a payload panel. */
export function JsonView({ value, label }: { value: unknown; label: string }): ReactNode {
  return (
    <pre className="json" aria-label={label} tabIndex={0}>
      {value === undefined ? 'undefined' : JSON.stringify(value, null, 2)}
    </pre>
  );
}
