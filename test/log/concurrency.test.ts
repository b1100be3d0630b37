/**
 * Concurrency, on real files and processes:
 * - writers racing: four processes open the same new directory for writing at the same moment, and six take over
 *   a stale lock at the same moment; never do two hold it at once, the others fail with `LOCKED` and change
 *   nothing (the log holds the holders' records only). This found two writers getting in at once when the lock
 *   was created empty and written after (F-90);
 * - readers alongside a writer: four reader processes follow a log (read-only, live) while this process appends
 *   batches; each sees every record in order, intact, and after any number of them a prefix of whole batches;
 * - concurrent appends in one process: many async loops append singles and batches without waiting for each
 *   other, in each durability; offsets increase strictly in call order, none is lost, all read back after a reopen;
 * - `close()` during appends, syncs, gets and live streams (of the log and of a database's views): every pending
 *   promise settles (an append either resolved and is in the log after a reopen, or failed with `LOG_CLOSED`),
 *   streams end, and nothing is left as an unhandled rejection.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import { lockFileName } from '../../src/log/file/directory-lock.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { reduce } from '../../src/views/reduce.js';
import { collect } from '../conformance/log-suite.js';
import { mulberry32, temporaryDirectory } from '../helpers.js';

const fileLogModule = new URL('../../src/log/file/file-log.js', import.meta.url).href;

interface Value {
  readonly n: number;
  readonly b: number;
  readonly i: number;
  readonly size: number;
  readonly p: string;
}

const valueOf = (n: number, b: number, i: number, size: number): Value => ({ n, b, i, size, p: 'c'.repeat(Math.abs(n * 37) % 200) });

/** Runs `script` (an ES module's source) in a child; resolves to its stdout once it exits with status 0. */
async function runChild(script: string, env: Record<string, string> = {}): Promise<string> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (data: string) => (stdout += data));
  child.stderr.setEncoding('utf8').on('data', (data: string) => (stderr += data));
  const [code] = (await once(child, 'close')) as [number | null];
  assert.equal(code, 0, `the child failed: ${stderr}`);
  return stdout;
}

const segmentNames = (dir: string): string[] => readdirSync(dir).filter((name) => name.endsWith('.seg')).sort();

