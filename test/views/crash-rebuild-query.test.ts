/**
 * A query view killed (SIGKILL) while it catches up resumes from what it committed, not from zero.
 *
 * The parent fills a native log with small records (`{ n }`, n = 0, 1, …), closes it, and starts a child process
 * that opens the database with a query view `q` (`query(1, { indexes: [{ name: 'n', value: [['value', 'n']] }] })`,
 * whose `apply` counts the records it is given) and prints every `progress` event. The view commits each apply
 * batch (the runner's default batch, as the query view sets no `batchRecords`) in one LMDB transaction with its
 * `since`, version and index declarations, and progress is emitted after a batch is applied, so a progress `since`
 * is a committed point. The parent kills the child on the first progress line short of the log's last record,
 * reads the view's `meta` (in a copy of the killed database, straight from LMDB) and checks:
 * - every progress line of the child: `apply` had been given exactly the records up to that line's `since`;
 * - the committed `since` is at least the last progress `since` the child printed, short of the last record, and
 *   a batch boundary; the committed version is 1;
 * - reopened in-process with the same view, it applies exactly the records after the committed `since` (fewer
 *   than the whole log), starting with the first one after it, reports nothing, and ends exact: counting the
 *   records with A ≤ n < B through the index gives B − A for a few ranges (and `explain` shows the index serves
 *   them), and LMDB holds one entry per record.
 * Should the child nevertheless catch up before the kill lands, the log is made bigger and the child run again.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { open as openLmdb, type Key } from 'lmdb';
import { Sluice } from '../../src/db/sluice.js';
import { indexBatchRecords } from '../../src/limits.js';
import type { LogRecord } from '../../src/log/log.js';
import { query, type Query, type QueryView } from '../../src/views/query/query-view.js';
import { copyDatabase, countUpTo, crashMidCatchUp, type Crash, type NumberedValue, assertCommittedBatches, crashChild } from './crash-harness.js';
import { temporaryDirectory } from '../helpers.js';

type Value = NumberedValue;

const recordsFirst = 200_000;
const attemptsMax = 3;
const viewName = 'q';
const indexes = [{ name: 'n', value: [['value', 'n']] }];

const queryPathOf = (dir: string): string => join(dir, 'views', viewName, 'query.mdb');

/** The query counting the records with a ≤ n < b. */
const countBetween = (a: number, b: number): Query => ({
  query: [{ $filter: { value: { n: { $gte: a, $lt: b } } } }, { $reduce: { c: { $count: true } } }],
});

/**
 * The child: opens the database with the `q` view (version 1; `apply` counts its records) and prints one JSON line
 * per progress event, per report, and once caught up. It never exits by itself: the parent kills it.
 */
const childScript = crashChild(
  `import { query } from ${JSON.stringify(new URL('../../src/views/query/query-view.js', import.meta.url).href)};`,
  'applied',
  `const view = query(1, { indexes: ${JSON.stringify(indexes)} });
const apply = view.apply.bind(view);
view.apply = (records) => {
  applied += records.length;
  return apply(records);
};
db.use(${JSON.stringify(viewName)}, view);
for await (const _ of view.read({ limit: 0 })) void _;
print({ done: db.viewStatus(${JSON.stringify(viewName)}).since, applied });`,
);


/** The query view as LMDB holds it in a database that is not open: its meta and how many entries it has. */
async function readLmdb(dir: string) {
  const root = openLmdb({ path: queryPathOf(dir), compression: false });
  try {
    const meta = root.openDB<number | string, string>({ name: 'meta' });
    const entries = root.openDB<number, Key>({ name: 'entries', encoding: 'ordered-binary' });
    let count = 0;
    for (const key of entries.getKeys({})) {
      void key;
      count++;
    }
    return {
      since: meta.get('since') as number | undefined,
      version: meta.get('version') as number | undefined,
      indexes: meta.get('indexes') as string | undefined,
      entries: count,
    };
  } finally {
    await root.close();
  }
}


describe('a query view killed while catching up', { timeout: 60_000 }, () => {
  const root = temporaryDirectory('sluice-crash-rebuild-query-');
  let crash: Crash | undefined;

  before(async () => {
    crash = await crashMidCatchUp({ root, childScript, countField: 'applied', recordsFirst, attemptsMax, readCommitted: readLmdb });
  });

  it('resumes from its last committed batch and ends exact', async (t) => {
    assert.ok(crash !== undefined);
    const { offsets, progressSince } = crash;
    const records = offsets.length;
    const covered = assertCommittedBatches(crash, indexBatchRecords, (message) => t.diagnostic(message));

    const dir = copyDatabase(crash.dir, 'resume');
    const reports: string[] = [];
    const errors: string[] = [];
    let applied = 0;
    let firstApplied = -1;
    const db = await Sluice.open<Value>(dir);
    db.on('report', ({ message }) => reports.push(message));
    db.on('view-error', ({ offset, error }) => errors.push(`at ${offset}: ${error.message}`));
    const view: QueryView<Value> = query<Value>(1, { indexes });
    const apply = view.apply.bind(view);
    view.apply = (batch: readonly LogRecord<Value>[]) => {
      if (applied === 0 && batch.length > 0) firstApplied = (batch[0] as LogRecord<Value>).offset;
      applied += batch.length;
      return apply(batch);
    };
    db.use(viewName, view);
    const ranges: Array<[number, number]> = [
      [0, records],
      [0, 1000],
      [covered - 500, covered + 500],
      [records - 1234, records],
      [Math.floor(records / 3), Math.floor(records / 3) + 7],
    ];
    const counts: Array<{ range: [number, number]; result: unknown[] }> = [];
    let since: number;
    try {
      for (const [a, b] of ranges) {
        const result: unknown[] = [];
        for await (const item of view.read(countBetween(a, b))) result.push(item);
        counts.push({ range: [a, b], result });
      }
      since = db.viewStatus(viewName).since;
      const plan = view.explain(countBetween(10, 20));
      assert.equal(plan.index, 'n', `the index serves the range: ${JSON.stringify(plan)}`);
      assert.equal(plan.scan, false, `no scan: ${JSON.stringify(plan)}`);
    } finally {
      await db.close();
    }

    assert.deepEqual(errors, []);
    assert.deepEqual(reports, [], 'the same version and indexes reopen without a rebuild');
    assert.ok(applied < records, `applied ${applied} of ${records}: not from zero`);
    const afterProgress = records - countUpTo(offsets, progressSince);
    assert.ok(applied <= afterProgress, `applied ${applied}, more than the ${afterProgress} after the last progress`);
    assert.equal(applied, records - covered, 'applied exactly the records after the committed since');
    assert.equal(firstApplied, offsets[covered], 'started with the first record after the committed since');
    assert.equal(since, offsets[records - 1], 'the view is at the last record');
    for (const { range, result } of counts) {
      assert.deepEqual(result, [{ c: range[1] - range[0] }], `the records with ${range[0]} <= n < ${range[1]}`);
    }
    const lmdb = await readLmdb(dir);
    assert.equal(lmdb.entries, records, 'one entry per record');
    assert.deepEqual({ since: lmdb.since, version: lmdb.version }, { since: offsets[records - 1], version: 1 });
  });
});
