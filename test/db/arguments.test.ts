import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { codecs } from '../../src/codec/codec.js';
import { Sluice } from '../../src/db/sluice.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { FlumeOffsetLog } from '../../src/log/flume-offset/flume-offset-log.js';
import type { Log } from '../../src/log/log.js';
import { MemoryLog } from '../../src/log/memory/memory-log.js';
import { backup, restore } from '../../src/ops/backup.js';
import { check } from '../../src/ops/check.js';
import { recover } from '../../src/ops/recover.js';
import { exportFlumeOffset } from '../../src/ops/export.js';
import { importFlumeOffset } from '../../src/ops/import.js';
import { stat, statFlumeOffset } from '../../src/ops/stat.js';
import { index } from '../../src/views/index-view.js';
import { keyIndex, timeIndex } from '../../src/views/key-time-index.js';
import { query } from '../../src/views/query/query-view.js';
import { reduce } from '../../src/views/reduce.js';
import type { ReadOptions } from '../../src/views/view.js';
import { collect, rejectsWith } from '../conformance/log-suite.js';
import { temporaryDirectory } from '../helpers.js';

/**
 * Programmer mistakes in the arguments of public calls are refused at once, as `TypeError` / `RangeError` naming
 * the argument, rather than accepted and misbehaving later (a value ignored, a raw error from deep inside).
 */

const root = temporaryDirectory();
let count = 0;
const directory = (): string => join(root, `args-${count++}`);

/** Stands for a caller without types: a value of the wrong type where the signature names another. */
function untyped<T>(value: unknown): T {
  return value as T;
}

async function openWithViews() {
  const db = await Sluice.open<{ k: string }>(directory(), { log: new MemoryLog<{ k: string }>() });
  const views = {
    counted: db.use('counted', reduce(1, (n: number) => n + 1, { initial: 0 })),
    byK: db.use('byK', index(1, (value: { k: string }) => value.k)),
    byKey: db.use('byKey', keyIndex<{ k: string }>(1)),
    byTime: db.use('byTime', timeIndex<{ k: string }>(1)),
    queried: db.use('queried', query<{ k: string }>(1)),
  };
  await db.append({ k: 'a' }, { key: 'x', time: 10 });
  await db.append({ k: 'b' }, { key: 'x', time: 20 });
  return { db, ...views, [Symbol.asyncDispose]: () => db.close() };
}

describe('Sluice.open refuses what it cannot use', () => {
  it('refuses a log that is not a log, before anything reads from it', async () => {
    await assert.rejects(Sluice.open(directory(), { log: untyped<Log<unknown>>('log') }), TypeError);
    await assert.rejects(Sluice.open(directory(), { log: untyped<Log<unknown>>({}) }), /no append\(\) method/);
  });

  it('refuses the options of the log it would have opened beside a log given', async () => {
    await assert.rejects(Sluice.open(directory(), { log: new MemoryLog<string>(), codec: codecs.utf8() }), /codec/);
    await assert.rejects(Sluice.open(directory(), { log: new MemoryLog(), durability: 'disk' }), /durability/);
  });

  it('refuses a closed log with LOG_CLOSED', async () => {
    const log = new MemoryLog();
    await log.close();
    await rejectsWith(Sluice.open(directory(), { log }), 'LOG_CLOSED');
  });

  it('refuses views given as an array (their names would be indexes)', async () => {
    const views = untyped<Record<string, never>>([reduce(1, (n: number) => n, { initial: 0 })]);
    await assert.rejects(Sluice.open(directory(), { log: new MemoryLog(), views }), TypeError);
  });
});

