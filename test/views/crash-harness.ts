import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { FileLog } from '../../src/log/file/file-log.js';
import { killWhen } from '../kill-harness.js';

/**
 * The source of a crash test's child: it opens the database in `SLUICE_CRASH_DIR`, prints one JSON line per
 * progress event (`{ since, <counter> }`) and per report, fails loudly on a view error, runs `body` (the module
 * `imports` bring in; `body` uses the view, counts in `<counter>` and prints `{ done, … }` once caught up), and
 * never exits by itself: the parent kills it.
 */
export function crashChild(imports: string, counter: string, body: string): string {
  return `
import { Sluice } from ${JSON.stringify(new URL('../../src/db/sluice.js', import.meta.url).href)};
${imports}
const print = (line) => process.stdout.write(JSON.stringify(line) + '\\n');
let ${counter} = 0;
const db = await Sluice.open(process.env.SLUICE_CRASH_DIR);
db.on('progress', (progress) => print({ since: progress.since, ${counter} }));
db.on('report', ({ message }) => print({ report: message }));
db.on('view-error', ({ offset, error }) => {
  process.stderr.write('view-error at ' + offset + ': ' + (error && error.stack) + '\\n');
  process.exit(3);
});
${body}
setInterval(() => undefined, 1 << 30);
`;
}

/** The records the crash tests write: `{ n }`, n = 0, 1, … in log order. */
export interface NumberedValue {
  readonly n: number;
}

const appendBatchRecords = 1000;

/** Appends `count` records `{ n }` (n = 0, 1, … continuing the log) in batches; adds their offsets to `offsets`. */
export async function fill(dir: string, offsets: number[], count: number): Promise<void> {
  const log = await FileLog.open<NumberedValue>(dir);
  const first = offsets.length;
  try {
    for (let start = first; start < first + count; start += appendBatchRecords) {
      const values: NumberedValue[] = [];
      for (let n = start; n < Math.min(start + appendBatchRecords, first + count); n++) values.push({ n });
      for (const offset of await log.append(values)) offsets.push(offset);
    }
  } finally {
    await log.close();
  }
}

