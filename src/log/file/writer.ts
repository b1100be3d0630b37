import { closeSync, fdatasync, ftruncateSync, writeSync } from 'node:fs';
import { SluiceError } from '../../errors.js';
import { batchBytesMax, bufferedBytesMax, writeBufferBytesFlush, writeBufferBytesInitial } from '../../limits.js';
import type { EncodedEntry } from '../abstract-log.js';
import { frameBytes, plainSecurity, positionOf, writeFrame, type HeaderSecurity } from './format.js';
import type { RecordSealer } from './security/sealer.js';
import { createSegment } from './segment-files.js';
import type { Segments } from './segments.js';

/**
 * What a resolved `append` promises (README "Durability"):
 * - `buffered`: the records are visible to this process (reads of records not yet written are served from
 *   memory); they are handed to the operating system at the end of the current event-loop turn, or as soon as
 *   `writeBufferBytesFlush` bytes are waiting. A crash of the process loses at most the appends of that turn.
 * - `os`: the records were handed to the operating system with `write()`: readable by every process, and they
 *   survive this process being killed; a power failure or kernel crash may lose what was not yet synced.
 * - `disk`: the records were written and `fdatasync`ed: they survive a power failure. Concurrent appends share
 *   one fsync (group commit). This process sees them only once synced; a reader in another process may read them
 *   as soon as they are written, before a sync that may yet fail (then they are truncated away).
 * In every mode `sync()` makes everything appended durable on demand, a clean `close()` syncs, and sealing a
 * segment syncs it (F-21).
 */
export type Durability = 'buffered' | 'os' | 'disk';

interface PendingBatch {
  readonly offsets: number[];
  /** The offset just past the batch's last record. */
  readonly end: number;
  readonly resolve: (offsets: number[]) => void;
  readonly reject: (error: Error) => void;
}

/** Encoded batches waiting to be written to one segment. */
interface Chunk {
  /** The base offset of the segment the bytes belong to. */
  readonly base: number;
  /** The offset of the first record in the chunk. */
  readonly start: number;
  /** The offset of the last record in the chunk. */
  last: number;
  buffer: Buffer;
  length: number;
  readonly batches: PendingBatch[];
}

export interface WriterOptions {
  readonly segments: Segments;
  readonly fd: number;
  readonly durability: Durability;
  readonly segmentBytesMax: number;
  /** Called with the offset of the last record and the end offset once records become visible. */
  readonly onVisible: (since: number, end: number) => void;
  /** Called after a segment was sealed and the next one created (where a retention policy applies). */
  readonly onSealed?: () => void;
  /** Encrypts and/or chains every frame (F-71, F-72); the header fields of new segments say how (F-70). */
  readonly sealer?: RecordSealer;
  readonly header?: HeaderSecurity;
  /**
   * The first append starts a new segment (when the current one holds records): the current segment was written
   * under another key than `header` names (F-75: one key per segment).
   */
  readonly rollFirst?: boolean;
}

/**
 * Turns appends into writes. Appends encode straight into an in-memory chunk (no copy per record) and a write
 * is issued at the end of the current microtask, so a loop of un-awaited appends becomes one `write()`, and a
 * batch is always written whole by one `write()` into one segment (F-13). One loop, never two at once, writes
 * chunks in order, rolls segments over and syncs; in `disk` mode appends that arrive during an fsync wait for
 * the next one (group commit). The first failed write or sync is sticky: the segment is truncated back to what
 * was acknowledged, everything pending is rejected, and every later append fails with the same error.
 */
