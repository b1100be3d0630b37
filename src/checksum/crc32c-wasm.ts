import { crc32c, crc32cTable, type Checksum } from './crc32c.js';
import { crc32cWasmBase64 } from './crc32c-wasm-module.js';

/** What this module uses of the `WebAssembly` global (typed by the DOM library, which this package leaves out). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum: number }) => { buffer: ArrayBuffer };
}

/** Where the bytes of a window start in its memory: after the eight tables of slicing by 8. */
const tableBytes = 8 * 256 * 4;
const pageBytes = 64 * 1024;

let compiled: object | null | undefined;

/**
 * Windows alive at once, at most. A WebAssembly memory costs little memory but a large reservation of address
 * space (V8 guards each one on 64-bit hosts with ~10 GiB of it, which is what spares the module bounds checks),
 * so a process with many readers keeps the JavaScript checksum for the ones past this.
 */
const windowsMax = 256;
let windowsAlive = 0;
const windowsCollected = new FinalizationRegistry<undefined>(() => windowsAlive--);

/** The compiled module of crc32c.wat, or `null` where WebAssembly is not available. */
function compiledModule(): object | null {
  if (compiled !== undefined) return compiled;
  const api = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
  try {
    compiled = api === undefined ? null : new api.Module(Buffer.from(crc32cWasmBase64, 'base64'));
  } catch {
    compiled = null;
  }
  return compiled;
}

/**
 * A buffer for reading frames into whose ranges are checksummed (CRC-32C) in WebAssembly, where they already
 * are: two to three times as fast as the JavaScript slicing-by-8 of `crc32c.ts` on a record of a few hundred
 * bytes, with no call into native code and no view object per record. Its memory is whole 64 KiB pages: the
 * tables (8 KiB) and `capacity` bytes, rounded up.
 *
 * Edge cases: `create` returns `undefined` where WebAssembly is not available, when its memory cannot be had
 * (an address-space limit), or when `windowsMax` windows are alive: the caller keeps `crc32c`. The memory never
 * grows, so `buffer` stays valid for the window's life. `checksum` computes in place only for `buffer` itself;
 * any other array goes to `crc32c`.
 */
export class ChecksumWindow {
  /** `capacity` bytes, in the module's memory. */
  readonly buffer: Buffer;
  /** The CRC-32C of `buffer[start, end)` (of another array's range, by `crc32c`). */
  readonly checksum: Checksum;

  private constructor(buffer: Buffer, crc: (at: number, length: number) => number) {
    this.buffer = buffer;
    this.checksum = (bytes, start, end) => (bytes === buffer ? crc(tableBytes + start, end - start) >>> 0 : crc32c(bytes, start, end));
  }

  static create(capacity: number): ChecksumWindow | undefined {
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError('capacity must be a non-negative integer');
    const module = compiledModule();
    if (module === null || windowsAlive >= windowsMax) return undefined;
    const api = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
    const pages = Math.ceil((tableBytes + capacity) / pageBytes);
    let memory: { buffer: ArrayBuffer };
    let instance: { exports: Record<string, unknown> };
    try {
      memory = new api.Memory({ initial: pages, maximum: pages });
      instance = new api.Instance(module, { sluice: { memory } });
    } catch {
      return undefined;
    }
    // The module reads the tables as little-endian words, whatever the host's byte order.
    const tables = new DataView(memory.buffer, 0, tableBytes);
    for (let i = 0; i < crc32cTable.length; i++) tables.setInt32(i * 4, crc32cTable[i] as number, true);
    const window = new ChecksumWindow(Buffer.from(memory.buffer, tableBytes, capacity), instance.exports.crc32c as (at: number, length: number) => number);
    windowsAlive++;
    windowsCollected.register(window, undefined);
    return window;
  }
}

/**
 * The buffer a reader reads into, and the checksum of its ranges: a `ChecksumWindow` of `capacity` bytes from
 * the reader's second read on (making one costs about as much as checksumming a few hundred records in
 * JavaScript, which a reader of a few records would pay for nothing), a plain buffer before, for a read larger
 * than the window, and wherever a window cannot be had (then `checksum` is `crc32c`).
 */
export class ReadBuffer {
  buffer: Buffer;
  checksum: Checksum = crc32c;
  readonly #capacity: number;
  /** `null`: none will be made (none could be, or checksums are not wanted). */
  #window: ChecksumWindow | null | undefined;
  #reads = 0;

  /** `checksums: false`: the reader never checks checksums, so no window is made. */
  constructor(capacity: number, checksums = true) {
    this.#capacity = capacity;
    this.buffer = Buffer.allocUnsafe(capacity);
    if (!checksums) this.#window = null;
  }

  /** Before each read: makes `buffer` one that holds `bytes`, and `checksum` its checksum. */
  fit(bytes: number): Buffer {
    if (this.#window === undefined && this.#reads++ > 0) this.#window = ChecksumWindow.create(this.#capacity) ?? null;
    const window = this.#window;
    if (window != null && bytes <= window.buffer.length) {
      this.buffer = window.buffer;
      this.checksum = window.checksum;
    } else if (bytes > this.buffer.length) {
      // A read larger than the window: the JavaScript checksum hands large ranges to the native one.
      this.buffer = Buffer.allocUnsafe(bytes);
      this.checksum = crc32c;
    }
    return this.buffer;
  }
}
