/**
 * A real failed write, without root: the child process runs under a file-size limit (RLIMIT_FSIZE), so the
 * kernel fails the write that would take a file past it with EFBIG (SIGXFSZ is ignored, as Node does anyway, so
 * write() returns the error instead of killing the process; a write that crosses the limit is first cut short,
 * then the rest fails). The limit is per file, in 1024-byte blocks for bash's `ulimit -f`.
 *
 * The child appends ~1 KiB records until an append rejects, then reports: the error (`WRITE_FAILED`, caused by
 * EFBIG), that later appends and `sync` reject with that same error object (sticky), that `since`, `get` and
 * streams still show exactly the acknowledged records, and that `close` works. The parent then looks at the
 * segment files (the failed write was truncated away: the last segment ends exactly at the last acknowledged
 * record), reopens the log without the limit, finds exactly the acknowledged records, and appends again.
 *
 * Where the failure happens:
 * - inside a segment: 64 MiB segments, a 64-block limit: the first segment hits the limit (with the 64-byte
 *   header counted), in the middle of a write that carries several appends (1–3 in flight, batches of 1–5);
 * - at a rollover, on the first write into a new segment: 16 KiB segments never reach a 24-block limit, but a
 *   batch larger than a segment gets a segment of its own, and that segment's first write crosses the limit;
 * - at a rollover, when creating the new segment fails: a per-file limit of one block or more never fails a
 *   64-byte header, so the child appends freely and the parent then lowers its limit to 0 bytes with
 *   `prlimit` right before the append that must start a new segment (skipped when prlimit is missing).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileLog, type Durability } from '../../src/log/file/file-log.js';
import { frameBytes, headerBytes, segmentNamePattern } from '../../src/log/file/format.js';
import type { LogRecord } from '../../src/log/log.js';
import { mulberry32, temporaryDirectory, type BatchValue } from '../helpers.js';

const seed = 0xf11e;

type Value = BatchValue;

// Shared by the parent and the child: the child gets their compiled source text (`toString()`).

/** About 1 KiB per record. */
function valueOf(b: number, i: number, n: number): Value {
  return { b, i, n, p: 'x'.repeat(1000) };
}

/**
 * The appends of group `group` (issued together, awaited together): one entry per call, its record count, or
 * `0` for a single (non-batch) append.
 */
function planOf(plan: string, group: number, ackedRecords: number, random: () => number): number[] {
  if (plan === 'mixed') {
    const calls: number[] = [];
    const count = 1 + Math.floor(random() * 3);
    for (let c = 0; c < count; c++) calls.push(random() < 0.4 ? 0 : 1 + Math.floor(random() * 5));
    return calls;
  }
  if (plan === 'small-then-big') return ackedRecords < 40 ? [group % 2 === 0 ? 0 : 1 + (group % 3)] : [30];
  return [0];
}

const sharedSource = [mulberry32, valueOf, planOf].map((fn) => fn.toString()).join('\n');

