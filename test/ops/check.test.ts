/**
 * `check`: each kind of damage injected into real files is found at its file and position, a healthy log (and
 * one a child process is appending to) passes, and nothing is ever modified.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import { journalDeletes } from '../../src/log/file/deletes.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { check, type CheckReport } from '../../src/ops/check.js';
import { index } from '../../src/views/index-view.js';
import { reduce } from '../../src/views/reduce.js';
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
  type Value,
} from './support.js';

const root = temporaryDirectory('sluice-check-');
let count = 0;
const fresh = (): string => join(root, `log-${count++}`);

/** Runs `check`, asserting it modified nothing. */
async function checked(dir: string): Promise<CheckReport> {
  const before = treeOf(dir);
  const report = await check(dir);
  assert.deepEqual(treeOf(dir), before, 'check modifies nothing');
  return report;
}

function errorsOf(report: CheckReport): Array<{ kind: string; file: string; position: number; offset: number | null }> {
  return report.problems
    .filter((problem) => problem.severity === 'error')
    .map(({ kind, file, position, offset }) => ({ kind, file, position, offset }));
}

/** A log of 600 records (about 18 segments) and the offsets of its records. */
async function damageable(): Promise<{ dir: string; offsets: number[] }> {
  const dir = fresh();
  return { dir, offsets: await fillLog(dir, 600) };
}

