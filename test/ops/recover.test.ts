/**
 * `recover`: each kind of damage is cut back to the longest valid prefix, the log then opens and passes `check`,
 * every byte cut is in `quarantine/`, views ahead of the recovered log rebuild, and a writer's lock is respected.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import { journalDeletes } from '../../src/log/file/deletes.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { check } from '../../src/ops/check.js';
import { recover, type RecoverReport } from '../../src/ops/recover.js';
import { index, type IndexView } from '../../src/views/index-view.js';
import { reduce, type ReduceView } from '../../src/views/reduce.js';
import { temporaryDirectory } from '../helpers.js';
import {
  assertNothingLost,
  fillLog,
  flipByte,
  locate,
  segmentBytes,
  segmentBytesMax,
  segmentFiles,
  treeOf,
  valueOf,
  type Value,
} from './support.js';

const root = temporaryDirectory('sluice-recover-');
let count = 0;
const fresh = (): string => join(root, `log-${count++}`);

/** After recovery the log opens, passes check, and holds exactly the records before `lastOffset`. */
async function assertRecovered(dir: string, report: RecoverReport, offsets: readonly number[]): Promise<void> {
  const health = await check(dir);
  assert.equal(health.healthy, true, JSON.stringify(health.problems));
  assert.equal(health.lastOffset, report.lastOffset);
  await using log = await FileLog.open<Value>(dir, { segmentBytesMax });
  assert.equal(log.since, report.lastOffset);
  const kept = offsets.filter((offset) => offset <= report.lastOffset);
  assert.equal(report.records, kept.length);
  const records = [];
  for await (const record of log.stream()) records.push(record);
  assert.deepEqual(
    records.map((record) => record.offset),
    kept,
  );
  assert.deepEqual(
    records.map((record) => record.value),
    kept.map((_, i) => valueOf(i)),
  );
  // The log takes appends again, right after its last record.
  const next = await log.append(valueOf(kept.length));
  assert.equal(next, report.end);
}

