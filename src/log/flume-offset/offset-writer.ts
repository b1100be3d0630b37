import { fdatasync, ftruncateSync } from 'node:fs';
import { writeFully } from '../../io/positioned.js';
import { SluiceError } from '../../errors.js';
import { batchBytesMax, valueBytesMax, writeBufferBytesInitial } from '../../limits.js';
import type { EncodedEntry } from '../abstract-log.js';
import { fileBytesLimit, isZeroed, overheadBytes, writeFrame, type OffsetWidth } from './format.js';
import { needsWriteIntent, recordWriteIntent } from './write-intent.js';

/** What a resolved append promises for a flumelog-offset file: `os` (written) or `disk` (written and fdatasynced). */
export type OffsetDurability = 'os' | 'disk';

interface PendingBatch {
  readonly offsets: number[];
  /** The file position just past the batch's last record. */
  readonly end: number;
  readonly resolve: (offsets: number[]) => void;
  readonly reject: (error: Error) => void;
}

export interface OffsetWriterHost {
  readonly fd: number;
  readonly file: string;
  readonly width: OffsetWidth;
  readonly durability: OffsetDurability;
  /** Records up to `since`, ending at `end`, are written (and synced, with `disk`): make them visible. */
  onVisible(since: number, end: number): void;
  /** The open write intent file (O-10), opened on first use. */
  intentFd(): number;
}

/**
 * Appends frames to the end of a flumelog-offset file. Appends made in one event-loop turn are framed into one
 * buffer and written with one `write()` at the next microtask. A kill can stop a write between pages, and the
 * format has no batch marker: a write of several records that crosses a page boundary is announced first in the
 * write intent file (O-10), so that the next open cuts a write left partial back to its start (a power failure in
 * the middle of a batch can still keep its first records: see README "Durability"). With `disk`, appends resolve after an `fdatasync` that every write gathered while
 * the previous one ran shares. A failed write truncates the file back to what was acknowledged and is sticky.
 */
export class OffsetWriter {
  readonly #host: OffsetWriterHost;
  #chunk = Buffer.allocUnsafe(writeBufferBytesInitial);
  #chunkBytes = 0;
  /** Records framed in the chunk. */
  #chunkRecords = 0;
  #batches: PendingBatch[] = [];
  /** The file position after everything framed (written or not). */
  #next: number;
  /** The file position after everything written. */
  #written: number;
  #lastWritten: number;
  #flushQueued = false;
  #failure: SluiceError | undefined;
  /** Written, waiting for the sync in flight (or the next one). */
  #unsynced: PendingBatch[][] = [];
  #syncing: Promise<void> | undefined;

  constructor(host: OffsetWriterHost, end: number, since: number) {
    this.#host = host;
    this.#next = end;
    this.#written = end;
    this.#lastWritten = since;
  }

