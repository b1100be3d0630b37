/**
 * Durability under real process kills. A child process appends to a FileLog as fast as it can (single values and
 * batches of 1–20, several appends in flight at once, some with keys, some values larger than a segment) and
 * records every acknowledged append in an "ack file" the moment its promise resolves. The parent kills it with
 * SIGKILL after a seeded-random number of acknowledged records, reopens the log and checks:
 * - every acknowledged record (of this and every earlier round) is there, at its offset, with its value and key;
 * - the log holds whole batches only, in call order, with no gap: unacknowledged records that survived are
 *   always complete batches, never part of one;
 * - `since` is the last record, and the next append lands right after it and reads back.
 * The same directory goes through every round, so later rounds start from a log recovered after a kill. Segments
 * are 4 KiB, so kills land around rollovers too.
 *
 * Seeded (mulberry32): the batch sizes, keys, values, appends in flight and kill points follow from the seed, which
 * every assertion message prints; rerun with SLUICE_KILL_SEED=<seed>. Only the exact moment the kill lands (how
 * far the child got past the kill point) varies from run to run.
 *
 * Acknowledgements go to a file with a synchronous write as each append resolves (stdout, a pipe, is
 * asynchronous in Node and only tells the parent when to kill): a line in that file proves the append resolved.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileLog, type Durability } from '../../src/log/file/file-log.js';
import { frameBytes } from '../../src/log/file/format.js';
import type { LogRecord } from '../../src/log/log.js';
import { mulberry32, temporaryDirectory, type BatchValue } from '../helpers.js';
import { ackedAppendsSource, runUntilKilled } from '../kill-harness.js';

const baseSeed = process.env.SLUICE_KILL_SEED === undefined ? 0x5eed_c0de : Number(process.env.SLUICE_KILL_SEED);
const rounds = 5;
const segmentBytesMax = 4096;
const ackedRecordsMin = 50;
const ackedRecordsMax = 2000;

type Value = BatchValue;

// Shared by the parent and the child: the child gets their compiled source text (`toString()`).

/**
 * Mostly small values; every seventh batch has values of 0.4–1.6 KiB (so it is often larger than a segment and
 * gets one of its own), and now and then a value alone is larger than a segment.
 */
function valueOf(b: number, i: number, n: number): Value {
  let size = (b * 31 + i * 17) % 120;
  if (b % 7 === 2) size = 400 + ((b * 131 + i * 71) % 1200);
  if (b % 23 === 5 && i === 0) size = 3000 + ((b * 977) % 3000);
  return { b, i, n, p: 'p'.repeat(size) };
}

function keyOf(b: number): string | undefined {
  return b % 3 === 0 ? `key-${b}` : undefined;
}

const sharedSource = [mulberry32, valueOf, keyOf].map((fn) => fn.toString()).join('\n');

const childScript = `
import { openSync, writeSync } from 'node:fs';
import { FileLog } from ${JSON.stringify(new URL('../../src/log/file/file-log.js', import.meta.url).href)};
${sharedSource}
const config = JSON.parse(process.env.SLUICE_KILL_CONFIG);
const random = mulberry32(config.seed);
const log = await FileLog.open(config.dir, { durability: config.durability, segmentBytesMax: config.segmentBytesMax });
let next = log.since < 0 ? 0 : (await log.get(log.since)).b + 1;
const acks = openSync(config.ackFile, 'a');
const inFlightMax = 1 + Math.floor(random() * 8);
function start() {
  const b = next++;
  const single = random() < 0.4;
  const n = single ? 1 : 1 + Math.floor(random() * 20);
  const values = [];
  for (let i = 0; i < n; i++) values.push(valueOf(b, i, n));
  const key = keyOf(b);
  const options = key === undefined ? {} : { key };
  const pending = single ? log.append(values[0], options).then((offset) => [offset]) : log.append(values, options);
  acknowledge(pending, { b, n });
}
${ackedAppendsSource('inFlightMax')}
pump();
`;

interface Ack {
  readonly b: number;
  readonly n: number;
  readonly offsets: number[];
}

/** Runs the child until it has acknowledged `target` records, kills it, and returns its acknowledgements. */
function appendUntilKilled(
  config: { dir: string; durability: Durability; seed: number; ackFile: string },
  target: number,
  context: string,
): Promise<Ack[]> {
  const { ackFile, ...rest } = config;
  return runUntilKilled<Ack>(childScript, { ...rest, segmentBytesMax }, ackFile, target, (ack) => ack.n, context);
}

function keyText(record: LogRecord<Value>): string | undefined {
  return record.key === undefined ? undefined : Buffer.from(record.key).toString('utf8');
}

function sizeOf(value: Value, key: string | undefined): number {
  return frameBytes(key === undefined ? 0 : Buffer.byteLength(key), Buffer.byteLength(JSON.stringify(value)));
}

async function collect(log: FileLog<Value>): Promise<LogRecord<Value>[]> {
  const records: LogRecord<Value>[] = [];
  for await (const record of log.stream()) records.push(record);
  return records;
}

/**
 * Reopens the log after a kill and checks it against everything acknowledged so far; appends one more batch
 * (recorded in `acked`) to show the log goes on working. Returns what the round found, for the diagnostics.
 */
