import { asError, isSluiceError, SluiceError } from '../errors.js';
import { viewRestartsMax } from '../limits.js';
import { Waiters } from '../views/waiters.js';
import { callbackify, checkCallback, invoke, type NodeCallback } from './errors.js';
import type { FlumeItem } from './flumelog.js';
import { readOnly } from './observable.js';
import { deferred, guardConsumer, rethrowAsync, type PullSource } from './pull.js';
import { checkView, type FlumeView, type MountedViewApi, type ViewHost } from './view.js';

interface Feed {
  readonly source: PullSource<FlumeItem<unknown>>;
  readonly ended: Promise<void>;
  /** True once we ended it ourselves (to close, destroy or rebuild): its end is then expected. */
  stopped: boolean;
}

/** A view whose `close` takes an error first, as flumedb allows. */
interface TwoArgumentClose {
  close(error: Error | null, cb: (error?: Error | null) => void): void;
}

/**
 * One view of a flume database: validates it, feeds it from the log, rebuilds it when it is ahead of the log
 * or its stream fails, makes its reads wait, and closes it after its last write.
 */
export class MountedView<T> {
  readonly name: string;
  readonly api: MountedViewApi;
  readonly #view: FlumeView;
  readonly #host: ViewHost<T>;
  /** Reads waiting for the view to reach an offset: released in offset order. */
  readonly #waiters = new Waiters();
  /** Reads with `since: -1`, waiting only for the view to load its state. */
  readonly #loadWaiters = new Waiters();
  /** The view's `since` may be compared with the log's: false until checked against it, and while destroying. */
  #trusted = false;
  #feed: Feed | undefined;
  /** Starts, rebuilds and restarts run one at a time, in order. */
  #queue: Promise<void> = Promise.resolve();
  #failure: SluiceError | undefined;
  #closing: Promise<void> | undefined;
  readonly #closed: Promise<never>;
  #signalClosed: () => void = () => undefined;
  #restarts = 0;
  /** The view's `since` at its last unexpected end. */
  #lastEndAt = -Infinity;

