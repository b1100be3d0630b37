/**
 * Durability of a flumelog-offset file under real process kills. A child appends single values and batches, with
 * several appends in flight, and writes each acknowledged append to an ack file (synchronously, so a line there
 * proves the append resolved); the parent kills it with SIGKILL after a seeded number of acknowledged records,
 * then reopens the file and checks: every acknowledged record is there, at its offset, intact; the file holds
 * whole batches only, in call order (a batch is one write, and a process kill cannot split a write); the next
 * append works; and flumelog-offset 3.4.4 itself opens the file to the same `since`. Rerun a failure with
 * SLUICE_KILL_SEED=<seed>, which the assertion messages print.
 */
import assert from 'node:assert/strict';
import { copyFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FlumeOffsetLog } from '../../../src/log/flume-offset/flume-offset-log.js';
import { endsInside, readWriteIntent } from '../../../src/log/flume-offset/write-intent.js';
import { mulberry32, temporaryDirectory, type BatchValue } from '../../helpers.js';
import { collect } from '../../conformance/log-suite.js';
import { ackedAppendsSource, killWhen, readAcks, runUntilKilled } from '../../kill-harness.js';
import { Upstream } from './upstream.js';

const baseSeed = process.env.SLUICE_KILL_SEED === undefined ? 0x0ff5_e7 : Number(process.env.SLUICE_KILL_SEED);
const rounds = 3;

/** A value of up to `padBytes` (300: small records) or of nearly `padBytes` (larger: many-page batches). */
function valueOf(b: number, i: number, n: number, padBytes = 300): BatchValue {
  const spread = (b * 31 + i * 17) % 300;
  return { b, i, n, p: 'p'.repeat(padBytes <= 300 ? spread : padBytes - spread) };
}

const childScript = `
import { openSync, writeSync } from 'node:fs';
import { FlumeOffsetLog } from ${JSON.stringify(new URL('../../../src/log/flume-offset/flume-offset-log.js', import.meta.url).href)};
${mulberry32.toString()}
${valueOf.toString()}
const config = JSON.parse(process.env.SLUICE_KILL_CONFIG);
const random = mulberry32(config.seed);
const log = await FlumeOffsetLog.open(config.file, { offsetWidth: config.width });
let next = log.since < 0 ? 0 : (await log.get(log.since)).b + 1;
const acks = openSync(config.ackFile, 'a');
function start() {
  const b = next++;
  const single = random() < 0.4;
  const n = single ? 1 : config.batchMin + Math.floor(random() * 20);
  const values = [];
  for (let i = 0; i < n; i++) values.push(valueOf(b, i, n, config.padBytes));
  const pending = single ? log.append(values[0]).then((offset) => [offset]) : log.append(values);
  acknowledge(pending, { b, n });
}
${ackedAppendsSource('config.inFlight')}
pump();
`;

interface Ack {
  readonly b: number;
  readonly n: number;
  readonly offsets: number[];
}

function appendUntilKilled(config: object, ackFile: string, target: number, context: string): Promise<Ack[]> {
  return runUntilKilled<Ack>(childScript, config, ackFile, target, (ack) => ack.n, context);
}

/**
 * Reopens the file after a kill and checks every promise: whole batches in call order, every acknowledged record
 * at its offset, flumelog-offset agreeing on `since`, and a working next append.
 */
