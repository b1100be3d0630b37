import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { toBufferKey } from 'ordered-binary';
import type { IndexKey } from '../../src/views/index-view.js';
import { KeyBytes } from '../../src/views/key-bytes.js';

/** Strings as index keys hold them: non-empty, with control characters, escapes (≤ 4, < 28), non-ASCII, pairs. */
const part = fc.oneof(
  fc.string({ minLength: 1, maxLength: 80, unit: 'grapheme' }),
  fc.string({ minLength: 1, maxLength: 10, unit: fc.constantFrom('\u0000', '\u0003', '\u0004', '\u0005', '\u001b', '\u001c', 'a', 'é', '€', '😀') }),
  fc.string({ minLength: 60, maxLength: 600 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.constant(1763750000000),
);
const key: fc.Arbitrary<IndexKey> = fc.oneof(part, fc.array(part, { minLength: 1, maxLength: 6 }));

describe('KeyBytes', () => {
  it('encodes every key to the bytes ordered-binary makes of it, repeated parts included', () => {
    fc.assert(
      fc.property(fc.array(key, { minLength: 1, maxLength: 30 }), fc.array(fc.nat(29), { maxLength: 30 }), (keys, repeats) => {
        const bytes = new KeyBytes();
        // Keys again, in another order: the remembered strings are then hits, misses, and hits after misses.
        for (const k of [...keys, ...repeats.map((i) => keys[i % keys.length] as IndexKey)]) {
          const encoded = bytes.encode(k);
          if (encoded === undefined) continue;
          assert.deepEqual(Buffer.from(encoded), toBufferKey(k as never), JSON.stringify(k));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('leaves keys that may not fit its scratch to LMDB', () => {
    const bytes = new KeyBytes();
    assert.equal(bytes.encode('x'.repeat(5000)), undefined);
    assert.equal(bytes.encode(['a'.repeat(3000), 'b'.repeat(3000)]), undefined);
    assert.deepEqual(Buffer.from(bytes.encode(['@author', 1]) as Buffer), toBufferKey(['@author', 1]));
  });
});
