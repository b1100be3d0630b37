import { checkFileMode, directoryModeOf } from '../../io/file-mode.js';
import { closeSync, constants, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { codecs, type Codec, type JsonValue } from '../../codec/codec.js';
import { checkSignal, SluiceError, throwIfAborted } from '../../errors.js';
import { segmentBytesDefault, segmentBytesLimit, segmentBytesMin } from '../../limits.js';
import { AbstractLog, checkOffset, checkOffsets, type EncodedEntry, type RecordCursor } from '../abstract-log.js';
import type { LogRecord, LogSupports } from '../log.js';
import type { ScanRange } from '../range.js';
import { ForwardCursor, recordOf, ReverseCursor, type CursorHost } from './cursors.js';
import { Follower } from '../follower.js';
import { checkBooleanOptions, checkOptionNames, openFailure } from '../open-checks.js';
import { DirectoryLock } from './directory-lock.js';
import { flagDeleted, headerBytes, offsetAt, positionOf, readU64, segmentName, segmentNamePattern, type Frame } from './format.js';
import { checkChainAlgorithm, genesisLink, type ChainAlgorithm } from './security/chain.js';
import { checkChainKey, checkEncryption, type EncryptionOptions } from './security/keys.js';
import { LogSecurity } from './security/log-security.js';
import { FrameReader } from './frame-reader.js';
import { ProgressMeter, type Progress } from '../../progress/meter.js';
import { planCompaction, rewriteSegment, type CompactionPolicy } from './compaction.js';
import { clearJournal, eraseFrames, journalDeletes, readJournal, readJournalOrNone } from './deletes.js';
import { checkRetention, firstSegmentToKeep, type RetentionPolicy } from './retention.js';
import {
  createSegment,
  deletesFileName,
  listDirectory,
  makeDirectory,
  openNoFollow,
  refuseLinks,
  removeTemporary,
  syncDirectory,
} from './segment-files.js';
import { checkHeader, Segments } from './segments.js';
import { checkTail } from './tail.js';
import { SegmentWriter, type Durability } from './writer.js';

export type { Durability } from './writer.js';
export type { RetentionPolicy } from './retention.js';
export type { CompactionPolicy } from './compaction.js';
export type { ChainAlgorithm } from './security/chain.js';
export type { EncryptionKey, EncryptionOptions } from './security/keys.js';

/** The link of a chained log's last record (F-73): what an application publishes or signs to pin the log. */
export interface ChainHead {
  /** The offset of the last record (deleted or not); `-1` for a log without records. */
  readonly offset: number;
  /** The link of the last batch, 64 hex digits (32 zero bytes before the first record of a log, F-73). */
  readonly hash: string;
}

/** What a `compact` did. */
export interface CompactionResult {
  readonly segmentsRewritten: number;
  readonly recordsDropped: number;
  /** The frames' bytes dropped (positions stay taken: see F-64). */
  readonly bytesDropped: number;
  /** The disk space freed, as the file system counts its blocks (0 where it keeps no holes). */
  readonly diskBytesFreed: number;
}

/** Options of the long maintenance calls (`trim`, `compact`). */
export interface MaintenanceOptions {
  /** Aborting stops the call with `ABORTED` between whole steps (a segment dropped or rewritten entirely). */
  readonly signal?: AbortSignal;
  /** Progress, in the shape views report theirs (`view: 'compact'` or `'trim'`; a trim counts segments). */
  readonly onProgress?: (progress: Progress) => void;
}

function checkMaintenance(options: unknown): asserts options is MaintenanceOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { signal, onProgress } = options as MaintenanceOptions;
  checkSignal(signal);
  if (onProgress !== undefined && typeof onProgress !== 'function') throw new TypeError('onProgress must be a function');
}

