import { directoryModeOf } from '../io/file-mode.js';
import { mkdirSync } from 'node:fs';
import { asError, SluiceError, throwIfAborted } from '../errors.js';
import { viewBatchRecords, viewCheckpointIdleMs, viewCheckpointMs, viewCheckpointRecords, fileModeDefault } from '../limits.js';
import type { LogRecord, StreamOptions } from '../log/log.js';
import { recordBatches } from '../log/log-stream.js';
import type { Progress } from '../progress/meter.js';
import { checkReadOptions, type ReadOptions, type View, type ViewContext } from './view.js';
import { Waiters } from './waiters.js';

/** The part of the database a runner reads from: the log, with the database's mapper applied. */
export interface RunnerSource<T> {
  readonly since: number;
  stream(options: StreamOptions): AsyncIterable<LogRecord<T>>;
  /** Optional: the records of `stream(options)` in arrays (fewer promises per record while catching up). */
  batches?(options: StreamOptions): AsyncIterable<LogRecord<T>[]>;
  subscribe(listener: (since: number) => void): () => void;
  get(offset: number): Promise<T>;
  getRecord(offset: number): Promise<LogRecord<T>>;
  /**
   * Optional: whether a record, deleted or not, starts at `offset` (at most `since`). False only when none does
   * (the offset points into a record); true when one does, when the offset lies in a stretch of records a
   * compaction dropped, and when the log cannot tell because the offset was trimmed away. Rejects when the log
   * cannot be read there.
   */
  startsRecord?(offset: number): Promise<boolean>;
  /** Optional: the offset below which the log holds no record any more (`Log.firstOffset`); logs that never drop one leave it out. */
  firstOffset?(): number;
}

/** A deletion announced to a runner (`deleting`), to settle with `deleted`: the records it holds back. */
export interface PendingDeletion<T> {
  readonly records: readonly LogRecord<T>[];
}

/** How far a view is (see `Progress`: `view` is the view's name). */
export type ViewProgress = Progress;

export type ViewStatus = 'opening' | 'catching-up' | 'live' | 'failed' | 'closed';

export interface RunnerEvents {
  progress(progress: ViewProgress): void;
  failed(view: string, offset: number, error: Error): void;
  report(view: string, message: string): void;
}

/**
 * Feeds one view from the log: catches it up in batches, checkpoints it (every `viewCheckpointRecords` records
 * or `viewCheckpointMs` while catching up, and once idle), rebuilds it when its version changed or its state is
 * ahead of the log, stops it when it throws, and answers `ready()` in offset order. Appends never wait for it.
 */
export class ViewRunner<T> {
  readonly name: string;
  readonly view: View<T>;
  #status: ViewStatus = 'opening';
  #since = -1;
  #checkpointed = -1;
  /** The last `below` the view was given by `View.prune` in this run. */
  #prunedBelow = 0;
  #failure: SluiceError | undefined;
  readonly #source: RunnerSource<T>;
  readonly #dir: string;
  readonly #fileMode: number;
  readonly #events: RunnerEvents;
  readonly #waiters = new Waiters();
  readonly #opened: Promise<void>;
  #context: ViewContext<T> | undefined;
  /** The view's `open` resolved (false after it rejected: a rebuild opens it again). */
  #viewOpened = false;
  #stop = new AbortController();
  #wake: (() => void) | undefined;
  #running: Promise<void> | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #idleCheckpoint: Promise<void> | undefined;
  /** rebuild() and close() run one at a time, in call order. */
  #transitions: Promise<void> = Promise.resolve();
  #progress: { start: number; startMs: number; records: number; lastEmitMs: number } | undefined;
  /** Records applied, and the time, since the last checkpoint: kept across catch-up rounds, so a view chasing a
   * busy writer is checkpointed as regularly as one rebuilding. */
  #uncheckpointedRecords = 0;
  #lastCheckpointMs = Date.now();
  readonly #unsubscribe: () => void;
  readonly #batchRecords: number;
  /** Calls into the view (`apply`, `delete`) run one at a time: a deletion lands between batches. */
  #viewCalls: Promise<unknown> = Promise.resolve();
  /** Offsets the log has deleted past `since`: a batch read before the deletion must not apply them. */
  readonly #deleted = new Set<number>();
  /**
   * Offsets of deletions in flight (announced by `deleting`, not yet settled by `deleted`), with how many of them
   * name each. The feed never applies one, nor moves `since` past one, until they settle: whether the record is
   * to be applied is only known once the log has deleted it or failed to.
   */
  readonly #pending = new Map<number, number>();
  /** Wakes a feed held at a pending offset (a deletion settled, the runner stopped or failed). */
  readonly #holds = new Set<() => void>();