describe('recover', () => {
  it('cuts at a damaged record in a sealed segment and moves the later segments to quarantine whole', async () => {
    const dir = fresh();
    const offsets = await fillLog(dir, 600);
    const damaged = offsets[203] as number;
    const { path, position } = locate(dir, damaged);
    flipByte(path, position + 40);
    const before = segmentBytes(dir);
    const report = await recover(dir);
    assert.equal(report.changed, true);
    assert.deepEqual(
      report.problems.map(({ kind, file, position: at }) => [kind, file, at]),
      [['record', path, position]],
    );
    // Batches of 5: the last whole batch before record 203 ends with record 199.
    assert.equal(report.lastOffset, offsets[199]);
    assert.equal(report.cuts.length, 1);
    assert.equal(report.cuts[0]?.file, path);
    const later = segmentFiles(dir).length;
    assert.equal(report.removedSegments.length, before.size - later);
    assert.ok(report.removedSegments.length > 5);
    assertNothingLost(dir, before);
    await assertRecovered(dir, report, offsets);
  });

  it('cuts a torn tail and an incomplete batch, as an open would', async () => {
    const dir = fresh();
    const offsets = await fillLog(dir, 100);
    const last = segmentFiles(dir).pop();
    assert.ok(last !== undefined);
    appendFileSync(last.path, Buffer.alloc(100, 7));
    const before = segmentBytes(dir);
    const report = await recover(dir);
    assert.deepEqual(
      report.problems.map(({ severity, kind }) => [severity, kind]),
      [['warning', 'tail']],
    );
    assert.deepEqual(
      report.cuts.map((cut) => cut.bytes),
      [100],
    );
    assert.deepEqual(report.removedSegments, []);
    assertNothingLost(dir, before);
    await assertRecovered(dir, report, offsets);

    // The last batch (records 95–99) loses its last record: the four before it are an incomplete batch.
    const incomplete = fresh();
    const batchOffsets = await fillLog(incomplete, 100);
    const { path, position } = locate(incomplete, batchOffsets[99] as number);
    truncateSync(path, position);
    const cutFrom = locate(incomplete, batchOffsets[95] as number).position;
    const partial = segmentBytes(incomplete);
    const repaired = await recover(incomplete);
    assert.match(repaired.problems[0]?.message ?? '', /an incomplete batch/);
    assert.deepEqual(
      repaired.cuts.map((cut) => [cut.file, cut.position, cut.bytes]),
      [[path, cutFrom, position - cutFrom]],
    );
    assertNothingLost(incomplete, partial);
    await assertRecovered(incomplete, repaired, batchOffsets);
  });

  it('repairs damage in the last segment that the log refuses to open with', async () => {
    const dir = fresh();
    const offsets = await fillLog(dir, 100);
    // Damage inside the last segment, and a damaged last record: the tail check finds valid records after the
    // damage (F-40 row 5) and refuses to open.
    for (const i of [96, 99]) {
      const { path, position } = locate(dir, offsets[i] as number);
      flipByte(path, position + 30);
    }
    await assert.rejects(FileLog.open(dir, { segmentBytesMax }), (error) => isSluiceError(error, 'CORRUPT_LOG'));
    const before = segmentBytes(dir);
    const report = await recover(dir);
    assert.equal(report.lastOffset, offsets[94]);
    assertNothingLost(dir, before);
    await assertRecovered(dir, report, offsets);
  });

  it('cuts at a gap left by a missing segment', async () => {
    const dir = fresh();
    const offsets = await fillLog(dir, 600);
    const missing = segmentFiles(dir)[6];
    assert.ok(missing !== undefined);
    unlinkSync(missing.path);
    const before = segmentBytes(dir);
    const report = await recover(dir);
    assert.deepEqual(
      report.problems.map(({ kind }) => kind),
      ['missing-segment'],
    );
    assert.equal(report.end, missing.base);
    assert.deepEqual(report.cuts, []);
    assertNothingLost(dir, before);
    await assertRecovered(dir, report, offsets);
  });

  it('keeps an empty segment at the first base when the first header is damaged', async () => {
    const dir = fresh();
    await fillLog(dir, 200);
    const [first] = segmentFiles(dir);
    assert.ok(first !== undefined);
    flipByte(first.path, 9);
    const before = segmentBytes(dir);
    const report = await recover(dir);
    assert.equal(report.lastOffset, -1);
    assert.equal(report.removedSegments.length, before.size);
    assert.deepEqual(
      segmentFiles(dir).map((segment) => segment.name),
      [first.name],
    );
    assert.equal(statSync(first.path).size, 64);
    // The first segment's name now holds a new, empty segment; its old bytes are in quarantine.
    assertNothingLost(dir, new Map([...before].slice(1)));
    const moved = readdirSync(join(dir, 'quarantine')).find((file) => file.startsWith(`${first.name}.0.`));
    assert.ok(moved !== undefined && readFileSync(join(dir, 'quarantine', moved)).equals(before.get(first.name) as Buffer));
    await assertRecovered(dir, report, []);
  });

  it('keeps an encrypted log encrypted when its first header is the damage', async () => {
    const dir = fresh();
    const encryption = { key: { id: 7, key: randomBytes(32) } };
    {
      await using log = await FileLog.open<Value>(dir, { segmentBytesMax, encryption });
      for (let i = 0; i < 60; i++) await log.append(valueOf(i));
    }
    const files = segmentFiles(dir);
    assert.ok(files.length > 1);
    flipByte((files[0] as (typeof files)[number]).path, 3);
    const report = await recover(dir);
    assert.equal(report.lastOffset, -1);
    await assert.rejects(FileLog.open<Value>(dir, { segmentBytesMax }), (error) => isSluiceError(error, 'KEY_REQUIRED'));
    await using log = await FileLog.open<Value>(dir, { segmentBytesMax, encryption });
    assert.equal(log.encrypted, true);
    assert.equal(await log.append(valueOf(0)), 0);
  });

  it('makes up no header for a log of one segment whose header is the damage: reopened with its key, it is encrypted', async () => {
    const dir = fresh();
    const encryption = { key: { id: 7, key: randomBytes(32) } };
    {
      await using log = await FileLog.open<Value>(dir, { segmentBytesMax: 1 << 20, encryption });
      for (let i = 0; i < 10; i++) await log.append(valueOf(i));
    }
    const files = segmentFiles(dir);
    assert.equal(files.length, 1);
    flipByte((files[0] as (typeof files)[number]).path, 3);
    const report = await recover(dir);
    assert.equal(report.lastOffset, -1);
    assert.deepEqual(segmentFiles(dir), []);
    assert.equal(readdirSync(join(dir, 'quarantine')).length, 1);
    await using log = await FileLog.open<Value>(dir, { encryption });
    assert.equal(log.encrypted, true);
    assert.equal(await log.append(valueOf(0)), 0);
  });

  it('removes the state of views ahead of the recovered log, and they rebuild', async () => {
    const dir = fresh();
    const offsets = await fillLog(dir, 600);
    const views = (): { count: ReduceView<Value, number>; byI: IndexView<Value> } => ({
      count: reduce<Value, number>(1, (n) => n + 1, { initial: 0 }),
      byI: index<Value>(1, (value) => value.i),
    });
    {
      const db = await Sluice.open<Value>(dir, { log: await FileLog.open<Value>(dir, { segmentBytesMax }), views: views() });
      await db.ready();
      await db.close();
    }
    const { path, position } = locate(dir, offsets[402] as number);
    flipByte(path, position + 35);
    const report = await recover(dir);
    assert.deepEqual(
      report.viewsCleared.map((view) => view.name),
      ['byI', 'count'],
    );
    assert.deepEqual(
      report.problems.map(({ kind }) => kind),
      ['record', 'view', 'view'],
    );
    await assertRecovered(dir, report, offsets);
    const db = await Sluice.open<Value>(dir, { log: await FileLog.open<Value>(dir, { segmentBytesMax }), views: views() });
    try {
      const counted = db.views.count as ReduceView<Value, number>;
      assert.equal(await counted.get(), report.records + 1, 'rebuilt from the recovered log (and the append above)');
      const byI = db.views.byI as IndexView<Value>;
      assert.equal((await byI.get(399))?.offset, offsets[399]);
      assert.equal(await byI.get(450), undefined);
    } finally {
      await db.close();
    }
  });

  it('rewrites a segment shared with another link instead of truncating the shared file', async () => {
    const dir = fresh();
    const offsets = await fillLog(dir, 300);
    const { path, position } = locate(dir, offsets[52] as number);
    const elsewhere = join(root, `shared-${count}`);
    linkSync(path, elsewhere);
    flipByte(path, position + 33);
    const shared = readFileSync(elsewhere);
    // What a recover killed while rewriting leaves behind: it must not stop the next one.
    writeFileSync(`${path}.tmp`, 'partial');
    const report = await recover(dir);
    assert.deepEqual(report.temporaryRemoved, [`${path}.tmp`]);
    assert.equal(report.cuts[0]?.file, path);
    assert.ok(readFileSync(elsewhere).equals(shared), 'the other link keeps every byte');
    assert.notEqual(statSync(path).ino, statSync(elsewhere).ino);
    await assertRecovered(dir, report, offsets);
  });

  it('gives the segment that becomes the last one a file of its own when a backup shares it', async () => {
    const dir = fresh();
    const offsets = await fillLog(dir, 300);
    const files = segmentFiles(dir);
    const sealed = files[files.length - 2] as (typeof files)[number];
    const head = files[files.length - 1] as (typeof files)[number];
    // A backup hard-links sealed segments; then the head's header is damaged, so recover moves the head away.
    const elsewhere = join(root, `linked-${count}`);
    linkSync(sealed.path, elsewhere);
    const shared = readFileSync(elsewhere);
    flipByte(head.path, 3);
    const report = await recover(dir);
    assert.deepEqual(
      report.removedSegments.map((removal) => removal.file),
      [head.path],
    );
    assert.notEqual(statSync(sealed.path).ino, statSync(elsewhere).ino);
    // The writer now appends to (and erases in) that segment: never through the other link.
    await assertRecovered(dir, report, offsets);
    await using log = await FileLog.open<Value>(dir, { segmentBytesMax });
    await log.delete([report.lastOffset]);
    assert.ok(readFileSync(elsewhere).equals(shared), 'the other link keeps every byte');
  });

  it('fails with a code, modifying nothing, where a LOCK that is a directory makes the log unusable', async () => {
    const dir = fresh();
    await fillLog(dir, 20);
    mkdirSync(join(dir, 'LOCK'));
    const before = treeOf(dir);
    await assert.rejects(check(dir), (error) => isSluiceError(error, 'NOT_A_LOG'));
    await assert.rejects(recover(dir), (error) => isSluiceError(error, 'NOT_A_LOG'));
    await assert.rejects(FileLog.open(dir), (error) => isSluiceError(error, 'NOT_A_LOG'));
    assert.deepEqual(treeOf(dir), before);
  });

  it('leaves a record whose deletion was interrupted to the next open, which finishes it', async () => {
    const dir = fresh();
    const offsets = await fillLog(dir, 300);
    const offset = offsets[77] as number;
    await journalDeletes(dir, [offset]);
    const { path, position } = locate(dir, offset);
    flipByte(path, position + 36);
    const report = await recover(dir);
    assert.equal(report.changed, false);
    assert.deepEqual(
      report.problems.map(({ kind }) => kind),
      ['delete'],
    );
    await (await FileLog.open(dir, { segmentBytesMax })).close();
    const health = await check(dir);
    assert.deepEqual(health.problems, []);
    await using log = await FileLog.open(dir, { readonly: true });
    await assert.rejects(log.get(offset), (error) => isSluiceError(error, 'RECORD_DELETED'));
  });

  it('changes nothing in a healthy log, refuses a locked one, and what is not a log', async () => {
    const dir = fresh();
    await fillLog(dir, 100);
    const before = treeOf(dir);
    const report = await recover(dir);
    assert.equal(report.changed, false);
    assert.deepEqual(treeOf(dir), before);

    const log = await FileLog.open(dir, { segmentBytesMax });
    try {
      await assert.rejects(recover(dir), (error) => isSluiceError(error, 'LOCKED'));
    } finally {
      await log.close();
    }

    const other = fresh();
    mkdirSync(other);
    writeFileSync(join(other, 'notes.txt'), 'not a log');
    await assert.rejects(recover(other), (error) => isSluiceError(error, 'NOT_A_LOG'));
    assert.deepEqual(readdirSync(other), ['notes.txt'], 'no lock file was created');
    await assert.rejects(recover(join(other, 'missing')), (error) => isSluiceError(error, 'LOG_NOT_FOUND'));
    assert.equal(existsSync(join(other, 'missing')), false);
    await assert.rejects(recover(dir, { signal: AbortSignal.abort() }), (error) => isSluiceError(error, 'ABORTED'));
    assert.deepEqual(treeOf(dir), before, 'an aborted recover modifies nothing');
    await assert.rejects(recover(42 as unknown as string), TypeError);
  });
});
