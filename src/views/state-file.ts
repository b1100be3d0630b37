import { constants } from 'node:fs';
import { lstat, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { fileModeDefault, stateFileBytesMax } from '../limits.js';
import { crc32c } from '../checksum/crc32c.js';
import { syncDirectory } from '../log/file/segment-files.js';
import { dirname } from 'node:path';

/** F-50: "SLUICEVS", the first bytes of a view state file. */
const magic = Buffer.from('SLUICEVS', 'latin1');
/** F-50: the state file format this code writes and reads. */
const stateFormatVersion = 1;
const headerBytes = 16;

/** A view's state as persisted: the view's version and `since` travel with the state they describe. */
export interface StoredState<S> {
  readonly version: number;
  readonly since: number;
  readonly state: S;
}

/**
 * Reads a state file (FORMAT.md F-50, F-51): `undefined` when there is none, a string saying why when it is
 * damaged or from an unknown format (the caller rebuilds), the stored state otherwise. Anything at `path` other
 * than a regular file (a directory, a FIFO, a link) is damage, and is neither followed nor waited on; nothing is
 * modified.
 */
export async function readState<S>(path: string): Promise<StoredState<S> | string | undefined> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO put in its place must not block the open (it is then refused as not a regular file);
    // O_NOFOLLOW: nor is a link followed to whatever it names.
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') return `${path} is a symbolic link, not a view state file`;
    throw error;
  }
  let bytes: Buffer;
  try {
    const info = await handle.stat();
    if (!info.isFile()) return `${path} is not a regular file`;
    // F-96: the size is checked before anything is allocated for it.
    if (info.size > stateFileBytesMax) return `${path} holds ${info.size} bytes, more than a state file may (${stateFileBytesMax})`;
    bytes = Buffer.alloc(info.size);
    let filled = 0;
    while (filled < bytes.length) {
      const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    // A file cut while it was read is judged by what it held: its checksum no longer matches.
    bytes = bytes.subarray(0, filled);
  } finally {
    await handle.close();
  }
  if (bytes.length < headerBytes || !bytes.subarray(0, 8).equals(magic)) return `${path} is not a view state file`;
  const format = bytes.readUInt32LE(8);
  if (format !== stateFormatVersion) return `${path} has state format ${format}, this code reads ${stateFormatVersion}`;
  if (bytes.readUInt32LE(12) !== crc32c(bytes, headerBytes, bytes.length)) return `${path}: the checksum does not match`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8', headerBytes));
  } catch {
    return `${path}: the body is not JSON`;
  }
  const stored = parsed as Partial<StoredState<S>> | null;
  if (
    typeof stored !== 'object' ||
    stored === null ||
    typeof stored.version !== 'number' ||
    typeof stored.since !== 'number' ||
    !Number.isSafeInteger(stored.since) ||
    stored.since < -1 ||
    !('state' in stored)
  ) {
    return `${path}: the body lacks version, since or state`;
  }
  return stored as StoredState<S>;
}

/**
 * A view's `open` from its state file: the stored state when there is one of `version` (and `valid` accepts it),
 * else `undefined` after telling `report` why it will rebuild (nothing stored is no news: nothing is said). What
 * stands at `path` and is not a regular file is removed, so that the next checkpoint can put the file there.
 */
export async function restoreState<S>(
  path: string,
  version: number,
  report: (message: string) => void,
  valid: (state: unknown) => state is S = (state: unknown): state is S => state !== undefined,
): Promise<StoredState<S> | undefined> {
  const stored = await readState<S>(path);
  if (stored === undefined) return undefined;
  if (typeof stored === 'string') {
    report(`${stored}: rebuilding`);
    await removeUnlessFile(path);
    return undefined;
  }
  if (stored.version !== version) {
    report(`version ${stored.version} on disk, ${version} in code: rebuilding`);
    return undefined;
  }
  if (!valid(stored.state)) {
    report(`${path}: the stored state is not what this view keeps: rebuilding`);
    return undefined;
  }
  return stored;
}

/**
 * Removes what stands at `path` unless it is a regular file (a directory with what it holds; a link, not what it
 * names): a checkpoint replaces a damaged file by renaming over it, which it cannot do over a directory.
 */
async function removeUnlessFile(path: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (info === undefined || info.isFile()) return;
  await rm(path, { recursive: true, force: true });
  await syncDirectory(dirname(path));
}

/** Writes a state file atomically (F-51): a temporary file, synced, renamed over the old one, directory synced. */
export async function writeState<S>(path: string, stored: StoredState<S>, fileMode = fileModeDefault): Promise<void> {
  const body = Buffer.from(JSON.stringify(stored), 'utf8');
  const header = Buffer.alloc(headerBytes);
  magic.copy(header, 0);
  header.writeUInt32LE(stateFormatVersion, 8);
  header.writeUInt32LE(crc32c(body, 0, body.length), 12);
  const temporary = `${path}.tmp`;
  // Whatever stands there goes first, so the file is made anew: a FIFO left there would block the open for
  // writing, a link would be followed.
  await rm(temporary, { recursive: true, force: true });
  const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, fileMode);
  try {
    await handle.writev([header, body]);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
  await syncDirectory(dirname(path));
}
