/**
 * Deletes in the native log beyond the shared contract: the bytes are really gone from the file, a deletion a
 * crash interrupted is finished by the next open (a torn rewrite of the last frame is not taken for a torn
 * append), and readers in other handles see it.
 */
import assert from 'node:assert/strict';
import { appendFileSync, closeSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileLog } from '../../src/log/file/file-log.js';
import { journalDeletes } from '../../src/log/file/deletes.js';
import { deletesFileName } from '../../src/log/file/segment-files.js';
import { positionOf } from '../../src/log/file/format.js';
import { collect, rejectsWith } from '../conformance/log-suite.js';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory();
let count = 0;
const fresh = (): string => join(root, `log-${count++}`);
const segmentBytes = (dir: string): Buffer =>
  Buffer.concat(readdirSync(dir).filter((name) => name.endsWith('.seg')).sort().map((name) => readFileSync(join(dir, name))));

describe('FileLog deletes', () => {
  it('erases the key and value bytes from the file, and keeps batches and offsets', async () => {
    const dir = fresh();
    await using log = await FileLog.open(dir, { segmentBytesMax: 4096 });
    const offsets = await log.append(['public one', 'SECRET-VALUE-1', 'public two'], { key: ['k1', 'SECRET-KEY', 'k3'] });
    await log.append('after');
    assert.ok(segmentBytes(dir).includes('SECRET-VALUE-1'));
    await log.delete(offsets[1] as number);
    const bytes = segmentBytes(dir);
    assert.equal(bytes.includes('SECRET-VALUE-1'), false);
    assert.equal(bytes.includes('SECRET-KEY'), false);
    assert.ok(bytes.includes('public two'));
    assert.deepEqual(
      (await collect(log.stream())).map((record) => [record.offset, record.value]),
      [
        [offsets[0], 'public one'],
        [offsets[2], 'public two'],
        [log.since, 'after'],
      ],
    );
  });

  it('finishes a deletion that a crash interrupted, even a torn rewrite of the last frame', async () => {
    const dir = fresh();
    let last: number;
    {
      await using log = await FileLog.open(dir);
      await log.append(['a', 'b']);
      last = await log.append('the last record');
    }
    // The crash: the journal was written, the frame only half rewritten (its checksum no longer matches).
    await journalDeletes(dir, [last]);
    const fd = openSync(join(dir, '00000000000000000000.seg'), 'r+');
    writeSync(fd, Buffer.alloc(4), 0, 4, positionOf(0, last) + 28);
    closeSync(fd);
    await using log = await FileLog.open(dir);
    assert.equal(log.since, last, 'the last record was not cut as a torn append');
    await rejectsWith(log.get(last), 'RECORD_DELETED');
    assert.deepEqual((await collect(log.stream())).map((record) => record.value), ['a', 'b']);
    assert.equal(readdirSync(dir).includes(deletesFileName), false);
  });

  it('ignores a journal entry a crash cut short, and entries for records that are gone', async () => {
    const dir = fresh();
    {
      await using log = await FileLog.open(dir);
      await log.append(['a', 'b']);
    }
    await journalDeletes(dir, [1_000_000]);
    appendFileSync(join(dir, deletesFileName), Buffer.alloc(7, 1));
    await using log = await FileLog.open(dir);
    assert.deepEqual((await collect(log.stream())).map((record) => record.value), ['a', 'b']);
  });

  it('is seen by a read-only reader, and works in buffered durability', async () => {
    const dir = fresh();
    await using log = await FileLog.open(dir, { durability: 'buffered' });
    const offset = await log.append('soon gone');
    await using reader = await FileLog.open(dir, { readonly: true });
    await log.sync();
    assert.equal(await reader.get(offset), 'soon gone');
    const more = await log.append('unwritten yet');
    await log.delete([offset, more]);
    await rejectsWith(reader.get(offset), 'RECORD_DELETED');
    await rejectsWith(log.get(more), 'RECORD_DELETED');
    await rejectsWith(reader.delete(offset), 'READ_ONLY');
  });
});

/**
 * The crash of a deletion (F-63): its journal written and synced, then the frame at `offset` only half rewritten
 * (its framing intact, its checksum no longer matching).
 */
async function interruptDeletion(dir: string, offset: number): Promise<void> {
  await journalDeletes(dir, [offset]);
  const fd = openSync(join(dir, '00000000000000000000.seg'), 'r+');
  writeSync(fd, Buffer.alloc(4), 0, 4, positionOf(0, offset) + 28);
  closeSync(fd);
}

