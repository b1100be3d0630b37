import type { StreamOptions } from './log.js';
import { checkSignal } from '../errors.js';

/**
 * A stream's options reduced to one half-open offset range `[low, high)`. Offsets are integers, so `gt: x` is
 * `low = x + 1` and `lte: x` is `high = x + 1`; bounds outside the log simply select nothing or everything.
 */
export interface ScanRange {
  readonly low: number;
  readonly high: number;
  readonly reverse: boolean;
  readonly limit: number;
  readonly live: boolean;
}

function bound(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number`);
  if (!Number.isSafeInteger(value)) throw new RangeError(`${name} must be a safe integer, got ${value}`);
  return value;
}

/** Validates stream options (throwing `TypeError`/`RangeError`) and reduces them to a `ScanRange`. */
export function toScanRange(options: StreamOptions | undefined): ScanRange {
  if (options === undefined) return { low: 0, high: Infinity, reverse: false, limit: Infinity, live: false };
  if (typeof options !== 'object' || options === null) throw new TypeError('stream options must be an object');
  const gt = bound('gt', options.gt);
  const gte = bound('gte', options.gte);
  const lt = bound('lt', options.lt);
  const lte = bound('lte', options.lte);
  if (gt !== undefined && gte !== undefined) throw new TypeError('give gt or gte, not both');
  if (lt !== undefined && lte !== undefined) throw new TypeError('give lt or lte, not both');
  const reverse = flag('reverse', options.reverse);
  const live = flag('live', options.live);
  if (reverse && live) throw new TypeError('a live stream cannot be reversed');
  let limit = Infinity;
  if (options.limit !== undefined && options.limit !== Infinity) {
    if (typeof options.limit !== 'number') throw new TypeError('limit must be a number');
    if (!Number.isSafeInteger(options.limit) || options.limit < 0) {
      throw new RangeError(`limit must be a non-negative integer, got ${options.limit}`);
    }
    limit = options.limit;
  }
  checkSignal(options.signal);
  const low = Math.max(0, gt !== undefined ? gt + 1 : (gte ?? 0));
  const high = lt !== undefined ? lt : lte !== undefined ? lte + 1 : Infinity;
  return { low, high, reverse, limit, live };
}

function flag(name: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean`);
  return value;
}
