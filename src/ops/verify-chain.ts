import { closeSync, fstatSync, openSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { SluiceError, throwIfAborted } from '../errors.js';
import { batchBytesMax, checkChunkBytes } from '../limits.js';
import {
  chainAlgorithmKeyed,
  chainBytes,
  digestBytes,
  flagBatchContinues,
  flagChained,
  flagEncrypted,
  frameFlagsOf,
  headerBytes,
  offsetAt,
  positionOf,
  segmentName,
  type HeaderSecurity,
} from '../log/file/format.js';
import { coveredAt, coveredCount, coveredFlagsValid, fillerFits, hasTable } from '../log/file/security/filler.js';
import { keyCheckValue } from '../log/file/security/keys.js';
import { ChainHasher, chainAlgorithmOf, digestContentStart, genesisLink, type ChainAlgorithm } from '../log/file/security/chain.js';
import { checkHeader } from '../log/file/segments.js';
import { SegmentDigests, digestStats, type DigestJob } from './segment-digests.js';
import { SegmentWindow } from './segment-window.js';
import { WorkerPool } from './worker-pool.js';

/** Where the chain of a tamper-evident log stops verifying: the first broken link (F-77). */
export interface BrokenLink {
  readonly file: string;
  readonly position: number;
  readonly offset: number;
  readonly message: string;
}

/** What `verifyChain` proved. */
export interface ChainVerification {
  /** The log's hash; `null` when the log is not chained (nothing else is then set). */
  readonly algorithm: ChainAlgorithm | null;
  /** Records (deleted ones and compaction fillers included) whose links verified. */
  readonly records: number;
  /**
   * The link the verification started from (F-78): the genesis link (64 zeros) when the log starts at offset 0;
   * for a trimmed log the first remaining batch's own stored link (`offset`: its last record), which nothing left
   * in the log can prove (nor that batch's content): it is never taken as a published head; every later link is
   * recomputed from it.
   */
  readonly anchor: { readonly offset: number; readonly hash: string } | null;
  /** The link of the last batch verified, at its last record (the log's head when nothing is broken); `null` without records. */
  readonly head: { readonly offset: number; readonly hash: string } | null;
  /** When a published head was given: the offset of the last record of the batch whose link it is, or `null` when none has it. */
  readonly publishedHeadOffset: number | null;
  /** The first broken link, or `null`: every link verified (up to damage the framing check reports). */
  readonly broken: BrokenLink | null;
  /** Why the walk stopped before the end of the log (invalid framing, which `check` reports), or `null`. */
  readonly stoppedBy: string | null;
}

export interface VerifyChainOptions {
  readonly signal?: AbortSignal;
  /** A head published earlier (64 hex digits): found as the link of some batch, it pins every record up to it. */
  readonly head?: string;
  /**
   * The key of a keyed chain (F-72): without it such a chain cannot be verified (reported as broken at its start).
   * Given, every segment must be keyed with it: a segment with an unkeyed chain is a broken link (a downgrade).
   */
  readonly chainKey?: Uint8Array;
  /**
   * Worker threads (0 to 64) that recompute record digests while this thread walks frames and links and takes
   * its share of digests. By default one per core but one (at most 4; none on one core) when the log's segments
   * hold more than 16 MiB, else none; `0`: every digest on this thread. The result is the same either way: a
   * segment in which a worker finds a digest that does not match (or cannot check one) is walked again on this
   * thread, so that the first broken link is the one a single walk finds.
   */
  readonly workers?: number;
}

/** Below this many bytes of segments, starting worker threads costs more than they save. */
const workersBytesMin = 16 * 1024 * 1024;
const workersDefaultMax = 4;
/** The most `workers` a verification takes. */
export const workersMax = 64;
/** With digest workers, the walk lets their answers in this often (it shares out jobs by how many wait). */
const digestPauseBytes = 512 * 1024;

/**
 * Recomputes the chain of the native log in `dir` (F-73, F-77): for every record, its content digest (unless it
 * was deleted: then its stored digest stands), and for every batch its link from the link before, from the first
 * segment to the end of the last. Stops at the first broken link, or at framing damage (a frame `check` reports as invalid).
 * Reads only: no lock, no key (digests cover the stored bytes, ciphertext for an encrypted log). `bases` are
 * the log's segments, oldest first.
 */
export async function verifyChain(dir: string, bases: readonly number[], options: VerifyChainOptions = {}): Promise<ChainVerification> {
  if (options.workers !== undefined) checkWorkers(options.workers);
  const published = options.head === undefined ? undefined : Buffer.from(options.head, 'hex');
  const state: WalkState = {
    hasher: undefined,
    previous: bases[0] === 0 ? genesisLink : undefined,
    anchor: null,
    records: 0,
    head: null,
    published,
    publishedHeadOffset: null,
    broken: null,
    stoppedBy: null,
    batch: null,
    untied: [],
  };
  const workers = options.workers ?? (segmentBytes(dir, bases) > workersBytesMin ? Math.min(workersDefaultMax, availableParallelism() - 1) : 0);
  // Started when the first chained segment is walked: a log that is not chained fails at its first header.
  let pool: WorkerPool<DigestJob, boolean> | undefined;
  let poolRefused = false;
  const poolOf = (): WorkerPool<DigestJob, boolean> | undefined => {
    if (pool !== undefined || poolRefused || workers === 0) return pool;
    try {
      pool = WorkerPool.start<DigestJob, boolean>(new URL('./digest-worker.js', import.meta.url), workers);
    } catch {
      // No thread could be started (a resource limit): this thread does it all, with the same result.
      poolRefused = true;
    }
    return pool;
  };
  try {
    for (const base of bases) {
      throwIfAborted(options.signal, 'the chain verification');
      await verifySegment(dir, base, state, options, poolOf);
      if (state.broken !== null || state.stoppedBy !== null) break;
    }
  } finally {
    await pool?.close();
  }
  return {
    algorithm: state.hasher?.algorithm ?? null,
    records: state.records,
    anchor: state.anchor,
    head: state.head === null ? null : { offset: state.head.offset, hash: state.head.link.toString('hex') },
    publishedHeadOffset: state.publishedHeadOffset,
    broken: state.broken,
    stoppedBy: state.stoppedBy,
  };
}

/** Validates `VerifyChainOptions.workers` (a programmer mistake otherwise). */
export function checkWorkers(workers: unknown): asserts workers is number {
  if (typeof workers !== 'number') throw new TypeError('workers must be a number');
  if (!Number.isInteger(workers) || workers < 0 || workers > workersMax) throw new RangeError(`workers must be an integer from 0 to ${workersMax}`);
}

/** The bytes of the segments, as far as they can be seen (one may be trimmed meanwhile). */
function segmentBytes(dir: string, bases: readonly number[]): number {
  let total = 0;
  for (const base of bases) total += statSync(join(dir, segmentName(base)), { throwIfNoEntry: false })?.size ?? 0;
  return total;
}

interface WalkState {
  hasher: ChainHasher | undefined;
  /** The link before the next batch; `undefined` before the first batch of a trimmed log. */
  previous: Buffer | undefined;
  anchor: { offset: number; hash: string } | null;
  records: number;
  head: { offset: number; link: Buffer } | null;
  readonly published: Buffer | undefined;
  publishedHeadOffset: number | null;
  broken: BrokenLink | null;
  stoppedBy: string | null;
  /** The batch in progress: where its first record is, how many records and bytes it has so far. */
  batch: { where: Where; records: number; bytes: number } | null;
  /**
   * Batches that ended inside a compaction filler, in order: their links were computed, never compared with a
   * stored one, so they count (records, head, a published head) only once a stored link after them verifies.
   * Appended to in place (a filler may end thousands of batches: copying the list each time would make a walk
   * quadratic); a segment walked again starts from a copy of the state taken with a copy of this list.
   */
  untied: { offset: number; link: Buffer; records: number }[];
}

interface Where {
  readonly file: string;
  readonly position: number;
  readonly offset: number;
}

async function verifySegment(
  dir: string,
  base: number,
  state: WalkState,
  options: VerifyChainOptions,
  poolOf: () => WorkerPool<DigestJob, boolean> | undefined,
): Promise<void> {
  const path = join(dir, segmentName(base));
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (cause) {
    // A trim running meanwhile removed it: the chain goes on from the next segment's first record.
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      state.previous = undefined;
      state.batch = null;
      state.untied = [];
      state.hasher?.reset();
      return;
    }
    throw new SluiceError('READ_FAILED', `cannot read ${path}: ${(cause as Error).message}`, { cause, file: path });
  }
  try {
    let security: HeaderSecurity;
    try {
      security = checkHeader(fd, path, base).security;
    } catch (error) {
      state.stoppedBy = (error as Error).message;
      return;
    }
    const algorithmId = security.chainAlgorithm;
    const keyed = algorithmId === chainAlgorithmKeyed;
    const key = options.chainKey;
    if (key !== undefined && algorithmId !== 0 && !keyed) {
      // Anybody can recompute an unkeyed chain: a keyed log rebuilt as one must not pass for verified.
      state.broken = { file: path, position: 32, offset: base, message: 'a chain key was given, yet the segment\'s chain is not keyed (F-72)' };
      return;
    }
    if (keyed && (key === undefined || !keyCheckValue(key).equals(security.chainKeyCheck))) {
      const message = key === undefined ? 'the chain is keyed: verifying it takes its chain key' : "the chain key given is not the log's";
      state.broken = { file: path, position: 48, offset: base, message };
      return;
    }
    if (algorithmId === 0 || (state.hasher !== undefined && state.hasher.algorithm !== chainAlgorithmOf(algorithmId))) {
      state.broken = { file: path, position: 12, offset: base, message: 'the segment is not chained as the log is (F-72)' };
      return;
    }
    const hasher = (state.hasher ??= new ChainHasher(chainAlgorithmOf(algorithmId), keyed ? key : undefined));
    if (state.batch !== null) {
      state.broken = { ...state.batch.where, message: 'a batch does not end where its segment ends (F-13)' };
      return;
    }
    const segment: Segment = { fd, path, base, end: offsetAt(base, Math.max(headerBytes, fstatSync(fd).size)), securityFlags: frameFlagsOf(security) };
    const pool = poolOf();
    if (pool === undefined || pool.size === 0) {
      await walkSegment(segment, state, options.signal, undefined);
      return;
    }
    const before = { ...state, untied: [...state.untied] };
    const digests = new SegmentDigests(pool, fd, hasher.digestHash);
    let thrown: { error: unknown } | undefined;
    try {
      await walkSegment(segment, state, options.signal, digests);
    } catch (error) {
      thrown = { error };
    }
    // The workers read through `fd`: it stays open until every job on it has answered.
    if (await digests.settle()) {
      if (thrown !== undefined) throw thrown.error;
      return;
    }
    // Some record of this segment does not match its digest (or a worker could not tell). Walked again on this
    // thread, the segment gives the first broken link exactly as a single walk does: a changed record, or a broken
    // link before it; an abort, a read error or damage past the change never counts, as the walk stops before.
    digestStats.segmentsWalkedAgain++;
    Object.assign(state, before);
    hasher.reset();
    await walkSegment(segment, state, options.signal, undefined);
  } finally {
    closeSync(fd);
  }
}

