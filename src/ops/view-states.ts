import { lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { createLockFile, lmdbFileProblem, unsyncedMarkerOf, unsyncedProblem } from '../views/lmdb-store.js';
import { readState } from '../views/state-file.js';

/** How a view keeps its state on disk (FORMAT.md F-50, F-52). */
export type ViewStorage = 'state-file' | 'lmdb' | 'unknown';

/** One view's stored state, read without the view's code. */
export interface ViewState {
  /** The view's name: its directory under `<dir>/views/`. */
  readonly name: string;
  /** The view's directory. */
  readonly dir: string;
  /**
   * `state-file`: a `state` file (F-50; reduce views, the offsets table); `lmdb`: an `index.mdb` or `query.mdb`
   * environment (F-52; index, key, time and query views); `unknown`: neither (a view of your own, or a view that
   * has not stored anything yet). A view of unknown storage has no `version` nor `since`.
   */
  readonly storage: ViewStorage;
  /** The file holding the state (`state`, `index.mdb`, `query.mdb`), when there is one. */
  readonly file: string | undefined;
  /** The view version stored with the state; `null` when unknown (nothing stored, unreadable, unknown storage). */
  readonly version: number | null;
  /** The offset of the last record the state includes (`-1`: none); `null` when unknown. */
  readonly since: number | null;
  /** The size of the view's files on disk (symbolic links are not followed). */
  readonly bytes: number;
  /** Why the state cannot be read (a damaged state file, an environment that does not open; it rebuilds), or `null`. */
  readonly problem: string | null;
}

/** The files of LMDB environments that views write (F-52), in the order they are looked for. */
const environmentNames = ['index.mdb', 'query.mdb'] as const;
const stateFileName = 'state';

/**
 * The state of every view under `<dir>/views/`, in name order (`[]` when there is no such directory). State
 * files are read and verified (F-50); an LMDB environment is opened read-only and its `meta` database read
 * (F-52). Nothing is modified, but opening an environment may create LMDB's own `<file>-lock` beside it.
 */
export async function readViewStates(dir: string): Promise<ViewState[]> {
  const viewsDir = join(dir, 'views');
  let names: string[];
  try {
    names = (await readdir(viewsDir)).sort();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw error;
  }
  const states: ViewState[] = [];
  for (const name of names) {
    const viewDir = join(viewsDir, name);
    const info = await lstat(viewDir);
    if (!info.isDirectory()) continue;
    states.push(await readViewState(name, viewDir));
  }
  return states;
}

async function readViewState(name: string, dir: string): Promise<ViewState> {
  const files = await readdir(dir);
  const bytes = await bytesOf(dir);
  const unknown = { name, dir, storage: 'unknown' as const, file: undefined, version: null, since: null, bytes, problem: null };
  if (files.includes(stateFileName)) {
    const file = join(dir, stateFileName);
    const stored = await readState<unknown>(file);
    if (stored === undefined) return unknown;
    if (typeof stored === 'string') return { ...unknown, storage: 'state-file', file, problem: stored };
    return { ...unknown, storage: 'state-file', file, version: stored.version, since: stored.since };
  }
  const environment = environmentNames.find((candidate) => files.includes(candidate));
  if (environment === undefined) return unknown;
  const file = join(dir, environment);
  // An environment left unsynced before the system restarted (F-99) is not opened: its pages cannot be trusted.
  const unsynced = unsyncedProblem(file, true);
  if (unsynced !== undefined) return { ...unknown, storage: 'lmdb', file, problem: unsynced };
  const meta = await readEnvironmentMeta(file);
  if (typeof meta === 'string') return { ...unknown, storage: 'lmdb', file, problem: meta };
  return { ...unknown, storage: 'lmdb', file, version: meta.version, since: meta.since };
}

/** `since` and `version` from an environment's `meta` database, or why they cannot be read. */
async function readEnvironmentMeta(file: string): Promise<{ since: number; version: number | null } | string> {
  let root;
  // A file cut short would kill this process with SIGBUS inside LMDB: it is judged before LMDB maps it.
  const problem = lmdbFileProblem(file);
  if (problem !== undefined) return problem;
  createLockFile(file);
  try {
    root = openLmdb({ path: file, readOnly: true, compression: false });
  } catch (error) {
    return `${file}: the LMDB environment does not open: ${(error as Error).message}`;
  }
  try {
    let since: unknown;
    let version: unknown;
    try {
      const meta = root.openDB<unknown, string>({ name: 'meta' });
      since = meta.get('since');
      version = meta.get('version');
    } catch {
      // A view that has never committed has no meta database yet: it holds nothing.
      return { since: -1, version: null };
    }
    if (since === undefined) return { since: -1, version: typeof version === 'number' ? version : null };
    if (typeof since !== 'number' || !Number.isSafeInteger(since) || since < -1) {
      return `${file}: the stored since (${JSON.stringify(since)}) is not an offset`;
    }
    if (version !== undefined && (typeof version !== 'number' || !Number.isSafeInteger(version))) {
      return `${file}: the stored version (${JSON.stringify(version)}) is not an integer`;
    }
    return { since, version: version ?? null };
  } finally {
    // Closing only releases this process's handle; it writes nothing to a read-only environment.
    await root.close();
  }
}

/** The size of the regular files under `dir`, not following symbolic links. */
async function bytesOf(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) {
    const info = await lstat(join(dir, name));
    if (info.isDirectory()) total += await bytesOf(join(dir, name));
    else if (info.isFile()) total += info.size;
  }
  return total;
}

/** The files of a view's state that `clearViewState` removes: after that the view holds nothing and rebuilds. */
const stateFiles = [
  stateFileName,
  `${stateFileName}.tmp`,
  ...environmentNames.flatMap((name) => [name, `${name}-lock`, unsyncedMarkerOf(name), `${unsyncedMarkerOf(name)}.tmp`]),
];

/**
 * Removes a view's stored state (the state file or LMDB environment), so that the view rebuilds from the start
 * of the log the next time it is used: a view whose state is missing opens at `since` -1. Other files in the
 * view's directory (a view of your own) are left alone. Returns the files removed.
 */
export async function clearViewState(view: ViewState): Promise<string[]> {
  const removed: string[] = [];
  const present = new Set(await readdir(view.dir));
  for (const name of stateFiles) {
    if (!present.has(name)) continue;
    await rm(join(view.dir, name), { force: true });
    removed.push(join(view.dir, name));
  }
  return removed;
}