async function verify(
  dir: string,
  durability: Durability,
  acked: readonly Ack[],
  context: string,
): Promise<{ records: number; batches: number; next: Ack }> {
  const log = await FileLog.open<Value>(dir, { durability, segmentBytesMax });
  try {
    const records = await collect(log);
    // Whole batches only, numbered 0, 1, 2, … in call order, each exactly as appended.
    let index = 0;
    let b = 0;
    while (index < records.length) {
      const first = records[index] as LogRecord<Value>;
      const found = JSON.stringify(first.value).slice(0, 80);
      assert.equal(first.value.b, b, `${context}: batch ${b} expected at offset ${first.offset}, found ${found}`);
      const n = first.value.n;
      for (let i = 0; i < n; i++) {
        const record = records[index + i];
        assert.ok(record !== undefined, `${context}: the log ends inside batch ${b}: ${i} of its ${n} records`);
        const where = `record ${i} of batch ${b} at offset ${record.offset}`;
        assert.deepEqual(record.value, valueOf(b, i, n), `${context}: ${where}`);
        assert.equal(keyText(record), keyOf(b), `${context}: the key of ${where}`);
        const following = records[index + i + 1];
        const end = record.offset + sizeOf(record.value, keyOf(b));
        if (following !== undefined) assert.equal(following.offset, end, `${context}: records are back to back`);
      }
      index += n;
      b++;
    }
    // Every acknowledged record is there, at its offset; `get` finds it too.
    const byOffset = new Map(records.map((record) => [record.offset, record]));
    for (const ack of acked) {
      assert.equal(ack.offsets.length, ack.n, `${context}: ack of batch ${ack.b}`);
      for (const [i, offset] of ack.offsets.entries()) {
        const record = byOffset.get(offset);
        const what = `acknowledged record ${i} of batch ${ack.b} (offset ${offset})`;
        assert.ok(record !== undefined, `${context}: ${what} is lost`);
        assert.deepEqual(record.value, valueOf(ack.b, i, ack.n), `${context}: ${what}`);
        assert.deepEqual(await log.get(offset), record.value, `${context}: get(${offset})`);
      }
    }
    const last = records[records.length - 1];
    assert.equal(log.since, last === undefined ? -1 : last.offset, `${context}: since is the last record`);
    // The log goes on: the next batch lands right after the last record.
    const values = [valueOf(b, 0, 2), valueOf(b, 1, 2)];
    const key = keyOf(b);
    const offsets = await log.append(values, key === undefined ? {} : { key });
    const expectedStart = last === undefined ? 0 : last.offset + sizeOf(last.value, keyOf(last.value.b));
    assert.equal(offsets[0], expectedStart, `${context}: the next append follows the last record`);
    assert.equal(log.since, offsets[1], `${context}: since after the next append`);
    assert.deepEqual(await log.get(offsets[1] as number), values[1], `${context}: the next append reads back`);
    return { records: records.length, batches: b, next: { b, n: 2, offsets } };
  } finally {
    await log.close();
  }
}

/** The size of the newest segment file (64 bytes: the kill came right after a rollover). */
function lastSegmentBytes(dir: string): number {
  const names = readdirSync(dir).filter((name) => name.endsWith('.seg')).sort();
  return statSync(join(dir, names[names.length - 1] as string)).size;
}

describe('FileLog survives SIGKILL', () => {
  const root = temporaryDirectory('sluice-kill-');

  for (const [modeIndex, durability] of (['os', 'disk'] as const).entries()) {
    const name = `keeps every acknowledged record and whole batches only (durability: ${durability})`;
    it(name, { timeout: 60_000 }, async (t) => {
      const dir = join(root, durability);
      const acked: Ack[] = [];
      for (let round = 0; round < rounds; round++) {
        // Everything but the exact moment of the kill follows from the seed.
        const seed = (baseSeed + modeIndex * 1000 + round) >>> 0;
        const random = mulberry32(seed);
        const target = ackedRecordsMin + Math.floor(random() * (ackedRecordsMax - ackedRecordsMin + 1));
        const childSeed = Math.floor(random() * 2 ** 32);
        const context =
          `SLUICE_KILL_SEED=${baseSeed}, durability ${durability}, round ${round} ` +
          `(round seed ${seed}, killed after ${target} acknowledged records)`;
        const ackFile = join(root, `${durability}-${round}.acks`);
        const acks = await appendUntilKilled({ dir, durability, seed: childSeed, ackFile }, target, context);
        const ackedRecords = acks.reduce((sum, ack) => sum + ack.n, 0);
        assert.ok(ackedRecords >= target, `${context}: only ${ackedRecords} records acknowledged`);
        const killedAt = lastSegmentBytes(dir);
        acked.push(...acks);
        const found = await verify(dir, durability, acked, context);
        acked.push(found.next);
        const lastAcked = acks[acks.length - 1] as Ack;
        const segments = readdirSync(dir).filter((file) => file.endsWith('.seg')).length;
        const torn = existsSync(join(dir, 'quarantine')) ? readdirSync(join(dir, 'quarantine')).length : 0;
        t.diagnostic(
          `${context}: ${ackedRecords} records acknowledged, ` +
            `${found.batches - lastAcked.b - 1} unacknowledged whole batches kept; ` +
            `the last segment held ${killedAt} bytes; ${found.records} records in ${segments} segments; ` +
            `${torn} torn writes quarantined so far`,
        );
      }
    });
  }
});
