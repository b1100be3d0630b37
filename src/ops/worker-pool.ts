import { Worker } from 'node:worker_threads';

/** What a pool sends a worker thread, and what the worker answers (see `serveJobs`). */
interface JobMessage<Job> {
  readonly id: number;
  readonly job: Job;
}
interface ResultMessage<Result> {
  readonly id: number;
  readonly result: Result;
}

/** The worker's end of the channel (`parentPort`), as `serveJobs` uses it. */
interface JobPort<Job, Result> {
  on(event: 'message', listener: (message: JobMessage<Job>) => void): unknown;
  postMessage(message: ResultMessage<Result | undefined>): void;
}

interface PoolWorker {
  readonly worker: Worker;
  readonly pending: Set<number>;
  alive: boolean;
}

/**
 * A few worker threads running one module, each job going to the worker with the fewest jobs waiting. The module
 * answers jobs with `serveJobs`.
 *
 * Edge cases: a job whose worker dies (an uncaught error, an exit) resolves to `undefined`, as does every job
 * once no worker is left; a job the worker's function throws on also resolves to `undefined`. `close` is
 * idempotent: it ends the threads, and jobs still waiting resolve to `undefined`.
 */
export class WorkerPool<Job, Result> {
  readonly #workers: PoolWorker[] = [];
  readonly #waiting = new Map<number, (result: Result | undefined) => void>();
  #nextId = 0;

  private constructor() {}

  #startWorker(module: URL): void {
    const worker = new Worker(module);
    const entry: PoolWorker = { worker, pending: new Set(), alive: true };
    worker.on('message', ({ id, result }: ResultMessage<Result | undefined>) => {
      entry.pending.delete(id);
      this.#answer(id, result);
    });
    const lost = (): void => {
      entry.alive = false;
      for (const id of entry.pending) this.#answer(id, undefined);
      entry.pending.clear();
    };
    worker.on('error', lost);
    worker.on('exit', lost);
    this.#workers.push(entry);
  }

  /**
   * Starts `count` (≥ 1) threads running `module`. A thread that cannot be started ends those started before it,
   * and the error is thrown.
   */
  static start<Job, Result>(module: URL, count: number): WorkerPool<Job, Result> {
    if (!Number.isInteger(count) || count < 1) throw new RangeError('a worker pool has at least one thread');
    const pool = new WorkerPool<Job, Result>();
    try {
      for (let i = 0; i < count; i++) pool.#startWorker(module);
    } catch (error) {
      void pool.close();
      throw error;
    }
    return pool;
  }

  /** The threads still running (a thread that failed or exited no longer counts). */
  get size(): number {
    let alive = 0;
    for (const entry of this.#workers) if (entry.alive) alive++;
    return alive;
  }

  /** Runs `job` on the worker with the fewest jobs waiting; `undefined` when it could not (see the class). */
  run(job: Job): Promise<Result | undefined> {
    let chosen: PoolWorker | undefined;
    for (const entry of this.#workers) {
      if (entry.alive && (chosen === undefined || entry.pending.size < chosen.pending.size)) chosen = entry;
    }
    if (chosen === undefined) return Promise.resolve(undefined);
    const id = this.#nextId++;
    chosen.pending.add(id);
    const result = new Promise<Result | undefined>((resolve) => this.#waiting.set(id, resolve));
    const message: JobMessage<Job> = { id, job };
    chosen.worker.postMessage(message);
    return result;
  }

  #answer(id: number, result: Result | undefined): void {
    const resolve = this.#waiting.get(id);
    this.#waiting.delete(id);
    resolve?.(result);
  }

  async close(): Promise<void> {
    const workers = this.#workers.splice(0);
    for (const entry of workers) entry.alive = false;
    await Promise.all(workers.map((entry) => entry.worker.terminate()));
    for (const id of [...this.#waiting.keys()]) this.#answer(id, undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * The worker side of a `WorkerPool`: answers each job with `work(job)`, one at a time, in the order they came;
 * a job `work` throws on is answered `undefined`.
 */
export function serveJobs<Job, Result>(port: JobPort<Job, Result>, work: (job: Job) => Promise<Result>): void {
  let queue = Promise.resolve();
  port.on('message', ({ id, job }) => {
    queue = queue.then(async () => {
      let result: Result | undefined;
      try {
        result = await work(job);
      } catch {
        result = undefined;
      }
      port.postMessage({ id, result });
    });
  });
}
