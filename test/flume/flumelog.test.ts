import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isSluiceError } from '../../src/errors.js';
import { rawFlumeCodec, toSluiceCodec, type FlumeCodec } from '../../src/flume/codec.js';
import { FlumeDeletedError } from '../../src/flume/errors.js';
import { Flume } from '../../src/flume/flume.js';
import { fromLog, type SluiceFlumeLog } from '../../src/flume/flumelog.js';
import { MemoryLog, NativeLog, OffsetLog } from '../../src/flume/logs.js';
import { MemoryLog as SluiceMemoryLog } from '../../src/log/memory/memory-log.js';
import { temporaryDirectory } from '../helpers.js';
import { call, collect, Level, Reduce, UpstreamOffsetLog } from './support.js';

const root = temporaryDirectory('sluice-flumelog-');
let count = 0;
const directory = (): string => join(root, `case-${count++}`);

function appendTo<T>(log: SluiceFlumeLog<T>, value: T | T[]): Promise<number> {
  return call<number>((cb) => log.append(value, cb));
}

describe('fromLog: a Sluice log as a flumelog', () => {
  it('has since -1 when empty, then the seq of the last record; calls back with own seqs', async () => {
    const log = fromLog(new SluiceMemoryLog<unknown>());
    assert.equal(log.since.value, -1);
    assert.equal(log.filename, undefined);
    const one = await appendTo(log, 'one');
    const batch = await appendTo(log, ['two', 'three']);
    const seqs = await collect<number>(log.stream({ values: false }));
    assert.deepEqual(seqs, [one, seqs[1], batch]);
    assert.equal(log.since.value, batch);
    assert.equal(await appendTo(log, []), batch, 'an empty batch writes nothing and calls back with since');
    assert.deepEqual(await call((cb) => log.get(seqs[1] as number, cb)), 'two');
    await call((cb) => log.close(cb));
  });

  it("fails a get with the log's SluiceError, and throws for a programmer mistake", async () => {
    const log = fromLog(new SluiceMemoryLog<unknown>());
    await appendTo(log, ['x', 'y']);
    await assert.rejects(call((cb) => log.get(1000, cb)), (error) => isSluiceError(error, 'OFFSET_OUT_OF_RANGE'));
    await assert.rejects(call((cb) => log.get(1, cb)), (error) => isSluiceError(error, 'NOT_A_RECORD'));
    assert.throws(() => log.get(-1, () => undefined), RangeError);
    assert.throws(() => log.append(undefined, () => undefined), TypeError);
    assert.throws(() => log.append('x', undefined as never), TypeError);
    assert.throws(() => log.stream({ reverse: true, old: false }), TypeError, 'old: false is live');
    await call((cb) => log.close(cb));
    await assert.rejects(appendTo(log, 'late'), (error) => isSluiceError(error, 'LOG_CLOSED'));
  });

  it('deletes through del: get then fails with flumelog:deleted, the Sluice code kept', async () => {
    const sluiceLog = new SluiceMemoryLog<unknown>();
    const log = fromLog(sluiceLog);
    const seq = await appendTo(log, 'secret');
    await appendTo(log, 'kept');
    await call((cb) => log.del(seq, cb));
    await assert.rejects(sluiceLog.get(seq), (error) => isSluiceError(error, 'RECORD_DELETED'));
    await assert.rejects(call((cb) => log.get(seq, cb)), (error: unknown) => {
      assert.ok(error instanceof FlumeDeletedError);
      assert.equal(error.code, 'flumelog:deleted');
      assert.equal(error.sluiceCode, 'RECORD_DELETED');
      assert.equal(error.offset, seq);
      assert.ok(isSluiceError(error.cause, 'RECORD_DELETED'));
      return true;
    });
    await assert.rejects(call((cb) => log.del([seq + 1], cb)), (error) => isSluiceError(error, 'NOT_A_RECORD'));
    const plain = fromLog(Object.assign(new SluiceMemoryLog<unknown>(), { delete: undefined }));
    assert.throws(() => plain.del(0, () => undefined), /cannot delete/);
  });

  it('answers a view read when the last records were deleted before the view reached them', async () => {
    const dir = directory();
    // Not ready: the view is fed nothing until ready is set, so it cannot see the record before its deletion.
    const db = Flume(fromLog(new SluiceMemoryLog<unknown>(), { filename: join(dir, 'log') }), false);
    db.use('count', Reduce(1, (total, value) => (total as number) + (value as number), null, null, 0));
    const count = (db.views.count as unknown as { get: (cb: (error: Error | null, value: unknown) => void) => void }).get;
    await call<number>((cb) => db.append(1, cb));
    const seq = await call<number>((cb) => db.append(41, cb));
    await call((cb) => db.del?.(seq, cb));
    db.ready.set(true);
    // Streams skip the deleted record, so the view never reaches the log's since: it reaches the record before.
    assert.equal(await call((cb) => count(cb)), 1);
    await call((cb) => db.close(cb));
  });

  it("lets flumeview-level drop an entry whose record was deleted, through the db's del", async () => {
    const dir = directory();
    const db = Flume(fromLog(new SluiceMemoryLog<unknown>(), { filename: join(dir, 'log') }));
    db.use('byName', Level(1, (value) => [(value as { name: string }).name]));
    const seq = await call<number>((cb) => db.append({ name: 'ann' }, cb));
    const get = (db.views.byName as unknown as { get: (key: string, cb: (error: Error | null) => void) => void }).get;
    await call((cb) => get('ann', cb));
    assert.equal(typeof db.del, 'function', "flumedb mounts the log's del");
    await call((cb) => db.del?.(seq, cb));
    const deleted = (error: unknown): boolean => (error as { code?: string }).code === 'flumelog:deleted';
    await assert.rejects(call((cb) => get('ann', cb)), deleted);
    await assert.rejects(call((cb) => get('ann', cb)), /NotFound/, 'flumeview-level removed the stale entry');
    await call((cb) => db.close(cb));
  });

  it('fails every call with the error that kept the log from opening', async () => {
    const dir = directory();
    const first = NativeLog(dir);
    await appendTo(first, Buffer.from('held'));
    const second = NativeLog(dir);
    await assert.rejects(appendTo(second, Buffer.from('x')), (error) => isSluiceError(error, 'LOCKED'));
    await assert.rejects(call((cb) => second.get(0, cb)), (error) => isSluiceError(error, 'LOCKED'));
    await assert.rejects(collect(second.stream()), (error) => isSluiceError(error, 'LOCKED'));
    assert.equal(second.since.value, undefined);
    const db = Flume(second);
    await assert.rejects(call((cb) => db.get(0, cb)), (error) => isSluiceError(error, 'LOCKED'));
    await call((cb) => db.close(cb));
    await call((cb) => first.close(cb));
  });
});

