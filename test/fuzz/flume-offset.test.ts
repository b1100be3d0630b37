/**
 * Corruption fuzzing of flumelog-offset files (FORMAT.md O-1…O-9), for every width (4, 6, 8) and the legacy
 * format: a file is mutated, then opened read-only and read every way, opened for writing, opened with
 * `recover: true`, and opened again. The format has no checksum (O-3), so a changed payload byte can only be
 * caught by the codec: a value that differs from the one written is allowed only for a record whose payload
 * bytes the mutation touched. Everything else holds as for the native log: no crash, no hang, errors with codes
 * and positions, and a recovered file that opens and reads as a prefix of what was written.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isSluiceError, type ErrorCode } from '../../src/errors.js';
import { FlumeOffsetLog } from '../../src/log/flume-offset/flume-offset-log.js';
import { temporaryDirectory } from '../helpers.js';
import { assertCleanError, fuzzCases, fuzzSeed, mutate, runCases, type Mutation, type Random, type Targets } from './engine.js';

interface Value {
  readonly i: number;
  readonly text: string;
}

type Width = 0 | 4 | 6 | 8;

interface Template {
  readonly width: Width;
  readonly bytes: Buffer;
  /** Offset → value and payload length, in offset order. */
  readonly records: ReadonlyMap<number, { value: Value; payloadBytes: number }>;
  readonly deleted: ReadonlySet<number>;
}

const root = temporaryDirectory('sluice-fuzz-flume-');

function widthOptions(width: Width): { legacy: boolean; offsetWidth?: 4 | 6 | 8 } {
  return width === 0 ? { legacy: true } : { legacy: false, offsetWidth: width };
}

async function buildTemplate(width: Width): Promise<Template> {
  const file = join(root, `template-${width}`, 'log.offset');
  const log = await FlumeOffsetLog.open<Value>(file, widthOptions(width));
  const records = new Map<number, { value: Value; payloadBytes: number }>();
  for (let i = 0; i < 40; i += 2) {
    const values = [0, 1].map((j) => ({ i: i + j, text: 'y'.repeat(10 + ((i + j) * 53) % 120) }));
    const offsets = await log.append(values);
    offsets.forEach((offset, j) => {
      const value = values[j] as Value;
      records.set(offset, { value, payloadBytes: Buffer.byteLength(JSON.stringify(value)) });
    });
  }
  const all = [...records.keys()];
  const deleted = new Set([all[7] as number]);
  await log.delete([...deleted]);
  await log.close();
  return { width, bytes: readFileSync(file), records, deleted };
}

function frameTargets(template: Template): Targets {
  const fields: number[] = [];
  for (const [offset, { payloadBytes }] of template.records) fields.push(offset, offset + 4 + payloadBytes, offset + 8 + payloadBytes);
  return { fields, fieldBytes: 4, littleEndian: false };
}

const readCodes: readonly ErrorCode[] = ['CORRUPT_RECORD', 'CORRUPT_LOG', 'NOT_A_RECORD', 'OFFSET_OUT_OF_RANGE', 'RECORD_DELETED', 'DECODE_FAILED'];
const openCodes: readonly ErrorCode[] = ['CORRUPT_LOG', 'NOT_A_LOG', 'CORRUPT_RECORD'];

/** True when the mutation changed a byte of the payload of the record at `offset` (which no check can see). */
function payloadTouched(template: Template, mutation: Mutation, offset: number): boolean {
  const record = template.records.get(offset);
  if (record === undefined) return false;
  const start = offset + 4;
  const end = start + record.payloadBytes;
  return mutation.start < end && mutation.end > start && !mutation.what.startsWith('truncate');
}

function assertOriginal(template: Template, mutation: Mutation, offset: number, value: unknown, what: string): void {
  assert.ok(template.records.has(offset), `${what}: a value at ${offset}, where no record was written`);
  if (payloadTouched(template, mutation, offset)) return;
  assert.ok(!template.deleted.has(offset), `${what}: the deleted record at ${offset} was returned`);
  assert.deepEqual(value, template.records.get(offset)?.value, `${what}: the value at ${offset} is the one written`);
}

