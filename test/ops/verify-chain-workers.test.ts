/**
 * `verifyChain` with worker threads checking digests (`workers` ≥ 1) must give exactly what the walk on one thread
 * gives (`workers: 0`), whatever was changed and wherever: in the share of digests the verifier keeps, in a
 * worker's share, a broken link before or after a changed record, compaction fillers, a trimmed log's anchor,
 * keyed and encrypted chains, framing damage. Also the pool and its digest worker on their own.
 */
import assert from 'node:assert/strict';
import { closeSync, cpSync, existsSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { crc32c } from '../../src/checksum/crc32c.js';
import { FileLog, type FileLogOptions } from '../../src/log/file/file-log.js';
import { headerBytes } from '../../src/log/file/format.js';
import { check } from '../../src/ops/check.js';
import { digestStats, type DigestJob } from '../../src/ops/segment-digests.js';
import { verifyChain, type ChainVerification } from '../../src/ops/verify-chain.js';
import { WorkerPool } from '../../src/ops/worker-pool.js';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory('sluice-verify-chain-workers-');
let count = 0;
const newDir = (): string => join(root, `log-${count++}`);

/** 2 MiB segments: each holds four digest jobs of 512 KiB, the first and last of which the verifier keeps with one worker. */
const segmentBytesMax = 2 * 1024 * 1024;
const records = 20_000;
const batch = 40;

interface Built {
  readonly dir: string;
  readonly offsets: number[];
  /** The chain head after the first half of the records. */
  readonly middleHead: string;
}

async function build(options: FileLogOptions<unknown> = { chain: 'sha256' }, segmentBytes = segmentBytesMax): Promise<Built> {
  const dir = newDir();
  const log = await FileLog.open(dir, { ...options, segmentBytesMax: segmentBytes });
  const offsets: number[] = [];
  let middleHead = '';
  for (let i = 0; i < records; i += batch) {
    const values = Array.from({ length: batch }, (_, j) => ({ i: i + j, text: `record ${i + j} `.padEnd(150 + ((i + j) % 40), '.') }));
    // Every batch has a key of ten, so that compaction has superseded records to drop.
    offsets.push(...(await log.append(values, { key: `k${(i / batch) % 10}` })));
    if (i + batch === records / 2) middleHead = log.chainHead().hash;
  }
  await log.close();
  return { dir, offsets, middleHead };
}

function copyOf(built: Built): string {
  const dir = newDir();
  cpSync(built.dir, dir, { recursive: true });
  return dir;
}

function bases(dir: string): number[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .sort()
    .map((name) => Number(name.slice(0, 20)));
}

/** Rewrites bytes of the record at `offset` (with `change`, given the frame's position and size) and its checksum. */
function rewrite(dir: string, offset: number, change: (file: Buffer, position: number, size: number) => void): void {
  const base = bases(dir).filter((b) => b <= offset).pop() as number;
  const path = join(dir, `${String(base).padStart(20, '0')}.seg`);
  const file = readFileSync(path);
  const position = headerBytes + offset - base;
  const size = file.readUInt32LE(position);
  change(file, position, size);
  file.writeUInt32LE(crc32c(file, position + 8, position + size), position + 4);
  writeFileSync(path, file);
}

const changeContent = (file: Buffer, position: number): void => {
  file[position + 40] = (file[position + 40] as number) ^ 0x20;
};
const changeLink = (file: Buffer, position: number, size: number): void => {
  file[position + size - 20] = (file[position + size - 20] as number) ^ 1;
};

/** The record at about `bytes` into the segment holding offset `near`'s segment number `segment`. */
function recordAt(built: Built, segment: number, bytes: number): number {
  const base = bases(built.dir)[segment] as number;
  return built.offsets.find((offset) => offset >= base + bytes) as number;
}

/** The last record of the batch that `offset` belongs to. */
const batchEnd = (built: Built, offset: number): number => built.offsets[Math.floor(built.offsets.indexOf(offset) / batch) * batch + batch - 1] as number;

async function sameEitherWay(dir: string, options: { head?: string; chainKey?: Uint8Array } = {}): Promise<ChainVerification> {
  const single = await verifyChain(dir, bases(dir), { ...options, workers: 0 });
  for (const workers of [1, 2]) {
    assert.deepEqual(await verifyChain(dir, bases(dir), { ...options, workers }), single, `${workers} workers`);
  }
  return single;
}

describe('verifyChain with worker threads', () => {
  let built: Built;

  it('verifies an intact log as the single walk does, the workers answering every job they get', async () => {
    built = await build();
    assert.ok(bases(built.dir).length >= 3, 'several segments');
    const before = { ...digestStats };
    const result = await sameEitherWay(built.dir, { head: built.middleHead });
    assert.equal(result.broken, null);
    assert.equal(result.records, records);
    assert.equal(result.publishedHeadOffset, built.offsets[records / 2 - 1]);
    // The answers are the same either way: what tells that the workers did their share.
    assert.ok(digestStats.jobsMatched - before.jobsMatched >= 2 * bases(built.dir).length, 'jobs answered by the workers');
    assert.equal(digestStats.jobsNotMatched, before.jobsNotMatched);
    assert.equal(digestStats.segmentsWalkedAgain, before.segmentsWalkedAgain);
  });

  for (const [name, bytes] of [
    ['the verifier', 100 * 1024],
    ['a worker', 800 * 1024],
  ] as const) {
    it(`finds a changed record in the share of ${name}`, async () => {
      const dir = copyOf(built);
      const changed = recordAt(built, 1, bytes);
      rewrite(dir, changed, changeContent);
      const result = await sameEitherWay(dir);
      assert.equal(result.broken?.offset, changed);
      assert.match(result.broken?.message ?? '', /digest/);
    });
  }

  it('reports a broken link before a changed record, and a changed record before a broken link', async () => {
    const linkFirst = copyOf(built);
    const early = recordAt(built, 1, 300 * 1024);
    rewrite(linkFirst, batchEnd(built, early), changeLink);
    rewrite(linkFirst, recordAt(built, 1, 1200 * 1024), changeContent);
    const first = await sameEitherWay(linkFirst);
    assert.match(first.broken?.message ?? '', /link/);

    const contentFirst = copyOf(built);
    const changed = recordAt(built, 1, 800 * 1024);
    rewrite(contentFirst, changed, changeContent);
    rewrite(contentFirst, batchEnd(built, recordAt(built, 1, 1500 * 1024)), changeLink);
    const second = await sameEitherWay(contentFirst);
    assert.equal(second.broken?.offset, changed);
  });

  it('stops at framing damage as the single walk does', async () => {
    const dir = copyOf(built);
    rewrite(dir, recordAt(built, 1, 900 * 1024), (file, position) => file.writeUInt32LE(7, position));
    const result = await sameEitherWay(dir);
    assert.notEqual(result.stoppedBy, null);
  });

  it('verifies deleted records and compaction fillers, and a change after them', async () => {
    const dir = copyOf(built);
    const log = await FileLog.open(dir, { chain: 'sha256', segmentBytesMax });
    await log.delete(built.offsets.filter((_, i) => i % 7 === 3).slice(0, 2000));
    await log.compact();
    await log.close();
    const intact = await sameEitherWay(dir);
    assert.equal(intact.broken, null);
    rewrite(dir, built.offsets[records - 10] as number, changeContent);
    assert.notEqual((await sameEitherWay(dir)).broken, null);
  });

  it('verifies deleted records (not compacted), and a change among them in a worker\'s share', async () => {
    const dir = copyOf(built);
    {
      const log = await FileLog.open(dir, { chain: 'sha256', segmentBytesMax });
      await log.delete(built.offsets.filter((_, i) => i % 13 === 5));
      await log.close();
    }
    assert.equal((await sameEitherWay(dir)).broken, null);
    const changed = built.offsets.find((offset, i) => offset >= recordAt(built, 1, 800 * 1024) && i % 13 !== 5) as number;
    rewrite(dir, changed, changeContent);
    assert.equal((await sameEitherWay(dir)).broken?.offset, changed);
  });

  it('reports a filler whose table holds an impossible time as a broken link, without throwing', async () => {
    const dir = copyOf(built);
    {
      const log = await FileLog.open(dir, { chain: 'sha256', segmentBytesMax });
      await log.compact();
      await log.close();
    }
    const path = join(dir, `${String(bases(dir)[0]).padStart(20, '0')}.seg`);
    const file = readFileSync(path);
    let filler = -1;
    for (let position = headerBytes; position < file.length && filler < 0; position += file.readUInt32LE(position)) {
      // F-76: flags deleted + filler + chained, key length 0, time 0, a table of n ≥ 1 records.
      if (((file[position + 26] as number) & 0x16) === 0x16 && file.readUInt16LE(position + 24) === 0 && file.readUInt32LE(position + 28) > 0) filler = position;
    }
    assert.ok(filler > 0, 'compaction wrote a filler');
    file.fill(0xff, filler + 36, filler + 44);
    file.writeUInt32LE(crc32c(file, filler + 8, filler + file.readUInt32LE(filler)), filler + 4);
    writeFileSync(path, file);
    const result = await sameEitherWay(dir);
    assert.match(result.broken?.message ?? '', /time/);
  });

  it('gives a change before an abort, as the single walk does, when the abort comes first to the walk', async () => {
    // One segment of 6 MiB: the walk pauses (and looks at the signal) every 4 MiB.
    const long = await build({ chain: 'sha256' }, 32 * 1024 * 1024);
    const changed = recordAt(long, 0, 800 * 1024);
    rewrite(long.dir, changed, changeContent);
    for (const workers of [0, 1]) {
      const controller = new AbortController();
      const verifying = verifyChain(long.dir, bases(long.dir), { workers, signal: controller.signal });
      controller.abort();
      assert.equal((await verifying).broken?.offset, changed, `${workers} workers`);
    }
    rewrite(long.dir, changed, changeContent);
    const controller = new AbortController();
    const verifying = verifyChain(long.dir, bases(long.dir), { workers: 1, signal: controller.signal });
    controller.abort();
    await assert.rejects(verifying, { code: 'ABORTED' });
  });

  it('starts a trimmed log from its anchor', async () => {
    const dir = copyOf(built);
    const log = await FileLog.open(dir, { chain: 'sha256', segmentBytesMax });
    await log.trim({ beforeOffset: bases(dir)[2] });
    await log.close();
    const result = await sameEitherWay(dir);
    assert.equal(result.broken, null);
    assert.notEqual(result.anchor, null);
  });

  it('verifies keyed and encrypted chains', async () => {
    const chainKey = Buffer.alloc(32, 0x24);
    const keyed = await build({ chain: 'hmac-sha256', chainKey, encryption: { key: { id: 1, key: Buffer.alloc(32, 0x42) } } });
    assert.equal((await sameEitherWay(keyed.dir, { chainKey, head: keyed.middleHead })).broken, null);
    const changed = recordAt(keyed, 1, 800 * 1024);
    rewrite(keyed.dir, changed, changeContent);
    assert.equal((await sameEitherWay(keyed.dir, { chainKey })).broken?.offset, changed);
  });

  it('is what check --verify-chain runs, with its workers option checked', async () => {
    const report = await check(built.dir, { verifyChain: true, workers: 1 });
    assert.equal(report.healthy, true);
    assert.equal(report.chain?.records, records);
    await assert.rejects(check(built.dir, { verifyChain: true, workers: -1 }), RangeError);
    await assert.rejects(check(built.dir, { verifyChain: true, workers: 1.5 }), RangeError);
    await assert.rejects(check(built.dir, { verifyChain: true, workers: '2' as unknown as number }), TypeError);
    await assert.rejects(verifyChain(built.dir, bases(built.dir), { workers: 65 }), RangeError);
  });

  it('stops with ABORTED between segments, its files closed', async () => {
    // Linux lists a process's descriptors; elsewhere only the abort is checked.
    const descriptors = (): number => (existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : 0);
    const open = descriptors();
    const controller = new AbortController();
    const verifying = verifyChain(built.dir, bases(built.dir), { workers: 2, signal: controller.signal });
    setImmediate(() => controller.abort());
    await assert.rejects(verifying, { code: 'ABORTED' });
    assert.equal(descriptors(), open);
  });
});

describe('the digest worker', () => {
  const module = new URL('../../src/ops/digest-worker.js', import.meta.url);

  /** The digest job of every frame of the first segment of a chained log. */
  function jobOf(dir: string, fd: number): DigestJob {
    const file = readFileSync(join(dir, `${String(bases(dir)[0]).padStart(20, '0')}.seg`));
    const frames: number[] = [];
    for (let position = headerBytes; position < file.length; position += file.readUInt32LE(position)) {
      frames.push(position - headerBytes + 28, position - headerBytes + file.readUInt32LE(position) - 68);
    }
    return { fd, position: headerBytes, length: file.length - headerBytes, frames: Int32Array.from(frames), hashName: 'sha256' };
  }

  it('answers whether every digest of a job matches, and no when it cannot read', async () => {
    const dir = newDir();
    const log = await FileLog.open(dir, { chain: 'sha256' });
    for (let i = 0; i < 50; i++) await log.append([{ i, text: 'x'.repeat(i * 10) }, { i }]);
    await log.close();
    const path = join(dir, `${String(bases(dir)[0]).padStart(20, '0')}.seg`);
    const pool = WorkerPool.start<DigestJob, boolean>(module, 2);
    const fd = openSync(path, 'r');
    try {
      const job = jobOf(dir, fd);
      assert.deepEqual(await Promise.all([pool.run(job), pool.run(job), pool.run(job)]), [true, true, true]);
      const file = readFileSync(path);
      changeContent(file, headerBytes);
      writeFileSync(path, file);
      assert.equal(await pool.run(job), false);
      assert.equal(await pool.run({ ...job, position: file.length }), false, 'a short read');
    } finally {
      closeSync(fd);
      await pool.close();
      await pool.close();
    }
    assert.equal(await pool.run(jobOf(dir, 0)), undefined, 'no worker left');
  });
});
