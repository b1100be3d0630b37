/**
 * Compaction of the native log (F-64): superseded records, old tombstones and deleted records leave the sealed
 * segments, the disk space comes back, and every record kept is read at its old offset, by get and by streams.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { codecs } from '../../src/codec/codec.js';
import { FileLog, type FileLogOptions } from '../../src/log/file/file-log.js';
import { decodeHeader, encodeHeader, headerBytes, segmentName } from '../../src/log/file/format.js';
import { check } from '../../src/ops/check.js';
import type { LogRecord } from '../../src/log/log.js';
import { collect, rejectsWith } from '../conformance/log-suite.js';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory();
let count = 0;
const fresh = (): string => join(root, `log-${count++}`);

/** Whether this file system keeps holes: a file written only at its ends takes fewer blocks than its length. */
function sparseFiles(): boolean {
  const path = join(root, 'sparse-probe');
  const fd = openSync(path, 'w');
  writeSync(fd, Buffer.from('x'), 0, 1, 8 * 1024 * 1024);
  closeSync(fd);
  return statSync(path).blocks * 512 < 1024 * 1024;
}

interface Item {
  readonly key: string;
  readonly version: number;
  readonly pad: string;
}

const diskBytes = (dir: string): number =>
  readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .reduce((sum, name) => sum + statSync(join(dir, name)).blocks * 512, 0);

