import { closeSync, chmodSync, constants, fstatSync, fsyncSync, openSync, readFileSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { open as openLmdb, type RootDatabase } from 'lmdb';
import { readKey } from 'ordered-binary';
import { fileModeDefault } from '../limits.js';
import { syncDirectorySync } from '../log/file/segment-files.js';
import { writeOrderedKey } from './ordered-key.js';

/**
 * Opening the LMDB environment of an index or query view (FORMAT.md F-52, F-98). LMDB maps its file into memory
 * and trusts it: a file cut short makes the process die of SIGBUS on the first read past its end, and damaged
 * pages can crash it too (neither can be caught in JavaScript). Its files are derived, so what can be checked
 * before LMDB sees the file is checked, and an environment that is short or does not open is removed and
 * rebuilt from the log rather than trusted. Damage inside pages of a file of the right length is LMDB's to find;
 * README "Hostile files and values" states that limit.
 */

/**
 * Options for a database whose keys are `ordered-binary` values read by range (index and query entries). With its
 * default key handling lmdb-js 3.5 compares keys with a fast comparator that reads the search key past its end,
 * assuming zeros there, while its shared key buffer holds whatever an earlier key left: a range starting at a
 * strict prefix of stored keys then skipped some of them. The same encoding given as an explicit encoder makes
 * lmdb-js leave comparing to LMDB's own (bytes, then length), the order `ordered-binary` is made for, so existing
 * files keep their order. The encoder is `ordered-binary`'s but for long strings holding U+0000…U+0004, which it
 * leaves unescaped (see `writeOrderedKey`).
 */
export const orderedBinaryKeys = { keyEncoder: { writeKey: writeOrderedKey, readKey } };

/** lmdb-js 3 on 64-bit platforms: the meta pages (page 0 and 1) hold these fields (LMDB's MDB_meta). */
const metaMagic = 0xbeef_c0de;
const metaMagicAt = 24;
const metaPageBytesAt = 48;
const metaLastPageAt = 144;
const metaTransactionAt = 152;

/**
 * Why the data file at `path` must not be handed to LMDB, or `undefined` when it may be (missing, empty, or of
 * a layout this check does not know: LMDB then judges it). LMDB uses the meta page of the highest transaction;
 * the file must hold every page up to the last one that meta names.
 */
export function lmdbFileProblem(path: string): string | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO put in its place must not block the open (it is then refused as not a regular file).
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    return `${path} cannot be opened (${code ?? String(error)})`;
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) return `${path} is not a regular file`;
    if (info.size === 0) return undefined;
    const first = Buffer.alloc(256);
    if (readSync(fd, first, 0, 256, 0) < 256) return `${path} is shorter than its meta page (${info.size} bytes)`;
    if (first.readUInt32LE(metaMagicAt) !== metaMagic) return undefined;
    const pageBytes = first.readUInt32LE(metaPageBytesAt);
    if (pageBytes < 512 || pageBytes > 65_536 || (pageBytes & (pageBytes - 1)) !== 0) return `${path}: page size ${pageBytes} is not one LMDB writes`;
    if (info.size < 2 * pageBytes) return `${path} is shorter than its two meta pages (${info.size} bytes)`;
    const second = Buffer.alloc(256);
    readSync(fd, second, 0, 256, pageBytes);
    const metas = [first, second].filter((meta) => meta.readUInt32LE(metaMagicAt) === metaMagic);
    const newest = metas.reduce((a, b) => (b.readBigUInt64LE(metaTransactionAt) > a.readBigUInt64LE(metaTransactionAt) ? b : a));
    const lastPage = newest.readBigUInt64LE(metaLastPageAt);
    const needBytes = (lastPage + 1n) * BigInt(pageBytes);
    if (BigInt(info.size) < needBytes) return `${path} is cut short: ${info.size} bytes, its pages need ${needBytes}`;
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens the environment at `path` (created with `fileMode`) and runs `probe` on it (open the databases, read the
 * stored `since`). When the file is cut short, does not open, or `probe` fails (LMDB found a damaged page), tells
 * `report` why, removes the environment, opens a new empty one and probes that: the caller then rebuilds. An
 * environment left with commits that were never synced (F-99) by a system that has restarted since is removed
 * the same way, unopened.
 */
