/**
 * `AesGcm` (GCM composed from OpenSSL's AES and our GHASH) against `node:crypto`'s AES-256-GCM, both ways: what
 * one seals the other opens, byte for byte, for every text length around the block and keystream boundaries, and
 * any changed byte of the associated data, nonce, tag or text is refused.
 */
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { AesGcm } from '../../src/log/file/security/aes-gcm.js';
import { Ghash } from '../../src/log/file/security/ghash.js';

/** A record laid out as a frame lays it out (F-74): 8 bytes before the associated data, then nonce, tag, text. */
function layout(aadBytes: number, textBytes: number): {
  buffer: Buffer;
  aadStart: number;
  aadEnd: number;
  nonceAt: number;
  tagAt: number;
  textStart: number;
  textEnd: number;
} {
  const buffer = randomBytes(8 + aadBytes + 12 + 16 + textBytes + 5);
  const aadStart = 8;
  const aadEnd = aadStart + aadBytes;
  const nonceAt = aadEnd;
  const tagAt = nonceAt + 12;
  const textStart = tagAt + 16;
  return { buffer, aadStart, aadEnd, nonceAt, tagAt, textStart, textEnd: textStart + textBytes };
}

const lengths = [0, 1, 15, 16, 17, 150, 255, 256, 257, 300, 1000, 4099, 70_000];