  /** Frames `entries` as one batch; resolves to their offsets once written (and synced, with `disk`). */
  append(entries: readonly EncodedEntry[]): Promise<number[]> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const width = this.#host.width;
    const sizes = new Array<number>(entries.length);
    let batchBytes = 0;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as EncodedEntry;
      if (entry.key !== undefined) throw new TypeError('a flumelog-offset file stores no record keys');
      const value = entry.value;
      const bytes = typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.length;
      if (bytes > valueBytesMax) throw new RangeError(`record ${i} of the batch is larger than the largest value allowed`);
      // The format marks a deleted record by a payload of zeros (O-6): such a value would read back as deleted.
      if (bytes === 0 || (typeof value === 'string' ? isNulString(value) : isZeroed(Buffer.from(value.buffer, value.byteOffset, bytes), 0, bytes))) {
        throw new RangeError(`record ${i} of the batch is empty or all zero bytes, which this format reads as deleted`);
      }
      sizes[i] = bytes;
      batchBytes += bytes + overheadBytes(width);
    }
    if (batchBytes > batchBytesMax) throw new RangeError(`a batch is at most ${batchBytesMax} bytes`);
    if (this.#next + batchBytes > fileBytesLimit(width)) {
      return Promise.reject(
        new SluiceError(
          'LOG_FULL',
          `${this.#host.file} cannot grow past ${fileBytesLimit(width)} bytes with ${width}-byte offsets; nothing was written`,
          { file: this.#host.file, position: this.#next },
        ),
      );
    }
    this.#reserve(batchBytes);
    const offsets = new Array<number>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      offsets[i] = this.#next;
      const after = writeFrame(this.#chunk, this.#chunkBytes, this.#next, (entries[i] as EncodedEntry).value, sizes[i] as number, width);
      this.#next += after - this.#chunkBytes;
      this.#chunkBytes = after;
    }
    this.#chunkRecords += entries.length;
    const end = this.#next;
    const promise = new Promise<number[]>((resolve, reject) => this.#batches.push({ offsets, end, resolve, reject }));
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => this.flush());
    }
    return promise;
  }

  #reserve(bytes: number): void {
    if (this.#chunkBytes + bytes <= this.#chunk.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.#chunk.length * 2, this.#chunkBytes + bytes));
    this.#chunk.copy(grown, 0, 0, this.#chunkBytes);
    this.#chunk = grown;
  }

  /** Writes what is framed. Synchronous: the appends of a turn cost one system call. */
  flush(): void {
    this.#flushQueued = false;
    const batches = this.#batches;
    if (batches.length === 0) return;
    this.#batches = [];
    const bytes = this.#chunkBytes;
    const records = this.#chunkRecords;
    this.#chunkBytes = 0;
    this.#chunkRecords = 0;
    const start = this.#written;
    try {
      if (needsWriteIntent(records, start, start + bytes)) recordWriteIntent(this.#host.intentFd(), { start, end: start + bytes });
      writeFully(this.#host.fd, this.#chunk, 0, bytes, start);
    } catch (error) {
      this.#fail(error, batches);
      return;
    }
    this.#written += bytes;
    const last = batches[batches.length - 1] as PendingBatch;
    const since = last.offsets[last.offsets.length - 1] as number;
    this.#lastWritten = since;
    if (this.#host.durability === 'os') {
      this.#acknowledge(batches);
      return;
    }
    this.#unsynced.push(batches);
    this.#syncing ??= this.#syncLoop();
  }

  /** Syncs until nothing written waits for a sync; each round covers every write made before it started. */
  async #syncLoop(): Promise<void> {
    try {
      while (this.#unsynced.length > 0) {
        const group = this.#unsynced;
        this.#unsynced = [];
        try {
          await datasync(this.#host.fd);
        } catch (error) {
          this.#fail(error, group.flat());
          for (const batch of this.#unsynced.flat()) batch.reject(this.#failure as Error);
          this.#unsynced = [];
          return;
        }
        for (const batches of group) this.#acknowledge(batches);
      }
    } finally {
      this.#syncing = undefined;
    }
  }

  /**
   * Makes the batches visible and resolves them. One write or sync settles many batches: subscribers are told of
   * each one (`Log.subscribe`: once per batch, with its last offset), not of the write's end only.
   */
  #acknowledge(batches: readonly PendingBatch[]): void {
    for (const batch of batches) {
      this.#host.onVisible(batch.offsets[batch.offsets.length - 1] as number, batch.end);
      batch.resolve(batch.offsets);
    }
  }

  /**
   * A failed write or sync: the file goes back to what was acknowledged (so a later open finds exactly the
   * acknowledged records) and every append from now on fails with the same error.
   */
  #fail(cause: unknown, batches: readonly PendingBatch[]): void {
    const acknowledged = batches.length > 0 ? (batches[0] as PendingBatch).offsets[0] as number : this.#written;
    this.#failure ??= new SluiceError(
      'WRITE_FAILED',
      `${this.#host.file}: a write failed (${(cause as Error).message ?? String(cause)}); reopen the log to append again`,
      { cause, file: this.#host.file, position: acknowledged },
    );
    try {
      ftruncateSync(this.#host.fd, acknowledged);
    } catch {
      // The open after a restart cuts what is left of the failed write (a torn tail).
    }
    this.#written = acknowledged;
    this.#next = acknowledged;
    for (const batch of batches) batch.reject(this.#failure);
    for (const batch of this.#batches) batch.reject(this.#failure);
    this.#batches = [];
    this.#chunkBytes = 0;
    this.#chunkRecords = 0;
  }

  /** Flushes, then makes everything written durable; resolves to the last durable record's offset. */
  async sync(): Promise<number> {
    this.flush();
    if (this.#failure !== undefined) throw this.#failure;
    while (this.#syncing !== undefined) await this.#syncing;
    const since = this.#lastWritten;
    try {
      await datasync(this.#host.fd);
    } catch (error) {
      throw new SluiceError('WRITE_FAILED', `${this.#host.file}: fdatasync failed`, { cause: error, file: this.#host.file });
    }
    return since;
  }

  /** Settles every pending append and syncs. */
  async close(): Promise<void> {
    this.flush();
    while (this.#syncing !== undefined) await this.#syncing;
    if (this.#failure === undefined) await datasync(this.#host.fd);
  }

  get failure(): SluiceError | undefined {
    return this.#failure;
  }
}

function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve())));
}

/** Whether every character is U+0000: the one character UTF-8 encodes as a zero byte, so the payload would be zeros. */
function isNulString(value: string): boolean {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) !== 0) return false;
  return true;
}
