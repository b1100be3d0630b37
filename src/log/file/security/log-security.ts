import { SluiceError } from '../../../errors.js';
import {
  chainAlgorithmKeyed,
  decodeHeader,
  frameFlagsOf,
  headerBytes,
  plainSecurity,
  positionOf,
  sealBytes,
  type Frame,
  type HeaderSecurity,
} from '../format.js';
import { FrameReader } from '../frame-reader.js';
import type { Segments } from '../segments.js';
import { ChainHasher, chainAlgorithmIds, chainAlgorithmOf, genesisLink, type ChainAlgorithm } from './chain.js';
import { keyCheckValue, Keyring, type EncryptionOptions } from './keys.js';
import { RecordOpener, RecordSealer } from './sealer.js';
import type { AesGcm } from './aes-gcm.js';

/** The security options of `FileLog.open` (see `FileLogOptions`), and whether the log is read-only. */
export interface SecurityOptions {
  readonly chain?: ChainAlgorithm | undefined;
  readonly chainKey?: Uint8Array | undefined;
  readonly encryption?: EncryptionOptions | undefined;
  readonly withoutKey?: boolean | undefined;
  readonly readonly: boolean;
}

/**
 * The security of one open native log (FORMAT.md F-70 … F-76): what its headers say, checked against the options
 * it was opened with; the key of each segment, checked once; decryption on the read path; the writer's sealer,
 * chained on from the last record.
 */
export class LogSecurity {
  #header: HeaderSecurity = plainSecurity;
  readonly #chainOption: ChainAlgorithm | undefined;
  readonly #chainKey: Buffer | undefined;
  readonly #keyring: Keyring | undefined;
  readonly #withoutKey: boolean;
  readonly #readonly: boolean;
  /** Segment base → its key, checked against the header's key check value (F-75) when first used. */
  readonly #segmentKeys = new Map<number, AesGcm>();
  readonly #opener = new RecordOpener();

  constructor(options: SecurityOptions) {
    this.#chainOption = options.chain;
    this.#chainKey = options.chainKey === undefined ? undefined : Buffer.from(options.chainKey);
    this.#keyring = options.encryption === undefined ? undefined : new Keyring(options.encryption);
    this.#readonly = options.readonly;
    this.#withoutKey = options.withoutKey === true && options.readonly;
  }

  /** The header fields of the log's segments (F-70). */
  get header(): HeaderSecurity {
    return this.#header;
  }

  get chainAlgorithm(): ChainAlgorithm | null {
    return this.#header.chainAlgorithm === 0 ? null : chainAlgorithmOf(this.#header.chainAlgorithm);
  }