describe('check', () => {
  it('passes a healthy log with views, reading every record', async () => {
    const dir = fresh();
    const offsets = await fillLog(dir, 300);
    const db = await Sluice.open<Value>(dir, {
      log: await FileLog.open<Value>(dir, { segmentBytesMax }),
      views: { count: reduce(1, (n: number) => n + 1, { initial: 0 }), byI: index(2, (value: Value) => value.i) },
    });
    await db.ready();
    await db.close();
    const progress: number[] = [];
    const report = await check(dir, { onProgress: (p) => progress.push(p.bytesDone) });
    assert.equal(report.healthy, true, JSON.stringify(report.problems));
    assert.deepEqual(report.problems, []);
    assert.equal(report.records, 300);
    assert.equal(report.segments, segmentFiles(dir).length);
    assert.ok(report.segments > 5);
    assert.equal(report.firstOffset, 0);
    assert.equal(report.lastOffset, offsets[offsets.length - 1]);
    assert.deepEqual(
      report.views.map((view) => [view.name, view.storage, view.version, view.since]),
      [
        ['byI', 'lmdb', 2, report.lastOffset],
        ['count', 'state-file', 1, report.lastOffset],
      ],
    );
    assert.equal(progress[progress.length - 1], report.bytes, 'the last progress report is the whole log');
  });

  it('finds a flipped byte of a record in a sealed segment: its file, position and offset', async () => {
    const { dir, offsets } = await damageable();
    const offset = offsets[101] as number;
    const { path, position } = locate(dir, offset);
    flipByte(path, position + 35);
    const report = await checked(dir);
    assert.equal(report.healthy, false);
    assert.deepEqual(errorsOf(report), [{ kind: 'record', file: path, position, offset }]);
    assert.match(report.problems[0]?.message ?? '', /checksum/);
    assert.match(report.problems[0]?.message ?? '', /resume at offset/);
    // The valid prefix ends with the last whole batch before the damaged record (batches of 5).
    assert.equal(report.lastOffset, offsets[99]);
    assert.equal(report.records, 599, 'every other record is still read');
  });

  it('finds a truncated middle segment', async () => {
    const { dir } = await damageable();
    const middle = segmentFiles(dir)[5];
    assert.ok(middle !== undefined);
    const size = readFileSync(middle.path).length;
    truncateSync(middle.path, size - 10);
    const report = await checked(dir);
    const errors = errorsOf(report);
    assert.equal(report.healthy, false);
    assert.ok(errors.some((error) => error.kind === 'continuity' && error.file === middle.path && error.position === size - 10));
    assert.ok(errors.some((error) => error.kind === 'record' && error.file === middle.path), 'the cut frame is damage too');
    assert.ok(report.lastOffset < (segmentFiles(dir)[6]?.base ?? 0));
  });

  it('finds a damaged segment header, and a header that names another base', async () => {
    const { dir } = await damageable();
    const [, second, third] = segmentFiles(dir);
    assert.ok(second !== undefined && third !== undefined);
    flipByte(second.path, 3);
    const report = await checked(dir);
    assert.deepEqual(
      errorsOf(report).map(({ kind, file }) => [kind, file]),
      [['header', second.path]],
    );
    assert.match(report.problems[0]?.message ?? '', /magic/);
    assert.equal(report.lastOffset < second.base, true);

    // A valid header copied under another name: its base disagrees with the name (F-7).
    flipByte(second.path, 3);
    const header = readFileSync(second.path).subarray(0, 64);
    const bytes = readFileSync(third.path);
    header.copy(bytes, 0);
    writeFileSync(third.path, bytes);
    const renamed = await checked(dir);
    assert.deepEqual(
      errorsOf(renamed).map(({ kind, file, position }) => [kind, file, position]),
      [['header', third.path, 16]],
    );
  });

  it('finds a missing segment between two others', async () => {
    const { dir } = await damageable();
    const missing = segmentFiles(dir)[7];
    assert.ok(missing !== undefined);
    unlinkSync(missing.path);
    const report = await checked(dir);
    assert.deepEqual(errorsOf(report), [{ kind: 'missing-segment', file: missing.path, position: 0, offset: missing.base }]);
  });

  it('accepts a log whose first segments were trimmed (the first offset is a later base)', async () => {
    const { dir, offsets } = await damageable();
    const [first, second, third] = segmentFiles(dir);
    assert.ok(first !== undefined && second !== undefined && third !== undefined);
    unlinkSync(first.path);
    unlinkSync(second.path);
    const report = await checked(dir);
    assert.equal(report.healthy, true, JSON.stringify(report.problems));
    assert.equal(report.firstOffset, third.base);
    assert.equal(report.lastOffset, offsets[offsets.length - 1]);
  });

  it('takes a torn tail as a warning (the next open cuts it), and damage followed by records as an error', async () => {
    const { dir, offsets } = await damageable();
    const last = segmentFiles(dir).pop();
    assert.ok(last !== undefined);
    appendFileSync(last.path, Buffer.from('a torn write'));
    const torn = await checked(dir);
    assert.equal(torn.healthy, true);
    assert.deepEqual(
      torn.problems.map(({ severity, kind, file }) => [severity, kind, file]),
      [['warning', 'tail', last.path]],
    );
    assert.equal(torn.lastOffset, offsets[offsets.length - 1]);

    truncateSync(last.path, readFileSync(last.path).length - 'a torn write'.length);
    const offset = offsets[offsets.length - 3] as number;
    const { position } = locate(dir, offset);
    flipByte(last.path, position + 33);
    const damaged = await checked(dir);
    assert.equal(damaged.healthy, false);
    assert.deepEqual(errorsOf(damaged), [{ kind: 'record', file: last.path, position, offset }]);
    assert.match(damaged.problems[0]?.message ?? '', /valid records resume/);
  });

  it('finds view state ahead of the log, damaged, or not at a record', async () => {
    const dir = fresh();
    const offsets = await fillLog(dir, 300);
    const views = { count: reduce(1, (n: number) => n + 1, { initial: 0 }), byI: index(1, (value: Value) => value.i) };
    const db = await Sluice.open<Value>(dir, { log: await FileLog.open<Value>(dir, { segmentBytesMax }), views });
    await db.ready();
    await db.close();
    // The log loses its last batches (as after a crash of a machine), the views keep their state.
    const cut = offsets[290] as number;
    const { path, position } = locate(dir, cut);
    truncateSync(path, position);
    for (const segment of segmentFiles(dir)) if (segment.base > cut) unlinkSync(segment.path);
    const report = await checked(dir);
    assert.equal(report.healthy, false);
    assert.deepEqual(
      errorsOf(report).map(({ kind, file, offset }) => [kind, file, offset]),
      [
        ['view', join(dir, 'views', 'byI', 'index.mdb'), offsets[299]],
        ['view', join(dir, 'views', 'count', 'state'), offsets[299]],
      ],
    );
    assert.match(report.problems[0]?.message ?? '', /past the log's last record/);

    // A damaged state file, and an index whose since points into the middle of a record.
    const state = join(dir, 'views', 'count', 'state');
    flipByte(state, 20);
    rmSync(join(dir, 'views', 'byI'), { recursive: true });
    const other = await Sluice.open<Value>(dir, {
      log: await FileLog.open<Value>(dir, { segmentBytesMax }),
      views: { byI: index(1, (value: Value) => value.i) },
    });
    await other.ready();
    await other.close();
    const { open: openLmdb } = await import('lmdb');
    const environment = openLmdb({ path: join(dir, 'views', 'byI', 'index.mdb'), compression: false });
    await environment.openDB({ name: 'meta' }).put('since', (offsets[100] as number) + 3);
    await environment.close();
    const again = await checked(dir);
    assert.deepEqual(
      errorsOf(again).map(({ kind, file }) => [kind, file]),
      [
        ['view', join(dir, 'views', 'byI', 'index.mdb')],
        ['view', state],
      ],
    );
    assert.match(again.problems[0]?.message ?? '', /where no record starts/);
    assert.match(again.problems[1]?.message ?? '', /checksum/);

    // F-99: an index left with unsynced commits by a process of this boot is fine (a writer may be running); one
    // left before the system restarted cannot be trusted, and is reported without being opened.
    const marker = join(dir, 'views', 'byI', 'index.mdb.unsynced');
    writeFileSync(marker, `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}\n`);
    assert.match((await checked(dir)).problems[0]?.message ?? '', /where no record starts/);
    writeFileSync(marker, 'another boot\n');
    const restarted = await checked(dir);
    assert.deepEqual(restarted.problems[0]?.file, join(dir, 'views', 'byI', 'index.mdb'));
    assert.match(restarted.problems[0]?.message ?? '', /never synced, made before the system restarted; the view rebuilds/);
    // A marker that is not a small regular file is reported, never followed or waited on (a FIFO would block a read).
    unlinkSync(marker);
    execFileSync('mkfifo', [marker]);
    assert.match((await checked(dir)).problems[0]?.message ?? '', /index\.mdb\.unsynced is not a marker the view wrote/);
    unlinkSync(marker);
    writeFileSync(join(dir, 'elsewhere'), `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}\n`);
    symlinkSync(join(dir, 'elsewhere'), marker);
    assert.match((await checked(dir)).problems[0]?.message ?? '', /index\.mdb\.unsynced cannot be read \(ELOOP\)/);
    unlinkSync(marker);
    writeFileSync(marker, 'x'.repeat(129));
    assert.match((await checked(dir)).problems[0]?.message ?? '', /not a marker the view wrote/);
  });

  it('takes a record in the DELETES journal that fails its checksum for a deletion in progress, not damage', async () => {
    const { dir, offsets } = await damageable();
    const offset = offsets[222] as number;
    await journalDeletes(dir, [offset]);
    const { path, position } = locate(dir, offset);
    flipByte(path, position + 40);
    const report = await checked(dir);
    assert.equal(report.healthy, true, JSON.stringify(report.problems));
    assert.deepEqual(
      report.problems.map(({ severity, kind, file, position: at, offset: of }) => [severity, kind, file, at, of]),
      [['warning', 'delete', path, position, offset]],
    );
    assert.equal(report.records, 600);
    // Without the journal, the same bytes are damage.
    unlinkSync(join(dir, 'DELETES'));
    assert.deepEqual(errorsOf(await checked(dir)), [{ kind: 'record', file: path, position, offset }]);
  });

  it('reports a stale lock and a leftover temporary segment as warnings', async () => {
    const { dir } = await damageable();
    writeFileSync(join(dir, 'LOCK'), '999999999:1');
    writeFileSync(join(dir, '00000000000099999999.seg.tmp'), 'partial');
    const report = await checked(dir);
    assert.equal(report.healthy, true);
    assert.equal(report.writer, 'stale');
    assert.deepEqual(
      report.problems.map(({ severity, kind }) => [severity, kind]),
      [
        ['warning', 'lock'],
        ['warning', 'temporary'],
      ],
    );
  });

  it('passes a log that a child process is appending to, again and again', async () => {
    const dir = fresh();
    const ackFile = join(root, `acks-${count}`);
    const child = startAppender(dir, ackFile);
    try {
      await ready(child);
      await waitUntil(() => readAcks(ackFile).length >= 50, 'appends');
      for (let round = 0; round < 4; round++) {
        const acknowledged = readAcks(ackFile);
        const lastAcknowledged = acknowledged[acknowledged.length - 1]?.offsets.at(-1) ?? -1;
        const report = await check(dir);
        assert.equal(report.healthy, true, JSON.stringify(report.problems));
        assert.equal(report.writer, 'running');
        assert.deepEqual(report.problems, []);
        assert.ok(report.lastOffset >= lastAcknowledged, 'every acknowledged record was checked');
        assert.deepEqual(report.views.map((view) => view.name), ['byI', 'count']);
      }
    } finally {
      await kill(child);
    }
  });

  it('refuses what is not a log, and modifies nothing', async () => {
    const other = fresh();
    mkdirSync(other);
    writeFileSync(join(other, 'notes.txt'), 'not a log');
    await assert.rejects(check(other), (error) => isSluiceError(error, 'NOT_A_LOG'));
    await assert.rejects(check(join(other, 'notes.txt')), (error) => isSluiceError(error, 'NOT_A_LOG'));
    await assert.rejects(check(join(other, 'nothing')), (error) => isSluiceError(error, 'LOG_NOT_FOUND'));
    assert.deepEqual([...treeOf(other).keys()], ['notes.txt']);
    const empty = fresh();
    mkdirSync(empty);
    const report = await check(empty);
    assert.equal(report.healthy, true);
    assert.equal(report.lastOffset, -1);
  });

  it('validates its arguments and stops when aborted', async () => {
    const { dir } = await damageable();
    await assert.rejects(check(''), TypeError);
    await assert.rejects(check(dir, { signal: 'stop' as unknown as AbortSignal }), TypeError);
    await assert.rejects(check(dir, { onProgress: 1 as unknown as () => void }), TypeError);
    await assert.rejects(check(dir, { signal: AbortSignal.abort() }), (error) => isSluiceError(error, 'ABORTED'));
  });
});
