import { createHmac, createSecretKey } from 'node:crypto';
import { SluiceError } from '../../../errors.js';
import type { HeaderSecurity } from '../format.js';
import { AesGcm } from './aes-gcm.js';

/** One AES-256 key and the id records name it by (F-75). */
export interface EncryptionKey {
  /** An integer from 0 to 2^32 − 1, chosen by the application; recorded in each segment header it encrypts. */
  readonly id: number;
  /** 32 bytes. Never written to the log directory: the log keeps only its id and an 8-byte check value. */
  readonly key: Uint8Array;
}

/**
 * The keys of an encrypted log (README "Encrypted logs"). `key` encrypts the records appended from now on; the
 * log's older segments may name any key of `oldKeys` (or `key`). Rotating a key is opening the log with a new `key`
 * and the old one among `oldKeys`: appends go to a new segment under the new key, old records stay readable
 * while their key is supplied. An id may appear once; ids never change meaning.
 */
export interface EncryptionOptions {
  readonly key: EncryptionKey;
  readonly oldKeys?: readonly EncryptionKey[];
}

export const keyBytes = 32;
/** F-75: what the key check value is the HMAC of. */
const keyCheckMessage = 'sluice key check value, version 1';

/** F-75: the first 8 bytes of HMAC-SHA-256(key, "sluice key check value, version 1"). */
export function keyCheckValue(key: Uint8Array): Buffer {
  return createHmac('sha256', key).update(keyCheckMessage).digest().subarray(0, 8);
}

/** Throws `TypeError` / `RangeError` unless `key` is a chain key (F-72's keyed chain): 32 bytes. */
export function checkChainKey(key: unknown): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array)) throw new TypeError('chainKey must be a Uint8Array');
  if (key.length !== keyBytes) throw new RangeError(`a chain key is ${keyBytes} bytes, got ${key.length}`);
}

/** Reads a chain key file for the command line: 64 hex digits (and blank or `#` lines). */
export function parseChainKeyFile(text: string, file: string): Buffer {
  const lines = text.split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
  if (lines.length !== 1 || !/^[0-9a-fA-F]{64}$/.test(lines[0] as string)) {
    throw new SluiceError('INVALID_INPUT', `${file} must hold one chain key: 64 hex digits`, { file });
  }
  return Buffer.from(lines[0] as string, 'hex');
}

/** Throws `TypeError` / `RangeError` unless `options` is a valid `EncryptionOptions`. */
export function checkEncryption(options: unknown): asserts options is EncryptionOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('encryption must be an object');
  const { key, oldKeys } = options as EncryptionOptions;
  const ids = new Set<number>();
  const all = [key, ...(oldKeys === undefined ? [] : checkList(oldKeys))];
  for (const entry of all) {
    checkKey(entry);
    if (ids.has(entry.id)) throw new RangeError(`the key id ${entry.id} is given twice`);
    ids.add(entry.id);
  }
}

function checkList(oldKeys: unknown): readonly EncryptionKey[] {
  if (!Array.isArray(oldKeys)) throw new TypeError('encryption.oldKeys must be an array');
  return oldKeys as EncryptionKey[];
}

function checkKey(entry: unknown): void {
  if (typeof entry !== 'object' || entry === null) throw new TypeError('an encryption key must be an object { id, key }');
  const { id, key } = entry as EncryptionKey;
  if (typeof id !== 'number') throw new TypeError('a key id must be a number');
  if (!Number.isInteger(id) || id < 0 || id > 0xffff_ffff) throw new RangeError(`a key id is an integer from 0 to 2^32 − 1, got ${id}`);
  if (!(key instanceof Uint8Array)) throw new TypeError('an encryption key must be a Uint8Array');
  if (key.length !== keyBytes) throw new RangeError(`an AES-256 key is ${keyBytes} bytes, got ${key.length}`);
}

interface KeyringEntry {
  readonly cipher: AesGcm;
  readonly check: Buffer;
}

/** The keys of an open log, by id, each with its check value. */
export class Keyring {
  readonly current: KeyringEntry & { readonly id: number };
  readonly #byId = new Map<number, KeyringEntry>();

  constructor(options: EncryptionOptions) {
    checkEncryption(options);
    for (const { id, key } of [options.key, ...(options.oldKeys ?? [])]) {
      // A copy: the application may reuse or wipe its buffer.
      const copy = Buffer.from(key);
      this.#byId.set(id, { cipher: new AesGcm(createSecretKey(copy)), check: keyCheckValue(copy) });
    }
    const current = this.#byId.get(options.key.id) as KeyringEntry;
    this.current = { id: options.key.id, ...current };
  }

  /** The security fields of a segment written with the current key (F-70, F-75), the chain's as in `chain`. */
  headerFields(chain: HeaderSecurity): HeaderSecurity {
    return { ...chain, cipher: 1, keyId: this.current.id, keyCheck: this.current.check };
  }

  /**
   * The key a segment's header names: `KEY_REQUIRED` when its id is not among the keys, `WRONG_KEY` when the key
   * under that id has another check value (F-75).
   */
  keyFor(security: HeaderSecurity, file: string): AesGcm {
    const entry = this.#byId.get(security.keyId);
    if (entry === undefined) {
      throw new SluiceError('KEY_REQUIRED', `${file} is encrypted with key id ${security.keyId}, which was not supplied`, {
        file,
        position: 36,
      });
    }
    if (!entry.check.equals(security.keyCheck)) {
      throw new SluiceError('WRONG_KEY', `${file}: the key supplied as id ${security.keyId} is not the key it was encrypted with`, {
        file,
        position: 40,
      });
    }
    return entry.cipher;
  }
}

/**
 * Reads a key file for the command line: one key per line, `<id>:<64 hex digits>`; the first line is the key new
 * records are encrypted with, the others are old keys. Blank lines and lines starting with `#` are skipped.
 * `INVALID_INPUT` names the line (never its content: it is a key).
 */
export function parseKeyFile(text: string, file: string): EncryptionOptions {
  const keys: EncryptionKey[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(\d{1,10}):([0-9a-fA-F]{64})$/.exec(line);
    const id = match === null ? NaN : Number(match[1]);
    if (match === null || id > 0xffff_ffff) {
      throw new SluiceError('INVALID_INPUT', `${file}: line ${index + 1} is not <key id>:<64 hex digits>`, { file });
    }
    keys.push({ id, key: Buffer.from(match[2] as string, 'hex') });
  }
  const [key, ...oldKeys] = keys;
  if (key === undefined) throw new SluiceError('INVALID_INPUT', `${file} holds no key`, { file });
  try {
    checkEncryption({ key, oldKeys });
  } catch (error) {
    throw new SluiceError('INVALID_INPUT', `${file}: ${(error as Error).message}`, { file });
  }
  return { key, oldKeys };
}
