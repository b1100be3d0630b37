/**
 * Batches on JetStream under real process kills. A child process appends big batches (seeded sizes of 50–400
 * records, three batches in flight, so most of its messages belong to a batch being written) and records every
 * acknowledged batch in an "ack file" the moment it resolves; the parent kills it with SIGKILL after a seeded
 * number of acknowledged records, several times, each round a new writer on the same stream. Meanwhile another
 * process streams the log live through a Sluice database with a view. At the end, the parent checks:
 * - every acknowledged batch is in the log, whole, at its offsets; the log holds whole batches only, forwards,
 *   backwards, through `get` of every offset (`NOT_A_RECORD` for the messages of abandoned batches), `info`, and
 *   the CLI's `dump` and `stat`; and the kills did leave abandoned messages behind (else the test proved nothing);
 * - the next append works and lands after the last message;
 * - the live process saw exactly those records, in order, and its view, like a view built here, equals the
 *   state recomputed from the records.
 * Seeded (mulberry32, `SLUICE_KILL_SEED`): sizes and kill points follow from the seed that assertion messages print.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../../src/db/sluice.js';
import { isSluiceError } from '../../../src/errors.js';
import { JetStreamLog } from '../../../src/log/jetstream/jetstream-log.js';
import type { LogRecord } from '../../../src/log/log.js';
import { reduce } from '../../../src/views/reduce.js';
import { linesOf, runCli } from '../../cli/run-cli.js';
import { collect } from '../../conformance/log-suite.js';
import { mulberry32, temporaryDirectory } from '../../helpers.js';
import { ackedAppendsSource, runUntilKilled } from '../../kill-harness.js';
import { track } from './cleanup.js';
import { natsFixture } from './nats-servers.js';
import { reportingChild, type RunningChild } from './sluice-process.js';

const seed = process.env.SLUICE_KILL_SEED === undefined ? 0x0ba7_c4e5 : Number(process.env.SLUICE_KILL_SEED);
const rounds = 4;
const roundsMax = 12;
/** How long the live process may take, within the test's own limit. */
const readerMsMax = 100_000;
let roundsRun = 0;
const stream = 'kills';

/** Record `i` of batch `b` (of `n`) of round `r`; round -1 is the end mark the live process stops at. */
interface Value {
  readonly r: number;
  readonly b: number;
  readonly i: number;
  readonly n: number;
}

interface Totals {
  readonly count: number;
  readonly digest: number;
}

// Shared with the child processes as source text.
function addTotals(totals: Totals, value: Value): Totals {
  const code = ((value.r + 2) * 7919 + value.b * 131 + value.i) % 1_000_003;
  return { count: totals.count + 1, digest: (totals.digest * 31 + code) % 1_000_000_007 };
}

const sluiceModules = {
  log: new URL('../../../src/log/jetstream/jetstream-log.js', import.meta.url).href,
  db: new URL('../../../src/db/sluice.js', import.meta.url).href,
  reduce: new URL('../../../src/views/reduce.js', import.meta.url).href,
};

const writerScript = `
import { openSync, writeSync } from 'node:fs';
import { JetStreamLog } from ${JSON.stringify(sluiceModules.log)};
${mulberry32.toString()}
const config = JSON.parse(process.env.SLUICE_KILL_CONFIG);
const random = mulberry32(config.seed);
const log = await JetStreamLog.open({ servers: config.servers, stream: config.stream });
const acks = openSync(config.ackFile, 'a');
let b = 0;
function start() {
  const batch = b++;
  const n = 50 + Math.floor(random() * 351);
  const values = Array.from({ length: n }, (_, i) => ({ r: config.round, b: batch, i, n }));
  acknowledge(log.append(values), { r: config.round, b: batch, n });
}
${ackedAppendsSource('3')}
pump();
`;

