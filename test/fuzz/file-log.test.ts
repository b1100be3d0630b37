/**
 * Corruption fuzzing of the native log (FORMAT.md F-5…F-63): one file of a small real log directory (a segment,
 * the DELETES journal, the LOCK file) is mutated, then the directory is opened read-only and read every way
 * (forward and reverse streams, `get` at every offset and between them), checked, opened for writing, recovered
 * and opened again. Every value returned must be the one written at its offset; every failure a SluiceError with
 * a code (corruption with its file and position); `check` must report any damage a read ran into; `recover` must
 * leave a log that opens, passes `check` and holds a prefix of what was written.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isSluiceError, type ErrorCode } from '../../src/errors.js';
import { journalDeletes } from '../../src/log/file/deletes.js';
import { deletesFileName } from '../../src/log/file/segment-files.js';
import { lockFileName } from '../../src/log/file/directory-lock.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { headerBytes, segmentName, segmentNamePattern } from '../../src/log/file/format.js';
import { check } from '../../src/ops/check.js';
import { recover } from '../../src/ops/recover.js';
import { temporaryDirectory } from '../helpers.js';
import { assertCleanError, fuzzCases, fuzzSeed, mutate, runCases, type Random, type Targets } from './engine.js';

interface Value {
  readonly i: number;
  readonly text: string;
}

/** A log directory as bytes, and what was written at each offset. */
interface Template {
  readonly files: ReadonlyMap<string, Buffer>;
  /** Offset → value, in offset order (deleted records included, as `deleted`). */
  readonly records: ReadonlyMap<number, Value>;
  readonly deleted: ReadonlySet<number>;
  /** Offsets a pending deletion (DELETES journal) may have erased by the time they are read. */
  readonly erasing: ReadonlySet<number>;
  readonly end: number;
}

const root = temporaryDirectory('sluice-fuzz-log-');
const segmentBytesMax = 4096;

async function buildTemplate(name: string, variant: 'plain' | 'journal' | 'lock' | 'compacted' | 'leftovers'): Promise<Template> {
  const dir = join(root, name);
  // A clock that ticks per call: records are older than the compaction that follows them.
  let timeMs = 1_700_000_000_000;
  const log = await FileLog.open<Value>(dir, { segmentBytesMax, now: () => timeMs++ });
  const records = new Map<number, Value>();
  for (let i = 0; i < 48; ) {
    const n = 1 + (i % 4);
    const values = Array.from({ length: n }, (_, j) => ({ i: i + j, text: 'x'.repeat(20 + ((i + j) * 37) % 150) }));
    const offsets = await log.append(values, i % 3 === 0 || variant === 'compacted' ? { key: `key-${i % 5}` } : {});
    offsets.forEach((offset, j) => records.set(offset, values[j] as Value));
    i += n;
  }
  const all = [...records.keys()];
  const deleted = new Set([all[5] as number, all[20] as number]);
  await log.delete([...deleted]);
  if (variant === 'compacted') {
    // Fillers over the records compaction drops (F-64): sealed segments with holes.
    await log.compact();
    const kept = new Set<number>();
    for await (const record of log.stream()) kept.add(record.offset);
    for (const offset of all) if (!kept.has(offset)) deleted.add(offset);
    assert.ok(deleted.size > 2, 'compaction dropped records');
  }
  const end = log.since + 1;
  await log.close();
  const erasing = new Set<number>();
  if (variant === 'journal') {
    // A deletion interrupted after its journal was written and before any frame was rewritten (F-63).
    erasing.add(all[30] as number).add(all[all.length - 1] as number);
    await journalDeletes(dir, [...erasing]);
  }
  if (variant === 'lock') writeFileSync(join(dir, lockFileName), '999999999:12345');
  if (variant === 'leftovers') {
    // An interrupted segment creation or compaction (F-20, F-64) and bytes a cut kept: never read as the log.
    writeFileSync(join(dir, `${segmentName(end)}.tmp`), Buffer.alloc(100, 7));
    mkdirSync(join(dir, 'quarantine'));
    writeFileSync(join(dir, 'quarantine', `${segmentName(0)}.100.1.torn`), Buffer.alloc(50, 9));
  }
  const files = new Map<string, Buffer>();
  for (const file of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (file.isFile()) files.set(join(file.parentPath, file.name).slice(dir.length + 1), readFileSync(join(file.parentPath, file.name)));
  }
  return { files, records, deleted, erasing, end };
}

