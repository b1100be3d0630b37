/**
 * Differential property test: the memory log is the executable model of the file log ("exactly the behaviour of
 * the file log: the same offsets, the same validation, errors, visibility and stream semantics"). Random
 * sequences of operations are applied to both and every observable result must be identical: offsets, values,
 * keys, times, error codes (and the error class, and whether it was thrown synchronously, for programmer
 * mistakes), stream contents for arbitrary bounds (also while the stream's consumer appends), `since` after
 * every step. The file log uses 4 KiB segments so that rollovers (and batches too large for a segment, which get
 * one of their own) happen all the time, and it is closed and reopened on the same directory at random points;
 * each run picks one of its durability modes. One file-log-only invariant rides along: a `sync()` called after
 * appends that are still in flight resolves to the last of them.
 *
 * Reproducible: fixed seed. To explore further: SLUICE_DIFFERENTIAL_SEED, SLUICE_DIFFERENTIAL_RUNS, and
 * SLUICE_DIFFERENTIAL_DURABILITY (a comma-separated list of modes).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { appendCallArbOf, fixedTime, invalidOffsetArb, startAppend, type AppendCall, type Item, type Key, type Time } from './append-calls.js';
import type { JsonValue } from '../../src/codec/codec.js';
import { FileLog, type Durability } from '../../src/log/file/file-log.js';
import type { Log, LogRecord, StreamOptions } from '../../src/log/log.js';
import { MemoryLog } from '../../src/log/memory/memory-log.js';
import { temporaryDirectory } from '../helpers.js';
import { outcomeOf, type Outcome } from '../outcome.js';

const seed = Number(process.env.SLUICE_DIFFERENTIAL_SEED ?? 42);
const numRuns = Number(process.env.SLUICE_DIFFERENTIAL_RUNS ?? 100);
const opsMax = 40;
const segmentBytesMax = 4096;

// ---------------------------------------------------------------------------------------------------------------
// Operation descriptions. Offsets are not known when the operations are generated, so targets are described by
// kind plus a few random numbers and resolved against the records the model has when the operation runs.

/** Where a `get` points, resolved at run time. */
type Target =
  | { readonly kind: 'record'; readonly pick: number }
  /** Strictly inside a record that has a successor: not a record start, but within the log. */
  | { readonly kind: 'inside'; readonly pick: number; readonly delta: number }
  /** Past `since` (which includes the bytes of the last record itself). */
  | { readonly kind: 'past'; readonly delta: number }
  /** Anything from a little below 0 to a little past the end. */
  | { readonly kind: 'any'; readonly pick: number }
  | { readonly kind: 'invalid'; readonly value: unknown };

/** A stream bound, resolved at run time. */
type Bound =
  | { readonly kind: 'record'; readonly pick: number; readonly delta: number }
  | { readonly kind: 'any'; readonly value: number }
  | { readonly kind: 'invalid'; readonly value: unknown };

interface StreamSpec {
  readonly lower: { readonly which: 'none' | 'gt' | 'gte' | 'both'; readonly bound: Bound };
  readonly upper: { readonly which: 'none' | 'lt' | 'lte' | 'both'; readonly bound: Bound };
  readonly reverse: boolean | undefined;
  readonly limit: number | undefined;
}

type Op =
  | { readonly op: 'append'; readonly call: AppendCall }
  | { readonly op: 'concurrent'; readonly calls: readonly AppendCall[]; readonly sync: boolean }
  | { readonly op: 'get' | 'getRecord'; readonly target: Target }
  | { readonly op: 'stream'; readonly spec: StreamSpec }
  /** A forward stream that appends (and awaits the append) after its `at`-th record, or at its end. */
  | { readonly op: 'streamAppending'; readonly spec: StreamSpec; readonly at: number; readonly call: AppendCall }
  | { readonly op: 'since' }
  | { readonly op: 'sync' }
  | { readonly op: 'reopen' };

const valueArb: fc.Arbitrary<JsonValue> = fc.oneof(
  { weight: 8, arbitrary: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<JsonValue> },
  // Large values: a few fill a 4 KiB segment, some do not fit one at all.
  { weight: 1, arbitrary: fc.integer({ min: 300, max: 6000 }).map((n): JsonValue => 'x'.repeat(n)) },
);

const keyArb: fc.Arbitrary<Key> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }) },
);

const timeArb: fc.Arbitrary<Time> = fc.oneof(
  { weight: 16, arbitrary: fc.constant(undefined) },
  { weight: 8, arbitrary: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }) },
  // Invalid times: RangeError, synchronously, from both.
  { weight: 1, arbitrary: fc.constantFrom(-1, 1.5) },
);

