import fc from 'fast-check';
import type { JsonValue } from '../../src/codec/codec.js';
import type { AppendOptions, Log } from '../../src/log/log.js';

/**
 * Append calls as the log differential tests generate them (described first, run later against two logs alike),
 * and the values their arbitraries share.
 */

/** The clock of the logs under test, and the time of a batch's records that give none. */
export const fixedTime = 1_700_000_000_000;

export type Key = string | Uint8Array | undefined;
export type Time = number | undefined;

export interface Item {
  readonly value: JsonValue;
  readonly key: Key;
  readonly time: Time;
}

/**
 * How a batch passes keys (times): `none`; `shared`, the first item's for all; `each`, an array with one per
 * record; `mismatch`, an array one too long (a TypeError).
 */
export type Mode = 'none' | 'shared' | 'each' | 'mismatch';

/** One `append` call: a single value (wrapped as `[value]` when it is an array) or a batch. */
export type AppendCall =
  | { readonly kind: 'single'; readonly item: Item }
  | { readonly kind: 'batch'; readonly items: readonly Item[]; readonly keyMode: Mode; readonly timeMode: Mode };

const modeArb = fc.constantFrom<Mode>('none', 'none', 'none', 'shared', 'shared', 'each', 'each', 'mismatch');

/** Single appends and batches of up to `batchMax` of `item`s. */
export function appendCallArbOf(item: fc.Arbitrary<Item>, batchMax: number): fc.Arbitrary<AppendCall> {
  return fc.oneof(
    fc.record({ kind: fc.constant('single' as const), item }),
    fc.record({
      kind: fc.constant('batch' as const),
      items: fc.array(item, { maxLength: batchMax, size: 'medium' }),
      keyMode: modeArb,
      timeMode: modeArb,
    }),
  );
}

/** Offsets no log takes: a RangeError or TypeError, thrown synchronously. */
export const invalidOffsetArb = fc.constantFrom<unknown>(-1, 1.5, Number.NaN, Infinity, Number.MAX_SAFE_INTEGER + 1, '3');

/** Starts `call` on `log`. */
export function startAppend(log: Log<JsonValue>, call: AppendCall): Promise<number | number[]> {
  if (call.kind === 'single') {
    const { value, key, time } = call.item;
    const options: AppendOptions = { ...(key !== undefined && { key }), ...(time !== undefined && { time }) };
    // An array passed to append is a batch: a single array value is appended as a batch of one.
    return Array.isArray(value) ? log.append([value], options) : log.append(value, options);
  }
  const { items, keyMode, timeMode } = call;
  const values = items.map((item) => item.value);
  const options: { key?: AppendOptions['key']; time?: AppendOptions['time'] } = {};
  const first = items[0];
  if (keyMode === 'shared' && first?.key !== undefined) options.key = first.key;
  if (keyMode === 'each') options.key = items.map((item) => item.key);
  if (keyMode === 'mismatch') options.key = [...items.map((item) => item.key), 'extra'];
  if (timeMode === 'shared' && first?.time !== undefined) options.time = first.time;
  if (timeMode === 'each') options.time = items.map((item) => item.time ?? fixedTime);
  if (timeMode === 'mismatch') options.time = [...items.map((item) => item.time ?? fixedTime), 1];
  return log.append(values, options);
}
