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
});
