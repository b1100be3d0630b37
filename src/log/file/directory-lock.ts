import { createHash, randomBytes } from 'node:crypto';
import { fileModeDefault } from '../../limits.js';
import { closeSync, linkSync, openSync, readFileSync, realpathSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SluiceError } from '../../errors.js';

/** The lock file's name inside a log directory (F-30). */
export const lockFileName = 'LOCK';

/** Directories locked through this module instance: a second writer here is refused without touching files. */
const lockedHere = new Set<string>();

/**
 * Lock contents (each with its token) this module instance failed to remove when releasing: only these, though
 * they name a running process (this one), are taken back. Worker threads each load their own instance of this
 * module, so a lock another thread of this process holds is not here, and is live.
 */
const leakedHere = new Set<string>();

/** The steps of a takeover of a stale lock, in order, at which `lockTestHooks.step` is called. */
export type TakeoverStep = 'stale' | 'guarded' | 'checked';

/**
 * For tests only: `step` is called synchronously at each step of a takeover, so that a test can make other writers
 * act at that moment. `stale`: the lock was read and found stale; `guarded`: the takeover guard is held;
 * `checked`: read again under the guard, the lock is still the stale one and is about to be replaced.
 */
export const lockTestHooks: { step: ((step: TakeoverStep, path: string) => void) | undefined } = { step: undefined };

/**
 * The identity of a process: its pid and, on Linux, its start time, so that a lock left by a killed process is
 * recognised even when the pid has since been reused by another process.
 */
function processIdentity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) may contain spaces and parentheses: count fields after its closing one.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return `${pid}:${fields[19] ?? ''}`;
  } catch {
    try {
      process.kill(pid, 0);
      return `${pid}:`;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM' ? `${pid}:` : undefined;
    }
  }
}

const ownIdentity = processIdentity(process.pid) ?? `${process.pid}:`;

/** `<pid>:<start time>`, optionally followed by `:<token>` (F-30). */
const lockContentPattern = /^(\d+):(\d*)(?::([0-9a-f]*))?$/;

/** True when `content` has the shape of a lock's content (F-30): `<pid>:<start time>[:<token>]`. */
export function wellFormedLock(content: string): boolean {
  return lockContentPattern.test(content.trim());
}

/** True when the lock content names a process that still runs (on Linux: with the start time it names). */
export function holderAlive(content: string): boolean {
  const match = lockContentPattern.exec(content.trim());
  if (match === null) return false;
  const pid = Number.parseInt(match[1] ?? '', 10);
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  return processIdentity(pid) === `${pid}:${match[2] ?? ''}`;
}

/** The process a lock names, for messages: `<pid>:<start time>` without the token. */
function holderOf(content: string): string {
  const match = lockContentPattern.exec(content.trim());
  return match === null ? JSON.stringify(content) : `${match[1] ?? ''}:${match[2] ?? ''}`;
}

/** True when a lock (or takeover guard) with this content must be respected: its holder runs and did not leak it here. */
function live(content: string): boolean {
  return holderAlive(content) && !leakedHere.has(content.trim());
}

/** A new content naming this process, with a token of its own (F-30). */
const newContent = (): string => `${ownIdentity}:${randomBytes(8).toString('hex')}`;

/**
 * A writer's exclusive hold on a log directory (F-30): a `LOCK` file created with O_EXCL that names the holding
 * process, with a token of this acquisition. A lock whose holder no longer runs (killed, crashed) is stale and
 * taken over (F-90); readers never lock.
 */
export class DirectoryLock {
  readonly #path: string;
  readonly #key: string;
  readonly #content: string;
  #held = true;

  private constructor(path: string, key: string, content: string) {
    this.#path = path;
    this.#key = key;
    this.#content = content;
  }

  /**
   * Takes the lock of `dir`. `name` is the lock file's name in it: a log that is a single file (a flumelog-offset
   * file) locks `<file>.lock` beside it.
   */
  static acquire(dir: string, name: string = lockFileName, fileMode = fileModeDefault): DirectoryLock {
    const key = join(realpathSync(dir), name);
    if (lockedHere.has(key)) {
      throw new SluiceError('LOCKED', `${dir} is already open for writing in this process`, { file: dir });
    }
    const path = join(dir, name);
    const content = newContent();
    // A lock that vanishes between two looks (its holder released it), or that another process replaced while
    // this one was taking it over, is looked at again; a few rounds, then it counts as taken.
    for (let round = 0; ; round++) {
      if (tryCreate(path, content, fileMode)) break;
      const found = readLock(path);
      if (found !== undefined) {
        if (live(found)) throw new SluiceError('LOCKED', `${dir} is locked by process ${holderOf(found)}`, { file: path });
        lockTestHooks.step?.('stale', path);
        if (replaceStale(path, path, found, content, fileMode, 0)) break;
      }
      if (round === 2) throw new SluiceError('LOCKED', `${dir} was locked by another process`, { file: path });
    }
    lockedHere.add(key);
    return new DirectoryLock(path, key, content);
  }

