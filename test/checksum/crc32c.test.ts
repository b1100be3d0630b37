import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32c as crc32cNative } from '@node-rs/crc32';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ChecksumWindow, ReadBuffer } from '../../src/checksum/crc32c-wasm.js';
import { crc32cWasmBase64 } from '../../src/checksum/crc32c-wasm-module.js';
import { crc32c, crc32cJs, jsBytesMax } from '../../src/checksum/crc32c.js';

/** The repository (tests run from dist/test/checksum). */
const root = fileURLToPath(new URL('../../../', import.meta.url));

describe('crc32c', () => {
  it('gives the standard check value', () => {
    const bytes = Buffer.from('123456789');
    assert.equal(crc32c(bytes, 0, 9), 0xe3069283);
    assert.equal(crc32cJs(bytes, 0, 9), 0xe3069283);
  });

  it('agrees with the native implementation at every length and alignment around the threshold', () => {
    const bytes = new Uint8Array(jsBytesMax * 2 + 16);
    let seed = 7;
    for (let i = 0; i < bytes.length; i++) {
      seed = (seed * 1_103_515_245 + 12_345) >>> 0;
      bytes[i] = seed >>> 24;
    }
    for (let start = 0; start < 9; start++) {
      for (let end = start; end <= bytes.length; end++) {
        const expected = crc32cNative(bytes.subarray(start, end));
        assert.equal(crc32c(bytes, start, end), expected, `[${start}, ${end})`);
        if (end - start < 2 * jsBytesMax) assert.equal(crc32cJs(bytes, start, end), expected);
      }
    }
  });
});

describe('ChecksumWindow (crc32c.wat)', () => {
  it('agrees with the native implementation at every length and alignment', () => {
    const window = ChecksumWindow.create(2048) as ChecksumWindow;
    assert.ok(window !== undefined, 'WebAssembly is available on Node');
    let seed = 11;
    for (let i = 0; i < window.buffer.length; i++) {
      seed = (seed * 1_103_515_245 + 12_345) >>> 0;
      window.buffer[i] = seed >>> 24;
    }
    assert.equal(window.checksum(window.buffer, 3, 3 + 9), crc32cNative(window.buffer.subarray(3, 12)));
    for (let start = 0; start < 9; start++) {
      for (let end = start; end <= 1100; end++) {
        assert.equal(window.checksum(window.buffer, start, end), crc32cNative(window.buffer.subarray(start, end)), `[${start}, ${end})`);
      }
    }
    // The last bytes of the window, and a window of the standard check value.
    assert.equal(window.checksum(window.buffer, 1000, 2048), crc32cNative(window.buffer.subarray(1000, 2048)));
    const small = ChecksumWindow.create(9) as ChecksumWindow;
    small.buffer.write('123456789', 'latin1');
    assert.equal(small.checksum(small.buffer, 0, 9), 0xe3069283);
    assert.throws(() => ChecksumWindow.create(-1), RangeError);
  });

  it('is read into from a reader\'s second read on, while reads fit it (ReadBuffer)', () => {
    const read = new ReadBuffer(4096);
    const first = read.fit(100);
    assert.equal(read.checksum, crc32c, 'the first read goes to a plain buffer');
    const second = read.fit(100);
    assert.notEqual(second, first);
    assert.notEqual(read.checksum, crc32c);
    second.write('123456789', 'latin1');
    assert.equal(read.checksum(second, 0, 9), 0xe3069283);
    // A read larger than the window, then one that fits again.
    const large = read.fit(10_000);
    assert.equal(large.length, 10_000);
    assert.equal(read.checksum, crc32c);
    assert.equal(read.fit(4096), second);
    assert.notEqual(read.checksum, crc32c);
    // A reader that never checks checksums never makes a window.
    const framing = new ReadBuffer(4096, false);
    framing.fit(100);
    framing.fit(100);
    assert.equal(framing.checksum, crc32c);
  });

  it('is the module crc32c.wat compiles to (npm run wasm)', async () => {
    // The generated module is checked in; the .wat is its source.
    const { compileWat } = (await import(pathToFileURL(join(root, 'scripts/wasm.mjs')).href)) as { compileWat(path: string): Promise<Buffer> };
    const bytes = await compileWat(join(root, 'src/checksum/crc32c.wat'));
    assert.equal(bytes.toString('base64'), crc32cWasmBase64);
  });
});