  constructor(name: string, view: unknown, host: ViewHost<T>) {
    this.name = name;
    this.#view = checkView(name, view);
    this.#host = host;
    this.#closed = new Promise<never>((_resolve, reject) => {
      this.#signalClosed = () => reject(closedViewError(name));
    });
    this.#closed.catch(() => undefined);
    this.api = this.#mount();
    this.#view.since((since) => this.#onViewSince(since));
    void this.#serial(() => this.#start());
  }

  /** Called by the database when `ready` becomes true. */
  onReady(): void {
    this.#release();
  }

  /**
   * Destroys the view's state, feeds it from the start, and resolves once it has caught up with the log, or,
   * while the database's `ready` is false, once it has been destroyed and restarted. A view closed on its own
   * (`db[name].close`) stays closed: there is nothing to rebuild.
   */
  async rebuild(): Promise<void> {
    if (this.#isClosed) return;
    // From now on reads wait for the rebuilt state, even before the destroy (queued behind other work) runs.
    this.#trusted = false;
    await this.#serial(async () => {
      await this.#destroy();
      this.#failure = undefined;
      this.#restarts = 0;
      this.#lastEndAt = -Infinity;
      this.#startFeed(-1);
    });
    await this.#caughtUpUnlessHeldBack();
  }

  /**
   * flumedb calls a rebuild back once its views caught up, whatever `ready` says, since its views index
   * regardless. Ours index only while `ready` is true: waiting for the catch-up while it is false would hold
   * the callback until the application sets it, and forever if it waits for the rebuild first. Reads still
   * wait for the rebuilt state.
   */
  #caughtUpUnlessHeldBack(): Promise<void> {
    if (this.#host.ready.value !== true) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const stop = this.#host.ready((value) => {
        if (value === true) return;
        stop();
        resolve();
      }, false);
      this.#ready(undefined).then(
        () => {
          stop();
          resolve();
        },
        (error: unknown) => {
          stop();
          reject(asError(error));
        },
      );
    });
  }

  /**
   * Fails waiting reads (with `reason` as the cause, when given), ends the feed once the sink has written what it
   * took, then closes the view. Idempotent: a later call resolves when the first is done.
   */
  close(reason: Error | null = null): Promise<void> {
    this.#closing ??= (async () => {
      this.#trusted = false;
      this.#signalClosed();
      this.#waiters.rejectAll(closedViewError(this.name, reason));
      this.#loadWaiters.rejectAll(closedViewError(this.name, reason));
      await this.#queue;
      await this.#stopFeed();
      await new Promise<void>((resolve, reject) => {
        const done = (error?: Error | null): void => (error ? reject(asError(error)) : resolve());
        // flumedb passes views with a two-argument close the error it was closed with first.
        if (this.#view.close.length >= 2) (this.#view as unknown as TwoArgumentClose).close(reason, done);
        else this.#view.close(done);
      });
    })();
    return this.#closing;
  }

  get #isClosed(): boolean {
    return this.#closing !== undefined;
  }

  #serial(task: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(() => (this.#isClosed ? undefined : task()));
    this.#queue = run.catch((error: unknown) => this.#fail(error));
    return run;
  }

  /** Resolves when `promise` does, or rejects once the view closes: no step may outlive the database. */
  #unlessClosed<U>(promise: Promise<U>): Promise<U> {
    return Promise.race([promise, this.#closed]);
  }

  async #start(): Promise<void> {
    await this.#unlessClosed(new Promise<void>((resolve) => this.#view.since.once(() => resolve())));
    await this.#unlessClosed(this.#logLoaded());
    const viewSince = this.#view.since.value ?? -1;
    const logSince = this.#host.since.value ?? -1;
    // The view is ahead of the log (the log lost its tail in a crash): its state claims records that are gone.
    if (viewSince > logSince) {
      await this.#destroy();
      this.#startFeed(-1);
    } else {
      this.#startFeed(viewSince);
    }
  }

  #logLoaded(): Promise<void> {
    return new Promise((resolve, reject) => this.#host.whenLoaded((error) => (error ? reject(error) : resolve())));
  }

  async #destroy(): Promise<void> {
    this.#trusted = false;
    await this.#stopFeed();
    await new Promise<void>((resolve, reject) =>
      this.#view.destroy((error) => (error ? reject(asError(error)) : resolve())),
    );
  }

  #startFeed(from: number): void {
    if (this.#isClosed) return;
    let ended: () => void = () => undefined;
    let done = false;
    const feed: Feed = {
      source: guardConsumer(this.#host.feed(from), (error) => {
        ended();
        this.#fail(error);
      }),
      ended: new Promise<void>((resolve) => (ended = resolve)),
      stopped: false,
    };
    const sink = this.#view.createSink((error) => {
      // Sinks may call back twice (pull-write does when aborted after ending): the first end counts.
      if (done) return;
      done = true;
      ended();
      if (this.#feed === feed) this.#feed = undefined;
      if (!feed.stopped) this.#onUnexpectedEnd(error);
    });
    if (typeof sink !== 'function') throw new TypeError(`flume view "${this.name}": createSink must return a sink`);
    this.#feed = feed;
    this.#trusted = true;
    this.#release();
    try {
      sink(feed.source);
    } catch (error) {
      ended();
      this.#fail(error);
    }
  }

  async #stopFeed(): Promise<void> {
    const feed = this.#feed;
    if (feed === undefined) return;
    feed.stopped = true;
    feed.source(true, () => undefined);
    await feed.ended;
    if (this.#feed === feed) this.#feed = undefined;
  }

  /** The stream ended without us ending it: a failed stream rebuilds the view; an end restarts its stream. */
  #onUnexpectedEnd(error: Error | null | undefined): void {
    if (this.#isClosed || this.#failure !== undefined) return;
    if (isSluiceError(error, 'LOG_CLOSED')) {
      // The log was closed under the database: nothing to rebuild from.
      this.#fail(closedViewError(this.name));
      return;
    }
    // Progress is getting past the point of the last unexpected end; a rebuild that fails at the same record
    // again is none, however many records it reprocessed on the way.
    const at = this.#view.since.value ?? -1;
    if (at > this.#lastEndAt) this.#restarts = 0;
    this.#lastEndAt = at;
    if (++this.#restarts > viewRestartsMax) {
      this.#fail(error ?? new Error('the view ended its stream every time it was started'));
      return;
    }
    // pull-write ends a sink it aborted with an error marked `abort`: that is an end, not a failure.
    const failed = error !== null && error !== undefined && (error as { abort?: unknown }).abort !== true;
    if (failed) void this.#serial(() => this.#destroy().then(() => this.#startFeed(-1)));
    else void this.#serial(async () => this.#startFeed(this.#view.since.value ?? -1));
  }

  /** Stops the view: its waiting and later reads fail with `VIEW_FAILED` (or its own code), the others go on. */
  #fail(error: unknown): void {
    if (this.#failure !== undefined || this.#isClosed) return;
    const failure = isSluiceError(error)
      ? error
      : new SluiceError('VIEW_FAILED', `flume view "${this.name}" failed: ${asError(error).message}`, { cause: error });
    this.#failure = failure;
    this.#trusted = false;
    if (this.#feed !== undefined) {
      this.#feed.stopped = true;
      this.#feed.source(true, () => undefined);
    }
    this.#waiters.rejectAll(failure);
    this.#loadWaiters.rejectAll(failure);
  }

  #onViewSince(since: number | null | undefined): void {
    if (since === null || since === undefined) return;
    this.#loadWaiters.release(since);
    this.#release();
  }

  #release(): void {
    const since = this.#view.since.value;
    if (!this.#trusted || this.#host.ready.value !== true || since === null || since === undefined) return;
    this.#waiters.release(since);
  }

  /**
   * Resolves once a read with these options may run: at once with `since: -1` (once the state has loaded), when
   * the view reached `since: N`, and by default when it reached the log's `since` as of this call. Throws
   * `TypeError` for a `since` that is not a number, `RangeError` for one that is neither negative nor a seq.
   */
  #ready(options: unknown): Promise<void> {
    const since = typeof options === 'object' && options !== null ? (options as { since?: unknown }).since : undefined;
    if (since !== undefined && since !== null && typeof since !== 'number') {
      throw new TypeError(`flume view "${this.name}": since must be a number`);
    }
    // NaN, a fraction or Infinity is no seq a view could reach: the read would wait until close. (flumedb tests
    // `since` for truth, so NaN there waits for the log as `0` does; here `0` is the first record's seq.)
    if (typeof since === 'number' && !(since < 0) && !Number.isSafeInteger(since)) {
      throw new RangeError(`flume view "${this.name}": since must be a seq (a safe integer) or negative, got ${since}`);
    }
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#isClosed) return Promise.reject(closedViewError(this.name));
    if (typeof since === 'number' && since < 0) {
      const loaded = this.#view.since.value;
      return loaded === null || loaded === undefined ? this.#loadWaiters.wait(-1, undefined) : Promise.resolve();
    }
    if (typeof since === 'number') return this.#waitFor(since);
    const logSince = this.#host.since.value;
    if (logSince !== undefined && logSince !== null) return this.#waitFor(logSince);
    return this.#unlessClosed(this.#logLoaded()).then(() => this.#waitFor(this.#host.since.value ?? -1));
  }

  #waitFor(target: number): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#caughtUp(target)) return Promise.resolve();
    const waiting = this.#waiters.wait(target, undefined);
    // A target past the log waits for records to reach it.
    if (target > (this.#host.since.value ?? -1)) return waiting;
    // The view sets its since from the records it is fed, and streams skip deleted records: when the last
    // records up to the target were deleted, the view can only reach the last record before them.
    this.#host.lastRecordAtOrBefore(target).then(
      (last) => {
        if (last >= target) return;
        this.#waiters.retarget(target, last);
        this.#release();
      },
      () => undefined,
    );
    return waiting;
  }

  #caughtUp(target: number): boolean {
    const since = this.#view.since.value;
    return this.#trusted && this.#host.ready.value === true && since !== null && since !== undefined && since >= target;
  }

  #mount(): MountedViewApi {
    const api: Record<string, unknown> = {
      name: this.name,
      since: readOnly(this.#view.since),
      methods: this.#view.methods,
      close: this.#closeFromApi,
    };
    for (const [method, type] of Object.entries(this.#view.methods)) {
      const fn = (this.#view as unknown as Record<string, unknown>)[method] as (...args: unknown[]) => unknown;
      const what = `${this.name}.${method}`;
      if (type === 'sync') api[method] = this.#sync(fn, what);
      else if (type === 'async') api[method] = this.#async(fn, what);
      else api[method] = this.#source(fn, what);
    }
    return api as MountedViewApi;
  }

  /** `db[name].close(cb)` or, as flumedb also takes it, `db[name].close(err, cb)`; `cb` is optional. */
  readonly #closeFromApi = (...args: unknown[]): void => {
    const [reason, cb] = typeof args[0] === 'function' ? [null, args[0]] : [args[0] ?? null, args[1]];
    if (reason !== null && !(reason instanceof Error)) {
      throw new TypeError(`flume view "${this.name}": close takes an error (or null) before its callback`);
    }
    if (cb !== undefined) checkCallback(cb, `${this.name}.close`);
    const closing = this.close(reason);
    if (cb !== undefined) callbackify(closing, cb as NodeCallback<null>, () => null);
    else closing.catch(() => undefined); // The database's close reports it again.
  };

  #sync(fn: (...args: unknown[]) => unknown, what: string): (...args: unknown[]) => unknown {
    return (...args) => {
      this.#host.checkOpen(what);
      // A closed view's module has released what its methods read.
      if (this.#isClosed) throw closedViewError(this.name);
      return fn.apply(this.#view, args);
    };
  }

  #async(fn: (...args: unknown[]) => unknown, what: string): (...args: unknown[]) => void {
    return (...args) => {
      this.#host.checkOpen(what);
      // flume views take (options, cb) or just (cb): the callback is the last function given.
      const cb = [...args].reverse().find((arg) => typeof arg === 'function') as NodeCallback<unknown> | undefined;
      const fail = (error: unknown): void => {
        if (cb !== undefined) invoke(cb, asError(error));
      };
      this.#ready(typeof args[0] === 'function' ? undefined : args[0]).then(() => {
        if (this.#isClosed) return fail(closedViewError(this.name));
        try {
          fn.apply(this.#view, args);
        } catch (error) {
          if (cb !== undefined) fail(error);
          else rethrowAsync(error);
        }
      }, fail);
    };
  }

  #source(fn: (...args: unknown[]) => unknown, what: string): (options?: unknown) => PullSource<unknown> {
    return (options) => {
      this.#host.checkOpen(what);
      // The wait starts now, so the read sees every append that called back before it was issued.
      const waiting = this.#ready(options);
      waiting.catch(() => undefined);
      return deferred<unknown>((cb) => {
        waiting.then(() => {
          if (this.#isClosed) return cb(closedViewError(this.name));
          let source: unknown;
          try {
            source = fn.call(this.#view, options);
          } catch (error) {
            return cb(asError(error));
          }
          if (typeof source !== 'function') return cb(new TypeError(`${what} did not return a pull-stream source`));
          cb(null, source as PullSource<unknown>);
        }, (error: unknown) => cb(asError(error)));
      });
    };
  }
}

function closedViewError(name: string, reason: Error | null = null): SluiceError {
  return new SluiceError('VIEW_CLOSED', `flume view "${name}" was closed`, reason === null ? {} : { cause: reason });
}

