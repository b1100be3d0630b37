/**
 * Retention on the native log: trims drop whole sealed segments from the front, never renumber what stays, and
 * readers (in this process or another) learn that dropped offsets are out of range.
 */
import assert from 'node:assert/strict';
import { readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isSluiceError } from '../../src/errors.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { encodeHeader, segmentName } from '../../src/log/file/format.js';
import { collect, rejectsWith } from '../conformance/log-suite.js';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory();
let count = 0;
const segmentBytesMax = 4096;
const value = (i: number): { i: number; pad: string } => ({ i, pad: 'x'.repeat(100) });

/** A log of `records` records in 4 KiB segments (about 28 records each). */
async function filled(records: number, options: { now?: () => number } = {}): Promise<{ dir: string; log: FileLog; offsets: number[] }> {
  const dir = join(root, `log-${count++}`);
  const log = await FileLog.open(dir, { segmentBytesMax, ...options });
  const offsets: number[] = [];
  for (let i = 0; i < records; i += 10) offsets.push(...(await log.append(Array.from({ length: 10 }, (_, j) => value(i + j)))));
  return { dir, log, offsets };
}

const segmentFiles = (dir: string): string[] => readdirSync(dir).filter((name) => name.endsWith('.seg'));

describe('FileLog retention (trim)', () => {
  it('drops the segments before an offset, keeps every other offset, and survives a reopen', async () => {
    const { dir, log, offsets } = await filled(500);
    const segmentsBefore = segmentFiles(dir).length;
    const cut = offsets[250] as number;
    const result = await log.trim({ beforeOffset: cut });
    assert.ok(result.segmentsDropped > 0);
    assert.ok(result.firstOffset <= cut && result.firstOffset > 0);
    assert.equal(log.firstOffset, result.firstOffset);
    assert.equal(segmentFiles(dir).length, segmentsBefore - result.segmentsDropped);
    const kept = offsets.filter((offset) => offset >= result.firstOffset);
    assert.deepEqual((await collect(log.stream())).map((record) => record.offset), kept);
    assert.deepEqual(await log.get(cut), value(250));
    await rejectsWith(log.get(0), 'OFFSET_OUT_OF_RANGE');
    await rejectsWith(log.get(result.firstOffset - 1), 'OFFSET_OUT_OF_RANGE');
    assert.deepEqual((await collect(log.stream({ reverse: true }))).map((record) => record.offset), kept.reverse());
    await log.close();

    await using again = await FileLog.open(dir, { segmentBytesMax });
    assert.equal(again.firstOffset, result.firstOffset);
    assert.equal(again.since, offsets[offsets.length - 1]);
    await rejectsWith(again.get(0), 'OFFSET_OUT_OF_RANGE');
    const next = await again.append(value(500));
    assert.deepEqual(await again.get(next), value(500));
    assert.equal((await again.trim({ beforeOffset: 0 })).segmentsDropped, 0);
  });

  it('drops by beforeOffset a segment whose last record starts before it, as a stream lt the offset yields them', async () => {
    const { log, offsets } = await filled(100);
    const second = log.segments.bases[1] as number;
    const last = offsets.filter((offset) => offset < second).pop() as number;
    // Not a record start: inside the last record of the first segment.
    assert.equal((await log.trim({ beforeOffset: last })).segmentsDropped, 0);
    assert.deepEqual(await log.trim({ beforeOffset: last + 1 }), { segmentsDropped: 1, bytesDropped: second + 64, firstOffset: second });
    await rejectsWith(log.get(last), 'OFFSET_OUT_OF_RANGE');
    await log.close();
  });

  it('keeps at least maxRecords records and at most maxBytes of segments (plus the active one)', async () => {
    const { dir, log } = await filled(600);
    await log.trim({ maxRecords: 100 });
    const records = (await collect(log.stream())).length;
    assert.ok(records >= 100 && records < 100 + 40, `kept ${records}`);
    await log.trim({ maxBytes: 3 * segmentBytesMax });
    const bytes = segmentFiles(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
    assert.ok(bytes <= 3 * segmentBytesMax, `${bytes} bytes of segments left`);
    assert.ok(segmentFiles(dir).length >= 2);
    // The segment being written always stays, whatever the policy.
    await log.trim({ maxRecords: 0, maxBytes: 0, beforeOffset: Number.MAX_SAFE_INTEGER });
    assert.equal(segmentFiles(dir).length, 1);
    assert.ok((await collect(log.stream())).length > 0);
    await log.close();
  });

  it('drops by age, by the time of each segment’s last record', async () => {
    let now = 1_000_000;
    const { log, offsets } = await filled(300, { now: () => now });
    now += 60_000;
    const middle = await log.append(value(300));
    for (let i = 0; i < 100; i++) await log.append(value(301 + i));
    const result = await log.trim({ olderThanMs: 30_000 });
    assert.ok(result.segmentsDropped > 0);
    // Everything appended at the old time is in dropped segments or shares a segment with newer records.
    assert.ok(result.firstOffset > (offsets[offsets.length - 40] as number));
    assert.ok(result.firstOffset <= middle);
    await log.close();
  });

  it('dates a segment whose last records were compacted away by its last remaining record, not by the filler', async () => {
    // A real clock's time: a filler's time 0 must not pass for old when the cut-off is a real time.
    let now = 1_700_000_000_000;
    const dir = join(root, `log-${count++}`);
    const log = await FileLog.open(dir, { segmentBytesMax, now: () => now });
    const offsets: number[] = [];
    // A sealed segment of young records whose last two are superseded by key, then compacted into a filler.
    while (log.segments.bases.length < 2) offsets.push(await log.append(value(offsets.length), { key: `k${offsets.length}` }));
    const sealed = offsets.slice(0, -1);
    for (const i of [sealed.length - 2, sealed.length - 1]) await log.append(value(-1), { key: `k${i}` });
    now += 60_000;
    const compacted = await log.compact();
    assert.ok(compacted.recordsDropped > 0);
    assert.equal((await log.trim({ olderThanMs: 3_600_000 })).segmentsDropped, 0);
    const kept = await collect(log.stream({ lte: sealed[sealed.length - 1] as number }));
    assert.ok(kept.length > 0 && kept.length < sealed.length, `${kept.length} records left of ${sealed.length}`);
    // Old enough: the same segment goes.
    now += 3_600_000;
    assert.ok((await log.trim({ olderThanMs: 3_600_000 })).segmentsDropped > 0);
    await log.close();
  });

  it('ends a stream reading a dropped segment with OFFSET_OUT_OF_RANGE, and tells a reader in another handle', async () => {
    const { dir, log, offsets } = await filled(400);
    const reader = await FileLog.open(dir, { readonly: true });
    const stream = log.stream()[Symbol.asyncIterator]();
    const first = await stream.next();
    assert.deepEqual(first.done === true ? undefined : first.value.value, value(0));
    const { firstOffset } = await log.trim({ beforeOffset: offsets[390] ?? 0 });
    await assert.rejects(
      (async () => {
        // Records the stream had read before the trim may still come; then it must fail, not skip ahead.
        for (let result = await stream.next(); result.done !== true; result = await stream.next()) {
          assert.ok(result.value.offset < firstOffset, `offset ${result.value.offset} came after the dropped ones`);
        }
      })(),
      (error: unknown) => isSluiceError(error, 'OFFSET_OUT_OF_RANGE'),
    );
    await rejectsWith(reader.get(offsets[100] as number), 'OFFSET_OUT_OF_RANGE');
    assert.deepEqual(await reader.get(offsets[399] as number), value(399));
    await reader.close();
    await log.close();
  });

  it('lets a read-only follower go on when the writer trimmed past every segment it knew', async () => {
    const { dir, log, offsets } = await filled(20);
    const reader = await FileLog.open(dir, { readonly: true });
    assert.equal(reader.since, log.since);
    for (let i = 20; i < 300; i += 10) offsets.push(...(await log.append(Array.from({ length: 10 }, (_, j) => value(i + j)))));
    const { firstOffset } = await log.trim({ maxRecords: 50 });
    assert.ok(firstOffset > (offsets[19] as number) + 4096, 'the reader’s segments and the one after them are gone');
    assert.deepEqual(await reader.get(offsets[299] as number), value(299));
    assert.equal(reader.firstOffset, firstOffset);
    await rejectsWith(reader.get(offsets[25] as number), 'OFFSET_OUT_OF_RANGE');
    const next = collect(reader.stream({ gt: reader.since, live: true, limit: 1 }));
    const appended = await log.append(value(300));
    assert.deepEqual((await next).map((record) => record.offset), [appended]);
    await reader.close();
    await log.close();
  });

  it('keeps the segment before an empty active one, so that every open finds the same since', async () => {
    const { dir, log, offsets } = await filled(60);
    const end = log.segments.end;
    await log.close();
    // A crash right after the next segment was made (F-20), before its first batch.
    writeFileSync(join(dir, segmentName(end)), encodeHeader(end, Date.now()), { mode: 0o600 });
    const writer = await FileLog.open(dir);
    const last = offsets[offsets.length - 1] as number;
    assert.equal(writer.since, last);
    const { firstOffset } = await writer.trim({ maxRecords: 0 });
    assert.ok(firstOffset <= last && firstOffset > 0);
    assert.equal(writer.since, last);
    const reader = await FileLog.open(dir, { readonly: true });
    assert.equal(reader.since, last);
    await reader.close();
    await writer.close();
    const reopened = await FileLog.open(dir);
    assert.equal(reopened.since, last);
    assert.deepEqual(await reopened.get(last), value(59));
    await reopened.close();
  });

  it('applies a retention policy given at open after each sealed segment', async () => {
    const dir = join(root, `log-${count++}`);
    {
      await using log = await FileLog.open(dir, { segmentBytesMax, retention: { maxRecords: 50 } });
      for (let i = 0; i < 1000; i += 10) await log.append(Array.from({ length: 10 }, (_, j) => value(i + j)));
    }
    await using log = await FileLog.open(dir, { segmentBytesMax });
    const records = await collect(log.stream());
    assert.ok(records.length >= 50 && records.length < 200, `kept ${records.length}`);
    assert.deepEqual(records[records.length - 1]?.value, value(999));
    assert.equal(log.firstOffset, records[0]?.offset);
  });

  it('opens a log whose trim stopped half-way (oldest segments gone, the rest intact)', async () => {
    const { dir, log, offsets } = await filled(300);
    await log.close();
    const files = segmentFiles(dir).sort();
    for (const name of files.slice(0, 3)) rmSync(join(dir, name));
    await using again = await FileLog.open(dir, { segmentBytesMax });
    const records = await collect(again.stream());
    assert.deepEqual(records[records.length - 1]?.offset, offsets[offsets.length - 1]);
    assert.equal(again.firstOffset, records[0]?.offset);
  });

  it('counts the segments of appends acknowledged but not yet written (buffered durability)', async () => {
    const dir = join(root, `log-${count++}`);
    await using log = await FileLog.open(dir, { segmentBytesMax, durability: 'buffered' });
    // Two batches that do not fit one segment: the second starts a new one, which the writer creates later.
    const first = await log.append(Array.from({ length: 25 }, (_, i) => value(i)));
    const second = await log.append(Array.from({ length: 25 }, (_, i) => value(25 + i)));
    const result = await log.trim({ maxRecords: 25 });
    assert.deepEqual(result, { segmentsDropped: 1, bytesDropped: (second[0] as number) - (first[0] as number) + 64, firstOffset: second[0] });
    await rejectsWith(log.get(first[0] as number), 'OFFSET_OUT_OF_RANGE');
    assert.deepEqual(await log.get(second[0] as number), value(25));
  });

  it('takes a signal and reports progress', async () => {
    const { dir, log } = await filled(300);
    const segments = segmentFiles(dir).length;
    const aborted = new AbortController();
    aborted.abort();
    await rejectsWith(log.trim({ maxRecords: 10 }, { signal: aborted.signal }), 'ABORTED');
    assert.equal(segmentFiles(dir).length, segments, 'an aborted trim drops nothing');
    const reports: number[] = [];
    const result = await log.trim({ maxRecords: 10 }, { onProgress: (progress) => reports.push(progress.bytesDone) });
    assert.equal(reports[reports.length - 1], result.segmentsDropped);
    assert.throws(() => log.trim({}, { signal: 'no' as unknown as AbortSignal }), TypeError);
    await log.close();
  });

  it('validates the policy, and refuses to trim a read-only log', async () => {
    const { dir, log } = await filled(20);
    assert.throws(() => log.trim({ maxRecords: -1 }), RangeError);
    assert.throws(() => log.trim({ olderThanMs: 1.5 }), RangeError);
    assert.throws(() => log.trim({ maxBytes: '1' as unknown as number }), TypeError);
    assert.throws(() => log.trim({ keep: 1 } as object), TypeError);
    await assert.rejects(FileLog.open(join(root, 'bad'), { retention: { maxRecords: -5 } }), RangeError);
    await using reader = await FileLog.open(dir, { readonly: true });
    await rejectsWith(reader.trim({ maxRecords: 1 }), 'READ_ONLY');
    await log.close();
    await rejectsWith(log.trim({ maxRecords: 1 }), 'LOG_CLOSED');
  });
});
