/**
 * Tamper-evident and encrypted native logs (FORMAT.md F-70 … F-79). Tampering is done the way an attacker who
 * knows the format would: bytes changed in the segment file and the CRC-32C recomputed (and, in the stronger
 * cases, digests and links recomputed too), so that only the chain — or the GCM tag — can tell.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { crc32c } from '../../src/checksum/crc32c.js';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import { FileLog, type FileLogOptions } from '../../src/log/file/file-log.js';
import { chainBytes, headerBytes } from '../../src/log/file/format.js';
import { ChainHasher } from '../../src/log/file/security/chain.js';
import { check, type CheckReport } from '../../src/ops/check.js';
import { reduce } from '../../src/views/reduce.js';
import { collect, rejectsWith } from '../conformance/log-suite.js';
import { temporaryDirectory } from '../helpers.js';
import { runUntilKilled } from '../kill-harness.js';

const root = temporaryDirectory('sluice-security-');
let count = 0;
const newDir = (): string => join(root, `log-${count++}`);
const keyA = { id: 1, key: Buffer.alloc(32, 0x11) };
const keyB = { id: 2, key: Buffer.alloc(32, 0x22) };
const hasher = new ChainHasher('sha256');

/** Ten records of equal size (so two can swap places): `v00` … `v09`. */
async function chainedLog(options: FileLogOptions<string> = {}): Promise<{ dir: string; offsets: number[]; head: string }> {
  const dir = newDir();
  const log = await FileLog.open<string>(dir, { chain: 'sha256', ...options });
  const offsets: number[] = [];
  for (let i = 0; i < 10; i++) offsets.push(await log.append(`v${String(i).padStart(2, '0')}`));
  const head = log.chainHead().hash;
  await log.close();
  return { dir, offsets, head };
}

function segmentPath(dir: string, index = 0): string {
  const names = readdirSync(dir).filter((name) => name.endsWith('.seg')).sort();
  return join(dir, names[index] as string);
}

/** File positions of the frames of a segment. */
function framePositions(file: Buffer): number[] {
  const positions: number[] = [];
  for (let position = headerBytes; position < file.length; position += file.readUInt32LE(position)) positions.push(position);
  return positions;
}

function setOffset(file: Buffer, position: number, offset: number): void {
  file.writeUInt32LE(offset % 0x1_0000_0000, position + 8);
  file.writeUInt32LE(Math.floor(offset / 0x1_0000_0000), position + 12);
}

function fixCrc(file: Buffer, position: number): void {
  const size = file.readUInt32LE(position);
  file.writeUInt32LE(crc32c(file, position + 8, position + size), position + 4);
}

/** Recomputes a chained frame's digest (and, given the link before it, its link), then its CRC. */
function rehash(file: Buffer, position: number, previous?: Buffer): Buffer {
  const size = file.readUInt32LE(position);
  const chainStart = position + size - 4 - chainBytes;
  // F-73: the digest covers the stored bytes between the fixed part and the chain bytes.
  createHash('sha256').update(file.subarray(position + 28, chainStart)).digest().copy(file, chainStart);
  if (previous !== undefined) {
    // Every batch of these logs is a single record: its link is its own.
    hasher.addFrame(previous, file, position, chainStart);
    hasher.finish().copy(file, chainStart + 32);
  }
  fixCrc(file, position);
  return Buffer.from(file.subarray(chainStart + 32, chainStart + 64));
}

/** Changes a byte of the content of frame `index` of the first segment, then lets `reseal` fix what it chooses. */
function changeContent(dir: string, index: number, reseal: (file: Buffer, position: number) => void): void {
  const path = segmentPath(dir);
  const file = readFileSync(path);
  const position = framePositions(file)[index] as number;
  file[position + 29] = 'X'.charCodeAt(0);
  reseal(file, position);
  writeFileSync(path, file);
}

/**
 * Changes a byte of the content of frame `index` (not the first) of the first segment of a log of single
 * appends, then recomputes every digest, link and CRC from there on, as an attacker without a chain key can.
 */
function changeAndRecomputeChain(dir: string, index: number): void {
  const path = segmentPath(dir);
  const file = readFileSync(path);
  const positions = framePositions(file);
  file[(positions[index] as number) + 29] = 'Z'.charCodeAt(0);
  let previous = linkAt(file, positions[index - 1] as number);
  for (const position of positions.slice(index)) previous = rehash(file, position, previous);
  writeFileSync(path, file);
}

