/**
 * GHASH, the hash of AES-GCM (NIST SP 800-38D §6.4), keyed by the hash subkey H = AES(K, 0¹²⁸).
 *
 * Why our own: Node 20 cannot give an existing GCM cipher a new nonce, so sealing each record with its own nonce
 * through `createCipheriv` costs a cipher object per record (3–7 µs with its garbage). `AesGcm` composes GCM
 * from OpenSSL's AES (one long-lived ECB cipher makes every keystream block) and this GHASH, and its tests check
 * every byte against `node:crypto`'s GCM both ways.
 *
 * The multiplication by H is table driven: for each of the 16 byte positions of a block, the products of the 256
 * byte values at that position with H (64 KiB per key). A block then costs 16 lookups and 64 XORs. Lookups indexed
 * by secret-dependent bytes can leak through a shared CPU cache; README "Security" lists that among what Sluice
 * does not protect against.
 *
 * Elements are 128-bit big-endian values held as four signed 32-bit words; bit 0 of the field element is the most
 * significant bit of the first byte (GCM's reflected convention).
 */
export class Ghash {
  /** Entry `((p << 8) | b) << 2` … `+ 3`: the product of byte `b` at position `p` with H, as four words. */
  readonly #table = new Int32Array(16 * 256 * 4);
  #s0 = 0;
  #s1 = 0;
  #s2 = 0;
  #s3 = 0;

  /** `h`: the 16-byte hash subkey. */
  constructor(h: Uint8Array) {
    // H·x^k for k = 0 … 127: multiplying by x is a right shift, reduced by R = 11100001 ‖ 0¹²⁰ when a bit falls off.
    const powers = new Int32Array(128 * 4);
    let a = readWord(h, 0);
    let b = readWord(h, 4);
    let c = readWord(h, 8);
    let d = readWord(h, 12);
    for (let k = 0; k < 128; k++) {
      powers[k * 4] = a;
      powers[k * 4 + 1] = b;
      powers[k * 4 + 2] = c;
      powers[k * 4 + 3] = d;
      const carry = d & 1;
      d = (d >>> 1) | (c << 31);
      c = (c >>> 1) | (b << 31);
      b = (b >>> 1) | (a << 31);
      a = (a >>> 1) ^ (carry === 0 ? 0 : 0xe1000000);
    }
    const table = this.#table;
    for (let position = 0; position < 16; position++) {
      for (let byte = 0; byte < 256; byte++) {
        const entry = ((position << 8) | byte) << 2;
        for (let bit = 0; bit < 8; bit++) {
          if ((byte & (0x80 >> bit)) === 0) continue;
          const power = (position * 8 + bit) * 4;
          table[entry] = (table[entry] as number) ^ (powers[power] as number);
          table[entry + 1] = (table[entry + 1] as number) ^ (powers[power + 1] as number);
          table[entry + 2] = (table[entry + 2] as number) ^ (powers[power + 2] as number);
          table[entry + 3] = (table[entry + 3] as number) ^ (powers[power + 3] as number);
        }
      }
    }
  }

  /** Starts a new hash. */
  reset(): void {
    this.#s0 = 0;
    this.#s1 = 0;
    this.#s2 = 0;
    this.#s3 = 0;
  }