const itemArb: fc.Arbitrary<Item> = fc.record({ value: valueArb, key: keyArb, time: timeArb });

const appendCallArb = appendCallArbOf(itemArb, 8);

const targetArb: fc.Arbitrary<Target> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('record' as const), pick: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('inside' as const), pick: fc.nat(), delta: fc.nat() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('past' as const), delta: fc.nat({ max: 10_000 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('any' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('invalid' as const), value: invalidOffsetArb }) },
);

const boundArb: fc.Arbitrary<Bound> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('record' as const),
      pick: fc.nat(),
      delta: fc.oneof(fc.constant(0), fc.integer({ min: -3, max: 3 }), fc.integer({ min: -60, max: 60 })),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('any' as const),
      value: fc.oneof(fc.integer({ min: -100, max: 30_000 }), fc.integer()),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('invalid' as const),
      value: fc.constantFrom<unknown>(1.5, Number.NaN, '1', Number.MAX_SAFE_INTEGER + 2),
    }),
  },
);

const streamSpecArb: fc.Arbitrary<StreamSpec> = fc.record({
  lower: fc.record({
    which: fc.constantFrom<StreamSpec['lower']['which']>('none', 'none', 'gt', 'gte', 'gt', 'gte', 'gt', 'gte', 'both'),
    bound: boundArb,
  }),
  upper: fc.record({
    which: fc.constantFrom<StreamSpec['upper']['which']>('none', 'none', 'lt', 'lte', 'lt', 'lte', 'lt', 'lte', 'both'),
    bound: boundArb,
  }),
  reverse: fc.constantFrom(undefined, false, true, true),
  limit: fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 3, arbitrary: fc.integer({ min: 0, max: 12 }) },
    { weight: 1, arbitrary: fc.constantFrom(-1, 2.5, 1000) },
  ),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 12, arbitrary: fc.record({ op: fc.constant('append' as const), call: appendCallArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('concurrent' as const),
      calls: fc.array(appendCallArb, { minLength: 2, maxLength: 6 }),
      sync: fc.boolean(),
    }),
  },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('get' as const), target: targetArb }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('getRecord' as const), target: targetArb }) },
  { weight: 7, arbitrary: fc.record({ op: fc.constant('stream' as const), spec: streamSpecArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('streamAppending' as const),
      spec: streamSpecArb,
      at: fc.nat({ max: 30 }),
      call: appendCallArb,
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('since' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('sync' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('reopen' as const) }) },
);

// ---------------------------------------------------------------------------------------------------------------
// Running an operation and describing its outcome in a form that can be compared with deepEqual.

interface PlainRecord {
  readonly offset: number;
  readonly value: unknown;
  readonly time: number;
  /** Hex of the key bytes; `undefined` for no key. */
  readonly key: string | undefined;
}

function plain(record: LogRecord<JsonValue>): PlainRecord {
  const { key } = record;
  if (key !== undefined) assert.ok(key instanceof Uint8Array, 'a key is a Uint8Array');
  return {
    offset: record.offset,
    value: record.value,
    time: record.time,
    key: key === undefined ? undefined : Buffer.from(key).toString('hex'),
  };
}

async function collect(iterable: AsyncIterable<LogRecord<JsonValue>>): Promise<PlainRecord[]> {
  const records: PlainRecord[] = [];
  for await (const record of iterable) records.push(plain(record));
  return records;
}

/** Starts one append call (without awaiting it); throws synchronously as `append` does. */
/** The record starts the model knows, in offset order. */
class Model {
  readonly starts: number[] = [];

  add(result: unknown): void {
    const offsets = typeof result === 'number' ? [result] : (result as number[]);
    for (const offset of offsets) {
      const last = this.starts[this.starts.length - 1];
      assert.ok(last === undefined || offset > last, 'offsets grow');
      this.starts.push(offset);
    }
  }

  since(): number {
    return this.starts[this.starts.length - 1] ?? -1;
  }

  /** The offset a target points at (not always a number: invalid offsets are part of the test). */
  offset(target: Target): unknown {
    const starts = this.starts;
    const count = starts.length;
    switch (target.kind) {
      case 'record':
        return count === 0 ? 0 : starts[target.pick % count];
      case 'inside': {
        if (count < 2) return 1 + (target.delta % 50);
        const index = target.pick % (count - 1);
        const start = starts[index] as number;
        const size = (starts[index + 1] as number) - start;
        return start + 1 + (target.delta % (size - 1));
      }
      case 'past':
        return this.since() + 1 + target.delta;
      case 'any':
        return (target.pick % (Math.max(this.since(), 0) + 600)) - 20;
      case 'invalid':
        return target.value;
    }
  }

  bound(bound: Bound): unknown {
    const count = this.starts.length;
    switch (bound.kind) {
      case 'record':
        return (count === 0 ? 0 : (this.starts[bound.pick % count] as number)) + bound.delta;
      case 'any':
      case 'invalid':
        return bound.value;
    }
  }

  streamOptions(spec: StreamSpec): StreamOptions {
    const options: Record<string, unknown> = {};
    const lower = this.bound(spec.lower.bound);
    const upper = this.bound(spec.upper.bound);
    if (spec.lower.which === 'gt' || spec.lower.which === 'both') options.gt = lower;
    if (spec.lower.which === 'gte' || spec.lower.which === 'both') options.gte = lower;
    if (spec.upper.which === 'lt' || spec.upper.which === 'both') options.lt = upper;
    if (spec.upper.which === 'lte' || spec.upper.which === 'both') options.lte = upper;
    if (spec.reverse !== undefined) options.reverse = spec.reverse;
    if (spec.limit !== undefined) options.limit = spec.limit;
    return options;
  }
}

/** How often each kind of outcome occurred, to show what the runs covered. */
const coverage = new Map<string, number>();

function count(what: string, by = 1): void {
  coverage.set(what, (coverage.get(what) ?? 0) + by);
}

interface Pair {
  readonly memory: MemoryLog<JsonValue>;
  file: FileLog<JsonValue>;
  readonly dir: string;
  readonly durability: Durability;
}

async function openFile(dir: string, durability: Durability): Promise<FileLog<JsonValue>> {
  return FileLog.open<JsonValue>(dir, { durability, segmentBytesMax, now: () => fixedTime });
}

/** A short name for an outcome, for the coverage counts. */
function kindOf(op: Op, outcome: Outcome): string {
  if (!('ok' in outcome)) return `${op.op} ${outcome.error}`;
  if (op.op === 'stream') return `stream ok (${(outcome.ok as unknown[]).length === 0 ? 'empty' : 'records'})`;
  return `${op.op} ok`;
}

/** Runs one operation on both logs (the memory log first) and asserts that they agree. */
async function step(pair: Pair, model: Model, op: Op, label: string): Promise<void> {
  const both = async (run: (log: Log<JsonValue>) => Promise<Outcome>): Promise<Outcome> => {
    const expected = await run(pair.memory);
    const actual = await run(pair.file);
    assert.deepEqual(actual, expected, `${label}: the file log differs from the memory log`);
    count(kindOf(op, expected));
    return expected;
  };
  switch (op.op) {
    case 'append': {
      const outcome = await both((log) => outcomeOf(() => startAppend(log, op.call)));
      if ('ok' in outcome) model.add(outcome.ok);
      break;
    }
    case 'concurrent': {
      // Issue every call (and then, maybe, a sync) before awaiting any: they share writes and fsyncs in the file
      // log, and may span a rollover.
      const run = async (log: Log<JsonValue>): Promise<{ appended: Outcome[]; synced: Outcome | undefined }> => {
        const started = op.calls.map((call) => outcomeOf(() => startAppend(log, call)));
        const synced = op.sync ? outcomeOf(() => log.sync()) : undefined;
        return { appended: await Promise.all(started), synced: await synced };
      };
      const expected = await run(pair.memory);
      const actual = await run(pair.file);
      assert.deepEqual(actual.appended, expected.appended, `${label}: the file log differs from the memory log`);
      for (const each of expected.appended) {
        count(`concurrent ${'ok' in each ? 'ok' : each.error}`);
        if ('ok' in each) model.add(each.ok);
      }
      if (op.sync) {
        // Not compared with the memory log (which resolves to `since` when called): the file log's sync makes
        // "every record appended so far" durable, so it covers the appends issued before it.
        assert.deepEqual(actual.synced, { ok: model.since() }, `${label}: sync() after appends resolves to the last`);
        count('concurrent sync');
      }
      break;
    }
    case 'get': {
      const offset = model.offset(op.target) as number;
      await both((log) => outcomeOf(() => log.get(offset)));
      break;
    }
    case 'getRecord': {
      const offset = model.offset(op.target) as number;
      await both((log) => outcomeOf(() => log.getRecord(offset), plain));
      break;
    }
    case 'stream': {
      const options = model.streamOptions(op.spec);
      await both((log) => outcomeOf(() => collect(log.stream(options))));
      break;
    }
    case 'streamAppending': {
      const options = { ...model.streamOptions(op.spec), reverse: false };
      const outcome = await both(async (log) => {
        const records: PlainRecord[] = [];
        let appended: Outcome | undefined;
        const streamed = await outcomeOf(async () => {
          for await (const record of log.stream(options)) {
            records.push(plain(record));
            if (records.length === op.at) appended = await outcomeOf(() => startAppend(log, op.call));
          }
        });
        appended ??= await outcomeOf(() => startAppend(log, op.call));
        return { ok: { streamed, records, appended } };
      });
      const { appended } = (outcome as { ok: { appended: Outcome } }).ok;
      if ('ok' in appended) model.add(appended.ok);
      break;
    }
    case 'since':
      await both(async (log) => ({ ok: log.since }));
      break;
    case 'sync':
      await both((log) => outcomeOf(() => log.sync()));
      break;
    case 'reopen': {
      count('reopen');
      await pair.file.close();
      pair.file = await openFile(pair.dir, pair.durability);
      break;
    }
  }
  assert.equal(pair.memory.since, model.since(), `${label}: the memory log's since`);
  assert.equal(pair.file.since, model.since(), `${label}: the file log's since`);
  assert.equal(pair.file.status, 'open', `${label}: the file log's status`);
}

/**
 * The durability modes this build of the file log accepts: `os` and `disk`, and any other mode it knows (a
 * `buffered` mode serves reads of not-yet-written records from memory, a path worth comparing too).
 */
async function durabilities(root: string): Promise<Durability[]> {
  const modes: Durability[] = ['os', 'disk'];
  for (const candidate of ['buffered']) {
    try {
      const log = await FileLog.open(mkdtempSync(join(root, 'probe-')), { durability: candidate as Durability });
      await log.close();
      modes.push(candidate as Durability);
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
    }
  }
  return modes;
}

describe('FileLog against MemoryLog (differential, fast-check)', () => {
  const root = temporaryDirectory('sluice-differential-');

  it(`agrees on every operation (seed ${seed}, ${numRuns} runs of up to ${opsMax} operations)`, async (t) => {
    const only = process.env.SLUICE_DIFFERENTIAL_DURABILITY?.split(',');
    const modes = (await durabilities(root)).filter((mode) => only === undefined || only.includes(mode));
    t.diagnostic(`durability modes: ${modes.join(', ')}`);
    const details = await fc.check(
      fc.asyncProperty(
        fc.constantFrom(...modes),
        fc.array(opArb, { maxLength: opsMax, size: 'max' }),
        async (durability, ops) => {
          const dir = mkdtempSync(join(root, 'run-'));
          const pair: Pair = {
            memory: new MemoryLog<JsonValue>({ now: () => fixedTime }),
            file: await openFile(dir, durability),
            dir,
            durability,
          };
          const model = new Model();
          try {
            for (const [index, op] of ops.entries()) await step(pair, model, op, `op ${index} (${op.op})`);
            // Everything, both ways, and once more after a reopen.
            await step(pair, model, { op: 'reopen' }, 'final reopen');
            const all = await collect(pair.memory.stream());
            assert.deepEqual(await collect(pair.file.stream()), all, 'final forward stream');
            const reversed = await collect(pair.file.stream({ reverse: true }));
            assert.deepEqual(reversed, [...all].reverse(), 'final reverse stream');
            assert.deepEqual(
              all.map((record) => record.offset),
              model.starts,
              'the model tracked every record',
            );
            count('segments', pair.file.segments.bases.length);
            count(`durability ${durability}`);
            count('records', model.starts.length);
          } finally {
            await pair.file.close();
            await pair.memory.close();
          }
        },
      ),
      // Shrinking a failure can take minutes; the time limit bounds it (a failure found is still reported, with
      // the smallest counterexample reached so far). A passing run takes a fraction of it.
      { seed, numRuns, includeErrorInReport: true, interruptAfterTimeLimit: numRuns * 100 },
    );
    if (details.failed) throw new Error(fc.defaultReportMessage(details), { cause: details.errorInstance });
    if (details.interrupted) {
      t.diagnostic(`interrupted by the time limit after ${details.numRuns} of ${numRuns} runs`);
    }
    const lines = [...coverage].sort(([a], [b]) => a.localeCompare(b)).map(([what, n]) => `${what}: ${n}`);
    t.diagnostic(`covered: ${lines.join(', ')}`);
  });
});
