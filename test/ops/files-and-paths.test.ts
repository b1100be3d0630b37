/**
 * Files, paths and permissions: everything Sluice creates is owner-only (files 0600, directories 0700) even
 * under a umask of 0, and the operations that write (backup, restore, export, import) never overwrite a target
 * and never follow a symbolic link out of it; nor does the file log's writer (segments, the deletes journal).
 */
import assert from 'node:assert/strict';
import { appendFileSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { segmentName } from '../../src/log/file/format.js';
import { FlumeOffsetLog } from '../../src/log/flume-offset/flume-offset-log.js';
import { backup, restore } from '../../src/ops/backup.js';
import { exportFlumeOffset } from '../../src/ops/export.js';
import { importFlumeOffset } from '../../src/ops/import.js';
import { recover } from '../../src/ops/recover.js';
import { index } from '../../src/views/index-view.js';
import { query } from '../../src/views/query/index.js';
import { reduce } from '../../src/views/reduce.js';
import { temporaryDirectory } from '../helpers.js';
import { runCli } from '../cli/run-cli.js';

const root = temporaryDirectory('sluice-paths-');
let count = 0;
const fresh = (): string => join(root, `case-${count++}`);

/** Every entry under `dir` with its permission bits. */
function modes(dir: string): Array<[string, number, boolean]> {
  const found: Array<[string, number, boolean]> = [];
  const walk = (path: string): void => {
    for (const name of readdirSync(path)) {
      const child = join(path, name);
      const info = lstatSync(child);
      found.push([child, info.mode & 0o777, info.isDirectory()]);
      if (info.isDirectory()) walk(child);
    }
  };
  walk(dir);
  return found;
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error) => isSluiceError(error) && error.code === code);
}