describe('flume codecs on Sluice logs', () => {
  it('stores Buffers as they are by default (strings as their bytes), as flumelog-offset does', async () => {
    const log = MemoryLog();
    const bytes = Buffer.from([0, 1, 2, 255]);
    const seq = await appendTo(log, bytes);
    const text = await appendTo(log, 'hi' as unknown as Buffer);
    const back = await call<Buffer>((cb) => log.get(seq, cb));
    assert.ok(Buffer.isBuffer(back));
    assert.deepEqual(back, bytes);
    assert.deepEqual(await call<Buffer>((cb) => log.get(text, cb)), Buffer.from('hi'));
    assert.throws(() => log.append(42 as unknown as Buffer, () => undefined), TypeError);
    assert.equal(rawFlumeCodec.decode('x').toString(), 'x');
  });

  it('hands decode a string, or with buffer: true a Buffer of its own', () => {
    const seen: unknown[] = [];
    const text: FlumeCodec<string> = { encode: (v) => v, decode: (data) => (seen.push(data), String(data)) };
    const bytes: FlumeCodec<string> = { ...text, buffer: true };
    const stored = Buffer.from('abc');
    assert.equal(toSluiceCodec(text).decode(stored), 'abc');
    assert.equal(toSluiceCodec(text).decodeRange?.(Buffer.from('xabcx'), 1, 4), 'abc');
    toSluiceCodec(bytes).decode(stored);
    stored.fill(0);
    assert.deepEqual(seen, ['abc', 'abc', Buffer.from('abc')], 'the Buffer is a copy, unchanged by later reads');
    assert.throws(() => toSluiceCodec({ encode: () => 1 as never, decode: String }).encode('x'), TypeError);
    assert.throws(() => toSluiceCodec({} as never), TypeError);
    assert.throws(() => MemoryLog({ codec: { encode: String } as never }), TypeError);
  });
});

