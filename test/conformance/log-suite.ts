import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { codecs, type Codec } from '../../src/codec/codec.js';
import { isSluiceError, type ErrorCode } from '../../src/errors.js';
import type { Log, LogRecord, StreamOptions } from '../../src/log/log.js';

/** How the suite makes logs of one implementation. */
export interface LogFactory {
  /** A new, empty log. */
  open<T>(options?: { codec?: Codec<T> }): Promise<Log<T>>;
  /**
   * The bytes a record with a value of `valueBytes` bytes (and no key) takes, so its successor's offset. Default:
   * the native frame (FORMAT.md F-10), 32 bytes of framing.
   */
  recordBytes?(valueBytes: number): number;
  /**
   * False when the log cannot store a value that encodes to no bytes (or to zero bytes only): the
   * flumelog-offset format reads such a record as deleted. Default true.
   */
  readonly emptyValues?: boolean;
  /**
   * True when offsets are consecutive integers (a stream's sequence numbers) rather than byte positions (give
   * `recordBytes: () => 1` with it): every offset from the first record to `since` is then a record start, so the
   * checks of offsets that fall inside a record do not apply. Default false.
   */
  readonly denseOffsets?: boolean;
  /** Closes `log` and opens the same log again (persistent logs only). */
  reopen?<T>(log: Log<T>, options?: { codec?: Codec<T> }): Promise<Log<T>>;
}

export interface LogSuiteOptions {
  readonly name: string;
  readonly factory: LogFactory;
}

/** Asserts that `promise` rejects with a SluiceError of `code`. */
export async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isSluiceError(error, code), `expected ${code}, got ${String(error)}`);
    return true;
  });
}

export async function collect<T>(iterable: AsyncIterable<LogRecord<T>>): Promise<LogRecord<T>[]> {
  const records: LogRecord<T>[] = [];
  for await (const record of iterable) records.push(record);
  return records;
}

async function offsetsOf<T>(log: Log<T>, options?: StreamOptions): Promise<number[]> {
  return (await collect(log.stream(options))).map((record) => record.offset);
}

/**
 * The one behaviour every `Log` implementation must have (the contract documented on `Log`). Each
 * implementation's test file runs it; optional features are gated on `log.supports`.
 */