  /** The frame flags every frame of the log carries (F-71). */
  get frameFlags(): number {
    return frameFlagsOf(this.#header);
  }

  /** The header fields of a log created now, from the options (a `TypeError` for a keyed chain without its key). */
  create(): HeaderSecurity {
    const chainAlgorithm = this.#chainOption === undefined ? 0 : chainAlgorithmIds[this.#chainOption];
    const chainKey = this.#chainKey;
    if ((chainAlgorithm === chainAlgorithmKeyed) !== (chainKey !== undefined)) {
      throw new TypeError("a new log takes chainKey with chain: 'hmac-sha256', and only with it");
    }
    const chain = { ...plainSecurity, chainAlgorithm, ...(chainKey === undefined ? {} : { chainKeyCheck: keyCheckValue(chainKey) }) };
    this.#header = this.#keyring !== undefined ? this.#keyring.headerFields(chain) : chainAlgorithm === 0 ? plainSecurity : chain;
    return this.#header;
  }

  /**
   * Takes the newest segment's header fields as the log's, after checking that the options agree (F-70, F-72,
   * F-75): `SECURITY_MISMATCH`, `KEY_REQUIRED`, `WRONG_KEY`. A writer with a new current key either re-creates
   * the segment (when `empty`: `recreate` is its new header) or starts a new one with its first append
   * (`rollFirst`).
   */
  adopt(header: HeaderSecurity, path: string, empty: boolean): { recreate: HeaderSecurity | undefined; rollFirst: boolean } {
    const keyring = this.#keyring;
    const rotating = keyring !== undefined && !this.#readonly && header.cipher !== 0 && header.keyId !== keyring.current.id;
    const chain = this.#chainOption;
    if (chain !== undefined && chainAlgorithmIds[chain] !== header.chainAlgorithm) {
      const actual = header.chainAlgorithm === 0 ? 'not chained' : `chained with ${chainAlgorithmOf(header.chainAlgorithm)}`;
      throw new SluiceError('SECURITY_MISMATCH', `${path}: the log is ${actual}, not chained with ${chain}`, { file: path, position: 12 });
    }
    this.#adoptChainKey(header, path);
    if (header.cipher === 0 && keyring !== undefined) {
      throw new SluiceError('SECURITY_MISMATCH', `${path}: the log is not encrypted, yet a key was given`, { file: path, position: 12 });
    }
    if (header.cipher !== 0 && keyring === undefined && !this.#withoutKey) {
      throw new SluiceError('KEY_REQUIRED', `${path}: the log is encrypted; open it with its key`, { file: path, position: 12 });
    }
    // An empty segment about to be re-created under the new key needs no old key.
    if (header.cipher !== 0 && !(rotating && empty)) keyring?.keyFor(header, path);
    if (!rotating) {
      this.#header = header;
      return { recreate: undefined, rollFirst: false };
    }
    this.#header = keyring.headerFields(header);
    return empty ? { recreate: this.#header, rollFirst: false } : { recreate: undefined, rollFirst: true };
  }

  /** F-72: a keyed chain's key: required to write, checked against the header when given. */
  #adoptChainKey(header: HeaderSecurity, path: string): void {
    const key = this.#chainKey;
    if (header.chainAlgorithm !== chainAlgorithmKeyed) {
      if (key !== undefined) {
        throw new SluiceError('SECURITY_MISMATCH', `${path}: the log's chain is not keyed, yet a chain key was given`, { file: path, position: 32 });
      }
      return;
    }
    if (key === undefined) {
      if (this.#readonly) return;
      throw new SluiceError('KEY_REQUIRED', `${path}: the log's chain is keyed; writing it takes its chain key`, { file: path, position: 48 });
    }
    if (!keyCheckValue(key).equals(header.chainKeyCheck)) {
      throw new SluiceError('WRONG_KEY', `${path}: the chain key given is not the log's`, { file: path, position: 48 });
    }
  }

  /** The header of the segments the writer creates: the current key's (F-75). */
  writerHeader(): HeaderSecurity {
    return this.#keyring === undefined ? this.#header : this.#keyring.headerFields(this.#header);
  }

  /** F-70: `SECURITY_MISMATCH` unless a segment's header has the log's chain algorithm and cipher. */
  checkSegment(header: HeaderSecurity, path: string): void {
    if (header.cipher !== this.#header.cipher || header.chainAlgorithm !== this.#header.chainAlgorithm) {
      throw new SluiceError('SECURITY_MISMATCH', `${path}: the segment's security flags differ from the log's`, { file: path, position: 12 });
    }
  }

  /** The key of segment `index` (F-75), from its header, checked once. */
  #keyOf(segments: Segments, index: number): AesGcm {
    const base = segments.bases[index] as number;
    let key = this.#segmentKeys.get(base);
    if (key !== undefined) return key;
    const path = segments.path(base);
    const bytes = Buffer.alloc(headerBytes);
    const decoded = decodeHeader(bytes.subarray(0, segments.read(index, 0, bytes, 0, headerBytes)));
    if (typeof decoded === 'string') throw new SluiceError('CORRUPT_SEGMENT', `${path}: ${decoded}`, { file: path, position: 0 });
    const header = decoded.security;
    this.checkSegment(header, path);
    if (this.#keyring === undefined) {
      throw new SluiceError('KEY_REQUIRED', `${path}: the log is encrypted and was opened without its key`, { file: path, position: 12 });
    }
    key = this.#keyring.keyFor(header, path);
    this.#segmentKeys.set(base, key);
    return key;
  }

  /**
   * F-74: the plaintext (key bytes, then value bytes) of the encrypted frame of `offset` held in `buffer`;
   * `CORRUPT_RECORD` with file and position when it does not authenticate under its segment's key.
   */
  decrypt(segments: Segments, offset: number, buffer: Buffer, frame: Frame): Buffer {
    const index = segments.indexOf(offset);
    const position = frame.keyStart - 28 - sealBytes;
    const plaintext = this.#opener.open(this.#keyOf(segments, index), buffer, position, frame.valueStart + frame.valueLength);
    if (plaintext !== undefined) return plaintext;
    const base = segments.bases[index] as number;
    const file = segments.path(base);
    throw new SluiceError(
      'CORRUPT_RECORD',
      `${file}: the record at offset ${offset} does not authenticate under its key (altered, or moved from another place)`,
      { file, position: positionOf(base, offset), offset },
    );
  }

  /** The error for a frame whose security flags are not the log's (F-71). */
  mismatch(segments: Segments, offset: number): SluiceError {
    const base = segments.bases[segments.indexOf(offset)] as number;
    const file = segments.path(base);
    return new SluiceError('CORRUPT_RECORD', `${file}: the record at offset ${offset} is not sealed as the log's records are`, {
      file,
      position: positionOf(base, offset),
      offset,
    });
  }

  /**
   * The link of the batch ending with record `offset`, the log's last (F-73): stored in its frame, or, when compaction covered it with a
   * filler of several records (F-76), in that filler's chain bytes: the filler then ends with it, where its
   * segment ends.
   */
  linkAt(segments: Segments, offset: number): Buffer {
    const reader = new FrameReader(segments);
    const index = segments.indexOf(offset);
    let frame = reader.tryAt(index, offset, false);
    if (typeof frame === 'string') {
      const ending = reader.endingAt(index, segments.endOf(index), 'record');
      if (!ending.frame.filler || ending.offset > offset) reader.at(index, offset, 'record', false);
      frame = ending.frame;
    }
    if (frame.chainStart < 0) throw this.mismatch(segments, offset);
    return Buffer.from(reader.buffer.subarray(frame.chainStart + 32, frame.chainStart + 64));
  }

  /**
   * The writer's sealer, chained on from the link of the last frame (F-73): the frame ending where the log ends,
   * which may be a deleted record or a filler; none (a new or fully trimmed log) starts from the genesis link.
   */
  sealer(segments: Segments, end: number): RecordSealer | undefined {
    const header = this.#header;
    if (header.chainAlgorithm === 0 && header.cipher === 0) return undefined;
    const algorithm = this.chainAlgorithm;
    const hasher = algorithm === null ? undefined : new ChainHasher(algorithm, algorithm === 'hmac-sha256' ? this.#chainKey : undefined);
    let link = genesisLink;
    if (hasher !== undefined && end > segments.first) {
      const reader = new FrameReader(segments);
      const { offset, frame } = reader.endingAt(segments.indexOf(end - 1), end, 'record');
      if (frame.chainStart < 0) throw this.mismatch(segments, offset);
      link = Buffer.from(reader.buffer.subarray(frame.chainStart + 32, frame.chainStart + 64));
    }
    return new RecordSealer(this.#keyring?.current.cipher, hasher, link);
  }
}
