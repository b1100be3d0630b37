import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { holderAlive, lockFileName, wellFormedLock } from '../log/file/directory-lock.js';

/** What a log directory's `LOCK` file (F-30) says, read without taking or changing it. */
export interface LockStatus {
  /** `free`: no lock file; `held`: its process runs; `stale`: its process is gone (the next writer takes over). */
  readonly state: 'free' | 'held' | 'stale';
  /** The process the lock file names (`<pid>:<start time>`, its token left out), or its whole content when malformed. */
  readonly holder: string | undefined;
  /** Set when the content is not `<pid>:<start time>[:<token>]` at all (a damaged lock file; also stale). */
  readonly malformed: boolean;
}

/**
 * Reads `<dir>/LOCK` and decides whether its holder still runs, as `DirectoryLock` does before it takes a lock
 * over: the pid must run and, on Linux, have the start time the file names (a reused pid does not count).
 * Never creates, modifies or removes a file.
 */
export function readLockStatus(dir: string): LockStatus {
  let content: string;
  try {
    content = readFileSync(join(dir, lockFileName), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'free', holder: undefined, malformed: false };
    throw error;
  }
  const trimmed = content.trim();
  if (!wellFormedLock(trimmed)) return { state: 'stale', holder: trimmed, malformed: true };
  const holder = trimmed.split(':').slice(0, 2).join(':');
  return { state: holderAlive(trimmed) ? 'held' : 'stale', holder, malformed: false };
}