export function logSuite({ name, factory }: LogSuiteOptions): void {
  const open = <T = unknown>(codec?: Codec<T>): Promise<Log<T>> =>
    factory.open<T>(codec === undefined ? {} : { codec });
  const size = (valueBytes: number): number => factory.recordBytes?.(valueBytes) ?? 32 + valueBytes;
  const emptyValues = factory.emptyValues ?? true;
  const dense = factory.denseOffsets ?? false;

  describe(`Log conformance: ${name}`, () => {
    it('starts empty', async () => {
      await using log = await open();
      assert.equal(log.status, 'open');
      assert.equal(log.since, -1);
      assert.deepEqual(await collect(log.stream()), []);
      assert.deepEqual(await collect(log.stream({ reverse: true })), []);
      await rejectsWith(log.get(0), 'OFFSET_OUT_OF_RANGE');
      assert.equal(await log.sync(), -1);
    });

    it('appends one value and reads it back by offset', async () => {
      await using log = await open();
      const first = await log.append({ a: 1 });
      assert.equal(first, 0);
      assert.equal(log.since, 0);
      const second = await log.append({ a: 2 });
      // Offsets are byte positions: the frame's overhead plus the 7 bytes of {"a":1} (32 + 7 for FORMAT.md F-10).
      assert.equal(second, size(7));
      assert.equal(log.since, size(7));
      assert.deepEqual(await log.get(first), { a: 1 });
      assert.deepEqual(await log.get(second), { a: 2 });
    });

    it('appends a batch and resolves to every offset', async () => {
      await using log = await open();
      const offsets = await log.append([{ a: 1 }, { a: 2 }, { a: 3 }]);
      assert.deepEqual(offsets, [0, size(7), 2 * size(7)]);
      assert.equal(log.since, 2 * size(7));
      assert.deepEqual(await log.append([]), []);
      assert.equal(log.since, 2 * size(7));
      const records = await collect(log.stream());
      assert.deepEqual(
        records.map((record) => [record.offset, record.value]),
        [
          [0, { a: 1 }],
          [size(7), { a: 2 }],
          [2 * size(7), { a: 3 }],
        ],
      );
    });

    it('stores an array value when it is wrapped in a batch', async () => {
      await using log = await open();
      const [offset] = await log.append([[1, 2]]);
      assert.deepEqual(await log.get(offset as number), [1, 2]);
    });

    it('rejects values the codec cannot encode with TypeError, writing nothing', async () => {
      await using log = await open();
      await log.append('kept');
      assert.throws(() => log.append(undefined), TypeError);
      assert.throws(() => log.append(() => 1), TypeError);
      assert.throws(() => log.append(['ok', undefined]), TypeError);
      assert.throws(() => log.append([1n]), TypeError);
      assert.throws(() => log.append({ big: 1n }), TypeError);
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      assert.throws(() => log.append(circular), TypeError);
      await log.append('after');
      assert.deepEqual(
        (await collect(log.stream())).map((record) => record.value),
        ['kept', 'after'],
      );
    });

    it('rejects wrong offsets: TypeError, RangeError, NOT_A_RECORD, OFFSET_OUT_OF_RANGE', async () => {
      await using log = await open();
      await log.append([{ a: 1 }, { a: 2 }]);
      assert.throws(() => log.get(-1), RangeError);
      assert.throws(() => log.get(1.5), RangeError);
      assert.throws(() => log.get(Number.NaN), RangeError);
      assert.throws(() => log.get(Infinity), RangeError);
      assert.throws(() => log.get('3' as unknown as number), TypeError);
      const record = size(7);
      if (!dense) {
        for (const offset of [1, 4, record >> 1, record - 1]) await rejectsWith(log.get(offset), 'NOT_A_RECORD');
      }
      // Past the start of the last record is past the end, even inside that record.
      for (const offset of dense ? [2 * record, 2 * record + 1] : [record + 1, 2 * record - 1, 2 * record]) {
        await rejectsWith(log.get(offset), 'OFFSET_OUT_OF_RANGE');
      }
      await rejectsWith(log.get(1_000_000), 'OFFSET_OUT_OF_RANGE');
    });

    it('streams within bounds that need not be record starts', async () => {
      await using log = await open();
      const offsets = await log.append([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => ({ n })));
      const at = (i: number): number => offsets[i] as number;
      assert.deepEqual(await offsetsOf(log), offsets);
      assert.deepEqual(await offsetsOf(log, { gt: at(2) }), offsets.slice(3));
      assert.deepEqual(await offsetsOf(log, { gte: at(2) }), offsets.slice(2));
      if (!dense) {
        assert.deepEqual(await offsetsOf(log, { gt: at(2) + 3 }), offsets.slice(3));
        assert.deepEqual(await offsetsOf(log, { gte: at(2) + 3 }), offsets.slice(3));
      }
      assert.deepEqual(await offsetsOf(log, { gt: at(2) - 1 }), offsets.slice(2));
      assert.deepEqual(await offsetsOf(log, { lt: at(5) }), offsets.slice(0, 5));
      assert.deepEqual(await offsetsOf(log, { lte: at(5) }), offsets.slice(0, 6));
      assert.deepEqual(await offsetsOf(log, { lt: at(5) + 1 }), offsets.slice(0, 6));
      assert.deepEqual(await offsetsOf(log, { lte: at(5) - 1 }), offsets.slice(0, 5));
      assert.deepEqual(await offsetsOf(log, { gt: at(1), lt: at(4) }), offsets.slice(2, 4));
      assert.deepEqual(await offsetsOf(log, { gte: -100, lte: 1e12 }), offsets);
      assert.deepEqual(await offsetsOf(log, { gt: at(9) }), []);
      assert.deepEqual(await offsetsOf(log, { gt: at(5), lt: at(5) }), []);
      assert.deepEqual(await offsetsOf(log, { lt: 0 }), []);
    });

    it('streams in reverse, with bounds and limits', async () => {
      await using log = await open();
      const offsets = await log.append([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => ({ n })));
      const reversed = [...offsets].reverse();
      const at = (i: number): number => offsets[i] as number;
      assert.deepEqual(await offsetsOf(log, { reverse: true }), reversed);
      assert.deepEqual(await offsetsOf(log, { reverse: true, limit: 3 }), reversed.slice(0, 3));
      assert.deepEqual(await offsetsOf(log, { reverse: true, lt: at(5) }), reversed.slice(5));
      assert.deepEqual(await offsetsOf(log, { reverse: true, lte: at(5) }), reversed.slice(4));
      if (!dense) assert.deepEqual(await offsetsOf(log, { reverse: true, lt: at(5) + 2 }), reversed.slice(4));
      assert.deepEqual(await offsetsOf(log, { reverse: true, gt: at(7) }), reversed.slice(0, 2));
      if (!dense) {
        assert.deepEqual(await offsetsOf(log, { reverse: true, gte: at(7) - 1 }), reversed.slice(0, 3));
        assert.deepEqual(await offsetsOf(log, { reverse: true, gt: at(7) + 1 }), reversed.slice(0, 2));
      }
      assert.deepEqual(await offsetsOf(log, { reverse: true, gt: at(2), lte: at(4), limit: 1 }), [at(4)]);
    });

    it('applies limit after the bounds, and limit 0 yields nothing', async () => {
      await using log = await open();
      const offsets = await log.append([1, 2, 3, 4, 5]);
      assert.deepEqual(await offsetsOf(log, { gt: offsets[1], limit: 2 }), offsets.slice(2, 4));
      assert.deepEqual(await offsetsOf(log, { limit: 0 }), []);
      assert.deepEqual(await offsetsOf(log, { limit: 100 }), offsets);
    });

    it('validates stream options synchronously', async () => {
      await using log = await open();
      assert.throws(() => log.stream({ gt: 1, gte: 1 }), TypeError);
      assert.throws(() => log.stream({ lt: 1, lte: 1 }), TypeError);
      assert.throws(() => log.stream({ reverse: true, live: true }), TypeError);
      assert.throws(() => log.stream({ gt: 1.5 }), RangeError);
      assert.throws(() => log.stream({ lt: Number.NaN }), RangeError);
      assert.throws(() => log.stream({ gt: '1' as unknown as number }), TypeError);
      assert.throws(() => log.stream({ limit: -1 }), RangeError);
      assert.throws(() => log.stream({ limit: 1.5 }), RangeError);
      assert.throws(() => log.stream({ reverse: 'yes' as unknown as boolean }), TypeError);
      assert.throws(() => log.stream({ signal: {} as AbortSignal }), TypeError);
      assert.throws(() => log.stream(null as unknown as StreamOptions), TypeError);
    });

    it('sees records appended while a stream runs, up to where it reads', async () => {
      await using log = await open();
      await log.append([1, 2]);
      const seen: unknown[] = [];
      for await (const record of log.stream()) {
        seen.push(record.value);
        if (record.value === 2) await log.append(3);
      }
      assert.deepEqual(seen, [1, 2, 3]);
    });

    it('streams live: old records, then new ones as they are appended', async () => {
      await using log = await open();
      await log.append(['a', 'b']);
      const seen: unknown[] = [];
      const reading = (async () => {
        for await (const record of log.stream({ live: true, limit: 5 })) seen.push(record.value);
      })();
      await log.append('c');
      await log.append(['d', 'e']);
      await reading;
      assert.deepEqual(seen, ['a', 'b', 'c', 'd', 'e']);
    });

    it('streams live from a bound beyond the end, and stops at the upper bound', async () => {
      await using log = await open();
      const [first] = await log.append(['a']);
      // An upper bound the 60 appends pass half-way.
      const upper = dense ? 30 : 1000;
      const seen: number[] = [];
      const reading = (async () => {
        for await (const record of log.stream({ live: true, gt: first, lte: upper })) seen.push(record.offset);
      })();
      const offsets: number[] = [];
      for (let i = 0; i < 60; i++) offsets.push(await log.append(`record ${i}`));
      await reading;
      assert.deepEqual(seen, offsets.filter((offset) => offset <= upper));
    });

    it('ends a live stream with ABORTED when its signal aborts', async () => {
      await using log = await open();
      await log.append('a');
      const controller = new AbortController();
      const seen: unknown[] = [];
      const reading = (async () => {
        for await (const record of log.stream({ live: true, signal: controller.signal })) {
          seen.push(record.value);
          if (seen.length === 2) controller.abort(new Error('enough'));
        }
      })();
      await log.append('b');
      await rejectsWith(reading, 'ABORTED');
      assert.deepEqual(seen, ['a', 'b']);
    });

    it('hands out no record an aborted stream holds already (ABORTED)', async () => {
      await using log = await open();
      await log.append(['a', 'b', 'c']);
      for (const live of [false, true]) {
        const controller = new AbortController();
        const iterator = log.stream({ live, signal: controller.signal })[Symbol.asyncIterator]();
        const first = await iterator.next();
        assert.equal(first.done === true ? undefined : first.value.value, 'a');
        controller.abort();
        await rejectsWith(iterator.next(), 'ABORTED');
        assert.deepEqual(await iterator.next(), { done: true, value: undefined });
      }
    });

    it('gives overlapping next() calls the records in order, none lost', async () => {
      await using log = await open();
      // More than one of the cursor's batches, so that later calls overlap a read.
      const values = Array.from({ length: 600 }, (_, i) => i);
      await log.append(values);
      for (const live of [false, true]) {
        const iterator = log.stream({ live, limit: values.length })[Symbol.asyncIterator]();
        const results = await Promise.all(Array.from({ length: values.length + 2 }, () => iterator.next()));
        assert.deepEqual(
          results.map((result) => (result.done === true ? 'done' : result.value.value)),
          [...values, 'done', 'done'],
        );
      }
    });

    it('ends a live stream over an empty range at once', async () => {
      await using log = await open();
      for (let round = 0; round < 2; round++) {
        for (const options of [{ lt: 0 }, { gte: 1000, lt: 500 }, { gt: 10, lte: 10 }]) {
          const iterator = log.stream({ live: true, ...options })[Symbol.asyncIterator]();
          // Settles without any append: a stream still waiting would leave this promise pending and fail the test.
          assert.deepEqual(await iterator.next(), { done: true, value: undefined }, JSON.stringify(options));
        }
        await log.append('a');
      }
    });

    it('ends a waiting live stream with LOG_CLOSED when the log closes', async () => {
      const log = await open();
      await log.append('a');
      const iterator = log.stream({ live: true })[Symbol.asyncIterator]();
      const first = await iterator.next();
      assert.equal(first.done, false);
      assert.equal(first.value?.value, 'a');
      const waiting = rejectsWith(iterator.next(), 'LOG_CLOSED');
      await log.close();
      await waiting;
    });

    it('releases a stream when the consumer breaks out', async () => {
      await using log = await open();
      await log.append([1, 2, 3]);
      for await (const record of log.stream({ live: true })) {
        if (record.value === 2) break;
      }
      assert.deepEqual(await offsetsOf(log, { limit: 1 }), [0]);
    });

    it('orders concurrent appends by call order', async () => {
      await using log = await open();
      const pending: Array<Promise<number | number[]>> = [];
      for (let i = 0; i < 200; i++) pending.push(i % 3 === 0 ? log.append([i, i]) : log.append(i));
      const results = (await Promise.all(pending)).flat();
      for (let i = 1; i < results.length; i++) assert.ok((results[i] as number) > (results[i - 1] as number));
      assert.equal(log.since, results[results.length - 1]);
      assert.equal((await collect(log.stream())).length, results.length);
    });

    it('tells subscribers about every append, once per batch', async () => {
      await using log = await open();
      const seen: number[] = [];
      const unsubscribe = log.subscribe((since) => seen.push(since));
      const first = await log.append('a');
      const batch = await log.append(['b', 'c']);
      // Appends that go out together are still told one by one, with each batch's last offset.
      const together = await Promise.all([log.append('x'), log.append(['y', 'z']), log.append('w')]);
      unsubscribe();
      await log.append('d');
      assert.deepEqual(seen, [first, batch[1], together[0], together[1][1], together[2]]);
      assert.throws(() => log.subscribe('no' as unknown as () => void), TypeError);
    });

    it('closes idempotently; every later call fails with LOG_CLOSED', async () => {
      const log = await open();
      await log.append('a');
      const closing = log.close();
      assert.equal(log.close(), closing);
      await closing;
      assert.equal(log.status, 'closed');
      await rejectsWith(log.append('b'), 'LOG_CLOSED');
      await rejectsWith(log.get(0), 'LOG_CLOSED');
      await rejectsWith(log.sync(), 'LOG_CLOSED');
      await rejectsWith(collect(log.stream()), 'LOG_CLOSED');
      await log[Symbol.asyncDispose]();
    });

    it('settles appends issued before close', async () => {
      const log = await open();
      const pending = [log.append('a'), log.append(['b', 'c'])];
      await log.close();
      assert.deepEqual(await Promise.all(pending), [0, [size(3), 2 * size(3)]]);
    });

    it('resolves sync to the last durable offset', async () => {
      await using log = await open();
      await log.append(['a', 'b']);
      assert.equal(await log.sync(), log.since);
    });

    it('stores raw bytes, UTF-8 strings and custom codecs', async () => {
      {
        await using log = await open(codecs.raw());
        const bytes = new Uint8Array([0, 1, 2, 255]);
        const offset = await log.append(bytes);
        bytes[0] = 9;
        assert.deepEqual(await log.get(offset), new Uint8Array([0, 1, 2, 255]));
        if (emptyValues) assert.deepEqual(await log.get(await log.append(new Uint8Array(0))), new Uint8Array(0));
        else assert.throws(() => log.append(new Uint8Array(0)), RangeError);
        assert.throws(() => log.append('text' as unknown as Uint8Array), TypeError);
      }
      {
        await using log = await open(codecs.utf8());
        const offset = await log.append('héllo 🌊');
        assert.equal(await log.get(offset), 'héllo 🌊');
        if (emptyValues) assert.equal(await log.get(await log.append('')), '');
        else assert.throws(() => log.append(''), RangeError);
        assert.throws(() => log.append(5 as unknown as string), TypeError);
      }
      {
        const upper: Codec<string> = {
          name: 'upper',
          encode: (value) => Buffer.from(value.toUpperCase()),
          decode: (bytes) => bytes.toString().toLowerCase(),
        };
        await using log = await open(upper);
        assert.equal(await log.get(await log.append('MiXeD')), 'mixed');
      }
    });

    it('reports a value the codec cannot decode as DECODE_FAILED', async () => {
      const picky: Codec<string> = {
        name: 'picky',
        encode: (value) => value,
        decode: (bytes) => {
          if (bytes.toString() === 'bad') throw new Error('no');
          return bytes.toString();
        },
      };
      await using log = await open(picky);
      await log.append('good');
      const bad = await log.append('bad');
      await rejectsWith(log.get(bad), 'DECODE_FAILED');
      await rejectsWith(collect(log.stream()), 'DECODE_FAILED');
    });

    it('keeps keys and times', async (t) => {
      await using log = await open();
      if (!log.supports.keys || !log.supports.times) return t.skip('the log does not keep keys and times');
      const single = await log.append('a', { key: 'k1', time: 1234 });
      const batch = await log.append(['b', 'c', 'd'], {
        key: [new Uint8Array([1, 2]), undefined, 'k3'],
        time: [1, 2, 3],
      });
      const shared = await log.append(['e', 'f'], { key: 'same', time: 99 });
      const plain = await log.append('g');
      const single1 = await log.getRecord(single);
      assert.equal(Buffer.from(single1.key ?? []).toString(), 'k1');
      assert.equal(single1.time, 1234);
      const records = await collect(log.stream({ gt: single }));
      assert.deepEqual(
        records.map((record) => [record.key === undefined ? undefined : [...record.key], record.time]),
        [
          [[1, 2], 1],
          [undefined, 2],
          [[...Buffer.from('k3')], 3],
          [[...Buffer.from('same')], 99],
          [[...Buffer.from('same')], 99],
          [undefined, records[5]?.time],
        ],
      );
      assert.ok(Math.abs((records[5]?.time ?? 0) - Date.now()) < 60_000);
      assert.equal(batch.length, 3);
      assert.equal(shared.length, 2);
      assert.equal((await log.getRecord(plain)).key, undefined);
    });

    it('validates keys and times', async () => {
      await using log = await open();
      assert.throws(() => log.append('a', { key: 5 as unknown as string }), TypeError);
      assert.throws(() => log.append('a', { key: 'x'.repeat(70_000) }), RangeError);
      assert.throws(() => log.append('a', { time: -1 }), RangeError);
      assert.throws(() => log.append('a', { time: 1.5 }), RangeError);
      assert.throws(() => log.append('a', { time: '1' as unknown as number }), TypeError);
      assert.throws(() => log.append('a', { key: ['a'] }), TypeError);
      assert.throws(() => log.append(['a', 'b'], { time: [1] }), TypeError);
      // Every entry of a time array is a time: neither an undefined entry nor a hole stands for the clock.
      assert.throws(() => log.append(['a', 'b'], { time: [undefined as unknown as number, 5] }), TypeError);
      // eslint-disable-next-line no-sparse-arrays
      assert.throws(() => log.append(['a', 'b'], { time: [, 5] as unknown as number[] }), TypeError);
      assert.throws(() => log.append(['a', 'b'], { time: [5, -1] }), RangeError);
      assert.throws(() => log.append('a', null as unknown as object), TypeError);
      assert.equal(log.since, -1);
    });

    it('rejects a value over the size limit with RangeError, writing nothing', async () => {
      await using log = await open(codecs.raw());
      assert.throws(() => log.append(new Uint8Array(16 * 1024 * 1024 + 1)), RangeError);
      assert.equal(await log.append(new Uint8Array(10).fill(7)), 0);
      assert.deepEqual(await offsetsOf(log), [0]);
    });

    if (factory.reopen !== undefined) {
      const reopen = factory.reopen.bind(factory);
      it('keeps every record, key, time and since across a reopen', async () => {
        const log = await open();
        const keeps = log.supports.keys && log.supports.times;
        const offsets = await log.append([{ a: 1 }, { b: 2 }], keeps ? { key: 'k', time: 5 } : {});
        const last = await log.append('last');
        await using again = await reopen(log);
        assert.equal(again.since, last);
        const records = await collect(again.stream());
        assert.deepEqual(
          records.map((record) => record.offset),
          [...offsets, last],
        );
        assert.deepEqual(await again.get(offsets[1] as number), { b: 2 });
        if (keeps) assert.equal((await again.getRecord(offsets[0] as number)).time, 5);
        assert.equal(await again.append('more'), last + size(6));
      });
    }
  });
}
