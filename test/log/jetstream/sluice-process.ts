/**
 * One process of the multi-process tests: a Sluice database in its own directory, on a JetStream log, with a
 * reduce view. It appends its values (all in flight at once), streams the log live until it has seen `records`
 * records, reads its view, prints one JSON line (`ProcessReport`) and exits.
 *
 * Usage: node sluice-process.js '<ProcessTask as JSON>'
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Sluice } from '../../../src/db/sluice.js';
import { JetStreamLog } from '../../../src/log/jetstream/jetstream-log.js';
import { reduce } from '../../../src/views/reduce.js';
import { deferCleanup, track, trackChild } from './cleanup.js';

/** How long `report` waits for a process by default before it stops it and rejects. */
const reportMsMax = 120_000;
/** After TERM (which makes the process print where it is), how long it may take to exit before KILL. */
const termMsMax = 2000;

export interface ProcessTask {
  readonly servers: string;
  readonly stream: string;
  readonly dir: string;
  /** Who appends: recorded in every value. */
  readonly by: string;
  readonly append: readonly number[];
  /** Records the live stream waits for (every process's appends). */
  readonly records: number;
}

export interface Value {
  readonly by: string;
  readonly n: number;
}

/** Depends on every value and on their order, so equal totals mean the same records in the same order. */
export interface Totals {
  readonly count: number;
  readonly sum: number;
  readonly digest: number;
}

export interface ProcessReport {
  readonly appended: number[];
  /** `[offset, by, n]` of every record the live stream yielded, in order. */
  readonly seen: [number, string, number][];
  readonly totals: Totals;
  readonly since: number;
}

export const initialTotals: Totals = { count: 0, sum: 0, digest: 0 };

export function addTotals(totals: Totals, value: Value): Totals {
  const code = value.n * 2 + (value.by === 'a' ? 0 : 1);
  return { count: totals.count + 1, sum: totals.sum + value.n, digest: (totals.digest * 31 + code) % 1_000_000_007 };
}

export function totalsView() {
  return reduce<Value, Totals>(1, addTotals, { initial: initialTotals });
}

/** Opens the database of `task` with its view, on `given` or a new log on the task's stream. */
export async function openDatabase(
  task: Pick<ProcessTask, 'servers' | 'stream' | 'dir'>,
  given?: JetStreamLog<Value>,
): Promise<{ db: Sluice<Value>; totals: ReturnType<typeof totalsView> }> {
  const log =
    given ??
    (await track(JetStreamLog.open<Value>({ servers: task.servers, stream: task.stream, publishTimeoutMs: 2000 })));
  const db = await Sluice.open<Value>(task.dir, { log });
  // Closed after the file's tests if the test that opened it never did (it failed or timed out).
  deferCleanup(() => db.close());
  const totals = db.use('totals', totalsView());
  return { db, totals };
}

/** Appends the task's values and streams live alongside; reports once `records` records were seen. */
export async function runTask(task: ProcessTask): Promise<ProcessReport> {
  const { db, totals } = await openDatabase(task);
  // The parent waits for this line before it disturbs the servers.
  if (process.argv[2] !== undefined) process.stdout.write('open\n');
  try {
    const seen: [number, string, number][] = [];
    let phase = 'appending and streaming';
    // The parent stops a process that takes too long with TERM: say how far it got, for the failure message.
    process.once('SIGTERM', () => {
      process.stderr.write(`stopped while ${phase}: saw ${seen.length} of ${task.records} records; since ${db.since}\n`);
      process.exit(143);
    });
    const streaming = (async () => {
      for await (const record of db.stream({ live: true, limit: task.records })) {
        seen.push([record.offset, record.value.by, record.value.n]);
      }
    })();
    const appended = await Promise.all(task.append.map((n) => db.append({ by: task.by, n })));
    await streaming;
    phase = 'reading the view';
    const report = { appended, seen, totals: await totals.get(), since: db.since };
    phase = 'closing';
    return report;
  } finally {
    await db.close();
  }
}

/** A child process: `opened` resolves once it is ready (its database is open), `report` when it is done. */
export interface RunningChild<Report> {
  readonly opened: Promise<void>;
  readonly report: Promise<Report>;
  /** Kills the process if it still runs (a test that failed must not leave it waiting for records). */
  kill(): void;
}

/** A process running a task. */
export type RunningProcess = RunningChild<ProcessReport>;

/**
 * Runs `task` in a new Node process; `report` rejects with the process's stderr when it fails, or when it has
 * not finished after `timeoutMs` (it is then stopped: TERM, which makes it say how far it got, then KILL). The
 * process is registered with `cleanup.ts`, so it is killed after the file's tests even if a test timed out.
 */
export function runProcess(task: ProcessTask, timeoutMs = reportMsMax): RunningProcess {
  return reportingChild<ProcessReport>([fileURLToPath(import.meta.url), JSON.stringify(task)], `the ${task.by} process`, timeoutMs);
}

/**
 * Spawns `node <args>`, a child that prints `open` on a line of its own once ready, then one JSON report, and
 * exits 0. `report` rejects with the child's stderr when it fails, or when it has not finished after `timeoutMs`
 * (it is then stopped: TERM, which makes a Sluice child say how far it got, then KILL). The child is registered
 * with `cleanup.ts`, so it is killed after the file's tests even if a test timed out.
 */
export function reportingChild<Report>(args: string[], name: string, timeoutMs = reportMsMax): RunningChild<Report> {
  let opened!: () => void;
  const openedPromise = new Promise<void>((resolve) => (opened = resolve));
  const child = trackChild(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  let timedOut = false;
  let killTimer: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    if (!running()) return;
    timedOut = true;
    child.kill('SIGTERM');
    killTimer = setTimeout(() => running() && child.kill('SIGKILL'), termMsMax);
  }, timeoutMs);
  const report = new Promise<Report>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.startsWith('open\n')) opened();
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      opened();
      if (timedOut) reject(new Error(`${name} did not finish within ${timeoutMs} ms: ${stderr}`));
      else if (status === 0) resolve(JSON.parse(stdout.slice('open\n'.length)) as Report);
      else reject(new Error(`${name} exited with ${status ?? signal}: ${stderr}`));
    });
  });
  // Awaited later; a failure must not count as unhandled meanwhile.
  report.catch(() => undefined);
  const kill = (): void => {
    if (running()) child.kill('SIGKILL');
  };
  return { opened: openedPromise, report, kill };
}

if (process.argv[1]?.endsWith('sluice-process.js') === true && process.argv[2] !== undefined) {
  const task = JSON.parse(process.argv[2]) as ProcessTask;
  // A parent that died without killing this process (SIGKILL, a crash) must not leave it waiting for records.
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && process.exit(1), 500).unref();
  runTask(task).then(
    (report) => process.stdout.write(`${JSON.stringify(report)}\n`),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
