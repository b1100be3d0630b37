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
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FlumeOffsetLog } from '../../../src/log/flume-offset/flume-offset-log.js';
import { mulberry32, temporaryDirectory, type BatchValue } from '../../helpers.js';
import { collect } from '../../conformance/log-suite.js';
import { ackedAppendsSource, runUntilKilled } from '../../kill-harness.js';
import { Upstream } from './upstream.js';

const baseSeed = process.env.SLUICE_KILL_SEED === undefined ? 0x0ff5_e7 : Number(process.env.SLUICE_KILL_SEED);
const rounds = 3;

function valueOf(b: number, i: number, n: number): BatchValue {
  return { b, i, n, p: 'p'.repeat((b * 31 + i * 17) % 300) };
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
  const n = single ? 1 : 1 + Math.floor(random() * 20);
  const values = [];
  for (let i = 0; i < n; i++) values.push(valueOf(b, i, n));
  const pending = single ? log.append(values[0]).then((offset) => [offset]) : log.append(values);
  acknowledge(pending, { b, n });
}
${ackedAppendsSource('4')}
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
        const acked = await appendUntilKilled({ file, width, seed }, ackFile, 50 + Math.floor(random() * 1500), context);
        const log = await FlumeOffsetLog.open<BatchValue>(file, { offsetWidth: width });
        try {
          const records = await collect(log.stream());
          let index = 0;
          for (let b = 0; index < records.length; b++) {
            const first = records[index]?.value as BatchValue;
            assert.equal(first.b, b, `${context}: batch ${b} expected at record ${index}`);
            for (let i = 0; i < first.n; i++) {
              assert.deepEqual(records[index + i]?.value, valueOf(b, i, first.n), `${context}: record ${i} of batch ${b}`);
            }
            index += first.n;
          }
          const byOffset = new Map(records.map((record) => [record.offset, record.value]));
          for (const ack of acked) {
            for (const [i, offset] of ack.offsets.entries()) {
              assert.deepEqual(byOffset.get(offset), valueOf(ack.b, i, ack.n), `${context}: acknowledged ${ack.b}/${i} at ${offset}`);
            }
          }
          assert.equal(log.since, records[records.length - 1]?.offset ?? -1);
          const copy = join(dir, `copy-${round}`);
          copyFileSync(file, copy);
          assert.equal((await Upstream.open(copy, width)).since, log.since, `${context}: flumelog-offset agrees`);
          const last = records[records.length - 1]?.value as BatchValue;
          const after = await log.append(valueOf(last.b + 1, 0, 1));
          assert.deepEqual(await log.get(after), valueOf(last.b + 1, 0, 1));
        } finally {
          await log.close();
        }
      }
    });
  }
});