const readerScript = `
import { JetStreamLog } from ${JSON.stringify(sluiceModules.log)};
import { Sluice } from ${JSON.stringify(sluiceModules.db)};
import { reduce } from ${JSON.stringify(sluiceModules.reduce)};
${addTotals.toString()}
const config = JSON.parse(process.argv[1]);
const log = await JetStreamLog.open({ servers: config.servers, stream: config.stream, readonly: true });
const db = await Sluice.open(config.dir, { log });
const totals = db.use('totals', reduce(1, addTotals, { initial: { count: 0, digest: 0 } }));
process.stdout.write('open\\n');
const seen = [];
for await (const record of db.stream({ live: true })) {
  if (record.value.r === -1) break;
  seen.push([record.offset, record.value.r, record.value.b, record.value.i, record.value.n]);
}
const report = { seen, totals: await totals.get() };
await db.close();
process.stdout.write(JSON.stringify(report) + '\\n');
`;

interface Ack {
  readonly r: number;
  readonly b: number;
  readonly n: number;
  readonly offsets: number[];
}

interface ReaderReport {
  readonly seen: [number, number, number, number, number][];
  readonly totals: Totals;
}

/** The live process: `opened` once its database is open, `report` once it has read the end mark. */
function startReader(servers: string, dir: string): RunningChild<ReaderReport> {
  const args = ['--input-type=module', '-e', readerScript, JSON.stringify({ servers, stream, dir })];
  return reportingChild<ReaderReport>(args, 'the live process', readerMsMax);
}

const nats = natsFixture(1);

