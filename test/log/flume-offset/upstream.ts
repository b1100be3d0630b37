/**
 * flumelog-offset 3.4.4 itself (the npm package, unchanged), behind promises, for the interoperability tests.
 * It has no close(): each instance is dropped when the test is done with it.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

type Callback<T> = (error: (Error & { code?: string }) | null, value: T) => void;
type PullSource = (abort: unknown, callback: (end: unknown, data?: unknown) => void) => void;

interface UpstreamLog {
  since: { value: number | undefined; once(listener: (since: number) => void): void };
  append(value: unknown, callback: Callback<number>): void;
  get(offset: number, callback: Callback<unknown>): void;
  stream(options?: object): PullSource;
  del(offsets: number | number[], callback: (error: Error | null) => void): void;
}

type UpstreamFactory = (file: string, options: object) => UpstreamLog;
type LegacyFactory = (file: string, blockSize: number, codec: object) => UpstreamLog;

const createUpstream = require('flumelog-offset') as UpstreamFactory;
const createLegacy = require('flumelog-offset/legacy') as LegacyFactory;

/** The JSON codec a flumedb application passes (flumecodec/json without indentation), as Sluice's json codec. */
const json = { encode: (value: unknown) => JSON.stringify(value), decode: (bytes: Buffer) => JSON.parse(bytes.toString()) as unknown };

const bits = { 4: 32, 6: 48, 8: 53 } as const;

export class Upstream {
  readonly #log: UpstreamLog;

  private constructor(log: UpstreamLog) {
    this.#log = log;
  }

  /** Opens `file` as flumelog-offset does (recovering a torn tail) and waits until it has loaded. */
  static async open(file: string, width: 0 | 4 | 6 | 8): Promise<Upstream> {
    const log =
      width === 0
        ? createLegacy(file, 1024, json)
        : createUpstream(file, { codec: json, offsetCodec: bits[width], blockSize: 1024 });
    await new Promise<void>((resolve) => log.since.once(() => resolve()));
    return new Upstream(log);
  }

  get since(): number {
    return this.#log.since.value as number;
  }

  /** Appends one value, or an array as one batch; resolves to upstream's seq (that of the last record written). */
  append(value: unknown): Promise<number> {
    return new Promise((resolve, reject) => this.#log.append(value, (error, seq) => (error ? reject(error) : resolve(seq))));
  }

  get(offset: number): Promise<unknown> {
    return new Promise((resolve, reject) => this.#log.get(offset, (error, value) => (error ? reject(error) : resolve(value))));
  }

  delete(offsets: number | number[]): Promise<void> {
    return new Promise((resolve, reject) => this.#log.del(offsets, (error) => (error ? reject(error) : resolve())));
  }

  /** Every `{ seq, value }` of a stream with `options`. */
  entries(options: object = {}): Promise<{ seq: number; value: unknown }[]> {
    const source = this.#log.stream({ seqs: true, ...options });
    const items: { seq: number; value: unknown }[] = [];
    return new Promise((resolve, reject) => {
      const more = (): void =>
        source(null, (end, data) => {
          if (end === true) resolve(items);
          else if (end) reject(end instanceof Error ? end : new Error('the stream ended with a value that is not an Error'));
          else {
            items.push(data as { seq: number; value: unknown });
            more();
          }
        });
      more();
    });
  }
}
