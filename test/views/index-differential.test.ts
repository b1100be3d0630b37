/**
 * Differential property test of the index, key index and time index views: random sequences of operations run on
 * a database over the native log (4 KiB segments, so that segments roll over all the time), and every read is
 * compared with a naive model computed from the records the log still holds. Operations: appends (single and
 * batches; with and without record keys; times given, equal and out of order), deletes, trims, compactions,
 * closes and reopens, a version bump (a rebuild), and reads: `get`, ranges with random bounds of mixed key types
 * (numbers, negative numbers, strings sharing prefixes, empty strings, unicode, arrays), reversed and limited, live
 * ranges while records are appended, and the key and time index reads.
 *
 * The model of the index view follows its documented semantics: a key points at the last record that produced
 * it; a deleted record's entries go, and a key it took over from an earlier record is not given back (README,
 * "index"); a rebuild recomputes the entries from the records left; entries of records no longer in the log
 * (trimmed, deleted, dropped by a compaction) are never returned.
 *
 * Reproducible: fixed seed. To explore further: SLUICE_INDEX_DIFFERENTIAL_SEED and SLUICE_INDEX_DIFFERENTIAL_RUNS.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import fc from 'fast-check';
import { Sluice } from '../../src/db/sluice.js';
import { FileLog } from '../../src/log/file/file-log.js';
import type { LogRecord } from '../../src/log/log.js';
import { index, type IndexKey, type IndexRange, type IndexView } from '../../src/views/index-view.js';
import { keyIndex, timeIndex, type KeyIndexView, type TimeIndexView } from '../../src/views/key-time-index.js';
import { temporaryDirectory } from '../helpers.js';

const seed = Number(process.env.SLUICE_INDEX_DIFFERENTIAL_SEED ?? 7);
const numRuns = Number(process.env.SLUICE_INDEX_DIFFERENTIAL_RUNS ?? 20);
const opsMax = 40;
const segmentBytesMax = 4096;
/** Turns a live read may take to deliver what the model expects before it is judged (a bound, not a timing). */
const liveTurnsMax = 2000;

type Part = string | number;
/** What a record's value says `map` returns: no key, one key, or a list of keys (possibly empty). */
type KeySpec = null | Part | Part[] | Part[][];

interface Doc {
  readonly n: number;
  readonly k: KeySpec;
  /** `map` negates the numbers of `k` (a 0 becomes -0, which JSON cannot carry). */
  readonly f: boolean;
  readonly pad: string;
}

// Key parts: strings sharing prefixes, the empty string, characters the key encoding escapes, unicode beyond the
// Basic Multilingual Plane (which sorts after U+FFFF as bytes but before it as UTF-16), long strings with and
// without those characters (`ordered-binary` escapes them only in short ones), numbers of both signs.
const strings = ['', 'a', 'ab', 'abc', 'b', 'é', '中', '\uffff', '😀', '\u0001', '\u001b', 'a\u0000b', 'a'.repeat(70), `${'a'.repeat(70)}\u0000b`, `\u0002${'a'.repeat(70)}`];
const numbers = [0, 1, -1, 2.5, -2.5, 1000, -1e-7, 1e21];
const partArb: fc.Arbitrary<Part> = fc.oneof(fc.constantFrom(...strings), fc.constantFrom(...numbers));
/** An array key: two or three parts (one-part arrays are left out: see README, "index"). */
const arrayKeyArb = fc.array(partArb, { minLength: 2, maxLength: 3 });
const keyArb: fc.Arbitrary<Part | Part[]> = fc.oneof(partArb, arrayKeyArb);
const keySpecArb: fc.Arbitrary<KeySpec> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 3, arbitrary: partArb },
  { weight: 2, arbitrary: arrayKeyArb },
  { weight: 1, arbitrary: fc.array(arrayKeyArb, { maxLength: 3 }) },
);
const recordKeyArb = fc.constantFrom(undefined, 'a', 'b', 'ab', '😀', '');
const timeArb = fc.constantFrom(0, 999, 1000, 1000, 1001, 5000);
const itemArb = fc.record({
  k: keySpecArb,
  f: fc.boolean(),
  pad: fc.nat({ max: 600 }),
  key: recordKeyArb,
  time: timeArb,
});
type Item = typeof itemArb extends fc.Arbitrary<infer I> ? I : never;

