/**
 * The operations commands run as real processes: `check`, `recover`, `backup`, `restore`, `tail`, and `stat`'s
 * views: exit statuses, `--json` output, progress on stderr, and refusals (an existing destination, a locked log,
 * a directory that is not a log).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { FileLog } from '../../src/log/file/file-log.js';
import type { BackupReport, RestoreReport } from '../../src/ops/backup.js';
import type { CheckReport } from '../../src/ops/check.js';
import type { RecoverReport } from '../../src/ops/recover.js';
import type { LogStat } from '../../src/ops/stat.js';
import { index } from '../../src/views/index-view.js';
import { reduce } from '../../src/views/reduce.js';
import { temporaryDirectory } from '../helpers.js';
import { fillLog, flipByte, locate, segmentBytesMax, type Value } from '../ops/support.js';
import { linesOf, runCli, startCli, waitFor } from './run-cli.js';

const root = temporaryDirectory('sluice-cli-ops-');
let count = 0;
const fresh = (name = 'log'): string => join(root, `${name}-${count++}`);

async function logWithViews(dir: string): Promise<number[]> {
  const offsets = await fillLog(dir, 400);
  const db = await Sluice.open<Value>(dir, {
    log: await FileLog.open<Value>(dir, { segmentBytesMax }),
    views: { count: reduce<Value, number>(1, (n) => n + 1, { initial: 0 }), byI: index<Value>(3, (value) => value.i) },
  });
  await db.ready();
  await db.close();
  return offsets;
}

describe('sluice check / recover / backup / restore / tail', () => {
  it('check exits 0 for a healthy log and 1 with each problem for a damaged one', async () => {
    const dir = fresh();
    const offsets = await logWithViews(dir);
    const healthy = await runCli(['check', dir]);
    assert.equal(healthy.status, 0, healthy.stderr);
    assert.match(healthy.stdout, /healthy \(0 errors, 0 warnings\).* 400 records/);
    assert.match(healthy.stderr, /check \[#+\] 100\.0%/);
    const json = JSON.parse((await runCli(['check', dir, '--json'])).stdout) as CheckReport;
    assert.equal(json.healthy, true);
    assert.equal(json.lastOffset, offsets[399]);
    assert.deepEqual(
      json.views.map((view) => [view.name, view.since]),
      [
        ['byI', offsets[399]],
        ['count', offsets[399]],
      ],
    );

    const { path, position } = locate(dir, offsets[150] as number);
    flipByte(path, position + 34);
    const damaged = await runCli(['check', dir]);
    assert.equal(damaged.status, 1);
    assert.ok(linesOf(damaged.stdout).some((line) => line.startsWith(`error  record  ${path}:${position} (offset ${offsets[150]})`)));
    assert.match(damaged.stdout, /DAMAGED/);
    const report = JSON.parse((await runCli(['check', dir, '--json'])).stdout) as CheckReport;
    assert.equal(report.healthy, false);
    assert.deepEqual(
      report.problems.map(({ kind, file, position: at }) => [kind, file, at]),
      [
        ['record', path, position],
        ['view', join(dir, 'views', 'byI', 'index.mdb'), 0],
        ['view', join(dir, 'views', 'count', 'state'), 0],
      ],
    );
  });

  it('recover repairs a damaged log, after which check exits 0; a running writer makes it exit 1 with LOCKED', async () => {
    const dir = fresh();
    const offsets = await logWithViews(dir);
    const { path, position } = locate(dir, offsets[250] as number);
    flipByte(path, position + 34);
    const writer = await FileLog.open(dir, { segmentBytesMax });
    try {
      const locked = await runCli(['recover', dir]);
      assert.equal(locked.status, 1);
      assert.match(locked.stderr, /^sluice: LOCKED: /m);
    } finally {
      await writer.close();
    }
    const recovered = await runCli(['recover', dir, '--json']);
    assert.equal(recovered.status, 0, recovered.stderr);
    const report = JSON.parse(recovered.stdout) as RecoverReport;
    assert.equal(report.changed, true);
    assert.equal(report.lastOffset, offsets[249]);
    assert.deepEqual(
      report.viewsCleared.map((view) => view.name),
      ['byI', 'count'],
    );
    assert.ok(readdirSync(join(dir, 'quarantine')).length > 1);
    const after = await runCli(['check', dir]);
    assert.equal(after.status, 0, after.stdout);
    const again = await runCli(['recover', dir]);
    assert.equal(again.status, 0);
    assert.match(again.stdout, /nothing to recover; 250 records/);
  });

  it('backup and restore print their reports, and refuse to overwrite', async () => {
    const dir = fresh();
    const offsets = await logWithViews(dir);
    const dest = fresh('backup');
    const backedUp = await runCli(['backup', dir, dest, '--json']);
    assert.equal(backedUp.status, 0, backedUp.stderr);
    assert.match(backedUp.stderr, /backup \[#+\] 100\.0%/);
    const report = JSON.parse(backedUp.stdout) as BackupReport;
    assert.equal(report.lastOffset, offsets[399]);
    assert.ok(report.linked > 0);
    assert.deepEqual(report.views, ['byI', 'count']);
    const copied = await runCli(['backup', dir, fresh('copy'), '--copy']);
    assert.match(copied.stdout, new RegExp(`^backed up .*: \\d+ segments \\(0 linked, \\d+ copied\\), \\d+ bytes, last offset ${offsets[399]}, views: byI, count$`, 'm'));

    const overwrite = await runCli(['backup', dir, dest]);
    assert.equal(overwrite.status, 1);
    assert.match(overwrite.stderr, /^sluice: INVALID_INPUT: .* exists/m);

    const restored = fresh('restored');
    const restoredRun = await runCli(['restore', dest, restored, '--json']);
    assert.equal(restoredRun.status, 0, restoredRun.stderr);
    const json = JSON.parse(restoredRun.stdout) as RestoreReport;
    assert.equal(json.lastOffset, offsets[399]);
    assert.deepEqual(json.views, ['byI', 'count']);
    const twice = await runCli(['restore', dest, restored]);
    assert.equal(twice.status, 1);
    assert.match(twice.stderr, /INVALID_INPUT/);
    assert.equal((await runCli(['check', restored])).status, 0);
  });

  it('operations on what is not a log fail with its code and change nothing; usage mistakes exit 2', async () => {
    const other = fresh('other');
    mkdirSync(other);
    writeFileSync(join(other, 'notes.txt'), 'not a log');
    for (const args of [['check', other], ['recover', other], ['backup', other, fresh('dest')]]) {
      const result = await runCli(args);
      assert.equal(result.status, 1, args.join(' '));
      assert.match(result.stderr, /^sluice: NOT_A_LOG: /m, args.join(' '));
    }
    assert.deepEqual(readdirSync(other), ['notes.txt']);
    const missing = await runCli(['check', join(other, 'missing')]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /LOG_NOT_FOUND/);
    assert.equal(existsSync(join(other, 'missing')), false);
    assert.equal((await runCli(['backup', other])).status, 2);
    assert.equal((await runCli(['tail', other, '-n', 'many'])).status, 2);
  });

  it('tail prints the last records, then follows new ones until SIGINT', async () => {
    const dir = fresh();
    const offsets = await fillLog(dir, 30);
    const tail = startCli(['tail', dir, '-n', '3']);
    await waitFor(() => linesOf(tail.stdout()).length >= 3, 'the last three records');
    assert.deepEqual(
      linesOf(tail.stdout()).map((line) => (JSON.parse(line) as { offset: number }).offset),
      offsets.slice(-3),
    );
    const appended = await runCli(['append', dir], '{"i":30,"text":"new"}\n');
    assert.equal(appended.status, 0, appended.stderr);
    await waitFor(() => linesOf(tail.stdout()).length >= 4, 'the new record');
    assert.deepEqual(JSON.parse(linesOf(tail.stdout())[3] as string), {
      offset: Number(appended.stdout.trim()),
      value: { i: 30, text: 'new' },
    });
    tail.child.kill('SIGINT');
    const result = await tail.exited;
    assert.equal(result.status, 0, result.stderr);

    // -n 0: only what comes after the start. When exactly tail has read the end is unknown, so appends go on
    // until one shows; what it prints must then be a run of those appends, up to the last.
    const none = startCli(['tail', dir, '-n', '0']);
    const later: number[] = [];
    for (let i = 0; linesOf(none.stdout()).length === 0 && i < 200; i++) {
      later.push(Number((await runCli(['append', dir], `"later ${i}"\n`)).stdout.trim()));
    }
    const last = Number((await runCli(['append', dir], '"last"\n')).stdout.trim());
    later.push(last);
    await waitFor(() => linesOf(none.stdout()).some((line) => line.includes('"last"')), 'the last record');
    const printed = linesOf(none.stdout()).map((line) => (JSON.parse(line) as { offset: number }).offset);
    assert.deepEqual(printed, later.slice(later.length - printed.length), 'a run of the appends made after the start');
    none.child.kill('SIGTERM');
    assert.equal((await none.exited).status, 0);
  });

  it('stat lists each view with its version, since and size', async () => {
    const dir = fresh();
    const offsets = await logWithViews(dir);
    const json = JSON.parse((await runCli(['stat', dir, '--json'])).stdout) as LogStat;
    assert.equal(json.records, 400);
    assert.deepEqual(
      json.views.map(({ name, storage, version, since, problem }) => ({ name, storage, version, since, problem })),
      [
        { name: 'byI', storage: 'lmdb', version: 3, since: offsets[399], problem: null },
        { name: 'count', storage: 'state-file', version: 1, since: offsets[399], problem: null },
      ],
    );
    assert.ok(json.views.every((view) => view.bytes > 0));
    const table = await runCli(['stat', dir]);
    assert.match(table.stdout, /^view +storage +version +since +bytes$/m);
    assert.match(table.stdout, new RegExp(`^count +state-file +1 +${offsets[399]} +\\d+$`, 'm'));
  });
});
