import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createObservable, createSettableObservable, readOnly } from '../../src/flume/observable.js';
import {
  asyncMap,
  deferred,
  failedSource,
  fromAsyncIterable,
  guardConsumer,
  type PullEnd,
  type PullSource,
} from '../../src/flume/pull.js';
import { collect, Obv, pull, settle } from './support.js';

async function* numbers(count: number): AsyncGenerator<number> {
  for (let i = 0; i < count; i++) yield i;
}

/** An async iterable that yields `items`, then waits (like a live stream) until its signal aborts. */
function live(items: number[], signal: AbortSignal, onReturn: () => void): AsyncIterable<number> {
  return {
    [Symbol.asyncIterator]: () => {
      let index = 0;
      return {
        next: () =>
          index < items.length
            ? Promise.resolve({ done: false, value: items[index++] as number })
            : new Promise((resolve) => {
                signal.addEventListener('abort', () => resolve({ done: true, value: undefined }));
              }),
        return: () => {
          onReturn();
          return Promise.resolve({ done: true, value: undefined });
        },
      };
    },
  };
}

function read<T>(source: PullSource<T>): Promise<{ end: PullEnd; data?: T }> {
  return new Promise((resolve) => source(null, (end, data) => resolve({ end, data })));
}

describe('pull-stream adapters', () => {
  it('turns an async iterable into a source that pull-stream sinks consume', async () => {
    const source = fromAsyncIterable(() => numbers(5), { map: (n) => n * 10 });
    assert.deepEqual(await collect(source), [0, 10, 20, 30, 40]);
    assert.equal((await read(source)).end, true, 'an ended source answers every read with its end');
  });

  it('opens lazily, ends with the iterator error, and answers an abort while a read waits', async () => {
    let opened = 0;
    const failing = fromAsyncIterable(() => {
      opened++;
      return (async function* () {
        yield 1;
        throw new Error('broken');
      })();
    });
    assert.equal(opened, 0, 'nothing opens before the first read');
    await assert.rejects(collect(failing), /broken/);
    assert.equal(opened, 1);

    let returned = 0;
    let signal: AbortSignal | undefined;
    const source = fromAsyncIterable((given) => {
      signal = given;
      return live([7], given, () => returned++);
    });
    assert.deepEqual(await read(source), { end: null, data: 7 });
    const waiting = read(source);
    const aborted = new Promise<PullEnd>((resolve) => source(true, resolve));
    assert.deepEqual(await waiting, { end: true, data: undefined }, 'the waiting read ends');
    assert.equal(await aborted, true);
    assert.equal(signal?.aborted, true, 'the iterator is told through its signal');
    assert.equal(returned, 1, 'and closed');
    assert.throws(() => source(null, undefined as never), TypeError);
  });

  it('stops pull-stream sinks that abort (drain returning false) exactly once', async () => {
    const source = fromAsyncIterable(() => numbers(100));
    const seen: unknown[] = [];
    let ends = 0;
    await new Promise<void>((resolve) =>
      pull(
        source,
        pull.drain(
          (value) => seen.push(value) < 3,
          () => {
            ends++;
            resolve();
          },
        ),
      ),
    );
    await settle();
    assert.deepEqual(seen, [0, 1, 2]);
    assert.equal(ends, 1);
  });

  it('reports a consumer callback that throws, instead of losing it in a promise', async () => {
    const thrown: unknown[] = [];
    const source = fromAsyncIterable(() => numbers(3), { onCallbackError: (error) => thrown.push(error) });
    source(null, () => {
      throw new Error('consumer bug');
    });
    await settle();
    assert.equal((thrown[0] as Error).message, 'consumer bug');
    assert.equal((await read(source)).end, true, 'the stream is over');
  });

  it('maps asynchronously; an error from the map ends the stream and aborts the source', async () => {
    const later = (n: number, cb: (error: null, value: number) => void): unknown => setImmediate(() => cb(null, n * 2));
    const doubled = asyncMap(fromAsyncIterable(() => numbers(3)), later);
    assert.deepEqual(await collect(doubled), [0, 2, 4]);
    let aborted: PullEnd;
    const upstream: PullSource<number> = (abort, cb) => {
      if (abort) {
        aborted = abort;
        return cb(abort);
      }
      cb(null, 1);
    };
    const failing = asyncMap(upstream, (_n: number, cb) => cb(new Error('map failed')));
    await assert.rejects(collect(failing), /map failed/);
    assert.match(String(aborted), /map failed/);
    const throwing = asyncMap(fromAsyncIterable(() => numbers(3)), () => {
      throw new Error('map threw');
    });
    await assert.rejects(collect(throwing), /map threw/);
  });

  it('drops the late result of a map when the consumer aborted meanwhile', async () => {
    let finish: (() => void) | undefined;
    const mapped = asyncMap(fromAsyncIterable(() => numbers(3)), (n: number, cb) => (finish = () => cb(null, n)));
    const first = read(mapped);
    await settle();
    const abort = new Promise<PullEnd>((resolve) => mapped(true, resolve));
    assert.deepEqual(await first, { end: true, data: undefined });
    assert.equal(await abort, true);
    finish?.(); // The map calls back after the end: nothing happens.
    assert.equal((await read(mapped)).end, true);
  });

  it('defers a source until it is given, or fails with the reason it is not', async () => {
    let give: ((source: PullSource<number>) => void) | undefined;
    let starts = 0;
    const later = deferred<number>((cb) => {
      starts++;
      give = (source) => cb(null, source);
    });
    assert.equal(starts, 0, 'starts on the first read');
    const items = collect(later);
    await settle();
    give?.(fromAsyncIterable(() => numbers(2)));
    assert.deepEqual(await items, [0, 1]);
    assert.equal(starts, 1);
    await assert.rejects(collect(deferred((cb) => cb(new Error('cannot start')))), /cannot start/);
    await assert.rejects(collect(failedSource(new Error('failed'))), /failed/);

    let aborted = false;
    const abandoned = deferred<number>((cb) => (give = (source) => cb(null, source)));
    const waiting = read(abandoned);
    abandoned(true, () => undefined);
    assert.equal((await waiting).end, true);
    give?.((abort, cb) => {
      aborted = abort === true;
      cb(true);
    });
    assert.equal(aborted, true, 'a source given after the abort is aborted');
  });

  it('guards a source against a consumer that throws', async () => {
    const errors: unknown[] = [];
    const guarded = guardConsumer(fromAsyncIterable(() => numbers(5)), (error) => errors.push(error));
    guarded(null, () => {
      throw new Error('sink threw');
    });
    await settle();
    assert.equal((errors[0] as Error).message, 'sink threw');
    assert.equal((await read(guarded)).end, true);
  });
});

