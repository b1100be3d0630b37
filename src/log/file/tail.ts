import { SluiceError } from '../../errors.js';
import { frameBytesMin, positionOf } from './format.js';
import type { FrameReader } from './frame-reader.js';
import type { Segments } from './segments.js';

/** What the tail check (F-40) decided about the last segment. */
export interface TailVerdict {
  /** The offset just past the last complete batch: where the log ends. */
  readonly end: number;
  /** The offset of the last record, or -1 when the segment holds none. */
  readonly since: number;
  /** Why bytes past `end` are not part of the log; `undefined` when the segment ends cleanly. */
  readonly cut: string | undefined;
}

/**
 * The recovery decision table of FORMAT.md (F-40), applied to the last segment, whose bytes run from its base to
 * `fileEnd` (an offset). Only the last frame is read when the segment ends cleanly, so opening a log costs the
 * same whatever its size; the forward walk (rows 3 and 4) happens only after a torn write.
 *
 * | row | what the end of the segment looks like                                  | decision                      |
 * |-----|--------------------------------------------------------------------------|-------------------------------|
 * | 1   | no records after the header                                              | empty segment                 |
 * | 2   | a valid frame ends at the end and ends its batch                         | clean: the log ends here      |
 * | 3   | a valid frame ends at the end, but its batch continues                   | cut back to the last batch end|
 * | 4   | no valid frame ends at the end; no valid frame after the valid prefix    | torn write: cut to batch end  |
 * | 5   | no valid frame ends at the end; a valid frame exists after the damage    | CORRUPT_LOG: run recover      |
 *
 * A writable open finishes interrupted deletions first (F-63); on a read-only log the reader takes a deletion's
 * half-rewritten frame for the deleted record (`Segments.deletionPending`), so neither cuts its batch as torn.
 */
export function checkTail(segments: Segments, reader: FrameReader, index: number, fileEnd: number): TailVerdict {
  const base = segments.bases[index] as number;
  segments.end = fileEnd;
  reader.reset();
  if (fileEnd === base) return { end: base, since: -1, cut: undefined };
  const last = lastFrame(reader, index, fileEnd);
  if (last !== undefined) {
    if (!last.batchContinues) return { end: fileEnd, since: last.offset, cut: undefined };
    // Row 3: walk back to the record that ends the previous batch (a batch never spans segments, F-13).
    let offset = last.offset;
    while (offset > base) {
      const previous = reader.endingAt(index, offset, 'record');
      if (!previous.frame.batchContinues) return { end: offset, since: previous.offset, cut: 'an incomplete batch' };
      offset = previous.offset;
    }
    return { end: base, since: -1, cut: 'an incomplete batch' };
  }
  // Rows 4 and 5: the longest valid prefix, then make sure nothing valid follows the damage.
  let offset = base;
  let batchEnd = base;
  let since = -1;
  let batchSince = -1;
  while (offset < fileEnd) {
    const frame = reader.tryAt(index, offset, true);
    if (typeof frame === 'string') break;
    since = offset;
    offset += frame.size;
    if (!frame.batchContinues) {
      batchEnd = offset;
      batchSince = since;
    }
  }
  for (let candidate = offset + 1; candidate + frameBytesMin <= fileEnd; candidate++) {
    if (typeof reader.tryAt(index, candidate, true) !== 'string') {
      const file = segments.path(base);
      throw new SluiceError(
        'CORRUPT_LOG',
        `${file}: damaged bytes at position ${positionOf(base, offset)} are followed by valid records ` +
          `(at position ${positionOf(base, candidate)}); this is not a torn write: run "sluice recover"`,
        { file, position: positionOf(base, offset), offset },
      );
    }
  }
  return { end: batchEnd, since: batchSince, cut: 'a torn write' };
}

function lastFrame(
  reader: FrameReader,
  index: number,
  fileEnd: number,
): { offset: number; batchContinues: boolean } | undefined {
  try {
    const { offset, frame } = reader.endingAt(index, fileEnd, 'maybe');
    return { offset, batchContinues: frame.batchContinues };
  } catch (error) {
    if (error instanceof SluiceError && (error.code === 'NOT_A_RECORD' || error.code === 'CORRUPT_RECORD')) {
      return undefined;
    }
    throw error;
  }
}
