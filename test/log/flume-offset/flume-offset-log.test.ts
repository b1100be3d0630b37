/**
 * What the FlumeOffsetLog does beyond the log contract: refusing files that are not in the format asked for
 * (without touching them), telling a torn write from damage, recovery on request, the lock, read-only opens that
 * follow a writer, and the size limit of each offset width.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, openSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { codecs } from '../../../src/codec/codec.js';
import { isSluiceError, type ErrorCode } from '../../../src/errors.js';
import { FlumeOffsetLog, type FlumeOffsetLogOptions } from '../../../src/log/flume-offset/flume-offset-log.js';
import { recordWriteIntent } from '../../../src/log/flume-offset/write-intent.js';
import { collect } from '../../conformance/log-suite.js';
import { temporaryDirectory } from '../../helpers.js';
import { Upstream } from './upstream.js';

const root = temporaryDirectory();
let count = 0;
const fresh = (): string => join(root, `log-${count++}.offset`);
const digest = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

async function written(options: FlumeOffsetLogOptions<unknown>, values: unknown[]): Promise<string> {
  const file = fresh();
  await using log = await FlumeOffsetLog.open<unknown>(file, options);
  await log.append(values);
  return file;
}

async function refuses(
  file: string,
  options: FlumeOffsetLogOptions<unknown>,
  code: ErrorCode,
  check: (message: string, position: number | undefined) => void,
): Promise<void> {
  const before = digest(file);
  await assert.rejects(FlumeOffsetLog.open(file, options), (error: unknown) => {
    assert.ok(isSluiceError(error, code), `expected ${code}, got ${String(error)}`);
    assert.equal(error.file, file);
    check(error.message, error.position);
    return true;
  });
  assert.equal(digest(file), before, 'a refused file is not modified');
  assert.equal(existsSync(`${file}.quarantine`), false);
}

const values = Array.from({ length: 20 }, (_, i) => ({ i, text: 'v'.repeat(i * 7) }));

describe('FlumeOffsetLog', () => {
  it('refuses a file of another width, naming the width it reads as', async () => {
    for (const [wrote, asked, hint] of [
      [4, 6, 'offsetWidth 4'],
      [6, 4, 'offsetWidth 6'],
      [8, 6, 'offsetWidth 8'],
      [6, 8, 'offsetWidth 6'],
    ] as const) {
      const file = await written({ offsetWidth: wrote }, values);
      await refuses(file, { offsetWidth: asked }, 'NOT_A_LOG', (message, position) => {
        assert.equal(position, 0);
        assert.match(message, new RegExp(`${asked}-byte-offset`));
        assert.match(message, new RegExp(hint));
      });
    }
  });

  it('refuses a one-record file of another width or format rather than cutting it as a torn write', async () => {
    for (const [wrote, asked] of [
      [{ offsetWidth: 4 }, { offsetWidth: 8 }],
      [{ legacy: true }, { offsetWidth: 4 }],
    ] as const) {
      const file = await written(wrote, [{ only: 'one' }]);
      await refuses(file, asked, 'NOT_A_LOG', (_message, position) => assert.equal(position, 0));
    }
  });

  it('refuses a legacy file opened as 3.x and a 3.x file opened as legacy', async () => {
    const legacy = await written({ legacy: true }, values);
    await refuses(legacy, { offsetWidth: 4 }, 'NOT_A_LOG', (message) => assert.match(message, /legacy/));
    const modern = await written({ offsetWidth: 4 }, values);
    await refuses(modern, { legacy: true }, 'NOT_A_LOG', (message) => assert.match(message, /offsetWidth 4/));
  });

  it('refuses random bytes and text', async () => {
    const random = fresh();
    writeFileSync(random, Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919 + 13) % 251)));
    await refuses(random, {}, 'NOT_A_LOG', (_message, position) => assert.equal(position, 0));
    const text = fresh();
    writeFileSync(text, '{"this is":"a JSON file, not a log"}\n'.repeat(20));
    await refuses(text, { offsetWidth: 8 }, 'NOT_A_LOG', () => {});
  });

  it('refuses damage that is not a torn write, and cuts it when asked to recover', async () => {
    const file = await written({ offsetWidth: 4 }, values);
    const copy = fresh();
    copyFileSync(file, copy);
    const size = statSync(file).size;
    // The last record's trailing length no longer matches its leading one: a whole frame, so not a torn write.
    const upstream = await Upstream.open(copy, 4);
    const entries = await upstream.entries();
    const victim = entries[entries.length - 1] as { seq: number };
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.from([0x01]), 0, 1, size - 4 - 4);
    closeSync(fd);
    await refuses(file, {}, 'CORRUPT_LOG', (message, position) => {
      assert.equal(position, victim.seq);
      assert.match(message, /two lengths disagree/);
      assert.match(message, /recover: true/);
    });
    {
      await using log = await FlumeOffsetLog.open<unknown>(file, { recover: true });
      assert.equal(log.since, (entries[entries.length - 2] as { seq: number }).seq);
      assert.equal(statSync(file).size, victim.seq);
      assert.deepEqual(
        (await collect(log.stream())).map((record) => record.value),
        values.slice(0, -1),
      );
    }
    const cut = readFileSync(join(`${file}.quarantine`, readdirSync(`${file}.quarantine`)[0] as string));
    assert.equal(cut.length, size - victim.seq);
  });

  it('treats zeros after the last record as a torn write', async () => {
    const file = await written({ offsetWidth: 6 }, values);
    const size = statSync(file).size;
    writeFileSync(file, Buffer.alloc(4096), { flag: 'a' });
    await using log = await FlumeOffsetLog.open<unknown>(file, { offsetWidth: 6 });
    assert.equal(statSync(file).size, size);
    assert.equal((await collect(log.stream())).length, values.length);
  });

  it('cuts a write that a kill stopped between pages back to its start (O-10), and ignores an intent that does not fit', async () => {
    const file = fresh();
    const before = Array.from({ length: 3 }, (_, i) => ({ before: i }));
    const batch = Array.from({ length: 40 }, (_, i) => ({ i, text: 'b'.repeat(300) }));
    const log = await FlumeOffsetLog.open<unknown>(file, { offsetWidth: 4 });
    const kept = await log.append(before);
    const offsets = await log.append(batch);
    const copy = fresh();
    // As a kill between two pages of the batch's write leaves it: the file up to a record in the middle of the
    // batch (whole records: the tail check alone finds nothing wrong), the intent naming the whole write.
    const cutAt = offsets[17] as number;
    writeFileSync(copy, readFileSync(file).subarray(0, cutAt));
    copyFileSync(`${file}.write`, `${copy}.write`);
    await log.close();
    assert.equal(existsSync(`${file}.write`), false, 'a clean close removes the intent');

    const reader = await FlumeOffsetLog.open<unknown>(copy, { offsetWidth: 4, readonly: true });
    assert.equal(reader.since, kept[2], 'a read-only open ends before the cut-short write');
    assert.deepEqual((await collect(reader.stream())).map((record) => record.value), before);
    await reader.close();
    assert.equal(statSync(copy).size, cutAt, 'a read-only open modifies nothing');

    const intent = readFileSync(`${copy}.write`);
    const reopened = await FlumeOffsetLog.open<unknown>(copy, { offsetWidth: 4 });
    assert.equal(reopened.since, kept[2]);
    assert.equal(existsSync(`${copy}.write`), false, 'a writable open removes the intent once it has cut');
    assert.equal(statSync(copy).size, offsets[0]);
    const quarantined = readdirSync(`${copy}.quarantine`);
    assert.equal(quarantined.length, 1);
    assert.equal(statSync(join(`${copy}.quarantine`, quarantined[0] as string)).size, cutAt - (offsets[0] as number));
    const after = await reopened.append({ after: true });
    assert.equal(after, offsets[0]);
    await reopened.close();
    assert.equal((await Upstream.open(copy, 4)).since, after, 'flumelog-offset agrees');

    // An intent whose start is not where a record ends in this file (another file's) changes nothing.
    const other = await written({ offsetWidth: 4 }, values);
    const size = statSync(other).size;
    writeFileSync(`${other}.write`, intent);
    await using otherLog = await FlumeOffsetLog.open<unknown>(other, { offsetWidth: 4 });
    assert.equal(statSync(other).size, size);
    assert.equal((await collect(otherLog.stream())).length, values.length);
  });

  it('removes a stale intent on open, so that later appends inside its range are never cut (O-10)', async () => {
    const file = fresh();
    {
      await using log = await FlumeOffsetLog.open<unknown>(file, { offsetWidth: 4 });
      await log.append({ first: 1 });
    }
    const size = statSync(file).size;
    // What a kill leaves between an intent's write and the write it announces: the write never began.
    const stale = (): void => {
      const fd = openSync(`${file}.write`, 'w', 0o600);
      recordWriteIntent(fd, { start: size, end: size + 5000 });
      closeSync(fd);
    };
    stale();
    const acknowledged: number[] = [];
    {
      await using log = await FlumeOffsetLog.open<unknown>(file, { offsetWidth: 4 });
      assert.equal(existsSync(`${file}.write`), false, 'the open removed the intent it found');
      // Single records write no intent of their own; they end inside the stale one's range.
      for (let i = 0; i < 5; i++) acknowledged.push(await log.append({ i, pad: 'x'.repeat(100) }));
      // An intent this writer did not write is removed by its clean close too.
      stale();
    }
    assert.equal(existsSync(`${file}.write`), false, 'a clean close removes any intent');
    await using log = await FlumeOffsetLog.open<unknown>(file, { offsetWidth: 4 });
    assert.equal(log.since, acknowledged.at(-1), 'acknowledged records were cut');
    assert.equal(statSync(file).size > size, true);
  });

  it('holds a lock: a second writer is refused, readers are not', async () => {
    const file = await written({}, values);
    await using writer = await FlumeOffsetLog.open<unknown>(file);
    await assert.rejects(FlumeOffsetLog.open(file), (error: unknown) => isSluiceError(error, 'LOCKED'));
    await using reader = await FlumeOffsetLog.open<unknown>(file, { readonly: true });
    assert.equal(reader.since, writer.since);
    await assert.rejects(reader.append({ no: 1 }), (error: unknown) => isSluiceError(error, 'READ_ONLY'));
    await assert.rejects(reader.append([]), (error: unknown) => isSluiceError(error, 'READ_ONLY'));
    await assert.rejects(reader.delete(0), (error: unknown) => isSluiceError(error, 'READ_ONLY'));
  });

  it('follows a writer when opened read-only: gets and live streams see new records', async () => {
    const file = await written({}, values);
    await using writer = await FlumeOffsetLog.open<unknown>(file);
    await using reader = await FlumeOffsetLog.open<unknown>(file, { readonly: true });
    const seen: unknown[] = [];
    const live = (async () => {
      for await (const record of reader.stream({ gt: reader.since, live: true })) {
        seen.push(record.value);
        if (seen.length === 3) break;
      }
    })();
    const offsets = await writer.append([{ new: 1 }, { new: 2 }]);
    assert.deepEqual(await reader.get(offsets[1] as number), { new: 2 });
    await writer.append({ new: 3 });
    await live;
    assert.deepEqual(seen, [{ new: 1 }, { new: 2 }, { new: 3 }]);
  });

  it('says LOG_FULL at the end of what 4-byte offsets address, and goes past it with 6', async () => {
    for (const width of [4, 6] as const) {
      // A sparse file: one record at 0 and one ending 20 bytes before 4 GiB; the zeros between are never read.
      const file = fresh();
      const first = Buffer.alloc(8 + width + 3);
      first.writeUInt32BE(3, 0);
      first.write('"a"', 4);
      first.writeUInt32BE(3, 7);
      first.writeUIntBE(first.length, 11, width);
      const start = 2 ** 32 - 20 - first.length;
      const last = Buffer.from(first);
      last.writeUIntBE(start + last.length, 11, width);
      const fd = openSync(file, 'w');
      writeSync(fd, first, 0, first.length, 0);
      writeSync(fd, last, 0, last.length, start);
      closeSync(fd);
      await using log = await FlumeOffsetLog.open<unknown>(file, { offsetWidth: width });
      assert.equal(log.since, start);
      assert.equal(await log.get(start), 'a');
      if (width === 4) {
        await assert.rejects(log.append('x'.repeat(10)), (error: unknown) => isSluiceError(error, 'LOG_FULL'));
        assert.equal(statSync(file).size, 2 ** 32 - 20);
        assert.equal(await log.append('x'), 2 ** 32 - 20);
      } else {
        const offset = await log.append('y'.repeat(40));
        assert.equal(offset, 2 ** 32 - 20);
        assert.equal(await log.get(offset), 'y'.repeat(40));
        assert.deepEqual(
          (await collect(log.stream({ gte: start }))).map((record) => record.offset),
          [start, offset],
        );
      }
    }
  });

  it('never takes a place inside a deleted record for a record start, in either format', async () => {
    for (const options of [{ legacy: true }, { offsetWidth: 4 as const }]) {
      const log = await FlumeOffsetLog.open(fresh(), options);
      const [a, b, c] = [await log.append({ a: 'x'.repeat(40) }), await log.append({ b: 'y'.repeat(40) }), await log.append({ c: 3 })];
      await log.delete(b);
      const inside = b + 8;
      assert.deepEqual((await collect(log.stream({ gte: inside }))).map((record) => record.offset), [c]);
      assert.deepEqual((await collect(log.stream({ lt: inside, reverse: true }))).map((record) => record.offset), [a]);
      await assert.rejects(log.get(inside), (error: unknown) => isSluiceError(error, 'NOT_A_RECORD'));
      await log.close();
    }
  });

  it('refuses a value whose payload would be all zero bytes (read back as deleted, O-6), as bytes or as a string', async () => {
    const raw = await FlumeOffsetLog.open(fresh(), { codec: codecs.raw() });
    await assert.rejects(async () => raw.append(new Uint8Array(2)), RangeError);
    await raw.close();
    const text = await FlumeOffsetLog.open(fresh(), { codec: codecs.utf8() });
    await assert.rejects(async () => text.append('\0\0'), RangeError);
    await assert.rejects(async () => text.append(''), RangeError);
    const offset = await text.append('\0a');
    assert.equal(await text.get(offset), '\0a');
    assert.equal(text.since, 0);
    await text.close();
  });

  it('validates its options', async () => {
    await assert.rejects(FlumeOffsetLog.open(''), TypeError);
    await assert.rejects(FlumeOffsetLog.open(fresh(), { offsetWidth: 5 as 4 }), RangeError);
    await assert.rejects(FlumeOffsetLog.open(fresh(), { durability: 'buffered' as 'os' }), TypeError);
    await assert.rejects(FlumeOffsetLog.open(fresh(), { readonly: true }), (error: unknown) => isSluiceError(error, 'LOG_NOT_FOUND'));
    for (const name of ['legacy', 'readonly', 'recover']) {
      await assert.rejects(FlumeOffsetLog.open(fresh(), { [name]: 'yes' }), TypeError, name);
    }
    await assert.rejects(FlumeOffsetLog.open(fresh(), { create: 'yes' as 'new' }), TypeError);
    // create: 'new' writes a new file only: what exists there (a file, a link) is refused and left as it was.
    const made = fresh();
    const created = await FlumeOffsetLog.open(made, { create: 'new' });
    await created.append({ a: 1 });
    await created.close();
    const before = readFileSync(made);
    await assert.rejects(FlumeOffsetLog.open(made, { create: 'new' }), (error: unknown) => isSluiceError(error, 'INVALID_INPUT'));
    const link = fresh();
    symlinkSync(made, link);
    await assert.rejects(FlumeOffsetLog.open(link, { create: 'new' }), (error: unknown) => isSluiceError(error, 'INVALID_INPUT'));
    assert.deepEqual(readFileSync(made), before);
    // Paths that cannot be a log file: a directory, a path under a file.
    const notALog = (error: unknown): boolean => isSluiceError(error, 'NOT_A_LOG');
    for (const readonly of [false, true]) {
      await assert.rejects(FlumeOffsetLog.open(root, { readonly }), notALog);
      const file = fresh();
      writeFileSync(file, 'x');
      await assert.rejects(FlumeOffsetLog.open(join(file, 'log'), { readonly }), notALog);
    }
  });
});