describe('FileLog compaction', () => {
  it('keeps the last record of each key at its offset, and frees the space of the others', async () => {
    const dir = fresh();
    await using log = await FileLog.open<Item>(dir, { segmentBytesMax: 64 * 1024 });
    const latest = new Map<string, number>();
    const unkeyed: number[] = [];
    for (let version = 0; version < 40; version++) {
      const items = Array.from({ length: 50 }, (_, k) => ({ key: `k${k}`, version, pad: 'z'.repeat(200) }));
      const offsets = await log.append(items, { key: items.map((item) => item.key) });
      offsets.forEach((offset, k) => latest.set(`k${k}`, offset));
      unkeyed.push(await log.append({ key: '', version, pad: 'no key' }));
    }
    const before = await collect(log.stream());
    const diskBefore = diskBytes(dir);
    const result = await log.compact();
    assert.ok(result.segmentsRewritten > 0);
    assert.ok(result.recordsDropped > 1000, `dropped ${result.recordsDropped}`);
    const after = await collect(log.stream());
    // What stays: records without a key, each key's last record, and everything in the segment being written.
    const kept = (record: LogRecord<Item>): boolean =>
      record.key === undefined || latest.get(record.value.key) === record.offset || after.some((r) => r.offset === record.offset);
    assert.deepEqual(
      after.map((record) => record.offset),
      before.filter(kept).map((record) => record.offset),
    );
    for (const [key, offset] of latest) assert.deepEqual(await log.get(offset), { key, version: 39, pad: 'z'.repeat(200) });
    for (const [version, offset] of unkeyed.entries()) assert.equal((await log.get(offset)).version, version);
    assert.ok(after.length < before.length / 2);
    const reversed = await collect(log.stream({ reverse: true }));
    assert.deepEqual(reversed.map((record) => record.offset), after.map((record) => record.offset).reverse());
    // A dropped record: deleted at the start of a dropped run, no record inside one.
    const dropped = before.find((record) => !after.some((r) => r.offset === record.offset)) as LogRecord<Item>;
    await assert.rejects(log.get(dropped.offset), (error: { code?: string }) =>
      ['RECORD_DELETED', 'NOT_A_RECORD'].includes(error.code ?? ''),
    );
    if (sparseFiles()) assert.ok(diskBytes(dir) < diskBefore / 2, `${diskBytes(dir)} of ${diskBefore} bytes on disk`);
    // Compacting again finds nothing more; appends go on; a reopen reads the same.
    assert.equal((await log.compact()).recordsDropped, 0);
    const next = await log.append({ key: 'k1', version: 99, pad: '' }, { key: 'k1' });
    await log.close();
    await using again = await FileLog.open<Item>(dir, { segmentBytesMax: 64 * 1024 });
    assert.deepEqual((await again.get(next)).version, 99);
    assert.deepEqual(
      (await collect(again.stream({ lt: next }))).map((record) => record.offset),
      after.map((record) => record.offset),
    );
  });

  it('drops superseded records only past olderThanMs, and tombstones only when asked', async () => {
    let now = 1_000_000;
    const dir = fresh();
    // A tombstone is an empty value: the utf8 codec can write one (JSON cannot).
    await using log = await FileLog.open<string>(dir, { segmentBytesMax: 4096, now: () => now, codec: codecs.utf8() });
    const first = await log.append('v1', { key: 'a' });
    const tombstone = await log.append('', { key: 'gone' });
    for (let i = 0; i < 100; i++) await log.append(`filler ${i} ${'f'.repeat(100)}`, { key: `f${i % 3}` });
    now += 10_000;
    await log.append('v2', { key: 'a' });
    for (let i = 0; i < 40; i++) await log.append(`more ${'m'.repeat(100)}`);
    await log.compact({ olderThanMs: 60_000 });
    assert.equal(await log.get(first), 'v1', 'too young to drop');
    assert.equal(await log.get(tombstone), '', 'tombstones stay unless asked');
    now += 120_000;
    await log.compact({ olderThanMs: 60_000, tombstonesOlderThanMs: 60_000 });
    await rejectsWith(log.get(first), 'RECORD_DELETED');
    await assert.rejects(log.get(tombstone), (error: { code?: string }) => ['RECORD_DELETED', 'NOT_A_RECORD'].includes(error.code ?? ''));
    assert.equal((await collect(log.stream())).some((record) => record.key !== undefined && Buffer.from(record.key).toString() === 'gone'), false);
  });

  it('drops every superseded record without olderThanMs, whatever its time', async () => {
    const now = 1_000_000;
    const dir = fresh();
    await using log = await FileLog.open<string>(dir, { segmentBytesMax: 4096, now: () => now, codec: codecs.utf8() });
    // Appended in the compaction's millisecond, and one with a time ahead of the log's clock.
    const current = await log.append('v1', { key: 'a' });
    const ahead = await log.append('w1', { key: 'b', time: now + 5000 });
    await log.append(['v2', 'w2'], { key: ['a', 'b'] });
    for (let i = 0; i < 40; i++) await log.append(`seal ${'s'.repeat(100)}`);
    assert.equal((await log.compact()).recordsDropped, 2);
    await rejectsWith(log.get(current), 'RECORD_DELETED');
    await assert.rejects(log.get(ahead), (error: { code?: string }) => ['RECORD_DELETED', 'NOT_A_RECORD'].includes(error.code ?? ''));
  });

  it('covers a chained record it left in its deleted form with a filler when the records beside it go too', async () => {
    const dir = fresh();
    await using log = await FileLog.open<string>(dir, { segmentBytesMax: 4096, chain: 'sha256', codec: codecs.utf8() });
    // Two records of 98 bytes, whose key and value take fewer than 4 bytes: dropped alone, each is too small for
    // a filler with a table and stays in its deleted form (F-76); dropped together, one filler covers both.
    const [first, second] = (await log.append(['c', 'a', 'kept'], { key: ['b', 'a', undefined] })) as [number, number];
    await log.append('x'.repeat(3900), { key: 'a' });
    assert.equal((await log.compact()).recordsDropped, 1);
    await rejectsWith(log.get(second), 'RECORD_DELETED');
    await log.append('', { key: 'b' });
    assert.equal((await log.compact()).recordsDropped, 1);
    await rejectsWith(log.get(first), 'RECORD_DELETED');
    await rejectsWith(log.get(second), 'NOT_A_RECORD');
    assert.equal(log.compactedAt(second), true);
  });

  it('keeps a tombstone while an older record of its key is kept', async () => {
    let now = 1_000_000;
    const dir = fresh();
    await using log = await FileLog.open<string>(dir, { segmentBytesMax: 4096, now: () => now, codec: codecs.utf8() });
    const value = await log.append('v1', { key: 'k' });
    const tombstone = await log.append('', { key: 'k' });
    for (let i = 0; i < 60; i++) await log.append(`seal ${'s'.repeat(100)}`);
    now += 1000;
    await log.compact({ olderThanMs: 60_000, tombstonesOlderThanMs: 0 });
    assert.equal(await log.get(value), 'v1', 'too young to drop');
    assert.equal(await log.get(tombstone), '', 'the tombstone stays while v1 does, or v1 would come back');
  });

  it('drops deleted records, refuses a log without keys, and validates its policy', async () => {
    const dir = fresh();
    await using log = await FileLog.open<string>(dir, { segmentBytesMax: 4096 });
    const offsets: number[] = [];
    for (let i = 0; i < 100; i++) offsets.push(await log.append(`plain ${i} ${'p'.repeat(100)}`));
    await rejectsWith(log.compact(), 'INVALID_INPUT');
    await log.append('keyed', { key: 'k' });
    await log.delete(offsets.slice(0, 10));
    const result = await log.compact();
    assert.equal(result.recordsDropped, 10);
    assert.equal((await collect(log.stream())).length, 91);
    assert.throws(() => log.compact({ olderThanMs: -1 }), RangeError);
    assert.throws(() => log.compact({ keep: 1 } as object), TypeError);
  });
});

