import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isSluiceError } from '../../src/errors.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { segmentName } from '../../src/log/file/format.js';
import { collect, rejectsWith } from '../conformance/log-suite.js';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory();
let dirCount = 0;
const freshDir = (): string => join(root, `log-${dirCount++}`);
const fixture = fileURLToPath(new URL('../../../test/fixtures/v1-log', import.meta.url));
const fileLogModule = fileURLToPath(new URL('../../src/log/file/file-log.js', import.meta.url));

function segmentFiles(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.endsWith('.seg')).sort();
}

function flipByte(file: string, position: number): void {
  const bytes = readFileSync(file);
  bytes[position] = (bytes[position] as number) ^ 0xff;
  writeFileSync(file, bytes);
}

function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of readdirSync(dir)) files[name] = readFileSync(join(dir, name)).toString('hex');
  return files;
}

describe('FileLog: format (FORMAT.md)', () => {
  it('decodes the golden v1 log: offsets, values, keys, times', async () => {
    await using log = await FileLog.open(fixture, { readonly: true });
    const records = await collect(log.stream());
    assert.equal(records.length, 50);
    assert.deepEqual(records[0]?.value, { seq: 0, text: 'record 0'.padEnd(60, '.') });
    assert.equal(Buffer.from(records[0]?.key ?? []).toString(), 'key-0');
    assert.equal(records[1]?.key, undefined);
    assert.equal(records[39]?.time, 1763750000039);
    assert.deepEqual(records[49]?.value, { batch: 1, i: 9 });
    assert.equal(log.since, records[49]?.offset);
    assert.deepEqual(segmentFiles(fixture), ['00000000000000000000.seg', '00000000000000004082.seg']);
    // The second segment starts where the first one's records end: offsets run on across segments (F-4).
    assert.equal(records.find((record) => record.offset === 4082)?.value !== undefined, true);
  });

  it('writes the header and frame bytes that FORMAT.md specifies', async () => {
    const dir = freshDir();
    const log = await FileLog.open(dir);
    await log.append({ a: 1 }, { time: 0x0102030405, key: 'k' });
    await log.close();
    const bytes = readFileSync(join(dir, segmentName(0)));
    // F-5: magic, version 1, header size 64, flags 0, base offset 0.
    assert.equal(bytes.subarray(0, 16).toString('hex'), '534c554943454c47' + '0100400000000000');
    assert.equal(bytes.readBigUInt64LE(16), 0n);
    assert.ok(bytes.subarray(32, 60).every((byte) => byte === 0));
    // F-10: length 40 (32 + 1 key byte + 7 value bytes), checksum, offset 0, time, key length 1, flags 0.
    const frame = bytes.subarray(64);
    assert.equal(frame.length, 40);
    assert.equal(frame.readUInt32LE(0), 40);
    assert.equal(frame.readBigUInt64LE(8), 0n);
    assert.equal(frame.readBigUInt64LE(16), 0x0102030405n);
    assert.equal(frame.readUInt16LE(24), 1);
    assert.equal(frame[26], 0);
    assert.equal(frame.subarray(28, 29).toString(), 'k');
    assert.equal(frame.subarray(29, 36).toString(), '{"a":1}');
    assert.equal(frame.readUInt32LE(36), 40);
  });

  it('marks every record of a batch but the last as continued (F-11)', async () => {
    const dir = freshDir();
    const log = await FileLog.open(dir);
    const offsets = await log.append(['a', 'b', 'c']);
    await log.close();
    const bytes = readFileSync(join(dir, segmentName(0)));
    assert.deepEqual(
      offsets.map((offset) => bytes[64 + offset + 26]),
      [1, 1, 0],
    );
  });
});

