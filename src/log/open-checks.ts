import { SluiceError } from '../errors.js';

/**
 * What opening a log on files shares between the native and flumelog-offset logs: the checks of its flag options,
 * and the code an open that met a system error fails with.
 */

/** `TypeError` for each of `names` that `options` gives as something other than a boolean. */
export function checkBooleanOptions(options: object, names: readonly string[]): void {
  const given = options as Record<string, unknown>;
  for (const name of names) {
    if (given[name] !== undefined && typeof given[name] !== 'boolean') throw new TypeError(`${name} must be a boolean`);
  }
}

/**
 * `TypeError` for an option `options` gives (not `undefined`) whose name is none of `known`: a misspelt option
 * (`readOnly` for `readonly`) would otherwise be dropped without a word, and a log meant to be read would open as
 * the writer. Names differing only in case are suggested.
 */
export function checkOptionNames(options: object, known: readonly string[], what: string): void {
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined || known.includes(name)) continue;
    const alike = known.find((candidate) => candidate.toLowerCase() === name.toLowerCase());
    throw new TypeError(`${what} has no option ${name}${alike === undefined ? '' : ` (did you mean ${alike}?)`}; it takes ${known.join(', ')}`);
  }
}

/**
 * The options of the operations on a flumelog-offset file (import, export, `statFlumeOffset`): an object of the
 * options `operation` takes (`names`), and `legacy` a boolean, since each reads only `legacy === true` and would
 * take `'yes'` for the 3.x format.
 */
export function checkFlumeOffsetFileOptions(options: unknown, names: readonly string[], operation: string): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  checkOptionNames(options, names, operation);
  checkBooleanOptions(options, ['legacy']);
}

/**
 * An open that met a system error rather than a verdict on the files fails with a code like every other failure:
 * `NOT_A_LOG` when the path cannot be a log (a directory where a file goes, a path under a file), else
 * `READ_FAILED` for a read and `WRITE_FAILED` otherwise, the system error as its cause. Sluice's own errors and
 * programmer mistakes pass through.
 */
export function openFailure(error: unknown, path: string): unknown {
  if (error instanceof SluiceError || error instanceof TypeError || error instanceof RangeError) return error;
  const cause = error as NodeJS.ErrnoException;
  if (cause.code === 'EISDIR' || cause.code === 'ENOTDIR' || (cause.code === 'EEXIST' && cause.syscall === 'mkdir')) {
    return new SluiceError('NOT_A_LOG', `${path} cannot be a log: ${cause.message}`, { cause, file: path });
  }
  const code = cause.syscall === 'read' ? 'READ_FAILED' : 'WRITE_FAILED';
  return new SluiceError(code, `opening the log at ${path} failed: ${cause.message}`, { cause, file: cause.path ?? path });
}

/**
 * As `openFailure`, for an operation on a log directory (`check`, `recover`, `backup`, `restore`): a system error
 * it meets (a `LOCK` that is a directory, a file it may not read) fails with a code too. A `readOnly` operation
 * never writes, so its failures are `READ_FAILED`.
 */
export function operationFailure(error: unknown, operation: string, path: string, readOnly: boolean): unknown {
  if (error instanceof SluiceError || error instanceof TypeError || error instanceof RangeError) return error;
  const cause = error as NodeJS.ErrnoException;
  if (cause.code === 'EISDIR' || cause.code === 'ENOTDIR') {
    return new SluiceError('NOT_A_LOG', `${path} cannot be a log: ${cause.message}`, { cause, file: cause.path ?? path });
  }
  const code = readOnly || cause.syscall === 'read' ? 'READ_FAILED' : 'WRITE_FAILED';
  return new SluiceError(code, `${operation} of ${path} failed: ${cause.message}`, { cause, file: cause.path ?? path });
}
