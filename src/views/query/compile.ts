import { compareStrings, compareValues, describe, getPath, isPath, isPlainObject, type Path } from './values.js';

/**
 * A `$filter`: an object matched against the record `{ offset, time, key, value }` (always the whole record, so
 * a filter on the value starts with `value`). See `compileFilter` for what each part means.
 */
export type QueryFilter = { readonly [field: string]: unknown };

/** A `$map`: `true` (the item itself), a path, or an object whose leaves are paths (or `true`). */
export type MapSpec = true | Path | { readonly [field: string]: MapSpec };

/** One reducer. `$min` / `$max` compare numbers and strings (numbers first); other values are ignored. */
export type ReducerSpec =
  | { readonly $count: true }
  | { readonly $sum: Path }
  | { readonly $min: Path }
  | { readonly $max: Path }
  | { readonly $collect: Path };

/**
 * A `$reduce`: one reducer (one result over all items), or an object whose leaves are group paths and reducers
 * (one result per distinct combination of group values, in order of first appearance).
 */
export type ReduceSpec = ReducerSpec | { readonly [field: string]: Path | ReduceSpec };

/** A `$sort`: a path (ascending), or `[path, 'asc' | 'desc']`. Missing values sort last either way. */
export type SortSpec = Path | readonly [Path, 'asc' | 'desc'];

export type QueryStage =
  | { readonly $filter: QueryFilter }
  | { readonly $map: MapSpec }
  | { readonly $reduce: ReduceSpec }
  | { readonly $sort: SortSpec };

/** Where items go: stages are chained sinks; `end` is called once, after the last item. */
export interface Sink {
  push(item: unknown): void;
  end(): void;
}

/** A validated stage: makes its sink in front of the next one. `filter` is kept for the planner. */
export interface CompiledStage {
  readonly kind: 'filter' | 'map' | 'reduce' | 'sort';
  readonly filter?: QueryFilter;
  sink(next: Sink): Sink;
}

const stageKinds = { $filter: 'filter', $map: 'map', $reduce: 'reduce', $sort: 'sort' } as const;

/** Validates a query's stages (a `TypeError` naming the first problem) and compiles them. */
export function compileStages(stages: unknown): CompiledStage[] {
  if (!Array.isArray(stages)) throw new TypeError(`query must be an array of stages, got ${describe(stages)}`);
  return stages.map((stage: unknown, at) => {
    const where = `query[${at}]`;
    if (!isPlainObject(stage)) throw new TypeError(`${where} must be an object such as { $filter: … }, got ${describe(stage)}`);
    const keys = Object.keys(stage);
    if (keys.length !== 1) {
      throw new TypeError(`${where} must have exactly one of $filter, $map, $reduce, $sort; it has ${keys.join(', ') || 'none'}`);
    }
    const key = keys[0] as string;
    if (!Object.hasOwn(stageKinds, key)) throw new TypeError(`unknown query stage ${key} in ${where}`);
    const spec = stage[key];
    switch (stageKinds[key as keyof typeof stageKinds]) {
      case 'filter':
        return filterStage(spec, `${where}.${key}`);
      case 'map':
        return mapStage(spec, `${where}.${key}`);
      case 'reduce':
        return reduceStage(spec, `${where}.${key}`);
      case 'sort':
        return sortStage(spec, `${where}.${key}`);
    }
  });
}

/** Chains the stages in front of `last`. */
export function chain(stages: readonly CompiledStage[], last: Sink): Sink {
  return stages.reduceRight((next, stage) => stage.sink(next), last);
}

// ---- $filter ----------------------------------------------------------------------------------------------

type Test = (value: unknown) => boolean;

const rangeOperators = ['$gt', '$gte', '$lt', '$lte'] as const;
const filterOperators = new Set<string>([...rangeOperators, '$prefix']);

/** The operators of one filter leaf, validated: what the planner turns into an index range. */
export interface FieldRange {
  readonly gt?: string | number;
  readonly gte?: string | number;
  readonly lt?: string | number;
  readonly lte?: string | number;
  readonly prefix?: string;
}

function filterStage(spec: unknown, where: string): CompiledStage {
  if (!isPlainObject(spec)) throw new TypeError(`${where} must be an object, got ${describe(spec)}`);
  const test = compileFilter(spec, where);
  return {
    kind: 'filter',
    filter: spec,
    sink: (next) => ({
      push: (item) => {
        if (test(item)) next.push(item);
      },
      end: () => next.end(),
    }),
  };
}

/** True when a filter object is an operator leaf (`{ $gt: 1 }`), after `compileFilter` validated it. */
export function isOperatorObject(filter: Record<string, unknown>): boolean {
  for (const key in filter) if (key.startsWith('$')) return true;
  return false;
}

