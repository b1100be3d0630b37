import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { MemoryLog } from '../../src/log/memory/memory-log.js';
import type { LogRecord } from '../../src/log/log.js';
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
});
