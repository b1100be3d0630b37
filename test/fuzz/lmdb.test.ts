/**
 * Damaged LMDB files of an index view (FORMAT.md F-52, F-98), each case in a child process because LMDB can kill
 * the process it runs in. A data file cut short (the common result of a copy or a disk that lost the end of a
 * file) is found before LMDB maps it: no crash, a `report`, a rebuild, and every answer right. Damage inside the
 * pages is LMDB's to find: those cases only must not hang, and what they led to (crashes, wrong answers, errors)
 * is counted and printed; README "Hostile files and values" states that limit.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Sluice } from '../../src/db/sluice.js';
import { check } from '../../src/ops/check.js';
import { index } from '../../src/views/index-view.js';
import { temporaryDirectory } from '../helpers.js';
import { bounded, fuzzCases, fuzzSeed } from './engine.js';

const root = temporaryDirectory('sluice-fuzz-lmdb-');
const child = fileURLToPath(new URL('./lmdb-child.js', import.meta.url));
const recordCount = 600;

async function buildTemplate(): Promise<string> {
  const dir = join(root, 'template');
  const db = await Sluice.open<{ i: number }>(dir);
  const view = db.use('byI', index<{ i: number }>(1, (value) => value.i));
  await db.append(Array.from({ length: recordCount }, (_, i) => ({ i })));
  assert.equal((await view.get(recordCount - 1))?.value.i, recordCount - 1);
  await db.close();
  return dir;
}

interface CaseEnd {
  readonly seed: number;
  readonly rebuilt: boolean;
  readonly wrong: number;
  readonly missing: number;
  readonly errors: readonly string[];
}

interface Run {
  readonly ends: CaseEnd[];
  /** Seeds whose case killed the child. */
  readonly crashed: number[];
}

/** Runs `cases` cases from `seed` in children, starting a new child after each crash. */
async function runChildren(template: string, kind: 'cut' | 'pages' | 'page', seed: number, cases: number): Promise<Run> {
  const run: Run = { ends: [], crashed: [] };
  let next = seed;
  while (next < seed + cases) {
    const work = join(root, `work-${kind}-${next}`);
    const started: number[] = [];
    const process_ = spawn(process.execPath, [child, template, work, String(next), String(seed + cases - next), kind], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    process_.stdout.setEncoding('utf8').on('data', (data: string) => (out += data));
    process_.stderr.setEncoding('utf8').on('data', (data: string) => (err += data));
    const status = await bounded(120_000, `the ${kind} child from seed ${next}`, () =>
      new Promise<{ code: number | null; signal: string | null }>((resolve) => process_.once('exit', (code, signal) => resolve({ code, signal }))),
    );
    for (const line of out.split('\n').filter((text) => text !== '')) {
      const parsed = JSON.parse(line) as { start?: number } & CaseEnd;
      if (parsed.start !== undefined) started.push(parsed.start);
      else run.ends.push(parsed);
    }
    const last = started[started.length - 1] as number;
    if (status.code === 0) break;
    assert.ok(!run.ends.some((end) => end.seed === last), `the child failed after case ${last}: ${err}`);
    // A case that killed the child: only a signal raised inside LMDB (SIGBUS, SIGSEGV) may; an exit (an uncaught
    // error, an unhandled rejection) is a failure.
    assert.ok(status.signal !== null, `case ${last} ended the child (${status.code}): ${err.slice(0, 2000)}`);
    run.crashed.push(last);
    next = last + 1;
  }
  return run;
}

describe('fuzz: LMDB files of index views', () => {
  it('a data file cut short is found before LMDB maps it: no crash, a rebuild, right answers; check reports it', async () => {
    const template = await buildTemplate();
    const cases = fuzzCases(12, 0.002);
    const run = await runChildren(template, 'cut', fuzzSeed(4_000_000), cases);
    assert.deepEqual(run.crashed, [], 'no cut file crashes the process');
    assert.equal(run.ends.length, cases);
    for (const end of run.ends) {
      assert.equal(end.wrong + end.missing, 0, `seed ${end.seed}: every answer equals the log's`);
      assert.deepEqual(end.errors, [], `seed ${end.seed}`);
    }
    assert.ok(run.ends.some((end) => end.rebuilt), 'cut files are reported and rebuilt');
    // check judges the file without letting LMDB map it, in this process.
    const { truncateSync, cpSync } = await import('node:fs');
    const dir = join(root, 'check-cut');
    cpSync(template, dir, { recursive: true });
    truncateSync(join(dir, 'views', 'byI', 'index.mdb'), 3 * 4096 + 100);
    const report = await check(dir);
    assert.ok(report.problems.some((problem) => problem.kind === 'view' && /cut short/.test(problem.message)), JSON.stringify(report.problems));
  });

  it('damage inside pages never answers with another record; crashes and lost entries are counted', async () => {
    const template = join(root, 'template');
    const cases = fuzzCases(8, 0.002);
    const garbage = await runChildren(template, 'pages', fuzzSeed(4_100_000), cases);
    const zeroed = await runChildren(template, 'page', fuzzSeed(4_200_000), cases);
    const run: Run = { ends: [...garbage.ends, ...zeroed.ends], crashed: [...garbage.crashed, ...zeroed.crashed] };
    assert.equal(run.ends.length + run.crashed.length, 2 * cases);
    // An entry garbled into another record's offset is caught by re-deriving its key from the record.
    for (const end of run.ends) {
      assert.equal(end.wrong, 0, `seed ${end.seed}: no answer with another record`);
      for (const error of end.errors) assert.ok(['CORRUPT_VIEW', 'NOT_A_RECORD', 'VIEW_FAILED'].includes(error), `seed ${end.seed}: ${error}`);
    }
    const missing = run.ends.filter((end) => end.missing > 0).length;
    const errors = run.ends.filter((end) => end.errors.length > 0).length;
    console.log(`# LMDB page damage: ${2 * cases} cases, ${run.crashed.length} crashed the child, ${missing} lost entries, ${errors} failed with errors`);
  });
});
