/**
 * What the query differential test generates: records (nested objects, strings sharing prefixes and crossing the
 * index's 31-code-point cut, numbers of both signs and fractions, booleans, null, arrays, missing fields, keys
 * and times) and queries over them, some of whose constraints are taken at run time from the records in the log.
 */
import fc from 'fast-check';
import type { JsonValue } from '../../src/codec/codec.js';
import type { Query, QueryRecord } from '../../src/views/query/index.js';
import { order, valueAt } from './query-model.js';

type Path = ReadonlyArray<string | number>;

// ---- Records ------------------------------------------------------------------------------------------------

const stringPool = [
  '', 'a', 'ab', 'abc', 'abd', 'ab\x00', 'b', 'ba', 'B', 'é', 'éa', '😀', '😀b', '\ue000', '\x1b',
  'x'.repeat(30) + 'a', 'x'.repeat(30) + 'ab', 'x'.repeat(31), 'x'.repeat(31) + 'z', 'x'.repeat(29) + '😀',
];
const numberPool = [-1e9, -3, -2.5, -1, -0.5, -1e-7, 0, 1e-7, 0.25, 1, 2, 3, 1e9, 2 ** 53];

const stringArb = fc.constantFrom(...stringPool);
const numberArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...numberPool) },
  { weight: 1, arbitrary: fc.double({ min: -4, max: 4, noNaN: true }) },
);
const scalarArb: fc.Arbitrary<JsonValue> = fc.oneof(stringArb, numberArb, fc.boolean(), fc.constant(null));
/** Any field value: mostly scalars, sometimes an array or an object (always keyed in the same order). */
const anyArb: fc.Arbitrary<JsonValue> = fc.oneof(
  { weight: 6, arbitrary: scalarArb },
  { weight: 1, arbitrary: fc.array(scalarArb, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.record({ x: scalarArb, y: scalarArb }, { requiredKeys: [] }) },
);
const prefer = <V>(preferred: fc.Arbitrary<V>): fc.Arbitrary<V | JsonValue> =>
  fc.oneof({ weight: 4, arbitrary: preferred }, { weight: 1, arbitrary: anyArb });

const valueArb: fc.Arbitrary<JsonValue> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.record(
      {
        a: anyArb,
        s: prefer(stringArb),
        n: prefer(numberArb),
        b: prefer(fc.oneof(fc.boolean(), fc.constant(null))),
        o: prefer(fc.record({ x: anyArb, y: prefer(fc.record({ z: scalarArb }, { requiredKeys: [] })) }, { requiredKeys: [] })),
        t: prefer(fc.array(scalarArb, { maxLength: 3 })),
        // Fills segments, so that trims have whole segments to drop.
        pad: fc.nat({ max: 400 }).map((n) => 'p'.repeat(n)),
      },
      { requiredKeys: ['pad'] },
    ),
  },
  { weight: 1, arbitrary: anyArb },
);

const keyArb = fc.option(fc.constantFrom('k', 'ka', 'kab', 'kb', 'z', 'é'), { nil: undefined });
export const itemArb = fc.record({ value: valueArb, key: keyArb, time: fc.nat({ max: 20 }) });
export type Item = { readonly value: JsonValue; readonly key: string | undefined; readonly time: number };

// ---- Queries ------------------------------------------------------------------------------------------------

/** A range of one type: one or two bounds (mostly low ≤ high), sometimes with a prefix on strings. */
function rangeArb(bound: fc.Arbitrary<string | number>): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .record({
      low: fc.constantFrom('$gt', '$gte', undefined),
      high: fc.constantFrom('$lt', '$lte', undefined),
      bounds: fc.tuple(bound, bound),
      ordered: fc.nat({ max: 4 }),
    })
    .filter(({ low, high }) => low !== undefined || high !== undefined)
    .map(({ low, high, bounds, ordered }) => {
      const [first, second] = ordered > 0 ? [...bounds].sort(order) : bounds;
      const range: Record<string, unknown> = {};
      if (low !== undefined) range[low] = first;
      if (high !== undefined) range[high] = second;
      return range;
    });
}