/** The length fields of every frame of a segment: where a crafted length does the most harm. */
function segmentTargets(bytes: Buffer): Targets {
  const fields: number[] = [10, 16, 20];
  for (let position = headerBytes; position + 4 <= bytes.length; ) {
    const size = bytes.readUInt32LE(position);
    if (size < 32 || position + size > bytes.length) break;
    fields.push(position, position + size - 4, position + 8, position + 24);
    position += size;
  }
  return { fields, fieldBytes: 4, littleEndian: true };
}

const readCodes: readonly ErrorCode[] = [
  'CORRUPT_RECORD',
  'CORRUPT_SEGMENT',
  'CORRUPT_LOG',
  'NOT_A_RECORD',
  'OFFSET_OUT_OF_RANGE',
  'RECORD_DELETED',
];
const openCodes: readonly ErrorCode[] = ['CORRUPT_SEGMENT', 'CORRUPT_LOG', 'CORRUPT_RECORD', 'NOT_A_LOG', 'LOCKED'];
const damageCodes: ReadonlySet<ErrorCode> = new Set(['CORRUPT_RECORD', 'CORRUPT_SEGMENT', 'CORRUPT_LOG', 'NOT_A_LOG']);

/** What reading a damaged directory found. */
interface ReadOutcome {
  /** A read failed with a code that means damage. */
  damaged: boolean;
  /** The offsets the forward stream yielded. */
  streamed: number[];
}

/** The value at `offset` must be the one written there; a deleted record may only read as deleted. */
function assertOriginal(template: Template, offset: number, value: unknown, what: string): void {
  assert.ok(template.records.has(offset), `${what}: a value at ${offset}, where no record was written`);
  assert.ok(!template.deleted.has(offset), `${what}: the deleted record at ${offset} was returned`);
  assert.deepEqual(value, template.records.get(offset), `${what}: the value at ${offset} is the one written`);
}

async function readEverything(log: FileLog<Value>, template: Template, random: Random, what: string): Promise<ReadOutcome> {
  const outcome: ReadOutcome = { damaged: false, streamed: [] };
  const failed = (error: unknown, step: string): void => {
    assertCleanError(error, readCodes, `${what}: ${step}`);
    if (isSluiceError(error) && damageCodes.has(error.code)) outcome.damaged = true;
  };
  try {
    for await (const record of log.stream()) {
      assertOriginal(template, record.offset, record.value, `${what}: stream`);
      outcome.streamed.push(record.offset);
    }
  } catch (error) {
    failed(error, 'stream');
  }
  try {
    for await (const record of log.stream({ reverse: true })) assertOriginal(template, record.offset, record.value, `${what}: reverse stream`);
  } catch (error) {
    failed(error, 'reverse stream');
  }
  const offsets = [...template.records.keys()];
  for (const offset of offsets) {
    try {
      assertOriginal(template, offset, await log.get(offset), `${what}: get`);
    } catch (error) {
      if (isSluiceError(error, 'RECORD_DELETED')) {
        assert.ok(template.deleted.has(offset) || template.erasing.has(offset), `${what}: ${offset} reads as deleted`);
      } else failed(error, `get(${offset})`);
    }
  }
  // Offsets that are no record start (inside frames, past the end) never yield a value.
  for (let i = 0; i < 8; i++) {
    const offset = random.below(template.end + 200);
    if (template.records.has(offset)) continue;
    try {
      await log.get(offset);
      assert.fail(`${what}: get(${offset}) returned a value where no record starts`);
    } catch (error) {
      failed(error, `get(${offset})`);
    }
  }
  // A bounded stream from an arbitrary bound resolves it without a wrong value.
  try {
    for await (const record of log.stream({ gte: random.below(template.end), limit: 5 })) {
      assertOriginal(template, record.offset, record.value, `${what}: bounded stream`);
    }
  } catch (error) {
    failed(error, 'bounded stream');
  }
  return outcome;
}

