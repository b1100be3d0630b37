import { checkFileMode, directoryModeOf } from '../../io/file-mode.js';
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { codecs, type Codec, type JsonValue } from '../../codec/codec.js';
import { asError, SluiceError } from '../../errors.js';
import { checkBooleanOptions, checkOptionNames, openFailure } from '../open-checks.js';
import { getReadBytes, fileModeDefault } from '../../limits.js';
import { AbstractLog, checkOffset, checkOffsets, type EncodedEntry, type RecordCursor } from '../abstract-log.js';
import { DirectoryLock } from '../file/directory-lock.js';
import { syncDirectorySync } from '../file/segment-files.js';
import { Follower } from '../follower.js';
import { writeFully } from '../../io/positioned.js';
import type { LogRecord, LogSupports } from '../log.js';
import type { ScanRange } from '../range.js';
import { isZeroed, overheadBytes, type OffsetWidth } from './format.js';
import { FrameWindow, type FrameSpan } from './frame-window.js';
import { OffsetCursor, type OffsetCursorHost } from './offset-cursor.js';
import { OffsetWriter, type OffsetDurability } from './offset-writer.js';
import { checkTail, walkForward, type TailVerdict } from './tail.js';
import { endsInside, readWriteIntent, writeIntentPath } from './write-intent.js';

export type { OffsetDurability } from './offset-writer.js';
export type { OffsetWidth } from './format.js';

export interface FlumeOffsetLogOptions<T> {
  /** How payloads are stored. Default: JSON (`JSON.stringify`, as flumecodec's json codec). */
  readonly codec?: Codec<T>;
  /**
   * The width of the end-of-record field: 4 (upstream's default `offsetCodec: 32`, files up to 4 GiB), 6
   * (`offsetCodec: 48`) or 8 (`offsetCodec: 53`). The file does not record it: open a file with the width it
   * was written with (a mismatch is refused with `NOT_A_LOG`, naming the width the file reads as). Default 4.
   */
  readonly offsetWidth?: 4 | 6 | 8;
  /** The pre-3.0 format (`[L][payload][L]`, no end field): `offsetWidth` is then ignored. Default `false`. */
  readonly legacy?: boolean;
  /** Open without the lock and never modify the file; the log follows what a writer appends. */
  readonly readonly?: boolean;
  /**
   * Create the file (and its directory) when missing. Default `true`; ignored when read-only. `'new'`: create it,
   * and refuse (`INVALID_INPUT`) a path where anything exists, a symbolic link included, without opening it.
   */
  readonly create?: boolean | 'new';
  /** What a resolved append promises: `os` (written, survives a process crash; default) or `disk` (fdatasynced). */
  readonly durability?: OffsetDurability;
  /**
   * Cut the file at the end of its longest valid prefix even when what follows is damage rather than a torn
   * write (the cut bytes are kept in `<file>.quarantine/`). Default `false`: damage is refused with `CORRUPT_LOG`.
   */
  readonly recover?: boolean;
  /**
   * The mode of the files the log creates (the file, its lock, quarantined bytes); directories get the same bits
   * plus search. Default 0o600 (owner only), whatever the umask. Existing files keep their modes.
   */
  readonly fileMode?: number;
}

const supports: LogSupports = { keys: false, times: false, persistent: true, readonly: true, deletes: true };

/**
 * A flumelog-offset file (FORMAT.md "flumelog-offset files") as a Sluice `Log`: the files secure-scuttlebutt and
 * other flumedb applications keep, read and written byte for byte as flumelog-offset 3.x (or the legacy format)
 * does, so the same file can be used by either. A record's offset is the byte position of its frame, so `get`
 * is one read; streams read 256 KiB windows forwards or backwards through the lengths at both ends of frames.
 *
 * What the format cannot hold, this log refuses rather than loses: record keys (`supports.keys` is false: an
 * append with a key throws `TypeError`), times (records read back with time 0), empty or all-zero payloads
 * (they would read back as deleted: `RangeError`), and files past the width's limit (`LOG_FULL`).
 */
export class FlumeOffsetLog<T = JsonValue> extends AbstractLog<T> {
  readonly supports = supports;
  readonly file: string;
  readonly width: OffsetWidth;
  readonly readonly: boolean;
  readonly durability: OffsetDurability;
  #fd = -1;
  #fileMode = fileModeDefault;
  /** For opening and deletes. */
  #window!: FrameWindow;
  /** For `get`: a small window, since a random read wants one record, not the 256 KiB a scan reads ahead. */
  #getWindow!: FrameWindow;
  #writer: OffsetWriter | undefined;
  #lock: DirectoryLock | undefined;
  /** The write intent file (O-10), once a write needed it. */
  #intentFd = -1;
  /** The end of the last visible record: reads never look past it. */
  #end = 0;
  #follower: Follower | undefined;

