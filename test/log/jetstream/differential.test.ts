/**
 * Differential property test: JetStreamLog against the memory log, the executable model of a log's documented
 * semantics. Random sequences of operations run on a JetStream log (one nats-server for the file, a fresh stream
 * per run) and on a MemoryLog, and every observable result must agree: offsets, values, keys, times, error codes
 * (and the error class, and whether it was thrown synchronously, for programmer mistakes), stream contents for
 * random bounds, reverse and limits, streams whose consumer appends, live streams that wait for later appends,
 * `since`, `sync`, the `since` notifications, and the calls on a closed log. The JetStream log is closed and
 * opened again on its stream at random points, and a second JetStreamLog on the same stream, with its own
 * connection (another process, in effect), reads it too: get, streams, live streams that see the first one's
 * appends; in some runs it is a writer itself and appends between the first one's appends.
 *
 * **Offsets by position.** A JetStream log's offsets are its stream's sequences minus one, dense: while one
 * writer appends, the record at position `p` (the `p`-th record appended, from 0) has offset `p`. The memory log's
 * offsets are byte positions (its records take their frame's size). So the test compares records by position:
 * the model keeps, for every position, the memory log's record start and the JetStream offset the record must
 * have, which is the next stream sequence's when it is appended (offsets stay dense, but torn batches, below, take
 * offsets that hold no record). JetStream offsets, gets and stream bounds are given to the JetStream logs, and
 * the memory log is read through the mapping: a `get` of a record's offset is the memory log's `get` of its
 * record start; of an offset holding no record after record `p`, the memory log's `get` of `p`'s start plus one
 * (no record starts there, and it lies past `since` while `p` is the last record: `NOT_A_RECORD` once a record
 * follows, `OFFSET_OUT_OF_RANGE` before, as for a batch still pending); past the stream's end, as far past the
 * memory log's `since`; invalid and negative offsets are passed on unchanged. A stream of the model reads the
 * memory log's records in order (or reverse) and applies the bounds and `limit` to their JetStream offsets.
 * JetStreamLog has no `delete` (`supports.deletes` is absent; the test checks that).
 *
 * **Torn batches.** A batch is one message per record; a writer that dies half-way leaves the first messages of
 * its batch, which are no records, ever (FORMAT.md J-10…J-16). The test publishes such messages straight to the
 * stream at random points, and the logs must skip them (and the writers append after them).
 *
 * **`since` of the second log.** Records another log appended reach a log's `since` when it asks the server (a
 * read past `since`, the start of a stream): `since` is checked to stay between what the log must know (its own
 * appends, its last read of the stream's end) and the model's, never to move back, and to be the model's after
 * each such read.
 *
 * Live streams are given a limit or an upper bound that the appends of their operation reach, so that they end
 * by themselves; a watchdog (not an assertion on time) aborts one that would hang, which then fails the run.
 *
 * Reproducible: fixed seed. To explore further: SLUICE_JETSTREAM_DIFFERENTIAL_SEED and
 * SLUICE_JETSTREAM_DIFFERENTIAL_RUNS.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { jetstream } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import fc from 'fast-check';
import { appendCallArbOf, fixedTime, invalidOffsetArb, startAppend, type AppendCall, type Item, type Key, type Time } from '../append-calls.js';
import type { JsonValue } from '../../../src/codec/codec.js';
import { batchHeader } from '../../../src/log/jetstream/batch.js';
import { JetStreamLog } from '../../../src/log/jetstream/jetstream-log.js';
import { timeHeader } from '../../../src/log/jetstream/message.js';
import type { Log, LogRecord, StreamOptions } from '../../../src/log/log.js';
import { MemoryLog } from '../../../src/log/memory/memory-log.js';
import { toScanRange } from '../../../src/log/range.js';
import { track } from './cleanup.js';
import { natsFixture } from './nats-servers.js';
import { outcomeOf, type Outcome } from '../../outcome.js';

const seed = Number(process.env.SLUICE_JETSTREAM_DIFFERENTIAL_SEED ?? 42);
const numRuns = Number(process.env.SLUICE_JETSTREAM_DIFFERENTIAL_RUNS ?? 40);
const opsMax = 24;
/** Aborts a live stream that has not ended this long after its appends resolved: it would wait for ever. */
const liveHangMs = 30_000;

const nats = natsFixture(1);
let streamCount = 0;

// ---------------------------------------------------------------------------------------------------------------
// Operation descriptions. Positions are not known when the operations are generated, so targets are described
// by kind plus a few random numbers and resolved against the records the model has when the operation runs.

