/**
 * Crafted hostile files, one per bound of FORMAT.md F-95…F-98: lengths and sizes read from disk that would make a
 * reader allocate gigabytes or loop without end are reported as damage, with the file and position, in bounded
 * time and memory. Sparse files make the huge sizes cheap to create.
 */
import assert from 'node:assert/strict';
import { mkdirSync, truncateSync, writeFileSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import { deletesFileName } from '../../src/log/file/segment-files.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { parseFrame } from '../../src/log/file/format.js';
import { FlumeOffsetLog } from '../../src/log/flume-offset/flume-offset-log.js';
import { deleteRecordsMax } from '../../src/limits.js';
import { check } from '../../src/ops/check.js';
import { recover } from '../../src/ops/recover.js';
import { reduce } from '../../src/views/reduce.js';
import { index } from '../../src/views/index-view.js';
import { open as openLmdb } from 'lmdb';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory('sluice-crafted-');
let count = 0;
const fresh = (): string => join(root, `case-${count++}`);

async function smallLog(dir: string): Promise<number[]> {
  const log = await FileLog.open(dir);
  try {
    return await log.append([{ a: 1 }, { a: 2 }, { a: 3 }]);
  } finally {
    await log.close();
  }
}

describe('crafted hostile files', () => {
  it('a DELETES journal of gigabytes is damage (F-97): open refuses it, check reports it, recover quarantines it', async () => {
    const dir = fresh();
    const offsets = await smallLog(dir);
    writeFileSync(join(dir, deletesFileName), '');
    truncateSync(join(dir, deletesFileName), 3 * 1024 ** 3);
    await assert.rejects(FileLog.open(dir), (error) => isSluiceError(error, 'CORRUPT_LOG') && error.file === join(dir, deletesFileName));
    const report = await check(dir);
    assert.ok(report.problems.some((problem) => problem.kind === 'delete' && problem.severity === 'error'), JSON.stringify(report.problems));
    await recover(dir);
    assert.ok(!existsSync(join(dir, deletesFileName)));
    assert.ok(readdirSync(join(dir, 'quarantine')).some((name) => name.startsWith(deletesFileName)));
    const log = await FileLog.open(dir);
    assert.deepEqual(await log.get(offsets[2] as number), { a: 3 });
    await log.close();
    assert.equal((await check(dir)).healthy, true);
  });

  it('a position whose length field is plausible but whose offset field is not its own is refused from 16 bytes', () => {
    // What a walk over garbage meets at every byte: asking for the whole claimed frame first made that walk
    // read up to a frame's bound per position.
    const head = Buffer.alloc(16);
    head.writeUInt32LE(8 * 1024 * 1024, 0);
    head.writeBigUInt64LE(12_345n, 8);
    const frame = { size: 0, time: 0, keyStart: 0, keyLength: 0, valueStart: 0, valueLength: 0, batchContinues: false, deleted: false, filler: false, encrypted: false, chainStart: -1 };
    assert.equal(parseFrame(head, 0, 16, 999, frame), 'the frame belongs to another offset');
    assert.deepEqual(parseFrame(head, 0, 16, 12_345, frame), { needBytes: 8 * 1024 * 1024 });
  });

  it('a delete of more offsets than a journal may hold is a RangeError, before anything is written', async () => {
    const log = await FileLog.open(fresh());
    try {
      await log.append({ a: 1 });
      assert.throws(() => void log.delete(new Array<number>(deleteRecordsMax + 1).fill(0)), RangeError);
      assert.deepEqual(await log.get(0), { a: 1 });
    } finally {
      await log.close();
    }
  });

  it('a view state file of gigabytes is discarded (F-96) and the view rebuilt', async () => {
    const dir = fresh();
    await smallLog(dir);
    mkdirSync(join(dir, 'views', 'count'), { recursive: true });
    writeFileSync(join(dir, 'views', 'count', 'state'), '');
    truncateSync(join(dir, 'views', 'count', 'state'), 2 * 1024 ** 3);
    const db = await Sluice.open(dir);
    const reports: string[] = [];
    db.on('report', ({ message }) => reports.push(message));
    try {
      const view = db.use('count', reduce(1, (n: number) => n + 1, { initial: 0 }));
      assert.equal(await view.get(), 3);
      assert.ok(reports.some((message) => /more than a state file may/.test(message)), reports.join('; '));
    } finally {
      await db.close();
    }
  });

  it('an index entry garbled into another record, or into no offset, fails with CORRUPT_VIEW, never answers', async () => {
    const dir = fresh();
    {
      const db = await Sluice.open<{ i: number }>(dir);
      const byI = db.use('byI', index<{ i: number }>(1, (value) => value.i));
      await db.append([{ i: 1 }, { i: 2 }, { i: 3 }]);
      assert.equal((await byI.get(3))?.value.i, 3);
      await db.close();
    }
    // What a damaged page can do: key 1 now holds the offset of record 2, key 2 a fraction, key 3 a huge number.
    const root = openLmdb({ path: join(dir, 'views', 'byI', 'index.mdb'), compression: false });
    const entries = root.openDB<number, number>({ name: 'entries', encoding: 'ordered-binary' });
    const second = entries.get(2) as number;
    await entries.put(1, second);
    await entries.put(2, 12.5);
    await entries.put(3, 2 ** 60);
    await root.close();
    const db = await Sluice.open<{ i: number }>(dir);
    try {
      const byI = db.use('byI', index<{ i: number }>(1, (value) => value.i));
      for (const key of [1, 2, 3]) {
        await assert.rejects(byI.get(key), (error) => isSluiceError(error, 'CORRUPT_VIEW') && /index\.mdb$/.test(error.file ?? ''), `key ${key}`);
      }
      await assert.rejects(
        (async () => {
          for await (const entry of byI.read()) assert.fail(`an entry was returned: ${JSON.stringify(entry)}`);
        })(),
        (error) => isSluiceError(error, 'CORRUPT_VIEW'),
      );
      // Rebuilt, it answers again.
      await db.rebuild('byI');
      assert.equal((await byI.get(1))?.value.i, 1);
    } finally {
      await db.close();
    }
  });

  it('segment frames with huge, backward and self-pointing lengths, and a future version, fail with positions', async () => {
    const dir = fresh();
    const offsets = await smallLog(dir);
    const path = join(dir, '00000000000000000000.seg');
    const original = readFileSync(path);
    const second = 64 + (offsets[1] as number);
    for (const length of [0xffff_ffff, 0x7fff_ffff, 0x100_0000 + 33, 0, 1, 31, second]) {
      const bytes = Buffer.from(original);
      bytes.writeUInt32LE(length, second);
      writeFileSync(path, bytes);
      const log = await FileLog.open(dir, { readonly: true });
      try {
        await assert.rejects(log.get(offsets[1] as number), (error) => isSluiceError(error) && error.file === path && typeof error.position === 'number');
        assert.deepEqual(await log.get(offsets[0] as number), { a: 1 });
      } finally {
        await log.close();
      }
    }
    const future = Buffer.from(original);
    future.writeUInt16LE(7, 8);
    writeFileSync(path, future);
    await assert.rejects(FileLog.open(dir, { readonly: true }), (error) => isSluiceError(error, 'CORRUPT_SEGMENT') && /version 7/.test(error.message));
  });

  it('flumelog-offset lengths past 16 MiB, backwards end fields and cycles are damage, never an allocation or a loop', async () => {
    const file = join(fresh(), 'log.offset');
    const log = await FlumeOffsetLog.open(file);
    const offsets = await log.append([{ a: 1 }, { a: 2 }, { a: 3 }]);
    await log.close();
    const original = readFileSync(file);
    const second = offsets[1] as number;
    const payload = original.readUInt32BE(second);
    const variants: Array<[string, (bytes: Buffer) => void]> = [
      ['a huge length', (bytes) => bytes.writeUInt32BE(0xffff_fff0, second)],
      ['both lengths huge', (bytes) => (bytes.writeUInt32BE(0x0200_0000, second), bytes.writeUInt32BE(0x0200_0000, second + 4 + payload))],
      ['an end field pointing back at the first record (a cycle)', (bytes) => bytes.writeUInt32BE(0, second + 8 + payload)],
      ['an end field pointing at itself', (bytes) => bytes.writeUInt32BE(second, second + 8 + payload)],
    ];
    for (const [what, craft] of variants) {
      const bytes = Buffer.from(original);
      craft(bytes);
      writeFileSync(file, bytes);
      const reader = await FlumeOffsetLog.open(file, { readonly: true }).catch((error: unknown) => error);
      if (!(reader instanceof FlumeOffsetLog)) {
        assert.ok(isSluiceError(reader) && typeof reader.position === 'number', `${what}: ${String(reader)}`);
        continue;
      }
      try {
        const seen: unknown[] = [];
        try {
          for await (const record of reader.stream()) seen.push(record.value);
        } catch (error) {
          assert.ok(isSluiceError(error), `${what}: ${String(error)}`);
        }
        assert.ok(seen.length <= 3, `${what}: no record read twice`);
        await assert.rejects(reader.get(second), (error) => isSluiceError(error), what);
      } finally {
        await reader.close();
      }
    }
  });
});