async function readEverything(log: FlumeOffsetLog<Value>, template: Template, mutation: Mutation, random: Random, what: string): Promise<number[]> {
  const streamed: number[] = [];
  try {
    for await (const record of log.stream()) {
      assertOriginal(template, mutation, record.offset, record.value, `${what}: stream`);
      streamed.push(record.offset);
    }
  } catch (error) {
    assertCleanError(error, readCodes, `${what}: stream`);
  }
  try {
    for await (const record of log.stream({ reverse: true })) assertOriginal(template, mutation, record.offset, record.value, `${what}: reverse`);
  } catch (error) {
    assertCleanError(error, readCodes, `${what}: reverse`);
  }
  for (const offset of template.records.keys()) {
    try {
      assertOriginal(template, mutation, offset, await log.get(offset), `${what}: get`);
    } catch (error) {
      assertCleanError(error, readCodes, `${what}: get(${offset})`);
      if (isSluiceError(error, 'RECORD_DELETED')) {
        assert.ok(template.deleted.has(offset) || payloadTouched(template, mutation, offset), `${what}: ${offset} reads as deleted`);
      }
    }
  }
  for (let i = 0; i < 6; i++) {
    const offset = random.below(template.bytes.length + 100);
    if (template.records.has(offset)) continue;
    try {
      await log.get(offset);
      assert.fail(`${what}: get(${offset}) returned a value where no record starts`);
    } catch (error) {
      assertCleanError(error, readCodes, `${what}: get(${offset})`);
    }
  }
  return streamed;
}

function assertPrefix(template: Template, mutation: Mutation, streamed: readonly number[], what: string): void {
  const live = [...template.records.keys()].filter((offset) => !template.deleted.has(offset));
  // A payload the mutation zeroed reads as deleted (O-6): it may be missing from the stream.
  const seen = streamed.filter((offset) => !payloadTouched(template, mutation, offset));
  const expected = live.filter((offset) => !payloadTouched(template, mutation, offset));
  assert.deepEqual(seen, expected.slice(0, seen.length), `${what}: a prefix of the records`);
}

async function openAndRead(
  file: string,
  template: Template,
  mutation: Mutation,
  random: Random,
  options: { readonly?: boolean; recover?: boolean },
  what: string,
): Promise<number[] | undefined> {
  let log: FlumeOffsetLog<Value>;
  try {
    log = await FlumeOffsetLog.open<Value>(file, { ...widthOptions(template.width), ...options });
  } catch (error) {
    assertCleanError(error, openCodes, `${what}: open`);
    return undefined;
  }
  try {
    return await readEverything(log, template, mutation, random, what);
  } finally {
    await log.close();
  }
}

async function fuzzCase(templates: readonly Template[], random: Random, caseSeed: number): Promise<void> {
  const template = random.pick(templates);
  const dir = join(root, `case-${caseSeed}`);
  mkdirSync(dir);
  const file = join(dir, 'log.offset');
  const mutation = mutate(random, template.bytes, frameTargets(template));
  writeFileSync(file, mutation.bytes);
  const what = `width ${template.width}: ${mutation.what}`;

  await openAndRead(file, template, mutation, random, { readonly: true }, `${what}: read-only`);
  await openAndRead(file, template, mutation, random, {}, `${what}: writable`);
  const recovered = await openAndRead(file, template, mutation, random, { recover: true }, `${what}: recover`);
  if (recovered !== undefined) {
    // Once recovered, the file opens without `recover` and reads as a prefix of what was written.
    const again = await openAndRead(file, template, mutation, random, {}, `${what}: after recover`);
    assert.ok(again !== undefined, `${what}: a recovered file opens`);
    assertPrefix(template, mutation, again, `${what}: after recover`);
  }
  rmSync(dir, { recursive: true, force: true });
}

describe('fuzz: flumelog-offset files', () => {
  it('never crashes, hangs or returns a wrong value (payload bytes aside: the format has no checksum)', async () => {
    const templates = await Promise.all(([4, 6, 8, 0] as const).map((width) => buildTemplate(width)));
    await runCases('flumelog-offset', fuzzCases(900, 0.3), fuzzSeed(2_000_000), (random, seed) => fuzzCase(templates, random, seed));
  });
});