describe('JetStream batches survive SIGKILL', { skip: nats.skip, timeout: 120_000 }, () => {
  it('every acknowledged batch whole, no partial batch in any reader, views equal a recomputation', async () => {
    const servers = nats.servers().urls;
    const root = temporaryDirectory();
    const random = mulberry32(seed);
    const context = `seed ${seed}`;
    // The stream exists before the live process opens it read-only.
    await (await track(JetStreamLog.open({ servers, stream }))).close();
    const reader = startReader(servers, join(root, 'reader'));
    const acked: Ack[] = [];
    try {
      await reader.opened;
      // Whether a kill lands inside a batch depends on timing: after the seeded rounds, more rounds run (up to
      // roundsMax) until some kill has left a batch half-written, so the test always tests something.
      const halfWritten = async (): Promise<boolean> => {
        await using probe = await track(JetStreamLog.open({ servers, stream }));
        const { messages, records } = await probe.info();
        return messages > records;
      };
      for (let round = 0; round < roundsMax; round++) {
        if (round >= rounds && (await halfWritten())) break;
        roundsRun = round + 1;
        const target = 300 + Math.floor(random() * 900);
        const acks = await runUntilKilled<Ack>(
          writerScript,
          { servers, stream, round, seed: seed + round },
          join(root, `acks-${round}.jsonl`),
          target,
          (ack) => ack.n,
          `${context}, round ${round}`,
        );
        acked.push(...acks);
      }

      await using log = await track(JetStreamLog.open<Value>({ servers, stream }));
      const records = await collect(log.stream());
      const batches = wholeBatches(records, context);
      // Every acknowledged batch is there, whole, at the offsets its append resolved to.
      for (const ack of acked) {
        const found = batches.get(`${ack.r}.${ack.b}`);
        assert.deepEqual(found, ack.offsets, `${context}: acknowledged batch ${ack.b} of round ${ack.r}`);
      }
      assert.deepEqual(await collect(log.stream({ reverse: true })), [...records].reverse());
      const info = await log.info();
      assert.equal(info.records, records.length, `${context}: info counts the records`);
      assert.ok(info.messages > info.records, `${context}: no kill left a batch half-written (nothing was tested)`);
      const last = records[records.length - 1] as LogRecord<Value>;
      assert.equal(log.since, last.offset, `${context}: since is the last record`);

      // get: each offset up to `since` is a record of a whole batch, or NOT_A_RECORD.
      const byOffset = new Map(records.map((record) => [record.offset, record.value]));
      const getsInFlight = 200;
      for (let from = 0; from <= log.since; from += getsInFlight) {
        const offsets = Array.from({ length: Math.min(getsInFlight, log.since + 1 - from) }, (_, i) => from + i);
        await Promise.all(
          offsets.map(async (offset) => {
            const value = await log.get(offset).catch((error: unknown) => {
              assert.ok(isSluiceError(error, 'NOT_A_RECORD'), `${context}: get(${offset}): ${String(error)}`);
              return undefined;
            });
            assert.deepEqual(value, byOffset.get(offset), `${context}: get(${offset})`);
          }),
        );
      }

      const cliArgs = ['--nats', servers, '--stream', stream];
      const dumped = await runCli(['dump', ...cliArgs]);
      assert.equal(dumped.status, 0, dumped.stderr);
      assert.deepEqual(
        linesOf(dumped.stdout).map((line) => (JSON.parse(line) as { offset: number }).offset),
        records.map((record) => record.offset),
      );
      const stat = await runCli(['stat', ...cliArgs, '--json']);
      assert.equal(stat.status, 0, stat.stderr);
      const statJson = JSON.parse(stat.stdout) as { records: number; lastOffset: number };
      assert.deepEqual([statJson.records, statJson.lastOffset], [records.length, last.offset]);

      // The log goes on: the next batch lands after the last message (abandoned ones included), then the end mark.
      const next = [0, 1].map((i) => ({ r: roundsRun, b: 0, i, n: 2 }));
      const offsets = await log.append(next);
      assert.equal(offsets[0], info.messages, `${context}: the next append follows the last message`);
      assert.deepEqual(await log.get(offsets[1] as number), next[1]);
      const endMark = { r: -1, b: 0, i: 0, n: 1 };
      await log.append(endMark);

      // The views took in every record, the end mark too.
      const expected = [...records.map((record) => record.value), ...next, endMark];
      const recomputed = expected.reduce(addTotals, { count: 0, digest: 0 });
      const report = await reader.report;
      assert.deepEqual(
        report.seen,
        [...records, ...next.map((value, i) => ({ offset: offsets[i] as number, value }))].map(({ offset, value }) => [
          offset,
          value.r,
          value.b,
          value.i,
          value.n,
        ]),
        `${context}: the live process saw the log's records, and nothing else`,
      );
      assert.deepEqual(report.totals, recomputed, `${context}: the live process's view`);
      await using db = await Sluice.open<Value>(join(root, 'here'), { log });
      const totals = db.use('totals', reduce(1, addTotals, { initial: { count: 0, digest: 0 } }));
      assert.deepEqual(await totals.get(), recomputed);
    } finally {
      reader.kill();
    }
  });
});

/**
 * Checks that `records` are whole batches, each once, its records in order at consecutive offsets, and returns
 * each batch's offsets by `<round>.<batch>`.
 */
function wholeBatches(records: readonly LogRecord<Value>[], context: string): Map<string, number[]> {
  const batches = new Map<string, number[]>();
  for (let index = 0; index < records.length; ) {
    const first = records[index] as LogRecord<Value>;
    const { r, b, n } = first.value;
    const name = `${r}.${b}`;
    assert.ok(!batches.has(name), `${context}: batch ${name} twice`);
    const offsets: number[] = [];
    for (let i = 0; i < n; i++) {
      const record = records[index + i];
      assert.ok(record !== undefined, `${context}: the log ends inside batch ${name}`);
      assert.deepEqual(record.value, { r, b, i, n }, `${context}: record ${i} of batch ${name} at ${record.offset}`);
      assert.equal(record.offset, first.offset + i, `${context}: batch ${name} at consecutive offsets`);
      offsets.push(record.offset);
    }
    batches.set(name, offsets);
    index += n;
  }
  return batches;
}
