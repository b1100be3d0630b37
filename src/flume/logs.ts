import { FileLog, type Durability } from '../log/file/file-log.js';
import { FlumeOffsetLog, type OffsetDurability } from '../log/flume-offset/flume-offset-log.js';
import { MemoryLog as SluiceMemoryLog } from '../log/memory/memory-log.js';
import { assertFlumeCodec, rawFlumeCodec, toSluiceCodec, type FlumeCodec } from './codec.js';
import { fromLog, type SluiceFlumeLog } from './flumelog.js';

/**
 * The flumelog constructors: Sluice logs with flumelog-offset's calling convention, ready for `Flume(...)`.
 * Every constructor takes a flume codec (`{ encode, decode, buffer? }`, as flumecodec's) and defaults to
 * flumelog-offset's: bytes stored as they are, read back as Buffers.
 *
 * `OffsetLog` (and `LegacyOffsetLog`) read and write flumelog-offset files byte for byte, so an application
 * that replaces `require('flumelog-offset')` with them keeps its file.
 */

export interface MemoryLogOptions<T> {
  readonly codec?: FlumeCodec<T>;
  /**
   * A filename for views to keep their state beside (`path.dirname(filename)`); the log itself stays in memory.
   * Without it, views that need a directory (flumeview-level, and flumeview-query's indexes) refuse the log.
   */
  readonly filename?: string;
}

/** A log in memory (Sluice's `MemoryLog`: same offsets as the native log). Nothing survives `close`. */
export function MemoryLog<T = Buffer>(options: MemoryLogOptions<T> = {}): SluiceFlumeLog<T> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const codec = options.codec ?? (rawFlumeCodec as unknown as FlumeCodec<T>);
  return fromLog(new SluiceMemoryLog<T>({ codec: toSluiceCodec(codec) }), {
    ...(options.filename === undefined ? {} : { filename: options.filename }),
  });
}

export interface NativeLogOptions<T> {
  readonly codec?: FlumeCodec<T>;
  /** What a called-back append promises; see `FileLog`'s `Durability`. Default: `os`. */
  readonly durability?: Durability;
  /** The segment size of the native log (`FileLog`'s `segmentBytesMax`). */
  readonly segmentBytesMax?: number;
}

/**
 * The native Sluice log (`FileLog`, FORMAT.md) in the directory `dir`, created when missing. Its `filename` is
 * `dir`, so flume views keep their state in the parent directory, beside the log, as they did beside a
 * flumelog-offset file: `NativeLog(path.join(dbDir, 'log'))` puts the views in `dbDir`. The log opens in the
 * background; `since` is `undefined` until it has, and a failure to open (`LOCKED`, `NOT_A_LOG`, …) fails
 * every call.
 */
export function NativeLog<T = Buffer>(dir: string, options: NativeLogOptions<T> = {}): SluiceFlumeLog<T> {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string');
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const codec = options.codec ?? (rawFlumeCodec as unknown as FlumeCodec<T>);
  assertFlumeCodec(codec);
  const opening = FileLog.open<T>(dir, {
    codec: toSluiceCodec(codec),
    ...(options.durability === undefined ? {} : { durability: options.durability }),
    ...(options.segmentBytesMax === undefined ? {} : { segmentBytesMax: options.segmentBytesMax }),
  });
  return fromLog(opening, { filename: dir });
}

export interface OffsetLogOptions<T> {
  readonly codec?: FlumeCodec<T>;
  /**
   * flumelog-offset's offset codec by its bits: 32 (4-byte offsets, files up to 4 GiB; the default), 48 or 53.
   * The file does not record it: give the one it was written with.
   */
  readonly offsetCodec?: 32 | 48 | 53;
  /** flumelog-offset's read block size: accepted and ignored (reads are sized per record). */
  readonly blockSize?: number;
  /** What a called-back append promises: `os` (written; default) or `disk` (fdatasynced). */
  readonly durability?: OffsetDurability;
}

const widths = { 32: 4, 48: 6, 53: 8 } as const;

/**
 * A flumelog-offset 3.x file (`FlumeOffsetLog`), with flumelog-offset's calling convention: the replacement for
 * `require('flumelog-offset')(file, { codec, offsetCodec })`. Views keep their state beside the file, as they
 * did. The file opens in the background; a file that is not in the format asked for fails every call with
 * `NOT_A_LOG`, naming the format it reads as. The older `(file, blockSize, codec?)` form, which flumelog-offset
 * still takes, is taken too (the block size ignored, as in `options`).
 */
export function OffsetLog<T = Buffer>(file: string, options?: OffsetLogOptions<T>): SluiceFlumeLog<T>;
export function OffsetLog<T = Buffer>(file: string, blockSize: number, codec?: FlumeCodec<T>): SluiceFlumeLog<T>;
export function OffsetLog<T = Buffer>(file: string, given: OffsetLogOptions<T> | number = {}, positionalCodec?: FlumeCodec<T>): SluiceFlumeLog<T> {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError('file must be a non-empty string');
  // Applications written for flumelog-offset before its options object still pass these positionally.
  const options: OffsetLogOptions<T> =
    typeof given === 'number' ? { blockSize: given, ...(positionalCodec === undefined ? {} : { codec: positionalCodec }) } : given;
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  if (typeof given !== 'number' && positionalCodec !== undefined) throw new TypeError('a codec comes third only after a block size');
  const bits = options.offsetCodec ?? 32;
  const offsetWidth = widths[bits];
  if (offsetWidth === undefined) throw new RangeError(`offsetCodec must be 32, 48 or 53, got ${String(bits)}`);
  if (options.blockSize !== undefined && (!Number.isSafeInteger(options.blockSize) || options.blockSize <= 0)) {
    throw new RangeError('blockSize must be a positive integer');
  }
  const codec = options.codec ?? (rawFlumeCodec as unknown as FlumeCodec<T>);
  assertFlumeCodec(codec);
  const opening = FlumeOffsetLog.open<T>(file, {
    codec: toSluiceCodec(codec),
    offsetWidth,
    ...(options.durability === undefined ? {} : { durability: options.durability }),
  });
  return fromLog(opening, { filename: file });
}

/**
 * A file in flumelog-offset's legacy (pre-3.0) format: the replacement for
 * `require('flumelog-offset/legacy')(file, blockSize?, codec?)`.
 */
export function LegacyOffsetLog<T = Buffer>(file: string, blockSize?: number | FlumeCodec<T>, codec?: FlumeCodec<T>): SluiceFlumeLog<T> {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError('file must be a non-empty string');
  // As upstream: the block size may be left out, the codec then comes second.
  const chosen = typeof blockSize === 'object' ? blockSize : codec;
  const flumeCodec = chosen ?? (rawFlumeCodec as unknown as FlumeCodec<T>);
  assertFlumeCodec(flumeCodec);
  return fromLog(FlumeOffsetLog.open<T>(file, { codec: toSluiceCodec(flumeCodec), legacy: true }), { filename: file });
}
