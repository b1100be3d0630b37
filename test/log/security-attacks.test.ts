/**
 * Attacks on tamper-evident and encrypted native logs by someone who knows the format but holds no key: each
 * rewrites segment files (CRC-32C recomputed, and digests or links where they can be) so that only the chain, the
 * frame rules or the GCM tag can tell (FORMAT.md F-11, F-12, F-71 … F-78). Also the rotation and chain-head cases
 * that compaction and a torn tail lead to.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { crc32c } from '../../src/checksum/crc32c.js';
import { codecs } from '../../src/codec/codec.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { headerBytes, segmentName } from '../../src/log/file/format.js';
import { check } from '../../src/ops/check.js';
import { collect, rejectsWith } from '../conformance/log-suite.js';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory('sluice-security-attacks-');
let count = 0;
const newDir = (): string => join(root, `log-${count++}`);
const chainKey = Buffer.alloc(32, 0x5a);

function segmentPaths(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .sort()
    .map((name) => join(dir, name));
}

function fixCrc(file: Buffer, position: number): void {
  const size = file.readUInt32LE(position);
  file.writeUInt32LE(crc32c(file, position + 8, position + size), position + 4);
}

interface Payment {
  to: string;
  amount: number;
  memo?: string;
}

async function keyedLog(): Promise<{ dir: string; offsets: number[]; head: string }> {
  const dir = newDir();
  const log = await FileLog.open<Payment>(dir, { chain: 'hmac-sha256', chainKey });
  const offsets = [
    await log.append({ to: 'alice', amount: 10, memo: 'x'.repeat(80) }),
    await log.append({ to: 'bob', amount: 20, memo: 'y'.repeat(80) }),
    await log.append({ to: 'carol', amount: 30 }),
  ];
  const head = log.chainHead().hash;
  await log.close();
  return { dir, offsets, head };
}

/**
 * Rewrites the record at `offset` as a "filler" whose table (in its key bytes) reproduces the record's link and
 * whose value bytes carry a forged payment: the flags given, key length 52.
 */
function forgeFiller(dir: string, offset: number, flags: number): void {
  const path = segmentPaths(dir)[0] as string;
  const file = readFileSync(path);
  const position = headerBytes + offset;
  const size = file.readUInt32LE(position);
  const original = Buffer.from(file.subarray(position, position + size));
  const table = Buffer.alloc(52);
  table.writeUInt32LE(1, 0);
  table.writeUInt32LE(size, 4);
  original.copy(table, 8, 16, 24);
  original.copy(table, 16, 24, 26);
  table[18] = (original[26] as number) & 1;
  original.copy(table, 20, size - 68, size - 36);
  const forged = Buffer.from(JSON.stringify({ to: 'mallory', amount: 999999 }).padEnd(size - 28 - 52 - 68, ' '));
  const frame = Buffer.from(original);
  frame.writeUInt16LE(52, 24);
  frame[26] = ((original[26] as number) & 1) | flags;
  table.copy(frame, 28);
  forged.copy(frame, 80);
  frame.copy(file, position);
  fixCrc(file, position);
  writeFileSync(path, file);
}

describe('forged compaction fillers', () => {
  it('a filler not flagged deleted is a corrupt record: check reports it, get refuses it', async () => {
    const { dir, offsets, head } = await keyedLog();
    const target = offsets[1] as number;
    forgeFiller(dir, target, 0x04 | 0x10);
    const report = await check(dir, { verifyChain: true, chainKey, head });
    assert.equal(report.healthy, false);
    assert.ok(
      report.problems.some((problem) => problem.kind === 'record' && problem.offset === target),
      JSON.stringify(report.problems),
    );
    assert.equal(report.chain?.publishedHeadOffset, null);
    const log = await FileLog.open<Payment>(dir, { readonly: true });
    await rejectsWith(log.get(target), 'CORRUPT_RECORD');
    await log.close();
  });

  it('a frame flagged deleted and filler with a key or a time is no filler: its link is checked as a record', async () => {
    const { dir, offsets, head } = await keyedLog();
    const target = offsets[1] as number;
    forgeFiller(dir, target, 0x02 | 0x04 | 0x10);
    const report = await check(dir, { verifyChain: true, chainKey, head });
    assert.equal(report.healthy, false);
    assert.equal(report.chain?.broken?.offset, target, JSON.stringify(report.chain));
    assert.equal(report.chain?.publishedHeadOffset, null);
  });
});

