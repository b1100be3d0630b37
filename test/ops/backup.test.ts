/**
 * `backup` and `restore`: a snapshot taken while a child process appends holds every record acknowledged before
 * it started, restores into a log that opens and passes `check` (views included), and neither ever overwrites a
 * directory, follows a symbolic link out, or leaves a half-made destination.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import { journalDeletes } from '../../src/log/file/deletes.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { backup, restore, type BackupReport } from '../../src/ops/backup.js';
import { check } from '../../src/ops/check.js';
import { stat } from '../../src/ops/stat.js';
import { index, type IndexView } from '../../src/views/index-view.js';
import { reduce, type ReduceView } from '../../src/views/reduce.js';
import { rejectsWith } from '../conformance/log-suite.js';
import { temporaryDirectory } from '../helpers.js';
import {
  fillLog,
  flipByte,
  kill,
  locate,
  readAcks,
  ready,
  segmentBytesMax,
  segmentFiles,
  startAppender,
  treeOf,
  waitUntil,
  type Ack,
  valueOf,
  type Value,
} from './support.js';

const root = temporaryDirectory('sluice-backup-');
let count = 0;
const fresh = (name = 'log'): string => join(root, `${name}-${count++}`);

/** Nothing but the named entries beside a destination: no temporary directory was left. */
function assertNoLeftovers(parent: string, expected: readonly string[]): void {
  assert.deepEqual(readdirSync(parent).sort(), [...expected].sort());
}

