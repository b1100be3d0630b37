/**
 * Hostile values: records, record keys, index keys, query objects and view names made of `__proto__`,
 * `constructor` and `prototype` go through every layer that builds objects from data (the JSON codec, reduce
 * states and their state files, the index, key and query views, `$filter` / `$map` / `$reduce`, `sluice/flume`,
 * `stat` and `check`). Each answer must be the one computed by hand, and `Object.prototype` must be untouched.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { Flume } from '../../src/flume/flume.js';
import { MemoryLog as FlumeMemoryLog } from '../../src/flume/logs.js';
import type { JsonValue } from '../../src/codec/codec.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { check } from '../../src/ops/check.js';
import { stat } from '../../src/ops/stat.js';
import { index } from '../../src/views/index-view.js';
import { keyIndex } from '../../src/views/key-time-index.js';
import { query } from '../../src/views/query/index.js';
import { reduce } from '../../src/views/reduce.js';
import { temporaryDirectory } from '../helpers.js';
import { objectPrototypeNames } from './engine.js';

const root = temporaryDirectory('sluice-hostile-values-');
let count = 0;
const fresh = (): string => join(root, `db-${count++}`);
const hostileKeys = ['__proto__', 'constructor', 'prototype'] as const;

/** Values as they arrive from outside: parsed JSON, so `__proto__` is an own key (a literal would set the prototype). */
const records: JsonValue[] = [
  JSON.parse('{"__proto__": {"polluted": "yes"}, "kind": "__proto__", "n": 1}') as JsonValue,
  JSON.parse('{"constructor": {"prototype": {"polluted": "yes"}}, "kind": "constructor", "n": 2}') as JsonValue,
  JSON.parse('{"prototype": {"polluted": "yes"}, "kind": "prototype", "n": 3}') as JsonValue,
  JSON.parse('{"kind": "__proto__", "n": 4, "nested": {"__proto__": {"polluted": "yes"}}}') as JsonValue,
];

function assertUnpolluted(): void {
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), objectPrototypeNames, 'Object.prototype keeps its properties');
  const probe: Record<string, unknown> = {};
  assert.equal(probe.polluted, undefined, 'no property leaked into plain objects');
  assert.equal(Object.getPrototypeOf(probe), Object.prototype);
}

afterEach(assertUnpolluted);

async function collect<R>(results: AsyncIterable<R>): Promise<R[]> {
  const found: R[] = [];
  for await (const result of results) found.push(result);
  return found;
}

