/**
 * Corruption fuzzing of view state files (FORMAT.md F-50): the state file of a reduce view or of the imported
 * offsets table is mutated, then the database is opened. A damaged state must be discarded with a `report` event
 * and the view rebuilt, and every answer must equal a recomputation from the log. Crafted files with a valid
 * checksum but a hostile body (a state of the wrong shape, `__proto__` keys, a `since` ahead of the log or between
 * records) are tested the same way.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { check } from '../../src/ops/check.js';
import { crc32c } from '../../src/checksum/crc32c.js';
import { importedOffsetKey, importedOffsets } from '../../src/views/imported-offsets.js';
import { reduce } from '../../src/views/reduce.js';
import { temporaryDirectory } from '../helpers.js';
import { fuzzCases, fuzzSeed, mutate, objectPrototypeNames, runCases, type Random } from './engine.js';

interface Value {
  readonly i: number;
  readonly kind: string;
}

const root = temporaryDirectory('sluice-fuzz-views-');
const recordCount = 120;
const kinds = ['a', 'b', '__proto__', 'constructor'];

/** The views of every case: a count per kind (kinds include `__proto__`), and the imported offsets table. */
function views(): { perKind: ReturnType<typeof perKindView>; table: ReturnType<typeof importedOffsets<Value>> } {
  return { perKind: perKindView(), table: importedOffsets<Value>() };
}

function perKindView() {
  return reduce<Value, Record<string, number>, string>(
    1,
    (counts, kind) => {
      // Own-property reads and writes: a kind named `__proto__` must count like any other.
      const next = Object.assign(Object.create(null) as Record<string, number>, counts);
      next[kind] = (Object.hasOwn(counts, kind) ? (counts[kind] as number) : 0) + 1;
      return next;
    },
    { initial: {}, map: (value) => value.kind },
  );
}

interface Template {
  readonly files: ReadonlyMap<string, Buffer>;
  /** The record offsets, and the old offset each was imported from. */
  readonly offsets: readonly number[];
  readonly olds: readonly number[];
  readonly counts: Readonly<Record<string, number>>;
}

async function buildTemplate(name: string): Promise<Template> {
  const dir = join(root, name);
  const log = await FileLog.open<Value>(dir);
  const offsets: number[] = [];
  const olds: number[] = [];
  const counts: Record<string, number> = Object.create(null) as Record<string, number>;
  for (let i = 0; i < recordCount; i++) {
    const kind = kinds[i % kinds.length] as string;
    const old = 1000 + i * 77;
    offsets.push(await log.append({ i, kind }, { key: importedOffsetKey(old) }));
    olds.push(old);
    counts[kind] = (counts[kind] ?? 0) + 1;
  }
  const db = await Sluice.open<Value>(dir, { log });
  const { perKind, table } = views();
  db.use('perKind', perKind);
  db.use('table', table);
  await perKind.get();
  await table.resolve(olds[0] as number);
  await db.close();
  const files = new Map<string, Buffer>();
  const walk = (relative: string): void => {
    const path = join(dir, relative);
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const child = relative === '' ? entry.name : join(relative, entry.name);
      if (entry.isDirectory()) walk(child);
      else files.set(child, readFileSync(join(dir, child)));
    }
  };
  walk('');
  assert.ok(files.has(join('views', 'perKind', 'state')) && files.has(join('views', 'table', 'state')));
  return { files, offsets, olds, counts };
}

/** Writes the template into a new directory with `state` (of view `name`) replaced by `bytes`. */
function materialise(template: Template, dir: string, name: string, bytes: Buffer): void {
  for (const [relative, content] of template.files) {
    const path = join(dir, relative);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, relative === join('views', name, 'state') ? bytes : content);
  }
}

/** Opens the database, asserts both views answer as a recomputation does, and returns the reports made. */
async function openAndVerify(template: Template, dir: string, random: Random, what: string): Promise<string[]> {
  const reports: string[] = [];
  const db = await Sluice.open<Value>(dir);
  db.on('report', ({ view, message }) => reports.push(`${view}: ${message}`));
  try {
    const { perKind, table } = views();
    db.use('perKind', perKind);
    db.use('table', table);
    const counts = await perKind.get();
    assert.deepEqual({ ...counts }, { ...template.counts }, `${what}: the counts equal a recomputation`);
    assert.equal(Object.getPrototypeOf(counts) === null || Object.getPrototypeOf(counts) === Object.prototype, true);
    for (let i = 0; i < 6; i++) {
      const k = random.below(recordCount);
      assert.equal(await table.resolve(template.olds[k] as number), template.offsets[k], `${what}: resolve(${template.olds[k]})`);
      assert.equal(await table.resolve((template.olds[k] as number) + 1), undefined, `${what}: not a record start`);
    }
  } finally {
    await db.close();
  }
  return reports;
}