function linkAt(file: Buffer, position: number): Buffer {
  const size = file.readUInt32LE(position);
  return Buffer.from(file.subarray(position + size - 36, position + size - 4));
}

async function verify(dir: string, head?: string): Promise<CheckReport> {
  return check(dir, { verifyChain: true, ...(head === undefined ? {} : { head }) });
}

/** The report finds the records intact by CRC (framing is fine) and the chain broken at `offset`. */
function assertBrokenAt(report: CheckReport, offset: number, what: RegExp): void {
  assert.equal(report.problems.filter((problem) => problem.kind === 'record').length, 0, 'the CRCs were recomputed');
  assert.equal(report.healthy, false);
  assert.equal(report.chain?.broken?.offset, offset, JSON.stringify(report.chain));
  assert.match(report.chain?.broken?.message ?? '', what);
  const problem = report.problems.find((each) => each.kind === 'chain');
  assert.equal(problem?.offset, offset);
  assert.ok(problem?.file.endsWith('.seg'));
}

describe('tamper-evident logs: check --verify-chain', () => {
  it('verifies an untouched chain, finds a published head, and survives a reopen', async () => {
    const { dir, offsets, head } = await chainedLog();
    const report = await verify(dir, head);
    assert.equal(report.healthy, true, JSON.stringify(report.problems));
    assert.equal(report.chain?.records, 10);
    assert.equal(report.chain?.anchor?.hash, '0'.repeat(64));
    assert.deepEqual(report.chain?.head, { offset: offsets[9], hash: head });
    assert.equal(report.chain?.publishedHeadOffset, offsets[9]);
    const log = await FileLog.open<string>(dir);
    assert.equal(log.chained, true);
    assert.deepEqual(log.chainHead(), { offset: offsets[9], hash: head });
    await log.append('v10');
    assert.notEqual(log.chainHead().hash, head);
    await log.close();
    const again = await verify(dir, head);
    assert.equal(again.healthy, true);
    assert.equal(again.chain?.publishedHeadOffset, offsets[9], 'an older head is still found: the log only grew');
  });

  it('a refused batch leaves no trace in the chain', async () => {
    const dir = newDir();
    const log = await FileLog.open<string>(dir, { chain: 'sha256', encryption: { key: keyA } });
    await log.append('before');
    // The second value encodes past the largest value: the batch is refused after its first record was sealed.
    assert.throws(() => log.append(['fits', 'x'.repeat(16 * 1024 * 1024)]), RangeError);
    await log.append('after');
    await log.close();
    const report = await verify(dir);
    assert.equal(report.healthy, true, JSON.stringify(report.problems));
    assert.equal(report.chain?.records, 2);
  });

  it('finds a changed byte whose CRC was recomputed, at that record', async () => {
    const { dir, offsets } = await chainedLog();
    changeContent(dir, 4, fixCrc);
    assertBrokenAt(await verify(dir), offsets[4] as number, /digest/);
  });

  it('finds a change with its digest recomputed, at that record; with its link too, at the next', async () => {
    const { dir, offsets } = await chainedLog();
    const path = segmentPath(dir);
    const file = readFileSync(path);
    const positions = framePositions(file);
    file[(positions[4] as number) + 29] = 'X'.charCodeAt(0);
    rehash(file, positions[4] as number);
    writeFileSync(path, file);
    assertBrokenAt(await verify(dir), offsets[4] as number, /link/);
    rehash(file, positions[4] as number, linkAt(file, positions[3] as number));
    writeFileSync(path, file);
    assertBrokenAt(await verify(dir), offsets[5] as number, /link/);
  });

  it('finds two records swapped (offsets and CRCs fixed), at the first of them', async () => {
    const { dir, offsets } = await chainedLog();
    const path = segmentPath(dir);
    const file = readFileSync(path);
    const [, , a, , , , b] = framePositions(file);
    const size = file.readUInt32LE(a);
    const first = Buffer.from(file.subarray(a, (a as number) + size));
    file.copy(file, a, b, (b as number) + size);
    first.copy(file, b);
    setOffset(file, a as number, offsets[2] as number);
    setOffset(file, b as number, offsets[6] as number);
    fixCrc(file, a as number);
    fixCrc(file, b as number);
    writeFileSync(path, file);
    assertBrokenAt(await verify(dir), offsets[2] as number, /link/);
    // The swapped records read as valid records: only the chain tells.
    const log = await FileLog.open<string>(dir, { readonly: true });
    assert.equal(await log.get(offsets[2] as number), 'v06');
    await log.close();
  });

  it('finds a record removed (the rest moved up, offsets and CRCs fixed), at the record after it', async () => {
    const { dir, offsets } = await chainedLog();
    const path = segmentPath(dir);
    const file = readFileSync(path);
    const positions = framePositions(file);
    const removed = positions[3] as number;
    const size = file.readUInt32LE(removed);
    const shorter = Buffer.concat([file.subarray(0, removed), file.subarray(removed + size)]);
    for (const position of framePositions(shorter).slice(3)) {
      setOffset(shorter, position, position - headerBytes);
      fixCrc(shorter, position);
    }
    writeFileSync(path, shorter);
    assertBrokenAt(await verify(dir), offsets[3] as number, /link/);
  });

  it('a tail cut and rewritten, or every hash recomputed, is found only against a published head', async () => {
    const { dir, offsets, head } = await chainedLog();
    const path = segmentPath(dir);
    truncateSync(path, headerBytes + (offsets[7] as number));
    const log = await FileLog.open<string>(dir);
    const middle = (await log.getRecord(offsets[6] as number)).offset;
    await log.append(['w07', 'w08', 'w09']);
    await log.close();
    const rewritten = await verify(dir);
    assert.equal(rewritten.healthy, true, 'a consistent chain: nothing inside the log contradicts it');
    const against = await verify(dir, head);
    assert.equal(against.healthy, false);
    assert.match(against.problems.find((problem) => problem.kind === 'chain')?.message ?? '', /published head/);
    assert.equal(middle, offsets[6]);

    // Every digest, link and CRC recomputed after a change to record 2.
    const other = await chainedLog();
    changeAndRecomputeChain(other.dir, 2);
    assert.equal((await verify(other.dir)).healthy, true);
    const pinned = await verify(other.dir, other.head);
    assert.equal(pinned.healthy, false);
    assert.equal(pinned.chain?.publishedHeadOffset, null);
  });

  it('reports a log that is not chained, and refuses options that contradict the headers', async () => {
    const dir = newDir();
    const plain = await FileLog.open<string>(dir);
    await plain.append('x');
    assert.throws(() => plain.chainHead(), (error) => isSluiceError(error, 'SECURITY_MISMATCH'));
    await plain.close();
    const report = await verify(dir);
    assert.equal(report.healthy, false);
    assert.match(report.problems[0]?.message ?? '', /not chained/);
    await rejectsWith(FileLog.open(dir, { chain: 'sha256' }), 'SECURITY_MISMATCH');
    const { dir: chained } = await chainedLog();
    await rejectsWith(FileLog.open(chained, { chain: 'blake2s256' }), 'SECURITY_MISMATCH');
    await assert.rejects(FileLog.open(chained, { chain: 'md5' as 'sha256' }), TypeError);
    await assert.rejects(check(chained, { verifyChain: true, head: 'abc' }), TypeError);
  });
});