describe('a compaction filler changed where no link covers it', () => {
  it('is a broken link at the filler: its batch flag, an encrypted flag, a table flag byte, its digest slot', async () => {
    const dir = newDir();
    const log = await FileLog.open<{ n: number; pad: string }>(dir, { chain: 'hmac-sha256', chainKey, segmentBytesMax: 64 * 1024 });
    for (let n = 0; n < 40; n++) await log.append({ n, pad: 'x'.repeat(3000) }, { key: `k${n % 2}` });
    assert.ok((await log.compact()).recordsDropped > 0);
    const head = log.chainHead().hash;
    await log.close();
    const path = segmentPaths(dir)[0] as string;
    const pristine = readFileSync(path);
    const at = headerBytes;
    const size = pristine.readUInt32LE(at);
    assert.equal(pristine[at + 26], 0x02 | 0x04 | 0x10, 'a chained filler at offset 0');
    assert.ok(pristine.readUInt32LE(at + 28) > 1);
    const changes: Array<[string, (file: Buffer) => void]> = [
      ['its batch flag', (file) => (file[at + 26] = (file[at + 26] as number) | 0x01)],
      ['an encrypted flag', (file) => (file[at + 26] = (file[at + 26] as number) | 0x08)],
      ['a table batch byte', (file) => (file[at + 32 + 14] = 2)],
      ['a table reserved byte', (file) => (file[at + 32 + 15] = 1)],
      ['its digest slot', (file) => (file[at + size - 68] = 1)],
    ];
    assert.equal((await check(dir, { verifyChain: true, chainKey, head })).healthy, true);
    for (const [what, change] of changes) {
      const file = Buffer.from(pristine);
      change(file);
      fixCrc(file, at);
      writeFileSync(path, file);
      const report = await check(dir, { verifyChain: true, chainKey, head, workers: 0 });
      assert.equal(report.healthy, false, what);
      assert.equal(report.chain?.broken?.offset, 0, `${what}: ${JSON.stringify(report.chain?.broken)}`);
    }
  });
});

describe('a forged filler at the end of a keyed chain', () => {
  it('whose last batch stays open proves nothing of the batches inside it: neither counted nor taken as the head', async () => {
    const { dir, head } = await keyedLog();
    const path = segmentPaths(dir)[0] as string;
    const file = readFileSync(path);
    const at = file.length - headerBytes;
    // Two covered records: the first ends a batch inside the filler, the second leaves its batch open.
    const size = 32 + 2 * 48 + 68;
    const filler = Buffer.alloc(size);
    filler.writeUInt32LE(size, 0);
    filler.writeUInt32LE(at, 8);
    filler[26] = 0x01 | 0x02 | 0x04 | 0x10;
    filler.writeUInt32LE(2, 28);
    filler.writeUInt32LE(100, 32);
    filler.fill(7, 48, 80);
    filler.writeUInt32LE(size - 100, 80);
    filler[94] = 1;
    filler.fill(9, 96, 128);
    filler.writeUInt32LE(size, size - 4);
    fixCrc(filler, 0);
    writeFileSync(path, Buffer.concat([file, filler]));
    const report = await check(dir, { verifyChain: true, chainKey, workers: 0 });
    assert.equal(report.chain?.broken, null);
    assert.equal(report.chain?.records, 3, JSON.stringify(report.chain));
    assert.equal(report.chain?.head?.hash, head, 'the head is the last link a stored link confirmed');
  });
});

describe('an older segment whose header names another chain algorithm', () => {
  it('is refused with SECURITY_MISMATCH when read, as F-70 has every segment of a log secured alike', async () => {
    const dir = newDir();
    const log = await FileLog.open<{ i: number }>(dir, { chain: 'sha256', segmentBytesMax: 4096 });
    for (let i = 0; i < 60; i++) await log.append({ i });
    assert.ok(log.segments.bases.length > 1);
    await log.close();
    const path = segmentPaths(dir)[0] as string;
    const file = readFileSync(path);
    file[32] = 2;
    file.writeUInt32LE(crc32c(file, 0, 60), 60);
    writeFileSync(path, file);
    for (const readonly of [true, false]) {
      await using reader = await FileLog.open<{ i: number }>(dir, { readonly });
      await rejectsWith(reader.get(0), 'SECURITY_MISMATCH');
      await rejectsWith(collect(reader.stream()), 'SECURITY_MISMATCH');
    }
  });
});

