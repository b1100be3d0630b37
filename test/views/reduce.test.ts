import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, lstatSync, mkdirSync, openSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import { MemoryLog } from '../../src/log/memory/memory-log.js';
import { reduce, type ReduceView } from '../../src/views/reduce.js';
import { viewSuite, type Message } from '../conformance/view-suite.js';
import { temporaryDirectory } from '../helpers.js';

type Counts = Record<string, number>;

const root = temporaryDirectory();
let count = 0;
const directory = (): string => join(root, `db-${count++}`);

const countByType = {
  create: (version: number, calls: { records: number }): ReduceView<Message, Counts, string> =>
    reduce<Message, Counts, string>(
      version,
      (counts, type) => {
        calls.records++;
        return { ...counts, [type]: (counts[type] ?? 0) + 1 };
      },
      { initial: {}, map: (value) => value.type },
    ),
  read: (view: ReduceView<Message, Counts, string>, options?: object) => view.get(options),
  expected: (records: ReadonlyArray<{ value: Message }>): Counts => {
    const counts: Counts = {};
    for (const { value } of records) counts[value.type] = (counts[value.type] ?? 0) + 1;
    return counts;
  },
  stateFile: 'state',
};

viewSuite({ name: 'reduce (count per type), native log', view: countByType, directory });
viewSuite({ name: 'reduce (count per type), memory log', view: countByType, directory, log: () => MemoryLog.open<Message>() });

describe('reduce view', () => {
  it('streams its state, then each new state as records arrive, until aborted', async () => {
    await using db = await Sluice.open<number>(directory());
    const sum = db.use('sum', reduce(1, (total: number, value: number) => total + value, { initial: 0 }));
    await db.append([1, 2]);
    const controller = new AbortController();
    const seen: number[] = [];
    const watching = (async () => {
      for await (const state of sum.changes({ signal: controller.signal })) {
        seen.push(state);
        if (state >= 10) controller.abort();
        else await db.append(state);
      }
    })();
    await watching;
    // 3, then each state appended to itself: 6, 12.
    assert.deepEqual(seen, [3, 6, 12]);
  });

  it('ends a stream of changes with VIEW_CLOSED when the database closes', async () => {
    const db = await Sluice.open<number>(directory());
    const sum = db.use('sum', reduce(1, (total: number, value: number) => total + value, { initial: 0 }));
    await db.append(1);
    const seen: number[] = [];
    const watching = assert.rejects(
      (async () => {
        for await (const state of sum.changes()) seen.push(state);
      })(),
      (error: unknown) => isSluiceError(error, 'VIEW_CLOSED'),
    );
    await db.ready();
    while (seen.length === 0) await new Promise((resolve) => setImmediate(resolve));
    await db.close();
    await watching;
    assert.deepEqual(seen, [1]);
  });

  it('removes its state file when cleared, so that a crash before the next checkpoint cannot bring it back', async () => {
    const dir = directory();
    {
      await using db = await Sluice.open<number>(dir);
      db.use('sum', reduce(1, (total: number, value: number) => total + value, { initial: 0 }));
      await db.append([1, 2]);
      await db.ready();
    }
    assert.equal(existsSync(join(dir, 'views', 'sum', 'state')), true);
    const view = reduce(1, (total: number, value: number) => total + value, { initial: 0 });
    await using db = await Sluice.open<number>(dir);
    db.use('sum', view);
    await db.ready();
    await view.clear();
    assert.equal(existsSync(join(dir, 'views', 'sum', 'state')), false);
  });

  it('takes a FIFO, a directory or a link at its state path for damage: reported, removed, rebuilt', { timeout: 10_000 }, async () => {
    const sum = (): ReduceView<number, number> => reduce(1, (total: number, value: number) => total + value, { initial: 0 });
    for (const make of ['fifo', 'directory', 'link'] as const) {
      const dir = directory();
      const state = join(dir, 'views', 'sum', 'state');
      mkdirSync(dirname(state), { recursive: true });
      if (make === 'fifo') execFileSync('mkfifo', [state]);
      if (make === 'directory') mkdirSync(join(state, 'inside'), { recursive: true });
      if (make === 'link') {
        writeFileSync(join(dirname(state), 'elsewhere'), 'not to be read');
        symlinkSync(join(dirname(state), 'elsewhere'), state);
      }
      try {
        await using db = await Sluice.open<number>(dir);
        const reports: string[] = [];
        db.on('report', ({ message }) => reports.push(message));
        await db.append([1, 2]);
        const view = db.use('sum', sum());
        assert.equal(await view.get(), 3, make);
        assert.equal(reports.length, 1, `${make}: ${reports.join('; ')}`);
      } finally {
        // Were the FIFO opened for reading after all, this writer would let that open end.
        if (make === 'fifo') {
          try {
            closeSync(openSync(state, constants.O_WRONLY | constants.O_NONBLOCK));
          } catch {
            // no reader: nothing waits on it
          }
        }
      }
      assert.equal(lstatSync(state).isFile(), true, `${make}: the close checkpointed a state file in its place`);
      if (make === 'link') assert.equal(readFileSync(join(dirname(state), 'elsewhere'), 'utf8'), 'not to be read');
    }
  });

  it('validates its arguments', () => {
    assert.throws(() => reduce(1.5, (n: number) => n, { initial: 0 }), TypeError);
    assert.throws(() => reduce(1, 'no' as unknown as () => number, { initial: 0 }), TypeError);
    assert.throws(() => reduce(1, (n: number) => n, {} as { initial: number }), TypeError);
  });
});