  release(): void {
    if (!this.#held) return;
    this.#held = false;
    lockedHere.delete(this.#key);
    try {
      if (readFileSync(this.#path, 'utf8').trim() === this.#content) unlinkSync(this.#path);
    } catch (error) {
      // Left behind (a failed unlink): this module takes it back on the next acquire, nobody else before we exit.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') leakedHere.add(this.#content);
    }
  }
}

/** The content of the lock (or guard) at `path`; undefined when there is none. */
function readLock(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** A temporary name for a lock's content beside `path` (F-90). */
const temporaryName = (path: string): string => `${path}.${process.pid}.${randomBytes(4).toString('hex')}.new`;

/**
 * Creates the lock with its content in one step (F-90): written whole under a name of its own, then hard-linked
 * into place, which fails when the lock exists. Created empty and then written, a lock could be read empty by
 * another process in between, taken for stale and taken over: two writers.
 */
function tryCreate(path: string, content: string, fileMode: number): boolean {
  const temporary = temporaryName(path);
  writeFileSync(temporary, content, { mode: fileMode, flag: 'wx' });
  try {
    linkSync(temporary, path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw error;
    // No hard links on this file system: an exclusive create, with the small window the link closes elsewhere.
    return createExclusive(path, content, fileMode);
  } finally {
    try {
      unlinkSync(temporary);
    } catch {
      // A `.new` name left behind is ignored (F-90): failing here would leave a lock nobody releases.
    }
  }
}

function createExclusive(path: string, content: string, fileMode: number): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', fileMode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** How many takeover guards left by takers that died may be taken over in turn before giving up. */
const guardDepthMax = 4;

/**
 * Replaces the stale lock `stale` at `path` with `content` (F-90). The takeovers of one stale lock are serialised
 * by a guard named after it, `<lock>.takeover.<16 hex digits of its SHA-256>`, created like a lock (with content
 * of its own) and itself taken over the same way when its taker died. Under the guard the lock is read again and,
 * still the stale one, replaced by renaming a complete temporary lock over it: a lock that may be live is never
 * moved or removed. False when the lock is no longer `stale` (the caller looks again); `LOCKED` when a running
 * process holds the guard.
 */
function replaceStale(lock: string, path: string, stale: string, content: string, fileMode: number, depth: number): boolean {
  const guard = `${lock}.takeover.${createHash('sha256').update(stale).digest('hex').slice(0, 16)}`;
  const guardContent = newContent();
  if (!claimGuard(lock, guard, guardContent, fileMode, depth)) return false;
  try {
    lockTestHooks.step?.('guarded', path);
    if (readLock(path) !== stale) return false;
    lockTestHooks.step?.('checked', path);
    const temporary = temporaryName(path);
    writeFileSync(temporary, content, { mode: fileMode, flag: 'wx' });
    try {
      renameSync(temporary, path);
    } catch (error) {
      try {
        unlinkSync(temporary);
      } catch {
        // A `.new` name left behind is ignored (F-90).
      }
      throw error;
    }
    return true;
  } finally {
    try {
      unlinkSync(guard);
    } catch {
      // A guard left behind names this process: stale once it exits, and only ever about a lock already replaced.
    }
  }
}

/** Takes the takeover guard `guard`: created, or taken over from a taker that died. False when it vanished meanwhile. */
function claimGuard(lock: string, guard: string, content: string, fileMode: number, depth: number): boolean {
  if (tryCreate(guard, content, fileMode)) return true;
  const holder = readLock(guard);
  if (holder === undefined) return false;
  if (live(holder) || depth >= guardDepthMax) {
    throw new SluiceError('LOCKED', `${lock} is being taken over by process ${holderOf(holder)}`, { file: lock });
  }
  return replaceStale(lock, guard, holder, content, fileMode, depth + 1);
}