const boundArb = fc.record({
  low: fc.constantFrom('none', 'gt', 'gte'),
  lowKey: keyArb,
  high: fc.constantFrom('none', 'lt', 'lte'),
  highKey: keyArb,
  reverse: fc.boolean(),
  limit: fc.option(fc.nat({ max: 4 }), { nil: undefined }),
});
type Bounds = typeof boundArb extends fc.Arbitrary<infer B> ? B : never;

const opArb = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('append' as const), items: fc.array(itemArb, { minLength: 1, maxLength: 6 }), batch: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), picks: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('trim' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('compact' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reopen' as const), bump: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('get' as const), key: keyArb, pick: fc.option(fc.nat(), { nil: undefined }) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('range' as const), bounds: boundArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('live' as const), bounds: boundArb, items: fc.array(itemArb, { minLength: 1, maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('byKey' as const), key: recordKeyArb, pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('byTime' as const), from: timeArb, to: timeArb }) },
);
type Op = typeof opArb extends fc.Arbitrary<infer O> ? O : never;

// ---------------------------------------------------------------------------------------------------------------
// Keys as the documentation orders them: numbers before strings, numbers by value (-0 is 0), strings by code
// point (their UTF-8 bytes), arrays part by part with a shorter array first; a scalar compares as a one-part array.

function normal(key: Part | readonly Part[]): Part | Part[] {
  const part = (p: Part): Part => (Object.is(p, -0) ? 0 : p);
  return Array.isArray(key) ? key.map(part) : part(key as Part);
}

function compareParts(a: Part, b: Part): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'number') return -1;
  if (typeof b === 'number') return 1;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function compareKeys(a: IndexKey, b: IndexKey): number {
  const x = (Array.isArray(a) ? a : [a]) as readonly Part[];
  const y = (Array.isArray(b) ? b : [b]) as readonly Part[];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const order = compareParts(x[i] as Part, y[i] as Part);
    if (order !== 0) return order;
  }
  return x.length - y.length;
}

/** The keys `map` gives a record, as the documentation reads its result. */
function keysOf(doc: Doc): Array<Part | Part[]> {
  const flip = (p: Part): Part => (doc.f && typeof p === 'number' ? -p : p);
  const k = doc.k;
  if (k === null) return [];
  if (!Array.isArray(k)) return [flip(k)];
  if (k.length === 0 || k.every((item) => Array.isArray(item))) return (k as Part[][]).map((key) => key.map(flip));
  return [k.map(flip)];
}

function mapOf(doc: Doc): IndexKey | IndexKey[] | undefined {
  const keys = keysOf(doc);
  if (doc.k === null) return undefined;
  return Array.isArray(doc.k) && (doc.k.length === 0 || doc.k.every((item) => Array.isArray(item))) ? keys : keys[0];
}

// ---------------------------------------------------------------------------------------------------------------
// The model: every record appended, which of them the log still holds, and the index view's entries as its
// history made them (key → offset).

interface Stored {
  readonly offset: number;
  readonly value: Doc;
  readonly time: number;
  readonly key: string | undefined;
}

class Model {
  readonly records: Stored[] = [];
  /** Offsets of the records the log holds (refreshed from the log after each deletion, trim and compaction). */
  present = new Set<number>();
  /** The index view's entries: normalised key (JSON) → [key, offset]. */
  entries = new Map<string, [Part | Part[], number]>();

  add(record: Stored): void {
    this.records.push(record);
    this.present.add(record.offset);
    for (const key of keysOf(record.value)) this.entries.set(JSON.stringify(normal(key)), [normal(key), record.offset]);
  }

  delete(offsets: ReadonlySet<number>): void {
    for (const [name, [, offset]] of this.entries) if (offsets.has(offset)) this.entries.delete(name);
  }

