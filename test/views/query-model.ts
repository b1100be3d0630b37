/**
 * A naive evaluator of queries, written from the documented semantics (README, query view) and nothing else of
 * the query view: every stage runs over every record, in memory. The differential test holds the view to it.
 */
import type { Query, QueryRecord } from '../../src/views/query/index.js';

type Path = ReadonlyArray<string | number>;

/** The value at `path` (own properties of objects and arrays only), or `undefined`. */
export function valueAt(item: unknown, path: Path): unknown {
  let current = item;
  for (const part of path) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, part)) return undefined;
    current = (current as Record<string | number, unknown>)[part];
  }
  return current;
}

/** Strings by code point: what `for…of` walks (a pair as one code point, a lone surrogate as itself). */
function compareByCodePoint(a: string, b: string): number {
  const left = [...a];
  const right = [...b];
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const difference = (left[i] as string).codePointAt(0)! - (right[i] as string).codePointAt(0)!;
    if (difference !== 0) return difference;
  }
  return left.length - right.length;
}

function typeRank(value: unknown): number {
  if (value === null) return 0;
  if (typeof value === 'boolean') return 1;
  if (typeof value === 'number') return 2;
  if (typeof value === 'string') return 3;
  return 4;
}

/** null < false < true < numbers < strings (by code point) < objects and arrays (all equal). */
export function order(a: unknown, b: unknown): number {
  const difference = typeRank(a) - typeRank(b);
  if (difference !== 0) return difference;
  if (typeof a === 'string') return compareByCodePoint(a, b as string);
  if (typeof a === 'number' || typeof a === 'boolean') return Number(a) < Number(b) ? -1 : Number(a) > Number(b) ? 1 : 0;
  return 0;
}

function matchesOperators(operators: Record<string, unknown>, value: unknown): boolean {
  for (const [operator, bound] of Object.entries(operators)) {
    if (typeof value !== typeof bound) return false;
    const comparison = typeof bound === 'string' ? compareByCodePoint(value as string, bound) : (value as number) - (bound as number);
    const ok =
      operator === '$gt' ? comparison > 0
      : operator === '$gte' ? comparison >= 0
      : operator === '$lt' ? comparison < 0
      : operator === '$lte' ? comparison <= 0
      : (value as string).startsWith(bound as string);
    if (!ok) return false;
  }
  return true;
}

export function matches(filter: unknown, value: unknown): boolean {
  if (filter === undefined) return value === undefined;
  if (filter === null || typeof filter !== 'object') return value === filter;
  if (Array.isArray(filter)) {
    return Array.isArray(value) && value.length === filter.length && filter.every((item, at) => matches(item, value[at]));
  }
  const fields = Object.keys(filter);
  if (fields.some((field) => field.startsWith('$'))) return matchesOperators(filter as Record<string, unknown>, value);
  if (typeof value !== 'object' || value === null) return false;
  return fields.every((field) => matches((filter as Record<string, unknown>)[field], valueAt(value, [field])));
}

function mapItem(spec: unknown, item: unknown): unknown {
  if (spec === true) return item;
  if (Array.isArray(spec)) return valueAt(item, spec as Path);
  const out: Record<string, unknown> = {};
  for (const [field, leaf] of Object.entries(spec as Record<string, unknown>)) {
    const value = mapItem(leaf, item);
    if (value !== undefined) out[field] = value;
  }
  return out;
}

function isReducer(spec: object): boolean {
  return Object.keys(spec).some((key) => key.startsWith('$'));
}

/** One reducer over a group's items. */
function reduceItems(spec: Record<string, unknown>, items: readonly unknown[]): unknown {
  const [name, path] = Object.entries(spec)[0] as [string, Path];
  if (name === '$count') return items.length;
  const values = items.map((item) => valueAt(item, path));
  if (name === '$sum') return values.reduce((sum: number, value) => (typeof value === 'number' ? sum + value : sum), 0);
  if (name === '$collect') return values.filter((value) => value !== undefined);
  const candidates = values.filter((value) => typeof value === 'number' || typeof value === 'string');
  const sign = name === '$min' ? 1 : -1;
  return candidates.reduce<unknown>((best, value) => (best === undefined || sign * order(value, best) < 0 ? value : best), undefined);
}

function groupPaths(spec: unknown, into: Path[]): Path[] {
  if (Array.isArray(spec)) into.push(spec as Path);
  else if (!isReducer(spec as object)) for (const leaf of Object.values(spec as object)) groupPaths(leaf, into);
  return into;
}