interface Segment {
  readonly fd: number;
  readonly path: string;
  readonly base: number;
  /** The offset past its last byte. */
  readonly end: number;
  /** The frame flags its header calls for (F-71). */
  readonly securityFlags: number;
}

/**
 * Walks the frames of a segment whose header verified. `digests`: where the digests go to be checked by worker
 * threads; without it, each is checked here, in order.
 */
async function walkSegment(segment: Segment, state: WalkState, signal: AbortSignal | undefined, digests: SegmentDigests | undefined): Promise<void> {
  const { fd, path, base, end } = segment;
  const window = new SegmentWindow(fd, path, positionOf(base, end), checkChunkBytes, false);
  // Pauses let other work run (the workers' answers among it, which decide who checks the next digests); an abort
  // is looked at about every `checkChunkBytes` with workers or without, as a walk reaches a verdict only between.
  const pauseBytes = digests === undefined ? checkChunkBytes : digestPauseBytes;
  let pauseAt = base + pauseBytes;
  let abortCheckAt = base + checkChunkBytes;
  for (let offset = base; offset < end && state.broken === null; ) {
    if (offset >= pauseAt) {
      await new Promise((resolve) => setImmediate(resolve));
      if (offset >= abortCheckAt) {
        throwIfAborted(signal, 'the chain verification');
        abortCheckAt = offset + checkChunkBytes;
      }
      // A digest that did not match: the segment is walked again anyway.
      if (digests?.failed === true) return;
      pauseAt = offset + pauseBytes;
    }
    // Checksums are left to `check`'s framing pass: digests and links prove more than a CRC, and skipping it
    // makes this pass a sixth faster.
    const position = positionOf(base, offset);
    const frame = window.frameAt(position, offset);
    if (typeof frame === 'string') {
      state.stoppedBy = `${path}:${position}: ${frame}`;
      return;
    }
    verifyFrame(window.buffer, frame, state, { file: path, position, offset }, segment.securityFlags, digests);
    offset += frame.size;
  }
}

