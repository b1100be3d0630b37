import { createRequire, syncBuiltinESMExports } from 'node:module';
import { resolve, relative, sep } from 'node:path';

/**
 * A fault-injecting store under the real code: the functions of `node:fs` and `node:fs/promises` (and the methods
 * of their FileHandle) are wrapped, and `syncBuiltinESMExports()` makes every module's named imports of them
 * (`import { writeSync } from 'node:fs'`) call the wrappers. The log's own code runs unchanged over real files;
 * only calls on files under one directory are counted, traced, and failed when a fault says so: a write torn after
 * `n` bytes (the first `n` bytes reach the file, then the call fails), `EIO`, `ENOSPC`. Everything else (stdout,
 * stderr, other directories) passes straight through, so a test's own output never meets a fault.
 *
 * Why this seam rather than a store interface in the log: the log's I/O is plain synchronous `fs` calls on
 * descriptors (reads are synchronous on purpose, ARCHITECTURE.md), and a seam inside it would be code that only
 * tests use; wrapping `fs` exercises exactly the calls the product makes.
 */

/** What a faulted call was doing. `open` counts only opens for writing; `read` counts reads and opens for reading. */
export type Operation = 'open' | 'write' | 'sync' | 'read' | 'truncate' | 'rename' | 'unlink' | 'link';

export type FaultKind = 'EIO' | 'ENOSPC' | { readonly tornBytes: number };

/** One call under the directory, in the order the code made them. */
export interface Call {
  readonly sequence: number;
  readonly operation: Operation;
  /** Relative to the directory. */
  readonly path: string;
}

export interface Fault {
  /** Fails the call with this sequence number (see `calls`), whatever it does. */
  readonly sequence?: number;
  /** Or: fails calls of this operation on a path this predicate accepts, after letting `skip` of them through. */
  readonly operation?: Operation;
  readonly path?: (relativePath: string) => boolean;
  readonly skip?: number;
  readonly kind: FaultKind;
  /** How many matching calls fail (default 1: a transient fault; the log's stickiness must not rely on it). */
  readonly times?: number;
}

type AnyFunction = (...args: never[]) => unknown;

const require = createRequire(import.meta.url);
const fs = require('node:fs') as Record<string, AnyFunction>;
const fsp = require('node:fs/promises') as Record<string, AnyFunction>;

/** The fault-injecting store; one at a time per process. */
export class FaultyFs {
  readonly root: string;
  /** Every counted call, in order (see `Call`). */
  readonly calls: Call[] = [];
  /** Faults that fired, with the call each one failed. */
  readonly fired: Array<{ readonly call: Call; readonly kind: FaultKind }> = [];
  /** Faults fired since install (`fired` is cleared by `reset`). */
  firedTotal = 0;
  #faults: Array<Fault & { seen: number; failed: number }> = [];
  readonly #paths = new Map<number, string>();
  readonly #restore: Array<() => void> = [];
  static #current: FaultyFs | undefined;

  private constructor(root: string) {
    this.root = resolve(root);
  }

  /** Wraps `fs` for calls on files under `root` until `uninstall()`. */
  static async install(root: string): Promise<FaultyFs> {
    if (FaultyFs.#current !== undefined) throw new Error('a FaultyFs is installed already');
    const store = new FaultyFs(root);
    FaultyFs.#current = store;
    await store.#wrapAll();
    return store;
  }

  uninstall(): void {
    for (const restore of this.#restore.splice(0).reverse()) restore();
    syncBuiltinESMExports();
    FaultyFs.#current = undefined;
  }

  [Symbol.dispose](): void {
    this.uninstall();
  }

  inject(fault: Fault): void {
    this.#faults.push({ ...fault, seen: 0, failed: 0 });
  }

  /** Removes the faults not fired yet and forgets the trace, keeping the descriptors it knows. */
  reset(): void {
    this.#faults = [];
    this.calls.length = 0;
    this.fired.length = 0;
  }

  /** The file a descriptor under the root was opened on, relative to the root. */
  #under(path: unknown): string | undefined {
    if (typeof path !== 'string' && !(path instanceof URL) && !Buffer.isBuffer(path)) return undefined;
    const absolute = resolve(String(path instanceof URL ? path.pathname : path));
    if (absolute !== this.root && !absolute.startsWith(this.root + sep)) return undefined;
    return relative(this.root, absolute);
  }

  /** Counts the call and returns the fault to inject, if one matches. */
  #check(operation: Operation, path: string): FaultKind | undefined {
    const call: Call = { sequence: this.calls.length, operation, path };
    this.calls.push(call);
    for (const fault of this.#faults) {
      const matches =
        fault.sequence !== undefined
          ? fault.sequence === call.sequence
          : fault.operation === operation && (fault.path === undefined || fault.path(path));
      if (!matches) continue;
      fault.seen++;
      if (fault.seen <= (fault.skip ?? 0) || fault.failed >= (fault.times ?? 1)) continue;
      fault.failed++;
      this.fired.push({ call, kind: fault.kind });
      this.firedTotal++;
      return fault.kind;
    }
    return undefined;
  }

