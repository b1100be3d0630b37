#!/usr/bin/env node
/**
 * `npm start`: the main job on the embedded default. Opens (or creates) the log in `./data/feed`, appends a
 * realistic feed of social messages (posts, likes, follows from a few hundred authors) as single appends and
 * as batches, reads everything back forwards and backwards, fetches random records by offset, reopens the log,
 * and prints what it did and how fast. Run it again and the log grows: nothing is thrown away between runs.
 */
import { join } from 'node:path';
import { Sluice } from '../db/sluice.js';
import { FileLog } from '../log/file/file-log.js';
import { stat } from '../ops/stat.js';
import { index } from '../views/index-view.js';
import { reduce } from '../views/reduce.js';

interface Message {
  readonly type: 'post' | 'like' | 'follow';
  readonly author: string;
  readonly sequence: number;
  readonly timestamp: number;
  readonly text?: string;
  readonly target?: string;
}

const dir = join(process.cwd(), 'data', 'feed');
const singleCount = 20_000;
const batchCount = 200_000;
const batchSize = 100;
const getCount = 50_000;

const words = 'tide river stone sluice flow gate water mill harbour current lake rain spring delta reed'.split(' ');
const authors = Array.from({ length: 300 }, (_, i) => `@${Buffer.from(`author-${i}`).toString('base64').padEnd(43, 'A')}=.ed25519`);

/** A deterministic pseudo-random feed, so every run appends the same kind of messages. */
function message(n: number, timestamp: number): Message {
  const author = authors[(n * 7919) % authors.length] as string;
  const kind = n % 10;
  if (kind < 6) {
    const text = Array.from({ length: 8 + (n % 9) }, (_, i) => words[(n + i * 31) % words.length]).join(' ');
    return { type: 'post', author, sequence: n, timestamp, text };
  }
  const target = authors[(n * 104_729) % authors.length] as string;
  return { type: kind < 9 ? 'like' : 'follow', author, sequence: n, timestamp, target };
}

function rate(count: number, milliseconds: number): string {
  return `${Math.round((count / milliseconds) * 1000).toLocaleString('en-US')}/s`;
}

function line(label: string, detail: string): void {
  process.stdout.write(`  ${label.padEnd(34)} ${detail}\n`);
}

async function main(): Promise<void> {
  process.stdout.write(`Sluice demo: a feed log in ${dir}\n\n`);
  let started = performance.now();
  const log = await FileLog.open<Message>(dir);
  line('open', `${(performance.now() - started).toFixed(1)} ms, ${log.since < 0 ? 'new log' : `last offset ${log.since}`}`);
  const first = log.since < 0 ? 0 : (await log.getRecord(log.since)).value.sequence + 1;

  started = performance.now();
  const offsets: number[] = [];
  for (let i = 0; i < singleCount; i++) offsets.push(await log.append(message(first + i, Date.now())));
  line(`append ${singleCount.toLocaleString('en-US')} one by one`, rate(singleCount, performance.now() - started));

  started = performance.now();
  for (let i = singleCount; i < singleCount + batchCount; i += batchSize) {
    const now = Date.now();
    const batch = Array.from({ length: batchSize }, (_, j) => message(first + i + j, now));
    offsets.push(...(await log.append(batch)));
  }
  line(`append ${batchCount.toLocaleString('en-US')} in batches of ${batchSize}`, rate(batchCount, performance.now() - started));

  started = performance.now();
  const durable = await log.sync();
  line('sync (fsync)', `${(performance.now() - started).toFixed(1)} ms, durable up to offset ${durable}`);

  started = performance.now();
  let forward = 0;
  let posts = 0;
  for await (const record of log.stream()) {
    forward++;
    if (record.value.type === 'post') posts++;
  }
  line('read forwards, decoded', `${forward.toLocaleString('en-US')} records (${posts.toLocaleString('en-US')} posts), ${rate(forward, performance.now() - started)}`);

  started = performance.now();
  let backward = 0;
  let newest: Message | undefined;
  for await (const record of log.stream({ reverse: true })) {
    newest ??= record.value;
    backward++;
  }
  line('read backwards, decoded', `${backward.toLocaleString('en-US')} records, ${rate(backward, performance.now() - started)}`);

  started = performance.now();
  let seed = 20_251_121;
  for (let i = 0; i < getCount; i++) {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    await log.get(offsets[seed % offsets.length] as number);
  }
  line(`get ${getCount.toLocaleString('en-US')} random offsets`, rate(getCount, performance.now() - started));
  await log.close();

  started = performance.now();
  const reopened = await FileLog.open<Message>(dir, { readonly: true });
  const reopenMs = performance.now() - started;
  const last = await reopened.get(reopened.since);
  line('reopen (read-only) to last record', `${reopenMs.toFixed(1)} ms, sequence ${last.sequence} by ${last.author.slice(0, 12)}…`);
  await reopened.close();

  await views();

  const shape = await stat(dir);
  line('log on disk', `${shape.records.toLocaleString('en-US')} records, ${(shape.bytes / 1024 / 1024).toFixed(1)} MiB in ${shape.segments.length} segment(s), ${(shape.bytes / shape.records).toFixed(0)} bytes/record`);
  process.stdout.write(`\nNewest message: ${JSON.stringify(newest)}\n`);
  process.stdout.write(`Try: npx sluice dump ${join('data', 'feed')} --reverse --limit 3\n`);
}

/** The same log as a database with two views: each catches up on open (or resumes from its checkpoint). */
async function views(): Promise<void> {
  let started = performance.now();
  const db = await Sluice.open<Message>(dir);
  const perType = db.use(
    'per-type',
    reduce<Message, Record<string, number>, string>(1, (counts, type) => ({ ...counts, [type]: (counts[type] ?? 0) + 1 }), {
      initial: {},
      map: (message) => message.type,
    }),
  );
  const byAuthor = db.use('by-author', index<Message>(1, (message, record) => [message.author, record.offset]));
  const counts = await perType.get();
  line('view per-type (reduce), caught up', `${(performance.now() - started).toFixed(0)} ms: ${JSON.stringify(counts)}`);
  started = performance.now();
  let latest: number | undefined;
  const author = authors[42] as string;
  for await (const entry of byAuthor.read({ gte: [author, 0], lte: [author, Number.MAX_SAFE_INTEGER], reverse: true, limit: 1 })) {
    latest = entry.value.sequence;
  }
  line('view by-author (index), caught up', `${(performance.now() - started).toFixed(0)} ms: latest by ${author.slice(0, 12)}… is #${latest}`);
  started = performance.now();
  await db.append(message((await db.get(db.since)).sequence + 1, Date.now()));
  const after = await perType.get();
  line('append, then read the view', `${(performance.now() - started).toFixed(1)} ms: ${after.post ?? 0} posts (sees the append)`);
  await db.close();
}

main().catch((error: unknown) => {
  const code = (error as { code?: string }).code;
  process.stderr.write(`sluice demo: ${code ?? 'ERROR'}: ${(error as Error).message}\n`);
  process.exitCode = 1;
});