describe('FileLog read-only, with a deletion a crash interrupted', () => {
  const value = (n: number): string => `record ${n} with a value long enough to be torn`;

  it('reads the record as deleted, not as damage, until a writer finishes the deletion', async () => {
    const dir = fresh();
    let offsets: number[];
    {
      await using log = await FileLog.open(dir);
      offsets = await log.append([value(0), value(1), value(2)]);
      offsets.push(await log.append(value(3)));
    }
    const [first, middle, third, last] = offsets as [number, number, number, number];
    await interruptDeletion(dir, middle);
    await using reader = await FileLog.open(dir, { readonly: true });
    assert.equal(reader.since, last);
    await rejectsWith(reader.get(middle), 'RECORD_DELETED');
    assert.equal(await reader.get(third), value(2));
    assert.deepEqual((await collect(reader.stream())).map((record) => record.offset), [first, third, last]);
    assert.deepEqual((await collect(reader.stream({ reverse: true }))).map((record) => record.offset), [last, third, first]);
    assert.deepEqual((await collect(reader.stream({ gte: middle }))).map((record) => record.offset), [third, last]);
    assert.deepEqual((await collect(reader.stream({ gt: first, lte: middle }))).map((record) => record.offset), []);
    assert.ok(readdirSync(dir).includes(deletesFileName), 'a read-only log leaves the journal to the writer');
    // The writer's open finishes the deletion: the reader goes on reading it as deleted.
    await using writer = await FileLog.open(dir);
    assert.equal(readdirSync(dir).includes(deletesFileName), false);
    await rejectsWith(reader.get(middle), 'RECORD_DELETED');
    await rejectsWith(writer.get(middle), 'RECORD_DELETED');
  });

  it('sees a deletion interrupted after it opened, also of records it had not taken in yet', async () => {
    const dir = fresh();
    let early: number;
    {
      await using log = await FileLog.open(dir);
      early = await log.append(value(0));
      await log.append(value(1));
    }
    await using reader = await FileLog.open(dir, { readonly: true });
    assert.equal(await reader.get(early), value(0));
    let later: number[];
    {
      await using log = await FileLog.open(dir);
      later = await log.append([value(2), value(3)]);
    }
    const [deleted, kept] = later as [number, number];
    await interruptDeletion(dir, early);
    await interruptDeletion(dir, deleted);
    await rejectsWith(reader.get(early), 'RECORD_DELETED');
    // Taking in the writer's new records steps over the half-rewritten one: its batch is whole.
    assert.equal(await reader.get(kept), value(3));
    await rejectsWith(reader.get(deleted), 'RECORD_DELETED');
    assert.deepEqual((await collect(reader.stream())).map((record) => record.value), [value(1), value(3)]);
  });

  it('reads a chained or encrypted record whose deletion was interrupted as deleted', async () => {
    const key = { id: 1, key: new Uint8Array(32).fill(7) };
    for (const options of [{ chain: 'sha256' as const }, { encryption: { key } }]) {
      const dir = fresh();
      let offsets: number[];
      {
        await using log = await FileLog.open(dir, options);
        offsets = await log.append([value(0), value(1)]);
      }
      const [kept, deleted] = offsets as [number, number];
      await interruptDeletion(dir, deleted);
      await using reader = await FileLog.open(dir, { ...options, readonly: true });
      assert.equal(reader.since, deleted);
      await rejectsWith(reader.get(deleted), 'RECORD_DELETED');
      assert.deepEqual((await collect(reader.stream())).map((record) => record.value), [value(0)]);
      assert.equal(await reader.get(kept), value(0));
    }
  });
});

describe('FileLog deletes and hard links', () => {
  it('does not reach into a hard-linked copy of a segment (a backup)', async () => {
    const dir = fresh();
    const backup = fresh();
    await using log = await FileLog.open(dir, { segmentBytesMax: 4096 });
    const offsets: number[] = [];
    for (let i = 0; i < 60; i++) offsets.push(await log.append(`record ${i} ${'r'.repeat(80)}`));
    const sealed = readdirSync(dir).filter((name) => name.endsWith('.seg')).sort()[0] as string;
    mkdirSync(backup);
    linkSync(join(dir, sealed), join(backup, sealed));
    // A reader in another handle that already reads the segment's file.
    await using reader = await FileLog.open(dir, { readonly: true });
    assert.equal(await reader.get(offsets[0] as number), `record 0 ${'r'.repeat(80)}`);
    await log.delete(offsets[0] as number);
    await rejectsWith(log.get(offsets[0] as number), 'RECORD_DELETED');
    // The file it read was replaced by a copy without the record: it notices within 0.1 s.
    await new Promise((resolve) => setTimeout(resolve, 150));
    await rejectsWith(reader.get(offsets[0] as number), 'RECORD_DELETED');
    assert.deepEqual((await collect(reader.stream({ lt: offsets[3] as number }))).map((record) => record.offset), offsets.slice(1, 3));
    assert.ok(readFileSync(join(backup, sealed)).includes('record 0 '), 'the linked copy keeps the record');
    assert.equal(statSync(join(dir, sealed)).nlink, 1);
    assert.deepEqual(await log.get(offsets[1] as number), `record 1 ${'r'.repeat(80)}`);
  });
});

describe('regressions found in review', () => {
  it('rewrites the segment being written in place even when it has another link', async () => {
    const dir = fresh();
    const other = fresh();
    mkdirSync(other);
    {
      await using log = await FileLog.open(dir);
      const first = await log.append({ n: 1 });
      await log.append({ n: 2 });
      linkSync(join(dir, '00000000000000000000.seg'), join(other, 'linked.seg'));
      await log.delete(first);
      await rejectsWith(log.get(first), 'RECORD_DELETED');
      await log.append({ n: 3 });
    }
    await using log = await FileLog.open(dir);
    assert.deepEqual((await collect(log.stream())).map((record) => record.value), [{ n: 2 }, { n: 3 }]);
  });

  it('cuts a torn tail whose last bytes point back at a real frame', async () => {
    const dir = fresh();
    let second: number;
    {
      await using log = await FileLog.open(dir);
      await log.append({ n: 1 });
      second = await log.append({ n: 2 });
    }
    const path = join(dir, '00000000000000000000.seg');
    const size = statSync(path).size;
    const torn = Buffer.alloc(4);
    torn.writeUInt32LE(size - 64 - second + 4, 0);
    appendFileSync(path, torn);
    await using log = await FileLog.open(dir);
    assert.equal(log.since, second);
    await log.append({ n: 3 });
    assert.deepEqual((await collect(log.stream())).map((record) => record.value), [{ n: 1 }, { n: 2 }, { n: 3 }]);
  });
});