  #fdPath(fd: unknown): string | undefined {
    return typeof fd === 'number' ? this.#paths.get(fd) : undefined;
  }

  #replace(target: Record<string, AnyFunction>, name: string, make: (original: AnyFunction) => AnyFunction): void {
    const original = target[name] as AnyFunction;
    target[name] = make(original);
    this.#restore.push(() => (target[name] = original));
  }

  async #wrapAll(): Promise<void> {
    // The FileHandle wrappers below need both their own `this` (the handle) and the store.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    const opensForWriting = (flags: unknown): boolean =>
      typeof flags === 'string' ? flags !== 'r' && flags !== 'rs' : typeof flags === 'number' && (flags & 3) !== 0;
    // Descriptors: which file each one is (only files under the root).
    this.#replace(fs, 'openSync', (original) => (path: unknown, flags?: unknown, mode?: unknown) => {
      const relativePath = self.#under(path);
      if (relativePath !== undefined) self.#fault(opensForWriting(flags) ? 'open' : 'read', relativePath, 'open');
      const fd = (original as (...args: unknown[]) => number)(path, flags, mode);
      if (relativePath !== undefined) self.#paths.set(fd, relativePath);
      return fd;
    });
    this.#replace(fs, 'closeSync', (original) => (fd: unknown) => {
      if (typeof fd === 'number') self.#paths.delete(fd);
      return (original as (...args: unknown[]) => unknown)(fd);
    });
    this.#replace(fs, 'writeSync', (original) => (fd: unknown, buffer: unknown, ...rest: unknown[]) => {
      const path = self.#fdPath(fd);
      const call = original as (...args: unknown[]) => number;
      if (path === undefined) return call(fd, buffer, ...rest);
      const kind = self.#check('write', path);
      if (kind === undefined) return call(fd, buffer, ...rest);
      if (typeof kind === 'object' && typeof buffer !== 'string') {
        const [offset = 0, length = (buffer as Uint8Array).length - (offset), position] = rest as number[];
        const torn = Math.min(kind.tornBytes, length);
        if (torn > 0) call(fd, buffer, offset, torn, position);
      }
      throw errorOf(kind, 'write', path);
    });
    for (const name of ['fdatasyncSync', 'fsyncSync', 'ftruncateSync', 'readSync']) {
      const operation: Operation = name === 'readSync' ? 'read' : name === 'ftruncateSync' ? 'truncate' : 'sync';
      this.#replace(fs, name, (original) => (fd: unknown, ...rest: unknown[]) => {
        const path = self.#fdPath(fd);
        if (path !== undefined) self.#fault(operation, path, name.replace('Sync', ''));
        return (original as (...args: unknown[]) => unknown)(fd, ...rest);
      });
    }
    for (const name of ['fdatasync', 'fsync']) {
      this.#replace(fs, name, (original) => (fd: unknown, callback: (error: Error | null) => void) => {
        const path = self.#fdPath(fd);
        const kind = path === undefined ? undefined : self.#check('sync', path);
        if (kind !== undefined) {
          process.nextTick(() => callback(errorOf(kind, name, path as string)));
          return;
        }
        (original as (...args: unknown[]) => unknown)(fd, callback);
      });
    }
    this.#replace(fs, 'renameSync', (original) => (from: unknown, to: unknown) => {
      const path = self.#under(to) ?? self.#under(from);
      if (path !== undefined) self.#fault('rename', path, 'rename');
      return (original as (...args: unknown[]) => unknown)(from, to);
    });
    for (const [name, operation] of [['unlinkSync', 'unlink'], ['linkSync', 'link'], ['copyFileSync', 'write'], ['readFileSync', 'read'], ['writeFileSync', 'write']] as const) {
      this.#replace(fs, name, (original) => (path: unknown, ...rest: unknown[]) => {
        const target = name === 'linkSync' || name === 'copyFileSync' ? rest[0] : path;
        const relativePath = self.#under(target) ?? self.#fdPath(path);
        if (relativePath !== undefined) self.#fault(operation, relativePath, name.replace('Sync', ''));
        return (original as (...args: unknown[]) => unknown)(path, ...rest);
      });
    }
    // Promises: open, rename, unlink, link, readFile, and the FileHandle's own methods.
    this.#replace(fsp, 'open', (original) => async (path: unknown, flags?: unknown, mode?: unknown) => {
      const relativePath = self.#under(path);
      if (relativePath !== undefined) self.#fault(opensForWriting(flags) ? 'open' : 'read', relativePath, 'open');
      const handle = (await (original as (...args: unknown[]) => Promise<{ fd: number }>)(path, flags, mode));
      if (relativePath !== undefined) self.#paths.set(handle.fd, relativePath);
      return handle;
    });
    for (const [name, operation] of [['rename', 'rename'], ['unlink', 'unlink'], ['link', 'link'], ['readFile', 'read'], ['copyFile', 'write']] as const) {
      this.#replace(fsp, name, (original) => async (path: unknown, ...rest: unknown[]) => {
        const target = name === 'rename' || name === 'link' || name === 'copyFile' ? rest[0] : path;
        const relativePath = self.#under(target) ?? self.#under(path);
        if (relativePath !== undefined) self.#fault(operation, relativePath, name);
        return (original as (...args: unknown[]) => Promise<unknown>)(path, ...rest);
      });
    }
    const probe = await (fsp.open as unknown as (path: string) => Promise<{ close(): Promise<void> }>)(process.execPath);
    const prototype = Object.getPrototypeOf(probe) as Record<string, AnyFunction>;
    await probe.close();
    for (const [name, operation] of [['write', 'write'], ['writev', 'write'], ['datasync', 'sync'], ['sync', 'sync'], ['read', 'read'], ['truncate', 'truncate']] as const) {
      this.#replace(prototype, name, (original) =>
        async function (this: { fd: number }, ...args: unknown[]): Promise<unknown> {
          const path = self.#fdPath(this.fd);
          const kind = path === undefined ? undefined : self.#check(operation, path);
          if (kind === undefined) return (original as (...a: unknown[]) => Promise<unknown>).apply(this, args);
          if (typeof kind === 'object' && name === 'write' && kind.tornBytes > 0) {
            const [buffer, offset = 0, length, position] = args as [Uint8Array, number, number | undefined, number | undefined];
            const end = Math.min(buffer.length, offset + Math.min(kind.tornBytes, length ?? buffer.length - offset));
            await (original as (...a: unknown[]) => Promise<unknown>).call(this, buffer.subarray(offset, end), 0, end - offset, position);
          }
          throw errorOf(kind, name, path as string);
        },
      );
    }
    this.#replace(prototype, 'close', (original) =>
      async function (this: { fd: number }): Promise<unknown> {
        self.#paths.delete(this.fd);
        return (original as (...a: unknown[]) => Promise<unknown>).apply(this);
      },
    );
    syncBuiltinESMExports();
  }

  /** Counts a call that is not a write and throws when a fault says so (a torn call of it is just a failure). */
  #fault(operation: Operation, path: string, syscall: string): void {
    const kind = this.#check(operation, path);
    if (kind !== undefined) throw errorOf(kind, syscall, path);
  }
}

/** An error as Node's fs raises them: `code`, `errno`, `syscall`, `path`. */
function errorOf(kind: FaultKind, syscall: string, path: string): NodeJS.ErrnoException {
  const code = typeof kind === 'object' ? 'EIO' : kind;
  const errno = code === 'ENOSPC' ? -28 : -5;
  const description = code === 'ENOSPC' ? 'no space left on device' : 'i/o error';
  return Object.assign(new Error(`${code}: ${description} (injected), ${syscall} '${path}'`), { code, errno, syscall, path });
}
