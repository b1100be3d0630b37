import { SluiceError } from '../src/errors.js';

/**
 * What a call came to, in a form two implementations' calls can be compared by (the differential tests): its
 * result, or its error's class and code and whether it was thrown at the call or by its promise.
 */
export type Outcome = { readonly ok: unknown } | { readonly error: string; readonly thrown: 'synchronously' | 'asynchronously' };

export function describeError(error: unknown): string {
  if (error instanceof SluiceError) return `SluiceError ${error.code}`;
  if (error instanceof TypeError) return 'TypeError';
  if (error instanceof RangeError) return 'RangeError';
  return `unexpected ${String(error)}`;
}

/** The outcome of `call`, its result passed through `map`. */
export async function outcomeOf<R>(call: () => Promise<R> | R, map: (result: R) => unknown = (result) => result): Promise<Outcome> {
  let promise: Promise<R> | R;
  try {
    promise = call();
  } catch (error) {
    return { error: describeError(error), thrown: 'synchronously' };
  }
  try {
    return { ok: map(await promise) };
  } catch (error) {
    return { error: describeError(error), thrown: 'asynchronously' };
  }
}