describe('FileLog: segments', () => {
  it('rolls over at segmentBytesMax and never splits a batch', async () => {
    const dir = freshDir();
    const log = await FileLog.open(dir, { segmentBytesMax: 4096 });
    const batches: number[][] = [];
    for (let i = 0; i < 60; i++) {
      batches.push(await log.append(Array.from({ length: 7 }, (_, j) => `${i}-${j}`.padEnd(30, '.'))));
    }
    const bases = [...log.segments.bases];
    assert.ok(bases.length > 3);
    for (const batch of batches) {
      const segment = log.segments.indexOf(batch[0] as number);
      assert.equal(log.segments.indexOf(batch[batch.length - 1] as number), segment, 'a batch spans two segments');
    }
    await log.close();
    for (const name of segmentFiles(dir)) assert.ok(statSync(join(dir, name)).size <= 64 + 4096);
    await using again = await FileLog.open(dir, { segmentBytesMax: 4096 });
    assert.deepEqual(again.segments.bases, bases);
    assert.equal((await collect(again.stream())).length, 420);
    assert.equal((await collect(again.stream({ reverse: true }))).length, 420);
  });

  it('gives a batch larger than a segment a segment of its own', async () => {
    const dir = freshDir();
    await using log = await FileLog.open<string>(dir, { segmentBytesMax: 4096 });
    await log.append('small');
    const big = await log.append(Array.from({ length: 100 }, (_, i) => `big ${i}`.padEnd(100, '!')));
    await log.append('after');
    assert.equal(log.segments.indexOf(big[0] as number), 1);
    assert.equal(log.segments.indexOf(big[99] as number), 1);
    assert.equal(log.segments.bases.length, 3);
    assert.equal(await log.get(big[50] as number), `big 50`.padEnd(100, '!'));
  });

  it('opens a log without reading its sealed segments (a damaged one shows only when read)', async () => {
    const dir = freshDir();
    const log = await FileLog.open(dir, { segmentBytesMax: 4096 });
    const offsets: number[] = [];
    for (let i = 0; i < 200; i++) offsets.push(await log.append({ i }));
    await log.close();
    // Damage a record of the first segment: opening must not notice, since it only checks the last segment's tail.
    const victim = offsets[3] as number;
    flipByte(join(dir, segmentName(0)), 64 + victim + 30);
    await using again = await FileLog.open(dir, { segmentBytesMax: 4096 });
    assert.equal(again.since, offsets[199]);
    await assert.rejects(again.get(victim), (error: Error & { code?: string; file?: string; position?: number }) => {
      assert.equal(error.code, 'CORRUPT_RECORD');
      assert.equal(error.file, join(dir, segmentName(0)));
      assert.equal(error.position, 64 + victim);
      return true;
    });
    const seen: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const record of again.stream()) seen.push(record.offset);
      })(),
      { code: 'CORRUPT_RECORD' },
    );
    assert.deepEqual(seen, offsets.slice(0, 3));
    await rejectsWith(collect(again.stream({ reverse: true })), 'CORRUPT_RECORD');
    assert.deepEqual(await again.get(offsets[4] as number), { i: 4 });
  });
});