/**
 * A constraint taken at run time from a record in the log (equality with its value at the constrained path, or a
 * bound at it), so that filters select something more often than values drawn blindly would.
 */
class Picked {
  constructor(
    readonly pick: number,
    readonly operator: '$eq' | '$gt' | '$gte' | '$lt' | '$lte' | '$prefix',
    readonly path: Path = [],
  ) {}
}

const constraintArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: scalarArb },
  {
    weight: 6,
    arbitrary: fc.tuple(fc.nat(), fc.constantFrom('$eq', '$eq', '$gt', '$gte', '$lt', '$lte', '$prefix')).map(([pick, operator]) => new Picked(pick, operator)),
  },
  { weight: 2, arbitrary: rangeArb(numberArb) },
  { weight: 2, arbitrary: rangeArb(stringArb) },
  { weight: 2, arbitrary: stringArb.map(($prefix) => ({ $prefix })) },
  { weight: 1, arbitrary: fc.tuple(stringArb, rangeArb(stringArb)).map(([$prefix, range]) => ({ $prefix, ...range })) },
  { weight: 1, arbitrary: fc.array(scalarArb, { maxLength: 2 }) },
  { weight: 1, arbitrary: fc.constantFrom({}, { x: 1 }, { x: 'a' }) },
);

const filterPaths: Path[] = [
  ['value', 'a'], ['value', 's'], ['value', 'n'], ['value', 'b'], ['value', 'o', 'x'], ['value', 'o', 'y', 'z'],
  ['value', 't', 0], ['value', 't'], ['value', 'o'], ['key'], ['time'],
];
const filterConstraintArb = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(fc.constantFrom(...filterPaths), constraintArb) },
  { weight: 1, arbitrary: fc.tuple(fc.constant(['key'] as Path), fc.constantFrom<unknown>('k', 'kab', { $prefix: 'k' }, { $gte: 'ka' })) },
  { weight: 1, arbitrary: fc.tuple(fc.constant(['time'] as Path), rangeArb(fc.nat({ max: 20 }))) },
  { weight: 1, arbitrary: fc.tuple(fc.constant(['offset'] as Path), rangeArb(fc.nat({ max: 12_000 }))) },
);

/** Sets `constraint` at `path` in `filter`, unless it would overlap a constraint already there. */
function constrain(filter: Record<string, unknown>, path: Path, constraint: unknown): void {
  let node = filter;
  for (const [at, part] of path.entries()) {
    const last = at === path.length - 1;
    if (Object.hasOwn(node, part)) {
      const next = node[part];
      if (last || typeof next !== 'object' || next === null || Array.isArray(next) || Object.keys(next).some((key) => key.startsWith('$'))) return;
      node = next as Record<string, unknown>;
    } else if (last) {
      node[part] = constraint instanceof Picked ? new Picked(constraint.pick, constraint.operator, path) : constraint;
    } else {
      node = node[part] = {};
    }
  }
}

const filterArb = fc.array(filterConstraintArb, { maxLength: 2 }).map((constraints) => {
  const filter: Record<string, unknown> = {};
  for (const [path, constraint] of constraints) constrain(filter, path, constraint);
  return filter;
});

