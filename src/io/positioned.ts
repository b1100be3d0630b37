import { readSync, writeSync } from 'node:fs';

/**
 * Positioned reads and writes that finish the job: the system calls may do less than asked (a signal, a large
 * buffer), and every caller here needs all of it.
 */

/** Writes `buffer[from, from + length)` at file `position`, looping until all of it is written. */
export function writeFully(fd: number, buffer: Uint8Array, from: number, length: number, position: number): void {
  let done = 0;
  while (done < length) done += writeSync(fd, buffer, from + done, length - done, position + done);
}

/**
 * Reads up to `length` bytes at file `position` into `buffer` from `from`, looping until they are read or the
 * file ends; returns how many were read.
 */
export function readFully(fd: number, buffer: Uint8Array, from: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const read = readSync(fd, buffer, from + done, length - done, position + done);
    if (read === 0) break;
    done += read;
  }
  return done;
}