  private constructor(file: string, options: FlumeOffsetLogOptions<T>) {
    super({ codec: options.codec ?? codecs.json<T>() });
    this.file = file;
    this.width = options.legacy === true ? 0 : (options.offsetWidth ?? 4);
    this.readonly = options.readonly ?? false;
    this.durability = options.durability ?? 'os';
  }

  /**
   * Opens (or creates) the flumelog-offset file at `file`. A torn write at the end (a crash in the middle of an
   * append) is cut, as upstream does, and its bytes kept in `<file>.quarantine/`. Fails with `LOG_NOT_FOUND`,
   * `NOT_A_LOG` (the first record is not valid in the format asked for), `CORRUPT_LOG` (damage that is not a
   * torn write; nothing is modified unless `recover` is set) or `LOCKED` (another writer has `<file>.lock`).
   */
  static async open<T = JsonValue>(file: string, options: FlumeOffsetLogOptions<T> = {}): Promise<FlumeOffsetLog<T>> {
    checkOptions(file, options);
    const log = new FlumeOffsetLog<T>(file, options);
    try {
      log.#open(options);
    } catch (error) {
      log.#release();
      throw openFailure(error, file);
    }
    return log;
  }

  #open(options: FlumeOffsetLogOptions<T>): void {
    const file = this.file;
    const fileMode = checkFileMode(options.fileMode);
    this.#fileMode = fileMode;
    if (!this.readonly) {
      if (options.create !== false) mkdirSync(dirname(file), { recursive: true, mode: directoryModeOf(fileMode) });
      try {
        this.#lock = DirectoryLock.acquire(dirname(file), `${basename(file)}.lock`, fileMode);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(file);
        throw error;
      }
    }
    if (options.create === 'new' && !this.readonly) {
      try {
        // O_CREAT | O_EXCL: never opens what is there, and never follows a link placed there.
        this.#fd = openSync(file, 'wx+', fileMode);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        throw new SluiceError('INVALID_INPUT', `${file} exists: a new file only is written there`, { file });
      }
    }
    try {
      if (this.#fd < 0) this.#fd = openSync(file, this.readonly ? 'r' : 'r+');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      if (this.readonly || options.create === false) throw notFound(file);
      // Under the lock, so no other writer creates it meanwhile.
      this.#fd = openSync(file, 'wx+', fileMode);
    }
    const info = fstatSync(this.#fd);
    if (!info.isFile()) throw new SluiceError('NOT_A_LOG', `${file} is not a file`, { file });
    const size = info.size;
    this.#window = new FrameWindow(this.#fd, file, this.width);
    this.#getWindow = new FrameWindow(this.#fd, file, this.width, getReadBytes);
    let verdict = checkTail(this.#window, size);
    if (verdict.rest !== undefined) {
      if (!verdict.rest.torn && options.recover !== true) {
        throw new SluiceError(
          'CORRUPT_LOG',
          `${file} is damaged at position ${verdict.end} (${verdict.rest.problem}); ${size - verdict.end} bytes follow ` +
            'the last valid record. Nothing was modified: open with recover: true to cut them (they are kept in quarantine)',
          { file, position: verdict.end },
        );
      }
    }
    verdict = this.#cutShortWrite(verdict);
    // A read-only open reads the valid prefix and leaves the rest to the writer.
    if (verdict.end < size && !this.readonly) this.#cut(verdict.end, size);
    // The intent spoke of a write before this open; left in place it would name a range that this writer's own
    // appends (a single record writes no intent) can later end inside, and a later open would cut them. Synced,
    // so that a power failure does not bring it back over records already made durable.
    if (!this.readonly && this.#removeIntent()) syncDirectorySync(dirname(file));
    this.#window.reset();
    this.#end = verdict.end;
    if (!this.readonly) {
      this.#writer = new OffsetWriter(
        {
          fd: this.#fd,
          file,
          width: this.width,
          durability: this.durability,
          onVisible: (since, visibleEnd) => {
            this.#end = Math.max(this.#end, visibleEnd);
            this._advance(since);
          },
          intentFd: () => {
            // Never through a symbolic link planted beside the file.
            if (this.#intentFd < 0) {
              this.#intentFd = openSync(writeIntentPath(file), constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, fileMode);
            }
            return this.#intentFd;
          },
        },
        verdict.end,
        verdict.since,
      );
    }
    this._opened(verdict.since);
  }

  /**
   * O-10: when the file ends strictly inside the range of the last write its intent names, and is valid up to
   * that range's start, a kill stopped that write between pages: the log ends at the write's start (the whole
   * records it left are a batch cut short, or appends never acknowledged).
   */
  #cutShortWrite(verdict: TailVerdict): TailVerdict {
    const intent = readWriteIntent(this.file);
    if (!endsInside(intent, verdict.end)) return verdict;
    const before = checkTail(this.#window, intent.start);
    // An intent that does not fit this file (left by another file of the same name) is ignored.
    return before.rest === undefined && before.end === intent.start ? before : verdict;
  }

  /** Removes the write intent file, whoever wrote it; true if there was one. */
  #removeIntent(): boolean {
    try {
      unlinkSync(writeIntentPath(this.file));
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
  }

  /** Moves the bytes after `end` into `<file>.quarantine/` and truncates the file there. */
  #cut(end: number, size: number): void {
    const quarantine = `${this.file}.quarantine`;
    mkdirSync(quarantine, { recursive: true, mode: directoryModeOf(this.#fileMode) });
    const parts: Buffer[] = [];
    for (let from = end; from < size; from += 1 << 20) parts.push(Buffer.from(this.#window.bytes(from, Math.min(size, from + (1 << 20)))));
    writeFileSync(join(quarantine, `${end}.${Date.now()}.cut`), Buffer.concat(parts), { mode: this.#fileMode });
    ftruncateSync(this.#fd, end);
    fsyncSync(this.#fd);
  }

  protected _append(entries: readonly EncodedEntry[]): Promise<number[]> {
    if (this.#writer === undefined) {
      return Promise.reject(new SluiceError('READ_ONLY', `${this.file} was opened read-only`, { file: this.file }));
    }
    return this.#writer.append(entries);
  }

  protected override _appendRefusal(): Error | undefined {
    if (this.#writer === undefined) return new SluiceError('READ_ONLY', `${this.file} was opened read-only`, { file: this.file });
    return this.#writer.failure;
  }

  protected _read(offset: number): LogRecord<T> {
    if (offset > this.since) this.#refresh();
    // Another process may have deleted (zeroed) a record this reader's window still holds.
    if (this.readonly) this.#getWindow.reset();
    if (offset > this.since) {
      throw new SluiceError('OFFSET_OUT_OF_RANGE', `offset ${offset} is outside the log`, { offset });
    }
    const frame = this.#getWindow.tryAt(offset, this.#end);
    if (typeof frame === 'string') {
      throw new SluiceError('NOT_A_RECORD', `no record starts at offset ${offset} of ${this.file}: ${frame}`, {
        offset,
        file: this.file,
        position: offset,
      });
    }
    return this.#record(this.#getWindow, frame);
  }

  #record(window: FrameWindow, frame: FrameSpan): LogRecord<T> {
    const buffer = window.buffer;
    // A deleted record's payload is zeros; JSON never starts with a zero byte, so one test settles most records.
    if (buffer[frame.at] === 0 && isDeleted(buffer, frame)) {
      throw new SluiceError('RECORD_DELETED', `the record at offset ${frame.start} was deleted`, { offset: frame.start });
    }
    return this._record(frame.start, buffer, frame.at, frame.at + frame.length, 0, undefined);
  }

  protected _cursor(range: ScanRange): RecordCursor<T> {
    const host: OffsetCursorHost<T> = {
      file: this.file,
      fd: this.#fd,
      width: this.width,
      end: () => this.#end,
      refresh: () => this.#refresh(),
      record: (window, frame) =>
        window.buffer[frame.at] === 0 && isDeleted(window.buffer, frame) ? undefined : this.#record(window, frame),
    };
    return new OffsetCursor(host, range);
  }

  /**
   * Deletes records as flumelog-offset 3.4 does: their payloads are overwritten with zeros, their lengths and
   * offsets stay. Reading one then fails with `RECORD_DELETED` and streams skip it. Deleting a deleted record
   * does nothing. Every offset is checked before anything is written (`OFFSET_OUT_OF_RANGE`, `NOT_A_RECORD`).
   */
  delete(offsets: number | readonly number[]): Promise<void> {
    const list = checkOffsets(offsets);
    return this.#delete(list);
  }

  async #delete(list: readonly number[]): Promise<void> {
    if (this.status !== 'open') throw this._closedError();
    if (this.#writer === undefined) throw new SluiceError('READ_ONLY', `${this.file} was opened read-only`, { file: this.file });
    if (this.#writer.failure !== undefined) throw this.#writer.failure;
    const spans: { start: number; length: number }[] = [];
    for (const offset of list) {
      if (offset > this.since) throw new SluiceError('OFFSET_OUT_OF_RANGE', `offset ${offset} is outside the log`, { offset });
      const frame = this.#window.tryAt(offset, this.#end);
      if (typeof frame === 'string') {
        throw new SluiceError('NOT_A_RECORD', `no record starts at offset ${offset}: ${frame}`, { offset, file: this.file });
      }
      spans.push({ start: frame.start, length: frame.length });
    }
    for (const span of spans) {
      const zeros = Buffer.alloc(span.length);
      try {
        writeFully(this.#fd, zeros, 0, zeros.length, span.start + 4);
      } catch (error) {
        throw new SluiceError('WRITE_FAILED', `${this.file}: deleting the record at ${span.start} failed`, {
          cause: error,
          file: this.file,
          position: span.start,
        });
      } finally {
        this.#window.reset();
        this.#getWindow.reset();
      }
    }
    if (this.durability === 'disk') await this.#writer.sync();
  }

  /** Deleted records (O-6) up to `lastOffset` and their frames' bytes: a walk of the frames, nothing decoded. */
  countDeleted(lastOffset: number = this.since): Promise<{ records: number; bytes: number }> {
    checkOffset(Math.max(0, lastOffset));
    if (this.status !== 'open') return Promise.reject(this._closedError());
    const window = new FrameWindow(this.#fd, this.file, this.width);
    let records = 0;
    let bytes = 0;
    try {
      for (let position = 0; position <= lastOffset && position < this.#end; ) {
        const frame = window.at(position, this.#end);
        const size = frame.length + overheadBytes(this.width);
        if (isDeleted(window.buffer, frame)) {
          records++;
          bytes += size;
        }
        position += size;
      }
    } catch (error) {
      return Promise.reject(asError(error));
    }
    return Promise.resolve({ records, bytes });
  }

  protected _sync(): Promise<number> {
    return this.#writer === undefined ? Promise.resolve(this.since) : this.#writer.sync();
  }

  protected async _close(): Promise<void> {
    this.#follower?.close();
    try {
      await this.#writer?.close();
      // Every write is whole now: the intent has nothing left to say. After a failed write it stays, for the next
      // open to cut what that write left.
      if (this.#writer !== undefined && this.#writer.failure === undefined) this.#removeIntent();
    } finally {
      this.#release();
    }
  }

  #release(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
    if (this.#intentFd >= 0) closeSync(this.#intentFd);
    this.#intentFd = -1;
    this.#lock?.release();
  }

  /** Read-only logs: takes in the whole records a writer appended since we last looked. */
  #refresh(): void {
    if (!this.readonly || this.status !== 'open') return;
    const size = fstatSync(this.#fd).size;
    if (size <= this.#end) return;
    // A write in progress (or cut short by a kill) that its intent names is taken in only once whole (O-10). The
    // writer records the intent before it writes, so a reader that sees the write's bytes sees its intent.
    const intent = readWriteIntent(this.file);
    const limit = endsInside(intent, size) && intent.start >= this.#end ? intent.start : size;
    if (limit <= this.#end) return;
    const { end, since } = walkForward(new FrameWindow(this.#fd, this.file, this.width), limit, this.#end);
    if (since < 0) return;
    this.#end = end;
    this._advance(since);
  }

  /** A live stream of a read-only log waits: watch the file, and poll slowly in case an event is missed. */
  protected override _followStart(): void {
    if (!this.readonly || this.status !== 'open') return;
    this.#follower ??= new Follower(this.file, () => this.#refresh());
    this.#follower.start();
  }

  protected override _followStop(): void {
    this.#follower?.idle();
  }
}

/** A deleted record's payload is zeros (O-6). */
function isDeleted(buffer: Buffer, frame: FrameSpan): boolean {
  return isZeroed(buffer, frame.at, frame.at + frame.length);
}

function notFound(file: string): SluiceError {
  return new SluiceError('LOG_NOT_FOUND', `there is no flumelog-offset file at ${file}`, { file });
}

const flumeOffsetLogOptionNames: ReadonlyArray<keyof FlumeOffsetLogOptions<unknown>> = [
  'codec',
  'offsetWidth',
  'legacy',
  'readonly',
  'create',
  'durability',
  'recover',
  'fileMode',
];

function checkOptions(file: unknown, options: unknown): void {
  if (typeof file !== 'string' || file.length === 0) throw new TypeError('file must be a non-empty string');
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  checkOptionNames(options, flumeOffsetLogOptionNames, 'FlumeOffsetLog.open');
  const { offsetWidth, durability } = options as FlumeOffsetLogOptions<unknown>;
  if (offsetWidth !== undefined && offsetWidth !== 4 && offsetWidth !== 6 && offsetWidth !== 8) {
    throw new RangeError(`offsetWidth must be 4, 6 or 8, got ${String(offsetWidth)}`);
  }
  if (durability !== undefined && durability !== 'os' && durability !== 'disk') {
    throw new TypeError(`durability must be 'os' or 'disk', got ${String(durability)}`);
  }
  checkBooleanOptions(options, ['legacy', 'readonly', 'recover']);
  const { create } = options as FlumeOffsetLogOptions<unknown>;
  if (create !== undefined && typeof create !== 'boolean' && create !== 'new') {
    throw new TypeError("create must be a boolean or 'new'");
  }
  checkFileMode((options as FlumeOffsetLogOptions<unknown>).fileMode);
}