  rebuild(): void {
    const left = this.held();
    this.entries = new Map();
    for (const record of left) for (const key of keysOf(record.value)) this.entries.set(JSON.stringify(normal(key)), [normal(key), record.offset]);
  }

  held(): Stored[] {
    return this.records.filter((record) => this.present.has(record.offset));
  }

  byOffset(offset: number): Stored {
    return this.records.find((record) => record.offset === offset) as Stored;
  }

  /** Entries in key order whose records the log still holds. */
  sorted(): Array<[Part | Part[], number]> {
    return [...this.entries.values()].filter(([, offset]) => this.present.has(offset)).sort((a, b) => compareKeys(a[0], b[0]));
  }
}

function rangeOf(bounds: Bounds): IndexRange {
  return {
    ...(bounds.low === 'none' ? {} : { [bounds.low]: bounds.lowKey }),
    ...(bounds.high === 'none' ? {} : { [bounds.high]: bounds.highKey }),
    ...(bounds.reverse ? { reverse: true } : {}),
    ...(bounds.limit === undefined ? {} : { limit: bounds.limit }),
  };
}

function inRange(key: IndexKey, bounds: Bounds): boolean {
  const low = compareKeys(key, normal(bounds.lowKey));
  const high = compareKeys(key, normal(bounds.highKey));
  if ((bounds.low === 'gt' && low <= 0) || (bounds.low === 'gte' && low < 0)) return false;
  if ((bounds.high === 'lt' && high >= 0) || (bounds.high === 'lte' && high > 0)) return false;
  return true;
}

function expectedRange(model: Model, bounds: Bounds): Array<[unknown, number]> {
  const within = model.sorted().filter(([key]) => inRange(key, bounds));
  if (bounds.reverse) within.reverse();
  return within.slice(0, bounds.limit ?? Infinity);
}

// ---------------------------------------------------------------------------------------------------------------
// The database under test.

interface Views {
  readonly idx: IndexView<Doc>;
  readonly byKey: KeyIndexView<Doc>;
  readonly byTime: TimeIndexView<Doc>;
}

interface Run {
  readonly dir: string;
  db: Sluice<Doc>;
  log: FileLog<Doc>;
  views: Views;
  version: number;
  readonly failures: string[];
}

async function open(run: Pick<Run, 'dir' | 'version' | 'failures'>): Promise<{ db: Sluice<Doc>; log: FileLog<Doc>; views: Views }> {
  const log = await FileLog.open<Doc>(join(run.dir, 'log'), { segmentBytesMax });
  const db = await Sluice.open<Doc>(join(run.dir, 'db'), { log });
  db.on('view-error', ({ view, error }) => run.failures.push(`${view}: ${error.message}`));
  const views = {
    idx: db.use('idx', index<Doc>(run.version, (doc) => mapOf(doc))),
    byKey: db.use('byKey', keyIndex<Doc>(run.version)),
    byTime: db.use('byTime', timeIndex<Doc>(run.version)),
  };
  return { db, log, views };
}

async function collect<R>(results: AsyncIterable<R>): Promise<R[]> {
  const found: R[] = [];
  for await (const result of results) found.push(result);
  return found;
}

/** What the runs exercised, reported as a diagnostic (a run that reads nothing proves little). */
const coverage = new Map<string, number>();
const count = (what: string, n = 1): void => void coverage.set(what, (coverage.get(what) ?? 0) + n);

const entry = ({ key, offset, value }: { key: unknown; offset: number; value: Doc }): [unknown, number, number] => [normalKey(key), offset, value.n];
const normalKey = (key: unknown): unknown => normal(key as Part | Part[]);
let serial = 0;

async function append(run: Run, model: Model, items: readonly Item[], batch: boolean): Promise<void> {
  const docs = items.map((item): Doc => ({ n: serial++, k: item.k, f: item.f, pad: 'x'.repeat(item.pad) }));
  const keys = items.map((item) => item.key);
  const times = items.map((item) => item.time);
  const offsets = batch
    ? await run.db.append(docs, { key: keys, time: times })
    : await Promise.all(docs.map((doc, i) => run.db.append(doc, { ...(keys[i] === undefined ? {} : { key: keys[i] }), time: times[i] as number })));
  offsets.forEach((offset, i) => model.add({ offset, value: docs[i] as Doc, time: times[i] as number, key: keys[i] }));
}

