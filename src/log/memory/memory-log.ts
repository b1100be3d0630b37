import { codecs, type Codec, type JsonValue } from '../../codec/codec.js';
import { SluiceError } from '../../errors.js';
import { batchBytesMax, valueBytesMax } from '../../limits.js';
import { AbstractLog, checkOffsets, type EncodedEntry, type RecordCursor } from '../abstract-log.js';
import { frameBytes } from '../file/format.js';
import type { LogRecord, LogSupports } from '../log.js';
import type { ScanRange } from '../range.js';
import { checkOptionNames } from '../open-checks.js';

export interface MemoryLogOptions<T> {
  readonly codec?: Codec<T>;
  readonly now?: () => number;
}

interface StoredRecord {
  readonly offset: number;
  /** Emptied when the record is deleted. */
  bytes: Buffer;
  deleted: boolean;
  readonly time: number;
  readonly key: Uint8Array | undefined;
}

const supports: LogSupports = { keys: true, times: true, persistent: false, readonly: false, deletes: true };

/**
 * A log held in memory, with exactly the behaviour of the file log: the same offsets (each record takes the
 * size its frame would take on disk), the same validation, errors, visibility and stream semantics. Values are
 * stored encoded, so a caller mutating an object after appending it changes nothing. Nothing survives `close()`.
 */
export class MemoryLog<T = JsonValue> extends AbstractLog<T> {
  readonly supports = supports;
  readonly #records: StoredRecord[] = [];
  /** Records at index < visible are readable (their append resolved). */
  #visible = 0;
  #next = 0;

  constructor(options: MemoryLogOptions<T> = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    checkOptionNames(options, ['codec', 'now'], 'MemoryLog');
    // `now` is passed on whenever given, so that a `now` that is no function is refused as FileLog refuses it.
    super({ codec: options.codec ?? codecs.json<T>(), ...(options.now === undefined ? {} : { now: options.now }) });
    this._opened(-1);
  }

  /** For symmetry with `FileLog.open`. */
  static open<T = JsonValue>(options: MemoryLogOptions<T> = {}): Promise<MemoryLog<T>> {
    return Promise.resolve(new MemoryLog<T>(options));
  }

  protected _append(entries: readonly EncodedEntry[]): Promise<number[]> {
    const stored = new Array<StoredRecord>(entries.length);
    const offsets = new Array<number>(entries.length);
    let offset = this.#next;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as EncodedEntry;
      const bytes = typeof entry.value === 'string' ? Buffer.from(entry.value, 'utf8') : Buffer.from(entry.value);
      if (bytes.length > valueBytesMax) {
        throw new RangeError(`record ${i} of the batch is larger than the largest value allowed`);
      }
      stored[i] = { offset, bytes, deleted: false, time: entry.time, key: entry.key };
      offsets[i] = offset;
      offset += frameBytes(entry.key?.length ?? 0, bytes.length);
      if (offset - this.#next > batchBytesMax) throw new RangeError(`a batch is at most ${batchBytesMax} bytes`);
    }
    this.#next = offset;
    for (const record of stored) this.#records.push(record);
    const visible = this.#records.length;
    // Visible one microtask later, as the file log's write is, so both logs interleave alike.
    return Promise.resolve().then(() => {
      this.#visible = Math.max(this.#visible, visible);
      this._advance(offsets[offsets.length - 1] as number);
      return offsets;
    });
  }

  protected _read(offset: number): LogRecord<T> {
    if (offset > this.since) {
      throw new SluiceError('OFFSET_OUT_OF_RANGE', `offset ${offset} is outside the log`, { offset });
    }
    // A binary search rather than a Map: a Map holds at most 2^24 entries, a log may hold more records.
    const index = this.#search(offset);
    if (this.#records[index]?.offset !== offset) {
      throw new SluiceError('NOT_A_RECORD', `no record starts at offset ${offset}`, { offset });
    }
    if (this.#records[index]?.deleted === true) {
      throw new SluiceError('RECORD_DELETED', `the record at offset ${offset} was deleted`, { offset });
    }
    return this.#decode(index);
  }

