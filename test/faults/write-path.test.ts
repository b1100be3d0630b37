/**
 * Every step of the native log's write path, failed in turn. A deterministic workload (groups of concurrent
 * appends, singles and batches, with keys; segments of 4 KiB so that it rolls over often; a delete, a compaction,
 * a trim, syncs) runs once without faults to count the calls it makes on its directory (segment writes, segment
 * creation: temporary file, header write, fsync, rename, directory sync; fdatasync; the DELETES journal and the
 * frames it erases; compaction's new file and its rename; trim's unlinks). Then, for each of those calls, the
 * workload runs again on a fresh directory with that one call failed (torn after a seeded number of bytes, EIO
 * or ENOSPC, in turn), and the test checks:
 * - the call that met the fault fails with `WRITE_FAILED`; after a failed append, sync or delete so does every
 *   later write (sticky: appends, syncs, deletes, trims, compactions) until the log is reopened; a failed delete
 *   may still be done by the reopen (its journal may have reached the disk), a failed append never is; a failed
 *   compaction or trim fails alone (it left every file whole) and the log goes on;
 * - reads still return every acknowledged record (or fail with a code: `WRITE_FAILED` for buffered appends that
 *   were never written; a failed delete's records read whole or deleted, never as damage), never a wrong value,
 *   and `close()` resolves;
 * - after reopening, `check` finds no damage and the log is a valid prefix of what was attempted: whole batches
 *   in call order, each record intact, every acknowledged one there (in `buffered` mode, every one a resolved
 *   `sync()` covered), acknowledged deletions in force; and the next append works.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isSluiceError } from '../../src/errors.js';
import { FileLog, type Durability } from '../../src/log/file/file-log.js';
import type { LogRecord } from '../../src/log/log.js';
import { check } from '../../src/ops/check.js';
import { mulberry32, temporaryDirectory } from '../helpers.js';
import { FaultyFs, type Call, type Fault, type FaultKind, type Operation } from './faulty-fs.js';

const seed = 0xfa017;
const segmentBytesMax = 4096;
const groups = 14;
/** The calls a write-path fault is injected into (reads and read-only opens are `read-faults.test.ts`'s). */
const writeOperations: ReadonlySet<Operation> = new Set(['open', 'write', 'sync', 'truncate', 'rename', 'unlink', 'link']);

interface Value {
  /** The record's number in call order across the workload. */
  readonly s: number;
  readonly b: number;
  readonly i: number;
  readonly n: number;
  readonly p: string;
}

type Step = 'append' | 'sync' | 'delete' | 'compact' | 'trim';

/** What the workload saw: acknowledged records and deletions, and the first failure. */
interface Outcome {
  readonly acked: Map<number, Value>;
  readonly deleted: Set<number>;
  /** Offsets of a delete that failed: its journal may have reached the disk, and the reopen finishes it. */
  readonly maybeDeleted: Set<number>;
  /** In buffered mode: the last offset a resolved `sync()` made durable. */
  synced: number;
  failure: { readonly step: Step; readonly error: unknown } | undefined;
  /** Failures after the first (a sticky log fails every later write). */
  readonly later: Array<{ readonly step: Step; readonly error: unknown }>;
}

const keyOf = (s: number): string | undefined => (s % 3 === 0 ? `k${s % 5}` : undefined);

/** The workload: the same calls in the same order on every run (each group is awaited before the next). */
async function workload(log: FileLog<Value>, outcome: Outcome): Promise<void> {
  const random = mulberry32(seed);
  let s = 0;
  let b = 0;
  const settle = async <R>(step: Step, promise: Promise<R>): Promise<R | undefined> => {
    try {
      return await promise;
    } catch (error) {
      if (outcome.failure === undefined) outcome.failure = { step, error };
      else outcome.later.push({ step, error });
      return undefined;
    }
  };
  for (let group = 0; group < groups; group++) {
    const calls: Array<Promise<void>> = [];
    for (let call = 0, count = 1 + Math.floor(random() * 3); call < count; call++) {
      const n = random() < 0.4 ? 1 : 1 + Math.floor(random() * 4);
      const values = Array.from({ length: n }, (_, i): Value => ({ s: s + i, b, i, n, p: 'v'.repeat(150 + Math.floor(random() * 500)) }));
      const key = n === 1 ? keyOf(s) : undefined;
      s += n;
      b++;
      calls.push(
        settle('append', log.append(values, key === undefined ? {} : { key })).then((offsets) => {
          offsets?.forEach((offset, i) => outcome.acked.set(offset, values[i] as Value));
        }),
      );
    }
    await Promise.all(calls);
    if (group === 5) {
      const picked = [...outcome.acked.keys()].filter((offset) => keyOf((outcome.acked.get(offset) as Value).s) === undefined).slice(1, 3);
      if (picked.length > 0 && (await settle('delete', log.delete(picked).then(() => true))) === true) {
        for (const offset of picked) outcome.deleted.add(offset);
      } else {
        for (const offset of picked) outcome.maybeDeleted.add(offset);
      }
    }
    if (group === 9) await settle('compact', log.compact());
    if (group === 11) await settle('trim', log.trim({ maxRecords: 12 }));
    if (group % 4 === 3) {
      const synced = await settle('sync', log.sync());
      if (synced !== undefined) outcome.synced = Math.max(outcome.synced, synced);
    }
  }
  const synced = await settle('sync', log.sync());
  if (synced !== undefined) outcome.synced = Math.max(outcome.synced, synced);
}