/** Opens `dir` and reads it; an open that fails is damage found (or, for a writer, a lock held). */
async function openAndRead(dir: string, template: Template, random: Random, readonly: boolean, what: string): Promise<ReadOutcome> {
  let log: FileLog<Value>;
  try {
    log = await FileLog.open<Value>(dir, { readonly, segmentBytesMax });
  } catch (error) {
    assertCleanError(error, openCodes, `${what}: open`);
    return { damaged: isSluiceError(error) && damageCodes.has(error.code), streamed: [] };
  }
  try {
    return await readEverything(log, template, random, what);
  } finally {
    await log.close();
  }
}

/** The offsets of records a reader must see, in order: written, not deleted. */
function liveOffsets(template: Template): number[] {
  return [...template.records.keys()].filter((offset) => !template.deleted.has(offset) && !template.erasing.has(offset));
}

/** Asserts that `streamed` is a prefix of the live records (a record a pending deletion erases may be either). */
function assertPrefix(template: Template, streamed: readonly number[], what: string): void {
  const seen = streamed.filter((offset) => !template.erasing.has(offset));
  const expected = liveOffsets(template);
  assert.deepEqual(seen, expected.slice(0, seen.length), what);
}

async function fuzzCase(templates: readonly Template[], random: Random, caseSeed: number): Promise<void> {
  const template = random.pick(templates);
  const dir = join(root, `case-${caseSeed}`);
  mkdirSync(dir);
  for (const [name, bytes] of template.files) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), bytes);
  }
  const names = [...template.files.keys()];
  const segments = names.filter((name) => segmentNamePattern.test(name));
  const others = names.filter((name) => !segmentNamePattern.test(name));
  const target = others.length > 0 && random.chance(0.15) ? random.pick(others) : random.pick(segments);
  const original = template.files.get(target) as Buffer;
  const mutation = mutate(random, original, segmentNamePattern.test(target) ? segmentTargets(original) : undefined);
  writeFileSync(join(dir, target), mutation.bytes);
  const what = `${target}: ${mutation.what}`;

  const read = await openAndRead(dir, template, random, true, `${what}: read-only`);
  const report = await check(dir);
  if (read.damaged) {
    assert.ok(report.errors + report.warnings > 0, `${what}: a read found damage that check does not report`);
  }
  if (report.errors === 0 && report.warnings === 0) {
    // A healthy report means a reader sees a prefix of the records, every one of them.
    assertPrefix(template, read.streamed, `${what}: check is clean but records are missing`);
  }
  await openAndRead(dir, template, random, false, `${what}: writable`);

  let recovered;
  try {
    recovered = await recover(dir);
  } catch (error) {
    assertCleanError(error, ['NOT_A_LOG'], `${what}: recover`);
    rmSync(dir, { recursive: true, force: true });
    return;
  }
  assert.ok(recovered.records >= 0);
  const log = await FileLog.open<Value>(dir, { segmentBytesMax });
  try {
    const after = await readEverything(log, template, random, `${what}: recovered`);
    assert.equal(after.damaged, false, `${what}: the recovered log still has damage`);
    assertPrefix(template, after.streamed, `${what}: recover keeps a prefix`);
    await log.append({ i: -1, text: 'after recovery' });
  } finally {
    await log.close();
  }
  const final = await check(dir);
  assert.equal(final.errors, 0, `${what}: check after recover: ${JSON.stringify(final.problems)}`);
  rmSync(dir, { recursive: true, force: true });
}

describe('fuzz: native log files', () => {
  it('never crashes, hangs or returns a wrong value; check finds the damage; recover repairs it', async () => {
    const templates = [
      await buildTemplate('plain', 'plain'),
      await buildTemplate('journal', 'journal'),
      await buildTemplate('lock', 'lock'),
      await buildTemplate('compacted', 'compacted'),
      await buildTemplate('leftovers', 'leftovers'),
    ];
    assert.ok(templates.every((template) => template.files.has(deletesFileName) === template.erasing.size > 0));
    await runCases('native log', fuzzCases(600, 0.3), fuzzSeed(1_000_000), (random, seed) => fuzzCase(templates, random, seed));
  });
});