describe('one link per batch (F-73)', () => {
  /** Four batches of five records, `b0.0` … `b3.4`. */
  async function batchedLog(options: FileLogOptions<string> = {}): Promise<{ dir: string; batches: number[][]; head: string }> {
    const dir = newDir();
    const log = await FileLog.open<string>(dir, { chain: 'sha256', ...options });
    const batches: number[][] = [];
    for (let b = 0; b < 4; b++) batches.push(await log.append(Array.from({ length: 5 }, (_, i) => `b${b}.${i}`)));
    const head = log.chainHead().hash;
    assert.equal(log.chainHead().offset, batches[3]?.[4]);
    await log.close();
    return { dir, batches, head };
  }

  it('stores the link in the last record of each batch only, and verifies every record', async () => {
    const { dir, batches, head } = await batchedLog();
    const file = readFileSync(segmentPath(dir));
    const positions = framePositions(file);
    positions.forEach((position, i) => {
      const link = linkAt(file, position);
      assert.equal(link.equals(Buffer.alloc(32)), i % 5 !== 4, `record ${i}`);
    });
    const report = await verify(dir, head);
    assert.equal(report.healthy, true, JSON.stringify(report.problems));
    assert.equal(report.chain?.records, 20);
    assert.equal(report.chain?.publishedHeadOffset, batches[3]?.[4]);
    // Single appends after batches chain on from the last batch's link.
    const log = await FileLog.open<string>(dir);
    await log.append('single');
    await log.append(['c.0', 'c.1']);
    const later = log.chainHead().hash;
    await log.close();
    const again = await verify(dir, later);
    assert.equal(again.healthy, true, JSON.stringify(again.problems));
    assert.equal(again.chain?.records, 23);
  });

  it('finds a record changed inside a batch, digest recomputed, at the first record of its batch', async () => {
    const { dir, batches } = await batchedLog();
    changeContent(dir, 7, (file, position) => rehash(file, position));
    assertBrokenAt(await verify(dir), batches[1]?.[0] as number, /link/);
  });

  it('finds a link slot filled inside a batch, and a batch boundary moved', async () => {
    const { dir, batches } = await batchedLog();
    const path = segmentPath(dir);
    const original = readFileSync(path);
    const file = Buffer.from(original);
    const positions = framePositions(file);
    const inside = positions[6] as number;
    const size = file.readUInt32LE(inside);
    file.fill(0x55, inside + size - 36, inside + size - 4);
    fixCrc(file, inside);
    writeFileSync(path, file);
    assertBrokenAt(await verify(dir), batches[1]?.[1] as number, /inside a batch/);
    // The batch flag of the last record of batch 1 set: batches 1 and 2 read as one, whose link cannot follow.
    const moved = Buffer.from(original);
    const last = positions[9] as number;
    moved[last + 26] = (moved[last + 26] as number) | 0x01;
    const lastSize = moved.readUInt32LE(last);
    moved.fill(0, last + lastSize - 36, last + lastSize - 4);
    fixCrc(moved, last);
    writeFileSync(path, moved);
    assertBrokenAt(await verify(dir), batches[1]?.[0] as number, /link/);
  });

  it('verifies a compacted record of fewer than 4 key and value bytes, without key, of time 0', async () => {
    // Dropped alone, it is written in its deleted form (F-76): its bytes 28-31 hold the first bytes of its digest,
    // which are not the table count of a filler.
    const dir = newDir();
    const log = await FileLog.open<string>(dir, { chain: 'sha256', segmentBytesMax: 4096 });
    const tiny = await log.append('1', { time: 0 });
    await log.append('k', { key: 'k' });
    await log.delete(tiny);
    for (let i = 0; i < 40; i++) await log.append('s'.repeat(100));
    assert.equal((await log.compact()).recordsDropped, 1);
    const head = log.chainHead();
    await log.close();
    const report = await verify(dir, head.hash);
    assert.equal(report.chain?.broken, null, JSON.stringify(report.chain?.broken));
    assert.equal(report.healthy, true, JSON.stringify(report.problems));
  });

  it('keeps every batch link through deletes inside batches, compaction of partial batches, and a trim', async () => {
    const dir = newDir();
    const options = { chain: 'sha256', segmentBytesMax: 4096 } as const;
    const log = await FileLog.open<string>(dir, options);
    const offsets: number[] = [];
    for (let b = 0; b < 40; b++) {
      const values = Array.from({ length: 4 }, (_, i) => `${b}.${i}.${'p'.repeat(40)}`);
      // Every third record of a batch has a key of its own, so compaction keeps it and covers records on both
      // sides of it: fillers that end inside a batch.
      offsets.push(...(await log.append(values, { key: values.map((_, i) => (i === 2 ? `u${b}` : `k${(b * 4 + i) % 6}`)) })));
    }
    await log.delete([offsets[1] as number, offsets[2] as number, offsets[157] as number]);
    const head = log.chainHead();
    assert.ok((await log.compact()).recordsDropped > 0);
    assert.deepEqual(log.chainHead(), head);
    const file = readFileSync(segmentPath(dir));
    const fillersInsideBatches = framePositions(file).filter((position) => (file[position + 26] as number) === (0x01 | 0x02 | 0x04 | 0x10));
    assert.ok(fillersInsideBatches.length > 0, 'some filler ends inside a batch');
    await log.close();
    const report = await verify(dir, head.hash);
    assert.equal(report.healthy, true, JSON.stringify(report.problems));
    assert.equal(report.chain?.records, 160);
    assert.equal(report.chain?.publishedHeadOffset, head.offset);

    const again = await FileLog.open<string>(dir, options);
    const middle = again.segments.bases[2] as number;
    await again.trim({ beforeOffset: middle });
    await again.close();
    const trimmed = await verify(dir, head.hash);
    assert.equal(trimmed.healthy, true, JSON.stringify(trimmed.problems));
    assert.equal(trimmed.chain?.publishedHeadOffset, head.offset);
  });
});