const gone = (error: unknown): boolean => isSluiceError(error, 'RECORD_DELETED') || isSluiceError(error, 'NOT_A_RECORD');

/** True when a record of the same key was acknowledged after `offset`: compaction may have dropped this one. */
function superseded(outcome: Outcome, offset: number, value: Value): boolean {
  const key = keyOf(value.s);
  if (value.n !== 1 || key === undefined) return false;
  return [...outcome.acked].some(([other, later]) => other > offset && later.n === 1 && keyOf(later.s) === key);
}

/**
 * A call's file inside its log directory (traces name the directory too, which differs from run to run, and the
 * lock's temporary name has the pid and random digits in it, F-90).
 */
const inLog = (path: string): string =>
  (path.includes('/') ? path.slice(path.indexOf('/') + 1) : '').replace(/^LOCK\.\d+\.[0-9a-f]+\.new$/, 'LOCK.new');

/**
 * The fault for `call` of a baseline run: the same operation on the same file after as many calls like it as
 * the baseline made before (timing may shift the calls between files, e.g. when a group commit's fsync lands).
 */
function faultAt(calls: readonly Call[], call: Call, kind: FaultKind): Fault {
  const alike = (other: Call): boolean => other.operation === call.operation && inLog(other.path) === inLog(call.path);
  const skip = calls.filter((other) => other.sequence < call.sequence && alike(other)).length;
  return { operation: call.operation, path: (path) => inLog(path) === inLog(call.path), skip, kind };
}

/** Runs the workload with `fault` (none: the baseline) and checks everything the file's comment lists; returns the workload's calls. */
async function runWith(store: FaultyFs, dir: string, durability: Durability, fault: Fault | undefined, context: string): Promise<Call[]> {
  store.reset();
  if (fault !== undefined) store.inject(fault);
  const outcome: Outcome = { acked: new Map(), deleted: new Set(), maybeDeleted: new Set(), synced: -1, failure: undefined, later: [] };
  let log: FileLog<Value>;
  try {
    log = await FileLog.open<Value>(dir, { durability, segmentBytesMax });
  } catch (error) {
    // A fault while creating the log: the open fails with a code, and the next open (without it) works.
    assert.ok(fault !== undefined && store.fired.length > 0, `${context}: ${String(error)}`);
    assert.ok(isSluiceError(error, 'WRITE_FAILED'), `${context}: the open failed with ${String(error)}`);
    store.reset();
    await checkReopened(dir, durability, outcome, context);
    return [];
  }
  await workload(log, outcome);
  const calls = [...store.calls];
  const { failure } = outcome;
  // Removing the lock's temporary name may fail without consequence (a leftover `.new` is ignored, F-90).
  const tolerated = store.fired.every(({ call }) => call.operation === 'unlink' && inLog(call.path) === 'LOCK.new');
  if (fault === undefined || tolerated) {
    assert.equal(failure, undefined, `${context}: no fault fired, yet ${String(failure?.error)}`);
  } else {
    assert.ok(failure !== undefined, `${context}: the fault at ${JSON.stringify(store.fired[0]?.call)} went unnoticed`);
    assert.ok(isSluiceError(failure.error, 'WRITE_FAILED'), `${context}: the ${failure.step} failed with ${String(failure.error)}`);
    assert.ok((failure.error as Error).cause !== undefined, `${context}: the error carries its cause`);
    for (const later of outcome.later) {
      assert.ok(isSluiceError(later.error, 'WRITE_FAILED'), `${context}: a later ${later.step} failed with ${String(later.error)}`);
    }
    if (failure.step === 'append' || failure.step === 'sync' || failure.step === 'delete') {
      // Sticky until reopen: every later write fails with the same code.
      await assert.rejects(log.append({ s: -1, b: -1, i: 0, n: 1, p: '' }), (error) => isSluiceError(error, 'WRITE_FAILED'), `${context}: sticky append`);
      await assert.rejects(log.sync(), (error) => isSluiceError(error, 'WRITE_FAILED'), `${context}: sticky sync`);
      await assert.rejects(log.compact(), (error) => isSluiceError(error, 'WRITE_FAILED'), `${context}: sticky compact`);
    }
  }
  // Reads go on: acknowledged records read back, or fail with a code; never a wrong value. A failed delete's
  // records read whole or deleted, never as damage (its rewrite may be half done).
  for (const [offset, value] of outcome.acked) {
    await log.get(offset).then(
      (read) => assert.deepEqual(read, value, `${context}: get(${offset}) before the reopen`),
      (error: unknown) => {
        assert.ok(error instanceof Error && 'code' in error, `${context}: get(${offset}): ${String(error)}`);
        const unwritten = isSluiceError(error, 'WRITE_FAILED');
        if (outcome.maybeDeleted.has(offset)) assert.ok(gone(error) || unwritten, `${context}: get(${offset}) of a failed delete: ${String(error)}`);
      },
    );
  }
  await log.close();
  store.reset();
  await checkReopened(dir, durability, outcome, context);
  return calls;
}

