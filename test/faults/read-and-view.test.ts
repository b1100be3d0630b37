/**
 * Faults off the append path, on real files through `FaultyFs`:
 * - EIO on read: `get`, streams and opens fail with `READ_FAILED` naming the file and position (never a raw
 *   system error, never a wrong value), on the segment being written, on a sealed one and on a header; the fault
 *   being transient, the next read works and nothing was modified;
 * - a failed view checkpoint (the state file's write, fsync or rename): the view stops with `VIEW_FAILED`, the
 *   log and its appends are untouched, and after a reopen the view resumes from its last good state and equals
 *   its recomputation.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { reduce } from '../../src/views/reduce.js';
import { temporaryDirectory } from '../helpers.js';
import { FaultyFs, type FaultKind, type Operation } from './faulty-fs.js';

interface Value {
  readonly n: number;
  readonly p: string;
}

const readFailed = (file: string) => (error: unknown): boolean =>
  isSluiceError(error, 'READ_FAILED') && error.file?.endsWith(file) === true && error.position !== undefined;

describe('faults off the append path', () => {
  const root = temporaryDirectory('sluice-read-faults-');
  let store: FaultyFs;
  before(async () => (store = await FaultyFs.install(root)));
  after(() => store.uninstall());

  it('EIO on a read fails with READ_FAILED (file, position), once, and changes nothing', async () => {
    const dir = join(root, 'reads');
    const offsets: number[] = [];
    {
      await using log = await FileLog.open<Value>(dir, { segmentBytesMax: 4096 });
      for (let n = 0; n < 60; n++) offsets.push(await log.append({ n, p: 'r'.repeat(200) }));
    }
    const first = offsets[0] as number;
    const last = offsets[offsets.length - 1] as number;
    const log = await FileLog.open<Value>(dir, { segmentBytesMax: 4096 });
    try {
      const sealed = log.segments.path(0).split('/').pop() as string;
      const active = log.segments.path(log.segments.bases[log.segments.bases.length - 1] as number).split('/').pop() as string;
      // A sealed segment, first touched by this read: its open and header check meet the fault.
      store.inject({ operation: 'read', path: (path) => path.endsWith(sealed), kind: 'EIO' });
      await assert.rejects(log.get(first), readFailed(sealed));
      assert.deepEqual(await log.get(first), { n: 0, p: 'r'.repeat(200) }, 'the next read works');
      // The segment being written.
      store.inject({ operation: 'read', path: (path) => path.endsWith(active), kind: 'EIO' });
      await assert.rejects(log.get(last), readFailed(active));
      assert.equal((await log.get(last)).n, 59);
      // A stream ends with the error rather than skip a record.
      store.inject({ operation: 'read', path: (path) => path.endsWith(sealed), kind: 'EIO', skip: 0 });
      log.segments.forget(0);
      const seen: number[] = [];
      await assert.rejects(
        (async () => {
          for await (const record of log.stream()) seen.push(record.value.n);
        })(),
        readFailed(sealed),
      );
      assert.deepEqual(seen, [], 'nothing was handed out before the failed read');
      const all: number[] = [];
      for await (const record of log.stream()) all.push(record.value.n);
      assert.deepEqual(all, Array.from({ length: 60 }, (_, n) => n));
    } finally {
      await log.close();
    }
    // The open: its header check and tail check read the last segment.
    for (const skip of [0, 1, 2]) {
      store.reset();
      store.inject({ operation: 'read', path: (path) => path.endsWith('.seg'), skip, kind: 'EIO' });
      const outcome = await FileLog.open<Value>(dir).then(
        async (opened) => {
          await opened.close();
          return 'opened';
        },
        (error: unknown) => error,
      );
      if (outcome !== 'opened') assert.ok(isSluiceError(outcome, 'READ_FAILED'), `open with read fault ${skip}: ${String(outcome)}`);
    }
    store.reset();
    await using reopened = await FileLog.open<Value>(dir);
    assert.equal(reopened.since, last, 'the failed opens changed nothing');
  });

  const checkpointSteps: ReadonlyArray<readonly [Operation, FaultKind]> = [
    ['open', 'EIO'],
    ['write', { tornBytes: 9 }],
    ['write', 'ENOSPC'],
    ['sync', 'EIO'],
    ['rename', 'EIO'],
  ];
  for (const [operation, kind] of checkpointSteps) {
    it(`a view's failed checkpoint (${operation}, ${JSON.stringify(kind)}) stops the view, not the log`, async () => {
      const dir = join(root, `view-${operation}-${typeof kind === 'string' ? kind : 'torn'}`);
      const count = () => reduce<Value, number>(1, (total, value) => total + value.n, { initial: 0 });
      store.reset();
      {
        await using db = await Sluice.open<Value>(dir);
        const view = db.use('sum', count());
        for (let n = 0; n < 20; n++) await db.append({ n, p: 'v' });
        assert.equal(await view.get(), 190);
      }
      store.inject({ operation, path: (path) => path.includes('views/sum/state'), kind });
      const errors: Error[] = [];
      {
        const db = await Sluice.open<Value>(dir);
        db.on('view-error', ({ error }) => errors.push(error));
        const view = db.use('sum', count());
        for (let n = 20; n < 40; n++) await db.append({ n, p: 'v' });
        // The checkpoint runs once the view is idle (or at close): the failure surfaces as VIEW_FAILED.
        const result = await view.get().catch((error: unknown) => error);
        await db.close();
        assert.equal(store.fired.length, 1, 'the fault fired');
        // Reported as a view error (with the system error), whether the idle checkpoint or the close's met it; a
        // read after an idle checkpoint failed gets VIEW_FAILED.
        assert.equal(errors.length, 1, 'one view error');
        assert.equal((errors[0] as NodeJS.ErrnoException).code, typeof kind === 'string' ? kind : 'EIO');
        if (result instanceof Error) assert.ok(isSluiceError(result, 'VIEW_FAILED'), String(result));
        else assert.equal(result, (39 * 40) / 2);
      }
      store.reset();
      await using db = await Sluice.open<Value>(dir);
      const view = db.use('sum', count());
      assert.equal(db.since >= 0, true);
      assert.equal(await view.get(), (39 * 40) / 2, 'the view equals its recomputation after the reopen');
      const records: number[] = [];
      for await (const record of db.stream()) records.push(record.value.n);
      assert.deepEqual(records, Array.from({ length: 40 }, (_, n) => n), 'the log is untouched');
    });
  }
});