describe('files, paths and permissions', () => {
  it('creates every file 0600 and every directory 0700, whatever the umask', async () => {
    const previous = process.umask(0);
    try {
      const base = fresh();
      const dir = join(base, 'log');
      const db = await Sluice.open<{ i: number }>(dir);
      const counted = db.use('count', reduce<{ i: number }, number>(1, (n) => n + 1, { initial: 0 }));
      const byI = db.use('byI', index<{ i: number }>(1, (value) => value.i));
      const q = db.use('q', query<{ i: number }>(1, { indexes: [{ name: 'i', value: [['value', 'i']] }] }));
      const offsets = await db.append([{ i: 1 }, { i: 2 }, { i: 3 }]);
      await counted.get();
      await byI.get(1);
      for await (const row of q.read({ query: [{ $filter: { value: { i: 2 } } }] })) assert.ok(row);
      await db.delete([offsets[0] as number]);
      await db.close();
      // A torn tail, cut on the next open into quarantine/; recover's quarantine too.
      appendFileSync(join(dir, '00000000000000000000.seg'), Buffer.from([7, 7, 7]));
      await (await FileLog.open(dir)).close();
      await recover(dir);
      const file = join(base, 'flume', 'log.offset');
      const flume = await FlumeOffsetLog.open(file);
      await flume.append({ a: 1 });
      await flume.close();
      appendFileSync(file, Buffer.from([0, 0, 0, 9]));
      await (await FlumeOffsetLog.open(file)).close();
      await backup(dir, join(base, 'backup'));
      await restore(join(base, 'backup'), join(base, 'restored'));
      await exportFlumeOffset(dir, join(base, 'export', 'out.offset'));
      await importFlumeOffset(file, join(base, 'imported'));
      const found = modes(base);
      assert.ok(found.some(([path]) => path.endsWith('index.mdb')) && found.some(([path]) => path.includes('quarantine')));
      for (const [path, mode, directory] of found) {
        assert.equal(mode.toString(8), directory ? '700' : '600', `${path} is owner-only`);
      }
    } finally {
      process.umask(previous);
    }
  });

  it('fileMode widens what is created (0o640 → files 0640, directories 0750) and is validated', async () => {
    const previous = process.umask(0);
    try {
      const base = fresh();
      const dir = join(base, 'log');
      const db = await Sluice.open<{ i: number }>(dir, { fileMode: 0o640 });
      const counted = db.use('count', reduce<{ i: number }, number>(1, (n) => n + 1, { initial: 0 }));
      const byI = db.use('byI', index<{ i: number }>(1, (value) => value.i));
      const offsets = await db.append([{ i: 1 }, { i: 2 }]);
      await counted.get();
      await byI.get(1);
      await db.delete([offsets[0] as number]);
      await db.close();
      appendFileSync(join(dir, '00000000000000000000.seg'), Buffer.from([7, 7, 7]));
      await (await FileLog.open(dir, { fileMode: 0o640 })).close();
      const file = join(base, 'flume', 'log.offset');
      const flume = await FlumeOffsetLog.open(file, { fileMode: 0o640 });
      await flume.append({ a: 1 });
      await flume.close();
      await exportFlumeOffset(dir, join(base, 'flume', 'out.offset'), { fileMode: 0o640 });
      await importFlumeOffset(file, join(base, 'imported'), { fileMode: 0o640 });
      const found = modes(base);
      assert.ok(found.some(([path]) => path.endsWith('index.mdb-lock')) && found.some(([path]) => path.includes('quarantine')));
      for (const [path, mode, directory] of found) assert.equal(mode.toString(8), directory ? '750' : '640', path);
    } finally {
      process.umask(previous);
    }
    const dir = fresh();
    for (const fileMode of [0o777, 0o400, 0o200, 0o1600, -1]) {
      await assert.rejects(FileLog.open(dir, { fileMode }), RangeError, `0o${fileMode.toString(8)}`);
      await assert.rejects(FlumeOffsetLog.open(join(dir, 'x'), { fileMode }), RangeError);
      await assert.rejects(Sluice.open(dir, { fileMode }), RangeError);
    }
    await assert.rejects(FileLog.open(dir, { fileMode: '640' as unknown as number }), TypeError);
    assert.throws(() => lstatSync(dir), /ENOENT/, 'nothing created by a refused open');
  });

  it('the CLI: --file-mode for import and export, checked; an existing target refused', async () => {
    const base = fresh();
    const dir = join(base, 'log');
    const log = await FileLog.open(dir);
    await log.append({ a: 1 });
    await log.close();
    const file = join(base, 'out.offset');
    const exported = await runCli(['export', dir, file, '--format', 'flumelog-offset', '--file-mode', '0640']);
    assert.equal(exported.status, 0, exported.stderr);
    assert.equal((lstatSync(file).mode & 0o777).toString(8), '640');
    // The umask applies as to any mode (the child's is the test's, at most 022): 0640 survives it.
    const imported = await runCli(['import', file, join(base, 'imported'), '--file-mode', '0640']);
    assert.equal(imported.status, 0, imported.stderr);
    assert.equal((lstatSync(join(base, 'imported')).mode & 0o777).toString(8), '750');
    for (const bad of ['0777', '0400', 'rw', '640x']) {
      const refused = await runCli(['export', dir, join(base, `bad-${bad}`), '--format', 'flumelog-offset', '--file-mode', bad]);
      assert.equal(refused.status, 2, `--file-mode ${bad}: a usage error`);
    }
    const again = await runCli(['export', dir, file, '--format', 'flumelog-offset']);
    assert.ok(again.status !== 0 && /INVALID_INPUT/.test(again.stderr), again.stderr);
  });

  it('export never writes over a file or through a symbolic link', async () => {
    const base = fresh();
    const dir = join(base, 'log');
    const log = await FileLog.open(dir);
    await log.append({ a: 1 });
    await log.close();
    const outside = join(base, 'outside');
    writeFileSync(outside, 'precious');
    symlinkSync(outside, join(base, 'link'));
    symlinkSync(join(base, 'nowhere'), join(base, 'dangling'));
    await rejectsWith(exportFlumeOffset(dir, outside), 'INVALID_INPUT');
    await rejectsWith(exportFlumeOffset(dir, join(base, 'link')), 'INVALID_INPUT');
    await rejectsWith(exportFlumeOffset(dir, join(base, 'dangling')), 'INVALID_INPUT');
    assert.equal(readFileSync(outside, 'utf8'), 'precious');
    assert.throws(() => lstatSync(join(base, 'nowhere')), /ENOENT/);
  });

  it('import refuses a symbolic link as its target directory, or under its views, and a target that holds a log', async () => {
    const base = fresh();
    const file = join(base, 'log.offset');
    const flume = await FlumeOffsetLog.open(file);
    await flume.append({ a: 1 });
    await flume.close();
    const elsewhere = join(base, 'elsewhere');
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, join(base, 'link'));
    await rejectsWith(importFlumeOffset(file, join(base, 'link')), 'INVALID_INPUT');
    assert.deepEqual(readdirSync(elsewhere), [], 'nothing written through the link');
    // The views' state would be written where a planted views/, or a view's directory in it, points.
    mkdirSync(join(base, 'views-linked'));
    symlinkSync(elsewhere, join(base, 'views-linked', 'views'));
    await rejectsWith(importFlumeOffset(file, join(base, 'views-linked')), 'INVALID_INPUT');
    mkdirSync(join(base, 'view-linked', 'views'), { recursive: true });
    symlinkSync(elsewhere, join(base, 'view-linked', 'views', 'flumelog-offsets'));
    await rejectsWith(importFlumeOffset(file, join(base, 'view-linked')), 'INVALID_INPUT');
    assert.deepEqual(readdirSync(elsewhere), [], 'nothing written through the links');
    await importFlumeOffset(file, join(base, 'target'));
    await rejectsWith(importFlumeOffset(file, join(base, 'target')), 'INVALID_INPUT');
  });

  it('backup and restore refuse existing or linked targets and linked files in the source', async () => {
    const base = fresh();
    const dir = join(base, 'log');
    const log = await FileLog.open(dir);
    await log.append({ a: 1 });
    await log.close();
    const elsewhere = join(base, 'elsewhere');
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, join(base, 'link'));
    await rejectsWith(backup(dir, join(base, 'link')), 'INVALID_INPUT');
    await rejectsWith(backup(dir, join(base, 'link', 'inside')), 'INVALID_INPUT');
    assert.deepEqual(readdirSync(elsewhere), [], 'nothing written through the link');
    await backup(dir, join(base, 'backup'));
    await rejectsWith(backup(dir, join(base, 'backup')), 'INVALID_INPUT');
    await rejectsWith(restore(join(base, 'backup'), dir), 'INVALID_INPUT');
    await rejectsWith(restore(join(base, 'backup'), join(base, 'link')), 'INVALID_INPUT');
    // A segment planted in the source as a link to a file outside it is never copied.
    const planted = join(base, 'planted');
    mkdirSync(planted);
    writeFileSync(join(base, 'secret'), 'secret');
    const segment = readdirSync(dir).find((name) => name.endsWith('.seg')) as string;
    writeFileSync(join(planted, segment), readFileSync(join(dir, segment)));
    symlinkSync(join(base, 'secret'), join(planted, '00000000000000009999.seg'));
    await assert.rejects(backup(planted, join(base, 'backup-planted')), (error) => isSluiceError(error));
    assert.throws(() => lstatSync(join(base, 'backup-planted')), /ENOENT/);
    // The segment being written, as a link: refused by name too.
    const headLinked = join(base, 'head-linked');
    mkdirSync(headLinked);
    writeFileSync(join(base, 'head-elsewhere'), readFileSync(join(dir, segment)));
    symlinkSync(join(base, 'head-elsewhere'), join(headLinked, segment));
    await rejectsWith(backup(headLinked, join(base, 'backup-head-linked')), 'INVALID_INPUT');
    assert.throws(() => lstatSync(join(base, 'backup-head-linked')), /ENOENT/);
  });

  it('the file log\'s writer refuses a segment or deletes journal that is a symbolic link, writing nothing through it', async () => {
    const base = fresh();
    const outside = join(base, 'outside');
    mkdirSync(outside, { recursive: true });
    const refused = (error: unknown): boolean => isSluiceError(error, 'INVALID_INPUT') && /symbolic link/.test((error as Error).message);
    // The segment being written, and a sealed one, each moved out and linked back in.
    for (const which of ['last', 'sealed'] as const) {
      const dir = join(base, which);
      const log = await FileLog.open<string>(dir, { segmentBytesMax: 4096 });
      for (let i = 0; i < 40; i++) await log.append(`record ${i} ${'p'.repeat(200)}`);
      const bases = log.segments.bases.slice();
      await log.close();
      assert.ok(bases.length > 1);
      const name = segmentName((which === 'last' ? bases[bases.length - 1] : bases[0]) as number);
      const target = join(outside, `${which}-${name}`);
      renameSync(join(dir, name), target);
      symlinkSync(target, join(dir, name));
      const before = readFileSync(target);
      await assert.rejects(FileLog.open(dir), refused);
      assert.deepEqual(readFileSync(target), before, `${which}: nothing written through the link`);
    }
    // The deletes journal, planted before the open and while the log is open.
    const secret = join(outside, 'secret');
    writeFileSync(secret, 'not a journal');
    const dir = join(base, 'journal');
    const log = await FileLog.open<string>(dir);
    const offset = await log.append('a');
    symlinkSync(secret, join(dir, 'DELETES'));
    await assert.rejects(log.delete(offset), refused);
    await log.close();
    await assert.rejects(FileLog.open(dir), refused);
    assert.equal(readFileSync(secret, 'utf8'), 'not a journal');
  });
});