const itemPaths: Path[] = [
  [], ['value', 'a'], ['value', 's'], ['value', 'n'], ['value', 'b'], ['value', 'o', 'x'], ['value', 't', 0], ['value', 't'],
  ['value'], ['offset'], ['key'], ['time'],
];
const itemPathArb = fc.constantFrom(...itemPaths);
const mapArb = fc.oneof(
  fc.constant<true>(true),
  itemPathArb,
  fc.record({ s: itemPathArb, deep: fc.record({ n: itemPathArb }), o: fc.constant(['offset']) }, { requiredKeys: ['o'] }),
);
const reducerArb = fc.oneof(
  fc.constant({ $count: true }),
  fc.tuple(fc.constantFrom('$sum', '$min', '$max', '$collect'), itemPathArb).map(([name, path]) => ({ [name]: path })),
);
const reduceArb = fc.oneof(
  reducerArb,
  fc.record({ g: itemPathArb, r: reducerArb, more: fc.record({ h: itemPathArb, r2: reducerArb }, { requiredKeys: [] }) }, { requiredKeys: ['r'] }),
);
const sortPathArb = fc.constantFrom<Path>(...itemPaths, ['g'], ['r'], ['s'], ['more', 'h'], ['deep', 'n']);
const sortArb = fc.oneof(sortPathArb, fc.tuple(sortPathArb, fc.constantFrom('asc', 'desc')));

/** Leading filters (which an index may serve), then what follows them. */
const stagesArb = fc
  .tuple(
    fc.array(filterArb.map(($filter) => ({ $filter })), { minLength: 0, maxLength: 2 }),
    fc.oneof(
      fc.constant([]),
      mapArb.map(($map) => [{ $map }]),
      fc.tuple(mapArb, sortArb).map(([$map, $sort]) => [{ $map }, { $sort }]),
      fc.tuple(sortArb, filterArb).map(([$sort, $filter]) => [{ $sort }, { $filter }]),
      reduceArb.map(($reduce) => [{ $reduce }]),
      fc.tuple(reduceArb, sortArb).map(([$reduce, $sort]) => [{ $reduce }, { $sort }]),
      fc.tuple(filterArb, reduceArb).map(([$filter, $reduce]) => [{ $filter }, { $reduce }]),
      // Stages over mapped items: a filter on a mapped value itself (an operator leaf, or an object of fields),
      // and a reduce of mapped items.
      fc
        .tuple(itemPathArb, fc.oneof(rangeArb(numberArb), rangeArb(stringArb), stringArb.map(($prefix) => ({ $prefix })), filterArb))
        .map(([path, $filter]) => [{ $map: path }, { $filter }]),
      fc.tuple(mapArb, reduceArb).map(([$map, $reduce]) => [{ $map }, { $reduce }]),
    ),
  )
  .map(([filters, rest]) => [...filters, ...rest] as Query['query']);

export const queryArb: fc.Arbitrary<Query> = fc.record(
  { query: stagesArb, reverse: fc.boolean(), limit: fc.oneof(fc.constant(undefined), fc.constant(undefined), fc.nat({ max: 8 })) },
  { requiredKeys: ['query'] },
);
/** Live reads take $filter and $map stages only, forward. */
export const liveQueryArb = fc.tuple(fc.array(filterArb, { minLength: 1, maxLength: 2 }), fc.option(mapArb, { nil: undefined })).map(
  ([filters, map]): Query => ({ query: [...filters.map(($filter) => ({ $filter })), ...(map === undefined ? [] : [{ $map: map }])] }),
);

/** `q` with each picked constraint replaced by what it takes from `records` (a missing value: `null`). */
export function resolve(q: Query, records: readonly QueryRecord<JsonValue>[]): Query {
  const walk = (node: unknown): unknown => {
    if (node instanceof Picked) {
      const record = records.length === 0 ? undefined : records[node.pick % records.length];
      const value = valueAt(record, node.path) ?? null;
      if (node.operator === '$eq') return value;
      if (node.operator === '$prefix') return typeof value === 'string' ? { $prefix: value.slice(0, node.pick % 4) } : value;
      return typeof value === 'string' || typeof value === 'number' ? { [node.operator]: value } : value;
    }
    if (Array.isArray(node)) return node.map(walk);
    if (typeof node === 'object' && node !== null) return Object.fromEntries(Object.entries(node).map(([key, leaf]) => [key, walk(leaf)]));
    return node;
  };
  return walk(q) as Query;
}

