import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { open as openLmdb } from 'lmdb';
import { Sluice } from '../../src/db/sluice.js';
import { MemoryLog } from '../../src/log/memory/memory-log.js';
import type { LogRecord } from '../../src/log/log.js';
import { index, IndexView, type IndexEntry } from '../../src/views/index-view.js';
import { layoutKey } from '../../src/views/view-entries.js';
import { query } from '../../src/views/query/index.js';
import { message, viewSuite, type Message } from '../conformance/view-suite.js';
import { mulberry32, temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory();
let count = 0;
const directory = (): string => join(root, `db-${count++}`);

type Entry = [string | number | ReadonlyArray<string | number>, number];

async function entries(view: IndexView<Message>, options?: object): Promise<Entry[]> {
  const found: Entry[] = [];
  for await (const entry of view.read(options)) found.push([entry.key, entry.offset]);
  return found;
}

/** Counts the records applied (not `map` calls: reads call `map` too, to verify the entries they return). */
class CountingIndexView extends IndexView<Message> {
  readonly #calls: { records: number };
  constructor(version: number, calls: { records: number }) {
    super(version, (value, record) => [value.author, record.offset]);
    this.#calls = calls;
  }
  override apply(records: readonly LogRecord<Message>[]): Promise<void> {
    this.#calls.records += records.length;
    return super.apply(records);
  }
}

/** By author, then offset: every record has its own key. */
const byAuthor = {
  create: (version: number, calls: { records: number }): IndexView<Message> => new CountingIndexView(version, calls),
  read: (view: IndexView<Message>, options?: object) => entries(view, options),
  expected: (records: readonly LogRecord<Message>[]): Entry[] =>
    records
      .map((record): Entry => [[record.value.author, record.offset], record.offset])
      .sort((a, b) => {
        const [authorA, offsetA] = a[0] as [string, number];
        const [authorB, offsetB] = b[0] as [string, number];
        return authorA < authorB ? -1 : authorA > authorB ? 1 : offsetA - offsetB;
      }),
};

viewSuite({ name: 'index (by author), native log', view: byAuthor, directory });
viewSuite({ name: 'index (by author), memory log', view: byAuthor, directory, log: () => MemoryLog.open<Message>() });

describe('index view', () => {
  it('gets by key (last record wins), reads ranges in both directions, with limits', async () => {
    await using db = await Sluice.open<Message>(directory());
    const byType = db.use('byType', index<Message>(1, (value) => value.type));
    const byN = db.use('byN', index<Message>(1, (value) => value.n));
    const offsets = await db.append(Array.from({ length: 30 }, (_, n) => message(n)));
    const post = (await byType.get('post')) as IndexEntry<Message>;
    assert.equal(post.offset, offsets[27]);
    assert.deepEqual(post.value, message(27));
    assert.equal(await byType.get('nothing'), undefined);
    const keys = async (options: object): Promise<unknown[]> => (await entries(byN, options)).map(([key]) => key);
    assert.deepEqual(await keys({ gte: 5, lt: 9 }), [5, 6, 7, 8]);
    assert.deepEqual(await keys({ gt: 5, lte: 9 }), [6, 7, 8, 9]);
    assert.deepEqual(await keys({ gt: 5, lte: 9, reverse: true }), [9, 8, 7, 6]);
    assert.deepEqual(await keys({ gte: 5, lt: 9, reverse: true }), [8, 7, 6, 5]);
    assert.deepEqual(await keys({ gte: 20, limit: 3 }), [20, 21, 22]);
    assert.deepEqual(await keys({ reverse: true, limit: 2 }), [29, 28]);
  });

  it('holds the same entries whether keys grow, fall back, repeat or grow again (appends and their refusals)', async () => {
    // Runs of growing keys go in with LMDB appends; a smaller or equal key is refused as an append and put the
    // ordinary way; after a refusal, appends are tried again some puts later. Whatever the path, the index must
    // hold every key, pointing at the last record that produced it.
    const random = mulberry32(7);
    const keys: number[] = [];
    for (let n = 0; n < 700; n++) keys.push(1000 + n); // growing
    for (let n = 0; n < 400; n++) keys.push(Math.floor(random() * 3000)); // anywhere, some repeats
    for (let n = 0; n < 300; n++) keys.push(1000 + Math.floor(random() * 700)); // overwrites of the first run
    for (let n = 0; n < 900; n++) keys.push(5000 + n); // growing again, past every key so far
    const dir = directory();
    const db = await Sluice.open<number>(dir);
    const byValue = db.use('byValue', index<number>(1, (value) => value));
    const model = new Map<number, number>();
    for (let start = 0; start < keys.length; start += 150) {
      const batch = keys.slice(start, start + 150);
      const offsets = await db.append(batch);
      batch.forEach((key, i) => model.set(key, offsets[i] as number));
    }
    const expected = [...model].sort((a, b) => a[0] - b[0]);
    const found = async (view: IndexView<number>): Promise<Array<[unknown, number]>> => {
      const all: Array<[unknown, number]> = [];
      for await (const entry of view.read()) all.push([entry.key, entry.offset]);
      return all;
    };
    assert.deepEqual(await found(byValue), expected);
    await db.close();
    // Rebuilt in one pass (batches of the index's own size), the same entries again.
    const reopened = await Sluice.open<number>(dir);
    const rebuilt = reopened.use('byValue', index<number>(2, (value) => value));
    assert.deepEqual(await found(rebuilt), expected);
    await reopened.close();
  });

  it('indexes several keys per record, none for undefined, and rejects bad keys', async () => {
    await using db = await Sluice.open<Message>(directory());
    const tags = db.use('tags', index<Message>(1, (value) => (value.type === 'post' ? [['post', value.n], ['by', value.author]] : undefined)));
    await db.append(Array.from({ length: 6 }, (_, n) => message(n)));
    assert.deepEqual((await entries(tags)).map(([key]) => key), [
      ['by', '@author-0'],
      ['by', '@author-3'],
      ['post', 0],
      ['post', 3],
    ]);
    await assert.rejects(tags.get([]), TypeError);
    await assert.rejects(tags.get([['post', 0]] as unknown as string), TypeError);
    assert.throws(() => tags.read({ gt: 1, gte: 1 }), TypeError);
  });

  it('takes the empty string as a key (sorted first), and an empty array from map as no key', async () => {
    await using db = await Sluice.open<Message>(directory());
    const failures: string[] = [];
    db.on('view-error', ({ error }) => failures.push(error.message));
    // A map whose field is empty, or which collects a record's keys into an array that stays empty.
    const byText = db.use('byText', index<Message>(1, (value) => (value.n === 0 ? '' : value.n === 1 ? [] : value.n === 2 ? [['', 'x'], ['x', '']] : 'x')));
    const offsets = await db.append([message(0), message(1), message(2), message(3)]);
    assert.deepEqual(await entries(byText), [
      ['', offsets[0]],
      [['', 'x'], offsets[2]],
      ['x', offsets[3]],
      [['x', ''], offsets[2]],
    ]);
    assert.equal((await byText.get(''))?.offset, offsets[0]);
    assert.deepEqual((await entries(byText, { gt: '', lt: 'x' })).map(([key]) => key), [['', 'x']]);
    assert.deepEqual(failures, []);
  });

  it('takes -0 from map for the key 0, alone and in arrays', async () => {
    await using db = await Sluice.open<Message>(directory());
    // -n is -0 for n = 0; JSON values never hold -0, but what map computes may.
    const negated = db.use('negated', index<Message>(1, (value) => -value.n));
    const pairs = db.use('pairs', index<Message>(1, (value) => ['n', -value.n]));
    const offsets = await db.append([message(1), message(0)]);
    assert.deepEqual(await entries(negated), [[-1, offsets[0]], [0, offsets[1]]]);
    assert.deepEqual(await entries(negated, { gte: 0, lt: 1 }), [[0, offsets[1]]]);
    assert.deepEqual(await entries(pairs, { gt: ['n', -1] }), [[['n', 0], offsets[1]]]);
    assert.equal((await negated.get(0))?.offset, offsets[1]);
    assert.equal((await negated.get(-0))?.offset, offsets[1]);
    assert.deepEqual(await entries(negated, { lte: -0 }), [[-1, offsets[0]], [0, offsets[1]]]);
  });

  it('reads live: existing entries in range, then new ones as they are indexed, until the limit', async () => {
    await using db = await Sluice.open<Message>(directory());
    const byN = db.use('byN', index<Message>(1, (value) => value.n));
    await db.append(Array.from({ length: 5 }, (_, n) => message(n)));
    const seen: number[] = [];
    const reading = (async () => {
      for await (const entry of byN.read({ gte: 3, lt: 100, live: true, limit: 5 })) seen.push(entry.key as number);
    })();
    await db.append(message(200));
    await db.append([message(50), message(1)]);
    await db.append(message(99));
    await db.append(message(7));
    await reading;
    assert.deepEqual(seen, [3, 4, 50, 99, 7]);
    assert.throws(() => byN.read({ live: true, reverse: true }), TypeError);
  });

  it('reads back keys with long strings holding U+0000…U+0004 (ordered-binary leaves them unescaped)', async () => {
    await using db = await Sluice.open<{ s: string; n: number }>(directory());
    const long = 'a'.repeat(70);
    const texts = [long + '\u0000b', long + '\u0000', long + '\u0004z', long, '\u0001' + long];
    const byText = db.use('byText', index<{ s: string; n: number }>(1, (value) => [value.s, value.n]));
    await db.append(texts.map((s, n) => ({ s, n })));
    const read: unknown[] = [];
    for await (const entry of byText.read()) read.push(entry.key);
    assert.deepEqual(read, [['\u0001' + long, 4], [long, 3], [long + '\u0000', 1], [long + '\u0000b', 0], [long + '\u0004z', 2]]);
    assert.equal((await byText.get([long + '\u0000b', 0]))?.value.n, 0);
    const ranged: unknown[] = [];
    for await (const entry of byText.read({ gt: [long + '\u0000'], lt: [long + '\u0004'] })) ranged.push(entry.key);
    assert.deepEqual(ranged, [[long + '\u0000', 1], [long + '\u0000b', 0]]);
  });

  it('hands a live read one entry for a key that map listed twice for a record, as the index holds one', async () => {
    await using db = await Sluice.open<Message>(directory());
    const tags = db.use('tags', index<Message>(1, (value) => [['t', value.n % 2], ['t', value.n % 2], ['u', value.n]]));
    await db.ready();
    const seen: unknown[] = [];
    const reading = (async () => {
      for await (const entry of tags.read({ live: true, limit: 5 })) seen.push(entry.key);
    })();
    await db.append([message(1), message(2)]);
    await db.append(message(3));
    await reading;
    assert.deepEqual(seen, [['t', 1], ['u', 1], ['t', 0], ['u', 2], ['t', 1]]);
  });

  it('takes new entries into a live read by the order of the entries it read (characters past U+FFFF last)', async () => {
    await using db = await Sluice.open<Message>(directory());
    const byText = db.use('byText', index<Message>(1, (value) => ['\uffff', '\u{1F600}', '\uffffa', 'z'][value.n % 4] as string));
    await db.append(message(0));
    await db.ready();
    const range = { gt: '\uffff', lte: '\u{1F600}' };
    const seen: string[] = [];
    const reading = (async () => {
      for await (const entry of byText.read({ ...range, live: true, limit: 3 })) seen.push(entry.key as string);
    })();
    await db.append([message(1), message(2), message(3)]);
    await db.append([message(5), message(6)]);
    await reading;
    assert.deepEqual(seen, ['\u{1F600}', '\uffffa', '\u{1F600}']);
    assert.deepEqual((await entries(byText, range)).map(([key]) => key), ['\uffffa', '\u{1F600}'], 'as a read that is not live');
  });

  it('counts a limit in entries handed out, past entries left for records the log deleted behind its back', async () => {
    await using db = await Sluice.open<Message>(directory());
    const byN = db.use('byN', index<Message>(1, (value) => value.n));
    const offsets = await db.append(Array.from({ length: 10 }, (_, n) => message(n)));
    await db.ready();
    // As a crash between the log's delete and the view's leaves it: the entries stay, the records are gone.
    await db.log.delete?.([offsets[9] as number, offsets[8] as number, offsets[2] as number]);
    const keys = async (options: object): Promise<unknown[]> => (await entries(byN, options)).map(([key]) => key);
    assert.deepEqual(await keys({ reverse: true, limit: 1 }), [7]);
    assert.deepEqual(await keys({ reverse: true, limit: 3 }), [7, 6, 5]);
    assert.deepEqual(await keys({ gte: 1, limit: 3 }), [1, 3, 4]);
    assert.deepEqual(await keys({ gte: 7, limit: 5 }), [7]);
  });

  it('reads on after a one-part array key once, though it reads back as its part (whose bytes are shorter)', async () => {
    await using db = await Sluice.open<Message>(directory());
    const byN = db.use('byN', index<Message>(1, (value) => [[value.n]]));
    const offsets = await db.append(Array.from({ length: 6 }, (_, n) => message(n)));
    await db.ready();
    // Entries left for deleted records: a limited read needs more pages, each going on after the last key read.
    await db.log.delete?.([offsets[1] as number, offsets[3] as number]);
    assert.deepEqual((await entries(byN, { limit: 3 })).map(([key]) => key), [0, 2, 4]);
    assert.deepEqual((await entries(byN, { reverse: true, limit: 3 })).map(([key]) => key), [5, 4, 2]);
  });

  it('reads on after entries of deleted records by key, not by position: appends between its pages move nothing', async () => {
    await using db = await Sluice.open<Message>(directory());
    const byN = db.use('byN', index<Message>(1, (value) => value.n));
    const offsets = await db.append(Array.from({ length: 5 }, (_, n) => message(n)));
    await db.ready();
    // Entries left for records deleted behind the view's back: a limited read needs a second page to make up for them.
    await db.log.delete?.([offsets[1] as number, offsets[2] as number]);
    const read = async (options: object, appends: Record<number, Message>): Promise<number[]> => {
      const seen: number[] = [];
      for await (const entry of byN.read(options)) {
        seen.push(entry.key as number);
        const append = appends[seen.length];
        if (append === undefined) continue;
        await db.append(append);
        await db.ready();
      }
      return seen;
    };
    // Between the first page and the second, a record whose key sorts before the second page.
    assert.deepEqual(await read({ limit: 4 }, { 1: message(-5) }), [0, 3, 4]);
    // Live: an entry indexed after the read began comes once, after those that existed, even if a page took it in.
    assert.deepEqual(await read({ gte: 0, live: true, limit: 5 }, { 1: { ...message(0), n: 4.5 }, 4: message(6) }), [0, 3, 4, 4.5, 6]);
    assert.deepEqual(await read({ lt: 4, reverse: true, limit: 3 }, { 1: { ...message(0), n: 3.5 } }), [3, 0, -5]);
  });

  it('yields each entry once in a live read across a rebuild', async () => {
    await using db = await Sluice.open<Message>(directory());
    const byN = db.use('byN', index<Message>(1, (value) => value.n));
    await db.append(Array.from({ length: 5 }, (_, n) => message(n)));
    const seen: number[] = [];
    let started!: () => void;
    const first = new Promise<void>((resolve) => (started = resolve));
    const reading = (async () => {
      for await (const entry of byN.read({ live: true, limit: 6 })) {
        seen.push(entry.key as number);
        if (seen.length === 5) started();
      }
    })();
    await first;
    // The rebuild's first batch then holds the new record too.
    const rebuilding = db.rebuild();
    await db.append(message(5));
    await rebuilding;
    await reading;
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5]);
  });

  it('ends a live read with ABORTED when its signal aborts', async () => {
    await using db = await Sluice.open<Message>(directory());
    const byN = db.use('byN', index<Message>(1, (value) => value.n));
    const controller = new AbortController();
    const reading = (async () => {
      for await (const entry of byN.read({ live: true, signal: controller.signal })) {
        if (entry.key === 2) controller.abort();
      }
    })();
    await db.append([message(1), message(2)]);
    await assert.rejects(reading, { code: 'ABORTED' });
  });

  it('drops the entries of the old version when its version changes', async () => {
    const dir = directory();
    let db = await Sluice.open<Message>(dir);
    let view = db.use('ix', index<Message>(1, (value) => value.author));
    await db.append([message(0), message(1)]);
    await entries(view);
    await db.close();
    db = await Sluice.open<Message>(dir);
    view = db.use('ix', index<Message>(2, (value) => value.type));
    assert.deepEqual((await entries(view)).map(([key]) => key), ['like', 'post']);
    await db.close();
  });

  it('rebuilds an index or query environment whose key layout is not the code\'s (one written before the layout was stored)', async () => {
    const dir = directory();
    let db = await Sluice.open<Message>(dir);
    db.use('ix', index<Message>(1, (value) => [[value.n]]));
    db.use('q', query<Message>(1, { indexes: [{ name: 'n', value: [['value', 'n']] }] }));
    await db.append(Array.from({ length: 5 }, (_, n) => message(n)));
    await db.ready();
    await db.close();
    for (const file of [join(dir, 'views', 'ix', 'index.mdb'), join(dir, 'views', 'q', 'query.mdb')]) {
      const root = openLmdb({ path: file });
      await root.openDB<number, string>({ name: 'meta' }).remove(layoutKey);
      await root.close();
    }
    const reports: string[] = [];
    db = await Sluice.open<Message>(dir);
    db.on('report', ({ message: text }) => reports.push(text));
    const view = db.use('ix', index<Message>(1, (value) => [[value.n]]));
    db.use('q', query<Message>(1, { indexes: [{ name: 'n', value: [['value', 'n']] }] }));
    assert.deepEqual((await entries(view)).map(([key]) => key), [0, 1, 2, 3, 4]);
    await db.ready();
    assert.equal(reports.filter((text) => /no key layout on disk, 2 in code: rebuilding/.test(text)).length, 2, reports.join('; '));
    await db.close();
  });

  it('syncs its commits at checkpoints: the unsynced marker (F-99) is gone after a close, kept within a boot, rebuilt after another', async () => {
    const dir = directory();
    const marker = join(dir, 'views', 'ix', 'index.mdb.unsynced');
    const reports: string[] = [];
    let db = await Sluice.open<Message>(dir);
    db.on('report', ({ message: text }) => reports.push(text));
    let view = db.use('ix', index<Message>(1, (value) => [value.author, value.n]));
    await db.append(Array.from({ length: 50 }, (_, n) => message(n)));
    assert.equal((await entries(view)).length, 50);
    await db.close();
    assert.equal(existsSync(marker), false);
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    // A process of this boot died with unsynced commits: the system still holds them, the view is kept.
    writeFileSync(marker, `${bootId}\n`);
    db = await Sluice.open<Message>(dir);
    db.on('report', ({ message: text }) => reports.push(text));
    view = db.use('ix', index<Message>(1, (value) => [value.author, value.n]));
    assert.equal((await entries(view)).length, 50);
    assert.equal(reports.length, 0, reports.join('; '));
    // Synced when opened, before anything builds on it.
    assert.equal(existsSync(marker), false);
    await db.close();
    // Another boot: the commits may be half on disk, so the view is rebuilt from the log.
    writeFileSync(marker, 'another boot\n');
    db = await Sluice.open<Message>(dir);
    db.on('report', ({ message: text }) => reports.push(text));
    view = db.use('ix', index<Message>(1, (value) => [value.author, value.n]));
    assert.equal((await entries(view)).length, 50);
    assert.equal(reports.length, 1);
    assert.match(reports[0] ?? '', /never synced.*rebuilding/);
    await db.close();
    assert.equal(existsSync(marker), false);
  });

  it('reads ranges whose bounds are longer than an LMDB key can be, as it reads short ones', async () => {
    await using db = await Sluice.open<Message>(directory());
    const byAuthor = db.use('byAuthor', index<Message>(1, (value) => value.author));
    const pairs = db.use('pairs', index<Message>(1, (value) => [value.author, value.n]));
    const offsets = await db.append(Array.from({ length: 7 }, (_, n) => message(n)));
    // Just above '@author-3' and everything it starts, just below '@author-4'; 3,000 bytes encoded.
    const long = `@author-3${'z'.repeat(2991)}`;
    const keys = async (view: IndexView<Message>, options: object): Promise<unknown[]> => (await entries(view, options)).map(([key]) => key);
    const low = ['@author-0', '@author-1', '@author-2', '@author-3'];
    const high = ['@author-4', '@author-5', '@author-6'];
    for (const lt of ['lt', 'lte']) {
      assert.deepEqual(await keys(byAuthor, { [lt]: long }), low, lt);
      assert.deepEqual(await keys(byAuthor, { [lt]: long, reverse: true }), [...low].reverse(), `${lt}, reversed`);
    }
    for (const gt of ['gt', 'gte']) {
      assert.deepEqual(await keys(byAuthor, { [gt]: long }), high, gt);
      assert.deepEqual(await keys(byAuthor, { [gt]: long, reverse: true }), [...high].reverse(), `${gt}, reversed`);
    }
    assert.deepEqual(await keys(byAuthor, { gt: '@author-1', lt: long, limit: 2 }), ['@author-2', '@author-3']);
    assert.deepEqual(await keys(pairs, { gte: ['@author-3', long], lte: ['@author-5', long] }), [['@author-4', 4], ['@author-5', 5]]);
    assert.equal(await byAuthor.get(long), undefined);
    assert.equal((await byAuthor.get('@author-3'))?.offset, offsets[3]);
    // A live read takes new entries by the same bounds.
    const seen: unknown[] = [];
    for await (const entry of byAuthor.read({ gt: '@author-2', lt: long, live: true, limit: 2 })) {
      seen.push(entry.key);
      if (seen.length === 1) await db.append({ type: 'post', author: '@author-3x', n: 7 });
    }
    assert.deepEqual(seen, ['@author-3', '@author-3x']);
  });

  it('fails the view with a RangeError naming the record when map gives a key longer than LMDB takes', async () => {
    await using db = await Sluice.open<Message>(directory());
    const failures: Array<{ error: Error; offset: number }> = [];
    db.on('view-error', (event) => failures.push(event));
    const byText = db.use('byText', index<Message>(1, (value) => (value.n === 1 ? ['x', 'y'.repeat(2000)] : value.author)));
    const offsets = await db.append([message(0), message(1)]);
    await assert.rejects(byText.get('@author-0'), { code: 'VIEW_FAILED' });
    assert.equal(failures.length, 1);
    const cause = failures[0]?.error.cause ?? failures[0]?.error;
    assert.ok(cause instanceof RangeError, inspect(cause));
    assert.match(cause.message, new RegExp(`record at offset ${offsets[1]} takes 2002 bytes, over the 1978`));
  });

  it('takes bounds and keys of any length: longer than the buffer a key is encoded into', async () => {
    await using db = await Sluice.open<Message>(directory());
    const failures: Array<{ error: Error }> = [];
    db.on('view-error', (event) => failures.push(event));
    const byAuthor = db.use('byAuthor', index<Message>(1, (value) => value.author));
    const pairs = db.use('pairs', index<Message>(1, (value) => [value.author, value.n]));
    await db.append(Array.from({ length: 3 }, (_, n) => message(n)));
    // 10,000 characters: 20,000 bytes encoded with the escapes, past any fixed scratch.
    const long = `@author-1${'\u0001'.repeat(10_000)}`;
    const keys = async (view: IndexView<Message>, options: object): Promise<unknown[]> => (await entries(view, options)).map(([key]) => key);
    assert.deepEqual(await keys(byAuthor, { lt: long }), ['@author-0', '@author-1']);
    assert.deepEqual(await keys(byAuthor, { gte: long, reverse: true }), ['@author-2']);
    assert.deepEqual(await keys(pairs, { gt: ['@author-1', long] }), [['@author-2', 2]]);
    assert.equal(await byAuthor.get(long), undefined);
    for await (const entry of byAuthor.read({ gt: long, live: true, limit: 1 })) assert.equal(entry.key, '@author-2');
    // A key from map that long fails the view as a shorter one over LMDB's limit does: naming its record.
    const byText = db.use('byText', index<Message>(1, (value) => (value.n === 1 ? long : value.author)));
    await assert.rejects(byText.get('@author-0'), { code: 'VIEW_FAILED' });
    const cause = failures[0]?.error.cause ?? failures[0]?.error;
    assert.ok(cause instanceof RangeError, inspect(cause));
    assert.match(cause.message, /the index key of the record at offset \d+ takes 20009 bytes/);
  });

  it('ends a waiting live read with VIEW_FAILED when the view fails', async () => {
    await using db = await Sluice.open<Message>(directory());
    const byN = db.use(
      'byN',
      index<Message>(1, (value) => {
        if (value.n === 13) throw new Error('unlucky');
        return value.n;
      }),
    );
    await db.append(message(1));
    const seen: unknown[] = [];
    const reading = (async () => {
      for await (const entry of byN.read({ live: true })) seen.push(entry.key);
    })();
    const failing = assert.rejects(reading, { code: 'VIEW_FAILED' });
    await db.append(message(2));
    await db.append(message(13));
    await failing;
    assert.deepEqual(seen.slice(0, 1), [1]);
  });
});