describe('keyed chains (hmac-sha256)', () => {
  const chainKey = Buffer.alloc(32, 0x77);

  it('cannot be recomputed without the key: a change is found at that record even with every hash redone', async () => {
    const { dir, offsets, head } = await chainedLog({ chain: 'hmac-sha256', chainKey });
    const keyed = await check(dir, { verifyChain: true, chainKey, head });
    assert.equal(keyed.healthy, true, JSON.stringify(keyed.problems));
    assert.equal(keyed.chain?.algorithm, 'hmac-sha256');
    assert.equal(keyed.chain?.publishedHeadOffset, offsets[9]);
    // Without the key, the best an attacker can do is recompute digests and unkeyed links.
    changeAndRecomputeChain(dir, 3);
    assertBrokenAt(await check(dir, { verifyChain: true, chainKey }), offsets[3] as number, /link/);
  });

  it('needs its key to write and to verify, not to read; refuses another key', async () => {
    const { dir, offsets } = await chainedLog({ chain: 'hmac-sha256', chainKey });
    await rejectsWith(FileLog.open(dir), 'KEY_REQUIRED');
    await rejectsWith(FileLog.open(dir, { chainKey: Buffer.alloc(32, 1) }), 'WRONG_KEY');
    const reader = await FileLog.open<string>(dir, { readonly: true });
    assert.equal(await reader.get(offsets[2] as number), 'v02');
    assert.equal(reader.chainAlgorithm, 'hmac-sha256');
    await reader.close();
    const withoutKey = await check(dir, { verifyChain: true });
    assert.equal(withoutKey.healthy, false);
    assert.match(withoutKey.chain?.broken?.message ?? '', /takes its chain key/);
    const wrongKey = await check(dir, { verifyChain: true, chainKey: Buffer.alloc(32, 1) });
    assert.match(wrongKey.chain?.broken?.message ?? '', /not the log's/);
    const writer = await FileLog.open<string>(dir, { chainKey });
    await writer.append('v10');
    await writer.close();
    assert.equal((await check(dir, { verifyChain: true, chainKey })).healthy, true);
    const { dir: unkeyed } = await chainedLog();
    await rejectsWith(FileLog.open(unkeyed, { chainKey }), 'SECURITY_MISMATCH');
    await assert.rejects(FileLog.open(newDir(), { chain: 'hmac-sha256' }), TypeError);
    await assert.rejects(FileLog.open(newDir(), { chain: 'sha256', chainKey }), TypeError);
  });
});

describe('encrypted logs', () => {
  it('stores no plaintext (keys included), and reads back through the key', async () => {
    const dir = newDir();
    const log = await FileLog.open<{ secret: string }>(dir, { encryption: { key: keyA } });
    const offset = await log.append({ secret: 'PLAINTEXT-MARKER' }, { key: 'KEY-MARKER' });
    await log.close();
    const bytes = readFileSync(segmentPath(dir)).toString('latin1');
    assert.equal(bytes.includes('PLAINTEXT-MARKER'), false);
    assert.equal(bytes.includes('KEY-MARKER'), false);
    assert.equal(bytes.includes(keyA.key.toString('latin1')), false, 'the key is never stored');
    const again = await FileLog.open<{ secret: string }>(dir, { encryption: { key: keyA } });
    const record = await again.getRecord(offset);
    assert.deepEqual(record.value, { secret: 'PLAINTEXT-MARKER' });
    assert.equal(Buffer.from(record.key as Uint8Array).toString(), 'KEY-MARKER');
    assert.equal(again.encrypted, true);
    await again.close();
    const report = await check(dir);
    assert.equal(report.healthy, true, 'framing and CRCs are checked without the key');
    assert.equal(report.records, 1);
  });

  it('fails at open without a key, with a wrong key, or with a key for a plain log', async () => {
    const dir = newDir();
    const log = await FileLog.open<string>(dir, { encryption: { key: keyA } });
    await log.append('x');
    await log.close();
    await rejectsWith(FileLog.open(dir), 'KEY_REQUIRED');
    await rejectsWith(FileLog.open(dir, { readonly: true }), 'KEY_REQUIRED');
    await rejectsWith(FileLog.open(dir, { encryption: { key: { id: 1, key: Buffer.alloc(32, 0x99) } } }), 'WRONG_KEY');
    await rejectsWith(FileLog.open(dir, { encryption: { key: keyB } }), 'KEY_REQUIRED');
    const plain = newDir();
    await (await FileLog.open(plain)).close();
    await rejectsWith(FileLog.open(plain, { encryption: { key: keyA } }), 'SECURITY_MISMATCH');
    await assert.rejects(FileLog.open(newDir(), { encryption: { key: { id: 1, key: Buffer.alloc(16) } } }), RangeError);
    await assert.rejects(FileLog.open(newDir(), { encryption: { key: keyA, oldKeys: [keyA] } }), RangeError);
  });

  it('reads back every record of a scan (keystream read ahead) around deleted, large and altered records', async () => {
    const dir = newDir();
    const log = await FileLog.open<string>(dir, { encryption: { key: keyA }, chain: 'sha256' });
    const values = Array.from({ length: 700 }, (_, i) => (i % 97 === 5 ? 'L'.repeat(5000 + i) : `value ${i} ${'x'.repeat(i % 40)}`));
    const offsets: number[] = [];
    for (let i = 0; i < values.length; i += 70) offsets.push(...(await log.append(values.slice(i, i + 70))));
    const deleted = new Set([3, 4, 200, 201, 202, 699]);
    await log.delete([...deleted].map((i) => offsets[i] as number));
    const expected = values.filter((_, i) => !deleted.has(i));
    assert.deepEqual((await collect(log.stream())).map((record) => record.value), expected);
    assert.deepEqual((await collect(log.stream({ reverse: true }))).map((record) => record.value), [...expected].reverse());
    // Gets between the records of a scan.
    const interleaved: string[] = [];
    for await (const record of log.stream({ gte: offsets[100] as number, lt: offsets[140] as number })) {
      interleaved.push(record.value, await log.get(offsets[(record.offset % 600) + 1] ?? (offsets[0] as number)));
    }
    assert.deepEqual(interleaved.filter((_, i) => i % 2 === 0), values.slice(100, 140));
    await log.close();
    // One ciphertext byte changed (CRC fixed) in the middle of what a read-ahead covers: refused at that record.
    const path = segmentPath(dir);
    const file = readFileSync(path);
    const position = framePositions(file)[300] as number;
    file[position + 70] = (file[position + 70] as number) ^ 4;
    fixCrc(file, position);
    writeFileSync(path, file);
    const again = await FileLog.open<string>(dir, { encryption: { key: keyA } });
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const record of again.stream()) seen.push(record.value);
      })(),
      (error) => isSluiceError(error, 'CORRUPT_RECORD') && error.position === position,
    );
    assert.deepEqual(seen, values.slice(0, 300).filter((_, i) => !deleted.has(i)));
    await again.close();
  });

  it('reports an altered record, or one moved to another offset, as CORRUPT_RECORD with file and position', async () => {
    const dir = newDir();
    const log = await FileLog.open<string>(dir, { encryption: { key: keyA } });
    const offsets = await log.append(['aaaa', 'bbbb', 'cccc']);
    await log.close();
    const path = segmentPath(dir);
    const file = readFileSync(path);
    const [p0, p1, p2] = framePositions(file) as [number, number, number];
    const size = file.readUInt32LE(p0);
    // Move record 0 to record 1's place (and its offset field, and the CRC): GCM's associated data is the offset.
    file.copy(file, p1, p0, p0 + size);
    file[p1 + 26] = file[p0 + 26] as number;
    setOffset(file, p1, offsets[1] as number);
    fixCrc(file, p1);
    // Flip one ciphertext bit of record 2.
    file[p2 + 60] = (file[p2 + 60] as number) ^ 1;
    fixCrc(file, p2);
    writeFileSync(path, file);
    const again = await FileLog.open<string>(dir, { encryption: { key: keyA } });
    assert.equal(await again.get(offsets[0] as number), 'aaaa');
    for (const [offset, position] of [[offsets[1], p1], [offsets[2], p2]] as Array<[number, number]>) {
      await assert.rejects(again.get(offset), (error) => {
        assert.ok(isSluiceError(error, 'CORRUPT_RECORD'));
        assert.equal(error.file, path);
        assert.equal(error.position, position);
        return true;
      });
    }
    await rejectsWith(collect(again.stream({ gt: offsets[0] as number })), 'CORRUPT_RECORD');
    await again.close();
  });

  it('rotates keys: new appends under the new key in a new segment, old records readable while their key is given', async () => {
    const dir = newDir();
    const first = await FileLog.open<string>(dir, { encryption: { key: keyA }, chain: 'sha256' });
    const old = await first.append(['one', 'two']);
    await first.close();
    const rotated = await FileLog.open<string>(dir, { encryption: { key: keyB, oldKeys: [keyA] } });
    const newer = await rotated.append('three');
    assert.equal(rotated.segments.bases.length, 2, 'one key per segment: the rotation starts a segment');
    assert.deepEqual((await collect(rotated.stream())).map((record) => record.value), ['one', 'two', 'three']);
    await rotated.close();
    assert.equal((await check(dir, { verifyChain: true })).healthy, true, 'the chain runs across the rotation');
    const retired = await FileLog.open<string>(dir, { encryption: { key: keyB } });
    assert.equal(await retired.get(newer), 'three');
    await rejectsWith(retired.get(old[0] as number), 'KEY_REQUIRED');
    await retired.close();
    const wrongOld = await FileLog.open<string>(dir, { encryption: { key: keyB, oldKeys: [{ id: 1, key: keyB.key }] } });
    await rejectsWith(wrongOld.get(old[1] as number), 'WRONG_KEY');
    await wrongOld.close();
    // Rotating on an empty segment re-creates it under the new key rather than leaving an empty one behind.
    const empty = newDir();
    await (await FileLog.open(empty, { encryption: { key: keyA } })).close();
    const onEmpty = await FileLog.open<string>(empty, { encryption: { key: keyB } });
    await onEmpty.append('x');
    assert.deepEqual(onEmpty.segments.bases, [0]);
    await onEmpty.close();
    await rejectsWith(FileLog.open(empty, { encryption: { key: keyA } }), 'KEY_REQUIRED');
  });

  it('views see decrypted values through Sluice.open', async () => {
    const dir = newDir();
    const log = await FileLog.open<number>(dir, { encryption: { key: keyA }, chain: 'blake2s256' });
    const db = await Sluice.open<number>(dir, { log });
    const sum = db.use('sum', reduce(1, (total: number, value: number) => total + value, { initial: 0 }));
    await db.append([10, 20, 30]);
    assert.equal(await sum.get(), 60);
    await db.close();
    const again = await Sluice.open<number>(dir, { log: await FileLog.open<number>(dir, { encryption: { key: keyA } }) });
    const rebuilt = again.use('sum', reduce(1, (total: number, value: number) => total + value, { initial: 0 }));
    await again.append(40);
    assert.equal(await rebuilt.get(), 100);
    await again.close();
  });
});

