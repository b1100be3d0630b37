/**
 * Sluice's FlumeOffsetLog against flumelog-offset 3.4.4 itself: the same inputs give byte-identical files in every
 * format, each reads what the other wrote (values, offsets, deletes), and both recover a torn file alike.
 */
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FlumeOffsetLog } from '../../../src/log/flume-offset/flume-offset-log.js';
import { collect, rejectsWith } from '../../conformance/log-suite.js';
import { mulberry32, temporaryDirectory } from '../../helpers.js';
import { Upstream } from './upstream.js';

const root = temporaryDirectory();
let count = 0;
const fresh = (): string => join(root, `interop-${count++}.offset`);

const formats = [
  { label: '4-byte offsets', width: 4, options: { offsetWidth: 4 } },
  { label: '6-byte offsets', width: 6, options: { offsetWidth: 6 } },
  { label: '8-byte offsets', width: 8, options: { offsetWidth: 8 } },
  { label: 'legacy format', width: 0, options: { legacy: true } },
] as const;

/** Seeded values of many sizes and shapes, some non-ASCII, grouped into single appends and batches. */
function workload(seed: number): unknown[][] {
  const random = mulberry32(seed);
  const groups: unknown[][] = [];
  for (let g = 0; g < 60; g++) {
    const n = random() < 0.3 ? 1 + Math.floor(random() * 6) : 1;
    const group: unknown[] = [];
    for (let i = 0; i < n; i++) {
      group.push({ g, i, text: 'é🌊x'.repeat(Math.floor(random() * 40)), pad: 'p'.repeat(Math.floor(random() * 3000)) });
    }
    groups.push(group);
  }
  return groups;
}

