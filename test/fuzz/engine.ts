/**
 * The corruption fuzzer's engine: a seeded random source, the mutations it applies to a file's bytes, the case
 * loop (each case bounded in time, the seed printed on failure), and the checks every case shares (errors are
 * SluiceErrors with codes, corruption names its file and position, no unhandled rejection).
 */
import assert from 'node:assert/strict';
import { isSluiceError, type ErrorCode } from '../../src/errors.js';
import { mulberry32 } from '../helpers.js';

/** Cases per fuzz file in `npm test`, scaled by `SLUICE_FUZZ_CASES` (e.g. `SLUICE_FUZZ_CASES=50000`). */
export function fuzzCases(defaultCases: number, share = 1): number {
  const asked = Number(process.env.SLUICE_FUZZ_CASES);
  return Number.isInteger(asked) && asked > 0 ? Math.max(1, Math.round(asked * share)) : defaultCases;
}

/** The first seed of a run: `SLUICE_FUZZ_SEED` replays a failing case (its seed is in the failure message). */
export function fuzzSeed(defaultSeed: number): number {
  const asked = Number(process.env.SLUICE_FUZZ_SEED);
  return Number.isInteger(asked) ? asked : defaultSeed;
}

export class Random {
  readonly #next: () => number;
  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }
  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.#next() * n);
  }
  /** An integer in [low, high]. */
  between(low: number, high: number): number {
    return low + this.below(high - low + 1);
  }
  pick<T>(items: readonly T[]): T {
    assert.ok(items.length > 0, 'pick from an empty list');
    return items[this.below(items.length)] as T;
  }
  chance(probability: number): boolean {
    return this.#next() < probability;
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.below(256);
    return out;
  }
}

/** What a mutation did to a file: a description for the failure message, and the byte range it touched. */
export interface Mutation {
  readonly bytes: Buffer;
  readonly what: string;
  /** The first byte changed (for a truncation: the new length). */
  readonly start: number;
  /** One past the last byte changed (for a truncation: the old length). */
  readonly end: number;
}

/** Positions of interest a mutation aims at more often than at random: length fields, headers, ends. */
export interface Targets {
  /** Byte positions where a length, count or offset field starts. */
  readonly fields: readonly number[];
  /** The width of those fields in bytes and their byte order. */
  readonly fieldBytes: 4 | 2;
  readonly littleEndian: boolean;
}

const noTargets: Targets = { fields: [], fieldBytes: 4, littleEndian: true };

/**
 * One random mutation of `original`: bit flips, a truncation at any byte, a zeroed range, a garbage range, bytes
 * appended, a crafted length (huge, zero, pointing backwards or at itself), or a field set to a future version.
 */
export function mutate(random: Random, original: Buffer, targets: Targets = noTargets): Mutation {
  const bytes = Buffer.from(original);
  const n = bytes.length;
  const at = (): number => (targets.fields.length > 0 && random.chance(0.6) ? random.pick(targets.fields) : random.below(Math.max(1, n)));
  const kind = n === 0 ? 'append' : random.pick(['flip', 'flips', 'truncate', 'zero', 'garbage', 'append', 'length', 'length', 'version']);
  switch (kind) {
    case 'flip': {
      const position = random.below(n);
      const bit = 1 << random.below(8);
      bytes[position] = (bytes[position] as number) ^ bit;
      return { bytes, what: `flip bit ${bit} at ${position}`, start: position, end: position + 1 };
    }
    case 'flips': {
      const count = random.between(2, 16);
      let start = n;
      let end = 0;
      for (let i = 0; i < count; i++) {
        const position = random.below(n);
        bytes[position] = (bytes[position] as number) ^ (1 << random.below(8));
        start = Math.min(start, position);
        end = Math.max(end, position + 1);
      }
      return { bytes, what: `${count} bit flips in [${start}, ${end})`, start, end };
    }
    case 'truncate': {
      const length = random.below(n);
      return { bytes: bytes.subarray(0, length), what: `truncate to ${length} of ${n} bytes`, start: length, end: n };
    }
    case 'zero':
    case 'garbage': {
      const start = at();
      const end = Math.min(n, start + random.between(1, random.chance(0.5) ? 16 : 4096));
      if (kind === 'zero') bytes.fill(0, start, end);
      else random.bytes(end - start).copy(bytes, start);
      return { bytes, what: `${kind} in [${start}, ${end})`, start, end };
    }
    case 'append': {
      const extra = random.chance(0.5) ? Buffer.alloc(random.between(1, 64)) : random.bytes(random.between(1, 300));
      return { bytes: Buffer.concat([bytes, extra]), what: `${extra.length} bytes appended`, start: n, end: n + extra.length };
    }
    case 'length': {
      const width = targets.fieldBytes;
      const position = Math.min(at(), Math.max(0, n - width));
      if (n < width) return mutate(random, original, noTargets);
      const value = random.pick([
        0,
        1,
        0xffff_ffff,
        0x7fff_ffff,
        0x8000_0000,
        0x100_0000 + random.below(64),
        n,
        n + 1,
        Math.max(0, position - random.between(1, 200)),
        position,
        random.below(2 ** 31),
      ]) % (width === 2 ? 0x1_0000 : 0x1_0000_0000);
      if (width === 2) {
        if (targets.littleEndian) bytes.writeUInt16LE(value, position);
        else bytes.writeUInt16BE(value, position);
      } else if (targets.littleEndian) bytes.writeUInt32LE(value, position);
      else bytes.writeUInt32BE(value, position);
      return { bytes, what: `length field at ${position} set to ${value}`, start: position, end: position + width };
    }
    default: {
      // A future version: the u16 after an 8-byte magic (segments) or the u32 there (state files), raised.
      if (n < 12) return mutate(random, original, noTargets);
      const version = random.between(2, 0xffff);
      bytes.writeUInt16LE(version, 8);
      return { bytes, what: `version field set to ${version}`, start: 8, end: 10 };
    }
  }
}