describe('hostile values', () => {
  it('round-trip through the log and its JSON codec as own properties', async () => {
    const log = await FileLog.open(fresh());
    try {
      const offsets = await log.append(records, { key: '__proto__' });
      for (const [i, offset] of offsets.entries()) {
        const value = await log.get(offset);
        assert.deepEqual(value, records[i]);
        assert.equal(Object.getPrototypeOf(value), Object.prototype, 'the codec never sets a prototype');
      }
      assert.deepEqual((await collect(log.stream())).map((record) => record.value), records);
    } finally {
      await log.close();
    }
  });

  it('reduce states keyed by hostile kinds persist and restore as data', async () => {
    const dir = fresh();
    const counter = () =>
      reduce<JsonValue, Record<string, number>, string>(
        1,
        (counts, kind) => ({ ...counts, [kind]: (Object.hasOwn(counts, kind) ? (counts[kind] as number) : 0) + 1 }),
        { initial: {}, map: (value) => (value as { kind: string }).kind },
      );
    const expected = JSON.parse('{"__proto__": 2, "constructor": 1, "prototype": 1}') as Record<string, number>;
    {
      const db = await Sluice.open(dir);
      assert.throws(() => db.use('__proto__', counter()), TypeError, 'a view name that is a prototype key');
      const view = db.use('counts', counter());
      await db.append(records);
      assert.deepEqual(await view.get(), expected);
      await db.close();
    }
    const db = await Sluice.open(dir);
    const reports: string[] = [];
    db.on('report', ({ message }) => reports.push(message));
    const view = db.use('counts', counter());
    const restored = await view.get();
    assert.deepEqual(restored, expected, 'restored from the state file');
    assert.equal(Object.getPrototypeOf(restored), Object.prototype);
    assert.deepEqual(reports, [], 'restored, not rebuilt');
    const report = await stat(dir);
    assert.deepEqual(
      report.views.map((v) => [v.name, v.since]),
      [['counts', (await collect(db.stream({ reverse: true, limit: 1 })))[0]?.offset]],
    );
    assert.equal((await check(dir)).healthy, true);
    await db.close();
  });

  it('index, key index and query views with hostile keys and query objects', async () => {
    const db = await Sluice.open(fresh());
    try {
      const byKind = db.use('byKind', index<JsonValue>(1, (value) => [(value as { kind: string }).kind, (value as { n: number }).n]));
      const byKey = db.use('byKey', keyIndex<JsonValue>(1));
      const q = db.use('q', query<JsonValue>(1, { indexes: [{ name: 'kind', value: [['value', 'kind']] }] }));
      const offsets: number[] = [];
      for (const [i, value] of records.entries()) offsets.push(await db.append(value, { key: hostileKeys[i % 3] as string }));
      for (const [i, value] of records.entries()) {
        const entry = await byKind.get([(value as { kind: string }).kind, (value as { n: number }).n]);
        assert.equal(entry?.offset, offsets[i]);
      }
      assert.equal((await byKey.last('__proto__'))?.offset, offsets[3]);
      assert.equal((await byKey.last('constructor'))?.offset, offsets[1]);
      assert.equal(await byKey.last('toString'), undefined);

      const run = (text: string) => collect(q.read({ query: JSON.parse(text) as never }));
      // Equality on a field named __proto__ (own key of the filter and of the values).
      assert.deepEqual(
        (await run('[{"$filter": {"value": {"__proto__": {"polluted": "yes"}}}}, {"$map": ["value", "n"]}]')),
        [1],
      );
      assert.deepEqual(await run('[{"$filter": {"value": {"kind": "__proto__"}}}, {"$map": ["value", "n"]}]'), [1, 4]);
      assert.deepEqual(await run('[{"$filter": {"value": {"kind": "toString"}}}]'), []);
      // A path through an inherited property finds nothing: only own properties are data.
      assert.deepEqual(await run('[{"$map": ["value", "constructor", "name"]}]'), []);
      assert.deepEqual(await run('[{"$map": ["value", "__proto__", "polluted"]}]'), ['yes']);
      // $map objects and $reduce groups whose output keys are hostile are own properties of fresh objects.
      const mapped = await run('[{"$map": {"__proto__": ["value", "n"], "constructor": ["value", "kind"]}}]');
      assert.equal(mapped.length, 4);
      for (const row of mapped as Array<Record<string, unknown>>) {
        assert.ok(Object.hasOwn(row, '__proto__') && Object.hasOwn(row, 'constructor'));
        assert.equal(Object.getPrototypeOf(row), Object.prototype);
      }
      const grouped = (await run('[{"$reduce": {"__proto__": ["value", "kind"], "prototype": {"$count": true}}}]')) as Array<Record<string, unknown>>;
      assert.deepEqual(
        grouped.map((row) => [row['__proto__'], row['prototype']]),
        [
          ['__proto__', 2],
          ['constructor', 1],
          ['prototype', 1],
        ],
      );
      // A field object with a __proto__ key is equality on nested data, never an operator or a prototype.
      assert.deepEqual(await run('[{"$filter": {"value": {"n": {"__proto__": 1}}}}]'), []);
      assert.throws(() => q.read({ query: JSON.parse('[{"$filter": {"value": {"n": {"$__proto__": 1}}}}]') as never }), TypeError);
    } finally {
      await db.close();
    }
  });

  it('sluice/flume: hostile view names are refused and hostile values stay data', async () => {
    const db = Flume<JsonValue>(FlumeMemoryLog({ codec: { encode: JSON.stringify, decode: JSON.parse as (s: unknown) => JsonValue } }));
    for (const name of ['__proto__', 'constructor', 'hasOwnProperty', 'views', 'append', '../outside', 'a/b', 'a\\b', '..', 'a\0b']) {
      assert.throws(() => db.use(name, () => ({}) as never), TypeError, name);
    }
    const seq = await new Promise<number>((resolve, reject) =>
      db.append(records[0] as JsonValue, (error: Error | null, value?: number) => (error ? reject(error) : resolve(value as number))),
    );
    const value = await new Promise<unknown>((resolve, reject) =>
      db.get(seq, (error: Error | null, got?: unknown) => (error ? reject(error) : resolve(got))),
    );
    assert.deepEqual(value, records[0]);
    await new Promise<void>((resolve) => db.close(() => resolve()));
  });
});
