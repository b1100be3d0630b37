import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { fromBufferKey, toBufferKey } from 'ordered-binary';
import type { IndexKey } from '../../src/views/index-view.js';
import { KeyBytes } from '../../src/views/key-bytes.js';
import { orderedKeyBytes } from '../../src/views/ordered-key.js';

/** Strings as index keys hold them: non-empty, with control characters, escapes (≤ 4, < 28), non-ASCII, pairs. */
const part = fc.oneof(
  fc.string({ minLength: 1, maxLength: 80, unit: 'grapheme' }),
  fc.string({ minLength: 1, maxLength: 10, unit: fc.constantFrom('\u0000', '\u0003', '\u0004', '\u0005', '\u001b', '\u001c', 'a', 'é', '€', '😀') }),
  fc.string({ minLength: 60, maxLength: 600 }),
  // Long strings with the characters ordered-binary escapes only in short ones.
  fc.string({ minLength: 60, maxLength: 200, unit: fc.constantFrom('\u0000', '\u0002', '\u0004', '\u0005', 'a', '😀') }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.constant(1763750000000),
);
const key: fc.Arbitrary<IndexKey> = fc.oneof(part, fc.array(part, { minLength: 1, maxLength: 6 }));

describe('KeyBytes', () => {
  it('encodes every key to the bytes LMDB is given for it, repeated parts included', () => {
    fc.assert(
      fc.property(fc.array(key, { minLength: 1, maxLength: 30 }), fc.array(fc.nat(29), { maxLength: 30 }), (keys, repeats) => {
        const bytes = new KeyBytes();
        // Keys again, in another order: the remembered strings are then hits, misses, and hits after misses.
        for (const k of [...keys, ...repeats.map((i) => keys[i % keys.length] as IndexKey)]) {
          const encoded = bytes.encode(k);
          if (encoded === undefined) continue;
          assert.deepEqual(Buffer.from(encoded), orderedKeyBytes(k), JSON.stringify(k));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('encodes keys that share leading parts with the key before, of every length and kind, as LMDB is given them', () => {
    // A few parts only, so that consecutive keys often share their first parts (written once, then left in place).
    const few = fc.constantFrom<string | number>('a', 'bb', 'é€', '\u0000x', 'y'.repeat(70), '\u0002'.repeat(65), 1, 2.5, -3, 1763750000000);
    const shared: fc.Arbitrary<IndexKey> = fc.oneof(few, fc.array(few, { minLength: 1, maxLength: 6 }));
    fc.assert(
      fc.property(fc.array(shared, { minLength: 1, maxLength: 40 }), (keys) => {
        const bytes = new KeyBytes();
        for (const k of keys) {
          const encoded = bytes.encode(k);
          if (encoded !== undefined) assert.deepEqual(Buffer.from(encoded), orderedKeyBytes(k), JSON.stringify(k));
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('leaves keys that may not fit its scratch to LMDB', () => {
    const bytes = new KeyBytes();
    assert.equal(bytes.encode('x'.repeat(5000)), undefined);
    assert.equal(bytes.encode(['a'.repeat(3000), 'b'.repeat(3000)]), undefined);
    assert.deepEqual(Buffer.from(bytes.encode(['@author', 1]) as Buffer), toBufferKey(['@author', 1]));
  });

});

describe('orderedKeyBytes', () => {
  const longEscaped = (part: unknown): boolean => typeof part === 'string' && part.length >= 64 && [...part].some((c) => c.charCodeAt(0) <= 4);

  it("writes ordered-binary's bytes, but for long strings with U+0000…U+0004, which it escapes so that they read back", () => {
    fc.assert(
      fc.property(key, (k) => {
        const bytes = orderedKeyBytes(k);
        const parts: unknown[] = Array.isArray(k) ? k : [k];
        if (!parts.some(longEscaped)) assert.deepEqual(bytes, toBufferKey(k as never), JSON.stringify(k));
        // -0 is no key of an index view's (it is made 0 first).
        if (parts.some((part) => Object.is(part, -0))) return;
        // A one-part array and its part are one key.
        const decoded: unknown = fromBufferKey(bytes);
        assert.deepEqual(Array.isArray(decoded) ? decoded : [decoded], parts, JSON.stringify(k));
      }),
      { numRuns: 1000 },
    );
  });

  it('keeps the order of such strings among the others', () => {
    const long = 'a'.repeat(70);
    const sorted = [long + '\u0000', long + '\u0000b', long + '\u0004', long + '\u0005', long + 'a'];
    const bytes = [...sorted].reverse().map((text) => orderedKeyBytes(text));
    bytes.sort(Buffer.compare);
    assert.deepEqual(bytes.map((b) => fromBufferKey(b)), sorted);
    assert.deepEqual(fromBufferKey(orderedKeyBytes([long + '\u0000b', 1])), [long + '\u0000b', 1]);
  });
});