/** Where a `get` points, in JetStream offsets. */
type Target =
  | { readonly kind: 'record'; readonly pick: number }
  /** Past `since`. */
  | { readonly kind: 'past'; readonly delta: number }
  /** An offset below the stream's end that holds no record (a message of a torn batch), when there is one. */
  | { readonly kind: 'gap'; readonly pick: number }
  /** Anything from a little below 0 to a little past the end. */
  | { readonly kind: 'any'; readonly pick: number }
  | { readonly kind: 'invalid'; readonly value: unknown };

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

/** Which JetStream log an operation reads: the first one, or the second one on the same stream. */
type Who = 'first' | 'second';

type Op =
  | { readonly op: 'append'; readonly call: AppendCall }
  | { readonly op: 'appendSecond'; readonly call: AppendCall }
  | { readonly op: 'concurrent'; readonly calls: readonly AppendCall[]; readonly sync: boolean }
  | { readonly op: 'get' | 'getRecord'; readonly who: Who; readonly target: Target }
  | { readonly op: 'stream'; readonly who: Who; readonly spec: StreamSpec }
  /** A forward stream of the first log that appends (and awaits the append) after its `at`-th record, or at its end. */
  | { readonly op: 'streamAppending'; readonly spec: StreamSpec; readonly at: number; readonly call: AppendCall }
  /**
   * A stream started while `calls` of the first log are in flight: it may or may not include each of them, but
   * shows what was stored up to some point, a whole batch or none of it.
   */
  | { readonly op: 'streamRacing'; readonly who: Who; readonly spec: StreamSpec; readonly calls: readonly AppendCall[] }
  /** A live stream, started before `calls` are appended by the first log (one after the other, or all at once). */
  | {
      readonly op: 'live';
      readonly who: Who;
      readonly spec: StreamSpec;
      readonly calls: readonly AppendCall[];
      readonly together: boolean;
    }
  /**
   * The first `published` messages of a batch of `size` records published straight to the stream, as a writer
   * that died half-way leaves them: pending while they are the stream's last messages, abandoned once any other
   * message follows.
   */
  | { readonly op: 'torn'; readonly size: number; readonly published: number }
  | { readonly op: 'since' }
  | { readonly op: 'sync' }
  | { readonly op: 'reopen'; readonly who: Who; readonly probe: ClosedProbe };

/** A call on a closed log. */
type ClosedProbe =
  | { readonly kind: 'get'; readonly target: Target }
  | { readonly kind: 'append'; readonly call: AppendCall }
  | { readonly kind: 'stream' | 'sync' };

const valueArb: fc.Arbitrary<JsonValue> = fc.oneof(
  { weight: 8, arbitrary: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<JsonValue> },
  { weight: 1, arbitrary: fc.integer({ min: 300, max: 5000 }).map((n): JsonValue => 'x'.repeat(n)) },
);

const keyArb: fc.Arbitrary<Key> = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 12 }) },
  // Longer than fits a subject token: hashed there, the key in a header.
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 90, maxLength: 130 }) },
);

const timeArb: fc.Arbitrary<Time> = fc.oneof(
  { weight: 16, arbitrary: fc.constant(undefined) },
  { weight: 8, arbitrary: fc.oneof(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(0, 9, 10)) },
  { weight: 1, arbitrary: fc.constantFrom(-1, 1.5) },
);

const itemArb: fc.Arbitrary<Item> = fc.record({ value: valueArb, key: keyArb, time: timeArb });

const appendCallArb = appendCallArbOf(itemArb, 6);

const targetArb: fc.Arbitrary<Target> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('record' as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('past' as const),
      delta: fc.oneof(fc.nat({ max: 1000 }), fc.constant(2 ** 52)),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('gap' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('any' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('invalid' as const), value: invalidOffsetArb }) },
);

const boundArb: fc.Arbitrary<Bound> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('record' as const),
      pick: fc.nat(),
      delta: fc.oneof(fc.constant(0), fc.integer({ min: -2, max: 2 }), fc.integer({ min: -20, max: 20 })),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('any' as const),
      value: fc.oneof(
        fc.integer({ min: -10, max: 60 }),
        fc.integer(),
        fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER - 1, Number.MIN_SAFE_INTEGER),
      ),
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

const whoArb = fc.constantFrom<Who>('first', 'first', 'second');

