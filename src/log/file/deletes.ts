import {
  closeSync,
  constants,
  ftruncateSync,
  copyFileSync,
  fdatasyncSync,
  fstatSync,
  readFileSync,
  statSync,
  renameSync,
  rmSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { crc32c } from '../../checksum/crc32c.js';
import { readFully, writeFully } from '../../io/positioned.js';
import { SluiceError } from '../../errors.js';
import { deletesJournalBytesMax, fileModeDefault } from '../../limits.js';
import { eraseFrame, frameBytesMax, frameBytesMin, positionOf, readU64 } from './format.js';
import type { Segments } from './segments.js';
import { deletesFileName, openNoFollow, syncDirectory, syncDirectorySync } from './segment-files.js';

const entryBytes = 16;

/**
 * Records the offsets about to be deleted (F-63), durably, before any frame is rewritten: a crash in the middle of
 * the rewrites is finished by the next open, so a deletion that was acknowledged is never half done, and a torn
 * rewrite is never mistaken for damage.
 */
export async function journalDeletes(dir: string, offsets: readonly number[], fileMode = fileModeDefault): Promise<void> {
  const entries = Buffer.alloc(offsets.length * entryBytes);
  offsets.forEach((offset, i) => {
    const at = i * entryBytes;
    entries.writeUInt32LE(offset >>> 0, at);
    entries.writeUInt32LE(Math.floor(offset / 0x1_0000_0000), at + 4);
    entries.writeUInt32LE(crc32c(entries, at, at + 8), at + 8);
  });
  // Not opened for appending ('a' ignores positions): a write that failed half-way is cut back, so the next
  // entries stay aligned on 16 bytes.
  const fd = openNoFollow(join(dir, deletesFileName), constants.O_WRONLY | constants.O_CREAT, fileMode);
  try {
    const start = fstatSync(fd).size - (fstatSync(fd).size % entryBytes);
    try {
      writeFully(fd, entries, 0, entries.length, start);
      fdatasyncSync(fd);
    } catch (error) {
      ftruncateSync(fd, start);
      throw error;
    }
  } finally {
    closeSync(fd);
  }
  await syncDirectory(dir);
}

/**
 * For readers that leave the journal to the writer and only take it as a hint: its offsets, or none when it cannot
 * be read (too large, unreadable), as when there is none.
 */
export function readJournalOrNone(dir: string): number[] {
  try {
    return readJournal(dir);
  } catch {
    return [];
  }
}

/** The offsets of the journal's whole, intact entries (a torn last entry is a deletion never acknowledged). */
export function readJournal(dir: string): number[] {
  const path = join(dir, deletesFileName);
  let bytes: Buffer;
  try {
    // F-97: a journal's size is read from disk like any length: past the bound it is damage, never an allocation.
    const size = statSync(path).size;
    if (size > deletesJournalBytesMax) {
      throw new SluiceError('CORRUPT_LOG', `${path} holds ${size} bytes, more than a journal can (${deletesJournalBytesMax})`, {
        file: path,
        position: deletesJournalBytesMax,
      });
    }
    bytes = readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const offsets: number[] = [];
  for (let at = 0; at + entryBytes <= bytes.length; at += entryBytes) {
    if (bytes.readUInt32LE(at + 8) !== crc32c(bytes, at, at + 8)) continue;
    offsets.push(readU64(bytes, at));
  }
  return offsets;
}

/** Removes the journal once every rewrite it announced is durable. */
export function clearJournal(dir: string): void {
  try {
    unlinkSync(join(dir, deletesFileName));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return;
  }
  syncDirectorySync(dir);
}

/**
 * Rewrites frames as deleted in place (F-62), one positioned write each, then syncs the segments touched.
 * A frame is rewritten only when its framing is that of the record at its offset (lengths at both ends, the
 * offset field); its checksum is not required, so a rewrite a crash tore is redone. A segment file with other
 * hard links (a backup made by linking) is copied and the copy renamed over it instead, so the deletion does
 * not reach into the backup. Returns the offsets whose frames were not found (a journal entry for a record a
 * crash cut away, or trimmed since): nothing is done there.
 */
export function eraseFrames(segments: Segments, offsets: readonly number[]): number[] {
  const byBase = new Map<number, number[]>();
  const missing: number[] = [];
  for (const offset of offsets) {
    const base = segments.bases[segments.indexOf(offset)];
    if (base === undefined || offset < segments.first || offset >= segments.end) missing.push(offset);
    else {
      const list = byBase.get(base);
      if (list === undefined) byBase.set(base, [offset]);
      else list.push(offset);
    }
  }
  let renamed = false;
  try {
    for (const [base, list] of byBase) {
      const path = segments.path(base);
      let fd = openNoFollow(path, constants.O_RDWR);
      let copy: string | undefined;
      try {
        // The segment being written is never linked by a backup (its head is copied), and the writer's
        // descriptors must keep naming the log's file: it is always rewritten in place.
        const active = base === segments.bases[segments.bases.length - 1];
        if (!active && fstatSync(fd).nlink > 1) {
          closeSync(fd);
          fd = -1;
          copy = `${path}.tmp`;
          // A leftover (or a link planted there) is removed first: the copy is a new file, never written through.
          rmSync(copy, { force: true });
          copyFileSync(path, copy, constants.COPYFILE_EXCL);
          fd = openNoFollow(copy, constants.O_RDWR);
        }
        for (const offset of list) if (!eraseAt(fd, positionOf(base, offset), offset)) missing.push(offset);
        fdatasyncSync(fd);
      } finally {
        if (fd >= 0) closeSync(fd);
      }
      if (copy !== undefined) {
        renameSync(copy, path);
        // Cached descriptors still read the linked file: forget them.
        segments.forget(base);
        renamed = true;
      }
    }
    if (renamed) syncDirectorySync(segments.dir);
  } catch (cause) {
    throw new SluiceError('WRITE_FAILED', `deleting records in ${segments.dir} failed: ${(cause as Error).message}`, {
      cause,
      file: segments.dir,
    });
  }
  return missing;
}

function eraseAt(fd: number, position: number, offset: number): boolean {
  const head = Buffer.alloc(4);
  if (readFully(fd, head, 0, 4, position) < 4) return false;
  const size = head.readUInt32LE(0);
  if (size < frameBytesMin || size > frameBytesMax) return false;
  const frame = Buffer.alloc(size);
  if (readFully(fd, frame, 0, size, position) < size) return false;
  if (frame.readUInt32LE(size - 4) !== size || readU64(frame, 8) !== offset) return false;
  eraseFrame(frame, 0, size);
  writeFully(fd, frame, 0, size, position);
  return true;
}
