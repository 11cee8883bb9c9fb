// Watches a project folder for changes to the user's code, so the dev stack restarts the worker
// with the new code. Dependencies, build output, version control and the stack's own state
// (Postgres writes there all the time) are not watched; a burst of changes (a save of several
// files, a branch switch) gives one restart.
import { relative, resolve, sep } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';

/** Folders never watched, wherever they are in the tree. */
export const IGNORED_FOLDERS: readonly string[] = ['node_modules', '.cairn', 'dist', '.git'];

export interface ProjectWatcher {
  /** Resolves once the initial scan is done and changes are reported. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

export interface WatchOptions {
  /** More folders to leave out (absolute), e.g. a state folder with another name. */
  readonly ignore?: readonly string[];
  /** Quiet time after the last change before `onChange` is called (default 300 ms). */
  readonly debounceMs?: number;
}

/**
 * Calls `onChange` with the changed paths (relative to `root`) after changes under `root` settle.
 */
export function watchProject(root: string, onChange: (paths: string[]) => void, options: WatchOptions = {}): ProjectWatcher {
  const base = resolve(root);
  const extra = (options.ignore ?? []).map((p) => resolve(p));
  const ignored = (path: string): boolean => {
    const abs = resolve(path);
    if (extra.some((p) => abs === p || abs.startsWith(p + sep))) return true;
    const rel = relative(base, abs);
    if (rel === '' || rel.startsWith('..')) return false;
    return rel.split(sep).some((part) => IGNORED_FOLDERS.includes(part));
  };
  const watcher: FSWatcher = watch(base, { ignored, ignoreInitial: true, persistent: true });
  let pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  const changed = (path: string): void => {
    pending.add(relative(base, resolve(path)) || '.');
    clearTimeout(timer);
    timer = setTimeout(() => {
      const paths = [...pending].sort();
      pending = new Set();
      onChange(paths);
    }, options.debounceMs ?? 300);
  };
  for (const event of ['add', 'change', 'unlink', 'addDir', 'unlinkDir'] as const) watcher.on(event, changed);
  // A folder that cannot be read (permissions) is left out; the rest keeps being watched.
  watcher.on('error', () => undefined);
  const ready = new Promise<void>((r) => watcher.once('ready', () => r()));
  return {
    ready,
    async close() {
      clearTimeout(timer);
      await watcher.close();
    },
  };
}
