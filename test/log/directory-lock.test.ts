/**
 * The writer's lock (FORMAT.md F-30, F-90) against writers of this same process and takeovers of a stale lock:
 * - worker threads of one process each load their own copy of the lock's module: a lock taken in one thread is
 *   live to the others (it names this process, with a token the other thread did not leave behind); a lock a
 *   failed release left behind is taken back by the module instance that left it only;
 * - a takeover of a stale lock interleaved step by step with other writers (worker threads driven at each step of
 *   the takeover through the module's test hook): never two holders, and the live lock is never moved.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { isSluiceError } from '../../src/errors.js';
import { DirectoryLock, lockFileName, lockTestHooks, type TakeoverStep } from '../../src/log/file/directory-lock.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { FaultyFs } from '../faults/faulty-fs.js';
import { temporaryDirectory } from '../helpers.js';

const lockModule = new URL('../../src/log/file/directory-lock.js', import.meta.url).href;
const fileLogModule = new URL('../../src/log/file/file-log.js', import.meta.url).href;

/** A lock no running process holds: pid 999999999 is beyond any pid Linux hands out. */
const staleContent = '999999999:12345';

/**
 * A writer in a worker thread, driven synchronously through shared memory so that it can act while this thread is
 * stopped inside the lock's code (in a test hook). Slot 0 is the command (1 acquire, 2 release, 3 exit), slot 1
 * the state it reports (1 ready, 2 holds the lock, 3 refused with LOCKED, 4 another error, 5 released).
 */
class LockWorker {
  readonly #shared = new Int32Array(new SharedArrayBuffer(8));
  readonly #worker: Worker;
  #error: unknown;

  constructor(dir: string) {
    const code = `
      const { workerData } = require('node:worker_threads');
      const slots = new Int32Array(workerData.shared);
      import(workerData.module).then(({ DirectoryLock }) => {
        let lock;
        Atomics.store(slots, 1, 1);
        Atomics.notify(slots, 1);
        for (;;) {
          Atomics.wait(slots, 0, 0);
          const command = Atomics.exchange(slots, 0, 0);
          if (command === 3) break;
          let state = 5;
          if (command === 1) {
            try {
              lock = DirectoryLock.acquire(workerData.dir);
              state = 2;
            } catch (error) {
              state = error.code === 'LOCKED' ? 3 : 4;
            }
          } else {
            lock?.release();
          }
          Atomics.store(slots, 1, state);
          Atomics.notify(slots, 1);
        }
      });`;
    this.#worker = new Worker(code, { eval: true, workerData: { shared: this.#shared.buffer, module: lockModule, dir } });
    this.#worker.on('error', (error) => (this.#error = error));
    this.#await();
  }

