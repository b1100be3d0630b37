import { constants } from 'node:fs';
import { copyFile, link, lstat, open, readdir, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { SluiceError } from '../errors.js';
import { copyChunkBytes } from '../limits.js';
import { syncDirectory } from '../log/file/segment-files.js';

/**
 * File copies for `backup`, `restore` and `recover`. Every file written here is synced before it counts, and no
 * function follows a symbolic link: a source that is a link is refused, so a copy never reaches outside the
 * directories it was given.
 */

/** Called with the bytes copied since the last call. */
export type BytesListener = (bytes: number) => void;

function linkRefused(path: string): SluiceError {
  return new SluiceError('INVALID_INPUT', `${path} is a symbolic link: only files inside the directory are copied`, { file: path });
}

/** Refuses `path` unless it is a regular file (not a symbolic link); returns its size and link count. */
export async function regularFile(path: string): Promise<{ size: number; links: number }> {
  const info = await lstat(path);
  if (info.isSymbolicLink()) throw linkRefused(path);
  if (!info.isFile()) throw new SluiceError('INVALID_INPUT', `${path} is not a regular file`, { file: path });
  return { size: info.size, links: info.nlink };
}

/**
 * Copies bytes `[start, end)` of `source` into the new file `target` (which must not exist) and syncs it.
 * `signal` is looked at between chunks. The source is opened without following a symbolic link.
 */
export async function copyRange(
  source: string,
  target: string,
  start: number,
  end: number,
  options: { signal?: AbortSignal | undefined; onBytes?: BytesListener | undefined } = {},
): Promise<void> {
  const from = await open(source, constants.O_RDONLY | constants.O_NOFOLLOW).catch((error: unknown) => {
    throw (error as NodeJS.ErrnoException).code === 'ELOOP' ? linkRefused(source) : error;
  });
  try {
    const to = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(copyChunkBytes, end - start)));
      let position = start;
      while (position < end) {
        throwIfAborted(options.signal, target);
        const { bytesRead } = await from.read(buffer, 0, Math.min(buffer.length, end - position), position);
        if (bytesRead === 0) {
          throw new SluiceError('READ_FAILED', `${source} ended at ${position}, before ${end}`, { file: source, position });
        }
        let written = 0;
        while (written < bytesRead) {
          written += (await to.write(buffer, written, bytesRead - written, position - start + written)).bytesWritten;
        }
        position += bytesRead;
        options.onBytes?.(bytesRead);
      }
      await to.datasync();
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
}

/** Copies a whole file (copy-on-write where the file system can) into the new file `target`, synced. */
export async function copyWhole(source: string, target: string): Promise<number> {
  const { size } = await regularFile(source);
  await copyFile(source, target, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
  await syncFile(target);
  return size;
}

/**
 * Hard-links `source` as `target` when both are on one file system, and copies it otherwise (or when the file
 * system has no hard links). Returns how: a link shares the file, so it is only for files never written again.
 */
export async function linkOrCopy(source: string, target: string): Promise<'linked' | 'copied'> {
  await regularFile(source);
  try {
    await link(source, target);
    return 'linked';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw error;
  }
  await copyWhole(source, target);
  return 'copied';
}

export async function syncFile(path: string): Promise<void> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Syncs `dir` and every directory under it (not following links), so that every entry made there is durable. */
export async function syncTree(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    if ((await lstat(path)).isDirectory()) await syncTree(path);
  }
  await syncDirectory(dir);
}

/**
 * Moves the finished directory `temporary` to `destination`, which must still not exist (rename would replace an
 * empty directory silently), and syncs the parent so the new name survives a crash.
 */
export async function renameIntoPlace(temporary: string, destination: string): Promise<void> {
  await refuseExisting(destination);
  await rename(temporary, destination);
  await syncDirectory(dirname(destination));
}

/** `INVALID_INPUT` when `path` exists (as anything, a dangling link included): operations never overwrite. */
export async function refuseExisting(path: string): Promise<void> {
  try {
    await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  throw new SluiceError('INVALID_INPUT', `${path} exists: choose a new path (it is never overwritten)`, { file: path });
}

/** A name for the temporary directory that becomes `destination`: beside it, so the final rename is atomic. */
export function temporaryBeside(destination: string, operation: string): string {
  const random = Math.floor(Math.random() * 0x1_0000_0000).toString(16).padStart(8, '0');
  return join(dirname(destination), `.${basename(destination)}.${operation}-${process.pid}-${random}.tmp`);
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted === true) throw new SluiceError('ABORTED', `copying ${what} was aborted`, { cause: signal.reason });
}