  /** Absorbs `bytes[start, end)`, zero-padded to whole blocks (as GCM pads the associated data and the ciphertext). */
  absorb(bytes: Uint8Array, start: number, end: number): void {
    let at = start;
    for (; at + 16 <= end; at += 16) {
      this.#multiply(
        this.#s0 ^ readWord(bytes, at),
        this.#s1 ^ readWord(bytes, at + 4),
        this.#s2 ^ readWord(bytes, at + 8),
        this.#s3 ^ readWord(bytes, at + 12),
      );
    }
    if (at < end) {
      this.#multiply(
        this.#s0 ^ readPadded(bytes, at, end),
        this.#s1 ^ readPadded(bytes, at + 4, end),
        this.#s2 ^ readPadded(bytes, at + 8, end),
        this.#s3 ^ readPadded(bytes, at + 12, end),
      );
    }
  }

  /**
   * Counter-mode encryption fused with absorbing (one pass over the text): XORs `text[start, end)` in place with
   * `keystream` from `keystreamAt` on, then absorbs the ciphertext as `absorb` would. Only the last call of a
   * message may end inside a block.
   */
  encrypt(text: Uint8Array, start: number, end: number, keystream: Uint8Array, keystreamAt: number): void {
    let at = start;
    let k = keystreamAt;
    for (; at + 16 <= end; at += 16, k += 16) {
      const c0 = readWord(text, at) ^ readWord(keystream, k);
      const c1 = readWord(text, at + 4) ^ readWord(keystream, k + 4);
      const c2 = readWord(text, at + 8) ^ readWord(keystream, k + 8);
      const c3 = readWord(text, at + 12) ^ readWord(keystream, k + 12);
      writeWord(text, at, c0);
      writeWord(text, at + 4, c1);
      writeWord(text, at + 8, c2);
      writeWord(text, at + 12, c3);
      this.#multiply(this.#s0 ^ c0, this.#s1 ^ c1, this.#s2 ^ c2, this.#s3 ^ c3);
    }
    if (at < end) {
      for (let i = at, j = k; i < end; i++, j++) text[i] = (text[i] as number) ^ (keystream[j] as number);
      this.absorb(text, at, end);
    }
  }

  /**
   * The reverse of `encrypt`, for opening: absorbs the ciphertext `text[start, end)` and leaves the plaintext in
   * `keystream` (XORed into it from `keystreamAt` on); `text` is not changed.
   */
  decrypt(text: Uint8Array, start: number, end: number, keystream: Uint8Array, keystreamAt: number): void {
    let at = start;
    let k = keystreamAt;
    for (; at + 16 <= end; at += 16, k += 16) {
      const c0 = readWord(text, at);
      const c1 = readWord(text, at + 4);
      const c2 = readWord(text, at + 8);
      const c3 = readWord(text, at + 12);
      writeWord(keystream, k, c0 ^ readWord(keystream, k));
      writeWord(keystream, k + 4, c1 ^ readWord(keystream, k + 4));
      writeWord(keystream, k + 8, c2 ^ readWord(keystream, k + 8));
      writeWord(keystream, k + 12, c3 ^ readWord(keystream, k + 12));
      this.#multiply(this.#s0 ^ c0, this.#s1 ^ c1, this.#s2 ^ c2, this.#s3 ^ c3);
    }
    if (at < end) {
      for (let i = at, j = k; i < end; i++, j++) keystream[j] = (keystream[j] as number) ^ (text[i] as number);
      this.absorb(text, at, end);
    }
  }

  /**
   * Absorbs GCM's final block, the bit lengths of the associated data and of the ciphertext (64 bits each), and
   * writes the hash XOR `mask[maskAt, +16)` (the encrypted first counter block) to `out[at, +16)`: the tag.
   */
  finish(aadBytes: number, textBytes: number, mask: Uint8Array, maskAt: number, out: Uint8Array, at: number): void {
    this.#absorbLengths(aadBytes, textBytes);
    writeWord(out, at, this.#s0 ^ readWord(mask, maskAt));
    writeWord(out, at + 4, this.#s1 ^ readWord(mask, maskAt + 4));
    writeWord(out, at + 8, this.#s2 ^ readWord(mask, maskAt + 8));
    writeWord(out, at + 12, this.#s3 ^ readWord(mask, maskAt + 12));
  }

  /**
   * Like `finish`, but compares the tag with `expected[at, +16)` instead of writing it: true when they are equal.
   * The comparison looks at every byte whatever differs, so its time says nothing about the tag.
   */
  verify(aadBytes: number, textBytes: number, mask: Uint8Array, maskAt: number, expected: Uint8Array, at: number): boolean {
    this.#absorbLengths(aadBytes, textBytes);
    const difference =
      (this.#s0 ^ readWord(mask, maskAt) ^ readWord(expected, at)) |
      (this.#s1 ^ readWord(mask, maskAt + 4) ^ readWord(expected, at + 4)) |
      (this.#s2 ^ readWord(mask, maskAt + 8) ^ readWord(expected, at + 8)) |
      (this.#s3 ^ readWord(mask, maskAt + 12) ^ readWord(expected, at + 12));
    return difference === 0;
  }

  /** The lengths block: each length in bits as a 64-bit big-endian number (`^` keeps a number's low 32 bits). */
  #absorbLengths(aadBytes: number, textBytes: number): void {
    const aadHigh = Math.floor(aadBytes / 0x2000_0000);
    const textHigh = Math.floor(textBytes / 0x2000_0000);
    this.#multiply(this.#s0 ^ aadHigh, this.#s1 ^ (aadBytes * 8), this.#s2 ^ textHigh, this.#s3 ^ (textBytes * 8));
  }

  /** The state becomes (x0 … x3)·H: the XOR of one table entry per byte. */
  #multiply(x0: number, x1: number, x2: number, x3: number): void {
    const t = this.#table;
    let i = (x0 >>> 24) << 2;
    let o0 = t[i] as number;
    let o1 = t[i + 1] as number;
    let o2 = t[i + 2] as number;
    let o3 = t[i + 3] as number;
    i = (0x100 | ((x0 >>> 16) & 0xff)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0x200 | ((x0 >>> 8) & 0xff)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0x300 | (x0 & 0xff)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0x400 | (x1 >>> 24)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0x500 | ((x1 >>> 16) & 0xff)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0x600 | ((x1 >>> 8) & 0xff)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0x700 | (x1 & 0xff)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0x800 | (x2 >>> 24)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0x900 | ((x2 >>> 16) & 0xff)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0xa00 | ((x2 >>> 8) & 0xff)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0xb00 | (x2 & 0xff)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0xc00 | (x3 >>> 24)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0xd00 | ((x3 >>> 16) & 0xff)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0xe00 | ((x3 >>> 8) & 0xff)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    i = (0xf00 | (x3 & 0xff)) << 2;
    o0 ^= t[i] as number; o1 ^= t[i + 1] as number; o2 ^= t[i + 2] as number; o3 ^= t[i + 3] as number;
    this.#s0 = o0;
    this.#s1 = o1;
    this.#s2 = o2;
    this.#s3 = o3;
  }
}

/** The big-endian 32-bit word at `bytes[at, +4)`, as a signed integer. */
function readWord(bytes: Uint8Array, at: number): number {
  return ((bytes[at] as number) << 24) | ((bytes[at + 1] as number) << 16) | ((bytes[at + 2] as number) << 8) | (bytes[at + 3] as number);
}

/** `readWord` of a word that may run past `end`: the bytes from `end` on count as zeros. */
function readPadded(bytes: Uint8Array, at: number, end: number): number {
  let word = 0;
  for (let shift = 24, i = at; shift >= 0; shift -= 8, i++) if (i < end) word |= (bytes[i] as number) << shift;
  return word;
}

function writeWord(bytes: Uint8Array, at: number, word: number): void {
  bytes[at] = word >>> 24;
  bytes[at + 1] = (word >>> 16) & 0xff;
  bytes[at + 2] = (word >>> 8) & 0xff;
  bytes[at + 3] = word & 0xff;
}
