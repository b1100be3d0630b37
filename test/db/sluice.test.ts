import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { MemoryLog } from '../../src/log/memory/memory-log.js';
import type { LogRecord } from '../../src/log/log.js';
import { reduce } from '../../src/views/reduce.js';
import type { View } from '../../src/views/view.js';
import { collect, rejectsWith } from '../conformance/log-suite.js';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory();
let count = 0;
const directory = (): string => join(root, `db-${count++}`);

/** A view that applies a record only when the test lets it, to observe the order reads are released in. */
function gatedView(): { view: View<number>; step: () => void } {
  let open: () => void = () => undefined;
  let gate = Promise.resolve();
  const step = (): void => open();
  const view: View<number> = {
    version: 1,
    open: () => Promise.resolve(-1),
    apply: () => {
      gate = new Promise<void>((resolve) => (open = resolve));
      return gate;
    },
    checkpoint: () => Promise.resolve(),
    clear: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  return { view, step };
}

/** A view that does nothing, but for the calls `overrides` gives it. */
function quietView(overrides: Partial<View<number>>): View<number> {
  return {
    version: 1,
    open: () => Promise.resolve(-1),
    apply: () => undefined,
    checkpoint: () => Promise.resolve(),
    clear: () => Promise.resolve(),
    close: () => Promise.resolve(),
    ...overrides,
  };
}

describe('Sluice database', () => {
  it('applies the mapper before views, get and stream see a value', async () => {
    await using db = await Sluice.open<number>(directory(), { mapper: (value) => Promise.resolve(value * 10) });
    const sum = db.use('sum', reduce(1, (total: number, value: number) => total + value, { initial: 0 }));
    const offsets = await db.append([1, 2, 3]);
    assert.equal(await db.get(offsets[1] as number), 20);
    assert.deepEqual(
      (await collect(db.stream())).map((record) => record.value),
      [10, 20, 30],
    );
    assert.equal(await sum.get(), 60);
  });

  it('releases waiting reads in offset order, each once the view reached its offset', async () => {
    await using db = await Sluice.open<number>(directory(), { log: await MemoryLog.open<number>() });
    const { view, step } = gatedView();
    db.use('gated', view);
    const offsets: number[] = [];
    const released: number[] = [];
    for (let i = 0; i < 3; i++) {
      offsets.push(await db.append(i));
      void db.ready('gated', { since: offsets[i] as number }).then(() => released.push(i));
    }
    // The runner applies one batch at a time; each step lets one batch through.
    while (db.viewStatus('gated').since < (offsets[2] as number)) {
      step();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await db.ready('gated');
    assert.deepEqual(released, [0, 1, 2]);
  });

  it('aborts a waiting read with ABORTED', async () => {
    await using db = await Sluice.open<number>(directory());
    const { view, step } = gatedView();
    db.use('gated', view);
    await db.append(1);
    const controller = new AbortController();
    const waiting = rejectsWith(db.ready('gated', { signal: controller.signal }), 'ABORTED');
    controller.abort();
    await waiting;
    step();
  });

  it('uses views given at open, lists them, and closes idempotently', async () => {
    const counting = reduce(1, (n: number) => n + 1, { initial: 0 });
    const db = await Sluice.open<number>(directory(), { views: { counting } });
    assert.deepEqual(Object.keys(db.views), ['counting']);
    await db.append([1, 2]);
    assert.equal(await counting.get(), 2);
    const closing = db.close();
    assert.equal(db.close(), closing);
    await closing;
    assert.throws(() => db.append(3), { code: 'LOG_CLOSED' });
    await rejectsWith(counting.get(), 'VIEW_CLOSED');
  });

  it('refuses a bad view given at open before it opens the log, which stays free for the next open', async () => {
    const dir = directory();
    const counting = reduce(1, (n: number) => n + 1, { initial: 0 });
    const broken = { version: 1, open: () => Promise.resolve(-1) } as unknown as View<number>;
    await assert.rejects(Sluice.open<number>(dir, { views: { counting, broken } }), /view broken has no apply\(\) method/);
    await using db = await Sluice.open<number>(dir, { views: { counting } });
    await db.append(1);
    assert.equal(await counting.get(), 1);
  });

  it('feeds views records with their offset, time and key', async () => {
    await using db = await Sluice.open<string>(directory());
    const seen: LogRecord<string>[] = [];
    const view = db.use(
      'keys',
      reduce(1, (n: number, _value: string, record: LogRecord<string>) => (seen.push(record), n + 1), { initial: 0 }),
    );
    const offset = await db.append('a', { key: 'k', time: 42 });
    await view.get();
    assert.equal(seen[0]?.offset, offset);
    assert.equal(seen[0]?.time, 42);
    assert.equal(Buffer.from(seen[0]?.key ?? []).toString(), 'k');
  });

  it('runs overlapping rebuilds one after the other: every record applied once', async () => {
    await using db = await Sluice.open<number>(directory());
    const count = db.use('count', reduce(1, (n: number) => n + 1, { initial: 0 }));
    await db.append(Array.from({ length: 5000 }, (_, i) => i));
    await count.get();
    await Promise.all([db.rebuild('count'), db.rebuild('count'), db.rebuild()]);
    assert.equal(await count.get(), 5000);
    await db.append([1, 2]);
    assert.equal(await count.get(), 5002);
  });

  it('closes cleanly during a rebuild: the view is not used after close, and reads fail with VIEW_CLOSED', async () => {
    const db = await Sluice.open<number>(directory());
    const calls: string[] = [];
    let releaseClear: () => void = () => undefined;
    const view: View<number> = {
      version: 1,
      open: () => Promise.resolve(-1),
      apply: () => undefined,
      checkpoint: () => (calls.push('checkpoint'), Promise.resolve()),
      clear: () => {
        calls.push('clear');
        return new Promise<void>((resolve) => (releaseClear = () => (calls.push('cleared'), resolve())));
      },
      close: () => (calls.push('close'), Promise.resolve()),
    };
    db.use('v', view);
    await db.append([1, 2, 3]);
    await db.ready('v');
    const rebuilding = db.rebuild('v');
    await new Promise((resolve) => setImmediate(resolve));
    const closing = db.close();
    releaseClear();
    await rebuilding;
    await closing;
    assert.equal(calls.indexOf('cleared') < calls.indexOf('close'), true, calls.join(' '));
    assert.equal(calls.at(-1), 'close');
    assert.equal(db.viewStatus('v').status, 'closed');
    await rejectsWith(db.ready('v'), 'VIEW_CLOSED');
  });

  it('stops a view whose checkpoint fails: reported, reads fail, and it is not fed again', async () => {
    await using db = await Sluice.open<number>(directory());
    let applied = 0;
    const errors: string[] = [];
    db.on('view-error', ({ view }) => errors.push(view));
    const view: View<number> = {
      version: 1,
      open: () => Promise.resolve(-1),
      apply: (records) => {
        applied += records.length;
      },
      checkpoint: () => Promise.reject(new Error('disk full')),
      clear: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
    const failed = new Promise<void>((resolve) => db.once('view-error', () => resolve()));
    db.use('v', view);
    await db.append(Array.from({ length: 10 }, (_, i) => i));
    await db.ready('v');
    // Once idle, the view is checkpointed: that fails. (The idle timer does not hold the process open by itself.)
    const keepAlive = setInterval(() => undefined, 100);
    await failed.finally(() => clearInterval(keepAlive));
    assert.deepEqual(errors, ['v']);
    assert.equal(db.viewStatus('v').status, 'failed');
    await rejectsWith(db.ready('v'), 'VIEW_FAILED');
    await db.append(11);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(applied, 10);
    assert.equal(db.viewStatus('v').status, 'failed');
  });

  it('closes every view, then the log, before it throws the first failure to close', async () => {
    const log = await MemoryLog.open<number>();
    const order: string[] = [];
    const closeLog = log.close.bind(log);
    log.close = () => {
      order.push('log');
      return closeLog();
    };
    const db = await Sluice.open<number>(directory(), { log });
    let letSlowClose: () => void = () => undefined;
    db.use('failing', quietView({ close: () => (order.push('failing'), Promise.reject(new Error('cannot close'))) }));
    db.use(
      'slow',
      quietView({
        close: () =>
          new Promise<void>((resolve) => (letSlowClose = resolve)).then(() => {
            order.push('slow');
          }),
      }),
    );
    await db.append(1);
    await db.ready();
    let settled = false;
    const closing = db.close().finally(() => (settled = true));
    for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, 'the close waits for the view still closing');
    letSlowClose();
    await assert.rejects(closing, /cannot close/);
    assert.deepEqual(order, ['failing', 'slow', 'log']);
  });

  it('refuses a view object already in use, and takes it again once its database has closed', async () => {
    const counting = reduce(1, (n: number) => n + 1, { initial: 0 });
    const first = await Sluice.open<number>(directory(), { log: await MemoryLog.open<number>() });
    first.use('a', counting);
    assert.throws(() => first.use('b', counting), { name: 'TypeError', message: /already in use/ });
    // Nor by another database: refused before its log is opened.
    const dir = directory();
    const other = reduce(1, (n: number) => n, { initial: 0 });
    await assert.rejects(Sluice.open<number>(dir, { views: { other, counting } }), { name: 'TypeError', message: /already in use/ });
    await (await Sluice.open<number>(dir, { views: { other } })).close();
    await first.append([1, 2, 3]);
    assert.equal(await counting.get(), 3, 'fed once per record');
    await first.close();
    await using second = await Sluice.open<number>(directory(), { log: await MemoryLog.open<number>() });
    second.use('again', counting);
    await second.append([1, 2]);
    assert.equal(await counting.get(), 2);
  });

  it('refuses one view object given twice at open', async () => {
    const counting = reduce(1, (n: number) => n + 1, { initial: 0 });
    await assert.rejects(Sluice.open<number>(directory(), { log: await MemoryLog.open<number>(), views: { a: counting, b: counting } }), {
      name: 'TypeError',
      message: /same object/,
    });
  });
});

