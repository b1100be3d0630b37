import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Log } from '../../src/log/log.js';
import { collect, rejectsWith, type LogFactory } from './log-suite.js';

/**
 * The behaviour of `delete(offsets)` that every log with `supports.deletes` owes (the contract on `Log.delete`).
 * Kept apart from the main suite so that logs without deletes need not know it.
 */
export function deleteSuite({ name, factory }: { name: string; factory: LogFactory }): void {
  const open = (): Promise<Log<unknown>> => factory.open<unknown>();
  const values = (log: Log<unknown>, options?: object): Promise<unknown[]> =>
    collect(log.stream(options)).then((records) => records.map((record) => record.value));

  describe(`Log deletes: ${name}`, () => {
    it('deletes records: get fails with RECORD_DELETED, streams skip them, no offset moves', async () => {
      await using log = await open();
      assert.equal(log.supports.deletes, true);
      const offsets = await log.append(['a', 'b', 'c', 'd', 'e'].map((letter) => ({ letter })));
      const since = log.since;
      await log.delete?.([offsets[1] as number, offsets[3] as number]);
      await log.delete?.(offsets[4] as number);
      for (const i of [1, 3, 4]) await rejectsWith(log.get(offsets[i] as number), 'RECORD_DELETED');
      assert.deepEqual(await log.get(offsets[2] as number), { letter: 'c' });
      assert.deepEqual(await values(log), [{ letter: 'a' }, { letter: 'c' }]);
      assert.deepEqual(await values(log, { reverse: true }), [{ letter: 'c' }, { letter: 'a' }]);
      assert.deepEqual(await values(log, { gt: offsets[0] as number, limit: 1 }), [{ letter: 'c' }]);
      assert.equal(log.since, since);
      const next = await log.append({ letter: 'f' });
      assert.ok(next > since);
      assert.deepEqual(await values(log, { gt: offsets[2] as number }), [{ letter: 'f' }]);
      // Deleting again does nothing.
      await log.delete?.(offsets[1] as number);
    });

    it('checks every offset before deleting any', async () => {
      await using log = await open();
      const offsets = await log.append([{ n: 1 }, { n: 2 }]);
      await rejectsWith(log.delete?.([offsets[1] as number, (offsets[0] as number) + 1]) as Promise<void>, 'NOT_A_RECORD');
      await rejectsWith(log.delete?.([offsets[0] as number, 1_000_000]) as Promise<void>, 'OFFSET_OUT_OF_RANGE');
      assert.deepEqual(await values(log), [{ n: 1 }, { n: 2 }]);
      assert.throws(() => log.delete?.('0' as unknown as number), TypeError);
      assert.throws(() => log.delete?.([-1]), RangeError);
      await log.close();
      await rejectsWith(log.delete?.(0) as Promise<void>, 'LOG_CLOSED');
    });

    if (factory.reopen !== undefined) {
      const reopen = factory.reopen.bind(factory);
      it('keeps deletions across a reopen', async () => {
        const log = await open();
        const offsets = await log.append([{ n: 1 }, { n: 2 }, { n: 3 }]);
        await log.delete?.(offsets[1] as number);
        await using again = await reopen(log);
        await rejectsWith(again.get(offsets[1] as number), 'RECORD_DELETED');
        assert.deepEqual(await values(again), [{ n: 1 }, { n: 3 }]);
        assert.equal(again.since, offsets[2]);
      });
    }
  });
}