describe('FileLog: checksums in WebAssembly (ChecksumWindow)', () => {
  /** A log of 4,000 records of 40 to 240 bytes (one segment), with one value byte of record `victimIndex` flipped. */
  async function damagedLog(victimIndex: number, bigAt?: number): Promise<{ dir: string; offsets: number[]; victim: number }> {
    const dir = freshDir();
    const log = await FileLog.open(dir);
    const offsets: number[] = [];
    for (let i = 0; i < 4000; i += 100) {
      offsets.push(...(await log.append(Array.from({ length: 100 }, (_, j) => ({ i: i + j, pad: 'p'.repeat((i + j) % 200) })))));
      // A record larger than a reader's window (256 KiB): it is read into a buffer of its own.
      if (bigAt === i) await log.append({ big: 'b'.repeat(300 * 1024) });
    }
    await log.close();
    const victim = offsets[victimIndex] as number;
    flipByte(join(dir, segmentName(0)), 64 + victim + 33);
    return { dir, offsets, victim };
  }

  const isDamageAt = (victim: number) => (error: Error & { code?: string; offset?: number }) =>
    error.code === 'CORRUPT_RECORD' && error.offset === victim;

  async function offsetsBeforeFailure(log: FileLog, options: { reverse?: boolean } = {}): Promise<{ seen: number[]; error: unknown }> {
    const seen: number[] = [];
    try {
      for await (const record of log.stream(options)) seen.push(record.offset);
    } catch (error) {
      return { seen, error };
    }
    return { seen, error: undefined };
  }

  it('finds damage past a scan\'s first chunk, streaming and in gets', async () => {
    // Well past the first chunk (256 KiB) of a scan, which is read into a plain buffer.
    const { dir, offsets, victim } = await damagedLog(3500);
    assert.ok(victim > 300 * 1024, `at ${victim}`);
    await using again = await FileLog.open(dir);
    const { seen, error } = await offsetsBeforeFailure(again);
    assert.ok(isDamageAt(victim)(error as Error), String(error));
    assert.deepEqual(seen, offsets.slice(0, 3500));
    // Gets, from the log's own reader, once it reads through its window too.
    assert.deepEqual(await again.get(offsets[10] as number), { i: 10, pad: 'p'.repeat(10) });
    await rejectsWith(again.get(victim), 'CORRUPT_RECORD');
    assert.deepEqual(await again.get(offsets[3501] as number), { i: 3501, pad: 'p'.repeat(3501 % 200) });
  });

  it('finds damage reading backwards, past the first chunk read back', async () => {
    const { dir, offsets, victim } = await damagedLog(300);
    await using again = await FileLog.open(dir);
    const { seen, error } = await offsetsBeforeFailure(again, { reverse: true });
    assert.ok(isDamageAt(victim)(error as Error), String(error));
    assert.deepEqual(seen, offsets.slice(301).reverse());
  });

  it('finds damage after a record larger than the window', async () => {
    const { dir, offsets, victim } = await damagedLog(3500, 1000);
    await using again = await FileLog.open(dir);
    const { seen, error } = await offsetsBeforeFailure(again);
    assert.ok(isDamageAt(victim)(error as Error), String(error));
    assert.equal(seen.length, 3501);
    assert.deepEqual(seen.filter((offset) => offsets.includes(offset)), offsets.slice(0, 3500));
  });

  it('falls back to the JavaScript checksum without WebAssembly, or without address space for it', async (t) => {
    const { dir, victim } = await damagedLog(3500);
    const script = `
      import { FileLog } from ${JSON.stringify(fileLogModule)};
      console.log('started');
      const log = await FileLog.open(process.argv[1], { readonly: true });
      const seen = [];
      try {
        for await (const record of log.stream()) seen.push(record.offset);
      } catch (error) {
        console.log(JSON.stringify({ code: error.code, offset: error.offset, name: error.name, seen: seen.length }));
      }
      await log.close();
    `;
    const runs = [
      ['--jitless', [process.execPath, '--jitless', '--input-type=module', '-e', script, dir]],
      // V8 reserves ~10 GiB of address space for each WebAssembly memory: under this limit it cannot.
      ['ulimit -v', ['/bin/sh', '-c', 'ulimit -v 4000000 && exec "$0" --input-type=module -e "$1" "$2"', process.execPath, script, dir]],
    ] as const;
    for (const [label, [command, ...args]] of runs) {
      const result = spawnSync(command, args, { encoding: 'utf8', timeout: 60_000 });
      if (!result.stdout.startsWith('started')) {
        t.diagnostic(`${label}: node did not start here (${result.stderr.trim().split('\n')[0] ?? ''})`);
        continue;
      }
      assert.doesNotMatch(result.stderr, /error/i, label);
      const outcome = JSON.parse(result.stdout.trim().split('\n')[1] ?? '{}') as { code?: string; offset?: number; seen?: number };
      assert.deepEqual(outcome, { code: 'CORRUPT_RECORD', offset: victim, name: 'SluiceError', seen: 3500 }, label);
    }
  });
});