describe('view read options', () => {
  it('refuses a signal that is not an AbortSignal, also when the read would not wait', async () => {
    await using fixture = await openWithViews();
    const { counted, byK, byKey, queried } = fixture;
    const signal = untyped<AbortSignal>('stop');
    await assert.rejects(counted.get({ signal }), TypeError);
    await assert.rejects(counted.get({ since: -1, signal }), TypeError);
    await assert.rejects(byK.get('a', { signal }), TypeError);
    assert.throws(() => byK.read({ signal }), TypeError);
    await assert.rejects(byKey.last('x', { signal }), TypeError);
    assert.throws(() => queried.read({ query: [], live: true }, { signal }), TypeError);
    assert.throws(() => counted.changes({ signal }), TypeError);
  });

  it('refuses options that are not an object, and a since that is not a number', async () => {
    await using fixture = await openWithViews();
    const { db, counted, byK } = fixture;
    await assert.rejects(counted.get(untyped<ReadOptions>(null)), TypeError);
    await assert.rejects(counted.get(untyped<ReadOptions>(5)), TypeError);
    await assert.rejects(counted.get({ since: untyped<number>('1') }), TypeError);
    await assert.rejects(db.ready('counted', { since: 0.5 }), RangeError);
    assert.throws(() => byK.read(untyped<object>(null)), TypeError);
  });

  it('rejects with ABORTED when the signal has aborted before the read, whether or not it would wait', async () => {
    await using fixture = await openWithViews();
    const { counted, byK, byTime, queried } = fixture;
    const signal = AbortSignal.abort();
    await rejectsWith(counted.get({ since: -1, signal }), 'ABORTED');
    await rejectsWith(byK.get('a', { signal }), 'ABORTED');
    await rejectsWith(collect(byK.read({ signal }) as AsyncIterable<never>), 'ABORTED');
    await rejectsWith(byTime.firstAtOrAfter(0, { signal }), 'ABORTED');
    await rejectsWith(queried.read({ query: [] }, { signal })[Symbol.asyncIterator]().next(), 'ABORTED');
  });

  it('index ranges: reverse and live are booleans and limit a number, checked at once', async () => {
    await using fixture = await openWithViews();
    const { byK } = fixture;
    assert.throws(() => byK.read({ reverse: untyped<boolean>('yes') }), /reverse must be a boolean/);
    assert.throws(() => byK.read({ live: untyped<boolean>(1) }), /live must be a boolean/);
    assert.throws(() => byK.read({ limit: untyped<number>('1') }), TypeError);
  });

  it('key and time index reads take only since and signal from their options', async () => {
    await using fixture = await openWithViews();
    const { byKey, byTime } = fixture;
    const stray = untyped<ReadOptions>({ reverse: true, limit: 1, lt: [0, 0] });
    const records: number[] = [];
    for await (const record of byKey.records('x', 0, stray)) records.push(record.offset);
    assert.equal(records.length, 2);
    assert.ok((records[0] as number) < (records[1] as number));
    assert.deepEqual((await byTime.firstAtOrAfter(0, stray))?.value, { k: 'a' });
    const times: string[] = [];
    for await (const entry of byTime.between(0, 100, stray)) times.push(entry.value.k);
    assert.deepEqual(times, ['a', 'b']);
  });

  it('key index reads refuse a key that is neither a string nor bytes, naming it', async () => {
    await using fixture = await openWithViews();
    const { byKey, byTime } = fixture;
    await assert.rejects(byKey.last(untyped<string>(5)), /key must be a string or a Uint8Array/);
    await assert.rejects(byKey.last(untyped<string>(null)), /key must be a string or a Uint8Array/);
    assert.throws(() => byKey.records(untyped<string>({})), /key must be a string or a Uint8Array/);
    assert.throws(() => byKey.records('x', untyped<number>('0')), TypeError);
    await assert.rejects(byTime.firstAtOrAfter(untyped<number>('10')), TypeError);
  });
});

describe('view constructors', () => {
  it('keyIndex options must be an object', () => {
    assert.throws(() => keyIndex(1, untyped<object>(null)), TypeError);
    assert.throws(() => keyIndex(1, untyped<object>('key')), TypeError);
  });

  it('a reduce view refuses an initial state that JSON would not give back as it is', () => {
    const refused: unknown[] = [() => 0, new Map(), 1n, NaN, { total: Infinity }, [undefined], new Date(0), Symbol('s')];
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    refused.push(cycle);
    for (const initial of refused) {
      assert.throws(() => reduce(1, (state: unknown) => state, { initial }), TypeError, String(initial));
    }
    const shared = { n: 1 };
    for (const initial of [0, 'a', null, true, [], { a: [1, { b: null }], c: shared, d: shared }, Object.create(null) as object]) {
      assert.doesNotThrow(() => reduce(1, (state: unknown) => state, { initial }));
    }
  });
});

