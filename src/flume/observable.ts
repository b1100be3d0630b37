/**
 * The observable flumedb hands around (`since`, `ready`, a view's `since`), with the calling conventions of the
 * `obv` / `obz` modules so that flume views written against them work unchanged:
 *
 * - `observable(listener, immediately?)` subscribes and returns the function that unsubscribes; the listener is
 *   called at once with the current value when there is one, unless `immediately` is `false`.
 * - `observable.once(listener, immediately?)`: the same, for one call only.
 * - `observable.value`: the current value; `undefined` until the first `set`.
 *
 * Listeners run in subscription order. One that sets the value again while being notified starts a new round:
 * the listeners after it then see only the newer value, never an outdated one. A listener that throws does not
 * stop the others nor fail the `set`: its error is rethrown on its own, asynchronously (as Sluice's
 * `Log.subscribe` does).
 */
export interface Observable<T> {
  (listener: (value: T) => void, immediately?: boolean): () => void;
  readonly value: T | undefined;
  once(listener: (value: T) => void, immediately?: boolean): () => void;
}

/** An observable whose owner may also set it (flumedb's `ready` is set by applications: `db.ready.set(true)`). */
export interface SettableObservable<T> extends Observable<T> {
  set(value: T): this;
}

/** An observable and the function that sets it, kept apart so the observable can be handed out read-only. */
export interface ObservableHandle<T> {
  readonly observable: Observable<T>;
  readonly set: (value: T) => void;
}

/** Creates an observable without a value; `set` is returned beside it, not on it. */
export function createObservable<T>(): ObservableHandle<T> {
  let current: T | undefined;
  let hasValue = false;
  // Bumped by every set, so a notification round can tell that a listener set a newer value.
  let round = 0;
  let listeners: Array<(value: T) => void> = [];
  let oncers: Array<(value: T) => void> = [];

  const subscribe = (listener: (value: T) => void, immediately?: boolean): (() => void) => {
    checkListener(listener);
    // A wrapper, so the same function subscribed twice is two subscriptions that unsubscribe independently.
    const entry = (value: T): void => listener(value);
    listeners = [...listeners, entry];
    if (hasValue && immediately !== false) entry(current as T);
    return () => {
      listeners = listeners.filter((other) => other !== entry);
    };
  };

  const once = (listener: (value: T) => void, immediately?: boolean): (() => void) => {
    checkListener(listener);
    if (hasValue && immediately !== false) {
      listener(current as T);
      return () => undefined;
    }
    const entry = (value: T): void => listener(value);
    oncers.push(entry);
    return () => {
      oncers = oncers.filter((other) => other !== entry);
    };
  };

  const set = (value: T): void => {
    current = value;
    hasValue = true;
    const mine = ++round;
    // Copies: a listener may subscribe or unsubscribe while being notified.
    for (const listener of listeners) {
      if (round !== mine) return;
      notify(listener, value);
    }
    const due = oncers;
    oncers = [];
    // If a listener sets a newer value meanwhile, the oncers not yet called get that one instead.
    for (const oncer of due) notify(oncer, current);
  };

  Object.defineProperty(subscribe, 'value', { get: () => current, enumerable: true });
  Object.defineProperty(subscribe, 'once', { value: once, enumerable: true });
  return { observable: subscribe as Observable<T>, set };
}

/** Creates an observable whose `set` is public (flumedb's `ready`). */
export function createSettableObservable<T>(initial?: T): SettableObservable<T> {
  const { observable, set } = createObservable<T>();
  const settable = observable as SettableObservable<T>;
  Object.defineProperty(settable, 'set', {
    value(value: T) {
      set(value);
      return settable;
    },
    enumerable: true,
  });
  if (initial !== undefined) set(initial);
  return settable;
}

/**
 * A read-only facade over any obv-like observable (ours, or the `since` of a flumelog from npm, whose `set`
 * must not reach applications). Absent values are `undefined` here whatever the source uses (obv uses `null`).
 */
export function readOnly<T>(source: Observable<T>): Observable<T> {
  const subscribe = (listener: (value: T) => void, immediately?: boolean): (() => void) =>
    source(listener, immediately);
  Object.defineProperty(subscribe, 'value', { get: () => source.value ?? undefined, enumerable: true });
  Object.defineProperty(subscribe, 'once', {
    value: (listener: (value: T) => void, immediately?: boolean) => source.once(listener, immediately),
    enumerable: true,
  });
  return subscribe as Observable<T>;
}

/** True when `value` has the shape of an obv-like observable (a function with `once`). */
export function isObservable(value: unknown): value is Observable<unknown> {
  return typeof value === 'function' && typeof (value as { once?: unknown }).once === 'function';
}

function checkListener(listener: unknown): void {
  if (typeof listener !== 'function') throw new TypeError('an observable listener must be a function');
}

function notify<T>(listener: (value: T) => void, value: T): void {
  try {
    listener(value);
  } catch (error) {
    setImmediate(() => {
      throw error;
    });
  }
}