  constructor(name: string, view: View<T>, source: RunnerSource<T>, dir: string, events: RunnerEvents, fileMode = fileModeDefault) {
    this.name = name;
    this.#fileMode = fileMode;
    this.view = view;
    this.#source = source;
    this.#dir = dir;
    this.#events = shielded(events);
    this.#batchRecords = view.batchRecords ?? viewBatchRecords;
    this.#unsubscribe = source.subscribe(() => this.#wake?.());
    this.#opened = this.#open().catch((error: unknown) => {
      // Never expected (a failed open or clear stops the view inside #open): the view is stopped all the same,
      // so that no read, rebuild or close meets a raw error or waits on a view that never opened.
      if (this.#failure === undefined) this.#fail(-1, error, 'failed to open');
    });
  }

  get status(): ViewStatus {
    return this.#status;
  }

  /** The last progress reported while catching up (`undefined` before any, and once caught up). */
  get progress(): ViewProgress | undefined {
    return this.#status === 'catching-up' ? this.#lastProgress : undefined;
  }

  #lastProgress: ViewProgress | undefined;

  /** The offset of the last record the view has processed; `-1` before any. */
  get since(): number {
    return this.#since;
  }

  async #open(): Promise<void> {
    const stopped = (): AbortSignal => this.#stopped.signal;
    const context: ViewContext<T> = {
      get stopped() {
        return stopped();
      },
      dir: this.#dir,
      fileMode: this.#fileMode,
      name: this.name,
      get: (offset) => this.#source.get(offset),
      getRecord: (offset) => this.#source.getRecord(offset),
      stream: (options) => this.#source.stream(options ?? {}),
      ready: (options) => this.ready(options),
      report: (message) => this.#events.report(this.name, message),
    };
    this.#context = context;
    // The log's end before the view opens: appends made while it opens must not hide a since that is ahead.
    const logSince = this.#source.since;
    let since = await this.#openView();
    if (since === undefined) return;
    const mismatch = await this.#stateMismatch(since, logSince);
    if (mismatch !== undefined) {
      this.#events.report(this.name, `${mismatch}: rebuilding`);
      try {
        await this.view.clear();
      } catch (error) {
        this.#fail(-1, error, 'failed to clear');
        return;
      }
      since = -1;
    }
    this.#since = since;
    this.#checkpointed = since;
    this.#status = 'catching-up';
    this.#running = this.#run();
  }

  /**
   * Why the state a view opened with cannot describe the log (its `since` is ahead of the log's end, or no record
   * starts there: the log lost a tail the state had taken in, then was appended to past it), or `undefined`.
   */
  async #stateMismatch(since: number, logSince: number): Promise<string | undefined> {
    if (since > logSince) return `the view is ahead of the log (${since} > ${logSince})`;
    if (since < 0 || this.#source.startsRecord === undefined) return undefined;
    try {
      if (await this.#source.startsRecord(since)) return undefined;
    } catch {
      // The feed meets the same read failure, and fails the view with it: no rebuild is started over it.
      return undefined;
    }
    return `no record of the log starts at the view's since (${since}): the log lost records the view had taken in`;
  }

  /**
   * Creates the view's directory and opens the view: its stored `since`, or `undefined` when either failed, which
   * stops it as a view that throws while fed is stopped (reported, its reads fail with VIEW_FAILED; a rebuild
   * tries again).
   */
  async #openView(): Promise<number | undefined> {
    let directoryError: Error | undefined;
    try {
      // Synchronous, so the view gets its context (and can take reads) the moment it is used.
      mkdirSync(this.#dir, { recursive: true, mode: directoryModeOf(this.#fileMode) });
    } catch (error) {
      directoryError = asError(error);
    }
    try {
      // Opened even without its directory: `open` is the view's only way to its context, and without one its reads
      // would fail for that instead of with the view's failure.
      const opening = this.view.open(this.#context as ViewContext<T>);
      if (directoryError !== undefined) {
        await Promise.resolve(opening).catch(() => undefined);
        this.#fail(-1, directoryError, 'failed to create its directory');
        return undefined;
      }
      const since = await opening;
      this.#viewOpened = true;
      return since;
    } catch (error) {
      if (directoryError !== undefined) this.#fail(-1, directoryError, 'failed to create its directory');
      else this.#fail(-1, error, 'failed to open');
      return undefined;
    }
  }

  /** Resolves once the view has processed what `options` asks for (by default, everything appended so far). */
  async ready(given?: ReadOptions): Promise<void> {
    const options = checkReadOptions(given);
    // Already aborted: refused even when nothing would be waited for, as a stream refuses it.
    throwIfAborted(options.signal, 'the read');
    const target = options.since ?? this.#source.since;
    await this.#opened;
    this.#check();
    if (target <= this.#since) return;
    await this.#waiters.wait(target, options.signal);
    this.#check();
  }

  #check(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#status === 'closed') throw new SluiceError('VIEW_CLOSED', `view ${this.name} is closed`);
  }

  /** The feeding loop: never rejects (a failure stops it and is reported), ends when stopped or failed. */
  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    try {
      while (!signal.aborted && this.#failure === undefined) {
        if (this.#pruneBound() !== undefined) await this.#callView(() => this.#prune());
        const target = this.#source.since;
        if (this.#since >= target) {
          this.#status = 'live';
          this.#progress = undefined;
          this.#scheduleIdleCheckpoint();
          await new Promise<void>((resolve) => {
            this.#wake = resolve;
            if (this.#source.since > this.#since || signal.aborted || this.#failure !== undefined) resolve();
          });
          this.#wake = undefined;
          continue;
        }
        this.#status = 'catching-up';
        this.#progress ??= { start: this.#since, startMs: Date.now(), records: 0, lastEmitMs: 0 };
        // View work runs in its own turns of the event loop: a burst of appends (which chain microtasks) is never
        // slowed by a view, which catches up once the burst yields.
        await nextTurn();
        if (!(await this.#catchUp(target, signal))) return;
      }
    } catch (error) {
      if (!signal.aborted) this.#fail(this.#since, error);
    }
  }

  /**
   * Applies the records up to `target` in batches; false when the view failed or the runner stopped. A batch is
   * read while the one before it is being applied (a query view's commit runs on LMDB's write thread), but
   * `apply` is still called one batch at a time, each once the one before has resolved; checkpoints and
   * deletions land between two applies. Never returns while an apply is in flight.
   */
  async #catchUp(target: number, signal: AbortSignal): Promise<boolean> {
    let batch: LogRecord<T>[] = [];
    let applying: Promise<boolean> | undefined;
    /** Waits for the batch in flight (if any); false when the view failed on it. */
    const settle = async (): Promise<boolean> => {
      const pending = applying;
      applying = undefined;
      return pending === undefined || (await pending);
    };
    try {
      const range = { gt: this.#since, lte: target, signal };
      const read = this.#source.batches?.(range) ?? recordBatches(this.#source.stream(range));
      for await (const records of read) {
        for (const record of records) {
          batch.push(record);
          if (batch.length < this.#batchRecords) continue;
          if (!(await settle()) || signal.aborted) return false;
          await this.#checkpointIfDue();
          applying = this.#apply(batch, target, signal);
          batch = [];
          await nextTurn();
        }
      }
      if (!(await settle())) return false;
    } catch (error) {
      // The batch in flight lands (or fails) before the stream's error counts.
      if (!(await settle()) || signal.aborted) return false;
      this.#fail(this.#since, error);
      return false;
    } finally {
      // Never leave an apply running behind the runner's back (a rebuild or close waits for this method).
      if (applying !== undefined) await applying.catch(() => false);
    }
    if (batch.length > 0 && !(await this.#apply(batch, target, signal))) return false;
    if (this.#since < target) {
      // A deletion in flight between here and the target may yet fail, and then its records were skipped by a
      // stream that must not count: wait for it to settle, then read that stretch again.
      const pending = (): boolean => [...this.#pending.keys()].some((offset) => offset > this.#since && offset <= target);
      if (pending()) {
        while (pending() && !signal.aborted && this.#failure === undefined) await this.#held(signal);
        return !signal.aborted && this.#failure === undefined;
      }
      // The stream ended short of the target: the records in between were deleted, so there is nothing to
      // apply, but the view has seen the log up to there (else it would wait for them forever).
      for (const offset of this.#deleted) if (offset <= target) this.#deleted.delete(offset);
      this.#since = target;
      this.#waiters.release(target);
    }
    await this.#checkpointIfDue();
    return true;
  }

  /** A rebuild killed half-way resumes from the last checkpoint, not from zero. */
  async #checkpointIfDue(): Promise<void> {
    if (this.#uncheckpointedRecords >= viewCheckpointRecords || Date.now() - this.#lastCheckpointMs >= viewCheckpointMs) {
      await this.#checkpoint();
    }
  }

  /**
   * Applies one batch, less the records the log has deleted meanwhile; false when the view failed or the runner
   * stopped before the whole batch was applied. At a record whose deletion is in flight it applies what comes
   * before, then holds until the deletion settles: a record the log deleted is left out, one it failed to delete
   * is applied (so a failed delete never costs a view a record, whatever the view does with it).
   */
  async #apply(batch: LogRecord<T>[], target: number, signal: AbortSignal): Promise<boolean> {
    let applied = 0;
    let complete = false;
    try {
      await this.#callView(async () => {
        let rest = batch;
        while (rest.length > 0) {
          if (signal.aborted || this.#failure !== undefined) return;
          const cut = this.#pending.size === 0 ? -1 : this.#holdIndex(rest);
          if (cut === 0) {
            await this.#held(signal);
            continue;
          }
          const part = cut < 0 ? rest : rest.slice(0, cut);
          rest = cut < 0 ? [] : rest.slice(cut);
          const last = (part[part.length - 1] as LogRecord<T>).offset;
          const kept = this.#deleted.size === 0 ? part : part.filter((record) => !this.#deleted.has(record.offset));
          if (kept.length > 0) await this.view.apply(kept);
          for (const offset of this.#deleted) if (offset <= last) this.#deleted.delete(offset);
          // Within the call: a deletion queued behind this batch must see the since it brought.
          this.#since = last;
          applied += part.length;
          // Reads waiting for records before a held one need not wait for the deletion.
          if (rest.length > 0) this.#waiters.release(last);
        }
        complete = true;
      });
    } catch (error) {
      this.#fail(batch[applied]?.offset ?? this.#since, error);
      return false;
    }
    this.#uncheckpointedRecords += applied;
    if (this.#since >= this.#source.since && this.#failure === undefined) this.#status = 'live';
    this.#waiters.release(this.#since);
    this.#reportProgress(applied, target);
    return complete;
  }

  /**
   * Where `records` must stop before a deletion in flight: the first record at or past the first pending offset
   * the view has not reached, or -1. Not only at the pending record itself: a log may hide a record before its
   * delete resolves (flumelog-offset zeroes the frame, then syncs), so the stream skips it, and a feed that went
   * on past it would move `since` beyond a record the view never applied, which `deleted` would then hand to the
   * view's `delete`.
   */
  #holdIndex(records: readonly LogRecord<T>[]): number {
    let holdAt = Infinity;
    for (const offset of this.#pending.keys()) if (offset > this.#since && offset < holdAt) holdAt = offset;
    return holdAt === Infinity ? -1 : records.findIndex((record) => record.offset >= holdAt);
  }

  /** Resolves at the next change that may end a hold: a deletion settled, the runner stopped or failed. */
  #held(signal: AbortSignal): Promise<void> {
    if (signal.aborted || this.#failure !== undefined) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        this.#holds.delete(wake);
        signal.removeEventListener('abort', wake);
        resolve();
      };
      this.#holds.add(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }

  #wakeHolds(): void {
    for (const wake of [...this.#holds]) wake();
  }

  #reportProgress(records: number, target: number): void {
    const progress = this.#progress;
    if (progress === undefined) return;
    progress.records += records;
    const nowMs = Date.now();
    if (nowMs - progress.lastEmitMs < 100 && this.#since < target) return;
    progress.lastEmitMs = nowMs;
    const elapsedMs = Math.max(1, nowMs - progress.startMs);
    const bytesDone = this.#since - progress.start;
    const bytesTotal = target - progress.start;
    const bytesPerMs = bytesDone / elapsedMs;
    this.#lastProgress = {
      view: this.name,
      since: this.#since,
      target,
      recordsDone: progress.records,
      bytesDone,
      bytesTotal,
      recordsPerSecond: Math.round((progress.records / elapsedMs) * 1000),
      etaMs: bytesPerMs > 0 ? Math.round((target - this.#since) / bytesPerMs) : 0,
    };
    this.#events.progress(this.#lastProgress);
  }

  #fail(offset: number, cause: unknown, what = `failed at offset ${offset}`): void {
    const error = asError(cause);
    this.#failure = new SluiceError('VIEW_FAILED', `view ${this.name} ${what}: ${error.message}`, {
      cause,
      offset,
    });
    this.#status = 'failed';
    this.#waiters.rejectAll(this.#failure);
    this.#stopped.abort(this.#failure);
    this.#wake?.();
    this.#wakeHolds();
    this.#events.failed(this.name, offset, error);
  }

  #scheduleIdleCheckpoint(): void {
    if (this.#since === this.#checkpointed || this.#idleTimer !== undefined) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#status !== 'live') return;
      this.#idleCheckpoint = this.#checkpoint().catch((error: unknown) => this.#fail(this.#since, error));
    }, viewCheckpointIdleMs);
    this.#idleTimer.unref();
  }

  /**
   * Persists the view's state with its `since`, unless nothing changed since the last checkpoint. Queued with the
   * view's other calls: a checkpoint never overlaps an apply or another checkpoint (an idle one and a due one
   * would otherwise write the same files at once), and its `since` is read when it runs, so it names exactly
   * the records in the state it stores.
   */
  async #checkpoint(): Promise<void> {
    this.#lastCheckpointMs = Date.now();
    await this.#callView(async () => {
      // Entries of trimmed records go in the state this checkpoint makes durable.
      await this.#prune();
      const since = this.#since;
      if (since === this.#checkpointed) return;
      this.#uncheckpointedRecords = 0;
      await this.view.checkpoint(since);
      this.#checkpointed = since;
    });
  }

  /**
   * Tells the view (`View.prune`) that the log dropped the records below its first offset, once per move of that
   * offset; a call of the view's, so run through `#callView` (or inside one).
   */
  async #prune(): Promise<void> {
    const below = this.#pruneBound();
    if (below === undefined) return;
    await this.view.prune?.(below);
    this.#prunedBelow = below;
  }

  /** The log's first offset when it moved past what the view was last told, for a view that prunes. */
  #pruneBound(): number | undefined {
    const below = this.#source.firstOffset?.();
    return this.view.prune !== undefined && below !== undefined && below > this.#prunedBelow ? below : undefined;
  }

  #callView(call: () => Promise<void>): Promise<void> {
    const next = this.#viewCalls.then(call);
    this.#viewCalls = next.catch(() => undefined);
    return next;
  }

  /**
   * Records are about to be deleted from the log: until `deleted` settles the deletion, the view is fed none of
   * them, nor anything after the first of them it has not reached yet. Decided between batches, so each record is
   * either applied before or held. Resolves to the deletion's ticket for `deleted`.
   */
  async deleting(records: readonly LogRecord<T>[]): Promise<PendingDeletion<T>> {
    await this.#opened.catch(() => undefined);
    if (this.#status === 'closed' || this.#failure !== undefined) return { records: [] };
    await this.#callView(() => {
      for (const record of records) this.#pending.set(record.offset, (this.#pending.get(record.offset) ?? 0) + 1);
      return Promise.resolve();
    });
    return { records };
  }

  /**
   * Settles a deletion announced by `deleting`: `gone` are the offsets the log has deleted (all of them when it
   * succeeded; after a failure, those it deleted anyway, or none). A gone record the view has applied goes to its
   * `delete`; one it has not reached is never applied; any other is fed as if nothing happened.
   */
  async deleted(ticket: PendingDeletion<T>, gone: ReadonlySet<number>): Promise<void> {
    const applied: LogRecord<T>[] = [];
    // Synchronous, outside the queue of view calls: a feed held at one of these offsets waits inside that queue.
    for (const record of ticket.records) {
      const offset = record.offset;
      const count = this.#pending.get(offset) ?? 0;
      if (count <= 1) this.#pending.delete(offset);
      else this.#pending.set(offset, count - 1);
      if (!gone.has(offset)) continue;
      // A pending record past `since` was never applied: no feed applies one, nor passes it.
      if (offset <= this.#since) applied.push(record);
      else this.#deleted.add(offset);
    }
    this.#wakeHolds();
    if (applied.length === 0 || this.view.delete === undefined) return;
    if (this.#status === 'closed' || this.#failure !== undefined) return;
    const remove = this.view.delete.bind(this.view);
    try {
      await this.#callView(async () => {
        await remove(applied);
      });
    } catch (error) {
      this.#fail(applied[0]?.offset ?? this.#since, error);
    }
  }

  /** Discards the view's state and processes the whole log again; reads wait meanwhile. */
  rebuild(): Promise<void> {
    return this.#transition(async () => {
      await this.#opened.catch(() => undefined);
      if (this.#status === 'closed') throw new SluiceError('VIEW_CLOSED', `view ${this.name} is closed`);
      await this.#halt();
      this.#stop = new AbortController();
      // Reset before clearing, so reads issued during the clear wait for the rebuilt state.
      this.#since = -1;
      this.#checkpointed = -1;
      this.#failure = undefined;
      this.#progress = undefined;
      this.#status = 'catching-up';
      if (this.#stopped.signal.aborted) this.#stopped = new AbortController();
      // A view whose open failed is opened again, then rebuilt like any other.
      if (!this.#viewOpened && (await this.#openView()) === undefined) return;
      // In the queue of view calls: a deletion's `delete` decided before the reset lands before the clear.
      await this.#callView(() => this.view.clear());
      this.#running = this.#run();
    });
  }

  #transition(step: () => Promise<void>): Promise<void> {
    const next = this.#transitions.then(step);
    this.#transitions = next.catch(() => undefined);
    return next;
  }

  async #halt(): Promise<void> {
    this.#stop.abort();
    this.#wake?.();
    await this.#running;
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    await this.#idleCheckpoint;
  }

  /**
   * Stops feeding, checkpoints what was processed, closes the view; pending reads fail with `VIEW_CLOSED`. A
   * checkpoint that fails here (a full disk) is reported as a view error, and the close still resolves.
   */
  close(): Promise<void> {
    this.#closing ??= this.#transition(async () => {
      this.#unsubscribe();
      await this.#opened.catch(() => undefined);
      await this.#halt();
      const wasFailed = this.#failure !== undefined;
      this.#status = 'closed';
      this.#waiters.rejectAll(new SluiceError('VIEW_CLOSED', `view ${this.name} closed before it got there`));
      if (!this.#stopped.signal.aborted) this.#stopped.abort(new SluiceError('VIEW_CLOSED', `view ${this.name} closed`));
      try {
        if (!wasFailed && this.#since >= 0) await this.#checkpoint();
      } catch (error) {
        // Reported, not thrown: the state is derived, so a checkpoint lost here only means catching up from the
        // last good one at the next open, and the database must still close its views and its log.
        this.#events.failed(this.name, this.#since, asError(error));
      } finally {
        // A view whose open failed may still hold what it opened before failing: it is asked to close too.
        if (this.#viewOpened) await this.view.close();
        else await this.view.close().catch(() => undefined);
      }
    });
    return this.#closing;
  }

  #closing: Promise<void> | undefined;
  /** Aborted when the view stops being fed (failed or closed): see `ViewContext.stopped`. */
  #stopped = new AbortController();
}

/**
 * `events` with each listener's throw kept off the runner's path: rethrown asynchronously, as a log's subscribers'
 * are (`Log.subscribe`), so a listener bug surfaces on its own instead of failing a healthy view or leaving a
 * rejection unhandled.
 */
function shielded(events: RunnerEvents): RunnerEvents {
  const guard =
    <A extends unknown[]>(emit: (...args: A) => void) =>
    (...args: A): void => {
      try {
        emit(...args);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    };
  return {
    progress: guard((progress) => events.progress(progress)),
    failed: guard((view, offset, error) => events.failed(view, offset, error)),
    report: guard((view, message) => events.report(view, message)),
  };
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
