/**
 * A worker thread of `verifyChain`: checks the content digests of the frames of a range of a segment (F-73)
 * while the verifier's own thread walks frames and links. Imports little, so that it starts quickly.
 */
import { readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { digestMatches } from '../log/file/security/digest.js';
import type { DigestJob } from './segment-digests.js';
import { serveJobs } from './worker-pool.js';

let buffer = Buffer.alloc(0);

/**
 * Whether every frame of the job matches its digest. Anything that keeps it from knowing (a short read, an I/O
 * error) is a "no": the verifier then walks the segment by itself, and reports such errors.
 */
function checkDigests(job: DigestJob): Promise<boolean> {
  if (buffer.length < job.length) buffer = Buffer.allocUnsafe(Math.max(job.length, 2 * buffer.length));
  for (let read = 0; read < job.length; ) {
    const got = readSync(job.fd, buffer, read, job.length - read, job.position + read);
    if (got === 0) return Promise.resolve(false);
    read += got;
  }
  const frames = job.frames;
  for (let i = 0; i < frames.length; i += 2) {
    if (!digestMatches(job.hashName, buffer, frames[i] as number, frames[i + 1] as number)) return Promise.resolve(false);
  }
  return Promise.resolve(true);
}

if (parentPort !== null) serveJobs(parentPort, checkDigests);