describe('FileLog compaction and the end of the log', () => {
  const cases: Array<[string, FileLogOptions<string>, string[]]> = [
    ['plain', {}, ['a', 'b', 'c', 'd', 'e']],
    ['chained', { chain: 'sha256' }, ['a', 'b', 'c', 'd', 'e']],
    // A last record larger than a filler may be (1 MiB): one filler of its size all the same.
    ['a large last record', {}, ['a', 'b', 'x'.repeat(1536 * 1024)]],
  ];
  for (const [name, extra, values] of cases) {
    it(`keeps since where it was across a reopen when the last segment is empty (F-40 row 1): ${name}`, async () => {
      const dir = fresh();
      const options: FileLogOptions<string> = { codec: codecs.utf8(), ...extra };
      let log = await FileLog.open<string>(dir, options);
      const offsets = await log.append(values, { key: values.map((_, i) => `k${i}`) });
      const last = offsets[offsets.length - 1] as number;
      const end = log.segments.end;
      await log.close();
      // What a crash leaves right after the writer created its next segment (F-20), before it wrote to it.
      const header = decodeHeader(readFileSync(join(dir, segmentName(0))).subarray(0, headerBytes));
      assert.ok(typeof header !== 'string');
      writeFileSync(join(dir, segmentName(end)), encodeHeader(end, Date.now(), header.security), { mode: 0o600 });
      log = await FileLog.open<string>(dir, options);
      assert.equal(log.since, last);
      // The run of dropped records ends the sealed segment.
      await log.delete(offsets.slice(1));
      assert.equal((await log.compact()).recordsDropped, offsets.length - 1);
      await log.close();
      log = await FileLog.open<string>(dir, options);
      try {
        assert.equal(log.since, last, 'since after the reopen');
        await rejectsWith(log.get(last), 'RECORD_DELETED');
        assert.deepEqual((await collect(log.stream())).map((record) => record.offset), [offsets[0]]);
        assert.ok((await log.append('next')) > last);
      } finally {
        await log.close();
      }
      assert.equal((await check(dir)).healthy, true);
    });
  }
});

