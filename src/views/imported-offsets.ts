import { join } from 'node:path';
import { indexBatchRecords } from '../limits.js';
import type { LogRecord } from '../log/log.js';
import { restoreState, writeState } from './state-file.js';
import type { ReadOptions, View, ViewContext } from './view.js';

/** The name `sluice import` gives the view, under `<dir>/views/`. */
export const importedOffsetsViewName = 'flumelog-offsets';

/** The record key of an imported record starts with these bytes; the old offset follows, 8 bytes big-endian. */
const keyPrefix = Buffer.from('fo:', 'latin1');
const keyBytes = keyPrefix.length + 8;

/** One pair kept per this many imported records; a lookup reads at most this many records' keys. */
const pairEvery = 32;

/** The record key `sluice import` stores with each record: `fo:` and its old offset, 8 bytes big-endian. */
export function importedOffsetKey(oldOffset: number): Uint8Array {
  const key = Buffer.alloc(keyBytes);
  keyPrefix.copy(key);
  key.writeUInt32BE(Math.floor(oldOffset / 0x1_0000_0000), keyPrefix.length);
  key.writeUInt32BE(oldOffset >>> 0, keyPrefix.length + 4);
  return key;
}

/** The old offset in an imported record's key, or `undefined` for any other key. Allocates nothing: it runs per record. */
function oldOffsetOf(key: Uint8Array | undefined): number | undefined {
  if (key?.length !== keyBytes || key[0] !== keyPrefix[0] || key[1] !== keyPrefix[1] || key[2] !== keyPrefix[2]) {
    return undefined;
  }
  let value = 0;
  for (let i = keyPrefix.length; i < keyBytes; i++) value = value * 256 + (key[i] as number);
  return value;
}

interface TableState {
  /** Imported records seen. */
  count: number;
  /** The last old offset seen: imported keys only ever grow. */
  last: number;
  /** Every `pairEvery`-th imported record: its old offset and its offset in this log. */
  olds: number[];
  news: number[];
}

const empty = (): TableState => ({ count: 0, last: -1, olds: [], news: [] });

/**
 * The table from a record's offset in the flumelog-offset file it was imported from to its offset in this log,
 * so references an application kept (flumedb views store offsets) still resolve after `sluice import`.
 *
 * Both offsets grow in the same order, so the table keeps one pair in 32 (FORMAT.md O-9): a lookup finds the
 * pair at or before the old offset by binary search, then reads the keys of at most 32 records from there.
 * The state is small (a million records: 31,250 pairs) and builds at the speed of a scan.
 *
 * Edge cases: an old offset that was not a record start, a record deleted before the import (not imported), or
 * an offset past the imported file all resolve to `undefined`. Records appended after the import carry other
 * keys (or none) and are not in the table; a record whose key looks imported but does not grow past the last
 * one is ignored.
 */
export class ImportedOffsetsView<T> implements View<T> {
  readonly version = 1;
  // Applying a record costs next to nothing: feed many per event-loop turn.
  readonly batchRecords = indexBatchRecords;
  #context: ViewContext<T> | undefined;
  #state: TableState = empty();

  async open(context: ViewContext<T>): Promise<number> {
    this.#context = context;
    const stored = await restoreState(this.#path(), this.version, (message) => context.report(message), isTableState);
    // Nothing stored starts empty, also for a view object used before (by a database now closed).
    this.#state = stored === undefined ? empty() : stored.state;
    if (stored === undefined) return -1;
    return stored.since;
  }

  apply(records: readonly LogRecord<T>[]): void {
    const state = this.#state;
    for (const record of records) {
      const old = oldOffsetOf(record.key);
      if (old === undefined || old <= state.last) continue;
      if (state.count % pairEvery === 0) {
        state.olds.push(old);
        state.news.push(record.offset);
      }
      state.count++;
      state.last = old;
    }
  }

  checkpoint(since: number): Promise<void> {
    return writeState(this.#path(), { version: this.version, since, state: this.#state }, this.#ready().fileMode);
  }

  clear(): Promise<void> {
    this.#state = empty();
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The offset in this log of the record that was at `oldOffset` in the imported file, or `undefined`. */
  resolve(oldOffset: number, options?: ReadOptions): Promise<number | undefined> {
    if (!Number.isSafeInteger(oldOffset) || oldOffset < 0) throw new RangeError('oldOffset must be a non-negative integer');
    return this.#resolve(oldOffset, options);
  }

  async #resolve(oldOffset: number, options: ReadOptions | undefined): Promise<number | undefined> {
    const context = this.#ready();
    await context.ready(options);
    const { olds, news, last } = this.#state;
    if (oldOffset > last) return undefined;
    let low = 0;
    let high = olds.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((olds[middle] as number) <= oldOffset) low = middle + 1;
      else high = middle;
    }
    if (low === 0) return undefined;
    let seen = 0;
    for await (const record of context.stream({ gte: news[low - 1] as number })) {
      const old = oldOffsetOf(record.key);
      if (old === undefined) continue;
      if (old === oldOffset) return record.offset;
      if (old > oldOffset || ++seen > pairEvery) return undefined;
    }
    return undefined;
  }

  #ready(): ViewContext<T> {
    if (this.#context === undefined) throw new TypeError('the view is not in use by a database');
    return this.#context;
  }

  #path(): string {
    return join(this.#ready().dir, 'state');
  }
}

/**
 * The state a file holds is only trusted in the shape `apply` builds: a count, the last old offset, and one pair
 * per 32 records, both lists strictly growing safe integers. A file that says otherwise (damaged behind a valid
 * checksum, or crafted) is rebuilt rather than answered from: a pair out of order would resolve to wrong offsets.
 */
function isTableState(state: unknown): state is TableState {
  const table = state as Partial<TableState> | null;
  if (typeof table !== 'object' || table === null || Array.isArray(table)) return false;
  const { count, last, olds, news } = table;
  if (!Number.isSafeInteger(count) || (count as number) < 0 || !Number.isSafeInteger(last) || (last as number) < -1) return false;
  if (!Array.isArray(olds) || !Array.isArray(news) || olds.length !== news.length) return false;
  if (olds.length !== Math.ceil((count as number) / pairEvery) || ((count as number) === 0) !== ((last as number) === -1)) return false;
  return growing(olds, last as number) && growing(news, Number.MAX_SAFE_INTEGER);
}

/** Non-negative safe integers, strictly growing, none above `max`. */
function growing(list: readonly unknown[], max: number): boolean {
  let previous = -1;
  for (const item of list) {
    if (!Number.isSafeInteger(item) || (item as number) <= previous || (item as number) > max) return false;
    previous = item as number;
  }
  return true;
}

/** `db.use(importedOffsetsViewName, importedOffsets())`. */
export function importedOffsets<T>(): ImportedOffsetsView<T> {
  return new ImportedOffsetsView<T>();
}
