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
  /** The keystream `readAhead` made, its nonces, where each one's starts, and the next one `open` may take. */
  #ahead: Buffer = Buffer.alloc(0);
  #aheadNonces: Buffer = Buffer.alloc(0);
  #aheadStarts = new Int32Array(1);
  #aheadCount = 0;
  #aheadNext = 0;
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
   * Authenticates the record and returns its text decrypted, in a new buffer that reaches no other record's bytes
   * nor any keystream; `undefined` when the tag does not match (the record was altered, moved, or sealed under
   * another key): no byte of an unauthenticated text is returned or left behind. Uses the keystream `readAhead`
   * made for its nonce, if any.
   */
  open(buffer: Uint8Array, aadStart: number, aadEnd: number, nonceAt: number, tagAt: number, textStart: number, textEnd: number): Buffer | undefined {
    const textBytes = textEnd - textStart;
    let keystream = this.#ahead;
    let at = this.#takeAhead(buffer, nonceAt, textBytes);
    if (at < 0) {
      keystream = this.#keystreamFor(buffer, nonceAt, 1, 16 + textBytes);
      at = 0;
    }
    const ghash = this.#ghash;
    ghash.reset();
    ghash.absorb(buffer, aadStart, aadEnd);
    // The keystream is this record's alone (read-ahead keystream is taken once): the plaintext is made in it,
    // and dropped unless the tag matches.
    ghash.decrypt(buffer, textStart, textEnd, keystream, at + 16);
    if (!ghash.verify(aadEnd - aadStart, textBytes, keystream, at, buffer, tagAt)) {
      // Nothing unauthenticated is left where a later value's buffer could reach it.
      keystream.fill(0, at + 16, at + 16 + textBytes);
      return undefined;
    }
    const text = keystream.subarray(at + 16, at + 16 + textBytes);
    // Read-ahead keystream is shared by up to 128 records: a value must not keep all of it alive, nor reach the
    // keystream of the records after it.
    if (keystream === this.#ahead) return Buffer.from(text);
    // The value's own buffer: its first block, the tag mask, would give away the GHASH result, and with it H.
    for (let i = at; i < at + 16; i++) keystream[i] = 0;
    return text;
  }

  /**
   * Makes, in one AES call, the keystream of records about to be opened in order (a scan): `count` records whose
   * nonces are at `buffer[nonceAts[i], +12)` with texts of `textBytes[i]` bytes. Replaces the previous read-ahead.
   * Only a speed-up: `open` uses a keystream only for the nonce it was made for, and only once.
   */
  readAhead(buffer: Uint8Array, nonceAts: Int32Array, textBytes: Int32Array, count: number): void {
    let blocks = 0;
    for (let i = 0; i < count; i++) blocks += 1 + Math.ceil((textBytes[i] as number) / 16);
    const counters = Buffer.allocUnsafe(blocks * 16);
    const nonces = Buffer.allocUnsafe(count * nonceBytes);
    const starts = new Int32Array(count + 1);
    let block = 0;
    for (let i = 0; i < count; i++) {
      const nonceAt = nonceAts[i] as number;
      for (let k = 0; k < nonceBytes; k++) nonces[i * nonceBytes + k] = buffer[nonceAt + k] as number;
      starts[i] = block * 16;
      const end = block + 1 + Math.ceil((textBytes[i] as number) / 16);
      for (let counter = 1; block < end; block++, counter++) {
        for (let k = 0; k < nonceBytes; k++) counters[block * 16 + k] = buffer[nonceAt + k] as number;
        writeCounter(counters, block * 16 + 12, counter);
      }
    }
    starts[count] = block * 16;
    this.#ahead = this.#encryptBlocks(counters);
    this.#aheadNonces = nonces;
    this.#aheadStarts = starts;
    this.#aheadCount = count;
    this.#aheadNext = 0;
  }

  /** Whether keystream made by `readAhead` is left for `open` to take. */
  get readingAhead(): boolean {
    return this.#aheadNext < this.#aheadCount;
  }

  /**
   * Where in `#ahead` the keystream of the nonce at `buffer[nonceAt, +12)` starts, if it was read ahead and covers
   * `textBytes`; else -1. Entries are taken in order, once: entries skipped (records not opened, such as deleted
   * ones) are dropped; a miss drops them all.
   */
  #takeAhead(buffer: Uint8Array, nonceAt: number, textBytes: number): number {
    const nonces = this.#aheadNonces;
    for (let i = this.#aheadNext; i < this.#aheadCount; i++) {
      let same = true;
      for (let k = 0; k < nonceBytes; k++) {
        if (nonces[i * nonceBytes + k] !== buffer[nonceAt + k]) {
          same = false;
          break;
        }
      }
      if (!same) continue;
      const start = this.#aheadStarts[i] as number;
      if (start + 16 + textBytes > (this.#aheadStarts[i + 1] as number)) break;
      this.#aheadNext = i + 1;
      return start;
    }
    // The reader went elsewhere (a get, another range): the read-ahead is of no more use.
    this.#aheadCount = 0;
    return -1;
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
    this.#keystream = this.#encryptBlocks(new Uint8Array(counters.buffer));
    this.#used = 0;
  }

  /**
   * AES of whole blocks. The one ECB cipher is kept across calls, so a call of any other length would leave bytes
   * inside it and shift every keystream block after it: refused.
   */
  #encryptBlocks(blocks: Uint8Array): Buffer {
    if (blocks.length % 16 !== 0) throw new RangeError(`AES takes whole 16-byte blocks, got ${blocks.length} bytes`);
    return this.#ecb.update(blocks);
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
    return this.#encryptBlocks(scratch.subarray(0, blocks * 16));
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
