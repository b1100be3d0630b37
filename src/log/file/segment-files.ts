import { directoryModeOf } from '../../io/file-mode.js';
import { fileModeDefault } from '../../limits.js';
import { closeSync, constants, fsyncSync, openSync } from 'node:fs';
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SluiceError } from '../../errors.js';
import { lockFileName } from './directory-lock.js';
import { encodeHeader, segmentName, segmentNamePattern, type HeaderSecurity } from './format.js';

/** Files and folders other than segments that a log directory may hold (F-4, F-30, F-42, F-63). */
const knownNames = new Set([lockFileName, 'quarantine', 'views', 'DELETES']);
const temporarySuffix = '.tmp';

export interface DirectoryListing {
  /** Segment base offsets, ascending. */
  readonly bases: number[];
  /** Leftover temporary files of an interrupted segment creation. */
  readonly temporary: string[];
  /** Names that are not Sluice's. */
  readonly foreign: string[];
}

/** Lists a log directory; `undefined` when it does not exist. */
export async function listDirectory(dir: string): Promise<DirectoryListing | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR') throw new SluiceError('NOT_A_LOG', `${dir} is not a directory`, { file: dir });
    throw error;
  }
  const bases: number[] = [];
  const temporary: string[] = [];
  const foreign: string[] = [];
  for (const name of names) {
    const match = segmentNamePattern.exec(name);
    if (match !== null) {
      const base = Number(match[1]);
      if (!Number.isSafeInteger(base)) {
        throw new SluiceError('CORRUPT_LOG', `${name}: base offset out of range`, { file: join(dir, name) });
      }
      bases.push(base);
    } else if (name.endsWith(`.seg${temporarySuffix}`)) {
      temporary.push(name);
    } else if (!knownNames.has(name) && !name.startsWith(`${lockFileName}.`)) {
      foreign.push(name);
    }
  }
  bases.sort((a, b) => a - b);
  return { bases, temporary, foreign };
}

/** Creates the directory (owner-only unless `fileMode` widens it) if needed. */
export async function makeDirectory(dir: string, fileMode = fileModeDefault): Promise<void> {
  await mkdir(dir, { recursive: true, mode: directoryModeOf(fileMode) });
}

/** fsyncs a directory, so that a created, renamed or removed entry survives a power failure. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** As `syncDirectory`, synchronously: for the few steps of an open that must finish before it returns. */
export function syncDirectorySync(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates the segment that starts at `base` and returns a read-write descriptor for it (F-20): the header is
 * written to a temporary file, synced, and renamed into place, and the directory synced, so that a segment
 * file either does not exist or has a complete header.
 */
export async function createSegment(dir: string, base: number, security?: HeaderSecurity, fileMode = fileModeDefault): Promise<number> {
  const path = join(dir, segmentName(base));
  const temporary = `${path}${temporarySuffix}`;
  const handle = await open(temporary, 'w', fileMode);
  try {
    await handle.write(encodeHeader(base, Date.now(), security), 0, undefined, 0);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
  await syncDirectory(dir);
  // A plain descriptor, not a FileHandle: the writer closes it itself, and a FileHandle would be closed by GC.
  return openSync(path, 'r+');
}

/** Removes leftovers of interrupted segment creations. */
export async function removeTemporary(dir: string, names: readonly string[]): Promise<void> {
  for (const name of names) await unlink(join(dir, name));
}
