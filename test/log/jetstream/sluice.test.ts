import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { temporaryDirectory } from '../../helpers.js';
import { natsFixture } from './nats-servers.js';
import { addTotals, initialTotals, openDatabase, runProcess, runTask, type ProcessReport } from './sluice-process.js';

const nats = natsFixture(1);

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

/** The totals recomputed from the records a process saw. */
function recomputed(report: ProcessReport) {
  return report.seen.reduce((totals, [, by, n]) => addTotals(totals, { by, n }), initialTotals);
}

describe('Sluice on a JetStream log', { skip: nats.skip, timeout: 120_000 }, () => {
  it('two processes appending to one stream, each with its own views, converge to the same state', async () => {
    const root = temporaryDirectory();
    const common = { servers: nats.servers().urls, stream: 'shared', records: 600 };
    const other = runProcess({ ...common, dir: join(root, 'b'), by: 'b', append: range(0, 300) });
    let here: ProcessReport;
    let there: ProcessReport;
    try {
      here = await runTask({ ...common, dir: join(root, 'a'), by: 'a', append: range(0, 300) });
      there = await other.report;
    } finally {
      other.kill();
    }
    assert.equal(here.seen.length, 600);
    assert.deepEqual(here.seen, there.seen);
    assert.deepEqual(
      here.seen.map(([offset]) => offset),
      range(0, 600),
    );
    for (const [by, report] of [['a', here], ['b', there]] as const) {
      // Every append is in the log once, at the offset it resolved to, and in the order of the calls.
      const mine = report.seen.filter(([, who]) => who === by);
      assert.deepEqual(
        mine.map(([offset, , n]) => [offset, n]),
        report.appended.map((offset, n) => [offset, n]),
      );
      assert.deepEqual(report.totals, recomputed(here));
    }
  });

  it('keeps view state in its directory and reads the appender its own writes', async () => {
    const root = temporaryDirectory();
    const servers = nats.servers().urls;
    const task = { servers, stream: 'own-writes', dir: join(root, 'a'), by: 'a', append: [], records: 0 };
    {
      const { db, totals } = await openDatabase(task);
      for (let n = 0; n < 20; n++) {
        await db.append({ by: 'a', n });
        assert.equal((await totals.get()).count, n + 1);
      }
      await db.close();
    }
    assert.ok(existsSync(join(root, 'a', 'views', 'totals')));
    const appendedMeanwhile = await runProcess({ ...task, dir: join(root, 'b'), by: 'b', append: [100, 101], records: 22 })
      .report;
    assert.deepEqual(appendedMeanwhile.appended, [20, 21]);
    const { db, totals } = await openDatabase(task);
    try {
      const state = await totals.get();
      assert.equal(state.count, 22);
      assert.deepEqual(state, appendedMeanwhile.totals);
    } finally {
      await db.close();
    }
  });
});
