import type { StreamOptions } from '../log/log.js';
import type { PullSource } from './pull.js';

/** What a flumelog tells `LiveReaders` about one of its live streams. */
export interface TrackedReader {
  /** The stream opened with these Sluice options. */
  opened(options: StreamOptions): void;
  /** The stream is about to hand out the record at `seq`. */
  handedOver(seq: number): void;
  /** The stream's source, as handed out: it tells when the consumer waits for an item. */
  wrap<T>(source: PullSource<T>): PullSource<T>;
}

/** What a settled append hands `LiveReaders.callBack`. */
export interface Appended {
  /** The log's `since` when the append was issued. */
  readonly after: number;
  /** The seq of the append's last record. */
  readonly seq: number;
}

/** An append's callback, held until its turn. */
interface HeldCallback {
  /** Runs the application's callback. */
  readonly call: () => void;
  /** What the append wrote; `undefined` for a failed or empty append, which waits for no stream. */
  readonly appended: Appended | undefined;
  /** Counts the callbacks held, to tell which a release covers. */
  readonly number: number;
}

/** One live stream, as far as the appends of its flumelog wait for it. */
interface LiveReader {
  /** The consumer has asked for an item the stream has not handed over yet. */
  waiting: boolean;
  ended: boolean;
  /** The stream's records come after this seq; `undefined` until it has opened. */
  floor: number | undefined;
  /** The last seq the stream can hand out (`Infinity` without an upper bound). */
  ceiling: number;
  /** The seq of the last record handed over (`-1` for none). */
  last: number;
}

/** Past this many spent entries at its front, the queue of held callbacks is compacted. */
const compactAfter = 1024;

/**
 * The live streams of one flumelog, so that its appends call back only after those streams handed the new
 * records to the consumers waiting for them. flumelog-offset sets `since`, which runs its live streams, before
 * it calls an append back: under flumedb a waiting live stream (a view's feed included) has its item before the
 * append's callback runs, and applications rely on it. A Sluice log wakes its streams through promises, which
 * would settle just after the append's.
 *
 * An append's callback waits for each stream that has handed over every record before the append and whose
 * consumer waits for the next, until the stream has handed over the records up to the append's last one,
 * ended, or its consumer stopped asking (as under flumedb, a consumer that reads the next item later gets it
 * later). A stream still catching up, such as a view being rebuilt, holds no callback back. The logs kept in
 * memory and in local files read new records without I/O, so the wait takes a few microtasks; it never
 * outlasts the current macrotask, so that a record deleted before a stream reached it, or a log whose reads
 * wait on a server, cannot hold a callback. Callbacks keep the order in which their appends settled.
 */
export class LiveReaders {
  readonly #readers = new Set<LiveReader>();
  /** The callbacks held, in the order their appends settled, from `#first` on. */
  #held: HeldCallback[] = [];
  #first = 0;
  #heldCount = 0;
  /** The callbacks numbered up to this one no longer wait for streams (see `#release`). */
  #releasedThrough = 0;
  #releaseScheduled = false;
  #flushing = false;

  /** Starts tracking one live stream (see `TrackedReader`). */
  reader(): TrackedReader {
    const reader: LiveReader = { waiting: false, ended: false, floor: undefined, ceiling: Infinity, last: -1 };
    const end = (): void => {
      reader.ended = true;
      reader.waiting = false;
      this.#readers.delete(reader);
      this.#flush();
    };
    return {
      opened: (options) => {
        reader.floor = options.gt ?? (options.gte === undefined ? -1 : options.gte - 1);
        reader.ceiling = options.lte ?? (options.lt === undefined ? Infinity : options.lt - 1);
      },
      handedOver: (seq) => {
        reader.last = seq;
      },
      wrap: (source) => (abort, cb) => {
        if (abort !== null && abort !== undefined && abort !== false) {
          end();
          source(abort, cb);
          return;
        }
        if (!reader.ended) {
          reader.waiting = true;
          this.#readers.add(reader);
        }
        source(abort, (sourceEnd, data) => {
          reader.waiting = false;
          if (sourceEnd !== null && sourceEnd !== undefined) end();
          try {
            cb(sourceEnd, data);
          } finally {
            // Once the consumer's callback returned: a consumer that asked for the next item meanwhile waits again.
            this.#flush();
          }
        });
      },
    };
  }

  /**
   * Calls a settled append back: `call` runs once the live streams waiting at the end of the log have handed
   * over what it appended, and after the callbacks held before it. Appends report here in the order they
   * settle.
   */
  callBack(appended: Appended | undefined, call: () => void): void {
    if (this.#first === this.#held.length && (appended === undefined || this.#readers.size === 0)) return call();
    this.#held.push({ call, appended, number: ++this.#heldCount });
    this.#flush();
  }

  /** Whether a live stream has still to hand over records of this append to a consumer waiting for them. */
  #holdsBack({ after, seq }: Appended): boolean {
    for (const reader of this.#readers) {
      if (!reader.waiting || reader.floor === undefined || reader.floor >= seq) continue;
      if (Math.max(reader.last, reader.floor) < after) continue; // Still catching up.
      if (reader.last < Math.min(seq, reader.ceiling)) return true;
    }
    return false;
  }

  /** Runs the held callbacks that are due, from the first, up to one that is not. */
  #flush(): void {
    // A callback whose consumer leads to another flush leaves the work to this loop.
    if (this.#flushing || this.#first === this.#held.length) return;
    this.#flushing = true;
    try {
      while (this.#first < this.#held.length) {
        const next = this.#held[this.#first] as HeldCallback;
        if (next.appended !== undefined && next.number > this.#releasedThrough && this.#holdsBack(next.appended)) {
          this.#scheduleRelease();
          break;
        }
        this.#first++;
        next.call();
      }
      if (this.#first === this.#held.length) {
        this.#held = [];
        this.#first = 0;
      } else if (this.#first > compactAfter && this.#first * 2 > this.#held.length) {
        this.#held = this.#held.slice(this.#first);
        this.#first = 0;
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** The bound on the wait: at the next macrotask, every callback held then stops waiting for streams. */
  #scheduleRelease(): void {
    if (this.#releaseScheduled) return;
    this.#releaseScheduled = true;
    setImmediate(() => {
      this.#releaseScheduled = false;
      this.#releasedThrough = this.#heldCount;
      this.#flush();
    });
  }
}
