/**
 * Differential property test: Sluice's `OffsetLog` (the flumelog over `FlumeOffsetLog`) against flumelog-offset
 * 3.4.4 itself. Random sequences of operations run on both, each on a file of its own, and every observable
 * result must be the same: append callbacks, `since` after every step, `get` (records, deleted records, past the
 * end), streams with any mix of gt/gte/lt/lte, reverse, limit, seqs and values, live streams (`old: false`
 * too), deletes, and the two files, byte for byte, after every write. Each run picks an offset width and one of
 * the codecs flumelog-offset takes (its default, Buffers as they are, or flumecodec's json). Both logs are
 * closed and opened again at random points, after the same torn tail was sometimes cut from both files, and each
 * side then sometimes goes on with the file the other one wrote.
 *
 * What upstream answers wrongly (README, "flumelog-offset files") is compared with what it should have been,
 * not with what it gives, and is not asked where it would crash or hang:
 * - `get` or `del` at an offset that is not a record start: Sluice alone, which must fail with a code;
 * - stream bounds: upstream hands out a record outside the range when the range's far end is inclusive and lies
 *   before the first record read (`lte` below the start, an empty range), and a reversed stream without an upper
 *   bound always starts with the last record, whatever its lower bound; it ends a reversed stream at once when the
 *   upper bound is past the end. So the reference is upstream's whole stream, in the same direction and shape,
 *   cut to the range;
 * - `limit` counts deleted records upstream, and `values: false` streams hand out deleted records' seqs: the
 *   reference is upstream's stream without them;
 * - flumelog-offset keeps a stale block of a deleted record that spans blocks, and a `get` past the last block
 *   holds its file lock forever: the reference is opened again after a delete and only asked for offsets inside
 *   its last block;
 * - flumelog-offset reads before byte 0 (and throws) for a `get` below the first record's trailer of an empty
 *   file, and when recovering a file whose only record is torn: neither is asked of it;
 * - overlapping appends are merged upstream and each called back with the seq of the last record written:
 *   Sluice calls back with each append's own.
 *
 * Reproducible: fixed seed. To explore further: SLUICE_FLUME_DIFFERENTIAL_SEED, SLUICE_FLUME_DIFFERENTIAL_RUNS.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync, truncateSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { JsonValue } from '../../src/codec/codec.js';
import { isSluiceError } from '../../src/errors.js';
import type { FlumeCodec } from '../../src/flume/codec.js';
import { whenLoaded, type FlumeStreamOptions, type SluiceFlumeLog } from '../../src/flume/flumelog.js';
import { OffsetLog } from '../../src/flume/logs.js';
import type { PullSource } from '../../src/flume/pull.js';
import { temporaryDirectory } from '../helpers.js';
import { collect, pull } from './support.js';

const seed = Number(process.env.SLUICE_FLUME_DIFFERENTIAL_SEED ?? 7);
const numRuns = Number(process.env.SLUICE_FLUME_DIFFERENTIAL_RUNS ?? 100);
const opsMax = 24;

const require = createRequire(import.meta.url);

interface UpstreamLog {
  readonly since: { readonly value: number | undefined; once(listener: (since: number) => void): void };
  append(value: unknown, cb: (error: Error | null, seq: number) => void): void;
  get(offset: number, cb: (error: (Error & { code?: string }) | null, value: unknown) => void): void;
  stream(options?: object): PullSource<unknown>;
  del(offsets: number | number[], cb: (error: Error | null) => void): void;
}

const createUpstream = require('flumelog-offset') as (file: string, options: object) => UpstreamLog;
const flumeJson = require('flumecodec/json') as FlumeCodec<unknown>;

const blockSize = 16 * 1024;
const bits = { 4: 32, 6: 48, 8: 53 } as const;
type Width = keyof typeof bits;

// ---------------------------------------------------------------------------------------------------------------
// Operations. Offsets are not known when they are generated: targets are picks among the records the model has.

/** A value as generated: JSON for the json codec; for the raw codec its JSON text as bytes, or bytes of its own. */
interface Value {
  readonly json: JsonValue;
  readonly bytes: Uint8Array | undefined;
}

/** One append: a single value, or a batch (an array, one write). */
interface AppendCall {
  readonly values: readonly Value[];
  readonly batch: boolean;
}

type Target =
  | { readonly kind: 'record'; readonly pick: number }
  /** At or past the end of the file. */
  | { readonly kind: 'past'; readonly delta: number }
  /** Strictly inside a record: Sluice alone. */
  | { readonly kind: 'inside'; readonly pick: number; readonly delta: number };