/** How many of the (ascending) offsets are ≤ `since`. */
export function countUpTo(offsets: readonly number[], since: number): number {
  let low = 0;
  let high = offsets.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((offsets[middle] as number) <= since) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** What a crash test's child printed, and where the parent killed it. */
export interface ChildRun<Line> {
  readonly lines: Line[];
  /** The last progress `since` the child printed before the kill, and whether it had said it caught up. */
  readonly progressSince: number;
  readonly caughtUp: boolean;
}

/**
 * Runs `childScript` (one JSON line per progress event: `{ since, … }`, and `{ done, … }` once caught up) on `dir`
 * and kills it with SIGKILL on its first progress line past `startSince` and short of `lastOffset`.
 */
export async function runCatchUpUntilKilled<Line extends object>(
  childScript: string,
  dir: string,
  startSince: number,
  lastOffset: number,
): Promise<ChildRun<Line>> {
  const lines: Line[] = [];
  let progressSince = startSince;
  let caughtUp = false;
  await killWhen<Line & { since?: number; done?: number }>(
    childScript,
    { SLUICE_CRASH_DIR: dir },
    (line) => {
      lines.push(line);
      if (line.since !== undefined) progressSince = line.since;
      if (line.done !== undefined) caughtUp = true;
      return caughtUp || (progressSince > startSince && progressSince < lastOffset);
    },
    dir,
  );
  return { lines, progressSince, caughtUp };
}

/** Copies `dir` to a sibling `name` (each case works on its own copy of the killed database). */
export function copyDatabase(dir: string, name: string): string {
  const target = join(dir, '..', name);
  cpSync(dir, target, { recursive: true });
  return target;
}

/** A database killed while its view caught up, as the crash tests of LMDB-backed views find it. */
export interface Crash {
  /** The killed database, never opened since: each case works on a copy. */
  readonly dir: string;
  readonly offsets: readonly number[];
  /** The `since` and version committed in LMDB when the child was killed. */
  readonly committed: { readonly since: number; readonly version: number };
  readonly progressSince: number;
  readonly description: string;
}

export interface CrashOptions {
  readonly root: string;
  /** The child: prints `{ since, [countField] }` per progress event, `{ report }`, and `{ done, … }` at the end. */
  readonly childScript: string;
  /** The name of the child's count of records its view was given, in each progress line. */
  readonly countField: string;
  readonly recordsFirst: number;
  readonly attemptsMax: number;
  /** The `since` and version a (copied, closed) database's view committed. */
  readonly readCommitted: (dir: string) => Promise<{ since?: number; version?: number }>;
}

/**
 * Fills a log, runs the child and kills it mid catch-up; if the view caught up first, doubles the log and tries
 * again. Checks on the way that every progress line counted exactly the records up to its `since`, and that the
 * committed `since` is at least the last progress the child printed.
 */
export async function crashMidCatchUp(options: CrashOptions): Promise<Crash> {
  const dir = join(options.root, 'crashed');
  const offsets: number[] = [];
  const notes: string[] = [];
  let startSince = -1;
  for (let attempt = 1; ; attempt++) {
    await fill(dir, offsets, options.recordsFirst * 2 ** (attempt - 1));
    const lastOffset = offsets[offsets.length - 1] as number;
    type Line = { since?: number; report?: string } & Record<string, unknown>;
    const run = await runCatchUpUntilKilled<Line>(options.childScript, dir, startSince, lastOffset);
    const context = `attempt ${attempt} (${offsets.length} records, from ${startSince} to ${lastOffset})`;
    for (const line of run.lines) {
      assert.equal(line.report, undefined, `${context}: the child reported "${String(line.report)}"`);
      if (line.since !== undefined) {
        const expected = countUpTo(offsets, line.since) - countUpTo(offsets, startSince);
        assert.equal(line[options.countField], expected, `${context}: records given to the view at progress ${line.since}`);
      }
    }
    const peek = await options.readCommitted(copyDatabase(dir, `peek-${attempt}`));
    assert.ok(peek.since !== undefined && peek.version !== undefined, `${context}: no since/version in LMDB`);
    const committed = { since: peek.since, version: peek.version };
    notes.push(
      `${context}: killed after progress ${run.progressSince}${run.caughtUp ? ' (caught up)' : ''}; ` +
        `committed in LMDB: since ${committed.since}, version ${committed.version}`,
    );
    assert.ok(
      committed.since >= run.progressSince,
      `${context}: LMDB holds since ${committed.since}, behind the progress ${run.progressSince} the child printed`,
    );
    if (!run.caughtUp && committed.since < lastOffset) {
      return { dir, offsets, committed, progressSince: run.progressSince, description: notes.join('; ') };
    }
    assert.ok(attempt < options.attemptsMax, `the kill never landed before the view caught up: ${notes.join('; ')}`);
    startSince = committed.since;
  }
}

/**
 * What every crash test of a view that commits in batches checks first: the state on disk is of version 1 and
 * covers whole batches of `batchRecords`, some of the log but not all (the kill landed mid-catch-up). Returns how
 * many records it covers.
 */
export function assertCommittedBatches(crash: Crash, batchRecords: number, diagnostic: (message: string) => void): number {
  const { offsets, committed } = crash;
  const records = offsets.length;
  const covered = countUpTo(offsets, committed.since);
  diagnostic(`${crash.description}; ${covered} of ${records} records committed`);
  assert.equal(committed.version, 1);
  assert.ok(covered > 0 && covered < records, `the committed since ${committed.since} lies inside the log`);
  assert.equal(covered % batchRecords, 0, `${covered} records committed: whole batches of ${batchRecords}`);
  return covered;
}
