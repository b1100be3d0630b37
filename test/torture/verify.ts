import { existsSync, rmSync } from 'node:fs';
import { isSluiceError } from '../../src/errors.js';
import { FileLog } from '../../src/log/file/file-log.js';
import type { LogRecord } from '../../src/log/log.js';
import { check } from '../../src/ops/check.js';
import { keyOf, tortureRetention, tortureSegmentBytesMax, valueOf, type Ack, type Scenario, type TortureValue } from './scenarios.js';
import { checkViews } from './views.js';

/** Where a record sits in the workload: record `i` of batch `b` of `n` records. */
export interface Placed {
  readonly b: number;
  readonly i: number;
  readonly n: number;
}

/** What the parent knows of one log directory across kills: what was verified present, deleted, trimmed. */
export interface Model {
  readonly dir: string;
  readonly backupDir: string;
  /** Records found intact after a kill (and the parent's own appends): they must stay. */
  records: Map<number, Placed>;
  /** Offsets whose deletion was acknowledged: they must stay deleted. */
  readonly deleted: Set<number>;
  /** The first offset of the log as last verified. */
  firstOffset: number;
  /** The number the next child's first batch gets. */
  nextBatch: number;
}

/** The verdict on one kill. `problems` is empty when every promise held. */
export interface RoundResult {
  /** Records acknowledged as durable by the killed child (see `durableAcks`). */
  readonly acked: number;
  /** Acknowledged (or earlier verified) records missing or damaged after the reopen. */
  readonly lost: number;
  readonly openFailed: boolean;
  readonly problems: string[];
}

const gone = (error: unknown): boolean => isSluiceError(error, 'RECORD_DELETED') || isSluiceError(error, 'NOT_A_RECORD');

/**
 * Which acknowledged records count as durable against SIGKILL. In `os` and `disk` durability every acknowledged
 * append was written before it resolved, so all of them. In `buffered` durability an append resolves before its
 * write (at the end of the event-loop turn): only those covered by a `sync()` that resolved afterwards count;
 * the others may be lost, but what survives must still be whole batches in call order, intact.
 */
export function durableAcks(scenario: Scenario, acks: readonly Ack[]): Map<number, Placed> {
  let synced = -1;
  for (const ack of acks) if (ack.synced !== undefined) synced = Math.max(synced, ack.synced);
  const durable = new Map<number, Placed>();
  for (const ack of acks) {
    if (ack.o === undefined || ack.b === undefined || ack.n === undefined) continue;
    for (const [i, offset] of ack.o.entries()) {
      if (scenario.durability !== 'buffered' || offset <= synced) durable.set(offset, { b: ack.b, i, n: ack.n });
    }
  }
  return durable;
}

/**
 * Reopens the log after a kill and checks every promise: `check` finds no damage; it opens; every durable
 * acknowledged record (and every one verified before) is there intact, unless its deletion, a trim or a
 * compaction that supersedes it says otherwise; deleted records stay deleted and are never streamed; nothing is
 * visible but intact records in whole batches in call order; a trim removed a prefix only; every backup that
 * exists is complete; views equal their recomputation; and the next append works. Updates `model` to what the
 * log now holds.
 */
