import { randomBytes } from 'node:crypto';
import { fileModeDefault } from '../../limits.js';
import { closeSync, linkSync, openSync, readFileSync, realpathSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SluiceError } from '../../errors.js';

/** The lock file's name inside a log directory (F-30). */
export const lockFileName = 'LOCK';

/** Directories locked by this process: a second writer in the same process is refused without touching files. */
const lockedHere = new Set<string>();

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

/** True when the lock content names a process that still runs (on Linux: with the start time it names). */
export function holderAlive(content: string): boolean {
  const pid = Number.parseInt(content.split(':')[0] ?? '', 10);
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  return processIdentity(pid) === content.trim();
}

/**
 * A writer's exclusive hold on a log directory (F-30): a `LOCK` file created with O_EXCL that names the holding
 * process. A lock whose holder no longer runs (killed, crashed) is stale and taken over; readers never lock.
 */
export class DirectoryLock {
  readonly #path: string;
  readonly #key: string;
  #held = true;

  private constructor(path: string, key: string) {
    this.#path = path;
    this.#key = key;
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
    if (!tryCreate(path, fileMode)) {
      let content = '';
      try {
        content = readFileSync(path, 'utf8');
      } catch {
        // Vanished in between: the holder just released it.
      }
      // A lock naming this process that this process does not hold was leaked by a failed open or release.
      if (holderAlive(content) && content.trim() !== ownIdentity) {
        throw new SluiceError('LOCKED', `${dir} is locked by process ${content.trim()}`, { file: path });
      }
      takeOverStale(path, content);
      if (!tryCreate(path, fileMode)) throw new SluiceError('LOCKED', `${dir} was locked by another process`, { file: path });
    }
    lockedHere.add(key);
    return new DirectoryLock(path, key);
  }

  release(): void {
    if (!this.#held) return;
    this.#held = false;
    lockedHere.delete(this.#key);
    try {
      if (readFileSync(this.#path, 'utf8').trim() === ownIdentity) unlinkSync(this.#path);
    } catch {
      // Already gone: nothing to release.
    }
  }
}

/**
 * Creates the lock with its content in one step (F-90): written whole under a name of its own, then hard-linked
 * into place, which fails when the lock exists. Created empty and then written, a lock could be read empty by
 * another process in between, taken for stale and taken over: two writers.
 */
function tryCreate(path: string, fileMode: number): boolean {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.new`;
  writeFileSync(temporary, ownIdentity, { mode: fileMode, flag: 'wx' });
  try {
    linkSync(temporary, path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw error;
    // No hard links on this file system: an exclusive create, with the small window the link closes elsewhere.
    return createExclusive(path, fileMode);
  } finally {
    try {
      unlinkSync(temporary);
    } catch {
      // A `.new` name left behind is ignored (F-90): failing here would leave a lock nobody releases.
    }
  }
}

function createExclusive(path: string, fileMode: number): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', fileMode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writeSync(fd, ownIdentity);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Moves a stale lock aside. Two processes may both find it stale: the rename succeeds for one of them; if what
 * was moved turns out to be a fresh lock (another process won in between), it is linked back and we give up.
 */
function takeOverStale(path: string, staleContent: string): void {
  const aside = `${path}.${process.pid}.stale`;
  try {
    renameSync(path, aside);
  } catch {
    return;
  }
  const moved = readFileSync(aside, 'utf8');
  if (moved !== staleContent && holderAlive(moved)) {
    try {
      linkSync(aside, path);
    } catch {
      // Someone created a lock meanwhile; it wins either way.
    }
    unlinkSync(aside);
    throw new SluiceError('LOCKED', `${path} was taken by another process`, { file: path });
  }
  unlinkSync(aside);
}