describe('the anchor of a trimmed log', () => {
  it('is never taken for a published head: a log forged to start with that link is refused', async () => {
    const dir = newDir();
    const log = await FileLog.open<Payment>(dir, { chain: 'hmac-sha256', chainKey });
    await log.append({ to: 'alice', amount: 10 });
    await log.append({ to: 'bob__', amount: 20 });
    const { offset, hash } = log.chainHead();
    await log.close();
    // One forged record at `offset`, as if the log had been trimmed to it, whose stored link is the head.
    const [path] = segmentPaths(dir) as [string];
    const original = readFileSync(path);
    const header = Buffer.from(original.subarray(0, headerBytes));
    header.writeUInt32LE(offset, 16);
    header.writeUInt32LE(0, 20);
    header.writeUInt32LE(crc32c(header, 0, 60), 60);
    const size = original.readUInt32LE(headerBytes + offset);
    const frame = Buffer.from(original.subarray(headerBytes + offset, headerBytes + offset + size));
    Buffer.from(JSON.stringify({ to: 'eve', amount: 999 }).padEnd(size - 28 - 68, ' ')).copy(frame, 28);
    createHash('sha256').update(frame.subarray(28, size - 68)).digest().copy(frame, size - 68);
    Buffer.from(hash, 'hex').copy(frame, size - 36);
    fixCrc(frame, 0);
    rmSync(path);
    writeFileSync(join(dir, segmentName(offset)), Buffer.concat([header, frame]));
    const report = await check(dir, { verifyChain: true, chainKey, head: hash });
    assert.equal(report.chain?.anchor?.offset, offset);
    assert.equal(report.chain?.broken, null);
    assert.equal(report.chain?.publishedHeadOffset, null, 'the anchor is not proven by anything');
    assert.equal(report.healthy, false);
    assert.ok(report.problems.some((problem) => problem.kind === 'chain' && /published head/.test(problem.message)));
  });
});

describe('a keyed chain verified with its key', () => {
  it('refuses a log rebuilt as an unkeyed chain', async () => {
    const dir = newDir();
    const log = await FileLog.open<{ amount: number }>(dir, { chain: 'hmac-sha256', chainKey });
    for (let i = 0; i < 5; i++) await log.append({ amount: i });
    await log.close();
    assert.equal((await check(dir, { verifyChain: true, chainKey })).healthy, true);
    const forged = newDir();
    const source = await FileLog.open<{ amount: number }>(dir, { readonly: true });
    const target = await FileLog.open<{ amount: number }>(forged, { chain: 'sha256' });
    for await (const record of source.stream()) await target.append(record.value.amount === 2 ? { amount: 1_000_000 } : record.value);
    await source.close();
    await target.close();
    rmSync(dir, { recursive: true });
    renameSync(forged, dir);
    const report = await check(dir, { verifyChain: true, chainKey });
    assert.equal(report.healthy, false);
    assert.match(report.chain?.broken?.message ?? '', /not keyed/);
    assert.ok(report.problems.some((problem) => problem.kind === 'chain'));
  });
});

