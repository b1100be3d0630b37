/**
 * The chain's hashes (FORMAT.md F-73) computed the plain way, with `node:crypto`'s hash and HMAC objects, and
 * compared with `ChainHasher`, which takes shortcuts for speed (one-shot hashes, string digests, HMAC from two
 * hashes).
 */
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ChainHasher, type ChainAlgorithm } from '../../src/log/file/security/chain.js';

/** One covered record's link input, as F-73 lays it out: digest, offset, time, key length (LE), flags. */
function recordInput(digest: Buffer, offset: number, time: number, keyLength: number, flags: number): Buffer {
  const input = Buffer.alloc(51);
  digest.copy(input, 0);
  input.writeBigUInt64LE(BigInt(offset), 32);
  input.writeBigUInt64LE(BigInt(time), 40);
  input.writeUInt16LE(keyLength, 48);
  input[50] = flags;
  return input;
}

describe('ChainHasher', () => {
  const cases: Array<{ algorithm: ChainAlgorithm; key?: Buffer }> = [
    { algorithm: 'sha256' },
    { algorithm: 'blake2s256' },
    { algorithm: 'hmac-sha256', key: randomBytes(32) },
    { algorithm: 'hmac-sha256', key: randomBytes(7) },
  ];
  for (const { algorithm, key } of cases) {
    it(`links batches of 1 to 300 records as H(previous ‖ records) (${algorithm}${key === undefined ? '' : `, ${key.length}-byte key`})`, () => {
      const hasher = new ChainHasher(algorithm, key);
      let previous: Buffer = randomBytes(32);
      for (const count of [1, 2, 65, 300]) {
        const parts: Buffer[] = [previous];
        for (let i = 0; i < count; i++) {
          const digest = randomBytes(32);
          const offset = 2 ** 40 + i * 977;
          const time = 1_700_000_000_000 + i;
          const continues = i < count - 1;
          hasher.addCovered(previous, digest, offset, time, i % 300, continues, 0x10);
          parts.push(recordInput(digest, offset, time, i % 300, (continues ? 0x01 : 0) | 0x10));
        }
        const expected =
          key === undefined
            ? createHash(algorithm).update(Buffer.concat(parts)).digest()
            : createHmac('sha256', key).update(Buffer.concat(parts)).digest();
        const link = hasher.finish();
        assert.deepEqual(link, expected, `a batch of ${count}`);
        previous = link;
      }
    });
  }

  it('digests the bytes between a frame’s fixed part and its chain bytes', () => {
    const frame = randomBytes(300);
    const hasher = new ChainHasher('sha256');
    hasher.addSealed(randomBytes(32), frame, 10, 10 + 200 - 68);
    assert.deepEqual(frame.subarray(10 + 200 - 68, 10 + 200 - 36), createHash('sha256').update(frame.subarray(38, 10 + 200 - 68)).digest());
    assert.equal(hasher.digestMatches(frame, 10, 10 + 200 - 68), true);
    frame[40] = (frame[40] as number) ^ 1;
    assert.equal(hasher.digestMatches(frame, 10, 10 + 200 - 68), false);
  });

  it('seals a frame (addSealed) as its digest by hand followed by addFrame does, on a frame inside a larger buffer', () => {
    const backing = randomBytes(1000);
    const frames = backing.subarray(100, 900);
    const twin = Buffer.from(frames);
    const fused = new ChainHasher('sha256');
    const stepwise = new ChainHasher('sha256');
    const previous = randomBytes(32);
    for (const [position, size] of [[0, 120], [120, 300], [420, 96]] as const) {
      const digestAt = position + size - 68;
      fused.addSealed(previous, frames, position, digestAt);
      createHash('sha256').update(twin.subarray(position + 28, digestAt)).digest().copy(twin, digestAt);
      stepwise.addFrame(previous, twin, position, digestAt);
    }
    assert.deepEqual(frames, twin);
    assert.deepEqual(fused.finish(), stepwise.finish());
  });
});
