import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { MemoryLog } from '../../src/log/memory/memory-log.js';
import type { LogRecord } from '../../src/log/log.js';
import { reduce } from '../../src/views/reduce.js';
import type { View } from '../../src/views/view.js';
import { rejectsWith } from '../conformance/log-suite.js';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory();
let count = 0;
const directory = (): string => join(root, `db-${count++}`);

/**
 * A view whose applies resolve only when the test releases them, recording what it was given and how many
 * applies were in flight at once (the runner reads the next batch while one is applied, but must never call
 * `apply` again before the last one resolved).
 */
function slowView(batchRecords: number): {
  view: View<number>;
  applied: number[][];
  checkpoints: number[];
  inFlightMax: () => number;
  releaseAll: () => void;
  entered: () => Promise<void>;
} {
  const applied: number[][] = [];
  const checkpoints: number[] = [];
  let inFlight = 0;
  let inFlightMax = 0;
  let releasing = false;
  const pending: Array<() => void> = [];
  let onEnter: (() => void) | undefined;
  const view: View<number> = {
    version: 1,
    batchRecords,
    open: () => Promise.resolve(-1),
    apply: async (records: readonly LogRecord<number>[]) => {
      inFlight++;
      inFlightMax = Math.max(inFlightMax, inFlight);
      onEnter?.();
      if (!releasing) await new Promise<void>((resolve) => pending.push(resolve));
      // A turn of the event loop, so the runner gets to read ahead if it wants to.
      await new Promise((resolve) => setImmediate(resolve));
      applied.push(records.map((record) => record.value));
      inFlight--;
    },
    checkpoint: (since) => {
      checkpoints.push(since);
      return Promise.resolve();
    },
    clear: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  return {
    view,
    applied,
    checkpoints,
    inFlightMax: () => inFlightMax,
    releaseAll: () => {
      releasing = true;
      for (const release of pending.splice(0)) release();
    },
    entered: () => new Promise<void>((resolve) => (onEnter = resolve)),
  };
}

/** A view that opens with a stored `since` and records what it is given and how often it is cleared. */
interface OpenedAt {
  readonly applied: number[];
  clears(): number;
}

function openedAt(db: Sluice<number>, name: string, since: number): OpenedAt {
  const applied: number[] = [];
  let clears = 0;
  const view: View<number> = {
    version: 1,
    open: () => Promise.resolve(since),
    apply: (records) => {
      for (const record of records) applied.push(record.value);
    },
    checkpoint: () => Promise.resolve(),
    clear: () => (clears++, Promise.resolve()),
    close: () => Promise.resolve(),
  };
  db.use(name, view);
  return { applied, clears: () => clears };
}

describe('view runner', () => {
  it('applies batches one at a time, in order, while reading ahead', async () => {
    await using db = await Sluice.open<number>(directory(), { log: await MemoryLog.open<number>() });
    const values = Array.from({ length: 95 }, (_, n) => n);
    await db.append(values);
    const slow = slowView(10);
    db.use('slow', slow.view);
    slow.releaseAll();
    await db.ready('slow');
    assert.equal(slow.inFlightMax(), 1);
    assert.deepEqual(slow.applied.flat(), values);
    assert.deepEqual(
      slow.applied.map((batch) => batch.length),
      [10, 10, 10, 10, 10, 10, 10, 10, 10, 5],
    );
  });

  it('closes only once the batch in flight has landed, and checkpoints exactly what was applied', async () => {
    const db = await Sluice.open<number>(directory(), { log: await MemoryLog.open<number>() });
    const offsets = await db.append(Array.from({ length: 50 }, (_, n) => n));
    const slow = slowView(10);
    const entered = slow.entered();
    db.use('slow', slow.view);
    await entered;
    const closing = db.close();
    slow.releaseAll();
    await closing;
    assert.equal(slow.applied.length, 1, 'the batch in flight landed; no other was started');
    assert.deepEqual(slow.checkpoints, [offsets[9]]);
  });

  it('a failure while reading ahead: the batch in flight lands first, the view fails at its since', async () => {
    const failAt = 25;
    const db = await Sluice.open<number>(directory(), {
      log: await MemoryLog.open<number>(),
      mapper: (value) => {
        if (value === failAt) throw new Error('cannot map 25');
        return value;
      },
    });
    const offsets = await db.append(Array.from({ length: 40 }, (_, n) => n));
    const errors: Array<{ view: string; offset: number; error: Error }> = [];
    db.on('view-error', (event) => errors.push(event));
    const slow = slowView(10);
    db.use('slow', slow.view);
    slow.releaseAll();
    await rejectsWith(db.ready('slow'), 'VIEW_FAILED');
    assert.deepEqual(slow.applied.flat(), Array.from({ length: 20 }, (_, n) => n));
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.view, 'slow');
    assert.equal(errors[0]?.offset, offsets[19]);
    assert.match(errors[0]?.error.message ?? '', /cannot map 25/);
    assert.equal(db.viewStatus('slow').since, offsets[19]);
    await db.close();
  });

  it('a rebuild during a slow apply waits for it, then applies the whole log again', async () => {
    await using db = await Sluice.open<number>(directory(), { log: await MemoryLog.open<number>() });
    await db.append(Array.from({ length: 30 }, (_, n) => n));
    const slow = slowView(10);
    const entered = slow.entered();
    db.use('slow', slow.view);
    await entered;
    const rebuilding = db.rebuild('slow');
    slow.releaseAll();
    await rebuilding;
    await db.ready('slow');
    assert.equal(slow.inFlightMax(), 1);
    const flat = slow.applied.flat();
    assert.deepEqual(flat.slice(-30), Array.from({ length: 30 }, (_, n) => n));
  });

  it('rebuilds a view that opens ahead of the log even when appends made while it opened pass its since', async () => {
    await using db = await Sluice.open<number>(directory(), { log: await MemoryLog.open<number>() });
    const before = await db.append([0, 1, 2]);
    const reports: string[] = [];
    db.on('report', (event) => reports.push(event.message));
    let openView!: (since: number) => void;
    const applied: number[] = [];
    const cleared: number[] = [];
    const view: View<number> = {
      version: 1,
      // A state stored by a log that lost its tail: it claims records up to 1,000.
      open: () => new Promise<number>((resolve) => (openView = resolve)),
      apply: (records) => {
        for (const record of records) applied.push(record.value);
        return Promise.resolve();
      },
      checkpoint: () => Promise.resolve(),
      clear: () => {
        cleared.push(applied.length);
        return Promise.resolve();
      },
      close: () => Promise.resolve(),
    };
    db.use('late', view);
    const during = await db.append(Array.from({ length: 2000 }, (_, n) => 3 + n));
    assert.ok((during[during.length - 1] as number) > 1000 && (before[2] as number) < 1000);
    openView(1000);
    await db.ready('late');
    assert.deepEqual(cleared, [0]);
    assert.deepEqual(applied, Array.from({ length: 2003 }, (_, n) => n));
    assert.ok(reports.some((message) => /ahead of the log/.test(message)), JSON.stringify(reports));
  });

  it('never runs a checkpoint alongside an apply or another checkpoint (an idle one included)', async () => {
    await using db = await Sluice.open<number>(directory(), { log: await MemoryLog.open<number>() });
    let busy = 0;
    let overlaps = 0;
    let releaseCheckpoint: (() => void) | undefined;
    let checkpointEntered!: () => void;
    const checkpointStarted = new Promise<void>((resolve) => (checkpointEntered = resolve));
    const enter = (): void => {
      if (busy++ > 0) overlaps++;
    };
    const view: View<number> = {
      version: 1,
      open: () => Promise.resolve(-1),
      apply: async () => {
        enter();
        await new Promise((resolve) => setImmediate(resolve));
        busy--;
      },
      checkpoint: async () => {
        enter();
        checkpointEntered();
        // Only the first checkpoint is held (the one at close is not).
        if (releaseCheckpoint === undefined) await new Promise<void>((resolve) => (releaseCheckpoint = resolve));
        busy--;
      },
      clear: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
    db.use('v', view);
    await db.append(1);
    await db.ready('v');
    // The idle checkpoint comes about a second after the view went quiet (its timer does not hold the process
    // open: this one does); an append arrives while it runs.
    const keepAlive = setInterval(() => undefined, 100);
    await checkpointStarted;
    const offset = await db.append(2);
    const ready = db.ready('v', { since: offset });
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    (releaseCheckpoint as () => void)();
    await ready;
    clearInterval(keepAlive);
    assert.equal(overlaps, 0);
  });

  it('stops and reports a view whose open fails, and opens it again when it is rebuilt', async () => {
    await using db = await Sluice.open<number>(directory(), { log: await MemoryLog.open<number>() });
    await db.append([1, 2]);
    const errors: Array<{ view: string; offset: number }> = [];
    db.on('view-error', ({ view, offset }) => errors.push({ view, offset }));
    let opens = 0;
    const applied: number[] = [];
    const view: View<number> = {
      version: 1,
      open: () => (++opens === 1 ? Promise.reject(new Error('disk hiccup')) : Promise.resolve(-1)),
      apply: (records) => {
        for (const record of records) applied.push(record.value);
        return Promise.resolve();
      },
      checkpoint: () => Promise.resolve(),
      clear: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
    db.use('v', view);
    await rejectsWith(db.ready('v'), 'VIEW_FAILED');
    assert.equal(db.viewStatus('v').status, 'failed');
    assert.deepEqual(errors, [{ view: 'v', offset: -1 }]);
    assert.deepEqual(applied, []);
    await db.rebuild('v');
    await db.ready('v');
    assert.equal(opens, 2);
    assert.deepEqual(applied, [1, 2]);
  });

  it('stops and reports a view whose directory cannot be made; a rebuild once it can be made brings it back', async () => {
    const dir = directory();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'views'), 'a file where the views directory goes');
    await using db = await Sluice.open<number>(dir, { log: await MemoryLog.open<number>() });
    const errors: Array<{ view: string; offset: number }> = [];
    db.on('view-error', ({ view, offset }) => errors.push({ view, offset }));
    const count = db.use('count', reduce(1, (n: number) => n + 1, { initial: 0 }));
    await db.append(1);
    await rejectsWith(count.get(), 'VIEW_FAILED');
    await rejectsWith(db.ready('count'), 'VIEW_FAILED');
    assert.equal(db.viewStatus('count').status, 'failed');
    assert.deepEqual(errors, [{ view: 'count', offset: -1 }]);
    rmSync(join(dir, 'views'));
    await db.rebuild('count');
    assert.equal(await count.get(), 1);
  });

  it('rethrows a throwing listener asynchronously, leaving the view as it was', async () => {
    // The listener's error surfaces as an uncaught exception: caught here instead of by the test runner.
    const uncaught: unknown[] = [];
    const runnerHandlers = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', (error) => uncaught.push(error));
    try {
      await using db = await Sluice.open<number>(directory(), { log: await MemoryLog.open<number>() });
      await db.append([1, 2]);
      for (const event of ['report', 'progress', 'view-error'] as const) {
        db.on(event, () => {
          throw new Error(`a ${event} listener bug`);
        });
      }
      const count = db.use('count', reduce(1, (n: number) => n + 1, { initial: 0 }));
      // Progress: the view's first catch-up reports it.
      assert.equal(await count.get(), 2);
      await db.rebuild('count');
      assert.equal(await count.get(), 2);
      // Report and view-error: a view that says something as it opens, then throws.
      db.use('failing', {
        version: 1,
        open: (context) => (context.report('opening'), Promise.resolve(-1)),
        apply: () => {
          throw new Error('boom');
        },
        checkpoint: () => Promise.resolve(),
        clear: () => Promise.resolve(),
        close: () => Promise.resolve(),
      } satisfies View<number>);
      await rejectsWith(db.ready('failing'), 'VIEW_FAILED');
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(db.viewStatus('count').status, 'live');
      const messages = uncaught.map((error) => (error as Error).message);
      assert.ok(messages.includes('a progress listener bug'), messages.join('; '));
      assert.ok(messages.includes('a report listener bug'), messages.join('; '));
      assert.ok(messages.includes('a view-error listener bug'), messages.join('; '));
      await assert.rejects(db.ready('failing'), (error: unknown) => isSluiceError(error, 'VIEW_FAILED') && /boom/.test((error as Error).message));
    } finally {
      process.removeAllListeners('uncaughtException');
      for (const handler of runnerHandlers) process.on('uncaughtException', handler);
    }
  });

  it('rebuilds a view whose since is no record start of the log (the log lost a tail, then was appended to)', async () => {
    const log = await MemoryLog.open<number>();
    await using db = await Sluice.open<number>(directory(), { log });
    const offsets = await db.append([1, 2, 3]);
    await db.delete(offsets[1] as number);
    const reports: string[] = [];
    db.on('report', ({ view, message }) => reports.push(`${view}: ${message}`));
    const opened = (name: string, since: number): OpenedAt => openedAt(db, name, since);
    const intoARecord = opened('into', (offsets[0] as number) + 1);
    const atARecord = opened('at', offsets[0] as number);
    const atADeletedOne = opened('deleted', offsets[1] as number);
    await db.ready();
    assert.deepEqual(intoARecord.applied, [1, 3]);
    assert.equal(intoARecord.clears(), 1);
    assert.deepEqual(atARecord.applied, [3]);
    assert.deepEqual(atADeletedOne.applied, [3]);
    assert.equal(atARecord.clears() + atADeletedOne.clears(), 0);
    assert.equal(reports.length, 1);
    assert.match(reports[0] as string, /^into: no record of the log starts at the view's since/);
  });

  it('goes on without a rebuild from a since inside the records a compaction dropped', async () => {
    const dir = directory();
    await using log = await FileLog.open<number>(join(dir, 'log'), { segmentBytesMax: 4096 });
    const offsets: number[] = [];
    // 37-byte frames: the first 100 records (one key) fill the first segment.
    for (let i = 0; i < 300; i++) offsets.push(await log.append(i, { key: i < 100 ? 'same' : `key-${i}` }));
    assert.ok((await log.compact()).recordsDropped >= 90);
    assert.ok(log.compactedAt(offsets[5] as number), 'record 5 lies inside a filler');
    assert.ok(!log.compactedAt(offsets[140] as number) && !log.compactedAt((offsets[140] as number) + 1));
    assert.throws(() => log.compactedAt(-1), RangeError);
    assert.throws(() => log.compactedAt('5' as unknown as number), TypeError);
    await using db = await Sluice.open<number>(join(dir, 'db'), { log });
    const reports: string[] = [];
    db.on('report', ({ view, message }) => reports.push(`${view}: ${message}`));
    const opened = (name: string, since: number): OpenedAt => openedAt(db, name, since);
    const compacted = opened('compacted', offsets[5] as number);
    const intoARecord = opened('into', (offsets[140] as number) + 1);
    await db.ready();
    assert.equal(compacted.clears(), 0);
    const kept = Array.from({ length: 201 }, (_, i) => 99 + i);
    assert.deepEqual(compacted.applied, kept, 'the records after the compacted stretch');
    assert.equal(intoARecord.clears(), 1);
    assert.deepEqual(reports.length, 1);
    assert.match(reports[0] as string, /^into: no record of the log starts/);
  });
});