describe('operations on directories', () => {
  it('check refuses head, chainKey and workers without verifyChain, and a chain key of the wrong size', async () => {
    const dir = directory();
    const log = await FileLog.open(dir, { chain: 'sha256' });
    await log.append(1);
    await log.close();
    await assert.rejects(check(dir, { head: 'ab'.repeat(32) }), /head goes with verifyChain/);
    await assert.rejects(check(dir, { chainKey: new Uint8Array(32) }), /chainKey goes with verifyChain/);
    await assert.rejects(check(dir, { workers: 0 }), /workers goes with verifyChain/);
    await assert.rejects(check(dir, { verifyChain: true, chainKey: new Uint8Array(3) }), RangeError);
    assert.equal((await check(dir, { verifyChain: true, head: 'ab'.repeat(32) })).healthy, false);
  });

  it('stat refuses options that are not an object and a signal that is not an AbortSignal', async () => {
    const dir = directory();
    await (await FileLog.open(dir)).close();
    await assert.rejects(stat(dir, untyped<object>(null)), TypeError);
    await assert.rejects(stat(dir, { signal: untyped<AbortSignal>('stop') }), /signal must be an AbortSignal/);
  });

  it('flumelog-offset operations refuse a legacy that is not a boolean, rather than read the 3.x format', async () => {
    const file = join(directory(), 'log.offset');
    const source = await FlumeOffsetLog.open(file, { codec: codecs.json() });
    await source.append([1, 2]);
    await source.close();
    const legacy = untyped<boolean>('yes');
    await assert.rejects(statFlumeOffset(file, { legacy }), /legacy must be a boolean/);
    await assert.rejects(statFlumeOffset(file, untyped<object>(null)), TypeError);
    await assert.rejects(importFlumeOffset(file, directory(), { legacy }), /legacy must be a boolean/);
    await assert.rejects(importFlumeOffset(file, directory(), untyped<object>(null)), TypeError);
    const dir = directory();
    await importFlumeOffset(file, dir);
    await assert.rejects(exportFlumeOffset(dir, join(directory(), 'out.offset'), { legacy }), /legacy must be a boolean/);
    await assert.rejects(exportFlumeOffset(dir, join(directory(), 'out.offset'), untyped<object>(null)), TypeError);
  });

  it('import takes only security options for the new log', async () => {
    const file = join(directory(), 'log.offset');
    await (await FlumeOffsetLog.open(file)).close();
    await assert.rejects(importFlumeOffset(file, directory(), { log: untyped<object>({ readonly: true }) }), /the log of importFlumeOffset has no option readonly/);
    await assert.rejects(importFlumeOffset(file, directory(), { log: untyped<object>(5) }), TypeError);
  });
});

describe('MemoryLog options', () => {
  it('refuses a now that is not a function, as FileLog does, even a falsy one', () => {
    assert.throws(() => new MemoryLog({ now: untyped<() => number>(0) }), /now must be a function/);
    assert.throws(() => new MemoryLog({ now: untyped<() => number>(false) }), /now must be a function/);
  });
});

describe('option names', () => {
  it('a misspelt option of an open is refused, naming the option and the one meant, before anything is opened', async () => {
    const dir = directory();
    await assert.rejects(FileLog.open(dir, untyped<never>({ readOnly: true })), /FileLog\.open has no option readOnly \(did you mean readonly\?\)/);
    await assert.rejects(FileLog.open(dir, untyped<never>({ segmentSize: 4096 })), (error: Error) => error instanceof TypeError && /segmentBytesMax/.test(error.message));
    await assert.rejects(FlumeOffsetLog.open(join(dir, 'log.offset'), untyped<never>({ offsetCodec: 48 })), /FlumeOffsetLog\.open has no option offsetCodec/);
    assert.throws(() => new MemoryLog(untyped<never>({ clock: () => 0 })), /MemoryLog has no option clock/);
    await assert.rejects(Sluice.open(dir, untyped<never>({ retention: { maxRecords: 1 } })), /Sluice\.open has no option retention/);
    // Nothing was created by the refused opens: a writer would have made the directory and its lock.
    await assert.rejects(FileLog.open(dir, { readonly: true }), (error: Error) => 'code' in error && error.code === 'LOG_NOT_FOUND');
  });

  it('an option given as undefined is as good as absent, so that options can be spread from a wider object', async () => {
    const log = await FileLog.open(directory(), untyped<never>({ readOnly: undefined, durability: undefined }));
    await log.close();
    assert.equal(new MemoryLog(untyped<never>({ extra: undefined })).since, -1);
  });
});

describe('options that belong elsewhere', () => {
  it('withoutKey goes with readonly: a writer must be able to seal its appends', async () => {
    await assert.rejects(FileLog.open(directory(), { withoutKey: true }), /withoutKey goes with readonly: true/);
  });

  it("an operation on a directory refuses another's options", async () => {
    const dir = directory();
    await (await FileLog.open(dir)).close();
    await assert.rejects(recover(dir, untyped<never>({ verifyChain: true })), /recover has no option verifyChain/);
    await assert.rejects(restore(dir, directory(), untyped<never>({ link: false })), /restore has no option link/);
    await assert.rejects(backup(dir, directory(), untyped<never>({ overwrite: true })), /backup has no option overwrite/);
    await assert.rejects(check(dir, untyped<never>({ verifychain: true })), /did you mean verifyChain\?/);
    await assert.rejects(exportFlumeOffset(dir, join(directory(), 'x.offset'), untyped<never>({ offsetwidth: 8 })), /did you mean offsetWidth\?/);
    await assert.rejects(stat(dir, untyped<never>({ onProgress: () => {} })), /stat has no option onProgress/);
  });

  it('a $filter NaN is refused: it could match nothing', async () => {
    const db = await Sluice.open<{ n: number }>(directory(), { log: new MemoryLog<{ n: number }>() });
    const numbers = db.use('numbers', query<{ n: number }>(1, { indexes: [] }));
    assert.throws(() => numbers.read({ query: [{ $filter: { n: NaN } }] }), /\$filter\.n must be a number other than NaN/);
    await db.close();
  });
});