describe('AesGcm', () => {
  const secret = randomBytes(32);
  const key = createSecretKey(secret);

  it('seals what node:crypto opens, and leaves the bytes around the record alone', () => {
    const gcm = new AesGcm(key);
    // More records than one pool of nonces holds, so a refill is crossed.
    for (let round = 0; round < 1100; round++) {
      for (const aadBytes of round === 0 ? [0, 1, 16, 18, 33] : [18]) {
        const textBytes = lengths[round % lengths.length] as number;
        const r = layout(aadBytes, textBytes);
        const before = Buffer.from(r.buffer);
        gcm.seal(r.buffer, r.aadStart, r.aadEnd, r.nonceAt, r.tagAt, r.textStart, r.textEnd);
        assert.deepEqual(r.buffer.subarray(0, r.nonceAt), before.subarray(0, r.nonceAt));
        assert.deepEqual(r.buffer.subarray(r.textEnd), before.subarray(r.textEnd));
        const decipher = createDecipheriv('aes-256-gcm', secret, r.buffer.subarray(r.nonceAt, r.nonceAt + 12));
        decipher.setAAD(r.buffer.subarray(r.aadStart, r.aadEnd));
        decipher.setAuthTag(r.buffer.subarray(r.tagAt, r.tagAt + 16));
        const plaintext = Buffer.concat([decipher.update(r.buffer.subarray(r.textStart, r.textEnd)), decipher.final()]);
        assert.deepEqual(plaintext, before.subarray(r.textStart, r.textEnd), `text of ${textBytes} bytes`);
      }
    }
  });

  it('opens what node:crypto seals', () => {
    const gcm = new AesGcm(key);
    for (const textBytes of lengths) {
      const r = layout(18, textBytes);
      const plaintext = Buffer.from(r.buffer.subarray(r.textStart, r.textEnd));
      const cipher = createCipheriv('aes-256-gcm', secret, r.buffer.subarray(r.nonceAt, r.nonceAt + 12));
      cipher.setAAD(r.buffer.subarray(r.aadStart, r.aadEnd));
      Buffer.concat([cipher.update(plaintext), cipher.final()]).copy(r.buffer, r.textStart);
      cipher.getAuthTag().copy(r.buffer, r.tagAt);
      const opened = gcm.open(r.buffer, r.aadStart, r.aadEnd, r.nonceAt, r.tagAt, r.textStart, r.textEnd);
      assert.deepEqual(opened, plaintext, `text of ${textBytes} bytes`);
    }
  });

  it('opens with keystream read ahead: in order, skipping, missing, twice, and for records of other buffers', () => {
    const gcm = new AesGcm(key);
    const records = lengths.map((textBytes) => {
      const r = layout(18, textBytes);
      const plaintext = Buffer.from(r.buffer.subarray(r.textStart, r.textEnd));
      gcm.seal(r.buffer, r.aadStart, r.aadEnd, r.nonceAt, r.tagAt, r.textStart, r.textEnd);
      return { ...r, plaintext };
    });
    const open = (r: (typeof records)[number]): Buffer | undefined =>
      gcm.open(r.buffer, r.aadStart, r.aadEnd, r.nonceAt, r.tagAt, r.textStart, r.textEnd);
    const readAhead = (from: number): void => {
      const chosen = records.slice(from);
      // Keystream made for another buffer whose nonces are the same: it is bound to the nonce, not the buffer.
      const copy = Buffer.concat(chosen.map((r) => r.buffer.subarray(r.nonceAt, r.nonceAt + 12)));
      gcm.readAhead(copy, Int32Array.from(chosen, (_, i) => i * 12), Int32Array.from(chosen, (r) => r.textEnd - r.textStart), chosen.length);
    };
    readAhead(0);
    assert.equal(gcm.readingAhead, true);
    // In order, with records skipped (as deleted ones are).
    for (const [i, r] of records.entries()) if (i % 3 !== 1) assert.deepEqual(open(r), r.plaintext, `record ${i}`);
    assert.equal(gcm.readingAhead, false);
    // Twice: the second open makes its own keystream (the read-ahead of a record is used once).
    assert.deepEqual(open(records[0] as (typeof records)[number]), records[0]?.plaintext);
    // A miss (a record before the next one read ahead) drops the read-ahead; every open stays right.
    readAhead(5);
    assert.deepEqual(open(records[2] as (typeof records)[number]), records[2]?.plaintext);
    assert.equal(gcm.readingAhead, false);
    for (const r of records.slice(5)) assert.deepEqual(open(r), r.plaintext);
    // A record changed after its keystream was read ahead is still refused.
    readAhead(0);
    const changed = records[4] as (typeof records)[number];
    changed.buffer[changed.textStart] = (changed.buffer[changed.textStart] as number) ^ 1;
    assert.deepEqual(open(records[3] as (typeof records)[number]), records[3]?.plaintext);
    assert.equal(open(changed), undefined);
  });

  it('returns texts in buffers that reach neither other records, keystream, a tag mask, nor a refused text', () => {
    const gcm = new AesGcm(key);
    const records = Array.from({ length: 6 }, () => {
      const r = layout(18, 40);
      // Not from Buffer's shared pool, where the values under test may be made.
      const plaintext = Buffer.alloc(40);
      r.buffer.copy(plaintext, 0, r.textStart, r.textEnd);
      gcm.seal(r.buffer, r.aadStart, r.aadEnd, r.nonceAt, r.tagAt, r.textStart, r.textEnd);
      return { ...r, plaintext };
    });
    const open = (r: (typeof records)[number]): Buffer | undefined =>
      gcm.open(r.buffer, r.aadStart, r.aadEnd, r.nonceAt, r.tagAt, r.textStart, r.textEnd);
    /** The encrypted first counter block of a record: what a tag is masked with. */
    const tagMask = (r: (typeof records)[number]): Buffer => {
      const ecb = createCipheriv('aes-256-ecb', secret, null).setAutoPadding(false);
      return ecb.update(Buffer.concat([r.buffer.subarray(r.nonceAt, r.nonceAt + 12), Buffer.from([0, 0, 0, 1])]));
    };
    const reachable = (value: Buffer): Buffer => Buffer.from(value.buffer, 0, value.buffer.byteLength);
    const tampered = records[3] as (typeof records)[number];
    // What opening the tampered record decrypts before its tag is checked (CTR: the flipped bit flips in the text).
    const refused = Buffer.alloc(40);
    tampered.plaintext.copy(refused);
    refused[1] = (refused[1] as number) ^ 1;
    tampered.buffer[tampered.textStart + 1] = (tampered.buffer[tampered.textStart + 1] as number) ^ 1;
    const masks = records.map(tagMask);
    for (const readingAhead of [true, false]) {
      if (readingAhead) {
        const nonces = Buffer.concat(records.map((r) => r.buffer.subarray(r.nonceAt, r.nonceAt + 12)));
        gcm.readAhead(nonces, Int32Array.from(records, (_, i) => i * 12), Int32Array.from(records, () => 40), records.length);
      }
      const values: Buffer[] = [];
      for (const r of records) {
        const value = open(r);
        if (r === tampered) assert.equal(value, undefined);
        else values.push(value as Buffer);
      }
      for (const [i, value] of values.entries()) {
        const r = records[i < 3 ? i : i + 1] as (typeof records)[number];
        assert.deepEqual(value, r.plaintext);
        const around = reachable(value);
        assert.equal(around.includes(refused), false, `record ${i}: the refused text is reachable`);
        for (const mask of masks) assert.equal(around.includes(mask), false, `record ${i}: a tag mask is reachable`);
        if (readingAhead) assert.ok(around.length < 16 * 1024, `record ${i}: ${around.length} bytes kept alive`);
      }
    }
  });

  it('never uses a nonce twice', () => {
    const gcm = new AesGcm(key);
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const r = layout(18, 10);
      gcm.seal(r.buffer, r.aadStart, r.aadEnd, r.nonceAt, r.tagAt, r.textStart, r.textEnd);
      seen.add(r.buffer.toString('hex', r.nonceAt, r.nonceAt + 12));
    }
    assert.equal(seen.size, 3000);
  });

  it('refuses a record with any byte of its associated data, nonce, tag or text changed, or under another key', () => {
    const gcm = new AesGcm(key);
    const r = layout(18, 40);
    gcm.seal(r.buffer, r.aadStart, r.aadEnd, r.nonceAt, r.tagAt, r.textStart, r.textEnd);
    const open = (buffer: Buffer, cipher = gcm): Buffer | undefined =>
      cipher.open(buffer, r.aadStart, r.aadEnd, r.nonceAt, r.tagAt, r.textStart, r.textEnd);
    assert.notEqual(open(r.buffer), undefined);
    for (let at = r.aadStart; at < r.textEnd; at++) {
      const changed = Buffer.from(r.buffer);
      changed[at] = (changed[at] as number) ^ (1 << (at % 8));
      assert.equal(open(changed), undefined, `byte ${at} changed`);
    }
    assert.equal(open(r.buffer, new AesGcm(createSecretKey(randomBytes(32)))), undefined);
  });

  it('hashes as GHASH: the tag of a text with no associated data is the one node:crypto gives', () => {
    // Ghash alone, against GCM with the hash subkey and tag mask worked out from AES directly.
    const ecb = createCipheriv('aes-256-ecb', secret, null);
    ecb.setAutoPadding(false);
    const h = ecb.update(Buffer.alloc(16));
    const nonce = randomBytes(12);
    const mask = ecb.update(Buffer.concat([nonce, Buffer.from([0, 0, 0, 1])]));
    const ciphertext = randomBytes(77);
    const ghash = new Ghash(h);
    ghash.absorb(ciphertext, 0, ciphertext.length);
    const tag = Buffer.alloc(16);
    ghash.finish(0, ciphertext.length, mask, 0, tag, 0);
    const decipher = createDecipheriv('aes-256-gcm', secret, nonce);
    decipher.setAuthTag(tag);
    decipher.update(ciphertext);
    assert.doesNotThrow(() => decipher.final());
  });
});
