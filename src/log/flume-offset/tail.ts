import { SluiceError } from '../../errors.js';
import { valueBytesMax } from '../../limits.js';
import { isZeroed, overheadBytes, type OffsetWidth } from './format.js';
import { FrameWindow } from './frame-window.js';

/** What the open of a flumelog-offset file found at its end (FORMAT.md O-7). */
export interface TailVerdict {
  /** The end of the last valid record: the file's length once the tail is cut. */
  readonly end: number;
  /** The offset of the last valid record, `-1` when there is none. */
  readonly since: number;
  /**
   * Why the bytes after `end` are not records, when there are any: `torn` when they look like a write that a
   * crash interrupted (safe to cut, as upstream does on open), otherwise a description of the damage.
   */
  readonly rest: { readonly torn: boolean; readonly problem: string } | undefined;
}

/**
 * Finds where the valid records of a file of `size` bytes end. Reads the first record (a file whose first
 * record is not valid in this format is refused with `NOT_A_LOG`, naming the format it does read as), then the
 * last one; only when the last one is damaged does it look further back, so an open costs O(1) reads.
 */
export function checkTail(window: FrameWindow, size: number): TailVerdict {
  if (size === 0) return { end: 0, since: -1, rest: undefined };
  const first = window.tryAt(0, size);
  if (typeof first === 'string') {
    // A file another format reads is that format's, however much it looks like a torn first record here.
    const other = readsAs(window, size);
    const rest = classifyRest(window, 0, size);
    if (rest.torn && other === undefined) return { end: 0, since: -1, rest };
    throw notThisFormat(window, 0, first, other);
  }
  const last = window.tryEndingAt(size);
  if (typeof last !== 'string') return { end: size, since: last.start, rest: undefined };
  if (window.width !== 0) {
    // A 3.x record whose write stopped just before its end field is a whole legacy record, so a legacy reading
    // of such a file proves nothing once its first record is valid here: a torn tail is what upstream cuts on
    // open, and refusing the file with a hint to open it as legacy would lead to reading it wrongly.
    const found = walkBack(window, size) ?? walkForward(window, size);
    const rest = classifyRest(window, found.end, size);
    if (rest.torn) return { ...found, rest };
    const other = readsAs(window, size, [0]);
    if (other !== undefined) throw notThisFormat(window, found.end, rest.problem, other);
    return { ...found, rest };
  }
  // A file that another format reads from end to end was written in that format: say so rather than call it
  // damaged (the legacy format reads the first record of a 3.x file, whose end field follows it). Its tail is
  // never judged as a legacy one: cutting it there would cut a 3.x file's records.
  const other = readsAs(window, size);
  if (other !== undefined) {
    const prefix = walkForward(window, size);
    const problem = window.tryAt(prefix.end, size);
    throw notThisFormat(window, prefix.end, typeof problem === 'string' ? problem : 'a record is out of place', other);
  }
  const found = walkBack(window, size) ?? walkForward(window, size);
  return { ...found, rest: classifyRest(window, found.end, size) };
}

/**
 * The last record end before `size` at which a valid record ends and the record before it is valid too (two
 * frames agreeing is what tells a record end from bytes that happen to look like one). Looks back at most one
 * largest record: damage further back is found by the forward walk.
 */
function walkBack(window: FrameWindow, size: number): { end: number; since: number } | undefined {
  const floor = Math.max(0, size - valueBytesMax - 2 * overheadBytes(window.width));
  for (let end = size - 1; end > floor; end--) {
    const frame = window.tryEndingAt(end);
    if (typeof frame === 'string') continue;
    if (frame.start === 0 || typeof window.tryEndingAt(frame.start) !== 'string') return { end, since: frame.start };
  }
  return undefined;
}

/**
 * The end of the run of valid records from `from` (a record start) up to `size`, and the last one's offset
 * (`-1`: none): the longest valid prefix at open, and what a read-only log takes in of a writer's appends.
 */
export function walkForward(window: FrameWindow, size: number, from = 0): { end: number; since: number } {
  let position = from;
  let since = -1;
  for (;;) {
    const frame = window.tryAt(position, size);
    if (typeof frame === 'string') return { end: position, since };
    since = position;
    position += frame.length + overheadBytes(window.width);
  }
}

/**
 * Decides whether the bytes `[end, size)` are a torn write: fewer than a length's bytes, a record whose length
 * says it runs past the end of the file (its write was cut short), or zeros (a file system that extended the
 * file before the crash wrote its data). Anything else, such as a whole frame whose two lengths disagree, is
 * damage, and is never cut without being asked.
 */
function classifyRest(window: FrameWindow, end: number, size: number): { torn: boolean; problem: string } {
  const bytes = size - end;
  if (bytes < 4) return { torn: true, problem: `${bytes} bytes of an unfinished record` };
  const probe = window.tryAt(end, size);
  if (typeof probe !== 'string') return { torn: false, problem: 'a valid record follows' };
  const length = window.bytes(end, end + 4).readUInt32BE(0);
  if (length <= valueBytesMax && end + length + overheadBytes(window.width) > size) {
    return { torn: true, problem: `a record of length ${length} cut short after ${bytes} bytes` };
  }
  if (isZeroRange(window, end, size)) return { torn: true, problem: `${bytes} zero bytes` };
  return { torn: false, problem: probe };
}

/** True when the file's bytes `[start, end)` are all zero. */
function isZeroRange(window: FrameWindow, start: number, end: number): boolean {
  const step = 64 * 1024;
  for (let from = start; from < end; from += step) {
    const bytes = window.bytes(from, Math.min(end, from + step));
    if (bytes.length === 0 || !isZeroed(bytes, 0, bytes.length)) return false;
  }
  return true;
}

function describeFormat(width: OffsetWidth): string {
  return width === 0 ? 'legacy (pre-3.0) flumelog-offset' : `flumelog-offset ${width}-byte-offset`;
}

/** Another format (not one of `excluded`) in which the file's first and last records are both valid, if any. */
function readsAs(window: FrameWindow, size: number, excluded: readonly OffsetWidth[] = []): OffsetWidth | undefined {
  for (const width of [4, 6, 8, 0] as const) {
    if (width === window.width || excluded.includes(width)) continue;
    const other = new FrameWindow(window.fd, window.file, width, 4096);
    const last = other.tryEndingAt(size);
    // Zeros read as empty legacy records: an empty last record proves nothing.
    if (typeof other.tryAt(0, size) !== 'string' && typeof last !== 'string' && last.length > 0) return width;
  }
  return undefined;
}

function notThisFormat(window: FrameWindow, position: number, problem: string, other: OffsetWidth | undefined): SluiceError {
  const hint =
    other === undefined
      ? ''
      : ` (it reads as a ${describeFormat(other)} file: open it with ${other === 0 ? 'legacy: true' : `offsetWidth ${other}`})`;
  return new SluiceError(
    'NOT_A_LOG',
    `${window.file} is not a ${describeFormat(window.width)} file: at position ${position}, ${problem}${hint}`,
    { file: window.file, position },
  );
}