  /** As the file log's `delete`: the record keeps its offset, its bytes are dropped. */
  delete(offsets: number | readonly number[]): Promise<void> {
    const list = checkOffsets(offsets);
    if (this.status !== 'open') return Promise.reject(this._closedError());
    const indexes: number[] = [];
    for (const offset of list) {
      if (offset > this.since) {
        return Promise.reject(new SluiceError('OFFSET_OUT_OF_RANGE', `offset ${offset} is outside the log`, { offset }));
      }
      const index = this.#search(offset);
      if (this.#records[index]?.offset !== offset) {
        return Promise.reject(new SluiceError('NOT_A_RECORD', `no record starts at offset ${offset}`, { offset }));
      }
      indexes.push(index);
    }
    for (const index of indexes) {
      const record = this.#records[index] as StoredRecord;
      record.deleted = true;
      record.bytes = Buffer.alloc(0);
    }
    return Promise.resolve();
  }

  #decode(index: number): LogRecord<T> {
    const record = this.#records[index] as StoredRecord;
    const key = record.key === undefined ? undefined : Uint8Array.prototype.slice.call(record.key);
    return this._record(record.offset, record.bytes, 0, record.bytes.length, record.time, key);
  }

  /** The index of the first record whose offset is ≥ `offset`. */
  #search(offset: number): number {
    let low = 0;
    let high = this.#records.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.#records[middle] as StoredRecord).offset < offset) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  protected _cursor(range: ScanRange): RecordCursor<T> {
    return new MemoryCursor(range, {
      search: (offset) => this.#search(offset),
      visible: () => this.#visible,
      offsetAt: (index) => (this.#records[index] as StoredRecord).offset,
      deleted: (index) => (this.#records[index] as StoredRecord).deleted,
      decode: (index) => this.#decode(index),
    });
  }

  protected _sync(): Promise<number> {
    return Promise.resolve(this.since);
  }

  protected _close(): Promise<void> {
    // Let appends already issued settle first, as the file log does.
    return Promise.resolve();
  }
}

interface MemoryCursorHost<T> {
  search(offset: number): number;
  visible(): number;
  offsetAt(index: number): number;
  deleted(index: number): boolean;
  decode(index: number): LogRecord<T>;
}

/** Walks the record array; reverse cursors read what exists when they start, forward ones keep up. */
class MemoryCursor<T> implements RecordCursor<T> {
  readonly #range: ScanRange;
  readonly #host: MemoryCursorHost<T>;
  #next = -1;
  #floor = 0;
  #started = false;
  done = false;

  constructor(range: ScanRange, host: MemoryCursorHost<T>) {
    this.#range = range;
    this.#host = host;
  }

  next(max: number): LogRecord<T>[] {
    const host = this.#host;
    const records: LogRecord<T>[] = [];
    if (this.done) return records;
    if (!this.#started) {
      this.#started = true;
      this.#next = this.#range.reverse
        ? Math.min(host.search(this.#range.high), host.visible()) - 1
        : host.search(this.#range.low);
      this.#floor = host.search(this.#range.low);
    }
    if (this.#range.reverse) {
      while (records.length < max && this.#next >= this.#floor) {
        const index = this.#next--;
        if (!host.deleted(index)) records.push(host.decode(index));
      }
      if (this.#next < this.#floor) this.done = true;
      return records;
    }
    while (records.length < max && this.#next < host.visible()) {
      if (host.offsetAt(this.#next) >= this.#range.high) {
        this.done = true;
        break;
      }
      const index = this.#next++;
      if (!host.deleted(index)) records.push(host.decode(index));
    }
    return records;
  }

  close(): void {
    this.done = true;
  }
}