async function checkReopened(dir: string, durability: Durability, outcome: Outcome, context: string): Promise<void> {
  const report = await check(dir);
  assert.equal(report.errors, 0, `${context}: check: ${JSON.stringify(report.problems.slice(0, 3))}`);
  const log = await FileLog.open<Value>(dir, { durability, segmentBytesMax });
  try {
    const records: LogRecord<Value>[] = [];
    for await (const record of log.stream()) records.push(record);
    // A valid prefix of what was attempted: records in call order, intact, batches whole.
    const counts = new Map<number, number>();
    let previous = -1;
    for (const record of records) {
      const { s, b, i, n } = record.value;
      assert.ok(s > previous, `${context}: record ${s} at ${record.offset} after record ${previous}`);
      assert.equal(record.value.p.length >= 150 && /^v+$/.test(record.value.p), true, `${context}: record ${s} is intact`);
      assert.equal(record.key === undefined ? undefined : Buffer.from(record.key).toString(), n === 1 ? keyOf(s) : undefined);
      counts.set(b, (counts.get(b) ?? 0) + 1);
      assert.ok(i < n);
      previous = s;
    }
    for (const record of records) {
      const complete = counts.get(record.value.b) === record.value.n;
      const compacted = record.value.n === 1;
      const deletions = outcome.deleted.size + outcome.maybeDeleted.size > 0;
      assert.ok(complete || compacted || deletions, `${context}: batch ${record.value.b} is partly there`);
    }
    const byOffset = new Map(records.map((record) => [record.offset, record]));
    for (const [offset, value] of outcome.acked) {
      if (offset < log.firstOffset) continue;
      if (durability === 'buffered' && offset > outcome.synced) continue;
      if (outcome.deleted.has(offset)) {
        await assert.rejects(log.get(offset), gone, `${context}: deleted ${offset}`);
        continue;
      }
      const found = byOffset.get(offset);
      if (found === undefined && (superseded(outcome, offset, value) || outcome.maybeDeleted.has(offset))) continue;
      assert.deepEqual(found?.value, value, `${context}: acknowledged record ${value.s} at ${offset}`);
    }
    const next = await log.append({ s: previous + 1, b: -2, i: 0, n: 1, p: 'v'.repeat(150) });
    assert.equal((await log.get(next)).s, previous + 1, `${context}: the next append reads back`);
  } finally {
    await log.close();
  }
}

describe('a fault at every step of the write path', () => {
  const root = temporaryDirectory('sluice-faults-');
  let store: FaultyFs;
  before(async () => (store = await FaultyFs.install(root)));
  after(() => store.uninstall());

  for (const durability of ['os', 'disk', 'buffered'] as const) {
    it(`durability ${durability}: each call failed in turn`, { timeout: 120_000 }, async (t) => {
      const calls = await runWith(store, join(root, `${durability}-baseline`), durability, undefined, `${durability} baseline`);
      const sequences = calls.filter((call) => writeOperations.has(call.operation));
      const random = mulberry32(seed ^ sequences.length);
      const tally = new Map<string, number>();
      let fired = store.firedTotal;
      for (const [index, call] of sequences.entries()) {
        const kinds: FaultKind[] = ['EIO', 'ENOSPC', { tornBytes: Math.floor(random() * 600) }];
        const kind = kinds[index % kinds.length] as FaultKind;
        const context = `${durability}, fault ${JSON.stringify(kind)} at call ${call.sequence} (${call.operation} ${call.path})`;
        await runWith(store, join(root, `${durability}-${call.sequence}`), durability, faultAt(calls, call, kind), context);
        if (store.firedTotal > fired) tally.set(call.operation, (tally.get(call.operation) ?? 0) + 1);
        fired = store.firedTotal;
      }
      const injected = [...tally.values()].reduce((sum, count) => sum + count, 0);
      t.diagnostic(`${injected} of ${sequences.length} faults fired: ${JSON.stringify(Object.fromEntries(tally))}`);
      assert.ok(sequences.length > 50 && injected >= sequences.length * 0.9, `${injected} of ${sequences.length} faults fired`);
    });
  }
});