export async function verifyRound(scenario: Scenario, model: Model, acks: readonly Ack[], context: string): Promise<RoundResult> {
  const problems: string[] = [];
  const durable = durableAcks(scenario, acks);
  // A kill before the first open created the directory leaves nothing to check (and nothing was acknowledged).
  const report = existsSync(model.dir) || durable.size > 0 ? await check(model.dir) : { errors: 0, problems: [] };
  if (report.errors > 0) problems.push(`check found damage: ${JSON.stringify(report.problems.slice(0, 3))}`);
  let log: FileLog<TortureValue>;
  try {
    log = await FileLog.open<TortureValue>(model.dir, { durability: scenario.durability, segmentBytesMax: tortureSegmentBytesMax });
  } catch (error) {
    return { acked: durable.size, lost: 0, openFailed: true, problems: [...problems, `the reopen failed: ${String(error)}`] };
  }
  let lost = 0;
  let records: LogRecord<TortureValue>[] = [];
  try {
    for await (const record of log.stream()) records.push(record);
    problems.push(...checkStructure(scenario, records, durable, model));
    const deleted = new Set(model.deleted);
    const deleting = new Set<number>();
    let trims = 0;
    let trimmedTo = model.firstOffset;
    for (const ack of acks) {
      for (const offset of ack.deleted ?? []) deleted.add(offset);
      for (const offset of ack.deleting ?? []) deleting.add(offset);
      if (ack.trimming === true) trims++;
      if (ack.trimmed !== undefined) {
        trims--;
        trimmedTo = Math.max(trimmedTo, ack.trimmed);
      }
    }
    if (scenario.maintenance === 'retention') {
      // Background trims report nothing: they only ever drop a prefix of whole segments, and keep the newest
      // `maxRecords` records (segments go oldest first, so a kill mid-trim keeps more).
      if (log.firstOffset < trimmedTo) problems.push(`the log starts at ${log.firstOffset}, before ${trimmedTo}`);
      if (log.firstOffset > trimmedTo && records.length < tortureRetention.maxRecords) {
        problems.push(`retention left ${records.length} records, fewer than ${tortureRetention.maxRecords}`);
      }
    } else if (log.firstOffset < trimmedTo || (trims === 0 && log.firstOffset !== trimmedTo)) {
      problems.push(`the log starts at ${log.firstOffset}, the acknowledged trims left it at ${trimmedTo}`);
    }
    if (!log.segments.bases.includes(log.firstOffset) && records.length > 0) problems.push(`the log starts at ${log.firstOffset}, not a segment`);
    const byOffset = new Map(records.map((record) => [record.offset, record]));
    const expected = new Map([...model.records, ...durable]);
    for (const [offset, placed] of expected) {
      if (offset < log.firstOffset) continue;
      const what = `record ${placed.i} of batch ${placed.b} at offset ${offset}`;
      if (deleted.has(offset)) {
        const outcome = await log.get(offset).then(() => 'readable', (error: unknown) => (gone(error) ? 'gone' : String(error)));
        if (outcome !== 'gone') problems.push(`deleted ${what} is ${outcome}`);
        continue;
      }
      const record = byOffset.get(offset);
      if (record === undefined) {
        if (deleting.has(offset)) continue;
        const key = keyOf(scenario, placed.b, placed.n);
        if (scenario.maintenance === 'compact' && key !== undefined && supersededIn(records, key, offset, scenario)) continue;
        lost++;
        problems.push(`${what} is lost`);
        continue;
      }
      if (record.value.b !== placed.b || record.value.i !== placed.i) {
        lost++;
        problems.push(`${what} holds record ${record.value.i} of batch ${record.value.b}`);
      }
    }
    for (const offset of deleted) if (byOffset.has(offset)) problems.push(`deleted record ${offset} was streamed`);
    problems.push(...(await checkBackups(model, acks, expected)));
    for (const offset of deleted) model.deleted.add(offset);
    model.firstOffset = log.firstOffset;
  } finally {
    await log.close();
  }
  if (scenario.views) {
    try {
      records = await checkViews(model.dir, context);
    } catch (error) {
      problems.push(String(error));
    }
  }
  problems.push(...(await appendNext(scenario, model, records)));
  return { acked: durable.size, lost, openFailed: false, problems };
}