describe('observables', () => {
  it('calls a listener at once when set, unless told not to; once listens for one value', () => {
    const { observable, set } = createObservable<number>();
    const seen: string[] = [];
    observable.once((value) => seen.push(`once ${value}`));
    assert.equal(observable.value, undefined);
    set(1);
    const stop = observable((value) => seen.push(`now ${value}`));
    observable((value) => seen.push(`later ${value}`), false);
    observable.once((value) => seen.push(`next ${value}`), false);
    observable.once((value) => seen.push(`current ${value}`));
    set(2);
    stop();
    set(3);
    assert.deepEqual(seen, ['once 1', 'now 1', 'current 1', 'now 2', 'later 2', 'next 2', 'later 3']);
    assert.equal(observable.value, 3);
    assert.equal((observable as unknown as { set?: unknown }).set, undefined, 'the setter is not on it');
  });

  it('gives listeners after one that sets a newer value only the newer one', () => {
    const { observable, set } = createObservable<number>();
    const seen: number[] = [];
    observable((value) => {
      if (value === 1) set(2);
    }, false);
    observable((value) => seen.push(value), false);
    set(1);
    assert.deepEqual(seen, [2]);
  });

  it('keeps a throwing listener from stopping the others', () => {
    const { observable, set } = createObservable<number>();
    const seen: number[] = [];
    observable(() => {
      throw new Error('listener bug');
    }, false);
    observable((value) => seen.push(value), false);
    // The error is rethrown from a later turn of the event loop: catch what is scheduled there.
    const scheduled: Array<() => void> = [];
    const original = globalThis.setImmediate;
    globalThis.setImmediate = ((run: () => void) => scheduled.push(run)) as unknown as typeof setImmediate;
    try {
      set(5);
    } finally {
      globalThis.setImmediate = original;
    }
    assert.deepEqual(seen, [5]);
    assert.equal(scheduled.length, 1);
    assert.throws(() => scheduled[0]?.(), /listener bug/, 'the error surfaces on its own');
  });

  it('is settable when asked, and read-only views of obv observables hide their setter', () => {
    const ready = createSettableObservable<boolean>(false);
    assert.equal(ready.set(true), ready);
    assert.equal(ready.value, true);
    const source = Obv<number>();
    const view = readOnly(source);
    assert.equal(view.value, undefined, "obv's null reads as undefined");
    const seen: number[] = [];
    view.once((value) => seen.push(value));
    source.set(4);
    assert.deepEqual(seen, [4]);
    assert.equal(view.value, 4);
    assert.equal((view as unknown as { set?: unknown }).set, undefined);
  });
});