const childScript = `
import { createInterface } from 'node:readline';
import { FileLog } from ${JSON.stringify(new URL('../../src/log/file/file-log.js', import.meta.url).href)};
${sharedSource}
const config = JSON.parse(process.env.SLUICE_WRITE_FAILURE);
const random = mulberry32(config.seed);
const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const log = await FileLog.open(config.dir, {
  durability: config.durability,
  ...(config.segmentBytesMax === undefined ? {} : { segmentBytesMax: config.segmentBytesMax }),
});
const describe = (error) => ({
  name: error?.name,
  code: error?.code,
  message: error?.message,
  causeCode: error?.cause?.code,
  causeSyscall: error?.cause?.syscall,
  file: error?.file,
});
const outcome = async (promise) => {
  try {
    return { value: await promise };
  } catch (error) {
    return { error: describe(error), same: error === failure };
  }
};
const acked = [];
let ackedRecords = 0;
let failure;
let failedCalls = 0;
let allFailedAlike = true;
let b = 0;
let limited = false;
for (let group = 0; failure === undefined; group++) {
  if (group > 100000) throw new Error('no append ever failed');
  if (config.limitAfterRecords !== undefined && !limited && ackedRecords >= config.limitAfterRecords) {
    // Ask the parent to lower our file-size limit, and wait until it has.
    process.stdout.write('limit\\n');
    await stdin.next();
    limited = true;
  }
  const calls = planOf(config.plan, group, ackedRecords, random).map((n) => {
    const id = b++;
    const count = Math.max(n, 1);
    const values = Array.from({ length: count }, (_, i) => valueOf(id, i, count));
    const pending = n === 0 ? log.append(values[0]).then((offset) => [offset]) : log.append(values);
    return pending.then((offsets) => ({ b: id, n: count, offsets }));
  });
  for (const result of await Promise.allSettled(calls)) {
    if (result.status === 'fulfilled') {
      acked.push(result.value);
      ackedRecords += result.value.n;
    } else {
      failure ??= result.reason;
      failedCalls++;
      if (result.reason !== failure) allFailedAlike = false;
    }
  }
}
const lastAcked = acked.at(-1);
const firstAcked = acked[0];
const collect = async (options) => {
  const offsets = [];
  for await (const record of log.stream(options)) offsets.push(record.offset);
  return offsets;
};
const report = {
  acked,
  error: describe(failure),
  failedCalls,
  allFailedAlike,
  afterwards: {
    append: await outcome(log.append(valueOf(b, 0, 1))),
    batch: await outcome(log.append([valueOf(b, 0, 2), valueOf(b, 1, 2)])),
    big: await outcome(log.append(Array.from({ length: 40 }, (_, i) => valueOf(b, i, 40)))),
    sync: await outcome(log.sync()),
  },
  since: log.since,
  status: log.status,
  getFirst: firstAcked === undefined ? null : await outcome(log.get(firstAcked.offsets[0])),
  getLast: lastAcked === undefined ? null : await outcome(log.get(lastAcked.offsets.at(-1))),
  stream: await outcome(collect()),
  reverse: await outcome(collect({ reverse: true })),
  segments: log.segments.bases.length,
};
report.close = await outcome(log.close().then(() => 'closed'));
process.stdout.write(JSON.stringify(report) + '\\n');
process.exit(0);
`;

interface Ack {
  readonly b: number;
  readonly n: number;
  readonly offsets: number[];
}

interface ErrorReport {
  readonly name: string;
  readonly code: string | undefined;
  readonly message: string;
  readonly causeCode: string | undefined;
  readonly causeSyscall: string | undefined;
  readonly file: string | undefined;
}

type Outcome = { readonly value: unknown } | { readonly error: ErrorReport; readonly same: boolean };

interface Report {
  readonly acked: Ack[];
  readonly error: ErrorReport;
  readonly failedCalls: number;
  readonly allFailedAlike: boolean;
  readonly afterwards: Record<'append' | 'batch' | 'big' | 'sync', Outcome>;
  readonly since: number;
  readonly status: string;
  readonly getFirst: Outcome | null;
  readonly getLast: Outcome | null;
  readonly stream: Outcome;
  readonly reverse: Outcome;
  readonly segments: number;
  readonly close: Outcome;
}

interface Scenario {
  readonly name: string;
  readonly plan: 'mixed' | 'small-then-big' | 'singles';
  readonly segmentBytesMax: number | undefined;
  /** `ulimit -f` for the whole child, in 1024-byte blocks. */
  readonly limitBlocks: number | 'unlimited';
  /** Lower the limit to 0 bytes with prlimit once this many records are acknowledged. */
  readonly limitAfterRecords?: number;
}

const scenarios: Scenario[] = [
  { name: 'inside a segment', plan: 'mixed', segmentBytesMax: undefined, limitBlocks: 64 },
  {
    name: 'at a rollover: the first write into a new segment fails',
    plan: 'small-then-big',
    segmentBytesMax: 16 * 1024,
    limitBlocks: 24,
  },
  {
    name: 'at a rollover: creating the new segment fails',
    plan: 'singles',
    segmentBytesMax: 4096,
    limitBlocks: 'unlimited',
    // 1 KiB records, three to a 4 KiB segment: after six the next one starts a segment.
    limitAfterRecords: 6,
  },
];

