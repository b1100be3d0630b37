import type { Key } from 'lmdb';
import { fieldRange, isOperatorObject, type FieldRange, type QueryFilter } from './compile.js';
import {
  describe,
  getPath,
  indexFieldsMax,
  isPath,
  isPlainObject,
  keyPart,
  keyPrefix,
  prefixEnd,
  type KeyPart,
  type Path,
} from './values.js';

/** A composite index the query view maintains: its fields are paths into the record `{ offset, time, key, value }`. */
export interface QueryIndex {
  readonly name: string;
  readonly value: readonly Path[];
}

/** The part of an index a plan reads: equal leading fields, then optionally a range or prefix on the next one. */
export interface PlanRange extends FieldRange {
  /** The values the leading fields equal (as given in the filter). */
  readonly eq: readonly KeyPart[];
}

/** How a read would run (`explain`): through an index range, or by scanning the log. */
export interface QueryPlan {
  readonly index: string | null;
  readonly range: PlanRange | null;
  readonly scan: boolean;
}

/** An LMDB range over the entry keys `[index name, ...field key parts, offset]`. */
export interface KeyBounds {
  readonly start: Key;
  readonly end: Key;
  readonly inclusiveEnd: boolean;
}

const indexNamePattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** Above every key element: ordered-binary never starts an element with the byte 0xff. */
const keyMax = Buffer.from([0xff]);

/** Validates the declared indexes (`TypeError`) and copies them, so later changes by the caller do not matter. */
export function checkIndexes(indexes: unknown): QueryIndex[] {
  if (!Array.isArray(indexes)) throw new TypeError(`indexes must be an array, got ${describe(indexes)}`);
  const names = new Set<string>();
  return indexes.map((index: unknown, at): QueryIndex => {
    const where = `indexes[${at}]`;
    if (!isPlainObject(index)) throw new TypeError(`${where} must be { name, value: [path, …] }, got ${describe(index)}`);
    const { name, value } = index;
    if (typeof name !== 'string' || !indexNamePattern.test(name)) {
      throw new TypeError(`${where}.name must be 1-64 letters, digits, "-" or "_", got ${describe(name)}`);
    }
    if (names.has(name)) throw new TypeError(`two indexes are named ${name}`);
    names.add(name);
    if (!Array.isArray(value) || value.length === 0 || value.length > indexFieldsMax) {
      throw new TypeError(`${where}.value must be a list of 1 to ${indexFieldsMax} paths, got ${describe(value)}`);
    }
    const paths = value.map((path: unknown, field): Path => {
      if (!isPath(path) || path.length === 0) {
        throw new TypeError(`${where}.value[${field}] must be a non-empty path (an array of keys), got ${describe(path)}`);
      }
      return Object.freeze([...path]);
    });
    return Object.freeze({ name, value: Object.freeze(paths) });
  });
}

/**
 * The entry key of a record in an index, or `undefined` when the record is not in it. A record is in an index
 * when its first field holds an indexable value (see `keyPart`); a later field that is missing or not
 * indexable is stored as `null`, which sorts before every other value, so that a read on the leading fields
 * still finds the record (a filter can only select through an index what is in it: the first field is always
 * constrained by the plan, and a range on a later field never matches `null`).
 */
export function entryKey(index: QueryIndex, record: unknown, offset: number): Key[] | undefined {
  const key: Key[] = [index.name];
  for (const [field, path] of index.value.entries()) {
    const part = keyPart(getPath(record, path));
    if (part === undefined && field === 0) return undefined;
    key.push(part === undefined ? (null as unknown as Key) : part);
  }
  key.push(offset);
  return key;
}

/** `eq`: the value as the filter gives it (for `explain`); `part`: as the index stores it (for the bounds). */
type Constraint = { readonly eq: KeyPart; readonly part: KeyPart } | { readonly range: FieldRange } | undefined;

/** What a (validated) filter says about the field at `path`, as far as an index can use it. */
function constraintAt(filter: QueryFilter, path: Path): Constraint {
  let node: unknown = filter;
  for (const part of path) {
    const container = Array.isArray(node) || (isPlainObject(node) && !isOperatorObject(node));
    if (!container || !Object.hasOwn(node as object, part)) return undefined;
    node = (node as Record<string | number, unknown>)[part];
  }
  if (typeof node === 'string' || typeof node === 'number' || typeof node === 'boolean') {
    const part = keyPart(node);
    return part === undefined ? undefined : { eq: node, part };
  }
  if (isPlainObject(node) && isOperatorObject(node)) return { range: fieldRange(node, 'filter') };
  return undefined;
}

/**
 * Chooses the index for a query whose leading stages are `filters`: the declared index whose leading fields
 * the filter fixes by equality the longest, then one whose next field has a range or a prefix; ties go to the
 * index declared first. No index with at least its first field constrained: a scan.
 */
export function choosePlan(indexes: readonly QueryIndex[], filters: readonly QueryFilter[]): { plan: QueryPlan; bounds?: KeyBounds } {
  let best: { index: QueryIndex; eq: KeyPart[]; parts: KeyPart[]; range: FieldRange | undefined; score: number } | undefined;
  // Indexes outside, filters inside: a tie between indexes served by different filters goes to the index declared
  // first, not to the one the first filter happens to serve.
  for (const index of indexes) {
    for (const filter of filters) {
      const eq: KeyPart[] = [];
      const parts: KeyPart[] = [];
      let range: FieldRange | undefined;
      for (const path of index.value) {
        const constraint = constraintAt(filter, path);
        if (constraint !== undefined && 'eq' in constraint) {
          eq.push(constraint.eq);
          parts.push(constraint.part);
          continue;
        }
        if (constraint !== undefined) range = constraint.range;
        break;
      }
      const score = eq.length * 2 + (range === undefined ? 0 : 1);
      if (score > 0 && (best === undefined || score > best.score)) best = { index, eq, parts, range, score };
    }
  }
  if (best === undefined) return { plan: { index: null, range: null, scan: true } };
  return {
    plan: { index: best.index.name, range: { eq: best.eq, ...best.range }, scan: false },
    bounds: keyBounds(best.index.name, best.parts, best.range),
  };
}

/**
 * The entry keys a plan reads. The range is a superset of the matches: strings in keys are cut (see
 * `keyStringCodePoints`), so bounds include everything under the cut bound; `$gt` reads from the bound, which
 * the filter then drops. A range without a lower (upper) bound still starts (ends) at its type: numbers sort
 * before strings, so `{ $lt: 'm' }` does not read numbers and `{ $gt: 5 }` does not read strings.
 */
function keyBounds(name: string, parts: readonly KeyPart[], range: FieldRange | undefined): KeyBounds {
  const base: Key[] = [name, ...parts];
  const all = { end: [...base, keyMax], inclusiveEnd: true };
  if (range === undefined) return { start: base, ...all };
  if (range.prefix !== undefined) {
    const prefix = keyPrefix(range.prefix);
    const end = prefixEnd(prefix);
    return end === undefined ? { start: [...base, prefix], ...all } : { start: [...base, prefix], end: [...base, end], inclusiveEnd: false };
  }
  const low = range.gt ?? range.gte;
  const high = range.lt ?? range.lte;
  const numbers = typeof (low ?? high) === 'number';
  const start = [...base, low === undefined ? (numbers ? -Infinity : '') : (keyPart(low) as KeyPart)];
  if (high !== undefined) return { start, end: [...base, keyPart(high) as KeyPart, keyMax], inclusiveEnd: true };
  // The first string is the end of the numbers.
  return numbers ? { start, end: [...base, ''], inclusiveEnd: false } : { start, ...all };
}