function checkCompaction(policy: unknown): asserts policy is CompactionPolicy {
  if (typeof policy !== 'object' || policy === null) throw new TypeError('a compaction policy must be an object');
  for (const [name, value] of Object.entries(policy)) {
    if (name !== 'olderThanMs' && name !== 'tombstonesOlderThanMs') {
      throw new TypeError(`unknown compaction option ${name} (olderThanMs, tombstonesOlderThanMs)`);
    }
    if (value === undefined) continue;
    if (typeof value !== 'number') throw new TypeError(`${name} must be a number`);
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
}

export interface FileLogOptions<T> {
  /** How values are stored. Default: JSON. */
  readonly codec?: Codec<T>;
  /**
   * Open without the directory lock and never modify a file: appends fail with `READ_ONLY`. A read-only log
   * sees records a writer appends later (reads past the end look again; live streams watch the directory).
   */
  readonly readonly?: boolean;
  /** Create the directory and the first segment when missing (default `true`; ignored when read-only). */
  readonly create?: boolean;
  /** What a resolved append promises; see `Durability`. Default: `os`. */
  readonly durability?: Durability;
  /**
   * A segment is sealed and the next one started when a batch would take it past this size (a single batch
   * larger than this gets a segment of its own). Default 64 MiB.
   */
  readonly segmentBytesMax?: number;
  /** The clock for records appended without a time. */
  readonly now?: () => number;
  /**
   * Applied after every segment the writer seals (see `trim`): old segments beyond the policy are dropped in
   * the background. A failure is kept in `retentionFailure` and the next seal tries again.
   */
  readonly retention?: RetentionPolicy;
  /**
   * Tamper-evident log (FORMAT.md F-72, README "Tamper-evident logs"): every record carries a digest of its stored
   * bytes and a link chaining it to the record before, with this hash. Chosen when the log is created; for an
   * existing log, omitted means "as the log is", given it must be what the log's headers say
   * (`SECURITY_MISMATCH`).
   */
  readonly chain?: ChainAlgorithm;
  /**
   * The 32-byte key of a keyed chain (`chain: 'hmac-sha256'`): links are HMACs under it, so that nobody without
   * it can recompute the chain after a change. Never stored: the headers keep an 8-byte check value of it. Needed
   * to create or write such a log (`KEY_REQUIRED`; another key: `WRONG_KEY`), not to read it.
   */
  readonly chainKey?: Uint8Array;
  /**
   * Encrypted log (F-74, README "Encrypted logs"): keys and values are stored encrypted with AES-256-GCM. Given when
   * the log is created, it makes the log encrypted; an encrypted log cannot be opened without it (`KEY_REQUIRED`),
   * nor with a key other than the one its newest segment names (`WRONG_KEY`); a plain log refuses it
   * (`SECURITY_MISMATCH`). A new `key` rotates: appends continue in a new segment under it.
   */
  readonly encryption?: EncryptionOptions;
  /**
   * Read-only logs (`TypeError` otherwise): open an encrypted log without its key, to walk its frames (as `stat`
   * does); every read of a record then fails with `KEY_REQUIRED`.
   */
  readonly withoutKey?: boolean;
  /**
   * The mode of the files the log creates (segments, `LOCK`, `DELETES`, quarantined bytes); the directories it
   * creates get the same bits plus search (0o640 → 0o750). Default 0o600 (owner only), whatever the umask; a
   * `RangeError` unless the owner can read and write and no one execute. Existing files keep their modes.
   */
  readonly fileMode?: number;
}

/** What a `trim` removed. */
export interface TrimResult {
  readonly segmentsDropped: number;
  /** The size of the files removed. */
  readonly bytesDropped: number;
  /** The first available offset after the trim: the base of the oldest segment kept. */
  readonly firstOffset: number;
}

const supports: LogSupports = { keys: true, times: true, persistent: true, readonly: true, deletes: true };

/**
 * The native log: a directory of segment files in the format of FORMAT.md. A record's offset is its byte
 * position in the concatenated segments (headers excluded), so `get` reads one record at a computed position
 * without an index, and the log can be read backwards through the lengths at both ends of every frame.
 */
export class FileLog<T = JsonValue> extends AbstractLog<T> {
  readonly supports = supports;
  readonly dir: string;
  readonly readonly: boolean;
  readonly durability: Durability;
  #segments!: Segments;
  #reader!: FrameReader;
  #writer: SegmentWriter | undefined;
  #lock: DirectoryLock | undefined;
  #host!: CursorHost<T>;
  #follower: Follower | undefined;
  /** The descriptor of the newest segment of a read-only log (the writer owns its own otherwise). */
  #followFd: number | undefined;
  readonly #segmentBytesMax: number;
  readonly #retention: RetentionPolicy | undefined;
  readonly #clock: () => number;
  readonly #fileMode: number;
  /** Trims and deletes run one at a time. */
  #maintenance: Promise<unknown> = Promise.resolve();
  #retentionFailure: Error | undefined;
  /** A failed delete (see `#delete`); the writer keeps a failed append's. */
  #failure: SluiceError | undefined;
  readonly #security: LogSecurity;

  private constructor(dir: string, options: FileLogOptions<T>) {
    super({ codec: options.codec ?? codecs.json<T>(), ...(options.now ? { now: options.now } : {}) });
    this.dir = dir;
    this.readonly = options.readonly ?? false;
    this.durability = options.durability ?? 'os';
    this.#segmentBytesMax = options.segmentBytesMax ?? segmentBytesDefault;
    this.#retention = options.retention;
    this.#clock = options.now ?? Date.now;
    this.#fileMode = checkFileMode(options.fileMode);
    this.#security = new LogSecurity({
      chain: options.chain,
      chainKey: options.chainKey,
      encryption: options.encryption,
      withoutKey: options.withoutKey,
      readonly: this.readonly,
    });
  }

  /** The hash of a tamper-evident log (F-72), or `null`. */
  get chainAlgorithm(): ChainAlgorithm | null {
    return this.#security.chainAlgorithm;
  }

  /** True when the log is tamper-evident (F-72). */
  get chained(): boolean {
    return this.#security.header.chainAlgorithm !== 0;
  }

  /** True when the log's records are encrypted (F-74). */
  get encrypted(): boolean {
    return this.#security.header.cipher !== 0;
  }

  /**
   * The link of the last record (F-73): publish or sign it, and `sluice check --verify-chain --head <hash>` proves
   * later that the log up to that record is unchanged. Records appended but not yet visible are not included.
   * `SECURITY_MISMATCH` when the log is not chained; `LOG_CLOSED` after close.
   */
  chainHead(): ChainHead {
    if (this.status !== 'open') throw this._closedError();
    if (!this.chained) throw new SluiceError('SECURITY_MISMATCH', `the log at ${this.dir} is not chained`);
    const since = this.since;
    this.#checkFollowed(since);
    return { offset: since, hash: (since < 0 ? genesisLink : this.#security.linkAt(this.#segments, since)).toString('hex') };
  }

  /** Opens (or creates) the log in `dir`. Fails with `NOT_A_LOG`, `LOG_NOT_FOUND`, `LOCKED`, `CORRUPT_*`. */
  static async open<T = JsonValue>(dir: string, options: FileLogOptions<T> = {}): Promise<FileLog<T>> {
    checkOptions(dir, options);
    const log = new FileLog<T>(dir, options);
    try {
      await log.#open(options);
    } catch (error) {
      log.#release();
      throw openFailure(error, dir);
    }
    return log;
  }

  get segments(): Segments {
    return this.#segments;
  }

  async #open(options: FileLogOptions<T>): Promise<void> {
    const dir = this.dir;
    let listing = await listDirectory(dir);
    if (listing === undefined) {
      if (this.readonly || options.create === false) {
        throw new SluiceError('LOG_NOT_FOUND', `there is no log at ${dir}`, { file: dir });
      }
      await makeDirectory(dir, this.#fileMode);
    } else if (listing.bases.length === 0 && listing.foreign.length > 0) {
      throw new SluiceError('NOT_A_LOG', `${dir} holds files that are not a Sluice log (${listing.foreign[0]}, …)`, {
        file: dir,
      });
    }
    if (!this.readonly) {
      this.#lock = DirectoryLock.acquire(dir, undefined, this.#fileMode);
      // Listed again under the lock: a writer that just closed may have added a segment.
      listing = (await listDirectory(dir)) ?? { bases: [], temporary: [], foreign: [], links: [] };
      // A writer modifies segments and the deletes journal in place: never a file elsewhere through a link.
      refuseLinks(dir, listing);
      await removeTemporary(dir, listing.temporary);
    }
    const bases = listing?.bases ?? [];
    if (bases.length === 0 && !this.readonly) {
      // A directory without segments holds no log: `create: false` makes none there either.
      if (options.create === false) throw new SluiceError('LOG_NOT_FOUND', `there is no log at ${dir}`, { file: dir });
      const fd = await createSegment(dir, 0, this.#security.create(), this.#fileMode);
      this.#start([0], 0, fd, offsetAt(0, headerBytes), false);
      return;
    }
    if (bases.length === 0) {
      this.#security.create();
      this.#segments = new Segments(dir, [], 0);
      this.#segments.deletionPending = (offset) => this.#deletionPending(offset);
      this.#reader = new FrameReader(this.#segments);
      this.#host = this.#cursorHost();
      this._opened(-1);
      return;
    }
    const base = bases[bases.length - 1] as number;
    const path = join(dir, segmentName(base));
    let fd = this.readonly ? openSync(path, 'r') : openNoFollow(path, constants.O_RDWR);
    let rollFirst = false;
    try {
      const adopted = this.#security.adopt(checkHeader(fd, path, base).security, path, fstatSync(fd).size === headerBytes);
      // A new current key (F-75: one key per segment): an empty segment is re-created under it, otherwise the
      // first append starts a new segment — or, when the tail check below cuts the segment back to empty, the
      // writer re-creates it under the new key before writing to it.
      rollFirst = adopted.rollFirst;
      if (adopted.recreate !== undefined) {
        closeSync(fd);
        fd = -1;
        fd = await createSegment(dir, base, adopted.recreate);
      }
    } catch (error) {
      if (fd >= 0) closeSync(fd);
      throw error;
    }
    this.#start(bases, base, fd, offsetAt(base, fstatSync(fd).size), rollFirst);
  }

  /** F-74: an encrypted frame's key and value, authenticated, decrypted and decoded. */
  #decrypt(offset: number, buffer: Buffer, frame: Frame): LogRecord<T> {
    const plaintext = this.#security.decrypt(this.#segments, offset, buffer, frame);
    const keyLength = frame.keyLength;
    const key = keyLength === 0 ? undefined : Uint8Array.prototype.slice.call(plaintext, 0, keyLength);
    return this._record(offset, plaintext, keyLength, plaintext.length, frame.time, key);
  }

  /** Runs the tail check (F-40) on the last segment and sets the log up from its verdict. */
  #start(bases: number[], base: number, fd: number, fileEnd: number, rollFirst: boolean): void {
    const segments = new Segments(this.dir, bases, fileEnd, this.#fileMode);
    segments.followsWriter = this.readonly;
    if (this.readonly) segments.deletionPending = (offset) => this.#deletionPending(offset);
    segments.headerCheck = (header, path) => this.#security.checkSegment(header.security, path);
    segments.pin(base, fd);
    this.#segments = segments;
    this.#reader = new FrameReader(segments);
    this.#host = this.#cursorHost();
    if (this.readonly) this.#followFd = fd;
    const index = bases.length - 1;
    let verdict: ReturnType<typeof checkTail>;
    let since: number;
    try {
      if (!this.readonly) this.#finishDeletes(fileEnd);
      // Read-only, a half-rewritten deletion reads as the deleted record (`deletionPending`), not as a torn write.
      verdict = checkTail(segments, this.#reader, index, fileEnd);
      segments.end = verdict.end;
      if (verdict.cut !== undefined && !this.readonly) this.#cut(fd, base, verdict.end, fileEnd);
      this.#reader.reset();
      since = verdict.since;
      // An empty last segment: the last record ends the segment before it (which a trim always keeps).
      if (since < 0 && index > 0) since = this.#reader.endingAt(index - 1, base, 'record').offset;
    } catch (error) {
      // The writer that would own the descriptor does not exist yet (a read-only log's is closed by #release).
      if (!this.readonly) closeSync(fd);
      throw error;
    }
    if (!this.readonly) {
      const sealer = this.#security.sealer(segments, verdict.end);
      this.#writer = new SegmentWriter(
        {
          segments,
          fd,
          durability: this.durability,
          segmentBytesMax: this.#segmentBytesMax,
          onVisible: (last, end) => {
            // Monotonic, as since is: acknowledgments of one write may arrive in any order.
            segments.end = Math.max(segments.end, end);
            this._advance(last);
          },
          ...(this.#retention === undefined ? {} : { onSealed: () => this.#applyRetention() }),
          ...(sealer === undefined ? {} : { sealer, header: this.#security.writerHeader(), rollFirst }),
        },
        base,
        verdict.end,
        since,
      );
      if (this.durability === 'buffered') segments.tail = this.#writer;
    }
    this._opened(since);
    if (this.readonly && since >= base) this.#lastTaken = this.#frameMark(index, since);
  }

  /**
   * Finishes the deletions a crash interrupted (F-63), before the tail check: a torn rewrite of the last frame
   * must be redone, not taken for a torn append and cut.
   */
  #finishDeletes(fileEnd: number): void {
    const offsets = readJournal(this.dir);
    if (offsets.length === 0) return;
    const segments = this.#segments;
    segments.end = fileEnd;
    eraseFrames(segments, offsets);
    clearJournal(this.dir);
  }

  /**
   * Read-only logs: whether the `DELETES` journal (F-63), which a read-only log leaves to the writer, names
   * `offset`. Asked only of a frame that fails its checksum, and so only a hint: a journal that cannot be read is
   * as good as none, and the frame is then damage. The journal is read again only when its file changed, since
   * a scan may ask of each of a large deletion's records.
   */
  #deletionPending(offset: number): boolean {
    let stats: Stats;
    try {
      stats = statSync(join(this.dir, deletesFileName));
    } catch {
      this.#journal = undefined;
      return false;
    }
    let seen = this.#journal;
    if (seen === undefined || seen.ino !== stats.ino || seen.size !== stats.size || seen.mtimeMs !== stats.mtimeMs || seen.ctimeMs !== stats.ctimeMs) {
      seen = { ino: stats.ino, size: stats.size, mtimeMs: stats.mtimeMs, ctimeMs: stats.ctimeMs, offsets: new Set(readJournalOrNone(this.dir)) };
      this.#journal = seen;
    }
    return seen.offsets.has(offset);
  }

  /** The `DELETES` journal as `#deletionPending` last read it, with the file's identity and times then. */
  #journal: JournalRead | undefined;

  /** Moves the bytes of a torn write aside into `quarantine/` (F-42) and truncates the segment to `end`. */
  #cut(fd: number, base: number, end: number, fileEnd: number): void {
    const quarantine = join(this.dir, 'quarantine');
    mkdirSync(quarantine, { recursive: true, mode: directoryModeOf(this.#fileMode) });
    const bytes = Buffer.alloc(fileEnd - end);
    let done = 0;
    const index = this.#segments.bases.length - 1;
    while (done < bytes.length) {
      const read = this.#segments.read(index, positionOf(base, end) + done, bytes, done, bytes.length - done);
      if (read === 0) break;
      done += read;
    }
    const name = `${segmentName(base)}.${positionOf(base, end)}.${Date.now()}.torn`;
    writeFileSync(join(quarantine, name), bytes.subarray(0, done), { mode: this.#fileMode });
    ftruncateSync(fd, positionOf(base, end));
    fsyncSync(fd);
  }

  #cursorHost(): CursorHost<T> {
    return {
      segments: this.#segments,
      record: (offset, buffer, start, end, time, key) => this._record(offset, buffer, start, end, time, key),
      refresh: () => this.#refresh(),
      check: (offset) => this.#checkFollowed(offset),
      securityFlags: this.#security.frameFlags,
      decrypt: (offset, buffer, frame) => this.#decrypt(offset, buffer, frame),
      mismatch: (offset) => this.#security.mismatch(this.#segments, offset),
    };
  }

  protected _append(entries: readonly EncodedEntry[]): Promise<number[]> {
    if (this.#writer === undefined) {
      return Promise.reject(new SluiceError('READ_ONLY', `the log at ${this.dir} was opened read-only`));
    }
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return this.#writer.append(entries);
  }

  protected override _appendRefusal(): Error | undefined {
    if (this.#writer === undefined) return new SluiceError('READ_ONLY', `the log at ${this.dir} was opened read-only`);
    return this.#writeFailure;
  }

  protected _read(offset: number): LogRecord<T> {
    // Taking in new records checks for a cut as well.
    if (offset > this.since) this.#refresh();
    else this.#checkFollowed(offset);
    // Another process may have deleted (rewritten) a record this reader's window still holds.
    if (this.readonly) this.#reader.reset();
    const segments = this.#segments;
    if (offset > this.since || segments.bases.length === 0 || offset < segments.first) {
      throw new SluiceError('OFFSET_OUT_OF_RANGE', `offset ${offset} is outside the log`, { offset });
    }
    let frame: Frame;
    try {
      frame = this.#reader.at(segments.indexOf(offset), offset, 'maybe', false);
    } catch (error) {
      // No record there any more may mean the writer cut it away: say so rather than call it damage.
      this.#checkFollowed(offset);
      throw error;
    }
    if (frame.deleted) throw new SluiceError('RECORD_DELETED', `the record at offset ${offset} was deleted`, { offset });
    return recordOf(this.#host, this.#reader, offset, frame);
  }

  protected _cursor(range: ScanRange): RecordCursor<T> {
    return range.reverse ? new ReverseCursor(this.#host, range) : new ForwardCursor(this.#host, range);
  }

  protected _sync(): Promise<number> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return this.#writer === undefined ? Promise.resolve(this.since) : this.#writer.sync();
  }

  /**
   * Whether `offset` lies inside a filler (F-64): within bytes that held records compaction dropped, rather than
   * at a record's start or inside a record. Walks the frames of its segment from the segment's start, so it is
   * for rare questions (the runner asks it of a view's `since` at which no record starts any more). False outside
   * the log, and where a frame before `offset` cannot be read.
   */
  compactedAt(offset: number): boolean {
    checkOffset(offset);
    if (this.status !== 'open') throw this._closedError();
    const segments = this.#segments;
    if (offset < segments.first || offset >= segments.end) return false;
    const index = segments.indexOf(offset);
    // A reader of its own: the log's shared one keeps its window for the reads in flight.
    const reader = new FrameReader(segments);
    const end = segments.endOf(index);
    for (let at = segments.bases[index] as number; at < end; ) {
      const frame = reader.tryAt(index, at, true);
      if (typeof frame === 'string' || at === offset) return false;
      if (at + frame.size > offset) return frame.filler;
      at += frame.size;
    }
    return false;
  }

  /** The first available offset: `0` until the log is trimmed, then the base of its oldest segment (F-60). */
  get firstOffset(): number {
    return this.#segments.first;
  }

  /** Why the last background trim of the `retention` policy failed, if it did. */
  get retentionFailure(): Error | undefined {
    return this.#retentionFailure;
  }

  /**
   * Drops whole sealed segments from the front of the log as `policy` asks (see `RetentionPolicy`), never the
   * segment being written. The offsets of the records kept do not change; reading a dropped offset fails with
   * `OFFSET_OUT_OF_RANGE`, and a stream that was reading a dropped segment ends with that code. Files are
   * removed oldest first and the directory is synced, so a crash during a trim leaves a shorter prefix dropped,
   * never a gap. Every append acknowledged before the call counts (in `buffered` durability they are written
   * first). Trims run one at a time; appends and reads go on meanwhile. Fails with `READ_ONLY` on a
   * read-only log; a policy that is not counts and offsets throws `TypeError` / `RangeError`.
   */
  trim(policy: RetentionPolicy, options: MaintenanceOptions = {}): Promise<TrimResult> {
    checkRetention(policy);
    checkMaintenance(options);
    return this.#maintain(() => this.#trim(policy, options));
  }

  async #trim(policy: RetentionPolicy, options: MaintenanceOptions): Promise<TrimResult> {
    throwIfAborted(options.signal, 'the trim');
    if (this.status !== 'open') throw this._closedError();
    // Appends acknowledged but not yet written (buffered durability) may start a segment the writer has not made
    // yet: written first, so that the trim sees the segments those appends are in, as it would in any other mode.
    await (this.#writer as SegmentWriter).sync();
    const segments = this.#segments;
    const from = segments.firstIndex;
    const keep = firstSegmentToKeep(segments, policy, this.#clock());
    if (keep <= from) return { segmentsDropped: 0, bytesDropped: 0, firstOffset: segments.first };
    const paths: string[] = [];
    let bytes = 0;
    for (let index = from; index < keep; index++) {
      paths.push(segments.path(segments.bases[index] as number));
      bytes += segments.endOf(index) - (segments.bases[index] as number) + headerBytes;
    }
    // Readers learn first, so none starts reading a file about to go. Past this point the trim is not aborted:
    // the segments are gone for readers already.
    segments.trimBefore(keep);
    const meter = new ProgressMeter('trim', options.onProgress);
    const target = segments.first;
    try {
      for (const [i, path] of paths.entries()) {
        await unlink(path).catch(ignoreMissing);
        meter.update(segments.bases[from + i + 1] as number, target, 0, i + 1, paths.length, i + 1 === paths.length);
      }
      await syncDirectory(this.dir);
    } catch (cause) {
      throw new SluiceError('WRITE_FAILED', `trimming ${this.dir} failed: ${(cause as Error).message}`, { cause, file: this.dir });
    }
    return { segmentsDropped: paths.length, bytesDropped: bytes, firstOffset: segments.first };
  }

  /**
   * Deletes records (F-62): each frame is rewritten in place with its key and value zeroed and a deleted flag,
   * so `get` of it fails with `RECORD_DELETED`, streams skip it, and every offset stays as it was. The offsets
   * are journaled (F-63) and synced before anything is rewritten, so a crash leaves each deletion done or
   * finished by the next open. Deleting a deleted record does nothing. Every offset is checked first:
   * `OFFSET_OUT_OF_RANGE` (past the end, or trimmed), `NOT_A_RECORD`; then nothing is changed. A stream that had
   * already read a record's bytes may still hand it out. Fails with `READ_ONLY` on a read-only log. A failed
   * write (`WRITE_FAILED`) is sticky, as a failed append's is: every later append, sync, delete, trim and
   * compaction fails with it until the log is reopened, and that open finishes the deletion if its journal
   * reached the disk (so a failed delete may still take effect; a failed append never does).
   */
  delete(offsets: number | readonly number[]): Promise<void> {
    const list = checkOffsets(offsets);
    return this.#maintain(() => this.#delete(list));
  }

  async #delete(offsets: readonly number[]): Promise<void> {
    if (this.status !== 'open') throw this._closedError();
    // Records acknowledged but not yet written (buffered durability) must be in the file to be rewritten.
    await (this.#writer as SegmentWriter).sync();
    const segments = this.#segments;
    const reader = new FrameReader(segments);
    const pending: number[] = [];
    for (const offset of new Set(offsets)) {
      if (offset > this.since || offset < segments.first) {
        throw new SluiceError('OFFSET_OUT_OF_RANGE', `offset ${offset} is outside the log`, { offset });
      }
      const frame = reader.at(segments.indexOf(offset), offset, 'maybe', false);
      if (!frame.deleted) pending.push(offset);
    }
    if (pending.length === 0) return;
    try {
      await journalDeletes(this.dir, pending, this.#fileMode);
      eraseFrames(segments, pending);
      clearJournal(this.dir);
    } catch (cause) {
      // Sticky, like a failed append: a rewrite may be half done (a torn frame) and the journal may or may not
      // have reached the disk; only the next open, which finishes the journal, settles it. Until then this
      // handle reads a half-rewritten frame among these as the deleted record, as a read-only log does (F-63),
      // not as damage: a rewrite only begins once the journal naming it is synced.
      const erasing = new Set(pending);
      segments.deletionPending = (offset) => erasing.has(offset);
      this.#failure =
        cause instanceof SluiceError
          ? cause
          : new SluiceError('WRITE_FAILED', `deleting records in ${this.dir} failed: ${(cause as Error).message}`, { cause, file: this.dir });
      throw this.#failure;
    } finally {
      // A rewrite that failed half-way may have torn a frame: no window may serve the old bytes.
      this.#reader.reset();
    }
  }

  /**
   * Compacts the sealed segments (F-64): drops records whose key has a later record (older than
   * `olderThanMs`), tombstones (a key's last record, with an empty value) older than `tombstonesOlderThanMs`
   * when given, and deleted records, by rewriting each segment that has any to drop into a new file swapped in
   * by rename, with the directory synced. Offsets of the records kept never change and `get` reads them as
   * before; a dropped record's offset reads as `RECORD_DELETED` at the start of a dropped run and
   * `NOT_A_RECORD` inside it, and streams skip them. Appends and reads go on meanwhile (a reader that opened
   * the old file keeps reading it); deletes and trims wait. A crash at any point leaves each segment old or
   * new, whole. Every append acknowledged before the call counts (in `buffered` durability they are written
   * first). `INVALID_INPUT` when no record of the log has a key (there is nothing to compact by).
   */
  compact(policy: CompactionPolicy = {}, options: MaintenanceOptions = {}): Promise<CompactionResult> {
    checkCompaction(policy);
    checkMaintenance(options);
    return this.#maintain(() => this.#compact(policy, options));
  }

  async #compact(policy: CompactionPolicy, options: MaintenanceOptions): Promise<CompactionResult> {
    if (this.status !== 'open') throw this._closedError();
    throwIfAborted(options.signal, 'the compaction');
    // As a trim: the segments of appends acknowledged but not yet written (buffered durability) are made first.
    await (this.#writer as SegmentWriter).sync();
    const segments = this.#segments;
    const decryptKey = this.encrypted ? (offset: number, buffer: Buffer, frame: Frame) => this.#decrypt(offset, buffer, frame).key : undefined;
    const { plans, keyed } = planCompaction(segments, policy, this.#clock(), decryptKey);
    const meter = new ProgressMeter('compact', options.onProgress);
    const total = plans.reduce((sum, plan) => sum + (plan.dropped === 0 ? 0 : segments.endOf(plan.index) - (segments.bases[plan.index] as number)), 0);
    let done = 0;
    let records = 0;
    if (keyed === 0) throw new SluiceError('INVALID_INPUT', `no record of ${this.dir} has a key: there is nothing to compact by`);
    const result = { segmentsRewritten: 0, recordsDropped: 0, bytesDropped: 0, diskBytesFreed: 0 };
    for (const plan of plans) {
      if (plan.dropped === 0) continue;
      if (this.status !== 'open') break;
      // Between segments only: each one is swapped in whole or not at all.
      throwIfAborted(options.signal, 'the compaction');
      // Trimmed meanwhile? Then the file is gone: nothing to rewrite.
      if ((segments.bases[plan.index] as number) < segments.first) continue;
      let sizes: { before: number; after: number };
      try {
        sizes = rewriteSegment(segments, plan);
        await syncDirectory(this.dir);
      } catch (cause) {
        throw new SluiceError('WRITE_FAILED', `compacting ${this.dir} failed: ${(cause as Error).message}`, { cause, file: this.dir });
      }
      segments.rewritten(segments.bases[plan.index] as number);
      this.#reader.reset();
      result.segmentsRewritten++;
      result.recordsDropped += plan.dropped;
      result.bytesDropped += plan.droppedBytes;
      result.diskBytesFreed += Math.max(0, sizes.before - sizes.after);
      done += segments.endOf(plan.index) - (segments.bases[plan.index] as number);
      records += plan.records.length;
      meter.update(segments.endOf(plan.index), segments.bases[segments.bases.length - 1] as number, records, done, total);
      // One segment per turn: appends and reads run in between.
      await new Promise((resolve) => setImmediate(resolve));
    }
    meter.update(this.since, this.since, records, total, total, true);
    return result;
  }

  /**
   * Runs a trim, delete or compaction after those already asked for: they change files, one at a time. After a
   * failed append or delete they fail with its error (sticky until reopen). A failed trim or compaction is not
   * sticky: it leaves every file whole (a segment still there, a temporary file the next open removes).
   */
  #maintain<R>(task: () => Promise<R>): Promise<R> {
    if (this.status !== 'open') return Promise.reject(this._closedError());
    if (this.#writer === undefined) {
      return Promise.reject(new SluiceError('READ_ONLY', `the log at ${this.dir} was opened read-only`));
    }
    const run = this.#maintenance.then(() => {
      const failure = this.#writeFailure;
      if (failure !== undefined) throw failure;
      return task();
    });
    this.#maintenance = run.catch(() => undefined);
    return run;
  }

  /** The first failed write of this log (its own or its writer's): every later write fails with it. */
  get #writeFailure(): SluiceError | undefined {
    return this.#failure ?? this.#writer?.failure;
  }

  #applyRetention(): void {
    const policy = this.#retention;
    if (policy === undefined || this.status !== 'open') return;
    this.trim(policy).then(
      () => (this.#retentionFailure = undefined),
      (error: unknown) => (this.#retentionFailure = error as Error),
    );
  }

  protected async _close(): Promise<void> {
    this.#follower?.close();
    try {
      await this.#maintenance;
      await this.#writer?.close();
    } finally {
      this.#release();
    }
  }

  #release(): void {
    this.#segments?.close();
    if (this.#followFd !== undefined) closeSync(this.#followFd);
    this.#followFd = undefined;
    this.#lock?.release();
  }

  /**
   * Read-only logs: takes in complete batches another process appended since we last looked, and moves on to
   * segments it started. Never modifies anything, and never reads past the last complete batch.
   */
  #refresh(): void {
    if (!this.readonly || this.status !== 'open') return;
    if (this.#rewound !== undefined) throw this.#rewound;
    const segments = this.#segments;
    for (;;) {
      const fd = this.#followedFd();
      if (fd !== undefined) {
        const index = segments.bases.length - 1;
        const fileEnd = offsetAt(segments.bases[index] as number, fstatSync(fd).size);
        this.#checkNotCut(index, fileEnd);
        if (fileEnd > segments.end && this.#takeIn(index, fileEnd)) continue;
      }
      if (!this.#followNextSegment()) return;
    }
  }

  /**
   * Read-only logs, before reading records of the segment being written: fails with `LOG_REWOUND` when the writer
   * cut away records this reader took in. `offset`: what the caller is about to read (older segments are sealed,
   * synced before the next was made, and never cut).
   */
  #checkFollowed(offset: number): void {
    if (!this.readonly || this.status !== 'open') return;
    if (this.#rewound !== undefined) throw this.#rewound;
    const segments = this.#segments;
    const fd = this.#followFd;
    const index = segments.bases.length - 1;
    if (fd === undefined || index < 0 || offset < (segments.bases[index] as number)) return;
    const stats = fstatSync(fd);
    // A cut, a new append and a deletion's rewrite all change the file's size or times: while they stay as at the
    // last check that found the last record whole, that record still stands (a `get` need not read it again).
    const seen = this.#lastChecked;
    if (seen !== undefined && seen.last === this.#lastTaken && seen.size === stats.size && seen.mtimeMs === stats.mtimeMs && seen.ctimeMs === stats.ctimeMs) return;
    this.#checkNotCut(index, offsetAt(segments.bases[index] as number, stats.size));
    this.#lastChecked =
      this.#unreadableSinceMs === undefined ? { last: this.#lastTaken, size: stats.size, mtimeMs: stats.mtimeMs, ctimeMs: stats.ctimeMs } : undefined;
  }

  /** What the file looked like when `#checkFollowed` last found the last record taken in whole. */
  #lastChecked: { last: FrameMark | undefined; size: number; mtimeMs: number; ctimeMs: number } | undefined;
  readonly #markBytes = Buffer.alloc(28);

  /**
   * The descriptor of the segment being followed. While nothing of it was taken in, the writer may have re-created
   * it under another key (F-75: a new file renamed over it): the new file is opened in its place.
   */
  #followedFd(): number | undefined {
    const fd = this.#followFd;
    const segments = this.#segments;
    const base = segments.bases[segments.bases.length - 1];
    if (fd === undefined || base === undefined || segments.end !== base) return fd;
    const path = segments.path(base);
    try {
      if (statSync(path).ino === fstatSync(fd).ino) return fd;
    } catch {
      return fd;
    }
    const replacement = openFollowed(path, base);
    if (replacement === undefined) return fd;
    segments.pin(base, replacement);
    closeSync(fd);
    this.#followFd = replacement;
    return replacement;
  }

  /**
   * Read-only logs: the size and checksum of the last record taken in from the segment being written, and whether
   * it was deleted. The writer never changes a record it acknowledged but to delete it (same size, F-62); a batch
   * it wrote but failed to sync (`disk` durability) it cuts away, and other processes may have read it by then.
   */
  #lastTaken: FrameMark | undefined;
  #rewound: SluiceError | undefined;
  /** When the last record taken in was first found not to be a valid frame (see `#checkNotCut`). */
  #unreadableSinceMs: number | undefined;

  #frameMark(index: number, offset: number): FrameMark | undefined {
    const bytes = this.#markBytes;
    const base = this.#segments.bases[index] as number;
    if (this.#segments.read(index, positionOf(base, offset), bytes, 0, 28) < 28) return undefined;
    // A frame for another offset (its offset field, F-10) is marked size 0: no record of ours stands there.
    const size = readU64(bytes, 8) === offset ? bytes.readUInt32LE(0) : 0;
    return { offset, size, checksum: bytes.readUInt32LE(4), deleted: ((bytes[26] as number) & flagDeleted) !== 0 };
  }

  /**
   * Fails the log's reads with `LOG_REWOUND` when the writer cut away records this reader took in: the file is
   * shorter than what was taken in, or the last record taken in is no longer there. A deletion rewrites that record
   * in place (F-62) with one write, which a read can meet half done: a record that is not a valid frame is taken
   * for cut only when it still is not after `rewriteMs`.
   */
  #checkNotCut(index: number, fileEnd: number): void {
    const segments = this.#segments;
    const base = segments.bases[index] as number;
    if (fileEnd < segments.end || !this.#lastRecordStands(index, base)) {
      const file = segments.path(base);
      this.#rewound = new SluiceError(
        'LOG_REWOUND',
        `the writer cut away records this reader had read (before offset ${segments.end} of ${file}, which now ends at ` +
          `${fileEnd}): a batch whose write or sync failed is undone after other processes could read it; reopen the ` +
          'log to read it as it now is',
        { file, offset: Math.min(fileEnd, segments.end) },
      );
      this._changed();
      throw this.#rewound;
    }
  }

  /** Whether the last record taken in from segment `index` is still there (maybe deleted since), or may yet be. */
  #lastRecordStands(index: number, base: number): boolean {
    const last = this.#lastTaken;
    if (last === undefined || last.offset < base) return true;
    const now = this.#frameMark(index, last.offset);
    // A deletion rewrites every byte but keeps the size and offset fields as they were: a frame without them is
    // another record, or none.
    if (now === undefined || now.size !== last.size) return false;
    if (now.checksum === last.checksum || now.deleted) {
      this.#unreadableSinceMs = undefined;
      if (now.checksum !== last.checksum) this.#lastTaken = now;
      return true;
    }
    // The whole frame, checked (F-12): a torn read of a deletion, or another record where it was.
    const reader = new FrameReader(this.#segments);
    const frame = reader.tryAt(index, last.offset, false);
    if (typeof frame !== 'string') {
      const checksum = reader.buffer.readUInt32LE(reader.positionOf(last.offset) + 4);
      if (frame.size !== last.size || (checksum !== last.checksum && !frame.deleted)) return false;
      this.#lastTaken = { offset: last.offset, size: frame.size, checksum, deleted: frame.deleted };
      this.#unreadableSinceMs = undefined;
      return true;
    }
    const nowMs = Date.now();
    this.#unreadableSinceMs ??= nowMs;
    return nowMs - this.#unreadableSinceMs < rewriteMs;
  }

  /** Advances the visible end over complete batches up to `fileEnd`; true when it moved. */
  #takeIn(index: number, fileEnd: number): boolean {
    const segments = this.#segments;
    const visible = segments.end;
    segments.end = fileEnd;
    const reader = new FrameReader(segments);
    let offset = visible;
    let batchEnd = visible;
    let since = -1;
    let record = -1;
    try {
      while (offset < fileEnd) {
        const frame = reader.tryAt(index, offset, true);
        if (typeof frame === 'string') break;
        record = offset;
        offset += frame.size;
        if (!frame.batchContinues) {
          batchEnd = offset;
          since = record;
        }
      }
    } finally {
      segments.end = batchEnd;
      this.#reader.reset();
    }
    if (since >= 0) {
      this.#lastTaken = this.#frameMark(index, since);
      this._advance(since);
    }
    return batchEnd > visible;
  }

  /** Opens the segment that follows the newest one, if the writer started it; true when it did. */
  #followNextSegment(): boolean {
    const segments = this.#segments;
    const next = segments.end;
    if (segments.bases[segments.bases.length - 1] === next) return false;
    let base = next;
    let fd = openFollowed(join(this.dir, segmentName(next)), next, true);
    if (fd === null) {
      // Segments are trimmed from the front: while the one followed is still there, no segment starts at `next`
      // because this reader has not taken in the end of the one it follows (the writer finished its last batch,
      // sealed it and made the next one since the last look). The next refresh takes that end in.
      if (existsSync(segments.path(segments.bases[segments.bases.length - 1] as number))) return false;
      // Else the writer trimmed past everything this reader knows (segments are made in order, so a newer one
      // without this one means that): it goes on from the oldest segment left.
      const oldest = this.#oldestSegmentAfter(next);
      if (oldest === undefined) return false;
      base = oldest;
      fd = openFollowed(join(this.dir, segmentName(base)), base);
    }
    if (fd === undefined || fd === null) return false;
    segments.bases.push(base);
    if (base !== next) {
      // Reads of the records in between (never seen here) fail with OFFSET_OUT_OF_RANGE, as trimmed ones do.
      segments.end = base;
      segments.trimBefore(segments.bases.length - 1);
    }
    segments.pin(base, fd);
    if (this.#followFd !== undefined) closeSync(this.#followFd);
    this.#followFd = fd;
    return true;
  }

  /** The base of the oldest segment file in the directory after offset `after`, if any. */
  #oldestSegmentAfter(after: number): number | undefined {
    let oldest: number | undefined;
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return undefined;
    }
    for (const name of names) {
      const match = segmentNamePattern.exec(name);
      const base = match === null ? NaN : Number(match[1]);
      if (base > after && (oldest === undefined || base < oldest)) oldest = base;
    }
    return oldest;
  }

  /**
   * A live stream of a read-only log waits: watch the directory (and poll slowly, in case a watch event is
   * missed) for the writer's records. The timer holds the process open only while a stream waits, as an
   * in-flight read would.
   */
  protected override _followStart(): void {
    if (!this.readonly || this.status !== 'open') return;
    this.#follower ??= new Follower(this.dir, () => {
      try {
        this.#refresh();
      } catch {
        // From a watch event or a timer: the streams waiting read again, and meet the error there.
        this._changed();
      }
    });
    this.#follower.start();
  }

  protected override _followStop(): void {
    this.#follower?.idle();
  }
}

/**
 * Read-only logs: opens a segment file the writer made and checks its header (F-6, F-7); `undefined` when that
 * fails (it is looked at again on the next refresh), or `null` when the file does not exist and `missing` asks to
 * be told.
 */
function openFollowed(path: string, base: number): number | undefined;
function openFollowed(path: string, base: number, missing: true): number | null | undefined;
function openFollowed(path: string, base: number, missing = false): number | null | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    return missing && (error as NodeJS.ErrnoException).code === 'ENOENT' ? null : undefined;
  }
  try {
    checkHeader(fd, path, base);
  } catch {
    closeSync(fd);
    return undefined;
  }
  return fd;
}

