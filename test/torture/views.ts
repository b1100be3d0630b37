import assert from 'node:assert/strict';
import { Sluice } from '../../src/db/sluice.js';
import type { LogRecord } from '../../src/log/log.js';
import { index, type IndexView } from '../../src/views/index-view.js';
import { keyIndex, type KeyIndexView } from '../../src/views/key-time-index.js';
import { reduce, type ReduceView } from '../../src/views/reduce.js';
import type { TortureValue } from './scenarios.js';

/** The reduce view's state: a count and a checksum of every record it saw. */
export interface Totals {
  readonly records: number;
  readonly sum: number;
}

export interface TortureViews {
  readonly totals: ReduceView<TortureValue, Totals, TortureValue>;
  readonly byBatch: IndexView<TortureValue>;
  readonly byKey: KeyIndexView<TortureValue>;
}

function add(totals: Totals, value: TortureValue, offset: number): Totals {
  return { records: totals.records + 1, sum: (totals.sum + value.b * 7 + value.i + (offset % 1_000_003)) % 2 ** 40 };
}

/** The views of the `views` and `view-rebuild` scenarios, used by the child and by the parent's check. */
export function tortureViews(db: Sluice<TortureValue>): TortureViews {
  return {
    totals: db.use('totals', reduce<TortureValue, Totals>(1, (totals, value, record) => add(totals, value, record.offset), { initial: { records: 0, sum: 0 } })),
    byBatch: db.use('byBatch', index<TortureValue>(1, (value, record) => [value.b % 17, record.offset])),
    byKey: db.use('byKey', keyIndex<TortureValue>(1)),
  };
}

/**
 * Opens the database in `dir` with the torture views, waits until each has caught up with the log (from
 * whatever its last checkpoint was), and checks each against the same view computed from scratch over the
 * log's records. Returns the log's records.
 */
export async function checkViews(dir: string, context: string): Promise<LogRecord<TortureValue>[]> {
  const db = await Sluice.open<TortureValue>(dir);
  const errors: Error[] = [];
  db.on('view-error', ({ error }) => errors.push(error));
  try {
    const views = tortureViews(db);
    const records: LogRecord<TortureValue>[] = [];
    for await (const record of db.stream()) records.push(record);
    let totals: Totals = { records: 0, sum: 0 };
    const lastByKey = new Map<string, number>();
    for (const record of records) {
      totals = add(totals, record.value, record.offset);
      if (record.key !== undefined) lastByKey.set(Buffer.from(record.key).toString('utf8'), record.offset);
    }
    assert.deepEqual(await views.totals.get(), totals, `${context}: the reduce view`);
    const entries: Array<[unknown, number]> = [];
    for await (const entry of views.byBatch.read()) entries.push([entry.key, entry.offset]);
    const expected = records
      .map((record): [unknown, number] => [[record.value.b % 17, record.offset], record.offset])
      .sort((x, y) => compareEntries(x[0] as [number, number], y[0] as [number, number]));
    assert.deepEqual(entries, expected, `${context}: the index view`);
    for (const [key, offset] of lastByKey) {
      assert.equal((await views.byKey.last(key))?.offset, offset, `${context}: the key index's last record of ${key}`);
    }
    assert.deepEqual(errors, [], `${context}: view errors`);
    return records;
  } finally {
    await db.close();
  }
}

function compareEntries(x: readonly [number, number], y: readonly [number, number]): number {
  return x[0] - y[0] || x[1] - y[1];
}