describe('chained and encrypted logs under deletes, compaction and trim', () => {
  it('keeps the chain verifiable and the head unchanged; a head published before a trim is still found', async () => {
    const dir = newDir();
    const options = { chain: 'sha256', encryption: { key: keyA }, segmentBytesMax: 4096 } as const;
    const log = await FileLog.open<{ n: number }>(dir, options);
    const offsets: number[] = [];
    for (let n = 0; n < 160; n++) offsets.push(await log.append({ n }, { key: `k${n % 8}` }));
    assert.ok(log.segments.bases.length >= 4);
    await log.delete([offsets[1] as number, offsets[159] as number]);
    const head = log.chainHead();
    assert.equal(head.offset, offsets[159], 'a deleted last record still carries the head');
    const compacted = await log.compact();
    assert.ok(compacted.recordsDropped > 0);
    assert.deepEqual(log.chainHead(), head, 'compaction leaves every link in place');
    // The latest record of each key survives compaction (decrypted keys were compared, not ciphertexts).
    const values = (await collect(log.stream())).map((record) => record.value.n);
    for (let k = 0; k < 8; k++) assert.ok(values.includes(k === 7 ? 151 : 152 + k), `the latest of k${k}`);
    await log.close();
    const afterCompaction = await verify(dir, head.hash);
    assert.equal(afterCompaction.healthy, true, JSON.stringify(afterCompaction.problems));
    assert.equal(afterCompaction.chain?.publishedHeadOffset, head.offset);

    const again = await FileLog.open<{ n: number }>(dir, options);
    const middle = again.segments.bases[again.segments.bases.length - 2] as number;
    const trimmed = await again.trim({ beforeOffset: middle });
    assert.ok(trimmed.segmentsDropped > 0);
    await again.append({ n: 160 }, { key: 'k0' });
    await again.close();
    const report = await verify(dir, head.hash);
    assert.equal(report.healthy, true, JSON.stringify(report.problems));
    // The anchor is the link of the first batch kept, stored in its last record (F-78).
    assert.ok((report.chain?.anchor?.offset ?? -1) >= trimmed.firstOffset, 'the chain verifies from the first batch kept');
    assert.equal(report.chain?.publishedHeadOffset, head.offset);
  });
});