describe('FlumeOffsetLog and flumelog-offset 3.4.4', () => {
  it('writes the test vectors of FLUME.md §2', async () => {
    for (const [width, offsets, size] of [
      [4, [0, 19, 38], 57],
      [6, [0, 21, 42], 63],
      [8, [0, 23, 46], 69],
    ] as const) {
      const file = fresh();
      {
        await using log = await FlumeOffsetLog.open<unknown>(file, { offsetWidth: width });
        assert.deepEqual(await log.append([{ a: 1 }, { a: 2 }, { a: 3 }]), offsets);
        assert.equal(log.since, offsets[2]);
      }
      assert.equal(statSync(file).size, size);
      if (width === 4) assert.equal(readFileSync(file).subarray(0, 19).toString('hex'), '000000077b2261223a317d0000000700000013');
    }
  });

  for (const format of formats) {
    it(`writes the same bytes for the same appends (${format.label})`, async () => {
      const groups = workload(format.width + 1);
      const theirs = fresh();
      const ours = fresh();
      const upstream = await Upstream.open(theirs, format.width);
      await using log = await FlumeOffsetLog.open<unknown>(ours, format.options);
      for (const group of groups) {
        const seq = await upstream.append(group.length === 1 ? group[0] : group);
        const offsets = group.length === 1 ? [await log.append(group[0])] : await log.append(group);
        // Upstream calls back with the offset of the batch's last record.
        assert.equal(offsets[offsets.length - 1], seq);
      }
      assert.equal(log.since, upstream.since);
      assert.ok(readFileSync(ours).equals(readFileSync(theirs)), 'the two files differ');
    });

    it(`reads what the other wrote, forwards, backwards and by offset (${format.label})`, async () => {
      const values = workload(format.width + 7).flat();
      const theirs = fresh();
      const upstream = await Upstream.open(theirs, format.width);
      for (const value of values) await upstream.append(value);
      const written = await upstream.entries();
      {
        await using log = await FlumeOffsetLog.open<unknown>(theirs, { ...format.options, readonly: true });
        const records = await collect(log.stream());
        assert.deepEqual(
          records.map((record) => [record.offset, record.value]),
          written.map((entry) => [entry.seq, entry.value]),
        );
        const reversed = await collect(log.stream({ reverse: true }));
        assert.deepEqual(
          reversed.map((record) => record.offset),
          written.map((entry) => entry.seq).reverse(),
        );
        for (const entry of written.filter((_, i) => i % 13 === 0)) assert.deepEqual(await log.get(entry.seq), entry.value);
        assert.equal(log.since, upstream.since);
      }

      const ours = fresh();
      {
        await using log = await FlumeOffsetLog.open<unknown>(ours, format.options);
        await log.append(values);
      }
      const reader = await Upstream.open(ours, format.width);
      const read = await reader.entries();
      assert.deepEqual(
        read.map((entry) => entry.value),
        values,
      );
      const reverse = await reader.entries({ reverse: true });
      assert.deepEqual(
        reverse.map((entry) => entry.seq),
        read.map((entry) => entry.seq).reverse(),
      );
      if (format.width !== 0) {
        const middle = read[Math.floor(read.length / 2)] as { seq: number; value: unknown };
        assert.deepEqual(await reader.get(middle.seq), middle.value);
      }
    });
  }

  for (const format of formats.filter((candidate) => candidate.width !== 0)) {
    it(`recovers a torn write as flumelog-offset does, and keeps the cut bytes (${format.label})`, async () => {
      const random = mulberry32(format.width * 101);
      for (let round = 0; round < 12; round++) {
        const original = fresh();
        {
          await using log = await FlumeOffsetLog.open<unknown>(original, format.options);
          await log.append(workload(round).flat().slice(0, 20));
        }
        const complete = statSync(original).size;
        // A torn write: the first bytes of the frames of one more batch, as they would have been written here.
        const full = fresh();
        copyFileSync(original, full);
        {
          await using log = await FlumeOffsetLog.open<unknown>(full, format.options);
          await log.append([{ torn: 'x'.repeat(150) }, { torn: 'y'.repeat(150) }]);
        }
        const batch = readFileSync(full).subarray(complete);
        const cut = 1 + Math.floor(random() * (batch.length - 1));
        appendFileSync(original, batch.subarray(0, cut));
        const theirs = fresh();
        copyFileSync(original, theirs);

        const upstream = await Upstream.open(theirs, format.width);
        await using log = await FlumeOffsetLog.open<unknown>(original, format.options);
        assert.equal(log.since, upstream.since, `cut at ${cut}`);
        // Upstream truncates the file when it next writes; both logs must then hold the same bytes.
        await upstream.append({ after: true });
        await log.append({ after: true });
        assert.ok(readFileSync(original).equals(readFileSync(theirs)), `the files differ after a cut at ${cut}`);
        const quarantined = readdirSync(`${original}.quarantine`);
        assert.equal(quarantined.length, 1);
        const kept = readFileSync(join(`${original}.quarantine`, quarantined[0] as string));
        assert.ok(kept.equals(batch.subarray(cut - kept.length, cut)), 'the quarantined bytes are the cut ones');
      }
    });
  }

  for (const format of formats.filter((candidate) => candidate.width !== 0)) {
    it(`cuts a last record whose end field was not written, as flumelog-offset does (${format.label})`, async () => {
      // Without its end field a 3.x record is a whole legacy record: the file must not be taken for a legacy one.
      for (const records of [2, 3]) {
        const original = fresh();
        {
          await using log = await FlumeOffsetLog.open<unknown>(original, format.options);
          for (let i = 0; i < records; i++) await log.append({ i, text: 'r'.repeat(i * 5) });
        }
        writeFileSync(original, readFileSync(original).subarray(0, statSync(original).size - format.width));
        const theirs = fresh();
        copyFileSync(original, theirs);
        const upstream = await Upstream.open(theirs, format.width);
        await using log = await FlumeOffsetLog.open<unknown>(original, format.options);
        assert.equal(log.since, upstream.since);
        assert.equal((await collect(log.stream())).length, records - 1);
        await upstream.append({ after: true });
        await log.append({ after: true });
        assert.ok(readFileSync(original).equals(readFileSync(theirs)), `the files differ (${records} records)`);
      }
    });
  }

  it('deletes as flumelog-offset does: each sees the other’s deletes', async () => {
    const file = fresh();
    const upstream = await Upstream.open(file, 4);
    const seqs: number[] = [];
    for (let i = 0; i < 6; i++) seqs.push(await upstream.append({ i }));
    await upstream.delete(seqs[1] as number);
    {
      await using log = await FlumeOffsetLog.open<unknown>(file, { offsetWidth: 4 });
      await rejectsWith(log.get(seqs[1] as number), 'RECORD_DELETED');
      await log.delete([seqs[3] as number, seqs[3] as number]);
      await rejectsWith(log.get(seqs[3] as number), 'RECORD_DELETED');
      assert.deepEqual(
        (await collect(log.stream())).map((record) => record.value),
        [{ i: 0 }, { i: 2 }, { i: 4 }, { i: 5 }],
      );
      assert.deepEqual(
        (await collect(log.stream({ reverse: true }))).map((record) => record.value),
        [{ i: 5 }, { i: 4 }, { i: 2 }, { i: 0 }],
      );
      await rejectsWith(log.delete(seqs[3] as number + 1), 'NOT_A_RECORD');
      await rejectsWith(log.delete(1_000_000), 'OFFSET_OUT_OF_RANGE');
      assert.throws(() => log.delete('1' as unknown as number), TypeError);
    }
    const reader = await Upstream.open(file, 4);
    await assert.rejects(reader.get(seqs[3] as number), (error: Error & { code?: string }) => error.code === 'flumelog:deleted');
    assert.deepEqual(
      (await reader.entries()).map((entry) => entry.value),
      [{ i: 0 }, { i: 2 }, { i: 4 }, { i: 5 }],
    );
  });

  it('reads a zero-length record written by flumelog-offset as deleted, as flumelog-offset does', async () => {
    const file = fresh();
    const raw = Buffer.from('0000000000000000000000000c', 'hex').subarray(0, 12);
    raw.writeUInt32BE(12, 8);
    writeFileSync(file, raw);
    {
      await using log = await FlumeOffsetLog.open<unknown>(file, { offsetWidth: 4 });
      await log.append({ after: 1 });
      await rejectsWith(log.get(0), 'RECORD_DELETED');
      assert.deepEqual(
        (await collect(log.stream())).map((record) => [record.offset, record.value]),
        [[12, { after: 1 }]],
      );
    }
  });
});