const probeArb: fc.Arbitrary<ClosedProbe> = fc.oneof(
  fc.record({ kind: fc.constant('get' as const), target: targetArb }),
  fc.record({ kind: fc.constant('append' as const), call: appendCallArb }),
  fc.record({ kind: fc.constantFrom('stream' as const, 'sync' as const) }),
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ op: fc.constant('append' as const), call: appendCallArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('appendSecond' as const), call: appendCallArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('concurrent' as const),
      calls: fc.array(appendCallArb, { minLength: 2, maxLength: 5 }),
      sync: fc.boolean(),
    }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('get' as const), who: whoArb, target: targetArb }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('getRecord' as const), who: whoArb, target: targetArb }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('stream' as const), who: whoArb, spec: streamSpecArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('streamAppending' as const),
      spec: streamSpecArb,
      at: fc.nat({ max: 20 }),
      call: appendCallArb,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('live' as const),
      who: whoArb,
      spec: streamSpecArb,
      calls: fc.array(appendCallArb, { minLength: 1, maxLength: 3 }),
      together: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc
      .integer({ min: 2, max: 5 })
      .chain((size) =>
        fc.record({ op: fc.constant('torn' as const), size: fc.constant(size), published: fc.integer({ min: 1, max: size - 1 }) }),
      ),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('streamRacing' as const),
      who: whoArb,
      spec: streamSpecArb,
      calls: fc.array(appendCallArb, { minLength: 1, maxLength: 4 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('since' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('sync' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('reopen' as const), who: whoArb, probe: probeArb }) },
);

// ---------------------------------------------------------------------------------------------------------------
// Outcomes.

interface PlainRecord {
  readonly offset: number;
  readonly value: unknown;
  readonly time: number;
  readonly key: string | undefined;
}

function plain(record: LogRecord<JsonValue>, offset = record.offset): PlainRecord {
  const { key } = record;
  if (key !== undefined) assert.ok(key instanceof Uint8Array, 'a key is a Uint8Array');
  return {
    offset,
    value: record.value,
    time: record.time,
    key: key === undefined ? undefined : Buffer.from(key).toString('hex'),
  };
}

/** Starts one append call (without awaiting it); throws synchronously as `append` does. */
// ---------------------------------------------------------------------------------------------------------------
// The model: the memory log, read by position.

class Model {
  readonly memory = new MemoryLog<JsonValue>({ now: () => fixedTime });
  /** The memory log's record starts, by position. */
  readonly starts: number[] = [];
  /** The JetStream offsets of the records, by position. */
  readonly offsets: number[] = [];
  /** The JetStream offset the next message will take: the stream's messages so far, records or not. */
  next = 0;
  readonly #positions = new Map<number, number>();
  /** The memory log's `since` notifications (its offsets). */
  readonly notified: number[] = [];

  constructor() {
    this.memory.subscribe((since) => this.notified.push(since));
  }

  /** Takes in the memory log's offsets an append resolved to, and returns the JetStream offsets they must be. */
  add(result: unknown): number | number[] {
    const starts = typeof result === 'number' ? [result] : (result as number[]);
    const offsets = starts.map((start) => {
      const last = this.starts[this.starts.length - 1];
      assert.ok(last === undefined || start > last, 'the memory log’s offsets grow');
      this.#positions.set(start, this.starts.length);
      this.starts.push(start);
      this.offsets.push(this.next);
      return this.next++;
    });
    return typeof result === 'number' ? (offsets[0] as number) : offsets;
  }

  /** Messages that are no records took the next `count` offsets. */
  skip(count: number): void {
    this.next += count;
  }

  /** The JetStream offset of the memory log's record at `start`. */
  offsetOf(start: number): number {
    const position = this.#positions.get(start);
    assert.ok(position !== undefined, `the memory log’s offset ${start} is a record the model knows`);
    return this.offsets[position] as number;
  }

  /** The JetStream offset of the last record; -1 for none. */
  since(): number {
    return this.offsets[this.offsets.length - 1] ?? -1;
  }

  /** The JetStream offset a target points at (not always a number: invalid offsets are part of the test). */
  target(target: Target): unknown {
    const count = this.offsets.length;
    switch (target.kind) {
      case 'record':
        return count === 0 ? 0 : this.offsets[target.pick % count];
      case 'past':
        return this.since() + 1 + target.delta;
      case 'gap': {
        const gaps = this.next - count;
        if (gaps === 0) return this.next + (target.pick % 3);
        // The (pick mod gaps)-th offset below `next` that is no record's.
        let skip = target.pick % gaps;
        let position = 0;
        for (let offset = 0; offset < this.next; offset++) {
          if (this.offsets[position] === offset) position++;
          else if (skip-- === 0) return offset;
        }
        throw new Error('unreachable');
      }
      case 'any':
        return (target.pick % (this.next + 30)) - 10;
      case 'invalid':
        return target.value;
    }
  }