describe('compaction of a chained log', () => {
  it('packs runs of dropped records into fillers that free space and keep every link verifiable', async () => {
    const dir = newDir();
    const log = await FileLog.open<{ n: number; pad: string }>(dir, { chain: 'sha256', segmentBytesMax: 64 * 1024 });
    for (let n = 0; n < 200; n++) await log.append({ n, pad: 'x'.repeat(3000) }, { key: `k${n % 2}` });
    const head = log.chainHead();
    const result = await log.compact();
    assert.ok(result.recordsDropped > 150, JSON.stringify(result));
    assert.ok(result.diskBytesFreed > 0, 'the covered records became holes');
    assert.deepEqual(log.chainHead(), head);
    assert.deepEqual((await collect(log.stream())).length, 200 - result.recordsDropped);
    // A second compaction keeps the fillers of the first as they are.
    assert.equal((await log.compact()).recordsDropped, 0);
    await log.close();
    const report = await verify(dir, head.hash);
    assert.equal(report.healthy, true, JSON.stringify(report.problems));
    assert.equal(report.chain?.records, 200, 'every covered record is a verified link');
    // The first batches end inside the filler at offset 0: the walk still started from the genesis link.
    assert.deepEqual(report.chain?.anchor, { offset: 0, hash: '0'.repeat(64) });
    assert.equal(report.chain?.publishedHeadOffset, head.offset);

    // The filler over the first run starts at offset 0: change a covered record's time in its table.
    const path = segmentPath(dir);
    const file = readFileSync(path);
    assert.equal(file[headerBytes + 26], 0x02 | 0x04 | 0x10, 'a chained filler at offset 0');
    file.writeUInt32LE(file.readUInt32LE(headerBytes + 32 + 48 * 3 + 4) + 1, headerBytes + 32 + 48 * 3 + 4);
    fixCrc(file, headerBytes);
    writeFileSync(path, file);
    assertBrokenAt(await verify(dir), 0, /filler/);
  });
});