describe('concurrency', () => {
  const root = temporaryDirectory('sluice-concurrency-');

  /**
   * Starts `writers` children that each wait for the same moment (so that a slow start does not serialise them),
   * try to open `dir` for writing, and report the interval they held the log or the code they were refused with;
   * checks that no two held it at once, that the others were refused with `LOCKED`, and that the log holds the
   * holders' records only, in turn.
   */
  async function race(dir: string, writers: number, context: string): Promise<void> {
    const script = `
      const { FileLog } = await import(${JSON.stringify(fileLogModule)});
      await new Promise((resolve) => setTimeout(resolve, Number(process.env.START_AT) - Date.now()));
      try {
        const log = await FileLog.open(process.env.DIR);
        const from = Date.now();
        await log.append({ writer: process.env.WRITER });
        await new Promise((resolve) => setTimeout(resolve, 300));
        const to = Date.now();
        await log.close();
        console.log(JSON.stringify({ held: [from, to] }));
      } catch (error) {
        console.log(JSON.stringify({ code: error.code }));
      }`;
    const startAt = String(Date.now() + 1500);
    const outcomes = await Promise.all(
      Array.from({ length: writers }, (_, writer) => runChild(script, { DIR: dir, WRITER: String(writer), START_AT: startAt })),
    );
    const results = outcomes.map((out) => JSON.parse(out) as { held?: [number, number]; code?: string });
    const where = `${context}: ${JSON.stringify(results)}`;
    const held = results.flatMap((result, writer) => (result.held === undefined ? [] : [{ writer, from: result.held[0], to: result.held[1] }]));
    assert.ok(held.length >= 1, where);
    for (const result of results) if (result.held === undefined) assert.equal(result.code, 'LOCKED', where);
    held.sort((x, y) => x.from - y.from);
    for (let k = 1; k < held.length; k++) {
      assert.ok((held[k] as { from: number }).from >= (held[k - 1] as { to: number }).to, `two writers at once: ${where}`);
    }
    await using log = await FileLog.open<{ writer: string }>(dir);
    const records: string[] = [];
    for await (const record of log.stream()) records.push(record.value.writer);
    assert.deepEqual(records, held.map(({ writer }) => String(writer)), `only the writers that held it wrote, in turn: ${where}`);
  }

  it('four processes racing to open one new log for writing: never two writers at once (three rounds)', async () => {
    // The window it looks for is narrow, so three rounds (with the lock created empty and written after, one round
    // in two or three let two writers in at once).
    for (let round = 0; round < 3; round++) await race(join(root, `race-${round}`), 4, `round ${round}`);
  });

  it('six processes racing to take over a stale lock: never two writers at once (three rounds)', async () => {
    // Each takes the lock for stale at about the same moment; the takeovers go one at a time under the guard
    // (F-90), and a live lock is never moved aside (which once let a third writer in while it was away). The
    // step-by-step interleavings are in directory-lock.test.ts.
    for (let round = 0; round < 3; round++) {
      const dir = join(root, `stale-${round}`);
      await (await FileLog.open(dir)).close();
      writeFileSync(join(dir, lockFileName), '999999999:12345');
      await race(dir, 6, `round ${round}`);
      assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith(`${lockFileName}.`)), [], `round ${round}: no takeover guard or temporary lock left`);
    }
  });

  it('four reader processes follow a writer: each sees an in-order prefix of whole batches', { timeout: 60_000 }, async () => {
    const dir = join(root, 'readers');
    const total = 3000;
    const log = await FileLog.open<Value>(dir, { segmentBytesMax: 16 * 1024 });
    await log.append(valueOf(0, 0, 0, 1));
    const reader = `
      const { FileLog } = await import(${JSON.stringify(fileLogModule)});
      const total = ${total};
      const log = await FileLog.open(process.env.DIR, { readonly: true });
      let expected = 0;
      let prefixChecks = 0;
      const fail = (message) => { console.error(message); process.exit(2); };
      for await (const record of log.stream({ live: true })) {
        const { n, b, i, size, p } = record.value;
        if (n !== expected) fail('record ' + n + ' where ' + expected + ' was expected');
        if (p.length !== (n * 37) % 200 || i >= size) fail('record ' + n + ' is damaged');
        expected++;
        if (n % 97 === 0) {
          // What a fresh read sees ends with a whole batch.
          for await (const last of log.stream({ reverse: true, limit: 1 })) {
            if (last.value.i !== last.value.size - 1) fail('the log ends inside batch ' + last.value.b);
            if (last.value.n < n) fail('the end went backwards');
          }
          prefixChecks++;
        }
        if (expected === total) break;
      }
      await log.close();
      console.log(JSON.stringify({ records: expected, prefixChecks }));`;
    const readers = [0, 1, 2, 3].map(() => runChild(reader, { DIR: dir }));
    const random = mulberry32(0xc0c0);
    let n = 1;
    for (let b = 1; n < total; b++) {
      const size = Math.min(total - n, 1 + Math.floor(random() * 12));
      await log.append(Array.from({ length: size }, (_, i) => valueOf(n + i, b, i, size)));
      n += size;
      if (b % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const reports = (await Promise.all(readers)).map((out) => JSON.parse(out) as { records: number; prefixChecks: number });
    await log.close();
    for (const report of reports) {
      assert.equal(report.records, total);
      assert.ok(report.prefixChecks > 20);
    }
  });

  for (const durability of ['os', 'disk', 'buffered'] as const) {
    it(`concurrent appends in one process (durability ${durability}): offsets strictly increase in call order, none lost`, async () => {
      const dir = join(root, `appends-${durability}`);
      const log = await FileLog.open<Value>(dir, { durability, segmentBytesMax: 8192 });
      const random = mulberry32(0xa99 + durability.length);
      const calls: Array<{ values: Value[]; offsets: Promise<number[]> }> = [];
      let n = 0;
      let b = 0;
      const loops = Array.from({ length: 32 }, async () => {
        for (let step = 0; step < 40; step++) {
          const size = random() < 0.5 ? 1 : 1 + Math.floor(random() * 6);
          const values = Array.from({ length: size }, (_, i) => valueOf(n + i, b, i, size));
          n += size;
          b++;
          const offsets = size === 1 ? log.append(values[0] as Value).then((offset) => [offset]) : log.append(values);
          calls.push({ values, offsets });
          if (random() < 0.5) await offsets;
          else await Promise.resolve();
        }
      });
      await Promise.all(loops);
      const settled = await Promise.all(calls.map((call) => call.offsets));
      const flat = settled.flat();
      for (let k = 1; k < flat.length; k++) assert.ok((flat[k] as number) > (flat[k - 1] as number), `offset ${k} in call order`);
      await log.close();
      await using reopened = await FileLog.open<Value>(dir, { durability });
      const records: Value[] = [];
      for await (const record of reopened.stream()) records.push(record.value);
      assert.deepEqual(records, calls.flatMap((call) => call.values), 'every record, in call order');
      for (const [k, call] of calls.entries()) {
        assert.deepEqual(await reopened.get(settled[k]?.[0] as number), call.values[0]);
      }
    });
  }

  it('close() during appends, syncs, gets and live streams: every pending call settles', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (const durability of ['os', 'disk', 'buffered'] as const) {
        const dir = join(root, `close-${durability}`);
        const db = await Sluice.open<Value>(dir, { durability });
        const sum = db.use('sum', reduce<Value, number>(1, (total, value) => total + value.n, { initial: 0 }));
        const first = await db.append(valueOf(0, 0, 0, 1));
        const appends: Array<Promise<number>> = [];
        const others: Array<Promise<unknown>> = [];
        const streams = [0, 1, 2].map(async () => {
          const seen: number[] = [];
          try {
            for await (const record of db.log.stream({ live: true })) seen.push(record.value.n);
            return { seen, error: undefined };
          } catch (error) {
            return { seen, error };
          }
        });
        for (let n = 1; n <= 300; n++) {
          appends.push(db.append(valueOf(n, n, 0, 1)));
          // Observed at once: each must settle, with a value or an error that has a code.
          if (n % 50 === 0) others.push(...[db.log.sync(), db.get(first), sum.get()].map((promise) => promise.then(() => undefined, (error: unknown) => error)));
        }
        const closing = db.close();
        assert.throws(() => db.append(valueOf(-1, -1, 0, 1)), (error) => isSluiceError(error, 'LOG_CLOSED'), 'closing: appends refused');
        const outcomes = await Promise.allSettled(appends);
        for (const error of await Promise.all(others)) {
          if (error === undefined) continue;
          assert.ok(isSluiceError(error, 'LOG_CLOSED') || isSluiceError(error, 'VIEW_CLOSED'), (error as Error).message);
        }
        await closing;
        await assert.rejects(db.log.append(valueOf(-1, -1, 0, 1)), (error) => isSluiceError(error, 'LOG_CLOSED'));
        await assert.rejects(db.log.get(first), (error) => isSluiceError(error, 'LOG_CLOSED'));
        for (const outcome of outcomes) {
          if (outcome.status === 'rejected') assert.ok(isSluiceError(outcome.reason, 'LOG_CLOSED'), String(outcome.reason));
        }
        for (const stream of await Promise.all(streams)) {
          if (stream.error !== undefined) assert.ok(isSluiceError(stream.error, 'LOG_CLOSED'), (stream.error as Error).message);
          assert.deepEqual(stream.seen, stream.seen.map((_, k) => k), 'a live stream saw records in order');
        }
        await using reopened = await FileLog.open<Value>(dir);
        const stored = new Set<number>();
        for await (const record of reopened.stream()) stored.add(record.offset);
        for (const [k, outcome] of outcomes.entries()) {
          if (outcome.status === 'fulfilled') assert.ok(stored.has(outcome.value), `resolved append ${k + 1} is in the log`);
        }
      }
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(unhandled, [], 'no unhandled rejection');
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('a reader whose writer cut away a batch it had read (a failed sync in disk durability) fails LOG_REWOUND', async () => {
    const dir = join(root, 'rewound');
    let writer = await FileLog.open<{ b: number; t: string }>(dir, { durability: 'disk' });
    await writer.append([{ b: 1, t: 'a'.repeat(50) }, { b: 1, t: 'b' }]);
    const segment = join(dir, readdirSync(dir).find((name) => name.endsWith('.seg')) as string);
    const kept = statSync(segment).size;
    await writer.append([{ b: 2, t: 'c'.repeat(70) }, { b: 2, t: 'd' }]);
    await using reader = await FileLog.open<{ b: number; t: string }>(dir, { readonly: true });
    // A reader that only gets records, never following: it must not read what now stands where batch 2 was.
    await using getter = await FileLog.open<{ b: number; t: string }>(dir, { readonly: true });
    const secondBatch = (await collect(getter.stream())).find((record) => record.value.b === 2)?.offset as number;
    const seen: number[] = [];
    const following = (async () => {
      for await (const record of reader.stream({ live: true })) seen.push(record.value.b);
    })().then(
      () => undefined,
      (error: unknown) => error,
    );
    const until = async (count: number): Promise<void> => {
      while (seen.length < count) await new Promise((resolve) => setTimeout(resolve, 10));
    };
    const third = await writer.append({ b: 3, t: 'e' });
    await until(5);
    // The deletion of the last record read rewrites it in place: not a cut, the reader follows on.
    await writer.delete(third);
    await writer.append({ b: 4, t: 'g' });
    await until(6);
    await writer.close();
    // What the writer does when the sync of its last batches fails: it truncates them away. Then it appends anew.
    truncateSync(segment, kept);
    writer = await FileLog.open(dir, { durability: 'disk' });
    for (let i = 0; i < 3; i++) await writer.append({ b: 5 + i, t: 'f'.repeat(20 + 30 * i) });
    assert.ok(isSluiceError(await following, 'LOG_REWOUND'), 'the live stream ends with LOG_REWOUND');
    assert.deepEqual(seen, [1, 1, 2, 2, 3, 4]);
    await assert.rejects(reader.get(0), (error) => isSluiceError(error, 'LOG_REWOUND'));
    await assert.rejects(getter.get(secondBatch), (error) => isSluiceError(error, 'LOG_REWOUND'));
    await assert.rejects(collect(getter.stream()), (error) => isSluiceError(error, 'LOG_REWOUND'));
    await using reopened = await FileLog.open<{ b: number; t: string }>(dir, { readonly: true });
    const now: number[] = [];
    for await (const record of reopened.stream()) now.push(record.value.b);
    assert.deepEqual(now, [1, 1, 5, 6, 7]);
    await writer.close();
  });

  it('a reader follows on when its writer re-creates the empty newest segment under a new key (F-75)', async () => {
    const dir = join(root, 'recreated');
    const first = { id: 1, key: Buffer.alloc(32, 1) };
    const second = { id: 2, key: Buffer.alloc(32, 2) };
    await (await FileLog.open(dir, { encryption: { key: first } })).close();
    await using reader = await FileLog.open<{ a: string }>(dir, { readonly: true, encryption: { key: first, oldKeys: [second] } });
    const controller = new AbortController();
    const seen: string[] = [];
    const following = (async () => {
      for await (const record of reader.stream({ live: true, signal: controller.signal })) {
        seen.push(record.value.a);
        controller.abort();
      }
    })().catch(() => undefined);
    const writer = await FileLog.open<{ a: string }>(dir, { encryption: { key: second, oldKeys: [first] } });
    await writer.append({ a: 'after the new key' });
    await writer.close();
    await following;
    assert.deepEqual(seen, ['after the new key']);
  });

  it('a reader that sees its writer\'s next segment before the end of the one it follows does not take it for a trim', async () => {
    // What a reader can meet: it looked at the segment it follows while the writer was writing its last batch, and
    // the writer has sealed it and made the next segment since. The newer segment must not read as a trim.
    const dir = join(root, 'next-before-end');
    const writer = await FileLog.open<{ n: number; p: string }>(dir, { segmentBytesMax: 4096 });
    for (let n = 0; segmentNames(dir).length < 2; n += 5) {
      await writer.append(Array.from({ length: 5 }, (_, i) => ({ n: n + i, p: 'x'.repeat(60) })));
    }
    const written = await collect(writer.stream());
    await writer.close();
    const [sealed, newest] = segmentNames(dir).map((name) => join(dir, name)) as [string, string];
    const sealedBytes = readFileSync(sealed);
    renameSync(newest, `${newest}.aside`);
    // The reader starts while the sealed segment was still the newest, its last batch half written.
    truncateSync(sealed, sealedBytes.length - 10);
    await using reader = await FileLog.open<{ n: number; p: string }>(dir, { readonly: true });
    const before = reader.since;
    // Then it looks again when the next segment exists but the end of its own is not yet in view.
    renameSync(`${newest}.aside`, newest);
    assert.deepEqual((await collect(reader.stream())).map((record) => record.offset), written.filter((record) => record.offset <= before).map((record) => record.offset));
    assert.equal(reader.firstOffset, 0);
    // Once the end of the sealed segment is in view, the reader reads every record, in both segments.
    writeFileSync(sealed, sealedBytes);
    assert.deepEqual((await collect(reader.stream())).map((record) => record.value.n), written.map((record) => record.value.n));
  });

  it('a chained reader whose last record was cut and replaced gives no chain head (LOG_REWOUND)', async () => {
    const dir = join(root, 'rewound-head');
    let writer = await FileLog.open(dir, { chain: 'sha256', durability: 'disk' });
    await writer.append([{ a: 1 }, { a: 2 }]);
    const segment = join(dir, readdirSync(dir).find((name) => name.endsWith('.seg')) as string);
    const kept = statSync(segment).size;
    await writer.append({ b: 1 });
    await writer.close();
    await using reader = await FileLog.open(dir, { readonly: true });
    const head = reader.chainHead();
    truncateSync(segment, kept);
    writer = await FileLog.open(dir, { chain: 'sha256', durability: 'disk' });
    // A record of the same size at the same offset: its link is another head.
    assert.equal(await writer.append({ b: 2 }), head.offset);
    await writer.close();
    assert.throws(() => reader.chainHead(), (error) => isSluiceError(error, 'LOG_REWOUND'));
  });
});