type Bound =
  | { readonly kind: 'record'; readonly pick: number }
  | { readonly kind: 'edge'; readonly value: -1 | 0 }
  | { readonly kind: 'past'; readonly delta: number }
  /** Not a record start: streams only (Sluice resolves it to the next record). */
  | { readonly kind: 'inside'; readonly pick: number; readonly delta: number };

interface StreamSpec {
  readonly lower: 'none' | 'gt' | 'gte';
  readonly lowerBound: Bound;
  readonly upper: 'none' | 'lt' | 'lte';
  readonly upperBound: Bound;
  readonly reverse: boolean;
  readonly limit: number | undefined;
  readonly shape: 'default' | 'both' | 'seqs' | 'values';
}

interface LiveSpec {
  readonly lower: 'none' | 'gt' | 'gte' | 'new';
  readonly lowerBound: Bound;
  readonly shape: 'default' | 'seqs' | 'values';
}

type Op =
  | { readonly op: 'append'; readonly call: AppendCall }
  | { readonly op: 'concurrent'; readonly calls: readonly AppendCall[] }
  | { readonly op: 'get'; readonly target: Target }
  | { readonly op: 'stream'; readonly spec: StreamSpec }
  | { readonly op: 'live'; readonly spec: LiveSpec }
  | { readonly op: 'del'; readonly picks: readonly number[] }
  | { readonly op: 'delInvalid'; readonly target: Target }
  | { readonly op: 'reopen'; readonly swap: boolean; readonly cut: number | undefined };

const textArb = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
);

const jsonArb: fc.Arbitrary<JsonValue> = fc.oneof(
  { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 2, stringUnit: 'grapheme' }) as fc.Arbitrary<JsonValue> },
  { weight: 3, arbitrary: fc.dictionary(textArb, fc.oneof(textArb, fc.integer(), fc.double(), fc.boolean()), { maxKeys: 4 }) },
  // Large values: they span flumelog-offset's 16 KiB blocks and Sluice's read windows.
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 1000, max: 40_000 }), fc.constantFrom('x', 'é', '🌊', '\u0000', '"'))
      .map(([n, unit]): JsonValue => ({ big: unit.repeat(n) })),
  },
);

// A single value that is an array would be a batch: it is wrapped. A raw value is never empty nor all zeros
// (upstream would store it and read it back as deleted; Sluice refuses it, as the README says).
const valueArb: fc.Arbitrary<Value> = fc.record({
  json: jsonArb.map((json) => (Array.isArray(json) ? { array: json } : json)),
  bytes: fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 300 }).filter((bytes) => bytes.some((byte) => byte !== 0)) },
  ),
});

const appendCallArb: fc.Arbitrary<AppendCall> = fc.oneof(
  { weight: 3, arbitrary: valueArb.map((value) => ({ values: [value], batch: false })) },
  { weight: 2, arbitrary: fc.array(valueArb, { minLength: 1, maxLength: 5 }).map((values) => ({ values, batch: true })) },
);

const targetArb: fc.Arbitrary<Target> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('record' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('past' as const), delta: fc.oneof(fc.nat({ max: 20 }), fc.nat({ max: 100_000 })) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('inside' as const), pick: fc.nat(), delta: fc.nat() }) },
);

const boundArb: fc.Arbitrary<Bound> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('record' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('edge' as const), value: fc.constantFrom(-1 as const, 0 as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('past' as const), delta: fc.nat({ max: 50 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('inside' as const), pick: fc.nat(), delta: fc.nat() }) },
);

const streamSpecArb: fc.Arbitrary<StreamSpec> = fc.record({
  lower: fc.constantFrom('none' as const, 'gt' as const, 'gte' as const),
  lowerBound: boundArb,
  upper: fc.constantFrom('none' as const, 'lt' as const, 'lte' as const),
  upperBound: boundArb,
  reverse: fc.boolean(),
  limit: fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 3, arbitrary: fc.integer({ min: 1, max: 6 }) },
    { weight: 1, arbitrary: fc.constantFrom(0, -1) },
  ),
  shape: fc.constantFrom('default' as const, 'default' as const, 'both' as const, 'seqs' as const, 'values' as const),
});