/**
 * F-77: the digest (of a record not deleted) of one valid frame, and the link of its batch when it ends one;
 * `securityFlags` are the frame flags its segment's header calls for (F-71).
 */
function verifyFrame(
  buffer: Buffer,
  frame: { size: number; time: number; keyLength: number; deleted: boolean; filler: boolean; encrypted: boolean; chainStart: number },
  state: WalkState,
  where: Where,
  securityFlags: number,
  digests: SegmentDigests | undefined,
): void {
  const hasher = state.hasher as ChainHasher;
  if (frame.chainStart < 0) {
    state.broken = { ...where, message: 'the record carries no link (F-72)' };
    return;
  }
  const start = frame.chainStart + chainBytes + 4 - frame.size;
  // F-76: a chained filler is exactly what compaction writes: deleted and filler, never encrypted, key length 0,
  // time 0, a table. A frame too small for a table is a record in its deleted form (its bytes 28-31 may be digest
  // bytes, as for a record without key, of time 0, whose value took fewer than 4 bytes): its digest joins its batch.
  if (frame.filler && frame.deleted && !frame.encrypted && frame.keyLength === 0 && frame.time === 0 && hasTable(buffer, start, frame.size)) {
    verifyFiller(buffer, start, frame.size, state, where, securityFlags);
    return;
  }
  if ((frame.encrypted ? flagEncrypted : 0) + flagChained !== securityFlags) {
    state.broken = { ...where, message: "the record is not sealed as its segment's header says (F-71)" };
    return;
  }
  if (!frame.deleted) {
    const sent = digests !== undefined && digests.add(where.position, frame.size, digestContentStart, frame.chainStart - start);
    if (!sent && !hasher.digestMatches(buffer, start, frame.chainStart)) {
      state.broken = { ...where, message: 'the record does not match its digest: its content was changed (F-73)' };
      return;
    }
  }
  const endsBatch = ((buffer[start + 26] as number) & flagBatchContinues) === 0;
  const linkAt = frame.chainStart + digestBytes;
  if (!joinBatch(state, where, frame.size, endsBatch, buffer, linkAt)) return;
  if (state.previous !== undefined) hasher.addFrame(state.previous, buffer, start, frame.chainStart);
  if (endsBatch) endBatch(state, buffer.subarray(linkAt, linkAt + digestBytes), where.offset);
}