/** The log's records now (it is the log's to say what a trim or compaction dropped; its own tests check that). */
async function refresh(run: Run, model: Model): Promise<void> {
  const offsets = (await collect(run.db.stream())).map((record) => record.offset);
  for (const offset of offsets) assert.ok(model.present.has(offset), `the log holds ${offset}, which the model had not kept`);
  model.present = new Set(offsets);
}

async function step(run: Run, model: Model, op: Op, label: string): Promise<void> {
  const { idx, byKey, byTime } = run.views;
  switch (op.op) {
    case 'append':
      await append(run, model, op.items, op.batch);
      break;
    case 'delete': {
      const held = model.held();
      if (held.length === 0) return;
      const offsets = new Set(op.picks.map((pick) => (held[pick % held.length] as Stored).offset));
      // Deleted once applied: a record deleted before the view reaches it is never applied, so a key it would have
      // taken over stays with the earlier record, which the model (which applies every record at once) would not say.
      await run.db.ready();
      await run.db.delete([...offsets]);
      model.delete(offsets);
      count('records deleted', offsets.size);
      await refresh(run, model);
      break;
    }
    case 'trim': {
      const held = model.held();
      if (held.length === 0) return;
      // Before a record of the later half, so that whole sealed segments go (the trim keeps the one it is in).
      await run.log.trim({ beforeOffset: (held[held.length - 1 - (op.pick % Math.ceil(held.length / 2))] as Stored).offset });
      await refresh(run, model);
      count('records trimmed', held.length - model.held().length);
      break;
    }
    case 'compact': {
      if (!model.held().some((record) => record.key !== undefined && record.key !== '')) return;
      const before = model.held().length;
      await run.log.compact();
      await refresh(run, model);
      count('records compacted away', before - model.held().length);
      break;
    }
    case 'reopen':
      await run.db.close();
      if (op.bump) run.version++;
      Object.assign(run, await open(run));
      if (op.bump) model.rebuild();
      count(op.bump ? 'rebuilds' : 'reopens');
      break;
    case 'get': {
      const held = model.held();
      const picked = op.pick === undefined || held.length === 0 ? undefined : keysOf((held[op.pick % held.length] as Stored).value)[0];
      const key = picked ?? op.key;
      const found = model.entries.get(JSON.stringify(normal(key)));
      const expected = found === undefined || !model.present.has(found[1]) ? undefined : [normal(key), found[1], model.byOffset(found[1]).value.n];
      const actual = await idx.get(key);
      count(expected === undefined ? 'gets of no entry' : 'gets of an entry');
      assert.deepEqual(actual === undefined ? undefined : entry(actual), expected, `${label}: get(${JSON.stringify(key)})`);
      break;
    }
    case 'range': {
      const range = rangeOf(op.bounds);
      const expected = expectedRange(model, op.bounds).map(([key, offset]) => [key, offset, model.byOffset(offset).value.n]);
      assert.deepEqual((await collect(idx.read(range))).map(entry), expected, `${label}: read(${JSON.stringify(range)})`);
      count('range entries', expected.length);
      break;
    }
    case 'live':
      await live(run, model, op.bounds, op.items, label);
      break;
    case 'byKey': {
      const held = model.held();
      const key = op.key ?? 'a';
      if (key === '') return;
      const ofKey = held.filter((record) => record.key === key).map((record) => record.offset);
      const from = held.length === 0 ? 0 : (held[op.pick % held.length] as Stored).offset;
      assert.equal((await byKey.last(key))?.offset, ofKey[ofKey.length - 1], `${label}: last(${key})`);
      const records = await collect(byKey.records(key, from));
      count('key index records', records.length);
      assert.deepEqual(records.map((record: LogRecord<Doc>) => record.offset), ofKey.filter((offset) => offset >= from), `${label}: records(${key}, ${from})`);
      break;
    }
    case 'byTime': {
      const byTimeOrder = model.held().sort((a, b) => a.time - b.time || a.offset - b.offset);
      const first = byTimeOrder.find((record) => record.time >= op.from);
      assert.equal((await byTime.firstAtOrAfter(op.from))?.offset, first?.offset, `${label}: firstAtOrAfter(${op.from})`);
      count('time index records', byTimeOrder.filter((record) => record.time >= op.from && record.time < op.to).length);
      const between = byTimeOrder.filter((record) => record.time >= op.from && record.time < op.to).map((record) => record.offset);
      assert.deepEqual((await collect(byTime.between(op.from, op.to))).map((e) => e.offset), between, `${label}: between(${op.from}, ${op.to})`);
      break;
    }
  }
  assert.deepEqual(run.failures, [], `${label}: no view failed`);
}

