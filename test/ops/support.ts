/**
 * Shared by the tests of `src/ops/`: small logs in real directories, damage injected into their files, and a
 * child process that appends until it is killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { FileLog } from '../../src/log/file/file-log.js';
import { headerBytes, segmentNamePattern } from '../../src/log/file/format.js';

/** Small segments, so a few hundred records span many of them. */
export const segmentBytesMax = 4096;

export interface Value {
  readonly i: number;
  readonly text: string;
}

export const valueOf = (i: number): Value => ({ i, text: `record ${i} `.padEnd(40 + (i % 50), '.') });

/** Appends `count` records in batches of `batch` (every third batch with a key); returns their offsets. */
export async function fillLog(dir: string, count: number, batch = 5): Promise<number[]> {
  const log = await FileLog.open<Value>(dir, { segmentBytesMax });
  const offsets: number[] = [];
  try {
    for (let i = 0; i < count; i += batch) {
      const values = Array.from({ length: Math.min(batch, count - i) }, (_, j) => valueOf(i + j));
      offsets.push(...(await log.append(values, i % 3 === 0 ? { key: `k${i}` } : {})));
    }
  } finally {
    await log.close();
  }
  return offsets;
}

export interface SegmentFile {
  readonly base: number;
  readonly name: string;
  readonly path: string;
}

/** The segment files of `dir`, in offset order. */
export function segmentFiles(dir: string): SegmentFile[] {
  return readdirSync(dir)
    .filter((name) => segmentNamePattern.test(name))
    .sort()
    .map((name) => ({ base: Number(name.slice(0, 20)), name, path: join(dir, name) }));
}

/** The file and byte position of the record at `offset` (F-4). */
export function locate(dir: string, offset: number): { path: string; position: number; base: number } {
  const segment = segmentFiles(dir)
    .filter((candidate) => candidate.base <= offset)
    .pop();
  if (segment === undefined) throw new Error(`no segment holds offset ${offset}`);
  return { path: segment.path, position: offset - segment.base + headerBytes, base: segment.base };
}

export function flipByte(path: string, position: number): void {
  const bytes = readFileSync(path);
  bytes[position] = (bytes[position] as number) ^ 0x5a;
  writeFileSync(path, bytes);
}

/** Every file under `dir` (relative path → content): to prove an operation modified nothing. */
export function treeOf(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (path: string): void => {
    for (const name of readdirSync(path)) {
      const child = join(path, name);
      const info = lstatSync(child);
      if (info.isDirectory()) walk(child);
      // Links and FIFOs (hostile files some tests plant) are recorded as what they are, never read through.
      else if (!info.isFile()) files.set(relative(dir, child), info.isSymbolicLink() ? `link to ${readlinkSync(child)}` : 'not a file');
      // LMDB's reader table changes whenever an environment is opened, even read-only: not data.
      else if (!name.endsWith('-lock')) files.set(relative(dir, child), readFileSync(child).toString('base64'));
    }
  };
  walk(dir);
  return files;
}

/** The segment files of `dir` and their bytes. */
export function segmentBytes(dir: string): Map<string, Buffer> {
  return new Map(segmentFiles(dir).map((segment) => [segment.name, readFileSync(segment.path)]));
}

/**
 * Every byte of the segments before recovery is still somewhere: in the segment (a prefix of it) or in
 * quarantine (`<segment>.<position>.<ms>.torn` holding the rest, position 0 for a segment moved whole).
 */
export function assertNothingLost(dir: string, before: Map<string, Buffer>): void {
  const quarantine = existsSync(join(dir, 'quarantine')) ? readdirSync(join(dir, 'quarantine')) : [];
  for (const [name, bytes] of before) {
    const kept = existsSync(join(dir, name)) ? readFileSync(join(dir, name)) : Buffer.alloc(0);
    assert.ok(bytes.subarray(0, kept.length).equals(kept), `${name} keeps a prefix of its bytes`);
    if (kept.length === bytes.length) continue;
    const position = existsSync(join(dir, name)) ? kept.length : 0;
    const cut = quarantine.find(
      (file) =>
        file.startsWith(`${name}.${position}.`) &&
        file.endsWith('.torn') &&
        readFileSync(join(dir, 'quarantine', file)).equals(bytes.subarray(position)),
    );
    assert.ok(cut !== undefined, `the bytes of ${name} from ${position} on are in quarantine (${quarantine.join(', ')})`);
  }
}

/** The records a child acknowledged (one JSON line per batch in its ack file, written once the append resolved). */
export interface Ack {
  readonly first: number;
  readonly values: readonly Value[];
  readonly offsets: readonly number[];
}

/** Reads the whole lines of an ack file (a line cut by a kill was never complete). */
export function readAcks(file: string): Ack[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Ack);
}

const sluiceModule = new URL('../../src/index.js', import.meta.url).href;

/**
 * A child process that opens a database in `dir` (a reduce view counting records and an index view by `i`) and
 * appends batches of 1–9 records as fast as it can, writing each acknowledged batch to `ackFile` synchronously
 * before the next. It prints `ready` once it has opened; it runs until killed.
 */
export function startAppender(dir: string, ackFile: string, views = true): ChildProcess {
  const script = `
import { openSync, writeSync } from 'node:fs';
import { FileLog, Sluice, reduce, index } from ${JSON.stringify(sluiceModule)};
const valueOf = ${valueOf.toString()};
const log = await FileLog.open(${JSON.stringify(dir)}, { segmentBytesMax: ${segmentBytesMax} });
const db = await Sluice.open(${JSON.stringify(dir)}, {
  log,
  views: ${views} ? { count: reduce(1, (n) => n + 1, { initial: 0 }), byI: index(1, (value) => value.i) } : {},
});
const acks = openSync(${JSON.stringify(ackFile)}, 'a');
let i = log.since < 0 ? 0 : (await log.get(log.since)).i + 1;
process.stdout.write('ready\\n');
for (let batch = 0; ; batch++) {
  const n = 1 + (batch % 9);
  const values = Array.from({ length: n }, (_, j) => valueOf(i + j));
  const offsets = await db.append(values);
  writeSync(acks, JSON.stringify({ first: i, values, offsets }) + '\\n');
  i += n;
}
`;
  return spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Resolves once the child printed `ready`; rejects with its stderr when it exits first. */
export async function ready(child: ChildProcess): Promise<void> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (data: string) => (stderr += data));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (data: string) => {
      out += data;
      if (out.includes('ready\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the child exited (${code}) before it was ready: ${stderr}`)));
  });
}

/** Kills the child with SIGKILL and waits for it to be gone. */
export async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** Polls `condition` every few milliseconds (no timing is asserted: a deadline only turns a hang into a failure). */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