export class SegmentWriter {
  readonly #segments: Segments;
  readonly #durability: Durability;
  readonly #segmentBytesMax: number;
  readonly #onVisible: (since: number, end: number) => void;
  readonly #onSealed: (() => void) | undefined;
  readonly #sealer: RecordSealer | undefined;
  readonly #header: HeaderSecurity;
  #rollFirst: boolean;
  /**
   * F-75: the first batch under a new current key goes to the active segment because the tail cut left it empty:
   * its header (which names the old key) is re-created under the new one before the batch is written.
   */
  #recreate = false;
  #fd: number;
  #base: number;
  /** The offset the next appended record gets. */
  #next: number;
  /** Acknowledged: visible to readers. */
  #ackedEnd: number;
  /** Written to the file (may be ahead of acknowledged in `disk` mode). */
  #writtenEnd: number;
  #writtenSince: number;
  #durableSince: number;
  #durableEnd: number;
  #chunks: Chunk[] = [];
  #unsynced: PendingBatch[] = [];
  /** `sync()` calls waiting until everything appended before them (up to `end`) is durable. */
  #syncRequests: Array<{ end: number; resolve: (since: number) => void; reject: (error: Error) => void }> = [];
  #idle: Array<() => void> = [];
  #spare: Buffer | undefined;
  #scheduled = false;
  /** Buffered mode: the backlog passed `bufferedBytesMax`; appends wait for their write until it drains. */
  #holding = false;
  #immediate: NodeJS.Immediate | undefined;
  #running = false;
  #failure: SluiceError | undefined;
  readonly #run = (): void => {
    void this.#loop();
  };

  constructor(options: WriterOptions, base: number, end: number, since: number) {
    this.#segments = options.segments;
    this.#durability = options.durability;
    this.#segmentBytesMax = options.segmentBytesMax;
    this.#onVisible = options.onVisible;
    this.#onSealed = options.onSealed;
    this.#sealer = options.sealer;
    this.#header = options.header ?? plainSecurity;
    this.#rollFirst = options.rollFirst ?? false;
    this.#fd = options.fd;
    this.#base = base;
    this.#next = end;
    this.#ackedEnd = end;
    this.#writtenEnd = end;
    this.#durableEnd = end;
    this.#writtenSince = since;
    this.#durableSince = since;
  }

  get failure(): SluiceError | undefined {
    return this.#failure;
  }

  /** Encodes the entries as one batch and resolves to their offsets once acknowledged. Throws `RangeError`. */
  append(entries: readonly EncodedEntry[]): Promise<number[]> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const start = this.#next;
    let chunk = this.#chunks[this.#chunks.length - 1] ?? this.#newChunk(this.#rollFirst && start > this.#base ? start : this.#base, start);
    const from = chunk.length;
    const offsets = this.#encode(chunk, entries, start);
    const bytes = chunk.length - from;
    const segmentBase = chunk.base;
    // F-13: a batch never straddles segments. Offsets do not depend on the segment, so a batch that does not fit
    // moves to a new segment as it is.
    if (start > segmentBase && start - segmentBase + bytes > this.#segmentBytesMax) {
      const moved = this.#newChunk(start, start);
      ensureCapacity(moved, bytes);
      chunk.buffer.copy(moved.buffer, 0, from, from + bytes);
      moved.length = bytes;
      chunk.length = from;
      if (chunk.length === 0 && chunk.batches.length === 0) this.#chunks.splice(this.#chunks.indexOf(chunk), 1);
      chunk = moved;
    }
    this.#next = start + bytes;
    if (this.#rollFirst && chunk.base === this.#base && start === this.#base) this.#recreate = true;
    this.#rollFirst = false;
    const last = offsets[offsets.length - 1] as number;
    chunk.last = last;
    if (this.#durability === 'buffered') return this.#appendBuffered(chunk, offsets, last);
    const end = this.#next;
    const pending = new Promise<number[]>((resolve, reject) => {
      (chunk).batches.push({ offsets, end, resolve, reject });
    });
    this.#schedule(false);
    return pending;
  }

  /**
   * Buffered mode: visible at once (one microtask later, in call order); written at the end of the turn. While
   * more than `bufferedBytesMax` wait to be written (a segment being sealed and synced, a slow disk), appends
   * are acknowledged only once written, as in `os` mode, so memory stays bounded; call order is kept.
   */
  #appendBuffered(chunk: Chunk, offsets: number[], last: number): Promise<number[]> {
    const end = this.#next;
    if (this.#holding || end - this.#writtenEnd > bufferedBytesMax) {
      this.#holding = true;
      const pending = new Promise<number[]>((resolve, reject) => chunk.batches.push({ offsets, end, resolve, reject }));
      this.#schedule(false);
      return pending;
    }
    this.#schedule(chunk.length < writeBufferBytesFlush);
    return Promise.resolve().then(() => {
      if (this.#failure !== undefined) throw this.#failure;
      this.#ackedEnd = Math.max(this.#ackedEnd, end);
      this.#onVisible(last, end);
      return offsets;
    });
  }

  /** Runs the write loop at the end of this microtask, or (`later`) at the end of this event-loop turn. */
  #schedule(later: boolean): void {
    if (this.#running) return;
    if (later) {
      if (this.#scheduled || this.#immediate !== undefined) return;
      this.#immediate = setImmediate(this.#run);
      return;
    }
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#run);
  }

  /** Bytes not yet written start here; `copy` serves reads of them (buffered mode). */
  get writtenEnd(): number {
    return this.#writtenEnd;
  }

  /** Copies bytes of records not yet written, from `offset` on, into `buffer`; returns how many it copied. */
  copy(offset: number, buffer: Buffer, at: number, length: number): number {
    let done = 0;
    for (const chunk of this.#chunks) {
      const from = offset + done;
      if (done === length || from < chunk.start) break;
      if (from >= chunk.start + chunk.length) continue;
      const start = from - chunk.start;
      const bytes = Math.min(length - done, chunk.length - start);
      chunk.buffer.copy(buffer, at + done, start, start + bytes);
      done += bytes;
    }
    return done;
  }

  #newChunk(base: number, start: number): Chunk {
    const buffer = this.#spare ?? Buffer.allocUnsafe(writeBufferBytesInitial);
    this.#spare = undefined;
    const chunk: Chunk = { base, start, last: -1, buffer, length: 0, batches: [] };
    this.#chunks.push(chunk);
    return chunk;
  }

  #encode(chunk: Chunk, entries: readonly EncodedEntry[], start: number): number[] {
    const from = chunk.length;
    const offsets = new Array<number>(entries.length);
    let offset = start;
    const sealer = this.#sealer;
    const securityBytes = sealer === undefined ? 0 : sealer.securityBytes;
    const link = sealer?.mark();
    try {
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i] as EncodedEntry;
        const keyBytes = entry.key === undefined ? 0 : entry.key.length;
        const valueBytesMax = typeof entry.value === 'string' ? entry.value.length * 3 : entry.value.length;
        ensureCapacity(chunk, frameBytes(keyBytes, valueBytesMax, securityBytes));
        const size = writeFrame(
          chunk.buffer,
          chunk.length,
          offset,
          entry.time,
          entry.key,
          entry.value,
          i < entries.length - 1,
          sealer,
        );
        if (size < 0) throw new RangeError(`record ${i} of the batch is larger than the largest value allowed`);
        offsets[i] = offset;
        offset += size;
        chunk.length += size;
        if (chunk.length - from > batchBytesMax) throw new RangeError(`a batch is at most ${batchBytesMax} bytes`);
      }
    } catch (error) {
      // A refused batch leaves no trace: neither bytes nor a link in the chain.
      if (link !== undefined) sealer?.rewind(link);
      chunk.length = from;
      if (chunk.length === 0 && chunk.batches.length === 0) this.#chunks.pop();
      throw error;
    }
    return offsets;
  }

  async #loop(): Promise<void> {
    this.#scheduled = false;
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#immediate = undefined;
    if (this.#running) return;
    this.#running = true;
    try {
      while (this.#failure === undefined) {
        const chunk = this.#chunks[0];
        if (chunk !== undefined) {
          if (chunk.base !== this.#base || this.#recreate) {
            this.#recreate = false;
            await this.#roll(chunk.base);
          }
          this.#write(chunk);
          continue;
        }
        if (this.#unsynced.length > 0 || this.#syncRequests.some((request) => request.end > this.#durableEnd)) {
          await this.#sync();
          continue;
        }
        this.#answerSyncRequests();
        break;
      }
    } catch (error) {
      this.#fail(error);
    } finally {
      this.#running = false;
      if (this.#chunks.length > 0 && this.#failure === undefined) {
        this.#scheduled = true;
        queueMicrotask(this.#run);
      } else {
        const idle = this.#idle;
        this.#idle = [];
        for (const resolve of idle) resolve();
      }
    }
  }

  #write(chunk: Chunk): void {
    let done = 0;
    const position = positionOf(this.#base, chunk.start);
    while (done < chunk.length) {
      done += writeSync(this.#fd, chunk.buffer, done, chunk.length - done, position + done);
    }
    this.#chunks.shift();
    if (chunk.buffer.length <= writeBufferBytesInitial * 4) this.#spare = chunk.buffer;
    if (chunk.last < 0) return;
    this.#writtenEnd = chunk.start + chunk.length;
    this.#writtenSince = chunk.last;
    if (this.#durability === 'os') this.#acknowledge(chunk.batches);
    else if (this.#durability === 'disk') for (const batch of chunk.batches) this.#unsynced.push(batch);
    else {
      // Buffered appends held back while the backlog was too large, acknowledged now that they are written; in a
      // microtask, so that appends made before them (acknowledged in microtasks too) resolve first.
      if (chunk.batches.length > 0) {
        const batches = chunk.batches;
        queueMicrotask(() => this.#acknowledge(batches));
      }
      if (this.#chunks.length === 0) this.#holding = false;
    }
  }

  /**
   * Makes the batches visible and resolves them. One write or sync settles many batches: subscribers are told of
   * each one (`Log.subscribe`: once per batch, with its last offset), not of the write's end only.
   */
  #acknowledge(batches: readonly PendingBatch[]): void {
    for (const batch of batches) {
      this.#ackedEnd = Math.max(this.#ackedEnd, batch.end);
      this.#onVisible(batch.offsets[batch.offsets.length - 1] as number, batch.end);
      batch.resolve(batch.offsets);
    }
  }

  async #sync(): Promise<void> {
    const since = this.#writtenSince;
    const end = this.#writtenEnd;
    const batches = this.#unsynced;
    this.#unsynced = [];
    try {
      await datasync(this.#fd);
    } catch (error) {
      // Not yet acknowledged: they fail with the sync, and #fail truncates them away.
      this.#unsynced = batches;
      throw error;
    }
    this.#durableSince = since;
    this.#durableEnd = end;
    if (batches.length > 0) this.#acknowledge(batches);
    this.#answerSyncRequests();
  }

  #answerSyncRequests(): void {
    if (this.#syncRequests.length === 0) return;
    const waiting = [];
    for (const request of this.#syncRequests) {
      if (request.end <= this.#durableEnd) request.resolve(this.#durableSince);
      else waiting.push(request);
    }
    this.#syncRequests = waiting;
  }

  /**
   * Seals the active segment (synced first, F-21) and continues in a new one starting at `base`; or, when `base` is
   * the active segment's and it holds no record, re-creates it under the writer's header (F-20, F-75).
   */
  async #roll(base: number): Promise<void> {
    const same = base === this.#base;
    if (this.#durableEnd < this.#writtenEnd) await this.#sync();
    let fd: number;
    try {
      fd = await createSegment(this.#segments.dir, base, this.#header, this.#segments.fileMode);
    } catch (cause) {
      const file = this.#segments.path(base);
      throw new SluiceError('WRITE_FAILED', `creating ${file} failed: ${(cause as Error).message}`, { cause, file });
    }
    const old = this.#fd;
    if (!same) this.#segments.bases.push(base);
    this.#segments.pin(base, fd);
    this.#fd = fd;
    this.#base = base;
    closeSync(old);
    if (!same) this.#onSealed?.();
  }

  /** Resolves to the last durable offset once everything appended so far is written and synced. */
  sync(): Promise<number> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#chunks.length === 0 && this.#durableEnd >= this.#writtenEnd && !this.#running) {
      return Promise.resolve(this.#durableSince);
    }
    const end = this.#next;
    const request = new Promise<number>((resolve, reject) => this.#syncRequests.push({ end, resolve, reject }));
    this.#schedule(false);
    return request;
  }

  /** Writes and syncs what is pending, then closes the active segment. Pending appends settle first. */
  async close(): Promise<void> {
    if (this.#failure === undefined) await this.sync().catch(() => undefined);
    while (this.#running || this.#scheduled || this.#immediate !== undefined) {
      await new Promise<void>((resolve) => this.#idle.push(resolve));
    }
    closeSync(this.#fd);
  }

  #fail(cause: unknown): void {
    const error =
      cause instanceof SluiceError
        ? cause
        : new SluiceError('WRITE_FAILED', `writing the log failed: ${(cause as Error).message}`, {
            cause,
            file: this.#segments.path(this.#base),
          });
    this.#failure = error;
    // Leave the log as it was before the failed write: drop whatever was written but not acknowledged (buffered
    // appends were acknowledged before their write: keep what was written whole).
    const keep = this.#durability === 'buffered' ? this.#writtenEnd : this.#ackedEnd;
    try {
      ftruncateSync(this.#fd, positionOf(this.#base, Math.max(keep, this.#base)));
    } catch {
      // The truncation failed too; the next open's tail check (F-40) removes a partial batch.
    }
    const pending = [...this.#unsynced, ...this.#chunks.flatMap((chunk) => chunk.batches)];
    this.#unsynced = [];
    this.#chunks = [];
    for (const batch of pending) batch.reject(error);
    const requests = this.#syncRequests;
    this.#syncRequests = [];
    for (const request of requests) request.reject(error);
  }
}

function ensureCapacity(chunk: Chunk, bytes: number): void {
  const needed = chunk.length + bytes;
  if (needed <= chunk.buffer.length) return;
  const grown = Buffer.allocUnsafe(Math.max(needed, chunk.buffer.length * 2));
  chunk.buffer.copy(grown, 0, 0, chunk.length);
  chunk.buffer = grown;
}

function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fdatasync(fd, (error) => (error ? reject(error) : resolve()));
  });
}
