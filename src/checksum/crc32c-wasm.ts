import { crc32cTable } from './crc32c.js';
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
 * are: about twice as fast as the JavaScript slicing-by-8 of `crc32c.ts` on a record of a few hundred bytes,
 * with no call into native code and no view object per record.
 *
 * Edge cases: `create` returns `undefined` where WebAssembly is not available (the caller keeps `crc32c`); the
 * memory never grows, so `buffer` stays valid for the window's life; `checksum` takes positions in `buffer` and
 * must only be given `buffer` (it reads the window's memory whatever array it is passed).
 */
export class ChecksumWindow {
  /** `capacity` bytes, in the module's memory. */
  readonly buffer: Buffer;
  /** The CRC-32C of `buffer[start, end)`; the first argument is only there to match `crc32c`'s signature. */
  readonly checksum: (bytes: Uint8Array, start: number, end: number) => number;

  private constructor(buffer: Buffer, crc: (at: number, length: number) => number) {
    this.buffer = buffer;
    this.checksum = (_bytes, start, end) => crc(tableBytes + start, end - start) >>> 0;
  }

  static create(capacity: number): ChecksumWindow | undefined {
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError('capacity must be a non-negative integer');
    const module = compiledModule();
    if (module === null) return undefined;
    const api = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
    const pages = Math.ceil((tableBytes + capacity) / pageBytes);
    const memory = new api.Memory({ initial: pages, maximum: pages });
    new Int32Array(memory.buffer, 0, crc32cTable.length).set(crc32cTable);
    const instance = new api.Instance(module, { sluice: { memory } });
    return new ChecksumWindow(Buffer.from(memory.buffer, tableBytes, capacity), instance.exports.crc32c as (at: number, length: number) => number);
  }
}
