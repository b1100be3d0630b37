import type { Codec } from '../codec/codec.js';

/**
 * A codec as flume modules write them (flumecodec, level-codec encodings): `encode(value)` returns a Buffer or
 * a string; `decode` receives a Buffer when `buffer` is true, otherwise the stored bytes as a UTF-8 string.
 */
export interface FlumeCodec<T> {
  encode(value: T): Uint8Array | string;
  decode(data: Buffer | string): T;
  /** `true`: `decode` receives a Buffer (a copy the codec may keep). Otherwise a string. */
  readonly buffer?: boolean;
  /** The name level-codec encodings carry; shown in errors. */
  readonly type?: string;
}

/**
 * The default codec of every flumelog constructor, as flumelog-offset's: values are bytes, stored as they are.
 * A string is stored as its UTF-8 bytes (and read back as a Buffer), as upstream does.
 */
export const rawFlumeCodec: FlumeCodec<Buffer> = {
  type: 'raw',
  buffer: true,
  encode(value) {
    if (value instanceof Uint8Array || typeof value === 'string') return value;
    throw new TypeError('the raw codec stores Buffers (or strings) only');
  },
  decode(data) {
    return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  },
};

/** Checks the shape of a flume codec: a programmer mistake otherwise. */
export function assertFlumeCodec<T>(codec: unknown): asserts codec is FlumeCodec<T> {
  const candidate = codec as Partial<FlumeCodec<T>> | null;
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    typeof candidate.encode !== 'function' ||
    typeof candidate.decode !== 'function'
  ) {
    throw new TypeError('codec must be an object with encode(value) and decode(data) functions');
  }
}

/**
 * A Sluice `Codec` that stores values the way `codec` encodes them, so a flume application keeps its codec
 * (and its values' bytes) when it moves onto a Sluice log.
 */
export function toSluiceCodec<T>(codec: FlumeCodec<T>): Codec<T> {
  assertFlumeCodec<T>(codec);
  const name = typeof codec.type === 'string' ? codec.type : 'flumecodec';
  if (codec.buffer === true) {
    return {
      name,
      encode: (value) => encoded(codec.encode(value)),
      // A Sluice codec receives a view of a reused read buffer; a flume codec may keep what it is given.
      decode: (bytes) => codec.decode(Buffer.from(bytes)),
    };
  }
  return {
    name,
    encode: (value) => encoded(codec.encode(value)),
    decode: (bytes) => codec.decode(bytes.toString('utf8')),
    decodeRange: (buffer, start, end) => codec.decode(buffer.toString('utf8', start, end)),
  };
}

function encoded(value: unknown): Uint8Array | string {
  if (value instanceof Uint8Array || typeof value === 'string') return value;
  throw new TypeError(`a flume codec must encode to a Buffer or a string, got ${typeof value}`);
}
