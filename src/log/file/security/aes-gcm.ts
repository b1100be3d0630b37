import { createCipheriv, randomFillSync, type Cipher, type KeyObject } from 'node:crypto';
import { Ghash } from './ghash.js';

/** Random nonces are drawn this many at a time: one CSPRNG call and one AES call per 1024 records. */
const noncesPerFill = 1024;
/**
 * Keystream blocks made ahead with each drawn nonce: the tag mask and 256 bytes of text, enough for the messages
 * of the standard workload; a longer record makes the rest of its keystream when it is sealed.
 */
const blocksAhead = 17;
const nonceBytes = 12;
/** The largest scratch kept between records (64 KiB): a 16 MiB record must not pin 16 MiB for the log's life. */
const scratchBytesKept = 64 * 1024;

/**
 * AES-256-GCM with a 96-bit nonce and a 128-bit tag (NIST SP 800-38D), one message per record, byte for byte
 * what `createCipheriv('aes-256-gcm', …)` produces. OpenSSL's AES makes the keystream (counter blocks encrypted
 * by one long-lived ECB cipher, for many records in one call); `Ghash` authenticates. See `ghash.ts` for why.
 *
 * A record lies in one buffer: its associated data at `[aadStart, aadEnd)`, its 12-byte nonce at `nonceAt`, its
 * 16-byte tag at `tagAt` and its text at `[textStart, textEnd)` (encrypted in place).
 *
 * Sealing draws each record's nonce from a pool filled 1024 random nonces at a time, with their first keystream
 * blocks made in the same call: a nonce is used once, and the pool is never rewound.
 */
export class AesGcm {
  readonly #ecb: Cipher;
  readonly #ghash: Ghash;
  /** The pool: nonces, their counter blocks, and those blocks encrypted (the keystream). */
  readonly #nonces = new Int32Array(noncesPerFill * 3);
  readonly #nonceBytes = new Uint8Array(this.#nonces.buffer);
  /** Made by the first seal: a key kept only to read old segments never needs it. */
  #counters: Int32Array | undefined;
  #keystream: Buffer = Buffer.alloc(0);
  #used = noncesPerFill;
  /** Counter blocks of one record, for the keystream made per record (opening, and text past `blocksAhead`). */
  #scratch = Buffer.alloc(0);

  constructor(key: KeyObject) {
    const ecb = createCipheriv('aes-256-ecb', key, null);
    ecb.setAutoPadding(false);
    this.#ecb = ecb;
    this.#ghash = new Ghash(ecb.update(Buffer.alloc(16)));
  }

  /** Encrypts the record's text in place under a fresh nonce, and writes the nonce and the tag. */
  seal(buffer: Uint8Array, aadStart: number, aadEnd: number, nonceAt: number, tagAt: number, textStart: number, textEnd: number): void {
    if (this.#used === noncesPerFill) this.#fill();
    const index = this.#used++;
    const nonces = this.#nonceBytes;
    for (let i = 0, k = index * nonceBytes; i < nonceBytes; i++, k++) buffer[nonceAt + i] = nonces[k] as number;
    const keystream = this.#keystream;
    const base = index * blocksAhead * 16;
    const ghash = this.#ghash;
    ghash.reset();
    ghash.absorb(buffer, aadStart, aadEnd);
    const ahead = Math.min(textEnd, textStart + (blocksAhead - 1) * 16);
    ghash.encrypt(buffer, textStart, ahead, keystream, base + 16);
    if (ahead < textEnd) ghash.encrypt(buffer, ahead, textEnd, this.#keystreamFor(buffer, nonceAt, blocksAhead + 1, textEnd - ahead), 0);
    ghash.finish(aadEnd - aadStart, textEnd - textStart, keystream, base, buffer, tagAt);
  }

  /**
   * Authenticates the record and returns its text decrypted, in a new buffer; `undefined` when the tag does not
   * match (the record was altered, moved, or sealed under another key): no byte of an unauthenticated text is
   * returned.
   */
  open(buffer: Uint8Array, aadStart: number, aadEnd: number, nonceAt: number, tagAt: number, textStart: number, textEnd: number): Buffer | undefined {
    const keystream = this.#keystreamFor(buffer, nonceAt, 1, 16 + textEnd - textStart);
    const ghash = this.#ghash;
    ghash.reset();
    ghash.absorb(buffer, aadStart, aadEnd);
    // The keystream buffer is this record's own: the plaintext is made in it, and dropped unless the tag matches.
    ghash.decrypt(buffer, textStart, textEnd, keystream, 16);
    if (!ghash.verify(aadEnd - aadStart, textEnd - textStart, keystream, 0, buffer, tagAt)) return undefined;
    return keystream.subarray(16, 16 + textEnd - textStart);
  }

  /** Draws the next pool of nonces and makes their keystream. */
  #fill(): void {
    randomFillSync(this.#nonces);
    const nonces = this.#nonces;
    const counters = (this.#counters ??= counterBlocks());
    for (let nonce = 0; nonce < noncesPerFill; nonce++) {
      const n0 = nonces[nonce * 3] as number;
      const n1 = nonces[nonce * 3 + 1] as number;
      const n2 = nonces[nonce * 3 + 2] as number;
      for (let word = nonce * blocksAhead * 4, end = word + blocksAhead * 4; word < end; word += 4) {
        counters[word] = n0;
        counters[word + 1] = n1;
        counters[word + 2] = n2;
      }
    }
    this.#keystream = this.#ecb.update(new Uint8Array(counters.buffer));
    this.#used = 0;
  }

  /** At least `bytes` bytes of keystream for the nonce at `buffer[nonceAt, +12)`, from counter `first` on. */
  #keystreamFor(buffer: Uint8Array, nonceAt: number, first: number, bytes: number): Buffer {
    const blocks = Math.ceil(bytes / 16);
    // The scratch is kept for the next record, unless it had to grow past `scratchBytesKept` for a large one.
    let scratch = this.#scratch;
    if (scratch.length < blocks * 16) {
      scratch = Buffer.alloc(Math.max(blocks * 16, 1024));
      if (scratch.length <= scratchBytesKept) this.#scratch = scratch;
    }
    for (let block = 0; block < blocks; block++) {
      for (let i = 0; i < nonceBytes; i++) scratch[block * 16 + i] = buffer[nonceAt + i] as number;
      writeCounter(scratch, block * 16 + 12, first + block);
    }
    return this.#ecb.update(scratch.subarray(0, blocks * 16));
  }
}

/** Counter blocks for a pool, their counter words set (block k of a nonce is counter k + 1; the first is J0, the tag mask). */
function counterBlocks(): Int32Array {
  const counters = new Int32Array(noncesPerFill * blocksAhead * 4);
  const bytes = new Uint8Array(counters.buffer);
  for (let nonce = 0; nonce < noncesPerFill; nonce++) {
    for (let block = 0; block < blocksAhead; block++) writeCounter(bytes, (nonce * blocksAhead + block) * 16 + 12, block + 1);
  }
  return counters;
}

function writeCounter(bytes: Uint8Array, at: number, counter: number): void {
  bytes[at] = counter >>> 24;
  bytes[at + 1] = (counter >>> 16) & 0xff;
  bytes[at + 2] = (counter >>> 8) & 0xff;
  bytes[at + 3] = counter & 0xff;
}
