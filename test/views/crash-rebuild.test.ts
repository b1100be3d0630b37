/**
 * A view killed (SIGKILL) while it catches up resumes from its last checkpoint, not from zero.
 *
 * The parent fills a native log with 400,000 small records (`{ n }`), closes it, and starts a child process that
 * opens the database with a reduce view `count` (the sum of `n`) and prints every `progress` event. The parent
 * polls the view's state file and kills the child as soon as a checkpoint is on disk while the view is still short
 * of the log's last record. It then reads that checkpoint itself (FORMAT.md F-50: header, CRC-32C, JSON body) and
 * streams the log read-only to learn which records the checkpoint covers, and checks that:
 * - the checkpoint is consistent with its `since`: its state is exactly the sum over the records up to `since`;
 * - reopened with the same view version, the view applies exactly the records after the checkpoint (fewer than
 *   the whole log), starting with the first one after it, reports nothing, and ends with the exact sum;
 * - reopened with another view version, the view reports the version change, applies every record from the first
 *   one, and ends with the exact sum too;
 * - after a clean close, the state file holds the whole log's sum at the log's last record.
 * Each progress line of the child is checked as well: the child had applied exactly the records up to that line's
 * `since` (after the checkpoint it started from), each once.
 *
 * Robustness: nothing here depends on timing except where the kill lands, and only its outcome is checked. The
 * child stays alive after catching up (only the kill ends it), and the view checkpoints only after 1 s idle once
 * caught up, so a slow parent still finds a checkpoint short of the end. Should the child nevertheless get to the
 * end first (the checkpoint on disk covers the whole log), the log is made bigger (800,000 more records, then
 * 1,600,000) and the child run again on it, resuming from there; the diagnostics say how many attempts it took.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { crc32c } from '../../src/checksum/crc32c.js';
import { Sluice } from '../../src/db/sluice.js';
import { FileLog } from '../../src/log/file/file-log.js';
import type { LogRecord } from '../../src/log/log.js';
import { reduce } from '../../src/views/reduce.js';
import { countUpTo, fill, type NumberedValue, crashChild } from './crash-harness.js';
import { temporaryDirectory } from '../helpers.js';
import { killWhen } from '../kill-harness.js';

type Value = NumberedValue;

const recordsFirst = 400_000;
const attemptsMax = 3;
const pollMs = 2;
const viewName = 'count';

const stateFileOf = (dir: string): string => join(dir, 'views', viewName, 'state');

/**
 * The child: opens the database with the `count` view (the reducer counts the records it applied) and prints one
 * JSON line per progress event, per report, and once caught up. It never exits by itself: the parent kills it.
 */
const childScript = crashChild(
  `import { reduce } from ${JSON.stringify(new URL('../../src/views/reduce.js', import.meta.url).href)};`,
  'applied',
  `const view = db.use(${JSON.stringify(viewName)}, reduce(1, (sum, n) => {
  applied++;
  return sum + n;
}, { initial: 0, map: (value) => value.n }));
const sum = await view.get();
print({ done: db.viewStatus(${JSON.stringify(viewName)}).since, applied, sum });`,
);

interface Checkpoint {
  readonly version: number;
  readonly since: number;
  readonly state: number;
}

/** Reads a view state file as FORMAT.md F-50 describes it, checking the magic, format version and checksum. */
function readCheckpoint(path: string): Checkpoint {
  const bytes = readFileSync(path);
  assert.ok(bytes.length >= 16, `${path}: ${bytes.length} bytes, shorter than the header`);
  assert.equal(bytes.toString('latin1', 0, 8), 'SLUICEVS', `${path}: magic`);
  assert.equal(bytes.readUInt32LE(8), 1, `${path}: state format version`);
  assert.equal(bytes.readUInt32LE(12), crc32c(bytes, 16, bytes.length), `${path}: the body's CRC-32C`);
  const body = JSON.parse(bytes.toString('utf8', 16)) as Checkpoint;
  assert.ok(Number.isSafeInteger(body.version), `${path}: version ${body.version}`);
  assert.ok(Number.isSafeInteger(body.since) && body.since >= -1, `${path}: since ${body.since}`);
  assert.equal(typeof body.state, 'number', `${path}: state ${JSON.stringify(body.state)}`);
  return body;
}