/**
 * Counts a record into the batch in progress (starting one at `where` if none is). The link slot of a record that
 * does not end its batch must be zero (F-71); a batch larger than any writer writes is refused, so that a crafted
 * file cannot make the verifier gather without bound. False when the chain is broken here.
 */
function joinBatch(state: WalkState, where: Where, size: number, endsBatch: boolean, buffer: Buffer, linkAt: number): boolean {
  if (!endsBatch && !isZero(buffer, linkAt)) {
    state.broken = { ...where, message: 'a record inside a batch holds a link: only the last record of a batch does (F-71)' };
    return false;
  }
  const batch = (state.batch ??= { where, records: 0, bytes: 0 });
  batch.records++;
  batch.bytes += size;
  if (batch.bytes > batchBytesMax) {
    state.broken = { ...batch.where, message: `a batch of more than ${batchBytesMax} bytes: no writer writes one (F-13)` };
    return false;
  }
  return true;
}

/**
 * F-73: the batch in progress ends with the record at `offset`, whose stored link is `stored`: recomputed from
 * the link before, it must equal the stored one. The first batch of a trimmed log (no link before) is the anchor
 * instead (F-78): its stored link is taken on trust, so it never counts as a published head.
 */
function endBatch(state: WalkState, stored: Buffer, offset: number): void {
  const batch = state.batch as { where: Where; records: number };
  state.batch = null;
  if (state.previous === undefined) {
    state.anchor = { offset, hash: stored.toString('hex') };
    accept(state, offset, Buffer.from(stored), batch.records, false);
    return;
  }
  anchorAtGenesis(state, batch.where);
  const link = (state.hasher as ChainHasher).finish();
  if (!link.equals(stored)) {
    state.broken = {
      ...batch.where,
      message: 'the link does not follow from the records before: records were changed, removed, inserted or reordered (F-73)',
    };
    return;
  }
  accept(state, offset, link, batch.records);
}

/**
 * F-78: a walk that starts from a known link (the genesis link of a log at offset 0) takes it as its anchor when
 * its first batch ends, wherever that is: inside a filler as well, where the links that follow are never stored.
 */
function anchorAtGenesis(state: WalkState, first: Where): void {
  if (state.anchor === null && state.previous !== undefined) state.anchor = { offset: first.offset, hash: state.previous.toString('hex') };
}

/** The buffer `isZero` last looked into, and a view of it: a walk asks about every record of one window. */
let zeroCheckBuffer: Buffer | undefined;
let zeroCheckView: DataView | undefined;

/** Whether the link slot at `at` holds only zeros; four bytes a step, as it is asked of nearly every record. */
function isZero(buffer: Buffer, at: number): boolean {
  if (buffer !== zeroCheckBuffer) {
    zeroCheckBuffer = buffer;
    zeroCheckView = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }
  const view = zeroCheckView as DataView;
  for (let i = at; i < at + digestBytes; i += 4) if (view.getUint32(i) !== 0) return false;
  return true;
}

