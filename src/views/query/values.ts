/**
 * The values a query works on: paths into records, the one order every comparison uses, and how field values
 * become parts of index keys. The order is the order of the index (lmdb's ordered-binary encoding), so that an
 * index range and the filter that produced it can never disagree about which values lie inside a range.
 */

/** A path into a record or a result: object keys and array indices. `[]` is the item itself. */
export type Path = ReadonlyArray<string | number>;

export function isPath(value: unknown): value is Path {
  return (
    Array.isArray(value) &&
    value.every((part) => typeof part === 'string' || (typeof part === 'number' && Number.isSafeInteger(part) && part >= 0))
  );
}

/** The value at `path`, or `undefined` when some step is missing. Only own properties are followed. */
export function getPath(item: unknown, path: Path): unknown {
  let current = item;
  for (const part of path) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, part)) return undefined;
    current = (current as Record<string | number, unknown>)[part];
  }
  return current;
}

/** An object literal (or `Object.create(null)`): what filters, maps and reduces are made of. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** For messages: a short, safe rendering of any value. */
export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'bigint') return `${value}n`;
  try {
    const text = JSON.stringify(value);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/**
 * Strings compare by Unicode code point (a surrogate pair as the code point it encodes, a lone surrogate as its
 * own value), which is the order of their UTF-8 bytes in the index. JavaScript's `<` compares UTF-16 code units
 * and puts U+10000… before U+E000…; using it here would let an index range miss a record the filter matches.
 */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const shorter = Math.min(a.length, b.length);
  let i = 0;
  while (i < shorter && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  // A prefix in code units is a prefix in code points, or ends in a lone high surrogate, below any pair.
  if (i === shorter) return a.length - b.length;
  // They differ in the second half of a pair (or one has a pair where the other has a lone high surrogate).
  if (i > 0 && isHighSurrogate(a.charCodeAt(i - 1)) && (isLowSurrogate(a.charCodeAt(i)) || isLowSurrogate(b.charCodeAt(i)))) {
    i--;
  }
  return (a.codePointAt(i) as number) - (b.codePointAt(i) as number);
}

function rank(value: unknown): number {
  if (value === null) return 0;
  switch (typeof value) {
    case 'boolean':
      return 1;
    case 'number':
      return 2;
    case 'string':
      return 3;
    default:
      return 4;
  }
}

/**
 * The total order of `$sort`, `$min` and `$max`, which is also the index's: `null` < booleans (false < true) <
 * numbers < strings (by code point) < everything else (objects and arrays, equal among themselves, so a stable
 * sort keeps their order). `undefined` is not ordered here: callers put missing values last.
 */
export function compareValues(a: unknown, b: unknown): number {
  const difference = rank(a) - rank(b);
  if (difference !== 0) return difference;
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string' && typeof b === 'string') return compareStrings(a, b);
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  return 0;
}

/** One element of an index entry key. */
export type KeyPart = string | number | boolean;

/**
 * Strings are stored in index keys cut to their first `keyStringCodePoints` code points. Cutting keeps the
 * order (a ≤ b ⇒ cut(a) ≤ cut(b)), so equality and ranges on the cut value select a superset of the matches,
 * which the filter then narrows; it keeps every key far below LMDB's 1,978-byte limit (8 fields of at most 124
 * bytes), and keeps every string under ordered-binary's 64-unit threshold, above which it encodes strings
 * differently (no escaping of control characters, lone surrogates as U+FFFD) and would break the order.
 */
export const keyStringCodePoints = 31;

/** Fields per index: enough for any composite index, and keys stay short (see `keyStringCodePoints`). */
export const indexFieldsMax = 8;

/** Cuts a string to its first `keyStringCodePoints` code points, never between the halves of a pair. */
export function cutString(text: string): string {
  if (text.length <= keyStringCodePoints) return text;
  let units = 0;
  for (let points = 0; points < keyStringCodePoints && units < text.length; points++) {
    units += isHighSurrogate(text.charCodeAt(units)) && isLowSurrogate(text.charCodeAt(units + 1)) ? 2 : 1;
  }
  return text.slice(0, units);
}

/**
 * A field value as an element of an index key, or `undefined` for a value no index holds (missing, `null`,
 * objects, arrays, NaN): the record is then not in that index. Every value a filter can select through an index
 * (by equality with a string, number or boolean, or by a range or prefix, which only match strings and numbers
 * other than NaN) is indexable, so no match is ever missing from its index range.
 */
export function keyPart(value: unknown): KeyPart | undefined {
  switch (typeof value) {
    case 'string':
      return cutString(value);
    case 'number':
      // NaN equals nothing and lies in no range. The infinities do lie in ranges (a codec other than JSON keeps
      // them), and ordered-binary puts them at the two ends of the numbers, where the ranges look for them.
      if (Number.isNaN(value)) return undefined;
      // ordered-binary puts -0 after every positive number; as a key it is 0, which it equals.
      return value === 0 ? 0 : value;
    case 'boolean':
      return value;
    default:
      return undefined;
  }
}

/**
 * The least string above every string that starts with `prefix` (code point order), or `undefined` when there
 * is none (a prefix of U+10FFFF only). A result that lands on a low surrogate right after a high one reads as a
 * pair, which is only larger: still an upper bound.
 */
export function prefixEnd(prefix: string): string | undefined {
  const points = Array.from(prefix);
  while (points.length > 0) {
    const last = (points.pop() as string).codePointAt(0) as number;
    if (last < 0x10ffff) return points.join('') + String.fromCodePoint(last + 1);
  }
  return undefined;
}

/**
 * The prefix to bound an index range with for `$prefix: prefix`: cut like the stored strings, and without a
 * trailing high surrogate, which a stored string may pair with a low one into a code point above the range.
 */
export function keyPrefix(prefix: string): string {
  const cut = cutString(prefix);
  return cut === prefix && isHighSurrogate(cut.charCodeAt(cut.length - 1)) ? cut.slice(0, -1) : cut;
}