  #await(): number {
    while (Atomics.load(this.#shared, 1) === 0) {
      if (Atomics.wait(this.#shared, 1, 0, 10_000) === 'timed-out') assert.fail(`the worker does not answer: ${String(this.#error)}`);
    }
    return Atomics.load(this.#shared, 1);
  }

  #command(command: number): number {
    Atomics.store(this.#shared, 1, 0);
    Atomics.store(this.#shared, 0, command);
    Atomics.notify(this.#shared, 0);
    return this.#await();
  }

  /** True when it took the lock, false when refused with LOCKED. */
  acquire(): boolean {
    const state = this.#command(1);
    assert.ok(state === 2 || state === 3, `the worker failed to acquire with something other than LOCKED (${state})`);
    return state === 2;
  }

  release(): void {
    this.#command(2);
  }

  async exit(): Promise<void> {
    Atomics.store(this.#shared, 0, 3);
    Atomics.notify(this.#shared, 0);
    await new Promise((resolve) => this.#worker.once('exit', resolve));
  }
}

/** Runs `body` in a worker thread (an ES module body with `dir` and `fileLogModule` in scope); resolves to what it posts. */
async function inWorker(dir: string, body: string): Promise<string> {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    (async () => {
      const { dir, fileLogModule } = workerData;
      const { FileLog } = await import(fileLogModule);
      ${body}
    })().then((result) => parentPort.postMessage(String(result)), (error) => parentPort.postMessage('error ' + (error.code ?? error.message)));`;
  const worker = new Worker(code, { eval: true, workerData: { dir, fileLogModule } });
  const message = await new Promise<string>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await new Promise((resolve) => worker.once('exit', resolve));
  return message;
}

describe('the writer lock and worker threads of one process (F-30)', () => {
  const root = temporaryDirectory('sluice-lock-threads-');

  it('a writer in a worker thread is refused while this thread writes, and the other way round', async () => {
    const dir = join(root, 'both-ways');
    const log = await FileLog.open<string>(dir);
    await log.append('main');
    const refused = await inWorker(dir, `
      try {
        const log = await FileLog.open(dir);
        await log.append('worker');
        await log.close();
        return 'opened';
      } catch (error) {
        return error.code;
      }`);
    assert.equal(refused, 'LOCKED');
    await log.close();

    // The worker holds the log until this thread has tried.
    const worker = new LockWorker(dir);
    try {
      assert.equal(worker.acquire(), true);
      await assert.rejects(FileLog.open(dir), (error) => isSluiceError(error, 'LOCKED'));
      worker.release();
    } finally {
      await worker.exit();
    }
    await using again = await FileLog.open<string>(dir);
    const records: string[] = [];
    for await (const record of again.stream()) records.push(record.value);
    assert.deepEqual(records, ['main']);
  });

  it('a lock this module failed to remove is taken back by it, and by no other thread', async () => {
    const dir = join(root, 'left-behind');
    mkdirSync(dir);
    const store = await FaultyFs.install(dir);
    try {
      const log = await FileLog.open(dir);
      store.inject({ operation: 'unlink', path: (path) => path === lockFileName, kind: 'EIO' });
      await log.close();
      assert.equal(store.fired.length, 1);
    } finally {
      store.uninstall();
    }
    assert.ok(existsSync(join(dir, lockFileName)), 'the lock was left behind');
    const refused = await inWorker(dir, `
      try {
        await (await FileLog.open(dir)).close();
        return 'opened';
      } catch (error) {
        return error.code;
      }`);
    assert.equal(refused, 'LOCKED');
    const again = await FileLog.open(dir);
    await again.close();
    assert.equal(existsSync(join(dir, lockFileName)), false);
  });

  it('a lock naming this process that this module did not leave behind is live', async () => {
    const dir = join(root, 'own-pid');
    await (await FileLog.open(dir)).close();
    const own = readFileSync(`/proc/${process.pid}/stat`, 'latin1');
    const start = own.slice(own.lastIndexOf(')') + 2).split(' ')[19] ?? '';
    for (const content of [`${process.pid}:${start}:0123456789abcdef`, `${process.pid}:${start}`]) {
      writeFileSync(join(dir, lockFileName), content);
      await assert.rejects(FileLog.open(dir), (error) => isSluiceError(error, 'LOCKED'));
      assert.equal(readFileSync(join(dir, lockFileName), 'utf8'), content);
    }
  });
});

describe('taking over a stale lock, step by step (F-90)', () => {
  const root = temporaryDirectory('sluice-lock-takeover-');
  after(() => (lockTestHooks.step = undefined));

  const steps: readonly TakeoverStep[] = ['stale', 'guarded', 'checked'];
  // For each step of this thread's takeover: writer A (a worker) takes the lock over when this thread has found it
  // stale (or not at all), and writer C (another worker) tries at the step; at most one of the three holds it.
  for (const aFirst of [true, false]) {
    for (const step of steps) {
      // With A's lock in place, this thread's re-read under the guard finds it changed: no `checked` step.
      if (aFirst && step === 'checked') continue;
      it(`${aFirst ? 'another writer takes it over first; ' : ''}a third writer tries at step '${step}'`, async () => {
        const dir = join(root, `${aFirst ? 'a-' : ''}${step}`);
        await (await FileLog.open(dir)).close();
        writeFileSync(join(dir, lockFileName), staleContent);
        const a = new LockWorker(dir);
        const c = new LockWorker(dir);
        try {
          let aHolds = false;
          let cHolds = false;
          let cTried = false;
          const seen: TakeoverStep[] = [];
          lockTestHooks.step = (current) => {
            seen.push(current);
            if (current === 'stale' && aFirst && !aHolds) aHolds = a.acquire();
            if (current === step && !cTried) {
              cTried = true;
              cHolds = c.acquire();
            }
          };
          let b: DirectoryLock | undefined;
          try {
            b = DirectoryLock.acquire(dir);
          } catch (error) {
            assert.ok(isSluiceError(error, 'LOCKED'), String(error));
          } finally {
            lockTestHooks.step = undefined;
          }
          const context = `steps seen ${seen.join(', ')}; A holds ${aHolds}, B holds ${b !== undefined}, C holds ${cHolds}`;
          assert.equal(aHolds, aFirst, context);
          assert.equal([aHolds, b !== undefined, cHolds].filter(Boolean).length, 1, `one holder: ${context}`);
          if (!aFirst) assert.ok(cTried, `C tried: ${context}`);
          // The holder's lock is in place, and releases as its own.
          const lockContent = readFileSync(join(dir, lockFileName), 'utf8');
          assert.notEqual(lockContent, staleContent, context);
          b?.release();
          a.release();
          c.release();
        } finally {
          await Promise.all([a.exit(), c.exit()]);
        }
        await using log = await FileLog.open(dir);
        assert.equal(log.status, 'open');
      });
    }
  }
});