/**
 * A link the next batch chains from, after `records` more records verified. Only a `recomputed` one (not an
 * anchor's stored link, F-78) may be the published head.
 */
function accept(state: WalkState, offset: number, link: Buffer, records: number, recomputed = true): void {
  // This link was computed from theirs: it ties the batches that ended inside a filler before it.
  const untied = state.untied;
  state.untied = [];
  for (const batch of untied) count(state, batch.offset, batch.link, batch.records, true);
  count(state, offset, link, records, recomputed);
}

function count(state: WalkState, offset: number, link: Buffer, records: number, recomputed: boolean): void {
  state.previous = link;
  state.records += records;
  state.head = { offset, link };
  if (recomputed && state.published !== undefined && state.publishedHeadOffset === null && link.equals(state.published)) {
    state.publishedHeadOffset = offset;
  }
}

/**
 * F-76: a compaction filler over several records of a chained log: each covered record joins its batch from its
 * table entry; the links of the batches that end inside it are recomputed, and the last covered record's link
 * slot (the filler's) holds its batch's link when it ends one, zeros otherwise.
 */
function verifyFiller(buffer: Buffer, start: number, size: number, state: WalkState, where: Where, securityFlags: number): void {
  const hasher = state.hasher as ChainHasher;
  const count = coveredCount(buffer, start);
  const linkAt = start + size - 4 - digestBytes;
  if (!fillerFits(count, size)) {
    state.broken = { ...where, message: `the filler's table of ${count} records does not fit in it (F-76)` };
    return;
  }
  // Neither the filler's own batch flag nor its digest slot goes into a link: they must be what compaction wrote
  // (its last covered record's flag, zeros), or a change to them would pass unseen.
  const lastContinues = coveredAt(buffer, start, count - 1).batchContinues;
  if (((buffer[start + 26] as number) & flagBatchContinues) !== (lastContinues ? flagBatchContinues : 0) || !isZero(buffer, linkAt - digestBytes)) {
    state.broken = { ...where, message: "the filler's batch flag or digest slot is not as compaction writes it (F-76)" };
    return;
  }
  let offset = where.offset;
  for (let i = 0; i < count; i++) {
    const covered = coveredAt(buffer, start, i);
    if (!coveredFlagsValid(buffer, start, i)) {
      state.broken = { ...where, message: 'a record the filler covers has flag bytes compaction never writes (F-76)' };
      return;
    }
    if (covered.time < 0) {
      state.broken = { ...where, message: 'a record the filler covers has a time past the largest a log stores (F-76)' };
      return;
    }
    const last = i === count - 1;
    const endsBatch = !covered.batchContinues;
    // The filler's link slot is its last covered record's: only that record's batch flag says it must be zero.
    const slotMayHoldLink = endsBatch || !last;
    if (!joinBatch(state, { ...where, offset }, covered.size, slotMayHoldLink, buffer, linkAt)) return;
    if (state.previous !== undefined) {
      hasher.addCovered(state.previous, covered.digest, offset, covered.time, covered.keyLength, covered.batchContinues, securityFlags);
    }
    if (endsBatch && !last) {
      if (state.previous === undefined) {
        // A trimmed log's first batch ends inside a filler: its link is stored nowhere, so the anchor waits.
        state.batch = null;
      } else {
        const batch = state.batch as { where: Where; records: number };
        state.batch = null;
        anchorAtGenesis(state, batch.where);
        // Stored nowhere: chained on, and counted once a stored link after it verifies (at the latest the filler's
        // own). A filler that leaves its last batch open at the end of the log proves nothing of the batches in it.
        const link = hasher.finish();
        state.previous = link;
        state.untied.push({ offset, link, records: batch.records });
      }
    }
    offset += covered.size;
  }
  const lastCovered = coveredAt(buffer, start, count - 1);
  if (offset !== where.offset + size) {
    state.broken = { ...where, message: "the sizes of the records the filler covers do not add up to the filler's (F-76)" };
    return;
  }
  if (lastCovered.batchContinues) return;
  endBatch(state, buffer.subarray(linkAt, linkAt + digestBytes), offset - lastCovered.size);
  if (state.broken !== null) {
    // Links of batches that end inside the filler are stored nowhere: the change may be anywhere in it.
    const at = state.broken.offset < where.offset ? state.broken : where;
    state.broken = { ...at, message: "the links of the records the filler covers do not lead to the filler's link (F-76)" };
  }
}
