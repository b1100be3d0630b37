import type { WorkerPool } from './worker-pool.js';

/** One range of a segment for a digest worker (`digest-worker.ts`): the frames in it whose digests to check (F-73). */
export interface DigestJob {
  /** A descriptor of the segment, held open by the verifier until every job on it has answered. */
  readonly fd: number;
  /** The file position and length of the range the frames lie in. */
  readonly position: number;
  readonly length: number;
  /**
   * Two numbers per frame, positions in the range: where the bytes its digest covers start, and where they end
   * (its stored digest follows them).
   */
  readonly frames: Int32Array;
  /** The `node:crypto` hash of the digests. */
  readonly hashName: string;
}

/**
 * Counts since the process started, for tests and diagnostics: jobs whose digests all matched, jobs that did not
 * (or that a worker could not answer), and segments that `verifyChain` walked again on its own thread.
 */
export const digestStats = { jobsMatched: 0, jobsNotMatched: 0, segmentsWalkedAgain: 0 };

/** Bytes of frames per job: enough to make a message's cost small against hashing them, few enough to share out. */
const jobBytesTarget = 512 * 1024;
/** A gap this large between two frames to check (a compaction filler, deleted records) starts a new job. */
const jobGapBytesMax = 64 * 1024;
/** Jobs each worker may have waiting: the next job falls to the verifier when they all have that many. */
const jobsAheadPerWorker = 2;

/**
 * The digests to check in one segment, open as `fd`, shared out between worker threads and the verifier's own
 * thread: frames are added in file order and taken in jobs of about `jobBytesTarget` bytes; a job goes to the
 * workers while they have fewer than `jobsAheadPerWorker` each waiting, else the verifier (which also walks frames
 * and links) checks it itself, so that no thread waits on another while there is work (the workers' answers come
 * in whenever the verifier lets the event loop run); `settle` sends the rest and tells whether every digest sent
 * matched. Why: a digest is one `node:crypto` call per record, the bulk of a verification, and records' digests do
 * not depend on each other, whereas links must be computed in order. The descriptor must stay open until `settle`
 * has resolved.
 */
export class SegmentDigests {
  readonly #pool: WorkerPool<DigestJob, boolean>;
  readonly #fd: number;
  readonly #hashName: string;
  /** Jobs sent and not answered yet; whether every answer so far was "matched"; who waits for answers. */
  #outstanding = 0;
  #allMatched = true;
  #waiting: (() => void)[] = [];
  /** The job being gathered: its file position and end, and its frames' pairs. */
  #start = 0;
  #end = 0;
  #frames: number[] = [];
  /** Whether the job being gathered is the verifier's. */
  #kept = false;

  constructor(pool: WorkerPool<DigestJob, boolean>, fd: number, hashName: string) {
    this.#pool = pool;
    this.#fd = fd;
    this.#hashName = hashName;
  }

  /**
   * The frame at file `position`, of `size` bytes, whose digest covers its bytes from `contentStart` up to
   * `digestAt` (where it is stored), both counted from the frame's start. False when it falls to the verifier,
   * which then checks it itself.
   */
  add(position: number, size: number, contentStart: number, digestAt: number): boolean {
    // `#end` is 0 only before the first frame: frames start after the segment header.
    if (this.#end === 0 || position - this.#end > jobGapBytesMax || this.#end - this.#start >= jobBytesTarget) {
      if (this.#frames.length > 0) this.#send();
      this.#kept = this.#outstanding >= jobsAheadPerWorker * this.#pool.size;
      this.#start = position;
    }
    this.#end = position + size;
    if (this.#kept) return false;
    const at = position - this.#start;
    this.#frames.push(at + contentStart, at + digestAt);
    return true;
  }

  /** An answer so far was not "matched" (the segment will be walked again: the rest need not be checked). */
  get failed(): boolean {
    return !this.#allMatched;
  }

  /**
   * Sends what is left and waits for every answer: whether every frame added matched its digest (false also when
   * a worker could not tell, or none was left).
   */
  async settle(): Promise<boolean> {
    if (this.#frames.length > 0 && this.#allMatched) this.#send();
    this.#frames = [];
    while (this.#outstanding > 0) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    return this.#allMatched;
  }

  #send(): void {
    const frames = Int32Array.from(this.#frames);
    this.#frames = [];
    this.#outstanding++;
    void this.#pool
      .run({ fd: this.#fd, position: this.#start, length: this.#end - this.#start, frames, hashName: this.#hashName })
      .then((matched) => {
        if (matched === true) {
          digestStats.jobsMatched++;
        } else {
          digestStats.jobsNotMatched++;
          this.#allMatched = false;
        }
        this.#outstanding--;
        for (const wake of this.#waiting.splice(0)) wake();
      });
  }
}
