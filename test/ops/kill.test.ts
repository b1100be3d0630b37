/**
 * `backup` and `recover` killed with SIGKILL at seeded random moments, in a child process:
 * - a killed backup never modifies the source (which still opens and passes `check`), and its destination either
 *   does not exist or is a complete backup that passes `check`;
 * - a killed recover leaves a log that opens, with every byte of the damaged log either still in it or in
 *   `quarantine/`; recover run again then finishes, and the log passes `check`.
 * The moment of each kill is a seeded fraction of the operation's duration (measured by a first, complete run),
 * counted from when the child starts the operation, drawn towards the end, where the files change; rerun with SLUICE_OPS_KILL_SEED=<seed>. Only where exactly
 * the kill lands varies between runs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { check } from '../../src/ops/check.js';
import { recover } from '../../src/ops/recover.js';
import { index } from '../../src/views/index-view.js';
import { reduce } from '../../src/views/reduce.js';
import { mulberry32, temporaryDirectory } from '../helpers.js';
import { assertNothingLost, fillLog, flipByte, locate, segmentBytes, segmentBytesMax, treeOf, type Value } from './support.js';

const baseSeed = process.env.SLUICE_OPS_KILL_SEED === undefined ? 0x0b5_c0de : Number(process.env.SLUICE_OPS_KILL_SEED);
const rounds = 6;
const root = temporaryDirectory('sluice-ops-kill-');
const indexModule = new URL('../../src/index.js', import.meta.url).href;

/** Runs `operation(...args)` of the package in a child; kills it `killAfterMs` after it started the operation. */
async function runChild(
  operation: 'backup' | 'recover',
  args: readonly string[],
  killAfterMs?: number,
): Promise<{ killed: boolean; durationMs: number }> {
  const script = `
import { ${operation} } from ${JSON.stringify(indexModule)};
const args = JSON.parse(process.env.SLUICE_OPS_ARGS);
process.stdout.write('start\\n');
const startMs = performance.now();
await ${operation}(...args);
process.stdout.write('done ' + (performance.now() - startMs) + '\\n');
`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, SLUICE_OPS_ARGS: JSON.stringify(args) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let timer: NodeJS.Timeout | undefined;
  child.stderr.setEncoding('utf8').on('data', (data: string) => (stderr += data));
  child.stdout.setEncoding('utf8').on('data', (data: string) => {
    stdout += data;
    if (killAfterMs !== undefined && timer === undefined && stdout.includes('start\n')) {
      timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    }
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('close', (exitCode, exitSignal) => resolve([exitCode, exitSignal])),
  );
  clearTimeout(timer);
  if (signal === 'SIGKILL') return { killed: true, durationMs: NaN };
  assert.equal(code, 0, `the ${operation} child failed: ${stderr}`);
  const done = /done ([\d.]+)/.exec(stdout);
  return { killed: false, durationMs: Number(done?.[1]) };
}

/** A kill moment in [0, 1.2 × duration), denser towards the end (the square root of a uniform draw). */
function killPoint(random: () => number, durationMs: number): number {
  return Math.floor(Math.sqrt(random()) * durationMs * 1.2);
}

const views = (): { count: ReturnType<typeof reduce<Value, number>>; byI: ReturnType<typeof index<Value>> } => ({
  count: reduce<Value, number>(1, (n) => n + 1, { initial: 0 }),
  byI: index<Value>(1, (value) => value.i),
});

/** A log of 3000 records in 4 KiB segments (about 90), with a reduce and an index view caught up. */
async function logWithViews(dir: string): Promise<number[]> {
  const offsets = await fillLog(dir, 3000, 10);
  const db = await Sluice.open<Value>(dir, { log: await FileLog.open<Value>(dir, { segmentBytesMax }), views: views() });
  await db.ready();
  await db.close();
  return offsets;
}

describe('operations killed at random moments', () => {
  it('a killed backup leaves the source as it was, and no half-made destination', async () => {
    const source = join(root, 'source');
    await logWithViews(source);
    const before = treeOf(source);
    const expected = await check(source);
    const parent = join(root, 'backups');
    mkdirSync(parent);
    const { durationMs } = await runChild('backup', [source, join(parent, 'calibration')]);
    assert.ok(Number.isFinite(durationMs));
    const random = mulberry32(baseSeed);
    for (let round = 0; round < rounds; round++) {
      const context = `seed ${baseSeed}, round ${round}`;
      const dest = join(parent, `dest-${round}`);
      await runChild('backup', [source, dest], killPoint(random, durationMs));
      assert.deepEqual(treeOf(source), before, `${context}: the source is unchanged`);
      const health = await check(source);
      assert.equal(health.healthy, true, context);
      await (await FileLog.open(source, { readonly: true })).close();
      if (existsSync(dest)) {
        const copy = await check(dest);
        assert.equal(copy.healthy, true, `${context}: ${JSON.stringify(copy.problems)}`);
        assert.equal(copy.lastOffset, expected.lastOffset, `${context}: a backup that exists is complete`);
      }
      // What else is there is only the temporary directories of killed backups, never under the name of a dest.
      for (const name of readdirSync(parent)) {
        assert.ok(/^dest-\d+$|^calibration$|^\.dest-\d+\.backup-\d+-[0-9a-f]{8}\.tmp$/.test(name), `${context}: ${name}`);
      }
    }
  });

  it('a killed recover leaves a log that opens with nothing lost; recover again finishes it', async () => {
    const template = join(root, 'damaged');
    const offsets = await logWithViews(template);
    // Damage in a sealed segment near the start: most segments are moved to quarantine, views are cleared.
    const { path, position } = locate(template, offsets[300] as number);
    flipByte(path, position + 35);
    const original = segmentBytes(template);
    const calibration = join(root, 'calibration');
    cpSync(template, calibration, { recursive: true });
    const { durationMs } = await runChild('recover', [calibration]);
    const finished = await check(calibration);
    assert.equal(finished.healthy, true);
    const random = mulberry32(baseSeed + 1);
    for (let round = 0; round < rounds; round++) {
      const context = `seed ${baseSeed + 1}, round ${round}`;
      const dir = join(root, `recover-${round}`);
      cpSync(template, dir, { recursive: true });
      await runChild('recover', [dir], killPoint(random, durationMs));
      await (await FileLog.open(dir, { readonly: true })).close();
      assertNothingLost(dir, original);
      const again = await recover(dir);
      assert.equal(again.lastOffset, finished.lastOffset, context);
      const health = await check(dir);
      assert.equal(health.healthy, true, `${context}: ${JSON.stringify(health.problems)}`);
      assertNothingLost(dir, original);
      const db = await Sluice.open<Value>(dir, { log: await FileLog.open<Value>(dir, { segmentBytesMax }), views: views() });
      try {
        const count = db.views.count as ReturnType<typeof reduce<Value, number>>;
        assert.equal(await count.get(), health.records, `${context}: the count view matches the recovered log`);
      } finally {
        await db.close();
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