export async function openViewStore<P>(
  path: string,
  report: (message: string) => void,
  probe: (root: RootDatabase) => P,
  fileMode = fileModeDefault,
): Promise<{ root: RootDatabase; probed: P; durability: StoreDurability }> {
  const unsynced = unsyncedProblem(path);
  const problem = unsynced ?? lmdbFileProblem(path);
  if (problem === undefined) {
    let root: RootDatabase | undefined;
    try {
      root = openOwnerOnly(path, fileMode);
      const probed = probe(root);
      const durability = new StoreDurability(root, path, fileMode);
      // Commits a process of this boot left unsynced (F-99) are made durable before anything builds on them.
      await durability.sync();
      return { root, probed, durability };
    } catch (error) {
      report(`${path} does not open (${(error as Error).message}): rebuilding`);
      await root?.close().catch(() => undefined);
    }
  } else report(`${problem}: rebuilding`);
  rmSync(path, { force: true });
  rmSync(`${path}-lock`, { force: true });
  // The marker goes last: until the environment is gone, it must keep saying that it cannot be trusted.
  if (unsynced !== undefined) {
    syncDirectorySync(dirname(path));
    rmSync(unsyncedMarkerOf(path), { force: true });
  }
  const root = openOwnerOnly(path, fileMode);
  return { root, probed: probe(root), durability: new StoreDurability(root, path, fileMode) };
}

/** F-99: the file that says an environment holds commits not synced yet (it names the boot they were made in). */
export function unsyncedMarkerOf(path: string): string {
  return `${path}.unsynced`;
}

let bootIdRead: string | undefined | null = null;

/** The kernel's id of this boot (Linux), or `undefined` where there is none to read. */
function bootId(): string | undefined {
  if (bootIdRead === null) {
    try {
      bootIdRead = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
    } catch {
      bootIdRead = undefined;
    }
  }
  return bootIdRead;
}

/** A marker holds a boot id and a newline: anything larger is not one. */
const markerBytesMax = 128;

/**
 * Why the environment at `path` must not be trusted because of commits that were not synced (F-99), or
 * `undefined`. Unsynced commits are safe after a process crash (the system still holds every page written), not
 * after the system went down: without a sync, the newest meta page may have reached the disk before the pages
 * it names.
 *
 * `observer`: the caller does not own the environment (`check`, `stat`), so a writer may be running. Where the
 * system has no boot id, a running writer's marker cannot be told from one left before a restart, and an
 * observer is told of no problem (the owner still rebuilds when it opens the view).
 */