describe('FileLog: recovery on open (F-40)', () => {
  async function logWithBatches(): Promise<{ dir: string; kept: number[]; lastBatch: number[] }> {
    const dir = freshDir();
    const log = await FileLog.open(dir);
    const kept = [...(await log.append(['one', 'two'])), await log.append('three')];
    const lastBatch = await log.append(['four', 'five', 'six']);
    await log.close();
    return { dir, kept, lastBatch };
  }

  it('cuts a torn last batch at every byte, keeps the rest, and quarantines the cut bytes', async () => {
    const { dir, kept, lastBatch } = await logWithBatches();
    const file = join(dir, segmentName(0));
    const full = readFileSync(file);
    const batchStart = 64 + (lastBatch[0] as number);
    for (let cut = batchStart; cut < full.length; cut += 1) {
      const copy = freshDir();
      cpSync(dir, copy, { recursive: true });
      truncateSync(join(copy, segmentName(0)), cut);
      const log = await FileLog.open(copy);
      assert.equal(log.since, kept[kept.length - 1], `cut at ${cut}`);
      assert.deepEqual(
        (await collect(log.stream())).map((record) => record.value),
        ['one', 'two', 'three'],
      );
      assert.equal(await log.append('next'), lastBatch[0]);
      await log.close();
      if (cut > batchStart) {
        const quarantined = readdirSync(join(copy, 'quarantine'));
        assert.equal(quarantined.length, 1);
        assert.deepEqual(readFileSync(join(copy, 'quarantine', quarantined[0] as string)), full.subarray(batchStart, cut));
      }
    }
  });

  it('cuts garbage written after the last batch', async () => {
    const { dir, lastBatch } = await logWithBatches();
    const file = join(dir, segmentName(0));
    writeFileSync(file, Buffer.concat([readFileSync(file), Buffer.from('garbage that is not a frame at all')]));
    await using log = await FileLog.open(dir);
    assert.equal(log.since, lastBatch[2]);
  });

  it('refuses to guess when damage is followed by valid records (CORRUPT_LOG), modifying nothing', async () => {
    const { dir, kept } = await logWithBatches();
    const file = join(dir, segmentName(0));
    flipByte(file, 64 + (kept[1] as number) + 30);
    writeFileSync(file, Buffer.concat([readFileSync(file), Buffer.from([1, 2, 3])]));
    const before = snapshot(dir);
    await rejectsWith(FileLog.open(dir), 'CORRUPT_LOG');
    await rejectsWith(FileLog.open(dir, { readonly: true }), 'CORRUPT_LOG');
    assert.deepEqual(snapshot(dir), before);
  });

  it('reports offsets that no file holds (a segment missing between two) as CORRUPT_LOG, by stream and by get', async () => {
    const dir = freshDir();
    const offsets: number[] = [];
    {
      await using log = await FileLog.open(dir, { segmentBytesMax: 4096 });
      for (let i = 0; i < 100; i++) offsets.push(await log.append({ i, text: 'x'.repeat(100) }));
    }
    const bases = readdirSync(dir).filter((name) => name.endsWith('.seg')).sort();
    assert.ok(bases.length >= 4);
    const missing = Number((bases[2] as string).slice(0, 20));
    const next = Number((bases[3] as string).slice(0, 20));
    rmSync(join(dir, bases[2] as string));
    await using log = await FileLog.open(dir, { readonly: true });
    const gap = (error: unknown): boolean =>
      isSluiceError(error, 'CORRUPT_LOG') &&
      error.file === join(dir, bases[1] as string) &&
      error.message.includes(`offsets ${missing} to ${next}`) &&
      error.message.includes(`${bases[2] as string} is missing`);
    await assert.rejects(collect(log.stream()), gap);
    await assert.rejects(collect(log.stream({ reverse: true })), gap);
    await assert.rejects(log.get(offsets.find((offset) => offset > missing) as number), gap);
    // Records on either side still read.
    assert.deepEqual(await log.get(offsets[0] as number), { i: 0, text: 'x'.repeat(100) });
    assert.equal((await collect(log.stream({ gte: next }))).length, offsets.filter((offset) => offset >= next).length);
  });

  it('reports a sealed segment cut short inside a record as CORRUPT_LOG, by stream both ways and by get', async () => {
    const dir = freshDir();
    const offsets: number[] = [];
    {
      await using log = await FileLog.open(dir, { segmentBytesMax: 4096 });
      for (let i = 0; i < 100; i++) offsets.push(await log.append({ i, text: 'x'.repeat(100) }));
    }
    const second = join(dir, readdirSync(dir).filter((name) => name.endsWith('.seg')).sort()[1] as string);
    truncateSync(second, statSync(second).size - 10);
    await using log = await FileLog.open(dir, { readonly: true });
    const short = (error: unknown): boolean => isSluiceError(error, 'CORRUPT_LOG') && error.file === second;
    await assert.rejects(collect(log.stream()), short);
    await assert.rejects(collect(log.stream({ reverse: true })), short);
    const next = Number((readdirSync(dir).filter((name) => name.endsWith('.seg')).sort()[2] as string).slice(0, 20));
    await assert.rejects(log.get(offsets.filter((offset) => offset < next).pop() as number), short);
  });

  it('reports a damaged or future segment header as CORRUPT_SEGMENT', async () => {
    const { dir } = await logWithBatches();
    const file = join(dir, segmentName(0));
    const original = readFileSync(file);
    flipByte(file, 0);
    await rejectsWith(FileLog.open(dir), 'CORRUPT_SEGMENT');
    const future = Buffer.from(original);
    future.writeUInt16LE(2, 8);
    writeFileSync(file, future);
    await assert.rejects(FileLog.open(dir), { code: 'CORRUPT_SEGMENT', message: /version 2/ });
  });
});