/** The checkpoint's `since`, or `undefined` while there is no (readable) state file; for polling only. */
function peekSince(path: string): number | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return readCheckpoint(path).since;
  } catch {
    return undefined;
  }
}


type ChildLine =
  | { readonly since: number; readonly applied: number }
  | { readonly report: string }
  | { readonly done: number; readonly applied: number; readonly sum: number };

interface ChildRun {
  readonly lines: ChildLine[];
  /** What the parent saw when it killed: the checkpoint on disk, the last progress `since`, caught up or not. */
  readonly killedAt: {
    readonly stateSince: number | undefined;
    readonly progressSince: number;
    readonly caughtUp: boolean;
  };
}

/**
 * Runs the child on `dir` and kills it once a checkpoint newer than `startSince` is on disk while the last
 * progress it printed is short of `lastOffset` (or, failing that, once it says it caught up).
 */
async function runUntilKilled(dir: string, startSince: number, lastOffset: number): Promise<ChildRun> {
  const statePath = stateFileOf(dir);
  const lines: ChildLine[] = [];
  let progressSince = startSince;
  let caughtUp = false;
  let killedAt: ChildRun['killedAt'] | undefined;
  const shouldKill = (): boolean => {
    const stateSince = peekSince(statePath);
    const checkpointed = stateSince !== undefined && stateSince > startSince;
    if (!(checkpointed && progressSince < lastOffset) && !caughtUp) return false;
    killedAt = { stateSince, progressSince, caughtUp };
    return true;
  };
  const onLine = (line: ChildLine): boolean => {
    lines.push(line);
    if ('since' in line) progressSince = line.since;
    if ('done' in line) caughtUp = true;
    return shouldKill();
  };
  await killWhen(childScript, { SLUICE_CRASH_DIR: dir }, onLine, dir, { everyMs: pollMs, check: shouldKill });
  assert.ok(killedAt !== undefined);
  return { lines, killedAt };
}

/** The log as the parent sees it, read-only: every record, and which of them a checkpoint at `since` covers. */
async function scan(dir: string, since: number) {
  const log = await FileLog.open<Value>(dir, { readonly: true });
  let records = 0;
  let sum = 0;
  let covered = 0;
  let coveredSum = 0;
  let firstOffset = -1;
  let firstAfter = -1;
  let lastOffset = -1;
  try {
    for await (const record of log.stream()) {
      if (records === 0) firstOffset = record.offset;
      records++;
      sum += record.value.n;
      lastOffset = record.offset;
      if (record.offset <= since) {
        covered++;
        coveredSum += record.value.n;
      } else if (firstAfter === -1) {
        firstAfter = record.offset;
      }
    }
  } finally {
    await log.close();
  }
  return { records, sum, covered, coveredSum, after: records - covered, firstOffset, firstAfter, lastOffset };
}

interface Crash {
  /** The killed database, never opened since: each case works on a copy. */
  readonly dir: string;
  readonly checkpoint: Checkpoint;
  readonly log: Awaited<ReturnType<typeof scan>>;
  readonly description: string;
}

/** Opens a copy of the crashed database with a `count` view of `version`; counts what the reducer applies. */
async function reopen(crash: Crash, name: string, version: number) {
  const dir = join(crash.dir, '..', name);
  cpSync(crash.dir, dir, { recursive: true });
  const reports: string[] = [];
  const errors: string[] = [];
  let applied = 0;
  let firstApplied = -1;
  const db = await Sluice.open<Value>(dir);
  db.on('report', ({ message }) => reports.push(message));
  db.on('view-error', ({ offset, error }) => errors.push(`at ${offset}: ${error.message}`));
  const view = db.use(
    viewName,
    reduce<Value, number, number>(
      version,
      (sum, n, record: LogRecord<Value>) => {
        if (applied === 0) firstApplied = record.offset;
        applied++;
        return sum + n;
      },
      { initial: 0, map: (value) => value.n },
    ),
  );
  let sum: number;
  let since: number;
  try {
    sum = await view.get();
    // Only `since`: the status may still say 'catching-up' here, while the runner finishes the stream (and
    // possibly writes a checkpoint) after the batch that released the read.
    since = db.viewStatus(viewName).since;
  } finally {
    await db.close();
  }
  return { sum, applied, firstApplied, reports, errors, since, closed: readCheckpoint(stateFileOf(dir)) };
}