const liveSpecArb: fc.Arbitrary<LiveSpec> = fc.record({
  lower: fc.constantFrom('none' as const, 'gt' as const, 'gte' as const, 'new' as const),
  lowerBound: boundArb,
  shape: fc.constantFrom('default' as const, 'seqs' as const, 'values' as const),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ op: fc.constant('append' as const), call: appendCallArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('concurrent' as const), calls: fc.array(appendCallArb, { minLength: 2, maxLength: 4 }) }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('get' as const), target: targetArb }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('stream' as const), spec: streamSpecArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('live' as const), spec: liveSpecArb }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('del' as const), picks: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delInvalid' as const), target: targetArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('reopen' as const),
      swap: fc.boolean(),
      cut: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.nat() }),
    }),
  },
);

const runArb = fc.record({
  width: fc.constantFrom<Width>(4, 4, 6, 8),
  codec: fc.constantFrom('json' as const, 'raw' as const),
  ops: fc.array(opArb, { minLength: 1, maxLength: opsMax }),
});

// ---------------------------------------------------------------------------------------------------------------
// The model: where the records are, and which are deleted.

interface ModelRecord {
  readonly seq: number;
  readonly size: number;
  deleted: boolean;
}

class Model {
  readonly records: ModelRecord[] = [];
  size = 0;

  constructor(readonly width: Width) {}

  get since(): number {
    return this.records.length === 0 ? -1 : (this.records[this.records.length - 1] as ModelRecord).seq;
  }

  add(payloadBytes: number): number {
    const seq = this.size;
    const size = payloadBytes + 8 + this.width;
    this.records.push({ seq, size, deleted: false });
    this.size += size;
    return seq;
  }

  pick(pick: number): ModelRecord | undefined {
    return this.records.length === 0 ? undefined : this.records[pick % this.records.length];
  }

  isDeleted(seq: number): boolean {
    return this.records.some((record) => record.seq === seq && record.deleted);
  }

