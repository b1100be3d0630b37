import { directoryModeOf } from '../../io/file-mode.js';
import { fileModeDefault } from '../../limits.js';
import { closeSync, constants, fsyncSync, openSync, type Dirent } from 'node:fs';
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SluiceError } from '../../errors.js';
import { lockFileName } from './directory-lock.js';
import { encodeHeader, segmentName, segmentNamePattern, type HeaderSecurity } from './format.js';

/** F-63: the journal of deletions in progress, in the log directory (written and read by deletes.ts). */
export const deletesFileName = 'DELETES';

/** Files and folders other than segments that a log directory may hold (F-4, F-30, F-42, F-63). */
const knownNames = new Set([lockFileName, 'quarantine', 'views', deletesFileName]);
const temporarySuffix = '.tmp';

export interface DirectoryListing {
  /** Segment base offsets, ascending. */
  readonly bases: number[];
  /** Leftover temporary files of an interrupted segment creation. */
  readonly temporary: string[];
  /** Names that are not Sluice's. */
  readonly foreign: string[];
  /** Segments and the deletes journal that are symbolic links: a writer refuses the log (see `refuseLinks`). */
  readonly links: string[];
}

/**
 * `O_NOFOLLOW` for every open of a segment or the deletes journal by the writer: a symbolic link planted in its
 * place fails the open (`ELOOP`) rather than have the writer modify a file outside the log.
 */
export const noFollow = constants.O_NOFOLLOW ?? 0;

/** The error for a file of the log that is a symbolic link, which a writer never writes through. */
export function linkRefused(path: string, cause?: unknown): SluiceError {
  return new SluiceError('INVALID_INPUT', `${path} is a symbolic link: a writer never writes through one`, {
    file: path,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Throws `INVALID_INPUT` when the listing holds a segment or journal that is a symbolic link. */
export function refuseLinks(dir: string, listing: DirectoryListing): void {
  const name = listing.links[0];
  if (name !== undefined) throw linkRefused(join(dir, name));
}

/** `openSync` without following a symbolic link at `path`: one there fails with `INVALID_INPUT`. */
export function openNoFollow(path: string, flags: number, mode?: number): number {
  try {
    return openSync(path, flags | noFollow, mode);
  } catch (error) {
    throw refusedIfLink(error, path);
  }
}

/** What an open with `noFollow` of `path` that failed with `error` throws: `ELOOP` (a link there) is refused. */
function refusedIfLink(error: unknown, path: string): unknown {
  return (error as NodeJS.ErrnoException).code === 'ELOOP' ? linkRefused(path, error) : error;
}

/** Lists a log directory; `undefined` when it does not exist. */
export async function listDirectory(dir: string): Promise<DirectoryListing | undefined> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR') throw new SluiceError('NOT_A_LOG', `${dir} is not a directory`, { file: dir });
    throw error;
  }
  const bases: number[] = [];
  const temporary: string[] = [];
  const foreign: string[] = [];
  const links: string[] = [];
  for (const entry of entries) {
    const name = entry.name;
    if (entry.isSymbolicLink() && (name === deletesFileName || segmentNamePattern.test(name))) links.push(name);
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
  return { bases, temporary, foreign, links };
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
  const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | noFollow, fileMode).catch((error: unknown) => {
    throw refusedIfLink(error, temporary);
  });
  try {
    await handle.write(encodeHeader(base, Date.now(), security), 0, undefined, 0);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
  await syncDirectory(dir);
  // A plain descriptor, not a FileHandle: the writer closes it itself, and a FileHandle would be closed by GC.
  return openNoFollow(path, constants.O_RDWR);
}

/** Removes leftovers of interrupted segment creations. */
export async function removeTemporary(dir: string, names: readonly string[]): Promise<void> {
  for (const name of names) await unlink(join(dir, name));
}