describe('a view killed while catching up', { timeout: 60_000 }, () => {
  const root = temporaryDirectory('sluice-crash-rebuild-');
  let crash: Crash | undefined;

  before(async () => {
    const dir = join(root, 'crashed');
    const offsets: number[] = [];
    const notes: string[] = [];
    let startSince = -1;
    for (let attempt = 1; ; attempt++) {
      const count = recordsFirst * 2 ** (attempt - 1);
      await fill(dir, offsets, count);
      const lastOffset = offsets[offsets.length - 1] as number;
      const run = await runUntilKilled(dir, startSince, lastOffset);
      const context = `attempt ${attempt} (${offsets.length} records, from checkpoint ${startSince} to ${lastOffset})`;
      // Every progress line: the child had applied exactly the records after its starting checkpoint, up to `since`.
      for (const line of run.lines) {
        assert.ok(!('report' in line), `${context}: the child reported "${'report' in line ? line.report : ''}"`);
        if ('since' in line) {
          const expected = countUpTo(offsets, line.since) - countUpTo(offsets, startSince);
          assert.equal(line.applied, expected, `${context}: records applied by the child at progress ${line.since}`);
        }
      }
      const checkpoint = readCheckpoint(stateFileOf(dir));
      const { stateSince, progressSince, caughtUp } = run.killedAt;
      notes.push(
        `${context}: killed seeing checkpoint ${stateSince} and progress ${progressSince}` +
          `${caughtUp ? ' (caught up)' : ''}; checkpoint on disk after the kill: ${checkpoint.since}`,
      );
      if (checkpoint.since > startSince && checkpoint.since < lastOffset) {
        const log = await scan(dir, checkpoint.since);
        crash = { dir, checkpoint, log, description: notes.join('; ') };
        return;
      }
      assert.ok(attempt < attemptsMax, `the kill never landed before the view caught up: ${notes.join('; ')}`);
      startSince = checkpoint.since;
    }
  });

  it('resumes from its last checkpoint, applying exactly the records after it', async (t) => {
    assert.ok(crash !== undefined);
    const { checkpoint, log } = crash;
    t.diagnostic(`${crash.description}; ${log.covered} of ${log.records} records covered by the checkpoint`);
    assert.equal(checkpoint.version, 1);
    assert.ok(log.covered > 0 && log.after > 0, `the checkpoint at ${checkpoint.since} lies inside the log`);
    // The checkpoint holds the state as of its own `since`: no more, no less.
    assert.equal(checkpoint.state, log.coveredSum, `the state stored with since ${checkpoint.since}`);

    const reopened = await reopen(crash, 'resume', 1);
    assert.deepEqual(reopened.errors, []);
    assert.deepEqual(reopened.reports, [], 'the same version reopens without a rebuild');
    assert.equal(reopened.sum, log.sum, 'the sum over every record');
    assert.ok(reopened.applied < log.records, `applied ${reopened.applied} of ${log.records}: not from zero`);
    assert.equal(reopened.applied, log.after, 'applied exactly the records after the checkpoint');
    assert.equal(reopened.firstApplied, log.firstAfter, 'started with the first record after the checkpoint');
    assert.equal(reopened.since, log.lastOffset, 'the view is at the last record');
    assert.deepEqual(reopened.closed, { version: 1, since: log.lastOffset, state: log.sum }, 'checkpointed on close');
  });

  it('rebuilds from zero when the view version changed since the kill', async (t) => {
    assert.ok(crash !== undefined);
    const { checkpoint, log } = crash;
    t.diagnostic(`${crash.description}; reopened with version 2 over a version ${checkpoint.version} checkpoint`);
    const reopened = await reopen(crash, 'new-version', 2);
    assert.deepEqual(reopened.errors, []);
    assert.equal(reopened.reports.length, 1, `one report: ${JSON.stringify(reopened.reports)}`);
    assert.match(reopened.reports[0] as string, /\bversion\b.*\b1\b.*\b2\b/);
    assert.equal(reopened.sum, log.sum, 'the sum over every record');
    assert.equal(reopened.applied, log.records, 'applied every record again');
    assert.equal(reopened.firstApplied, log.firstOffset, 'started with the first record of the log');
    assert.equal(reopened.since, log.lastOffset, 'the view is at the last record');
    assert.deepEqual(reopened.closed, { version: 2, since: log.lastOffset, state: log.sum }, 'checkpointed on close');
  });
});