describe('backup and restore', () => {
  it('snapshot while a child appends: the restore opens, passes check and holds every acknowledged record', async () => {
    const dir = fresh();
    const ackFile = fresh('acks');
    const child = startAppender(dir, ackFile);
    const dest = fresh('backup');
    let acknowledged: Ack[] = [];
    let report: BackupReport;
    try {
      await ready(child);
      await waitUntil(() => readAcks(ackFile).length >= 300, 'appends');
      acknowledged = readAcks(ackFile);
      report = await backup(dir, dest);
      // The child went on appending during the backup: the log is past the snapshot.
      const before = acknowledged.length;
      await waitUntil(() => readAcks(ackFile).length > before + 20, 'more appends');
    } finally {
      await kill(child);
    }
    assert.ok(report.linked > 0, 'sealed segments are hard-linked');
    assert.equal(report.copied, 1, 'only the head segment is copied');
    const lastAcknowledged = acknowledged[acknowledged.length - 1]?.offsets.at(-1) as number;
    assert.ok(report.lastOffset >= lastAcknowledged);
    assert.deepEqual(report.views, ['byI', 'count']);
    assert.equal((await check(dest)).healthy, true);

    const restored = fresh('restored');
    const restoredReport = await restore(dest, restored);
    assert.equal(restoredReport.lastOffset, report.lastOffset);
    const health = await check(restored);
    assert.equal(health.healthy, true, JSON.stringify(health.problems));
    assert.deepEqual(health.problems, []);

    const views = { count: reduce<Value, number>(1, (n) => n + 1, { initial: 0 }), byI: index<Value>(1, (value) => value.i) };
    const db = await Sluice.open<Value>(restored, { log: await FileLog.open<Value>(restored, { segmentBytesMax }), views });
    try {
      assert.equal(db.since, report.lastOffset);
      for (const ack of acknowledged) {
        for (const [j, offset] of ack.offsets.entries()) assert.deepEqual(await db.get(offset), ack.values[j]);
      }
      const records = acknowledged.reduce((sum, ack) => sum + ack.values.length, 0);
      const counted = await (db.views.count as ReduceView<Value, number>).get();
      assert.ok(counted >= records);
      let total = 0;
      for await (const record of db.stream()) {
        assert.equal(record.value.i, total, 'no gap, no duplicate');
        total++;
      }
      assert.equal(counted, total, 'the restored count view agrees with the restored log');
      const byI = db.views.byI as IndexView<Value>;
      assert.equal((await byI.get(total - 1))?.offset, report.lastOffset);
    } finally {
      await db.close();
    }
  });

  it('copies instead of linking when asked, and the backup is then independent of the log', async () => {
    const dir = fresh();
    await fillLog(dir, 400);
    const dest = fresh('backup');
    const report = await backup(dir, dest, { link: false });
    assert.equal(report.linked, 0);
    assert.equal(report.copied, segmentFiles(dir).length);
    for (const segment of segmentFiles(dir)) {
      assert.notEqual(statSync(segment.path).ino, statSync(join(dest, segment.name)).ino);
    }
    const linked = fresh('backup');
    await backup(dir, linked);
    const [first] = segmentFiles(dir);
    assert.ok(first !== undefined);
    assert.equal(statSync(first.path).ino, statSync(join(linked, first.name)).ino, 'linked by default');
  });

  it('never overwrites: dest exists, lies inside the log, or has no parent; nothing is left behind', async () => {
    const dir = fresh();
    await fillLog(dir, 50);
    const parent = fresh('parent');
    mkdirSync(parent);
    const existing = join(parent, 'existing');
    mkdirSync(existing);
    const before = treeOf(dir);
    for (const dest of [existing, join(dir, 'inside'), join(parent, 'no', 'parent'), dir]) {
      await assert.rejects(backup(dir, dest), (error) => isSluiceError(error, 'INVALID_INPUT'), dest);
    }
    assertNoLeftovers(parent, ['existing']);
    assert.deepEqual(readdirSync(existing), []);
    // Named through links: the log through one, or the destination's parent through one into the log.
    symlinkSync(dir, join(parent, 'log-link'));
    for (const [source, dest] of [
      [join(parent, 'log-link'), join(dir, 'inside')],
      [dir, join(parent, 'log-link', 'inside')],
    ] as const) {
      await assert.rejects(backup(source, dest), (error) => isSluiceError(error, 'INVALID_INPUT'), `${source} → ${dest}`);
      await assert.rejects(restore(source, dest), (error) => isSluiceError(error, 'INVALID_INPUT'), `${source} → ${dest}`);
    }
    unlinkSync(join(parent, 'log-link'));
    assert.deepEqual(treeOf(dir), before);
    await assert.rejects(restore(dir, existing), (error) => isSluiceError(error, 'INVALID_INPUT'));
    await assert.rejects(backup(join(parent, 'missing'), join(parent, 'dest')), (error) => isSluiceError(error, 'LOG_NOT_FOUND'));
    await assert.rejects(backup(dir, ''), TypeError);
    await assert.rejects(backup(dir, join(parent, 'x'), { link: 'yes' as unknown as boolean }), TypeError);
    assertNoLeftovers(parent, ['existing']);
  });

  it('refuses a segment that is a symbolic link instead of following it', async () => {
    const dir = fresh();
    await fillLog(dir, 200);
    const outside = fresh('outside');
    const [, second] = segmentFiles(dir);
    assert.ok(second !== undefined);
    copyFileSync(second.path, outside);
    unlinkSync(second.path);
    symlinkSync(outside, second.path);
    const parent = fresh('parent');
    mkdirSync(parent);
    await assert.rejects(backup(dir, join(parent, 'dest')), (error) => isSluiceError(error, 'INVALID_INPUT'));
    assertNoLeftovers(parent, []);
  });

  it('an aborted backup or restore removes what it wrote', async () => {
    const dir = fresh();
    await fillLog(dir, 300);
    const parent = fresh('parent');
    mkdirSync(parent);
    const stop = new AbortController();
    await assert.rejects(
      backup(dir, join(parent, 'dest'), { signal: stop.signal, onProgress: () => stop.abort() }),
      (error) => isSluiceError(error, 'ABORTED'),
    );
    assertNoLeftovers(parent, []);
    await backup(dir, join(parent, 'dest'));
    const again = new AbortController();
    await assert.rejects(
      restore(join(parent, 'dest'), join(parent, 'restored'), { signal: again.signal, onProgress: () => again.abort() }),
      (error) => isSluiceError(error, 'ABORTED'),
    );
    assertNoLeftovers(parent, ['dest']);
  });

  it('keeps the whole last batch when the deletion of its last record was interrupted', async () => {
    const dir = fresh();
    const offsets = await fillLog(dir, 20);
    const last = offsets[offsets.length - 1] as number;
    // A crash during the rewrite of the last frame (F-63): journaled, the frame torn (its checksum no longer holds).
    await journalDeletes(dir, [last]);
    const { path, position } = locate(dir, last);
    flipByte(path, position + 40);
    const snapshot = await stat(dir);
    assert.equal(snapshot.lastOffset, last);
    assert.deepEqual([snapshot.records, snapshot.deletedRecords], [19, 1]);
    const dest = fresh('backup');
    const report = await backup(dir, dest);
    assert.equal(report.lastOffset, last);
    // The backup's first writable open finishes the deletion; the rest of the batch is there.
    await using log = await FileLog.open<Value>(dest, { segmentBytesMax });
    assert.equal(log.since, last);
    const kept = [];
    for await (const record of log.stream()) kept.push(record.offset);
    assert.deepEqual(kept, offsets.slice(0, -1));
  });

  it('reports the first record kept as firstOffset, not a filler or a deleted record, after compaction, deletes and trims', async () => {
    const dir = fresh();
    const key = { id: 1, key: Buffer.alloc(32, 0x41) };
    const options = { segmentBytesMax, encryption: { key } };
    const firstOf = async (log: FileLog<Value>): Promise<number> => {
      for await (const record of log.stream({ limit: 1 })) return record.offset;
      return -1;
    };
    const backedUp = async (): Promise<number> => {
      const target = fresh('backup');
      const { firstOffset } = await backup(dir, target);
      assert.equal((await restore(target, fresh('restored'))).firstOffset, firstOffset, 'restore reports it alike');
      return firstOffset;
    };
    {
      await using log = await FileLog.open<Value>(dir, options);
      // The first records of the first segment are superseded by later ones of their key: compaction covers them
      // with a filler at offset 0.
      for (let i = 0; i < 120; i++) await log.append(valueOf(i), { key: i < 10 ? 'early' : `k${i}` });
      await log.append(valueOf(120), { key: 'early' });
      assert.ok((await log.compact()).recordsDropped >= 10);
      await rejectsWith(log.get(0), 'RECORD_DELETED');
      const first = await firstOf(log);
      assert.ok(first > 0);
      assert.equal(await backedUp(), first);
      // The first record kept, deleted.
      await log.delete(first);
      const next = await firstOf(log);
      assert.ok(next > first);
      assert.equal(await backedUp(), next);
      // Trimmed: the first segment kept starts with a record.
      const { firstOffset } = await log.trim({ beforeOffset: log.segments.bases[log.segments.indexOf(next) + 1] });
      assert.ok(firstOffset > next);
      assert.equal(await firstOf(log), firstOffset);
      assert.equal(await backedUp(), firstOffset);
      // Every record deleted: none is first.
      const all: number[] = [];
      for await (const record of log.stream()) all.push(record.offset);
      await log.delete(all);
    }
    assert.equal(await backedUp(), -1);
  });

  it('counts a deletion journaled but not yet rewritten (a crash between the two) as done in firstOffset', async () => {
    const dir = fresh();
    {
      await using log = await FileLog.open<Value>(dir, { segmentBytesMax });
      for (let i = 0; i < 5; i++) await log.append(valueOf(i));
    }
    await journalDeletes(dir, [0]);
    const target = fresh('backup');
    const report = await backup(dir, target);
    await using copy = await FileLog.open<Value>(target, { segmentBytesMax });
    let first = -1;
    for await (const record of copy.stream({ limit: 1 })) first = record.offset;
    assert.ok(first > 0);
    assert.equal(report.firstOffset, first);
  });

  it('backs up an encrypted, chained log without its key, and the restore reads back under the key ring', async () => {
    const dir = fresh();
    const oldKey = { id: 1, key: Buffer.alloc(32, 0x31) };
    const newKey = { id: 2, key: Buffer.alloc(32, 0x32) };
    const expected: string[] = [];
    for (const [key, oldKeys] of [[oldKey, []], [newKey, [oldKey]]] as const) {
      await using log = await FileLog.open<string>(dir, { chain: 'sha256', encryption: { key, oldKeys }, segmentBytesMax });
      for (let i = 0; i < 5; i++) {
        const value = `secret ${key.id}.${i}`;
        await log.append(value);
        expected.push(value);
      }
    }
    const dest = fresh('backup');
    const report = await backup(dir, dest);
    assert.equal(report.segments, 2);
    for (const { path } of segmentFiles(dest)) assert.equal(readFileSync(path).includes('secret'), false);
    const restored = fresh('restored');
    await restore(dest, restored);
    assert.equal((await check(restored, { verifyChain: true })).healthy, true);
    await using log = await FileLog.open<string>(restored, { readonly: true, encryption: { key: newKey, oldKeys: [oldKey] } });
    const values: string[] = [];
    for await (const record of log.stream()) values.push(record.value);
    assert.deepEqual(values, expected);
  });

  it('backs up and restores an empty log', async () => {
    const dir = fresh();
    mkdirSync(dir);
    const dest = fresh('backup');
    const report = await backup(dir, dest);
    assert.deepEqual([report.segments, report.lastOffset, report.firstOffset], [0, -1, -1]);
    const restored = fresh('restored');
    await restore(dest, restored);
    await using log = await FileLog.open(restored);
    assert.equal(log.since, -1);
  });

  it('restore refuses a damaged backup, creating nothing, and leaves out a view whose state is damaged', async () => {
    const dir = fresh();
    const offsets = await fillLog(dir, 300);
    {
      const db = await Sluice.open<Value>(dir, {
        log: await FileLog.open<Value>(dir, { segmentBytesMax }),
        views: { count: reduce<Value, number>(1, (n) => n + 1, { initial: 0 }) },
      });
      await db.ready();
      await db.close();
    }
    const parent = fresh('parent');
    mkdirSync(parent);
    const dest = join(parent, 'backup');
    await backup(dir, dest, { link: false });
    flipByte(join(dest, 'views', 'count', 'state'), 30);
    const restored = await restore(dest, join(parent, 'restored'));
    assert.deepEqual(restored.viewsCleared, ['count']);
    assert.equal((await check(join(parent, 'restored'))).healthy, true);

    const { path, position } = locate(dir, offsets[120] as number);
    flipByte(join(dest, basename(path)), position + 31);
    await assert.rejects(restore(dest, join(parent, 'again')), (error) => isSluiceError(error, 'CORRUPT_LOG'));
    assertNoLeftovers(parent, ['backup', 'restored']);
  });
});