export function unsyncedProblem(path: string, observer = false): string | undefined {
  const markerPath = unsyncedMarkerOf(path);
  let marker: string;
  let fd: number;
  try {
    // Not following a link, not waiting on a FIFO: the marker is a small regular file the view made.
    fd = openSync(markerPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return `${markerPath} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile() || info.size > markerBytesMax) return `${markerPath} is not a marker the view wrote`;
    const bytes = Buffer.alloc(markerBytesMax);
    marker = bytes.toString('utf8', 0, readSync(fd, bytes, 0, markerBytesMax, 0));
  } catch (error) {
    return `${markerPath} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
  } finally {
    closeSync(fd);
  }
  const boot = bootId();
  if (boot === undefined ? observer : marker.trim() === boot) return undefined;
  return `${path} holds commits that were never synced, made before the system restarted`;
}

/**
 * When a view's environment reaches the disk (F-99). Commits are not synced one by one: each batch of a rebuild
 * would otherwise wait for the disk. Before the first commit after a sync, a marker naming this boot is made
 * durable; `sync` (at the runner's checkpoints) flushes the environment and removes the marker. A process that
 * dies in between leaves the system's page cache holding every commit, so its successor keeps the environment; a
 * system that goes down in between leaves the marker, and the view is rebuilt.
 */
export class StoreDurability {
  readonly #root: RootDatabase;
  readonly #marker: string;
  readonly #fileMode: number;
  #marked: boolean;
  /** Commits started and finished: the marker goes only when every commit started before a sync had finished. */
  #started = 0;
  #finished = 0;

  constructor(root: RootDatabase, path: string, fileMode: number) {
    this.#root = root;
    this.#marker = unsyncedMarkerOf(path);
    this.#fileMode = fileMode;
    this.#marked = markerExists(this.#marker);
  }

  /** Runs one commit (`write` starts it and resolves when it is committed), marking the environment first. */
  async write<R>(write: () => Promise<R>): Promise<R> {
    if (!this.#marked) this.#mark();
    this.#started++;
    try {
      return await write();
    } finally {
      this.#finished++;
    }
  }

  /** As `write`, for a commit that runs to its end on this thread (`commitSync`). */
  writeSync<R>(write: () => R): R {
    if (!this.#marked) this.#mark();
    this.#started++;
    try {
      return write();
    } finally {
      this.#finished++;
    }
  }

  /** Flushes every finished commit to the disk; then, unless a commit ran meanwhile, removes the marker. */
  async sync(): Promise<void> {
    if (!this.#marked) return;
    const started = this.#started;
    const quiet = started === this.#finished;
    await new Promise<void>((resolve, reject) => {
      // lmdb-js: mdb_env_sync(force) on its thread pool; the callback gets the error, if any.
      (this.#root as unknown as { sync(callback: (error?: Error) => void): void }).sync((error) => (error === undefined || error === null ? resolve() : reject(error)));
    });
    if (!quiet || started !== this.#started) return;
    rmSync(this.#marker, { force: true });
    syncDirectorySync(dirname(this.#marker));
    this.#marked = false;
  }

  #mark(): void {
    // Written aside and renamed: `check` and `stat` read markers while writers run, and must never see one
    // that is created but not yet written (empty, it would name no boot).
    const aside = `${this.#marker}.tmp`;
    const fd = openSync(aside, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, this.#fileMode);
    try {
      writeSync(fd, `${bootId() ?? ''}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(aside, this.#marker);
    syncDirectorySync(dirname(this.#marker));
    this.#marked = true;
  }
}

/** Whether the marker is there (when that cannot be told, it is taken to be: a sync then settles it). */
function markerExists(path: string): boolean {
  try {
    closeSync(openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK));
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/**
 * lmdb-js creates its files with mode 0664 (less the umask): they are created here first, with `fileMode`, so
 * an index is never readable by other users unless asked. LMDB takes an empty data file for a new environment.
 */
function openOwnerOnly(path: string, fileMode: number): RootDatabase {
  for (const file of [path, `${path}-lock`]) {
    closeSync(openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, fileMode));
    chmodSync(file, fileMode);
  }
  // noSync: commits are synced at checkpoints (StoreDurability), not one by one.
  return openLmdb({ path, compression: false, noSync: true });
}

/**
 * Before a read-only open (`check`, `stat`, `backup`): LMDB creates its `-lock` file beside the environment even
 * then, with mode 0664; made here first, it is owner-only. A directory that cannot be written is left as it is.
 */
export function createLockFile(path: string, fileMode = fileModeDefault): void {
  try {
    closeSync(openSync(`${path}-lock`, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, fileMode));
  } catch {
    // Read-only media or a lock that is a link: LMDB reports what it cannot do itself.
  }
}

/**
 * Awaits an LMDB write. When a commit fails (a damaged page, a full disk), lmdb-js rejects the write with an
 * error whose `commitError` is a second, already rejected promise that nobody else holds: unhandled, it would
 * end the process. It is handled here, `failed` is told (see `closeViewStore`), and the write's own error goes to
 * the caller (the view then fails alone).
 */
export async function committed<R>(write: Promise<R>, failed: () => void): Promise<R> {
  try {
    return await write;
  } catch (error) {
    failed();
    const commitError = (error as { commitError?: unknown }).commitError;
    if (commitError instanceof Promise) commitError.catch(() => undefined);
    throw error;
  }
}

/**
 * Runs `write` in one write transaction of `root` that begins, runs and commits on this thread (lmdb-js's
 * `transactionSync`): with commits not synced one by one (F-99), a batch costs no round trip to lmdb-js's write
 * thread, whose hand-offs left this thread idle between batches. A failed commit throws, after `failed` is told
 * (see `closeViewStore`).
 */
export function commitSync(root: RootDatabase, write: () => void, failed: () => void): void {
  try {
    root.transactionSync(write);
  } catch (error) {
    failed();
    throw error;
  }
}

/**
 * Closes a view's environment. After a failed commit, lmdb-js's close waits for a flush that never comes: the
 * close is then started but not awaited, so closing the database still finishes (the environment's memory map
 * and descriptor stay until the process ends; the view rebuilds when next opened).
 */
export async function closeViewStore(root: RootDatabase | undefined, commitFailed: boolean): Promise<void> {
  if (root === undefined) return;
  const closing = root.close();
  if (commitFailed) closing.catch(() => undefined);
  else await closing;
}

/**
 * Called at the end of a transaction's callback: lmdb-js keeps one promise per commit of its own, which it rejects
 * when the commit fails and which nobody holds; a handler is attached while it exists (during the callback), so a
 * failed commit fails the view's write, not the process. The callback's own promise carries the error.
 */
export function handleCommitFailure(root: RootDatabase | undefined): void {
  root?.committed.then(undefined, () => undefined);
}