  /** Drops the last record (a torn tail cut from the file). */
  dropLast(): void {
    const last = this.records.pop();
    if (last !== undefined) this.size = last.seq;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Running one sequence.

type Outcome = { readonly value: unknown } | { readonly error: string };

function outcome(run: (cb: (error: (Error & { code?: string }) | null, value?: unknown) => void) => void): Promise<Outcome> {
  return new Promise((resolve) =>
    run((error, value) => resolve(error ? { error: error.code === 'flumelog:deleted' ? 'deleted' : 'failed' } : { value })),
  );
}

function sluiceCode(run: (cb: (error: Error | null, value?: unknown) => void) => void): Promise<string> {
  return new Promise((resolve) =>
    run((error) => resolve(error === null ? 'none' : isSluiceError(error) ? error.code : String((error as { code?: unknown }).code))),
  );
}

function waitSince(log: { since: { once(listener: (since: number) => void): void } }): Promise<void> {
  return new Promise((resolve) => log.since.once(() => resolve()));
}

interface Live {
  readonly spec: LiveSpec;
  readonly options: FlumeStreamOptions;
  /** `since` when it opened (for `old: false`). */
  readonly since: number;
  readonly ours: unknown[];
  readonly theirs: unknown[];
  readonly abort: () => void;
}

function drain(source: PullSource<unknown>, into: unknown[]): () => void {
  const sink = pull.drain((item) => {
    into.push(item);
  }, () => undefined) as unknown as { abort(): void };
  pull(source, sink);
  return () => sink.abort();
}

async function runSequence(dir: string, width: Width, codecName: 'json' | 'raw', ops: readonly Op[]): Promise<void> {
  const codec = codecName === 'json' ? flumeJson : undefined;
  const encodeValue = (value: Value): unknown =>
    codecName === 'json' ? value.json : Buffer.from(value.bytes ?? Buffer.from(JSON.stringify(value.json)));
  const payloadBytes = (value: Value): number =>
    codecName === 'json' ? Buffer.byteLength(JSON.stringify(value.json)) : (value.bytes?.length ?? Buffer.byteLength(JSON.stringify(value.json)));

  const files = [join(dir, 'a.offset'), join(dir, 'b.offset')] as const;
  let theirFile: string = files[0];
  let ourFile: string = files[1];
  const openTheirs = async (): Promise<UpstreamLog> => {
    const log = createUpstream(theirFile, { offsetCodec: bits[width], blockSize, ...(codec === undefined ? {} : { codec }) });
    await waitSince(log);
    return log;
  };
  const openOurs = async (): Promise<SluiceFlumeLog<unknown>> => {
    const log = OffsetLog<unknown>(ourFile, { offsetCodec: bits[width], ...(codec === undefined ? {} : { codec }) });
    // A file it refuses never gets a since: its error is what is awaited then.
    await new Promise<void>((resolve, reject) => log[whenLoaded]((error) => (error ? reject(error) : resolve())));
    return log;
  };
  let theirs = await openTheirs();
  let ours = await openOurs();
  const model = new Model(width);
  let lives: Live[] = [];

  const sameFiles = (step: string): void => {
    assert.ok(readFileSync(theirFile).equals(readFileSync(ourFile)), `${step}: the files differ`);
    assert.equal(statSync(ourFile).size, model.size, `${step}: file size`);
  };
  const sameSince = (step: string): void => {
    assert.equal(ours.since.value, model.since, `${step}: since`);
    assert.equal(theirs.since.value, model.since, `${step}: upstream since`);
  };
  const bound = (value: Bound): number => {
    if (value.kind === 'edge') return value.value;
    const record = value.kind === 'record' || value.kind === 'inside' ? model.pick(value.pick) : undefined;
    if (value.kind === 'past') return model.size + value.delta;
    if (value.kind === 'inside' && record !== undefined) return record.seq + 1 + (value.delta % (record.size - 1));
    return record?.seq ?? 0;
  };
  /** Upstream's items without what it should have left out: deleted records' seqs in a `values: false` stream. */
  const withoutDeleted = (items: unknown[], shape: string): unknown[] =>
    shape === 'seqs' ? items.filter((seq) => !model.isDeleted(seq as number)) : items;
  const shapeOptions = (shape: string): FlumeStreamOptions =>
    shape === 'both' ? { seqs: true, values: true } : shape === 'seqs' ? { values: false } : shape === 'values' ? { seqs: false } : {};

  const closeLives = async (step: string): Promise<void> => {
    for (const live of lives) {
      const expected = model.records.filter((record) => {
        if (record.deleted) return false;
        const { gt, gte } = live.options;
        if (typeof gt === 'number' && record.seq <= gt) return false;
        if (typeof gte === 'number' && record.seq < gte) return false;
        return !(live.spec.lower === 'new' && record.seq <= live.since);
      }).length;
      // Both hand over what they have in a few turns; neither is given longer than it needs to be compared.
      for (let turn = 0; turn < 2000 && (live.ours.length < expected || withoutDeleted(live.theirs, live.spec.shape).length < expected); turn++) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      live.abort();
      assert.deepEqual(live.ours, withoutDeleted(live.theirs, live.spec.shape), `${step}: live ${JSON.stringify(live.options)}`);
      assert.equal(JSON.stringify(live.ours), JSON.stringify(withoutDeleted(live.theirs, live.spec.shape)), `${step}: live as JSON`);
      assert.equal(live.ours.length, expected, `${step}: live ${JSON.stringify(live.options)} count`);
    }
    lives = [];
  };

  const append = async (call: AppendCall): Promise<{ ours: number; theirs: number; seq: number }> => {
    const encoded = call.values.map(encodeValue);
    const input = call.batch ? encoded : encoded[0];
    const [ourSeq, theirSeq] = await Promise.all([
      new Promise<number>((resolve, reject) => ours.append(input, (error, seq) => (error ? reject(error) : resolve(seq as number)))),
      new Promise<number>((resolve, reject) => theirs.append(input, (error, seq) => (error ? reject(error) : resolve(seq)))),
    ]);
    let seq = -1;
    for (const value of call.values) seq = model.add(payloadBytes(value));
    return { ours: ourSeq, theirs: theirSeq, seq };
  };

  for (const [index, op] of ops.entries()) {
    const step = `step ${index} (${op.op})`;
    switch (op.op) {
      case 'append': {
        const result = await append(op.call);
        assert.equal(result.ours, result.seq, `${step}: our seq`);
        assert.equal(result.theirs, result.seq, `${step}: their seq`);
        sameFiles(step);
        break;
      }
      case 'concurrent': {
        // Issued in the same turn, called back in order; upstream merges them into one write.
        const encodedCalls = op.calls.map((call) => {
          const encoded = call.values.map(encodeValue);
          return call.batch ? encoded : encoded[0];
        });
        const ourSeqs = Promise.all(
          encodedCalls.map((input) => new Promise<number>((resolve, reject) => ours.append(input, (error, seq) => (error ? reject(error) : resolve(seq as number))))),
        );
        const theirSeqs = Promise.all(
          encodedCalls.map((input) => new Promise<number>((resolve, reject) => theirs.append(input, (error, seq) => (error ? reject(error) : resolve(seq))))),
        );
        const [mine, upstream] = await Promise.all([ourSeqs, theirSeqs]);
        const expected = op.calls.map((call) => {
          let seq = -1;
          for (const value of call.values) seq = model.add(payloadBytes(value));
          return seq;
        });
        assert.deepEqual(mine, expected, `${step}: our seqs`);
        assert.equal(upstream[upstream.length - 1], model.since, `${step}: their last seq`);
        sameFiles(step);
        break;
      }
      case 'get': {
        const target = op.target;
        if (target.kind === 'inside') {
          const record = model.pick(target.pick);
          if (record === undefined) break;
          const offset = record.seq + 1 + (target.delta % (record.size - 1));
          const expected = offset > model.since ? 'OFFSET_OUT_OF_RANGE' : 'NOT_A_RECORD';
          assert.equal(await sluiceCode((cb) => ours.get(offset, cb)), expected, `${step}: get ${offset}`);
          break;
        }
        const offset = target.kind === 'record' ? (model.pick(target.pick)?.seq ?? 0) : model.size + target.delta;
        const mine = await outcome((cb) => ours.get(offset, cb));
        // Upstream is asked only where it answers: in its last block, and not before the first record's length.
        if (Math.floor(offset / blockSize) <= Math.floor(model.size / blockSize) && (model.size > 0 || offset === 0)) {
          assert.deepEqual(mine, await outcome((cb) => theirs.get(offset, cb)), `${step}: get ${offset}`);
        }
        if (offset > model.since) assert.equal(await sluiceCode((cb) => ours.get(offset, cb)), 'OFFSET_OUT_OF_RANGE');
        else assert.equal('error' in mine ? mine.error : 'value', model.isDeleted(offset) ? 'deleted' : 'value', `${step}: get ${offset}`);
        break;
      }
      case 'stream': {
        const { spec } = op;
        const options: Record<string, unknown> = { reverse: spec.reverse, ...shapeOptions(spec.shape) };
        if (spec.lower !== 'none') options[spec.lower] = bound(spec.lowerBound);
        if (spec.upper !== 'none') options[spec.upper] = bound(spec.upperBound);
        if (spec.limit !== undefined) options.limit = spec.limit;
        const mine = await collect(ours.stream(options));
        // Upstream's bounds hand out records outside the range (see above): its whole stream in the same direction
        // and shape is cut to the range here.
        const all = await collect<{ seq: number }>(theirs.stream({ reverse: spec.reverse }));
        const shaped = withoutDeleted(await collect(theirs.stream({ reverse: spec.reverse, ...shapeOptions(spec.shape) })), spec.shape);
        assert.equal(shaped.length, all.length, `${step}: upstream's shaped stream`);
        const inRange = ({ seq }: { seq: number }): boolean =>
          !(typeof options.gt === 'number' && seq <= options.gt) &&
          !(typeof options.gte === 'number' && seq < options.gte) &&
          !(typeof options.lt === 'number' && seq >= options.lt) &&
          !(typeof options.lte === 'number' && seq > options.lte);
        const reference = shaped.filter((_, i) => inRange(all[i] as { seq: number }));
        // Upstream counts deleted records against the limit: the reference is cut after them.
        const limit = options.limit;
        const cut = typeof limit === 'number' && limit > 0 ? reference.slice(0, limit) : reference;
        assert.deepEqual(mine, cut, `${step}: stream ${JSON.stringify(options)}`);
        // The items' keys in the same order too (what JSON and RPC streams show).
        assert.equal(JSON.stringify(mine), JSON.stringify(cut), `${step}: stream ${JSON.stringify(options)} as JSON`);
        break;
      }
      case 'live': {
        const { spec } = op;
        if (spec.lower === 'new' && model.since < 0) break; // upstream crashes there (README)
        const options: Record<string, unknown> = { live: true, ...shapeOptions(spec.shape) };
        if (spec.lower === 'new') options.old = false;
        // A live stream reads from its bound on: upstream is given record starts only.
        else if (spec.lower !== 'none') options[spec.lower] = spec.lowerBound.kind === 'past' || spec.lowerBound.kind === 'inside' ? bound({ kind: 'record', pick: spec.lowerBound.delta }) : bound(spec.lowerBound);
        const live = { spec, options, since: model.since, ours: [] as unknown[], theirs: [] as unknown[] };
        const abortOurs = drain(ours.stream(options), live.ours);
        const abortTheirs = drain(theirs.stream(options), live.theirs);
        lives.push({ ...live, abort: () => (abortOurs(), abortTheirs()) });
        break;
      }
      case 'del': {
        if (model.records.length === 0) break;
        // A delete racing a live stream's reads decides what it hands over: live streams are compared first.
        await closeLives(step);
        const seqs = [...new Set(op.picks.map((pick) => (model.pick(pick) as ModelRecord).seq))];
        const input = seqs.length === 1 ? seqs[0] : seqs;
        await Promise.all([
          new Promise<void>((resolve, reject) => ours.del(input as number, (error) => (error ? reject(error) : resolve()))),
          new Promise<void>((resolve, reject) => theirs.del(input as number, (error) => (error ? reject(error) : resolve()))),
        ]);
        for (const record of model.records) if (seqs.includes(record.seq)) record.deleted = true;
        sameFiles(step);
        // flumelog-offset keeps the later blocks of a record that spans blocks in its cache: read it afresh.
        theirs = await openTheirs();
        break;
      }
      case 'delInvalid': {
        const target = op.target;
        const record = model.pick(target.kind === 'record' ? target.pick : 0);
        const offset =
          target.kind === 'past' ? model.size + target.delta : record === undefined ? 0 : record.seq + 1 + ((target.kind === 'inside' ? target.delta : 0) % (record.size - 1));
        const expected = offset > model.since ? 'OFFSET_OUT_OF_RANGE' : 'NOT_A_RECORD';
        assert.equal(await sluiceCode((cb) => ours.del(offset, cb)), expected, `${step}: del ${offset}`);
        sameFiles(step);
        break;
      }
      case 'reopen': {
        await closeLives(step);
        await new Promise<void>((resolve, reject) => ours.close((error) => (error ? reject(error) : resolve())));
        // flumelog-offset has no close: it has nothing in flight, and is dropped.
        const last = model.records[model.records.length - 1];
        // (Not the only record: upstream's walk back through a file without a whole record reads before byte 0.)
        if (op.cut !== undefined && last !== undefined && model.records.length > 1) {
          // A torn last write: the same bytes cut from both files, which both must recover from alike.
          const cut = 1 + (op.cut % (last.size - 1));
          for (const file of files) truncateSync(file, model.size - cut);
          model.dropLast();
        }
        if (op.swap) [theirFile, ourFile] = [ourFile, theirFile];
        theirs = await openTheirs();
        ours = await openOurs();
        sameSince(step);
        assert.deepEqual(await collect(ours.stream()), await collect(theirs.stream()), `${step}: streams after reopening`);
        break;
      }
    }
    sameSince(step);
  }
  await closeLives('end');
  // Each reads the other's file as it reads its own.
  const [mine, upstream] = [await collect(ours.stream({ reverse: true })), await collect(theirs.stream({ reverse: true }))];
  assert.deepEqual(mine, upstream, 'reversed streams at the end');
  await new Promise<void>((resolve, reject) => ours.close((error) => (error ? reject(error) : resolve())));
  if (model.size > 0) {
    const crossed = await (async () => {
      [theirFile, ourFile] = [ourFile, theirFile];
      return Promise.all([openTheirs(), openOurs()]);
    })();
    theirs = crossed[0];
    ours = crossed[1];
    assert.deepEqual(await collect(ours.stream()), await collect(theirs.stream()), 'streams of the swapped files');
    await new Promise<void>((resolve, reject) => ours.close((error) => (error ? reject(error) : resolve())));
  }
  sameFiles('end');
}

describe('OffsetLog against flumelog-offset 3.4.4 (differential)', () => {
  it('gives the same results and the same bytes for random operation sequences', async () => {
    const root = temporaryDirectory('sluice-flume-differential-');
    let count = 0;
    const result = await fc.check(
      fc.asyncProperty(runArb, async ({ width, codec, ops }) => {
        await runSequence(join(root, `run-${count++}`), width, codec, ops);
      }),
      { seed, numRuns, endOnFailure: true },
    );
    // The counterexample holds values of up to 40,000 characters: the report names the ops, not their values.
    if (result.failed) {
      const example = result.counterexample?.[0];
      const ops = example?.ops.map((op) => op.op).join(', ');
      assert.fail(
        `seed ${String(result.seed)}, path ${String(result.counterexample === null ? '' : result.counterexamplePath)}: ` +
          `width ${String(example?.width)}, codec ${String(example?.codec)}, ops [${String(ops)}]\n${String(result.errorInstance)}`,
      );
    }
  });
});
