// What the router shows around a page whose code is a separate chunk: while the chunk loads, and
// when it cannot be loaded (most often because a deploy replaced the console's assets, so the
// chunk this page's first bundle names no longer exists on the server).
import type { ReactNode } from 'react';
import type { ErrorComponentProps } from '@tanstack/react-router';
import { ErrorMessage, Loading } from './common.js';

/** The messages browsers give when a dynamic import() fails, and the one Vite gives when a chunk's CSS does. */
const CHUNK_FAILURES = [
  /Failed to fetch dynamically imported module/i, // Chromium
  /error loading dynamically imported module/i, // Firefox
  /Importing a module script failed/i, // Safari
  /Unable to preload CSS/i, // Vite
];

export function isChunkLoadError(error: unknown): boolean {
  return error instanceof Error && CHUNK_FAILURES.some((pattern) => pattern.test(error.message));
}

export function PagePending(): ReactNode {
  return <Loading what="the page" />;
}

export function PageError({ error }: ErrorComponentProps): ReactNode {
  if (!isChunkLoadError(error)) return <ErrorMessage error={error} title="This page failed" />;
  return (
    <div role="alert" className="error">
      <p>
        The console was updated since this page was opened, so this page&apos;s code is no longer on the server. Reload the page to use the
        new version.
      </p>
      <button type="button" onClick={() => window.location.reload()}>
        Reload
      </button>
    </div>
  );
}