/**
 * A live read: the entries in range that exist when it starts, in key order, then those of the records appended
 * meanwhile, in log order (each record's keys in `map`'s order), each exactly once, up to `limit`.
 */
async function live(run: Run, model: Model, bounds: Bounds, items: readonly Item[], label: string): Promise<void> {
  const forward = { ...bounds, reverse: false };
  const range = { ...rangeOf(forward), live: true as const };
  await run.views.idx.get(0); // caught up: the read's snapshot is taken in the turn it starts
  const expected: unknown[] = expectedRange(model, { ...forward, limit: undefined }).map(([key, offset]) => [key, offset, model.byOffset(offset).value.n]);
  const controller = new AbortController();
  const found: unknown[] = [];
  let ended: unknown;
  const reading = (async () => {
    for await (const each of run.views.idx.read({ ...range, signal: controller.signal })) found.push(entry(each));
  })().catch((error: unknown) => (ended = error));
  await new Promise((resolve) => setImmediate(resolve));
  const before = model.records.length;
  await append(run, model, items, true);
  for (const record of model.records.slice(before)) {
    for (const key of keysOf(record.value)) if (inRange(normal(key), forward)) expected.push([normal(key), record.offset, record.value.n]);
  }
  const wanted = expected.slice(0, bounds.limit ?? Infinity);
  await run.views.idx.get(0);
  for (let turn = 0; turn < liveTurnsMax && found.length < wanted.length && ended === undefined; turn++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
  controller.abort();
  await reading;
  if (ended !== undefined) assert.equal((ended as { code?: string }).code, 'ABORTED', `${label}: the live read ended by its signal`);
  assert.deepEqual(found, wanted, `${label}: live read(${JSON.stringify(range)})`);
  count('live entries', wanted.length);
}

it(`index, key and time views agree with a model of the log (seed ${seed}, ${numRuns} runs of up to ${opsMax} operations)`, async (t) => {
  const root = temporaryDirectory('sluice-index-differential-');
  const details = await fc.check(
    fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: opsMax, size: 'max' }), async (ops) => {
      const base = { dir: mkdtempSync(join(root, 'run-')), version: 1, failures: [] as string[] };
      const run: Run = { ...base, ...(await open(base)) };
      const model = new Model();
      try {
        for (const [i, op] of ops.entries()) await step(run, model, op, `op ${i} (${op.op})`);
        // Every entry, then once more after a rebuild from what is left.
        await step(run, model, { op: 'range', bounds: { low: 'none', lowKey: 0, high: 'none', highKey: 0, reverse: false, limit: undefined } }, 'final read');
        await step(run, model, { op: 'reopen', bump: true }, 'final rebuild');
        await step(run, model, { op: 'range', bounds: { low: 'none', lowKey: 0, high: 'none', highKey: 0, reverse: true, limit: undefined } }, 'read after rebuild');
      } finally {
        await run.db.close();
      }
    }),
    { seed, numRuns, includeErrorInReport: true, interruptAfterTimeLimit: 60_000 },
  );
  if (details.failed) throw new Error(fc.defaultReportMessage(details), { cause: details.errorInstance });
  const lines = [...coverage].sort(([a], [b]) => a.localeCompare(b)).map(([what, n]) => `${what}: ${n}`);
  t.diagnostic(`covered: ${lines.join(', ')}`);
});