async function verifyAfterKill(dir: string, file: string, width: 4 | 8, acked: readonly Ack[], padBytes: number, context: string): Promise<void> {
  const log = await FlumeOffsetLog.open<BatchValue>(file, { offsetWidth: width });
  try {
    const records = await collect(log.stream());
    let index = 0;
    for (let b = 0; index < records.length; b++) {
      const first = records[index]?.value as BatchValue;
      assert.equal(first.b, b, `${context}: batch ${b} expected at record ${index}`);
      for (let i = 0; i < first.n; i++) {
        assert.deepEqual(records[index + i]?.value, valueOf(b, i, first.n, padBytes), `${context}: record ${i} of batch ${b}`);
      }
      index += first.n;
    }
    const byOffset = new Map(records.map((record) => [record.offset, record.value]));
    for (const ack of acked) {
      for (const [i, offset] of ack.offsets.entries()) {
        assert.deepEqual(byOffset.get(offset), valueOf(ack.b, i, ack.n, padBytes), `${context}: acknowledged ${ack.b}/${i} at ${offset}`);
      }
    }
    assert.equal(log.since, records[records.length - 1]?.offset ?? -1);
    const copy = join(dir, `copy-${Date.now()}-${Math.random()}`);
    copyFileSync(file, copy);
    assert.equal((await Upstream.open(copy, width)).since, log.since, `${context}: flumelog-offset agrees`);
    const last = records[records.length - 1]?.value;
    const next = valueOf((last?.b ?? -1) + 1, 0, 1, padBytes);
    const after = await log.append(next);
    assert.deepEqual(await log.get(after), next);
  } finally {
    await log.close();
  }
}

describe('FlumeOffsetLog under SIGKILL', () => {
  for (const width of [4, 8] as const) {
    it(`loses no acknowledged record and keeps whole batches (${width}-byte offsets)`, async () => {
      const dir = temporaryDirectory();
      const file = join(dir, 'log.offset');
      const ackFile = join(dir, 'acks');
      const random = mulberry32(baseSeed + width);
      for (let round = 0; round < rounds; round++) {
        const seed = baseSeed + width * 100 + round;
        const context = `seed ${baseSeed}, width ${width}, round ${round}`;
        const config = { file, width, seed, batchMin: 1, padBytes: 300, inFlight: 4 };
        const acked = await appendUntilKilled(config, ackFile, 50 + Math.floor(random() * 1500), context);
        await verifyAfterKill(dir, file, width, acked, config.padBytes, context);
      }
    });
  }

  it('leaves out a batch whose write a kill stopped between pages (O-10), in rounds until that happened', async () => {
    // Batches of 60 to 80 records of about 128 KB (about 10 MB each): a write spans thousands of pages and takes
    // milliseconds, and the kill comes while the file is seen growing, so it often lands inside a write.
    const random = mulberry32(baseSeed + 7);
    let cutShort = 0;
    for (let round = 0; round < 40 && cutShort < 2; round++) {
      const dir = temporaryDirectory();
      const file = join(dir, 'log.offset');
      const ackFile = join(dir, 'acks');
      const context = `seed ${baseSeed}, many-page batches, round ${round}`;
      const config = { file, width: 4, seed: baseSeed + 700 + round, batchMin: 60, padBytes: 128 * 1024, inFlight: 2, ackFile };
      let counted = 0;
      const count = (ack: Ack): boolean => {
        counted += ack.n;
        return false;
      };
      // Killed when the file is seen growing (a write of megabytes in progress), after a seeded number of polls.
      let polls = Math.floor(random() * 4);
      let lastSize = 0;
      const growing = (): boolean => {
        let size = 0;
        try {
          size = statSync(file).size;
        } catch {
          return false;
        }
        const grew = size !== lastSize;
        lastSize = size;
        return counted > 0 && grew && polls-- <= 0;
      };
      await killWhen<Ack>(childScript, { SLUICE_KILL_CONFIG: JSON.stringify(config) }, count, context, { everyMs: 1, check: growing });
      const acked = readAcks<Ack>(ackFile);
      const intent = readWriteIntent(file);
      const size = statSync(file).size;
      if (endsInside(intent, size)) cutShort++;
      await verifyAfterKill(dir, file, 4, acked, config.padBytes, context);
      rmSync(dir, { recursive: true, force: true });
    }
    assert.ok(cutShort > 0, 'no kill landed inside a write in 40 rounds: the recovery path was not exercised');
  });
});