/** Codes that mean "the data is damaged" and must say where. */
const corruptionCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['CORRUPT_RECORD', 'CORRUPT_SEGMENT', 'CORRUPT_LOG']);

/**
 * Asserts that `error` is a SluiceError whose code is one of `allowed`, and that corruption names its file and
 * (except for a log whose files contradict each other as a whole) the position.
 */
export function assertCleanError(error: unknown, allowed: readonly ErrorCode[], what: string): void {
  if (!isSluiceError(error)) {
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    assert.fail(`${what}: not a SluiceError: ${detail}`);
  }
  assert.ok(allowed.includes(error.code), `${what}: unexpected code ${error.code}: ${error.message}`);
  if (corruptionCodes.has(error.code)) {
    assert.ok(typeof error.file === 'string' && error.file !== '', `${what}: ${error.code} names no file: ${error.message}`);
    if (error.code !== 'CORRUPT_LOG') {
      assert.ok(typeof error.position === 'number', `${what}: ${error.code} names no position: ${error.message}`);
    }
  }
}

/** Runs `body`, failing rather than waiting forever when it does not settle within `limitMs`. */
export async function bounded<T>(limitMs: number, what: string, body: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${limitMs} ms (a hang)`)), limitMs);
  });
  try {
    return await Promise.race([body(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `cases` fuzz cases, each with its own seed (`seed + i`), one after another. A failure names the case's
 * seed, so `SLUICE_FUZZ_SEED=<seed> SLUICE_FUZZ_CASES=1` replays it alone. Unhandled rejections during the run
 * fail it too, and `Object.prototype` must be untouched at the end.
 */
export async function runCases(
  name: string,
  cases: number,
  seed: number,
  body: (random: Random, caseSeed: number) => Promise<void>,
  caseLimitMs = 20_000,
): Promise<void> {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  process.on('unhandledRejection', onUnhandled);
  try {
    for (let i = 0; i < cases; i++) {
      const caseSeed = seed + i;
      try {
        await bounded(caseLimitMs, `case ${caseSeed}`, () => body(new Random(caseSeed), caseSeed));
        // Rejections nobody handled surface after a turn of the event loop.
        if (i % 50 === 49 || i === cases - 1) await new Promise((resolve) => setImmediate(resolve));
        assert.deepEqual(unhandled, [], 'no unhandled rejection');
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(`${name}: case with seed ${caseSeed} failed (replay: SLUICE_FUZZ_SEED=${caseSeed} SLUICE_FUZZ_CASES=1): ${message}`, {
          cause: error,
        });
      }
    }
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), objectPrototypeNames, 'Object.prototype is untouched');
}

/** The own properties of `Object.prototype` before any test ran. */
export const objectPrototypeNames: readonly string[] = Object.getOwnPropertyNames(Object.prototype).sort();