describe('an encrypted log declared plain', () => {
  it('breaks the chain at its first record: links cover the frame flags, and frames must be sealed as their header says', async () => {
    const dir = newDir();
    const key = { id: 7, key: randomBytes(32) };
    const log = await FileLog.open<Uint8Array>(dir, { chain: 'hmac-sha256', chainKey, encryption: { key }, codec: codecs.raw() });
    const offsets: number[] = [];
    for (let i = 0; i < 3; i++) offsets.push(await log.append(Buffer.from(`secret payment ${i}`)));
    const head = log.chainHead().hash;
    await log.close();
    const [path] = segmentPaths(dir) as [string];
    const pristine = readFileSync(path);

    // Headers and frames stripped of their encryption (CRCs recomputed).
    const stripped = Buffer.from(pristine);
    stripped.writeUInt32LE(stripped.readUInt32LE(12) & ~0x2, 12);
    stripped[33] = 0;
    stripped.fill(0, 36, 48);
    stripped.writeUInt32LE(crc32c(stripped, 0, 60), 60);
    for (let position = headerBytes; position < stripped.length; position += stripped.readUInt32LE(position)) {
      stripped[position + 26] = (stripped[position + 26] as number) & ~0x08;
      fixCrc(stripped, position);
    }
    writeFileSync(path, stripped);
    let report = await check(dir, { verifyChain: true, chainKey, head });
    assert.equal(report.healthy, false);
    assert.equal(report.chain?.broken?.offset, offsets[0], JSON.stringify(report.chain));
    assert.equal(report.chain?.publishedHeadOffset, null);

    // Frames stripped under an encrypted header: refused by the checker as by readers.
    const framesOnly = Buffer.from(pristine);
    const second = headerBytes + (offsets[1] as number);
    framesOnly[second + 26] = (framesOnly[second + 26] as number) & ~0x08;
    fixCrc(framesOnly, second);
    writeFileSync(path, framesOnly);
    report = await check(dir, { verifyChain: true, chainKey, head });
    assert.equal(report.chain?.broken?.offset, offsets[1], JSON.stringify(report.chain));
    assert.match(report.chain?.broken?.message ?? '', /sealed/);
    const reader = await FileLog.open<Uint8Array>(dir, { readonly: true, encryption: { key }, codec: codecs.raw() });
    await rejectsWith(reader.get(offsets[1] as number), 'CORRUPT_RECORD');
    await reader.close();
  });
});

describe('key rotation after a torn tail', () => {
  it('writes the records of the new key under a header that names it when the cut leaves the segment empty', async () => {
    const dir = newDir();
    const k1 = { id: 1, key: Buffer.alloc(32, 0x01) };
    const k2 = { id: 2, key: Buffer.alloc(32, 0x02) };
    let log = await FileLog.open(dir, { encryption: { key: k1 } });
    await log.append({ a: 1 });
    await log.close();
    const [path] = segmentPaths(dir) as [string];
    // A crash tore the only record: the open cuts it, and the segment is then empty.
    truncateSync(path, headerBytes + 10);
    log = await FileLog.open(dir, { encryption: { key: k2, oldKeys: [k1] } });
    const offset = await log.append({ b: 2 });
    await log.close();
    assert.equal(readFileSync(segmentPaths(dir)[0] as string).readUInt32LE(36), 2, 'the header names the new key');
    log = await FileLog.open(dir, { encryption: { key: k2 }, readonly: true });
    assert.deepEqual(await log.get(offset), { b: 2 });
    await log.close();
    assert.equal((await check(dir)).healthy, true);
  });
});

describe('chainHead after compaction', () => {
  it('finds the head in a filler that covers the last records', async () => {
    const options = { chain: 'sha256', segmentBytesMax: 4096 } as const;
    const dir = newDir();
    let log = await FileLog.open<{ pad: string }>(dir, options);
    const offsets: number[] = [];
    while (segmentPaths(dir).length < 2) offsets.push(await log.append({ pad: 'p'.repeat(150) }, { key: `k${offsets.length}` }));
    offsets.pop();
    const [a, b] = offsets.slice(-2) as [number, number];
    await log.close();
    // A crash tore the new segment's only record: the open cuts it, and the last record is b's.
    const newest = segmentPaths(dir)[1] as string;
    truncateSync(newest, statSync(newest).size - 5);
    log = await FileLog.open<{ pad: string }>(dir, options);
    const head = log.chainHead();
    assert.equal(head.offset, b);
    await log.delete([a, b]);
    const compacted = await log.compact();
    assert.ok(compacted.recordsDropped >= 2);
    assert.deepEqual(log.chainHead(), head);
    assert.equal((await collect(log.stream())).length, offsets.length - 2);
    await log.close();
    const report = await check(dir, { verifyChain: true, head: head.hash });
    assert.equal(report.healthy, true, JSON.stringify(report.problems));
  });
});