describe('a chained, encrypted log survives SIGKILL', () => {
  const childScript = `
import { openSync, writeSync } from 'node:fs';
import { FileLog } from ${JSON.stringify(new URL('../../src/log/file/file-log.js', import.meta.url).href)};
const config = JSON.parse(process.env.SLUICE_KILL_CONFIG);
const encryption = { key: { id: 4, key: Buffer.from(config.keyHex, 'hex') } };
const log = await FileLog.open(config.dir, { chain: 'sha256', encryption, durability: config.durability, segmentBytesMax: 4096 });
const acks = openSync(config.ackFile, 'a');
let b = 0;
function start() {
  const n = 1 + (b % 7);
  const values = Array.from({ length: n }, (_, i) => ({ b, i, p: 'q'.repeat((b * 13 + i) % 90) }));
  const batch = b++;
  log.append(values, { key: 'k' + (batch % 5) }).then((offsets) => {
    const line = JSON.stringify({ b: batch, n, offsets }) + '\\n';
    writeSync(acks, line);
    process.stdout.write(line);
    start();
  }, (error) => { writeSync(2, String(error && error.stack)); process.exit(3); });
}
for (let k = 0; k < 4; k++) start();
`;

  for (const durability of ['os', 'disk'] as const) {
    it(`keeps every acknowledged record, decryptable and chained (${durability})`, async () => {
      const dir = newDir();
      const keyHex = '5e'.repeat(32);
      const acked = await runUntilKilled<{ b: number; n: number; offsets: number[] }>(
        childScript,
        { dir, durability, keyHex },
        join(root, `acks-${durability}`),
        300,
        (ack) => ack.n,
        `kill (${durability})`,
      );
      assert.ok(acked.length > 0);
      const log = await FileLog.open<{ b: number; i: number; p: string }>(dir, {
        encryption: { key: { id: 4, key: Buffer.from(keyHex, 'hex') } },
      });
      for (const ack of acked) {
        for (const [i, offset] of ack.offsets.entries()) {
          assert.deepEqual(await log.get(offset), { b: ack.b, i, p: 'q'.repeat((ack.b * 13 + i) % 90) }, `batch ${ack.b} record ${i}`);
        }
      }
      await log.append({ b: -1, i: 0, p: '' });
      await log.close();
      const report = await check(dir, { verifyChain: true });
      assert.equal(report.healthy, true, JSON.stringify(report.problems));
      assert.equal(report.chain?.records, report.records);
    });
  }
});