/**
 * - a string, number, boolean or `null`: the field equals it (`===`); `undefined`: the field is missing; NaN is a
 *   TypeError (it could match nothing);
 * - an object of fields: the field is an object (or array) and each listed field matches, recursively;
 * - an array: the field is an array of that length whose items match one by one;
 * - an object of operators: `$gt`, `$gte`, `$lt`, `$lte` (a string or finite number, all of one type; the field
 *   must be of that type: a range never matches across types) and `$prefix` (a string; the field is a string
 *   starting with it). Strings compare by code point (see `compareStrings`). Any other `$` key is a TypeError.
 */
export function compileFilter(filter: unknown, where: string): Test {
  if (filter === undefined) return (value) => value === undefined;
  if (Number.isNaN(filter)) {
    // NaN equals nothing: such a filter could match nothing, not even a NaN a codec other than JSON kept.
    throw new TypeError(`${where} must be a number other than NaN, got ${describe(filter)}`);
  }
  if (filter === null || typeof filter === 'string' || typeof filter === 'boolean' || typeof filter === 'number') {
    return (value) => value === filter;
  }
  if (Array.isArray(filter)) {
    const tests = filter.map((item: unknown, at) => compileFilter(item, `${where}[${at}]`));
    return (value) => Array.isArray(value) && value.length === tests.length && tests.every((test, at) => test(value[at]));
  }
  if (isPlainObject(filter)) {
    const keys = Object.keys(filter);
    const operators = keys.filter((key) => key.startsWith('$'));
    if (operators.length > 0) {
      if (operators.length !== keys.length) {
        throw new TypeError(`${where} mixes operators (${operators.join(', ')}) with fields`);
      }
      return compileOperators(filter, where);
    }
    const fields = keys.map((key): [string, Test] => [key, compileFilter(filter[key], `${where}.${key}`)]);
    return (value) =>
      typeof value === 'object' &&
      value !== null &&
      fields.every(([key, test]) => test(Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined));
  }
  throw new TypeError(`${where}: a filter holds objects, arrays, strings, numbers, booleans and null, got ${describe(filter)}`);
}

/** Validates an operator leaf; see `compileFilter`. */
export function fieldRange(filter: Record<string, unknown>, where: string): FieldRange {
  const range: Record<string, string | number> = {};
  let type: 'string' | 'number' | undefined;
  for (const [operator, bound] of Object.entries(filter)) {
    if (!filterOperators.has(operator)) throw new TypeError(`unknown filter operator ${operator} in ${where}`);
    if (operator === '$prefix') {
      if (typeof bound !== 'string') throw new TypeError(`${where}.$prefix must be a string, got ${describe(bound)}`);
    } else if (!(typeof bound === 'string' || (typeof bound === 'number' && Number.isFinite(bound)))) {
      throw new TypeError(`${where}.${operator} must be a string or a finite number, got ${describe(bound)}`);
    }
    const boundType = typeof bound as 'string' | 'number';
    if (type !== undefined && boundType !== type) {
      throw new TypeError(`${where} mixes a ${type} bound with a ${boundType} one: nothing could match`);
    }
    type = boundType;
    range[operator.slice(1)] = bound;
  }
  if (range.gt !== undefined && range.gte !== undefined) throw new TypeError(`${where}: give $gt or $gte, not both`);
  if (range.lt !== undefined && range.lte !== undefined) throw new TypeError(`${where}: give $lt or $lte, not both`);
  return range;
}

function compileOperators(filter: Record<string, unknown>, where: string): Test {
  const { gt, gte, lt, lte, prefix } = fieldRange(filter, where);
  const type = typeof (gt ?? gte ?? lt ?? lte ?? prefix);
  const compare = (a: string | number, b: string | number): number =>
    typeof a === 'string' ? compareStrings(a, b as string) : (a) - (b as number);
  return (value) =>
    typeof value === type &&
    (gt === undefined || compare(value as string | number, gt) > 0) &&
    (gte === undefined || compare(value as string | number, gte) >= 0) &&
    (lt === undefined || compare(value as string | number, lt) < 0) &&
    (lte === undefined || compare(value as string | number, lte) <= 0) &&
    (prefix === undefined || (value as string).startsWith(prefix));
}

// ---- $map -------------------------------------------------------------------------------------------------

type MapFunction = (item: unknown) => unknown;

function mapStage(spec: unknown, where: string): CompiledStage {
  const map = compileMap(spec, where);
  return {
    kind: 'map',
    sink: (next) => ({
      push: (item) => {
        const mapped = map(item);
        // A path that leads nowhere drops the item (flumeview-query: a map to undefined yields nothing).
        if (mapped !== undefined) next.push(mapped);
      },
      end: () => next.end(),
    }),
  };
}