describe('FileLog compaction under load', () => {
  it('lets appends, a live stream and a reader in another handle go on while it runs', async () => {
    const dir = fresh();
    await using log = await FileLog.open<Item>(dir, { segmentBytesMax: 8192 });
    for (let version = 0; version < 20; version++) {
      const items = Array.from({ length: 20 }, (_, k) => ({ key: `k${k}`, version, pad: 'l'.repeat(100) }));
      await log.append(items, { key: items.map((item) => item.key) });
    }
    await using reader = await FileLog.open<Item>(dir, { readonly: true });
    const seen: LogRecord<Item>[] = [];
    const target = { key: 'end', version: -1, pad: '' };
    const live = (async () => {
      for await (const record of log.stream({ live: true })) {
        seen.push(record);
        if (record.value.key === 'end') break;
      }
    })();
    const compacting = log.compact();
    const appended: number[] = [];
    for (let i = 0; i < 50; i++) appended.push(await log.append({ key: `k${i % 20}`, version: 100 + i, pad: '' }, { key: `k${i % 20}` }));
    const result = await compacting;
    assert.ok(result.recordsDropped > 0);
    const last = await log.append(target, { key: 'end' });
    await live;
    // The stream never goes back, never yields a damaged record, and gets everything appended meanwhile.
    for (let i = 1; i < seen.length; i++) assert.ok((seen[i]?.offset as number) > (seen[i - 1]?.offset as number));
    for (const offset of [...appended, last]) assert.ok(seen.some((record) => record.offset === offset), `offset ${offset}`);
    for (const offset of appended) assert.deepEqual((await reader.get(offset)).version >= 100, true);
    const after = await collect(reader.stream());
    assert.deepEqual(after[after.length - 1]?.value, target);
  });

  it('lets streams part-way through a segment go on when compaction rewrites it, forwards and backwards', async () => {
    const dir = fresh();
    await using log = await FileLog.open<Item>(dir, { segmentBytesMax: 4 * 1024 * 1024 });
    // One large sealed segment of 50 batches; every record but those of the last batch is superseded.
    for (let version = 0; version < 50; version++) {
      const items = Array.from({ length: 100 }, (_, k) => ({ key: `k${k}`, version, pad: 'c'.repeat(1000) }));
      await log.append(items, { key: items.map((item) => item.key) });
    }
    const items = Array.from({ length: 100 }, (_, k) => ({ key: `k${k}`, version: 50, pad: '' }));
    await log.append(items, { key: items.map((item) => item.key) });
    assert.equal(log.segments.bases.length, 2);
    const before = await collect(log.stream());
    const forwards = log.stream()[Symbol.asyncIterator]();
    const backwards = log.stream({ reverse: true })[Symbol.asyncIterator]();
    const forwardSeen: LogRecord<Item>[] = [];
    const backwardSeen: LogRecord<Item>[] = [];
    // Past the first read window of each, so that their next reads go to the file compaction swaps in.
    for (let i = 0; i < 300; i++) forwardSeen.push((await forwards.next()).value as LogRecord<Item>);
    for (let i = 0; i < 300; i++) backwardSeen.push((await backwards.next()).value as LogRecord<Item>);
    assert.ok((await log.compact()).recordsDropped > 0);
    for (let next = await forwards.next(); next.done !== true; next = await forwards.next()) forwardSeen.push(next.value);
    for (let next = await backwards.next(); next.done !== true; next = await backwards.next()) backwardSeen.push(next.value);
    // Each stream yields records of the log as it was, in order, without repeats, and ends with those compaction kept.
    const offsetsBefore = new Map(before.map((record) => [record.offset, record.value]));
    for (const [seen, step] of [[forwardSeen, 1], [backwardSeen, -1]] as const) {
      for (let i = 1; i < seen.length; i++) assert.ok(step * ((seen[i]?.offset as number) - (seen[i - 1]?.offset as number)) > 0);
      for (const record of seen) assert.deepEqual(record.value, offsetsBefore.get(record.offset));
      for (const kept of await collect(log.stream())) assert.ok(seen.some((record) => record.offset === kept.offset), `offset ${kept.offset}`);
    }
  });
});