function buildResult(spec: unknown, items: readonly unknown[]): unknown {
  if (Array.isArray(spec)) return valueAt(items[0], spec as Path);
  if (isReducer(spec as object)) return reduceItems(spec as Record<string, unknown>, items);
  const out: Record<string, unknown> = {};
  for (const [field, leaf] of Object.entries(spec as object)) {
    const value = buildResult(leaf, items);
    if (value !== undefined) out[field] = value;
  }
  return out;
}

function reduce(spec: unknown, items: readonly unknown[]): unknown[] {
  const paths = groupPaths(spec, []);
  // Groups in order of first appearance; group values compared as JSON (the generated objects keep one key order).
  const groups = new Map<string, unknown[]>();
  if (paths.length === 0) groups.set('', []);
  for (const item of items) {
    const key = paths.map((path) => valueAt(item, path)).map((value) => (value === undefined ? 'missing' : JSON.stringify(value))).join(' ');
    const group = groups.get(key) ?? [];
    group.push(item);
    groups.set(key, group);
  }
  return [...groups.values()].map((group) => buildResult(spec, group)).filter((result) => result !== undefined);
}

function sort(spec: unknown, items: readonly unknown[]): unknown[] {
  const [path, direction] = Array.isArray((spec as unknown[])[0]) ? (spec as [Path, string]) : [spec as Path, 'asc'];
  const sign = direction === 'desc' ? -1 : 1;
  const keyed = items.map((item) => ({ item, key: valueAt(item, path) }));
  keyed.sort((a, b) => {
    if (a.key === undefined || b.key === undefined) return Number(a.key === undefined) - Number(b.key === undefined);
    return sign * order(a.key, b.key);
  });
  return keyed.map(({ item }) => item);
}

/** The results of `q` over `records` (in log order). */
export function evaluate(records: readonly QueryRecord<unknown>[], q: Query): unknown[] {
  let items: unknown[] = q.reverse === true ? [...records].reverse() : [...records];
  for (const stage of q.query ?? []) {
    if ('$filter' in stage) items = items.filter((item) => matches(stage.$filter, item));
    else if ('$map' in stage) items = items.map((item) => mapItem(stage.$map, item)).filter((item) => item !== undefined);
    else if ('$reduce' in stage) items = reduce(stage.$reduce, items);
    else items = sort(stage.$sort, items);
  }
  return q.limit === undefined ? items : items.slice(0, q.limit);
}

/** What the documentation says `explain` gives; see `expectedPlan`. */
export interface ModelPlan {
  readonly index: string | null;
  readonly range: Record<string, unknown> | null;
  readonly scan: boolean;
}

function isOperatorLeaf(node: unknown): node is Record<string, unknown> {
  return typeof node === 'object' && node !== null && !Array.isArray(node) && Object.keys(node).some((key) => key.startsWith('$'));
}

/** The filter's constraint at `path`: walking objects (and arrays) of fields down to a leaf. */
function constraintAt(filter: unknown, path: Path): unknown {
  let node = filter;
  for (const part of path) {
    if (typeof node !== 'object' || node === null || isOperatorLeaf(node) || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string | number, unknown>)[part];
  }
  return node;
}

/**
 * The plan of a query, as documented: of the declared indexes, the one whose leading fields the leading filters
 * fix by equality (with a string, a number other than NaN, or a boolean) the longest, then a range or a prefix on the next
 * field; ties go to the index declared first. None with its first field constrained: a scan.
 */
export function expectedPlan(indexes: ReadonlyArray<{ name: string; value: readonly Path[] }>, q: Query): ModelPlan {
  const filters: unknown[] = [];
  for (const stage of q.query ?? []) {
    if (!('$filter' in stage)) break;
    filters.push(stage.$filter);
  }
  let best: { score: number; plan: ModelPlan } | undefined;
  for (const index of indexes) {
    for (const filter of filters) {
      const eq: unknown[] = [];
      let range: Record<string, unknown> | undefined;
      for (const path of index.value) {
        const constraint = constraintAt(filter, path);
        if (typeof constraint === 'string' || typeof constraint === 'boolean' || (typeof constraint === 'number' && !Number.isNaN(constraint))) {
          eq.push(constraint);
          continue;
        }
        if (isOperatorLeaf(constraint)) {
          range = Object.fromEntries(Object.entries(constraint).map(([operator, bound]) => [operator.slice(1), bound]));
        }
        break;
      }
      const score = eq.length * 2 + (range === undefined ? 0 : 1);
      if (score > 0 && (best === undefined || score > best.score)) {
        best = { score, plan: { index: index.name, range: { eq, ...range }, scan: false } };
      }
    }
  }
  return best?.plan ?? { index: null, range: null, scan: true };
}