function compileMap(spec: unknown, where: string): MapFunction {
  if (spec === true) return (item) => item;
  if (isPath(spec)) return (item) => getPath(item, spec);
  if (isPlainObject(spec)) {
    const fields = Object.entries(spec).map(([key, leaf]): [string, MapFunction] => {
      if (key.startsWith('$')) throw new TypeError(`unknown operator ${key} in ${where}`);
      return [key, compileMap(leaf, `${where}.${key}`)];
    });
    return (item) => {
      const entries: Array<[string, unknown]> = [];
      for (const [key, map] of fields) {
        const value = map(item);
        if (value !== undefined) entries.push([key, value]);
      }
      return Object.fromEntries(entries);
    };
  }
  throw new TypeError(`${where} takes a path (an array of keys), an object of paths, or true; got ${describe(spec)}`);
}

// ---- $reduce ----------------------------------------------------------------------------------------------

interface Reducer {
  initial(): unknown;
  add(accumulated: unknown, item: unknown): unknown;
  result(accumulated: unknown): unknown;
}

type ReduceNode =
  | { readonly kind: 'group'; readonly at: number }
  | { readonly kind: 'reducer'; readonly at: number }
  | { readonly kind: 'object'; readonly fields: ReadonlyArray<readonly [string, ReduceNode]> };

const reducerNames = new Set(['$count', '$sum', '$min', '$max', '$collect']);

function makeReducer(spec: Record<string, unknown>, where: string): Reducer {
  const keys = Object.keys(spec);
  const name = keys[0] as string;
  const fields = keys.filter((key) => !key.startsWith('$'));
  if (fields.length > 0) throw new TypeError(`${where} mixes a reducer with fields (${fields.join(', ')})`);
  for (const key of keys) if (!reducerNames.has(key)) throw new TypeError(`unknown reducer ${key} in ${where}`);
  if (keys.length !== 1) throw new TypeError(`${where} must hold one reducer, it holds ${keys.join(', ')}`);
  const argument = spec[name];
  if (name === '$count') {
    if (argument !== true) throw new TypeError(`${where}.$count must be true, got ${describe(argument)}`);
    return { initial: () => 0, add: (count) => (count as number) + 1, result: (count) => count };
  }
  if (!isPath(argument)) throw new TypeError(`${where}.${name} takes a path (an array of keys), got ${describe(argument)}`);
  const path = argument;
  switch (name) {
    case '$sum':
      return {
        initial: () => 0,
        add: (sum, item) => {
          const value = getPath(item, path);
          return typeof value === 'number' ? (sum as number) + value : sum;
        },
        result: (sum) => sum,
      };
    case '$min':
    case '$max': {
      const sign = name === '$min' ? 1 : -1;
      return {
        initial: () => undefined,
        add: (best, item) => {
          const value = getPath(item, path);
          if (typeof value !== 'number' && typeof value !== 'string') return best;
          return best === undefined || sign * compareValues(value, best) < 0 ? value : best;
        },
        result: (best) => best,
      };
    }
    default:
      return {
        initial: () => [],
        add: (list, item) => {
          const value = getPath(item, path);
          if (value !== undefined) (list as unknown[]).push(value);
          return list;
        },
        result: (list) => list,
      };
  }
}

function reduceStage(spec: unknown, where: string): CompiledStage {
  const groups: Path[] = [];
  const reducers: Reducer[] = [];
  const compile = (node: unknown, at: string): ReduceNode => {
    if (isPath(node)) {
      groups.push(node);
      return { kind: 'group', at: groups.length - 1 };
    }
    if (!isPlainObject(node)) {
      throw new TypeError(`${at} must be a path (an array of keys), a reducer or an object of them, got ${describe(node)}`);
    }
    if (Object.keys(node).some((key) => key.startsWith('$'))) {
      reducers.push(makeReducer(node, at));
      return { kind: 'reducer', at: reducers.length - 1 };
    }
    return { kind: 'object', fields: Object.entries(node).map(([key, leaf]) => [key, compile(leaf, `${at}.${key}`)] as const) };
  };
  if (!isPlainObject(spec)) {
    throw new TypeError(`${where} takes a reducer ({ $count: true }, { $sum: path }, …) or an object of group paths and reducers, got ${describe(spec)}`);
  }
  const tree = compile(spec, where);
  const build = (node: ReduceNode, values: readonly unknown[], accumulated: readonly unknown[]): unknown => {
    if (node.kind === 'group') return values[node.at];
    if (node.kind === 'reducer') return (reducers[node.at] as Reducer).result(accumulated[node.at]);
    const entries: Array<[string, unknown]> = [];
    for (const [key, child] of node.fields) {
      const value = build(child, values, accumulated);
      if (value !== undefined) entries.push([key, value]);
    }
    return Object.fromEntries(entries);
  };
  return {
    kind: 'reduce',
    sink: (next) => {
      const states = new Map<string, { values: unknown[]; accumulated: unknown[] }>();
      const fresh = (values: unknown[]) => ({ values, accumulated: reducers.map((reducer) => reducer.initial()) });
      // Without group fields there is exactly one result, even over no items ({ $count: true } → 0).
      if (groups.length === 0) states.set('', fresh([]));
      return {
        push: (item) => {
          const values = groups.map((path) => getPath(item, path));
          const key = groupKey(values);
          let state = states.get(key);
          if (state === undefined) states.set(key, (state = fresh(values)));
          const { accumulated } = state;
          reducers.forEach((reducer, at) => (accumulated[at] = reducer.add(accumulated[at], item)));
        },
        end: () => {
          for (const { values, accumulated } of states.values()) {
            const result = build(tree, values, accumulated);
            // A lone $min / $max over nothing has no value, hence no result.
            if (result !== undefined) next.push(result);
          }
          next.end();
        },
      };
    },
  };
}