const hasPrlimit = (() => {
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Runs the child under the scenario's limit and returns its report. */
async function runChild(scenario: Scenario, dir: string, durability: Durability): Promise<Report> {
  const { plan, segmentBytesMax, limitAfterRecords } = scenario;
  const config = { dir, durability, seed, plan, segmentBytesMax, limitAfterRecords };
  // `exec` keeps the pid, so prlimit can find the node process; the script and node's path are bash's $1, $0.
  const command = `trap '' XFSZ; ulimit -f ${scenario.limitBlocks}; exec "$0" --input-type=module -e "$1"`;
  const child = spawn('bash', ['-c', command, process.execPath, childScript], {
    env: { ...process.env, SLUICE_WRITE_FAILURE: JSON.stringify(config) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (data: string) => (stderr += data));
  child.stdout.setEncoding('utf8').on('data', (data: string) => {
    stdout += data;
    if (stdout.startsWith('limit\n')) {
      stdout = stdout.slice('limit\n'.length);
      execFileSync('prlimit', ['--pid', String(child.pid), '--fsize=0:']);
      child.stdin.write('go\n');
    }
  });
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  assert.equal(code, 0, `the child failed (${code ?? signal}): ${stderr}`);
  return JSON.parse(stdout) as Report;
}

interface SegmentFile {
  readonly base: number;
  readonly size: number;
}

function segmentFiles(dir: string): SegmentFile[] {
  return readdirSync(dir)
    .filter((name) => segmentNamePattern.test(name))
    .sort()
    .map((name) => ({ base: Number(name.slice(0, 20)), size: statSync(join(dir, name)).size }));
}

function endOf(ack: Ack | undefined): number {
  if (ack === undefined) return 0;
  const last = ack.offsets[ack.offsets.length - 1] as number;
  return last + frameBytes(0, Buffer.byteLength(JSON.stringify(valueOf(ack.b, ack.n - 1, ack.n))));
}

function assertSameError(outcome: Outcome | null, what: string): void {
  assert.ok(outcome !== null && 'error' in outcome, `${what}: rejects`);
  assert.equal(outcome.error.code, 'WRITE_FAILED', `${what}: with WRITE_FAILED`);
  assert.ok(outcome.same, `${what}: with the same error object as the failed append`);
}

async function collect(log: FileLog<Value>): Promise<LogRecord<Value>[]> {
  const records: LogRecord<Value>[] = [];
  for await (const record of log.stream()) records.push(record);
  return records;
}

describe('FileLog after a real failed write (EFBIG under a file-size limit)', () => {
  const root = temporaryDirectory('sluice-write-failure-');

  for (const [index, scenario] of scenarios.entries()) {
    for (const durability of ['os', 'disk'] as const) {
      const skip = scenario.limitAfterRecords !== undefined && !hasPrlimit && 'prlimit (util-linux) is not installed';
      it(`${scenario.name} (durability: ${durability})`, { skip, timeout: 30_000 }, async (t) => {
        const dir = join(root, `${index}-${durability}`);
        const report = await runChild(scenario, dir, durability);
        const acked = report.acked;
        const offsets = acked.flatMap((ack) => ack.offsets);
        const lastAcked = acked[acked.length - 1];
        const ackedEnd = endOf(lastAcked);
        const lastOffset = offsets[offsets.length - 1] ?? -1;
        t.diagnostic(
          `${offsets.length} records acknowledged in ${acked.length} appends, then ${report.failedCalls} ` +
            `append(s) failed: ${report.error.message} (file ${report.error.file})`,
        );

        // The failure, as the child saw it.
        assert.ok(offsets.length > 0, 'some appends succeeded before the failure');
        assert.equal(report.error.code, 'WRITE_FAILED');
        assert.equal(report.error.causeCode, 'EFBIG', 'caused by the kernel refusing the write');
        assert.ok(report.allFailedAlike, 'every append that failed with the write got the same error');
        for (const what of ['append', 'batch', 'big', 'sync'] as const) {
          assertSameError(report.afterwards[what], `${what} after the failure`);
        }
        // Reads go on working, and show the acknowledged records only.
        assert.equal(report.status, 'open');
        assert.equal(report.since, lastOffset, 'since is the last acknowledged record');
        assert.deepEqual(report.getFirst, { value: valueOf(0, 0, (acked[0] as Ack).n) }, 'get of the first record');
        assert.deepEqual(
          report.getLast,
          { value: valueOf((lastAcked as Ack).b, (lastAcked as Ack).n - 1, (lastAcked as Ack).n) },
          'get of the last acknowledged record',
        );
        assert.deepEqual(report.stream, { value: offsets }, 'a stream yields the acknowledged records');
        assert.deepEqual(report.reverse, { value: [...offsets].reverse() }, 'a reverse stream too');
        assert.deepEqual(report.close, { value: 'closed' }, 'close works after the failure');

        // The files: the failed write was truncated away, so the last segment ends at the last acknowledged record.
        const files = segmentFiles(dir);
        const last = files[files.length - 1] as SegmentFile;
        assert.equal(last.size, headerBytes + ackedEnd - last.base, 'the last segment ends at the acknowledged end');
        for (const file of files) assert.ok(file.size <= 64 * 1024, `${file.base}: no segment passed the limit`);
        const temporary = readdirSync(dir).filter((name) => name.endsWith('.tmp'));
        if (scenario.plan === 'mixed') {
          assert.equal(files.length, 1, 'the failure happened inside the first segment');
          assert.ok(last.size < 64 * 1024, 'what the failed write got in before EFBIG (up to the limit) was truncated');
        } else if (scenario.plan === 'small-then-big') {
          assert.ok(files.length >= 3, 'segments rolled over before the failure');
          assert.equal(last.base, ackedEnd, 'the big batch started a segment of its own');
          assert.equal(last.size, headerBytes, 'and its failed first write left only the header');
          assert.equal(report.segments, files.length, 'the log knows the new segment');
        } else {
          assert.equal(temporary.length, 1, 'the new segment was never renamed into place');
          assert.ok(files.length >= 2, 'segments rolled over before the failure');
          assert.ok(ackedEnd - last.base + 1024 > 4096, 'the next record needed a new segment');
          assert.equal(report.segments, files.length, 'the log did not add the segment it failed to create');
        }
        if (scenario.plan !== 'singles') assert.deepEqual(temporary, [], 'no temporary file is left');

        // Reopened without the limit: exactly the acknowledged records, and appends work again.
        const { segmentBytesMax } = scenario;
        const options = { durability, ...(segmentBytesMax === undefined ? {} : { segmentBytesMax }) };
        {
          await using log = await FileLog.open<Value>(dir, options);
          const records = await collect(log);
          assert.deepEqual(
            records.map((record) => record.offset),
            offsets,
            'after reopening: the acknowledged records, nothing else',
          );
          const expected = acked.flatMap((ack) => ack.offsets.map((_, i) => valueOf(ack.b, i, ack.n)));
          assert.deepEqual(
            records.map((record) => record.value),
            expected,
            'with their values',
          );
          assert.equal(log.since, lastOffset, 'since is the last acknowledged record');
          assert.equal(existsSync(join(dir, 'quarantine')), false, 'nothing torn had to be quarantined');
          assert.deepEqual(readdirSync(dir).filter((name) => name.endsWith('.tmp')), [], 'leftovers are removed');
          const next = (lastAcked as Ack).b + 1;
          // The append that could not be written before (a batch larger than a segment, for the big case).
          const count = scenario.plan === 'small-then-big' ? 30 : 3;
          const values = Array.from({ length: count }, (_, i) => valueOf(next, i, count));
          const appended = await log.append(values);
          assert.equal(appended[0], ackedEnd, 'the next append follows the last acknowledged record');
          assert.equal(log.since, appended[appended.length - 1]);
          assert.deepEqual(await log.get(appended[count - 1] as number), values[count - 1]);
          offsets.push(...appended);
        }
        {
          await using log = await FileLog.open<Value>(dir, options);
          assert.deepEqual(
            (await collect(log)).map((record) => record.offset),
            offsets,
            'after a second reopen: everything, once',
          );
        }
      });
    }
  }
});