async function fuzzCase(template: Template, random: Random, caseSeed: number): Promise<void> {
  const name = random.pick(['perKind', 'table']);
  const original = template.files.get(join('views', name, 'state')) as Buffer;
  const mutation = mutate(random, original, { fields: [8, 12], fieldBytes: 4, littleEndian: true });
  const dir = join(root, `case-${caseSeed}`);
  materialise(template, dir, name, mutation.bytes);
  const what = `${name}: ${mutation.what}`;
  const report = await check(dir);
  const reports = await openAndVerify(template, dir, random, what);
  if (!mutation.bytes.equals(original)) {
    assert.ok(reports.some((line) => line.startsWith(`${name}:`)), `${what}: a damaged state is reported (${reports.join('; ')})`);
    assert.ok(report.problems.some((problem) => problem.kind === 'view'), `${what}: check reports the damaged view`);
  }
  rmSync(dir, { recursive: true, force: true });
}

/** A state file with a valid header and checksum around `body`: damage no checksum can catch. */
function craftedState(body: string): Buffer {
  const bytes = Buffer.from(body, 'utf8');
  const header = Buffer.alloc(16);
  header.write('SLUICEVS', 0, 'latin1');
  header.writeUInt32LE(1, 8);
  header.writeUInt32LE(crc32c(bytes, 0, bytes.length), 12);
  return Buffer.concat([header, bytes]);
}

describe('fuzz: view state files', () => {
  it('a damaged state file is reported and rebuilt; answers always equal a recomputation', async () => {
    const template = await buildTemplate('template');
    await runCases('view state', fuzzCases(300, 0.05), fuzzSeed(3_000_000), (random, seed) => fuzzCase(template, random, seed));
  });

  it('crafted bodies: wrong shapes, __proto__, a since ahead of the log or inside a record', async () => {
    const template = await buildTemplate('crafted-template');
    const last = template.offsets[recordCount - 1] as number;
    const bodies: Array<[string, string]> = [
      ['perKind', JSON.stringify({ version: 1, since: last, state: JSON.parse('{"__proto__": {"polluted": 1}, "a": 3}') as unknown })],
      ['perKind', '{"version": 1, "since": 1e300, "state": {}}'],
      ['perKind', `{"version": 1, "since": ${last + 5}, "state": {}}`],
      ['perKind', `{"version": 1, "since": ${(template.offsets[3] as number) + 1}, "state": {}}`],
      ['perKind', '{"version": 1, "since": -1, "__proto__": {"state": 1}}'],
      ['table', `{"version": 1, "since": ${last}, "state": {"count": 1, "last": 1e15, "olds": [5, 2], "news": ["x", -4]}}`],
      ['table', `{"version": 1, "since": ${last}, "state": {"count": -3, "last": 10, "olds": [1], "news": [1e300]}}`],
      ['table', `{"version": 1, "since": ${last}, "state": {"count": 1, "last": 10, "olds": [{}], "news": [null]}}`],
      ['table', `{"version": 1, "since": ${last}, "state": {"__proto__": {"count": 1}, "olds": [], "news": []}}`],
    ];
    let i = 0;
    for (const [name, body] of bodies) {
      const dir = join(root, `crafted-${i++}`);
      materialise(template, dir, name, craftedState(body));
      // Crafted states that are well-formed but lie (a `__proto__` key in a counts object) cannot be told from
      // real ones; those that are ill-formed or disagree with the log must be rebuilt. Either way: no pollution.
      await openAndVerifyLenient(template, dir, name, body);
      assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), objectPrototypeNames, `${body}: Object.prototype`);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    }
  });
});

/** As `openAndVerify` for the table view; the counts of a crafted but well-formed state are whatever it says. */
async function openAndVerifyLenient(template: Template, dir: string, name: string, body: string): Promise<void> {
  const reports: string[] = [];
  const db = await Sluice.open<Value>(dir);
  db.on('report', ({ view, message }) => reports.push(`${view}: ${message}`));
  try {
    const { perKind, table } = views();
    db.use('perKind', perKind);
    db.use('table', table);
    await perKind.get();
    for (let k = 0; k < recordCount; k += 17) {
      assert.equal(await table.resolve(template.olds[k] as number), template.offsets[k], `${body}: resolve`);
    }
    if (name === 'table') assert.ok(reports.some((line) => line.startsWith('table:')), `${body}: rebuilt (${reports.join('; ')})`);
  } finally {
    await db.close();
  }
}
