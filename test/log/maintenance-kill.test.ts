/**
 * Deletes, trims and compactions under real process kills. A child appends batches (every fourth record with a
 * key that later records repeat), deletes some acknowledged records, trims old segments and compacts, all
 * concurrently, and writes every acknowledgement to a file synchronously; the parent kills
 * it with SIGKILL at a seeded moment and reopens the log: it opens, every acknowledged deletion is in force, every
 * acknowledged record that was neither deleted, trimmed nor superseded by its key is intact at its offset, trims only ever removed a
 * prefix, and the log goes on. Rerun with SLUICE_KILL_SEED=<seed>.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isSluiceError } from '../../src/errors.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { check } from '../../src/ops/check.js';
import { mulberry32, temporaryDirectory } from '../helpers.js';
import { runUntilKilled } from '../kill-harness.js';

const baseSeed = process.env.SLUICE_KILL_SEED === undefined ? 0xde1e7e : Number(process.env.SLUICE_KILL_SEED);
const rounds = 4;

const childScript = `
import { openSync, writeSync } from 'node:fs';
import { FileLog } from ${JSON.stringify(new URL('../../src/log/file/file-log.js', import.meta.url).href)};
${mulberry32.toString()}
const config = JSON.parse(process.env.SLUICE_KILL_CONFIG);
const random = mulberry32(config.seed);
const log = await FileLog.open(config.dir, { segmentBytesMax: 4096 });
const acks = openSync(config.ackFile, 'a');
const ack = (entry) => {
  const line = JSON.stringify(entry) + '\\n';
  writeSync(acks, line);
  process.stdout.write(line);
};
const live = [];
let n = config.start;
async function appends() {
  for (;;) {
    const values = Array.from({ length: 1 + Math.floor(random() * 8) }, () => ({ n: n++, pad: 'q'.repeat(40) }));
    // Every fourth record carries a key that later ones repeat: compaction drops the older ones.
    const offsets = await log.append(values, { key: values.map((value) => (value.n % 4 === 0 ? 'k' + (value.n % 12) : undefined)) });
    ack({ appended: offsets.map((offset, i) => [offset, values[i].n]) });
    // Only records compaction keeps are deleted later (a dropped record is no record to delete).
    live.push(...offsets.filter((_, i) => values[i].n % 4 !== 0));
  }
}
async function maintenance() {
  for (;;) {
    await new Promise((resolve) => setImmediate(resolve));
    if (live.length > 20 && random() < 0.5) {
      const picked = [live[Math.floor(random() * live.length)], live[Math.floor(random() * live.length)]];
      // Announced first: a deletion the kill interrupts may or may not have happened.
      ack({ deleting: picked });
      await log.delete(picked);
      ack({ deleted: picked });
      live.splice(0, live.length, ...live.filter((offset) => !picked.includes(offset)));
    } else if (random() < 0.05) {
      // Compaction: records of 1 of 4 keys each (see appends) supersede each other.
      const result = await log.compact();
      ack({ compacted: result.recordsDropped });
    } else if (live.length > 200 && random() < 0.1) {
      const { firstOffset } = await log.trim({ maxRecords: 150 });
      ack({ trimmed: firstOffset });
      live.splice(0, live.length, ...live.filter((offset) => offset >= firstOffset));
    }
  }
}
appends().catch((error) => { writeSync(2, String(error && error.stack)); process.exit(3); });
maintenance().catch((error) => { writeSync(2, String(error && error.stack)); process.exit(3); });
`;

type Ack =
  | { appended: [number, number][] }
  | { deleting: number[] }
  | { deleted: number[] }
  | { trimmed: number }
  | { compacted: number };

describe('deletes, trims and compactions under SIGKILL', () => {
  it('keep every acknowledged deletion and every other acknowledged record', async () => {
    const dir = temporaryDirectory();
    const logDir = join(dir, 'log');
    const ackFile = join(dir, 'acks');
    const random = mulberry32(baseSeed);
    let start = 0;
    for (let round = 0; round < rounds; round++) {
      const context = `seed ${baseSeed}, round ${round}`;
      const acks = await runUntilKilled<Ack>(
        childScript,
        { dir: logDir, seed: baseSeed + round, start },
        ackFile,
        100 + Math.floor(random() * 400),
        () => 1,
        context,
      );
      const values = new Map<number, number>();
      const deleted = new Set<number>();
      const maybeDeleted = new Set<number>();
      let trimmedTo = 0;
      for (const entry of acks) {
        if ('appended' in entry) for (const [offset, n] of entry.appended) values.set(offset, n);
        else if ('deleting' in entry) for (const offset of entry.deleting) maybeDeleted.add(offset);
        else if ('deleted' in entry) for (const offset of entry.deleted) deleted.add(offset);
        else if ('trimmed' in entry) trimmedTo = Math.max(trimmedTo, entry.trimmed);
      }
      const log = await FileLog.open<{ n: number }>(logDir, { segmentBytesMax: 4096 });
      try {
        assert.ok(log.firstOffset >= trimmedTo, `${context}: the log starts at ${log.firstOffset}, trimmed to ${trimmedTo}`);
        for (const [offset, n] of values) {
          if (offset < log.firstOffset) continue;
          // A deleted record that compaction then dropped reads as not a record when it was not the first of its run.
          const gone = (error: unknown): boolean => isSluiceError(error, 'RECORD_DELETED') || isSluiceError(error, 'NOT_A_RECORD');
          if (deleted.has(offset)) {
            await assert.rejects(log.get(offset), gone, `${context}: ${offset}`);
          } else if (maybeDeleted.has(offset) || n % 4 === 0) {
            // An interrupted deletion, or a keyed record a later one may have superseded: gone or intact, nothing else.
            await log.get(offset).then(
              (value) => assert.equal(value.n, n, `${context}: record ${n} at ${offset}`),
              (error: unknown) => assert.ok(gone(error), `${context}: ${String(error)}`),
            );
          } else {
            assert.equal((await log.get(offset)).n, n, `${context}: record ${n} at ${offset}`);
          }
        }
        let last = -1;
        for await (const record of log.stream()) {
          assert.ok(!deleted.has(record.offset), `${context}: deleted record ${record.offset} streamed`);
          last = Math.max(last, record.value.n);
        }
        start = last + 1;
        const next = await log.append({ n: start++ });
        assert.equal((await log.get(next)).n, start - 1);
      } finally {
        await log.close();
      }
      const report = await check(logDir);
      assert.equal(report.errors, 0, `${context}: check found ${JSON.stringify(report.problems.slice(0, 3))}`);
    }
  });
});