/** Whole batches in call order, every record intact with its key, offsets ascending, nothing deleted streamed. */
function checkStructure(scenario: Scenario, records: readonly LogRecord<TortureValue>[], durable: Map<number, Placed>, model: Model): string[] {
  const problems: string[] = [];
  const counts = new Map<number, number>();
  let previous: LogRecord<TortureValue> | undefined;
  for (const record of records) {
    const { b, i, n } = record.value;
    const key = record.key === undefined ? undefined : Buffer.from(record.key).toString('utf8');
    if (JSON.stringify(record.value) !== JSON.stringify(valueOf(b, i, n)) || key !== keyOf(scenario, b, n)) {
      problems.push(`the record at ${record.offset} is damaged: ${JSON.stringify(record.value).slice(0, 80)}`);
    }
    if (previous !== undefined && (previous.value.b > b || (previous.value.b === b && previous.value.i >= i))) {
      problems.push(`record ${i} of batch ${b} at ${record.offset} follows record ${previous.value.i} of batch ${previous.value.b}`);
    }
    counts.set(b, (counts.get(b) ?? 0) + 1);
    previous = record;
  }
  // A batch nobody saw acknowledged is whole or absent (deletes pick acknowledged records, compaction only single
  // ones, and trims drop whole segments, which batches never straddle).
  const known = new Set([...model.records.values(), ...durable.values()].map((placed) => placed.b));
  for (const record of records) {
    const { b, n } = record.value;
    if (!known.has(b) && counts.get(b) !== n && record.value.i === 0) {
      problems.push(`batch ${b} is partly visible: ${counts.get(b)} of its ${n} records`);
    }
  }
  return problems;
}

/** True when a record after `offset` with the same key is visible: compaction may have dropped the older one. */
function supersededIn(records: readonly LogRecord<TortureValue>[], key: string, offset: number, scenario: Scenario): boolean {
  return records.some((record) => record.offset > offset && keyOf(scenario, record.value.b, record.value.n) === key);
}

/** Every backup that exists holds what was acknowledged before it started; every acknowledged one exists. */
async function checkBackups(model: Model, acks: readonly Ack[], expected: Map<number, Placed>): Promise<string[]> {
  const problems: string[] = [];
  const done = new Set(acks.flatMap((ack) => (ack.backedUp === undefined ? [] : [ack.backedUp])));
  for (const ack of acks) {
    if (ack.backup === undefined || ack.through === undefined) continue;
    if (!existsSync(ack.backup)) {
      if (done.has(ack.backup)) problems.push(`the acknowledged backup ${ack.backup} does not exist`);
      continue;
    }
    const report = await check(ack.backup);
    if (report.errors > 0) problems.push(`backup ${ack.backup}: ${JSON.stringify(report.problems.slice(0, 2))}`);
    const backup = await FileLog.open<TortureValue>(ack.backup, { readonly: true });
    try {
      for (const [offset, placed] of expected) {
        if (offset > ack.through || offset < backup.firstOffset) continue;
        const value = await backup.get(offset).catch((error: unknown) => String(error));
        if (typeof value === 'string' || value.b !== placed.b || value.i !== placed.i) {
          problems.push(`backup ${ack.backup} lacks record ${placed.i} of batch ${placed.b} at ${offset}: ${JSON.stringify(value).slice(0, 80)}`);
        }
      }
    } finally {
      await backup.close();
    }
    rmSync(ack.backup, { recursive: true, force: true });
  }
  return problems;
}

/** The log goes on: a batch of two appended after the last record reads back; the model becomes the log. */
async function appendNext(scenario: Scenario, model: Model, records: readonly LogRecord<TortureValue>[]): Promise<string[]> {
  const problems: string[] = [];
  const log = await FileLog.open<TortureValue>(model.dir, { durability: scenario.durability, segmentBytesMax: tortureSegmentBytesMax });
  try {
    const last = records[records.length - 1];
    const b = Math.max(model.nextBatch, (last?.value.b ?? -1) + 1);
    const values = [valueOf(b, 0, 2), valueOf(b, 1, 2)];
    const key = keyOf(scenario, b, 2);
    const offsets = await log.append(values, key === undefined ? {} : { key });
    if (last !== undefined && (offsets[0] as number) <= last.offset) problems.push(`the next append landed at ${offsets[0]}, before the last record ${last.offset}`);
    if ((await log.get(offsets[1] as number)).i !== 1) problems.push('the next append does not read back');
    if (log.since !== offsets[1]) problems.push(`since is ${log.since} after the next append at ${offsets[1]}`);
    model.records = new Map(records.map((record) => [record.offset, { b: record.value.b, i: record.value.i, n: record.value.n }]));
    for (const [i, offset] of offsets.entries()) model.records.set(offset, { b, i, n: 2 });
    model.nextBatch = b + 1;
  } catch (error) {
    problems.push(`the next append failed: ${String(error)}`);
  } finally {
    await log.close();
  }
  return problems;
}