/**
 * One text per distinct combination of group values, compared as values, not as they were written: objects
 * equal whatever the order of their keys, `NaN` one value and not `null` (which JSON would make of it), `-0` the
 * same as `0`. The parts are separated by a newline, which no part holds; '' is only `undefined`.
 */
function groupKey(values: readonly unknown[]): string {
  return values.map((value) => (value === undefined ? '' : canonicalText(value))).join('\n');
}

/**
 * Text tokens other than JSON's start with '#', which no JSON text does (a string's starts with '"'), so no value
 * takes another's text.
 */
function canonicalText(value: unknown): string {
  if (typeof value === 'number') return Number.isFinite(value) ? JSON.stringify(value) : `#${String(value)}`;
  if (typeof value === 'bigint') return `#${value}n`;
  if (value === undefined) return '#undefined';
  if (typeof value !== 'object' || value === null) return JSON.stringify(value) ?? 'null';
  // Not by JSON's rules for these: a Date is not the string `toJSON` makes of it (nor, invalid, `null`), and Maps,
  // Sets and typed arrays have contents that JSON leaves out or writes as a plain object's (a codec such as
  // structured clone keeps them).
  if (value instanceof Date) return `#Date(${value.getTime()})`;
  if (value instanceof Map) {
    const entries = [...value].map(([key, item]) => `${canonicalText(key)}=>${canonicalText(item)}`);
    return `#Map{${entries.sort().join(',')}}`;
  }
  if (value instanceof Set) return `#Set{${[...value].map(canonicalText).sort().join(',')}}`;
  if (ArrayBuffer.isView(value)) return `#${Object.prototype.toString.call(value)}[${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}]`;
  const toJson = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJson === 'function') return canonicalText(toJson.call(value));
  if (Array.isArray(value)) {
    // A hole and `undefined` are one (a path reads both as missing), neither is `null`, and every item counts:
    // `map` would pass over holes, and `[,]` be `[]`.
    const items: string[] = [];
    for (let i = 0; i < value.length; i++) items.push(canonicalText(value[i]));
    return `[${items.join(',')}]`;
  }
  const fields = Object.keys(value)
    .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalText((value as Record<string, unknown>)[key])}`);
  return `{${fields.join(',')}}`;
}

// ---- $sort ------------------------------------------------------------------------------------------------

function sortStage(spec: unknown, where: string): CompiledStage {
  let path: Path;
  let direction = 1;
  if (Array.isArray(spec) && Array.isArray(spec[0])) {
    const [first, order] = spec as unknown[];
    if (spec.length !== 2 || !isPath(first) || (order !== 'asc' && order !== 'desc')) {
      throw new TypeError(`${where} takes a path or [path, 'asc' | 'desc'], got ${describe(spec)}`);
    }
    path = first;
    direction = order === 'desc' ? -1 : 1;
  } else if (isPath(spec)) {
    path = spec;
  } else {
    throw new TypeError(`${where} takes a path (an array of keys) or [path, 'asc' | 'desc'], got ${describe(spec)}`);
  }
  return {
    kind: 'sort',
    sink: (next) => {
      const items: unknown[] = [];
      return {
        push: (item) => items.push(item),
        end: () => {
          const keyed = items.map((item) => ({ item, key: getPath(item, path) }));
          // Stable: equal keys keep the order items came in.
          keyed.sort((a, b) => {
            if (a.key === undefined || b.key === undefined) return a.key === undefined ? (b.key === undefined ? 0 : 1) : -1;
            return direction * compareValues(a.key, b.key);
          });
          for (const { item } of keyed) next.push(item);
          next.end();
        },
      };
    },
  };
}
