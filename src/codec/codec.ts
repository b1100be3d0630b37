/**
 * How values become bytes and back. A log is typed by its codec: `Log<T>` stores `T`s through a `Codec<T>`.
 *
 * Edge cases every codec must handle:
 * - `encode` throws (anything) for a value it cannot encode; the log turns that into a `TypeError` and writes
 *   nothing. Returning `undefined` is also treated as "cannot encode".
 * - `decode` receives a view of the log's read buffer that is only valid during the call: a codec that keeps the
 *   bytes (the raw codec) must copy them.
 * - An empty encoding (zero bytes) is a valid value.
 */
export interface Codec<T> {
  /** A short name, shown by the CLI and in errors. */
  readonly name: string;
  /** Encodes `value`. A string result is written as UTF-8 straight into the log's buffer (no extra copy). */
  encode(value: T): Uint8Array | string;
  /** Decodes bytes written by `encode`. Throws when they are not a valid encoding. */
  decode(bytes: Buffer): T;
  /**
   * Optional: decodes `buffer[start, end)` as `decode(buffer.subarray(start, end))` would, without creating the
   * view. Logs call it when present, since a scan decodes millions of records.
   */
  decodeRange?(buffer: Buffer, start: number, end: number): T;
}

/** A JSON value: what the default codec stores without loss. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * `Buffer#toString('utf8', start, end)` checks its arguments and looks the encoding up on every call; a scan
 * decodes millions of values, so the codecs call the method it ends in when this Node.js has it.
 */
type Utf8Slicer = (buffer: Buffer, start: number, end: number) => string;
const nativeUtf8Slice = (Buffer.prototype as unknown as { utf8Slice?: (start: number, end: number) => string }).utf8Slice;
const utf8Slice: Utf8Slicer =
  typeof nativeUtf8Slice === 'function'
    ? (buffer, start, end) => nativeUtf8Slice.call(buffer, start, end)
    : (buffer, start, end) => buffer.toString('utf8', start, end);

const jsonCodec: Codec<unknown> = {
  name: 'json',
  encode(value) {
    // JSON.stringify returns undefined (not an error) for undefined, functions and symbols.
    const text: string | undefined = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`JSON cannot encode a value of type ${typeof value}`);
    return text;
  },
  decode(bytes) {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  },
  decodeRange(buffer, start, end) {
    return JSON.parse(utf8Slice(buffer, start, end)) as unknown;
  },
};

const rawCodec: Codec<Uint8Array> = {
  name: 'raw',
  encode(value) {
    if (!(value instanceof Uint8Array)) throw new TypeError('the raw codec stores Uint8Array values only');
    return value;
  },
  decode(bytes) {
    // The bytes are a view of a reused read buffer: hand out a copy the caller owns.
    return new Uint8Array(bytes);
  },
  decodeRange(buffer, start, end) {
    return new Uint8Array(buffer.buffer.slice(buffer.byteOffset + start, buffer.byteOffset + end));
  },
};

const utf8Codec: Codec<string> = {
  name: 'utf8',
  encode(value) {
    if (typeof value !== 'string') throw new TypeError('the utf8 codec stores strings only');
    return value;
  },
  decode(bytes) {
    return bytes.toString('utf8');
  },
  decodeRange(buffer, start, end) {
    return utf8Slice(buffer, start, end);
  },
};

/** The built-in codecs. `json` is the default of every log. */
export const codecs = {
  /** `JSON.stringify` as UTF-8. Typed by the caller: `codecs.json<Message>()`. */
  json<T = JsonValue>(): Codec<T> {
    return jsonCodec as Codec<T>;
  },
  /** Bytes stored as they are; reads return a fresh `Uint8Array`. */
  raw(): Codec<Uint8Array> {
    return rawCodec;
  },
  /** Strings stored as UTF-8. */
  utf8(): Codec<string> {
    return utf8Codec;
  },
} as const;

/**
 * For readers that need frames, keys and offsets but not values (stat, the offsets table of an import): decodes
 * every value to `null` without touching its bytes, and refuses to encode.
 */
export const skipValues: Codec<null> = {
  name: 'skip',
  encode() {
    throw new TypeError('a log opened with the skip codec cannot be written');
  },
  decode() {
    return null;
  },
};

/** Checks that `codec` has the shape of a codec; a programmer mistake otherwise. */
export function assertCodec<T>(codec: unknown): asserts codec is Codec<T> {
  const candidate = codec as Partial<Codec<T>> | null;
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    typeof candidate.encode !== 'function' ||
    typeof candidate.decode !== 'function'
  ) {
    throw new TypeError('codec must be an object with encode(value) and decode(bytes) functions');
  }
}