describe('FileLog: the directory', () => {
  it('refuses a directory that is not a log, modifying nothing', async () => {
    const dir = freshDir();
    mkdirSync(dir);
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    await rejectsWith(FileLog.open(dir), 'NOT_A_LOG');
    assert.deepEqual(readdirSync(dir), ['notes.txt']);
    await rejectsWith(FileLog.open(join(dir, 'notes.txt')), 'NOT_A_LOG');
  });

  it('does not create a log when read-only or create: false', async () => {
    const dir = freshDir();
    await rejectsWith(FileLog.open(dir, { readonly: true }), 'LOG_NOT_FOUND');
    await rejectsWith(FileLog.open(dir, { create: false }), 'LOG_NOT_FOUND');
    assert.equal(existsSync(dir), false);
    // An empty directory is no log either: nothing is created in it.
    mkdirSync(dir);
    await rejectsWith(FileLog.open(dir, { create: false }), 'LOG_NOT_FOUND');
    assert.deepEqual(readdirSync(dir).filter((name) => name.endsWith('.seg')), []);
  });

  it('validates its options', async () => {
    await assert.rejects(FileLog.open(''), TypeError);
    await assert.rejects(FileLog.open(freshDir(), { durability: 'sometimes' as 'os' }), TypeError);
    await assert.rejects(FileLog.open(freshDir(), { segmentBytesMax: 10 }), RangeError);
    await assert.rejects(FileLog.open(freshDir(), { codec: {} as never }), TypeError);
    for (const name of ['readonly', 'create', 'withoutKey']) {
      await assert.rejects(FileLog.open(freshDir(), { [name]: 'no' }), TypeError, name);
    }
    await assert.rejects(FileLog.open(freshDir(), { now: 5 as unknown as () => number }), TypeError);
  });
});

describe('FileLog: the writer lock (F-30)', () => {
  it('refuses a second writer in the same process, and allows one after close', async () => {
    const dir = freshDir();
    const log = await FileLog.open(dir);
    await rejectsWith(FileLog.open(dir), 'LOCKED');
    await log.close();
    await using again = await FileLog.open(dir);
    assert.equal(again.status, 'open');
  });

  it('refuses a writer in another process', async () => {
    const dir = freshDir();
    await using log = await FileLog.open(dir);
    const child = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { FileLog } = await import(${JSON.stringify(fileLogModule)});
         try { await FileLog.open(${JSON.stringify(dir)}); console.log('opened'); }
         catch (error) { console.log(error.code); }`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(child.stdout.trim(), 'LOCKED');
    assert.equal(log.status, 'open');
  });

  it('takes over the lock of a writer that died', async () => {
    const dir = freshDir();
    const child = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { FileLog } = await import(${JSON.stringify(fileLogModule)});
         const log = await FileLog.open(${JSON.stringify(dir)});
         await log.append('from the dead');
         process.kill(process.pid, 'SIGKILL');`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(child.signal, 'SIGKILL');
    assert.ok(existsSync(join(dir, 'LOCK')));
    await using log = await FileLog.open(dir);
    assert.equal(await log.get(0), 'from the dead');
  });

  it('lets read-only logs open alongside the writer and follow its appends', async () => {
    const dir = freshDir();
    await using writer = await FileLog.open(dir, { segmentBytesMax: 4096 });
    await writer.append('before');
    await using reader = await FileLog.open(dir, { readonly: true });
    assert.equal(reader.since, 0);
    await rejectsWith(reader.append('nope'), 'READ_ONLY');
    // An empty batch writes nothing, yet is an append all the same.
    await rejectsWith(reader.append([]), 'READ_ONLY');
    const offset = await writer.append('after');
    assert.equal(await reader.get(offset), 'after');
    const seen: unknown[] = [];
    const following = (async () => {
      for await (const record of reader.stream({ live: true, limit: 200 })) seen.push(record.value);
    })();
    for (let i = 0; i < 99; i++) await writer.append(Array.from({ length: 2 }, (_, j) => `${i}.${j}`.padEnd(40)));
    await following;
    assert.equal(seen.length, 200);
    assert.ok(writer.segments.bases.length > 1, 'the writer rolled over while the reader followed');
    assert.equal(seen[199], '98.1'.padEnd(40));
  });
});

describe('FileLog: buffered durability', () => {
  it('resolves appends in call order across a backlog past its limit, and every one stays readable', async () => {
    await using log = await FileLog.open<string>(freshDir(), { durability: 'buffered' });
    const big = 'x'.repeat(2 * 1024 * 1024);
    const order: number[] = [];
    const offsets = await Promise.all(
      Array.from({ length: 9 }, (_, i) => log.append(big).then((offset) => (order.push(i), offset))),
    );
    assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert.equal(log.since, offsets[8]);
    assert.equal((await log.get(offsets[8] as number)).length, big.length);
    assert.equal((await collect(log.stream())).length, 9);
  });
});

