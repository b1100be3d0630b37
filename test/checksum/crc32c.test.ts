import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32c as crc32cNative } from '@node-rs/crc32';
import { crc32c, crc32cJs, jsBytesMax } from '../../src/checksum/crc32c.js';

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