  /**
   * The memory log's offset for a JetStream offset: a record's start for a record; for an offset that holds no
   * record after record `p` (a message of a torn batch), the offset right after record `p`'s start (inside it: no
   * record, and past `since` while `p` is the last record, as a pending batch is); past the stream's end, as far
   * past the memory log's `since`; anything else unchanged.
   */
  memoryOffset(offset: unknown): unknown {
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return offset;
    let position = 0;
    while (position < this.offsets.length && (this.offsets[position] as number) < offset) position++;
    if (this.offsets[position] === offset) return this.starts[position];
    if (offset >= this.next || position === 0) return this.memory.since + 1 + Math.max(0, offset - this.next);
    return (this.starts[position - 1] as number) + 1;
  }

  bound(bound: Bound): unknown {
    const count = this.offsets.length;
    switch (bound.kind) {
      case 'record':
        return (count === 0 ? 0 : (this.offsets[bound.pick % count] as number)) + bound.delta;
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

  /**
   * The model of `log.stream(options)` with bounds in JetStream offsets: the memory log's stream validates the
   * options (synchronously, as every log does) and yields its records in order (or reverse), which are kept by
   * their JetStream offsets and cut at `limit`. A live stream is modelled by the records that exist when the
   * model is asked (the test gives live streams a limit or bound their operation's appends reach). `cut`: the
   * log as it was when its last record had that offset.
   */
  stream(options: StreamOptions, cut = Infinity): AsyncIterable<PlainRecord> {
    this.memory.stream(options);
    const range = toScanRange(options);
    const memory = this.memory;
    const offsetOf = (start: number): number => this.offsetOf(start);
    return (async function* () {
      let yielded = 0;
      if (range.limit === 0 || range.low >= range.high) return;
      for await (const record of memory.stream({ reverse: range.reverse })) {
        const offset = offsetOf(record.offset);
        // Records after `cut` were not there yet.
        if (offset > cut) {
          if (range.reverse) continue;
          return;
        }
        if (range.reverse ? offset >= range.high : offset < range.low) continue;
        if (range.reverse ? offset < range.low : offset >= range.high) return;
        yield plain(record, offset);
        if (++yielded === range.limit) return;
      }
    })();
  }
}

async function collect(iterable: AsyncIterable<LogRecord<JsonValue>>, map = plain): Promise<PlainRecord[]> {
  const records: PlainRecord[] = [];
  for await (const record of iterable) records.push(map(record));
  return records;
}

async function collectModel(iterable: AsyncIterable<PlainRecord>): Promise<PlainRecord[]> {
  const records: PlainRecord[] = [];
  for await (const record of iterable) records.push(record);
  return records;
}

/** What the model says an append call does: its JetStream offsets, or the error. */
async function modelAppend(model: Model, call: AppendCall): Promise<Outcome> {
  const outcome = await outcomeOf(() => startAppend(model.memory, call));
  return 'ok' in outcome ? { ok: model.add(outcome.ok) } : outcome;
}

// ---------------------------------------------------------------------------------------------------------------
// The logs under test.

const coverage = new Map<string, number>();

function count(what: string, by = 1): void {
  coverage.set(what, (coverage.get(what) ?? 0) + by);
}

interface Subject {
  log: JetStreamLog<JsonValue>;
  /** Whether the second log is a writer too (the first always is). */
  readonly writes: boolean;
  /** The least `since` may be: the log's own appends, its last read of the stream's end. */
  knows: number;
  /** `since` as last seen, to check that it never moves back while the log is open. */
  seen: number;
  /** Its `since` notifications. */
  notified: number[];
  unsubscribe: () => void;
}

interface Run {
  readonly stream: string;
  readonly model: Model;
  readonly first: Subject;
  readonly second: Subject;
  /** A connection of the test's own, to publish torn batches. */
  readonly connection: NatsConnection;
}

async function openLog(stream: string, readonly: boolean): Promise<JetStreamLog<JsonValue>> {
  return track(
    JetStreamLog.open<JsonValue>({ servers: nats.servers().urls, stream, readonly, now: () => fixedTime }),
  );
}

function listen(subject: Subject): void {
  subject.unsubscribe = subject.log.subscribe((since) => subject.notified.push(since));
}

async function subjectOf(stream: string, readonly: boolean): Promise<Subject> {
  const log = await openLog(stream, readonly);
  const subject: Subject = { log, writes: !readonly, knows: log.since, seen: log.since, notified: [], unsubscribe: () => {} };
  listen(subject);
  return subject;
}

/** True when a stream with these options reads the log's end: it refreshes `since` from the server. */
function readsTheEnd(options: StreamOptions): boolean {
  const range = toScanRange(options);
  return range.limit > 0 && range.low < range.high;
}

/** Checks `since` of a JetStream log against what it must know and what the model holds. */
function checkSince(run: Run, subject: Subject, label: string, exact = false): void {
  const since = subject.log.since;
  const name = subject === run.first ? 'first' : 'second';
  if (exact) subject.knows = run.model.since();
  assert.ok(since >= subject.seen, `${label}: the ${name} log's since moved back from ${subject.seen} to ${since}`);
  assert.ok(
    since >= subject.knows && since <= run.model.since(),
    `${label}: the ${name} log's since is ${since}, not within [${subject.knows}, ${run.model.since()}]`,
  );
  subject.seen = since;
}

/** Runs an append call on the model and on `subject`, and checks that they agree. */
async function appendBoth(run: Run, subject: Subject, call: AppendCall, label: string): Promise<Outcome> {
  const expected = await modelAppend(run.model, call);
  const actual = await outcomeOf(() => startAppend(subject.log, call));
  assert.deepEqual(actual, expected, `${label}: the JetStream log differs from the model`);
  noteAppended(subject, expected);
  return expected;
}

function noteAppended(subject: Subject, outcome: Outcome): void {
  count(`append ${'ok' in outcome ? 'ok' : outcome.error}`);
  if (!('ok' in outcome)) return;
  const positions = typeof outcome.ok === 'number' ? [outcome.ok] : (outcome.ok as number[]);
  const last = positions[positions.length - 1];
  if (last !== undefined) subject.knows = Math.max(subject.knows, last);
  count('records', positions.length);
}

/** What a read-only log does with an append call: fails as the model would without writing, or `READ_ONLY`. */
async function readOnlyAppend(call: AppendCall): Promise<Outcome> {
  const scratch = new MemoryLog<JsonValue>({ now: () => fixedTime });
  const outcome = await outcomeOf(() => startAppend(scratch, call));
  await scratch.close();
  return 'ok' in outcome ? { error: 'SluiceError READ_ONLY', thrown: 'asynchronously' } : outcome;
}

/** A call on a closed log: on the JetStream log just closed, and on a closed memory log. */
async function probeClosed(log: Log<JsonValue>, probe: ClosedProbe, model: Model): Promise<Outcome> {
  switch (probe.kind) {
    case 'get': {
      const position = model.target(probe.target);
      const offset = log instanceof MemoryLog ? model.memoryOffset(position) : position;
      return outcomeOf(() => log.get(offset as number));
    }
    case 'append':
      return outcomeOf(() => startAppend(log, probe.call));
    case 'stream':
      return outcomeOf(() => collect(log.stream()));
    case 'sync':
      return outcomeOf(() => log.sync());
  }
}

/** Runs one operation on the model and the JetStream logs, and asserts that they agree. */
async function step(run: Run, op: Op, label: string): Promise<void> {
  const { model } = run;
  const subjectOfWho = (who: Who): Subject => (who === 'first' ? run.first : run.second);
  switch (op.op) {
    case 'append':
      await appendBoth(run, run.first, op.call, label);
      break;
    case 'appendSecond': {
      if (run.second.writes) {
        await appendBoth(run, run.second, op.call, label);
        count('append by the second log');
      } else {
        const expected = await readOnlyAppend(op.call);
        const actual = await outcomeOf(() => startAppend(run.second.log, op.call));
        assert.deepEqual(actual, expected, `${label}: the read-only log's append`);
        count(`read-only append ${'ok' in expected ? 'ok' : expected.error}`);
      }
      break;
    }
    case 'concurrent': {
      // Every call is issued before any is awaited: a later call gets greater offsets, in call order.
      const expected = await Promise.all(op.calls.map((call) => outcomeOf(() => startAppend(model.memory, call))));
      const mapped = expected.map((outcome) => ('ok' in outcome ? { ok: model.add(outcome.ok) } : outcome));
      const started = op.calls.map((call) => outcomeOf(() => startAppend(run.first.log, call)));
      const synced = op.sync ? outcomeOf(() => run.first.log.sync()) : undefined;
      const actual = await Promise.all(started);
      assert.deepEqual(actual, mapped, `${label}: concurrent appends differ from the model`);
      for (const outcome of mapped) noteAppended(run.first, outcome);
      if (synced !== undefined) {
        // `sync` waits for the appends issued before it: it resolves to the last of them.
        assert.deepEqual(await synced, { ok: model.since() }, `${label}: sync() after appends resolves to the last`);
        count('concurrent sync');
      }
      break;
    }
    case 'get':
    case 'getRecord': {
      const subject = subjectOfWho(op.who);
      const position = model.target(op.target);
      const offset = model.memoryOffset(position);
      const read = (log: Log<JsonValue>, at: unknown): Promise<Outcome> =>
        op.op === 'get' ? outcomeOf(() => log.get(at as number)) : outcomeOf(() => log.getRecord(at as number), plain);
      const expectedRaw = await read(model.memory, offset);
      const expected =
        'ok' in expectedRaw && op.op === 'getRecord'
          ? { ok: { ...(expectedRaw.ok as PlainRecord), offset: position } }
          : expectedRaw;
      const before = subject.log.since;
      const actual = await read(subject.log, position);
      assert.deepEqual(actual, expected, `${label}: ${op.who} log's ${op.op}(${String(position)}) differs from the model`);
      count(`${op.op} ${'ok' in expected ? 'ok' : expected.error}`);
      // A read past `since` asks the server for the stream's end.
      checkSince(run, subject, label, typeof position === 'number' && Number.isSafeInteger(position) && position > before);
      break;
    }
    case 'stream': {
      const subject = subjectOfWho(op.who);
      const options = model.streamOptions(op.spec);
      const expected = await outcomeOf(() => collectModel(model.stream(options)));
      const actual = await outcomeOf(() => collect(subject.log.stream(options)));
      assert.deepEqual(actual, expected, `${label}: ${op.who} log's stream(${JSON.stringify(options)}) differs`);
      count(`stream ${'ok' in expected ? ((expected.ok as unknown[]).length === 0 ? 'empty' : 'records') : expected.error}`);
      checkSince(run, subject, label, 'ok' in expected && readsTheEnd(options));
      break;
    }
    case 'streamAppending': {
      const options = { ...model.streamOptions(op.spec), reverse: false };
      // The model first: the offsets of its appended record are then known to both.
      const modelRun = async (): Promise<unknown> => {
        const records: PlainRecord[] = [];
        let appended: Outcome | undefined;
        const streamed = await outcomeOf(async () => {
          for await (const record of model.stream(options)) {
            records.push(record);
            if (records.length === op.at) appended = await modelAppend(model, op.call);
          }
        });
        appended ??= await modelAppend(model, op.call);
        return { streamed, records, appended };
      };
      const expected = await modelRun();
      const log = run.first.log;
      const records: PlainRecord[] = [];
      let appended: Outcome | undefined;
      const streamed = await outcomeOf(async () => {
        for await (const record of log.stream(options)) {
          records.push(plain(record));
          if (records.length === op.at) appended = await outcomeOf(() => startAppend(log, op.call));
        }
      });
      appended ??= await outcomeOf(() => startAppend(log, op.call));
      assert.deepEqual({ streamed, records, appended }, expected, `${label}: a stream that appends differs`);
      noteAppended(run.first, appended);
      count('stream appending');
      break;
    }
    case 'streamRacing': {
      const subject = subjectOfWho(op.who);
      const options = { ...model.streamOptions(op.spec) };
      const cuts = [model.since()];
      const expectedAppends: Outcome[] = [];
      const modelStarted = op.calls.map((call) => outcomeOf(() => startAppend(model.memory, call)));
      for (const outcome of await Promise.all(modelStarted)) {
        const mapped = 'ok' in outcome ? { ok: model.add(outcome.ok) } : outcome;
        expectedAppends.push(mapped);
        if ('ok' in mapped) cuts.push(model.since());
      }
      const started = op.calls.map((call) => outcomeOf(() => startAppend(run.first.log, call)));
      const streamed = await outcomeOf(() => collect(subject.log.stream(options)));
      const actualAppends = await Promise.all(started);
      assert.deepEqual(actualAppends, expectedAppends, `${label}: appends racing a stream differ`);
      for (const outcome of actualAppends) noteAppended(run.first, outcome);
      const candidates: Outcome[] = [];
      for (const cut of cuts) candidates.push(await outcomeOf(() => collectModel(model.stream(options, cut))));
      assert.ok(
        candidates.some((candidate) => isDeepStrictEqual(candidate, streamed)),
        `${label}: ${op.who} log's stream(${JSON.stringify(options)}) racing appends gave ${JSON.stringify(streamed)}, ` +
          `none of ${JSON.stringify(candidates)}`,
      );
      count(`stream racing ${'ok' in streamed ? 'ok' : streamed.error}`);
      break;
    }
    case 'live': {
      const subject = subjectOfWho(op.who);
      const base = model.streamOptions(op.spec);
      // Validation first: options a stream refuses are refused alike (and no appends follow).
      const refused = await outcomeOf(async () => {
        model.stream({ ...base, reverse: false, live: true });
        return undefined;
      });
      if (!('ok' in refused)) {
        const actual = await outcomeOf(async () => {
          subject.log.stream({ ...base, reverse: false, live: true });
          return undefined;
        });
        assert.deepEqual(actual, refused, `${label}: live stream options`);
        count(`live ${refused.error}`);
        break;
      }
      // The model's appends first, to know how many records the range will hold: the live stream's limit is cut
      // to that (when its upper bound does not end it), so it ends by itself.
      const countBefore = model.starts.length;
      const expectedAppends: Outcome[] = [];
      if (op.together) {
        const started = op.calls.map((call) => outcomeOf(() => startAppend(model.memory, call)));
        for (const outcome of await Promise.all(started)) {
          expectedAppends.push('ok' in outcome ? { ok: model.add(outcome.ok) } : outcome);
        }
      } else {
        for (const call of op.calls) expectedAppends.push(await modelAppend(model, call));
      }
      const range = toScanRange({ ...base, reverse: false });
      const available = model.offsets.filter((offset) => offset >= range.low && offset < range.high).length;
      // A stream whose upper bound lies at or below the last record ends there (a torn batch it meets there is
      // dropped once the next record arrives); any other is given a limit of the records in its range.
      const endsByBound = range.high <= model.since() + 1;
      const options: StreamOptions = {
        ...base,
        reverse: false,
        live: true,
        ...(endsByBound ? {} : { limit: Math.min(range.limit, available) }),
      };
      const expected = await outcomeOf(() => collectModel(model.stream(options)));
      const watchdog = new AbortController();
      const live = outcomeOf(() => collect(subject.log.stream({ ...options, signal: watchdog.signal })));
      let actualAppends: Outcome[];
      if (op.together) {
        actualAppends = await Promise.all(op.calls.map((call) => outcomeOf(() => startAppend(run.first.log, call))));
      } else {
        actualAppends = [];
        for (const call of op.calls) actualAppends.push(await outcomeOf(() => startAppend(run.first.log, call)));
      }
      assert.deepEqual(actualAppends, expectedAppends, `${label}: appends during a live stream differ`);
      for (const outcome of actualAppends) noteAppended(run.first, outcome);
      const timer = setTimeout(() => watchdog.abort(), liveHangMs);
      const actual = await live.finally(() => clearTimeout(timer));
      assert.deepEqual(
        actual,
        expected,
        `${label}: ${op.who} log's live stream(${JSON.stringify(options)}) differs (records before: ${countBefore})`,
      );
      count(`live ${'ok' in expected ? ((expected.ok as unknown[]).length === 0 ? 'empty' : 'records') : expected.error}`);
      checkSince(run, subject, label);
      break;
    }
    case 'torn': {
      if (model.offsets.length === 0) {
        count('torn skipped');
        break;
      }
      const js = jetstream(run.connection);
      const id = `dead-${model.next}`;
      for (let index = 0; index < op.published; index++) {
        const header = headers();
        header.set(timeHeader, String(fixedTime));
        header.set(batchHeader, `${index}/${op.size}/${id}`);
        const ack = await js.publish(`${run.stream}._`, JSON.stringify(index), { headers: header, msgID: `${id}.${index}` });
        assert.equal(ack.seq - 1, model.next + index, `${label}: the torn batch's offsets`);
      }
      model.skip(op.published);
      count('torn');
      break;
    }
    case 'since':
      checkSince(run, run.first, label);
      checkSince(run, run.second, label);
      count('since');
      break;
    case 'sync': {
      // A log without a disk resolves to its `since`: the model's, unless the second log appended records the
      // first one has not learnt of yet (then anything from what it must know up to the model's).
      const expected = await outcomeOf(() => model.memory.sync(), (offset) => (offset < 0 ? offset : model.offsetOf(offset)));
      const knows = run.first.knows;
      const actual = await outcomeOf(() => run.first.log.sync());
      if (run.second.writes && 'ok' in actual && 'ok' in expected) {
        const synced = actual.ok as number;
        assert.ok(synced >= knows && synced <= (expected.ok as number), `${label}: sync resolved to ${synced}`);
      } else {
        assert.deepEqual(actual, expected, `${label}: sync`);
      }
      count('sync');
      break;
    }
    case 'reopen': {
      const subject = subjectOfWho(op.who);
      subject.unsubscribe();
      await subject.log.close();
      const closedModel = new MemoryLog<JsonValue>({ now: () => fixedTime });
      await closedModel.close();
      const expected = await probeClosed(closedModel, op.probe, model);
      const actual = await probeClosed(subject.log, op.probe, model);
      assert.deepEqual(actual, expected, `${label}: a call on the closed ${op.who} log (${op.probe.kind})`);
      count(`closed ${op.probe.kind} ${'ok' in expected ? 'ok' : expected.error}`);
      subject.log = await openLog(run.stream, !subject.writes);
      // Opening reads the stream's last record: `since` is the model's.
      assert.equal(subject.log.since, model.since(), `${label}: the reopened ${op.who} log's since`);
      subject.knows = subject.seen = subject.log.since;
      listen(subject);
      count(`reopen ${op.who}`);
      break;
    }
  }
  checkSince(run, run.first, label);
  checkSince(run, run.second, label);
  assert.equal(run.first.log.status, 'open', `${label}: the first log's status`);
  assert.equal(run.second.log.status, 'open', `${label}: the second log's status`);
}

/**
 * The `since` notifications of a log: strictly increasing offsets, each the last record of an append call
 * (the model's notifications are exactly those), the last one at most the log's `since`.
 */
function checkNotified(run: Run, subject: Subject, label: string): void {
  const batchEnds = new Set(run.model.notified.map((offset) => run.model.offsetOf(offset)));
  for (const [i, since] of subject.notified.entries()) {
    assert.ok(batchEnds.has(since), `${label}: notified ${since}, not the end of an append`);
    if (i > 0) assert.ok(since > (subject.notified[i - 1] as number), `${label}: notifications in order`);
  }
}

describe('JetStreamLog against MemoryLog (differential, fast-check)', { skip: nats.skip, timeout: 300_000 }, () => {
  it(`agrees on every operation (seed ${seed}, ${numRuns} runs of up to ${opsMax} operations)`, async (t) => {
    const connection = await track(connect({ servers: nats.servers().urls, noAsyncTraces: true }));
    const details = await fc.check(
      fc.asyncProperty(fc.boolean(), fc.array(opArb, { maxLength: opsMax, size: 'max' }), async (secondWrites, ops) => {
        const stream = `differential-${streamCount++}`;
        const first = await subjectOf(stream, false);
        const second = await subjectOf(stream, !secondWrites);
        const run: Run = { stream, model: new Model(), first, second, connection };
        try {
          assert.equal(first.log.supports.deletes, undefined, 'JetStreamLog has no delete');
          assert.equal((first.log as Log<JsonValue>).delete, undefined, 'JetStreamLog has no delete');
          for (const [index, op] of ops.entries()) await step(run, op, `op ${index} (${op.op})`);
          // Everything, both ways, from both logs, and once more after a reopen.
          await step(run, { op: 'reopen', who: 'first', probe: { kind: 'sync' } }, 'final reopen');
          const all = await collectModel(run.model.stream({}));
          assert.deepEqual(all.map((record) => record.offset), run.model.offsets, 'the model tracked every record');
          for (const subject of [run.first, run.second]) {
            const name = subject === run.first ? 'first' : 'second';
            assert.deepEqual(await collect(subject.log.stream()), all, `final forward stream of the ${name} log`);
            checkSince(run, subject, `final stream of the ${name} log`, true);
            assert.deepEqual(
              await collect(subject.log.stream({ reverse: true })),
              [...all].reverse(),
              `final reverse stream of the ${name} log`,
            );
            checkNotified(run, subject, `the ${name} log`);
          }
          const info = await run.first.log.info();
          assert.deepEqual(
            [info.records, info.messages, info.firstOffset, info.lastOffset],
            [all.length, run.model.next, run.model.offsets[0] ?? -1, run.model.since()],
            'info()',
          );
          assert.equal(run.first.log.firstOffset, 0, 'firstOffset: nothing was purged');
          count('runs with a second writer', secondWrites ? 1 : 0);
        } finally {
          await run.first.log.close();
          await run.second.log.close();
          await run.model.memory.close();
        }
      }),
      { seed, numRuns, includeErrorInReport: true, interruptAfterTimeLimit: 240_000 },
    );
    await connection.close();
    if (details.failed) throw new Error(fc.defaultReportMessage(details), { cause: details.errorInstance });
    if (details.interrupted) t.diagnostic(`interrupted by the time limit after ${details.numRuns} of ${numRuns} runs`);
    const lines = [...coverage].sort(([a], [b]) => a.localeCompare(b)).map(([what, n]) => `${what}: ${n}`);
    t.diagnostic(`covered: ${lines.join(', ')}`);
  });
});