/** How long a deletion's rewrite of a record may take to read whole again (see `FileLog.#checkNotCut`). */
const rewriteMs = 100;

/** The offsets of a `DELETES` journal, and what its file looked like when they were read. */
interface JournalRead {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly offsets: ReadonlySet<number>;
}

/** What a read-only log remembers of the last record it took in (see `FileLog.#checkNotCut`). */
interface FrameMark {
  readonly offset: number;
  readonly size: number;
  readonly checksum: number;
  readonly deleted: boolean;
}

const fileLogOptionNames: ReadonlyArray<keyof FileLogOptions<unknown>> = [
  'codec',
  'readonly',
  'create',
  'durability',
  'segmentBytesMax',
  'now',
  'retention',
  'chain',
  'chainKey',
  'encryption',
  'withoutKey',
  'fileMode',
];

function checkOptions(dir: unknown, options: unknown): void {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string');
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { durability, segmentBytesMax, retention, chain, chainKey, encryption, fileMode, now, withoutKey, readonly } =
    options as FileLogOptions<unknown>;
  checkOptionNames(options, fileLogOptionNames, 'FileLog.open');
  checkBooleanOptions(options, ['readonly', 'create', 'withoutKey']);
  // A writer must be able to seal what it appends: without the key it would be a log that cannot append.
  if (withoutKey === true && readonly !== true) throw new TypeError('withoutKey goes with readonly: true');
  if (now !== undefined && typeof now !== 'function') throw new TypeError('now must be a function');
  checkFileMode(fileMode);
  if (retention !== undefined) checkRetention(retention);
  if (chain !== undefined) checkChainAlgorithm(chain);
  if (chainKey !== undefined) checkChainKey(chainKey);
  if (encryption !== undefined) checkEncryption(encryption);
  if (durability !== undefined && durability !== 'buffered' && durability !== 'os' && durability !== 'disk') {
    throw new TypeError(`durability must be 'buffered', 'os' or 'disk', got ${String(durability)}`);
  }
  if (segmentBytesMax !== undefined) {
    if (typeof segmentBytesMax !== 'number') throw new TypeError('segmentBytesMax must be a number');
    if (!Number.isSafeInteger(segmentBytesMax) || segmentBytesMax < segmentBytesMin || segmentBytesMax > segmentBytesLimit) {
      throw new RangeError(`segmentBytesMax must be an integer from ${segmentBytesMin} to ${segmentBytesLimit}`);
    }
  }
}

function ignoreMissing(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
}