describe('OffsetLog', () => {
  it("hands out stream items with flumelog-offset's key order: value, then seq", async () => {
    const json: FlumeCodec<unknown> = { encode: (value) => JSON.stringify(value), decode: (data) => JSON.parse(String(data)) as unknown };
    const dir = directory();
    const ours = OffsetLog(join(dir, 'ours.offset'), { codec: json });
    const theirs = UpstreamOffsetLog(join(dir, 'theirs.offset'), { codec: json });
    await appendTo(ours, { a: 1 });
    await call((cb) => theirs.append({ a: 1 }, cb));
    for (const options of [{}, { live: false, seqs: true, values: true }]) {
      const mine = await collect(ours.stream(options));
      const upstream = await collect(theirs.stream(options));
      // JSON shows the order, as anything that serializes the items (an RPC stream) does.
      assert.equal(JSON.stringify(mine), JSON.stringify(upstream));
      assert.equal(JSON.stringify(mine), '[{"value":{"a":1},"seq":0}]');
    }
    await call((cb) => ours.close(cb));
  });

  it("takes flumelog-offset's older (file, blockSize, codec?) form as well as its options", async () => {
    const json: FlumeCodec<unknown> = { encode: (value) => JSON.stringify(value), decode: (data) => JSON.parse(String(data)) as unknown };
    const file = join(directory(), 'log.offset');
    const log = OffsetLog(file, 16384, json);
    const seq = await appendTo(log, { a: 1 });
    assert.deepEqual(await call((cb) => log.get(seq, cb)), { a: 1 });
    await call((cb) => log.close(cb));
    const raw = OffsetLog(file, 16384);
    assert.deepEqual(await call<Buffer>((cb) => raw.get(seq, cb)), Buffer.from('{"a":1}'), 'no codec: bytes, as upstream');
    await call((cb) => raw.close(cb));
    const again = OffsetLog(file, { blockSize: 1024, codec: json });
    assert.deepEqual(await call((cb) => again.get(seq, cb)), { a: 1 });
    await call((cb) => again.close(cb));
    assert.throws(() => OffsetLog(file, 0), RangeError);
    assert.throws(() => OffsetLog(file, {} as never, json), TypeError);
    assert.throws(() => OffsetLog(file, 'x' as never), TypeError);
  });
});

interface ChildResult {
  readonly code: number;
  readonly stdout: string;
}

function runTestFlumelog(mode: string): Promise<ChildResult> {
  const script = fileURLToPath(new URL('../../../test/flume/run-test-flumelog.mjs', import.meta.url));
  return new Promise((resolve) => {
    execFile(process.execPath, [script, mode, directory()], { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout: `${stdout}${stderr}` });
    });
  });
}

describe('test-flumelog 1.0.1, the suite every flumelog passes', () => {
  const names: Record<string, string> = {
    memory: 'MemoryLog',
    native: 'NativeLog',
    offset: 'OffsetLog',
    'offset-48': 'OffsetLog with 48-bit offsets',
    legacy: 'LegacyOffsetLog',
  };
  for (const [mode, name] of Object.entries(names)) {
    it(`passes on ${name}`, async () => {
      const { code, stdout } = await runTestFlumelog(mode);
      const failures = stdout.split('\n').filter((line) => line.startsWith('not ok'));
      assert.deepEqual(failures, [], stdout);
      const passed = /^# pass\s+(\d+)$/m.exec(stdout);
      assert.ok(passed !== null && Number(passed[1]) >= 30, `the whole suite ran:\n${stdout}`);
      assert.match(stdout, /^# ok$/m);
      assert.match(stdout, new RegExp(`# ${mode}: test-flumelog finished`));
      assert.equal(code, 0, stdout);
    });
  }
});
