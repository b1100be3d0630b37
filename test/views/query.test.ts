import assert from 'node:assert/strict';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { deserialize, serialize } from 'node:v8';
import { describe, it } from 'node:test';
import type { Codec } from '../../src/codec/codec.js';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import type { LogRecord } from '../../src/log/log.js';
import { MemoryLog } from '../../src/log/memory/memory-log.js';
import { QueryView, query, type Query, type QueryIndex, type QueryRecord } from '../../src/views/query/index.js';
import type { ReadOptions } from '../../src/views/view.js';
import { viewSuite, type Message } from '../conformance/view-suite.js';
import { mulberry32, temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory();
let count = 0;
const directory = (): string => join(root, `db-${count++}`);

async function collect<R>(results: AsyncIterable<R>): Promise<R[]> {
  const found: R[] = [];
  for await (const result of results) found.push(result);
  return found;
}

/** Keeps what JSON would not: NaN, the infinities, -0. */
const v8Codec: Codec<Record<string, unknown>> = {
  name: 'v8',
  encode: (value) => serialize(value),
  decode: (bytes) => deserialize(bytes) as Record<string, unknown>,
};

// ---- The shared suite: posts per author, with an index that serves the filter and without any ---------------

const postsPerAuthor: Query = {
  query: [{ $filter: { value: { type: 'post' } } }, { $reduce: { author: ['value', 'author'], posts: { $count: true } } }],
};

class CountingQueryView extends QueryView<Message> {
  readonly #calls: { records: number };
  constructor(version: number, calls: { records: number }, indexes: readonly QueryIndex[]) {
    super(version, { indexes });
    this.#calls = calls;
  }
  override apply(records: readonly LogRecord<Message>[]): Promise<void> {
    this.#calls.records += records.length;
    return super.apply(records);
  }
}

function postsPerAuthorSubject(indexes: readonly QueryIndex[]) {
  return {
    create: (version: number, calls: { records: number }) => new CountingQueryView(version, calls, indexes),
    read: (view: QueryView<Message>, options?: ReadOptions) => collect(view.read(postsPerAuthor, options)),
    expected: (records: readonly LogRecord<Message>[]) => {
      // Groups in order of first appearance in the log.
      const posts = new Map<string, number>();
      for (const { value } of records) if (value.type === 'post') posts.set(value.author, (posts.get(value.author) ?? 0) + 1);
      return [...posts].map(([author, n]) => ({ author, posts: n }));
    },
  };
}

const byTypeAuthor: QueryIndex[] = [{ name: 'type-author', value: [['value', 'type'], ['value', 'author']] }];
viewSuite({ name: 'query (posts per author, indexed), native log', view: postsPerAuthorSubject(byTypeAuthor), directory });
viewSuite({
  name: 'query (posts per author, indexed), memory log',
  view: postsPerAuthorSubject(byTypeAuthor),
  directory,
  log: () => MemoryLog.open<Message>(),
});
viewSuite({
  name: 'query (posts per author, scanning), memory log',
  view: postsPerAuthorSubject([]),
  directory,
  log: () => MemoryLog.open<Message>(),
});

// ---- Direct tests --------------------------------------------------------------------------------------------

interface Doc {
  readonly type: 'post' | 'like' | 'follow';
  readonly author?: string;
  readonly ts: number;
  readonly text: string;
  readonly meta: { readonly lang: string; readonly tags: readonly string[] };
  readonly n: number;
}

const authors = ['@alice', '@bob', '@carol', '@dave'];
const texts = ['hello', 'help', 'world', '', 'hel', 'Hello'];

function doc(n: number): Doc {
  return {
    type: (['post', 'like', 'follow'] as const)[n % 3] as Doc['type'],
    // Every tenth record has no author.
    ...(n % 10 === 9 ? {} : { author: authors[n % 4] }),
    ts: 1000 + ((n * 37) % 100),
    text: texts[n % 6] as string,
    meta: { lang: n % 2 === 0 ? 'fr' : 'en', tags: n % 4 === 0 ? ['a', 'b'] : ['a'] },
    n,
  };
}

const indexes: QueryIndex[] = [
  { name: 'type', value: [['value', 'type']] },
  { name: 'author-ts', value: [['value', 'author'], ['value', 'ts']] },
  { name: 'type-author-ts', value: [['value', 'type'], ['value', 'author'], ['value', 'ts']] },
  { name: 'text', value: [['value', 'text']] },
  { name: 'lang', value: [['value', 'meta', 'lang']] },
  { name: 'key', value: [['key']] },
];

/** A database of 60 docs (keys `k<n>` on even ones), with a query view that has the indexes and one that has none. */
async function fixture() {
  const db = await Sluice.open<Doc>(directory(), { log: await MemoryLog.open<Doc>() });
  const indexed = db.use('indexed', query<Doc>(1, { indexes }));
  const plain = db.use('plain', query<Doc>(1));
  const docs = Array.from({ length: 60 }, (_, n) => doc(n));
  await db.append(docs, { key: docs.map((_, n) => (n % 2 === 0 ? `k${n}` : undefined)) });
  const records: QueryRecord<Doc>[] = [];
  for await (const { offset, time, key, value } of db.stream()) {
    records.push({ offset, time, key: key === undefined ? undefined : Buffer.from(key).toString('utf8'), value });
  }
  /** Runs `q` on both views: the results must be the same, whichever plan ran. */
  const run = async (q: Query): Promise<unknown[]> => {
    const withIndex = await collect(indexed.read(q));
    assert.deepEqual(await collect(plain.read(q)), withIndex, `same results with and without an index: ${JSON.stringify(q)}`);
    return withIndex;
  };
  return { db, indexed, plain, records, run, [Symbol.asyncDispose]: () => db.close() };
}

const filter = (f: Record<string, unknown>): Query => ({ query: [{ $filter: f }] });

describe('query view: $filter', () => {
  it('matches equality on nested fields, record fields, arrays, and missing fields', async () => {
    await using f = await fixture();
    const expect = async (q: Query, test: (record: QueryRecord<Doc>) => boolean): Promise<void> => {
      const expected = f.records.filter(test);
      assert.ok(expected.length > 0 && expected.length < f.records.length, 'the case selects some records');
      assert.deepEqual(await f.run(q), expected, JSON.stringify(q));
    };
    await expect(filter({ value: { author: '@alice' } }), (r) => r.value.author === '@alice');
    await expect(filter({ value: { type: 'post', meta: { lang: 'en' } } }), (r) => r.value.type === 'post' && r.value.meta.lang === 'en');
    await expect(filter({ value: { meta: { tags: ['a', 'b'] } } }), (r) => r.value.meta.tags.length === 2);
    await expect(filter({ value: { author: undefined } }), (r) => r.value.author === undefined);
    await expect(filter({ key: 'k4' }), (r) => r.key === 'k4');
    await expect(filter({ offset: f.records[7]?.offset }), (r) => r.offset === f.records[7]?.offset);
    await expect(filter({ value: { text: '' } }), (r) => r.value.text === '');
    // Two filters in a row are both applied.
    await expect(
      { query: [{ $filter: { value: { type: 'like' } } }, { $filter: { value: { meta: { lang: 'fr' } } } }] },
      (r) => r.value.type === 'like' && r.value.meta.lang === 'fr',
    );
    assert.deepEqual(await f.run(filter({ value: { author: '@nobody' } })), []);
    assert.deepEqual(await f.run(filter({ value: { n: '3' } })), [], 'equality is strict: "3" is not 3');
    assert.deepEqual(await f.run(filter({ value: { meta: { tags: ['a', 'b', 'c'] } } })), [], 'arrays match by length too');
  });

  it('matches ranges on numbers and strings, never across types', async () => {
    await using f = await fixture();
    const ts = (r: QueryRecord<Doc>): number => r.value.ts;
    const cases: Array<[Record<string, unknown>, (r: QueryRecord<Doc>) => boolean]> = [
      [{ value: { ts: { $gte: 1020, $lt: 1050 } } }, (r) => ts(r) >= 1020 && ts(r) < 1050],
      [{ value: { ts: { $gt: 1020, $lte: 1050 } } }, (r) => ts(r) > 1020 && ts(r) <= 1050],
      [{ value: { ts: { $gt: 1090 } } }, (r) => ts(r) > 1090],
      [{ value: { author: '@bob', ts: { $lt: 1040 } } }, (r) => r.value.author === '@bob' && ts(r) < 1040],
      [{ value: { author: { $gt: '@alice', $lte: '@carol' } } }, (r) => r.value.author === '@bob' || r.value.author === '@carol'],
      [{ value: { type: 'post', author: { $gte: '@c' } } }, (r) => r.value.type === 'post' && (r.value.author ?? '') >= '@c'],
      [{ value: { text: { $lt: 'help' } } }, (r) => r.value.text < 'help'],
      [{ time: { $gte: 0 } }, () => true],
    ];
    for (const [f1, test] of cases) assert.deepEqual(await f.run(filter(f1)), f.records.filter(test), JSON.stringify(f1));
    assert.deepEqual(await f.run(filter({ value: { ts: { $lt: 'z' } } })), [], 'a string range never matches a number');
    assert.deepEqual(await f.run(filter({ value: { author: { $gt: 0 } } })), [], 'a number range never matches a string');
  });

  it('matches prefixes', async () => {
    await using f = await fixture();
    assert.deepEqual(await f.run(filter({ value: { text: { $prefix: 'hel' } } })), f.records.filter((r) => r.value.text.startsWith('hel')));
    assert.deepEqual(await f.run(filter({ value: { text: { $prefix: '' } } })), f.records, 'the empty prefix: every string');
    assert.deepEqual(
      await f.run(filter({ value: { type: 'like', author: { $prefix: '@c' } } })),
      f.records.filter((r) => r.value.type === 'like' && r.value.author === '@carol'),
    );
    assert.deepEqual(await f.run(filter({ value: { n: { $prefix: '1' } } })), [], 'a prefix never matches a number');
  });
});

describe('query view: $map, $reduce, $sort', () => {
  it('maps by path, by an object of paths (nested), and by true', async () => {
    await using f = await fixture();
    const posts = f.records.filter((r) => r.value.type === 'post');
    const q = (map: unknown): Query => ({ query: [{ $filter: { value: { type: 'post' } } }, { $map: map } as never] });
    assert.deepEqual(await f.run(q(['value', 'n'])), posts.map((r) => r.value.n));
    assert.deepEqual(await f.run(q(true)), posts);
    assert.deepEqual(
      await f.run(q({ who: ['value', 'author'], at: { ts: ['value', 'ts'], offset: ['offset'] } })),
      posts.map((r) => ({ ...(r.value.author === undefined ? {} : { who: r.value.author }), at: { ts: r.value.ts, offset: r.offset } })),
      'an object map leaves out what is missing',
    );
    assert.deepEqual(
      await f.run(q(['value', 'author'])),
      posts.filter((r) => r.value.author !== undefined).map((r) => r.value.author),
      'a path that leads nowhere drops the item',
    );
    assert.deepEqual(await f.run({ query: [{ $map: ['value', 'meta', 'tags', 1] }] }), f.records.filter((r) => r.value.meta.tags.length > 1).map(() => 'b'));
  });

  it('reduces with every reducer, without and with grouping', async () => {
    await using f = await fixture();
    const posts = f.records.filter((r) => r.value.type === 'post');
    const q = (reduce: unknown): Query => ({ query: [{ $filter: { value: { type: 'post' } } }, { $reduce: reduce } as never] });
    const tsOf = posts.map((r) => r.value.ts);
    assert.deepEqual(await f.run(q({ $count: true })), [posts.length]);
    assert.deepEqual(await f.run(q({ $sum: ['value', 'ts'] })), [tsOf.reduce((a, b) => a + b, 0)]);
    assert.deepEqual(await f.run(q({ $min: ['value', 'ts'] })), [Math.min(...tsOf)]);
    assert.deepEqual(await f.run(q({ $max: ['value', 'ts'] })), [Math.max(...tsOf)]);
    assert.deepEqual(await f.run(q({ $max: ['value', 'author'] })), ['@dave'], 'strings compare too');
    assert.deepEqual(await f.run(q({ $collect: ['value', 'n'] })), [posts.map((r) => r.value.n)]);
    // Grouped: one result per group, in order of first appearance, with group fields and several reducers.
    const groups = new Map<string | undefined, QueryRecord<Doc>[]>();
    for (const r of posts) groups.set(r.value.author, [...(groups.get(r.value.author) ?? []), r]);
    const grouped = await f.run(
      q({
        author: ['value', 'author'],
        stats: { count: { $count: true }, sum: { $sum: ['value', 'ts'] }, min: { $min: ['value', 'ts'] } },
        max: { $max: ['value', 'ts'] },
        ns: { $collect: ['value', 'n'] },
      }),
    );
    assert.deepEqual(
      grouped,
      [...groups].map(([author, rs]) => ({
        ...(author === undefined ? {} : { author }),
        stats: {
          count: rs.length,
          sum: rs.reduce((sum, r) => sum + r.value.ts, 0),
          min: Math.min(...rs.map((r) => r.value.ts)),
        },
        max: Math.max(...rs.map((r) => r.value.ts)),
        ns: rs.map((r) => r.value.n),
      })),
    );
    assert.ok(groups.has(undefined), 'records without the group field form their own group');
    // Two group fields.
    const pairs = await f.run({ query: [{ $reduce: { type: ['value', 'type'], lang: ['value', 'meta', 'lang'], n: { $count: true } } }] });
    assert.equal(pairs.length, 6);
    assert.equal((pairs as Array<{ n: number }>).reduce((sum, pair) => sum + pair.n, 0), f.records.length);
    // Over nothing: a count is 0, an ungrouped object has its count, a minimum has no result, groups none.
    const none = (reduce: unknown): Query => ({ query: [{ $filter: { value: { type: 'nothing' } } }, { $reduce: reduce } as never] });
    assert.deepEqual(await f.run(none({ $count: true })), [0]);
    assert.deepEqual(await f.run(none({ n: { $count: true }, low: { $min: ['value', 'ts'] } })), [{ n: 0 }]);
    assert.deepEqual(await f.run(none({ $min: ['value', 'ts'] })), []);
    assert.deepEqual(await f.run(none({ $collect: ['value', 'ts'] })), [[]]);
    assert.deepEqual(await f.run(none({ author: ['value', 'author'], n: { $count: true } })), []);
  });

  it('sorts ascending and descending, stable, missing values last', async () => {
    await using f = await fixture();
    const byTs = (direction: number) => (a: QueryRecord<Doc>, b: QueryRecord<Doc>) => direction * (a.value.ts - b.value.ts);
    const ns = (rs: readonly QueryRecord<Doc>[]): number[] => rs.map((r) => r.value.n);
    const sorted = async (sort: unknown): Promise<number[]> => (await f.run({ query: [{ $sort: sort } as never, { $map: ['value', 'n'] }] })) as number[];
    assert.deepEqual(await sorted(['value', 'ts']), ns([...f.records].sort(byTs(1))));
    assert.deepEqual(await sorted([['value', 'ts'], 'asc']), ns([...f.records].sort(byTs(1))));
    assert.deepEqual(await sorted([['value', 'ts'], 'desc']), ns([...f.records].sort(byTs(-1))));
    const authorOrder = (r: QueryRecord<Doc>): string => r.value.author ?? '\uffff';
    const byAuthor = [...f.records].sort((a, b) => (authorOrder(a) < authorOrder(b) ? -1 : authorOrder(a) > authorOrder(b) ? 1 : 0));
    assert.deepEqual(await sorted(['value', 'author']), ns(byAuthor), 'stable, and the records without an author last');
    const desc = await sorted([['value', 'author'], 'desc']);
    assert.deepEqual(desc.slice(-6), ns(f.records.filter((r) => r.value.author === undefined)), 'missing last in descending order too');
    // After a reduce: sort the groups.
    const counts = await f.run({
      query: [{ $reduce: { author: ['value', 'author'], n: { $count: true } } }, { $sort: [['n'], 'desc'] }, { $map: ['n'] }],
    });
    assert.deepEqual(counts, [...(counts as number[])].sort((a, b) => b - a));
  });

  it('limits and reverses', async () => {
    await using f = await fixture();
    const likes = f.records.filter((r) => r.value.type === 'like');
    const likesQuery = { query: [{ $filter: { value: { type: 'like' } } }] };
    assert.deepEqual(await f.run({ ...likesQuery, limit: 3 }), likes.slice(0, 3));
    assert.deepEqual(await f.run({ ...likesQuery, reverse: true }), [...likes].reverse());
    assert.deepEqual(await f.run({ ...likesQuery, reverse: true, limit: 2 }), [...likes].reverse().slice(0, 2));
    assert.deepEqual(await f.run({ ...likesQuery, limit: 0 }), []);
    assert.deepEqual(await f.run({ limit: 4 }), f.records.slice(0, 4), 'no stages: the records themselves');
    const firstAuthors = await f.run({ query: [{ $reduce: { author: ['value', 'author'], n: { $count: true } } }], reverse: true, limit: 2 });
    assert.deepEqual(
      (firstAuthors as Array<{ author: string }>).map((group) => group.author),
      [f.records.at(-1)?.value.author, f.records.at(-2)?.value.author],
      'reverse reads newest first: groups appear in that order',
    );
  });
});

describe('query view: plans', () => {
  it('explains which index serves a filter, and scans when none fits', async () => {
    const view = query<Doc>(1, { indexes });
    const plan = (f: Record<string, unknown>) => view.explain(filter(f));
    assert.deepEqual(plan({ value: { type: 'post' } }), { index: 'type', range: { eq: ['post'] }, scan: false }, 'ties: the first declared');
    assert.deepEqual(plan({ value: { type: 'post', author: '@a' } }), { index: 'type-author-ts', range: { eq: ['post', '@a'] }, scan: false });
    assert.deepEqual(plan({ value: { author: '@a', ts: { $gte: 5, $lt: 9 } } }), {
      index: 'author-ts',
      range: { eq: ['@a'], gte: 5, lt: 9 },
      scan: false,
    });
    assert.deepEqual(plan({ value: { type: 'post', author: '@a', ts: { $gt: 5 } } }), {
      index: 'type-author-ts',
      range: { eq: ['post', '@a'], gt: 5 },
      scan: false,
    });
    assert.deepEqual(plan({ value: { author: '@a' } }), { index: 'author-ts', range: { eq: ['@a'] }, scan: false });
    assert.deepEqual(plan({ value: { text: { $prefix: 'he' } } }), { index: 'text', range: { eq: [], prefix: 'he' }, scan: false });
    assert.deepEqual(plan({ value: { type: { $prefix: 'p' }, author: '@a' } }), { index: 'author-ts', range: { eq: ['@a'] }, scan: false }, 'an equality beats a prefix');
    assert.deepEqual(plan({ value: { meta: { lang: 'en' } } }), { index: 'lang', range: { eq: ['en'] }, scan: false });
    const long = 'a long text, longer than the 31 code points an index key keeps of it';
    assert.deepEqual(plan({ value: { text: long } }), { index: 'text', range: { eq: [long] }, scan: false }, 'as the filter gives it');
    assert.deepEqual(plan({ key: 'k2' }), { index: 'key', range: { eq: ['k2'] }, scan: false });
    const scan = { index: null, range: null, scan: true };
    assert.deepEqual(plan({ value: { ts: { $gt: 3 } } }), scan, 'ts leads no index');
    assert.deepEqual(plan({ value: { n: 3 } }), scan);
    assert.deepEqual(plan({ value: { type: null } }), scan, 'null is not indexed');
    assert.deepEqual(plan({ value: { meta: { tags: ['a'] } } }), scan);
    assert.deepEqual(plan({}), scan);
    assert.deepEqual(view.explain({}), scan);
    assert.deepEqual(view.explain({ query: [{ $map: true }, { $filter: { value: { type: 'post' } } }] }), scan, 'only leading filters see records');
    assert.deepEqual(
      view.explain({ query: [{ $filter: { value: { n: 1 } } }, { $filter: { value: { type: 'post' } } }] }).index,
      'type',
      'every leading filter is considered',
    );
    // `text` and `lang` tie (one field fixed each): the index declared first wins, whichever filter fixes it.
    for (const filters of [[{ value: { meta: { lang: 'en' } } }, { value: { text: 'hello' } }], [{ value: { text: 'hello' } }, { value: { meta: { lang: 'en' } } }]]) {
      assert.equal(view.explain({ query: filters.map(($filter) => ({ $filter })) }).index, 'text', `ties across filters: ${JSON.stringify(filters)}`);
    }
    assert.deepEqual(query<Doc>(1).explain(filter({ value: { type: 'post' } })), scan, 'no indexes: always a scan');
  });

  it('gives the same results with and without an index, on strings that stress the key encoding', async () => {
    // Strings the index cuts (over 31 code points), orders by code point (pairs above U+E000), escapes
    // (control characters), or that hold lone surrogates; numbers of both signs; values of other types.
    const pieces = ['', 'a', 'b', 'ab', '\x00', '\x03', '\x1b', '\x1c', 'é', '\ud7ff', '\ue000', '\uffff', '😀', '\ud83d', '\ude00', 'x'.repeat(29), 'y'.repeat(62)];
    const random = mulberry32(7);
    const pick = <V>(list: readonly V[]): V => list[Math.floor(random() * list.length)] as V;
    // Around the cut: a pair, a lone high surrogate or U+E000 right at the 31st code point.
    const edges = ['😀x', '\ue000', '\ud83d', '\ud83dx', ''].map((end) => 'z'.repeat(30) + end);
    const text = (): string =>
      random() < 0.1 ? pick(edges) : Array.from({ length: Math.floor(random() * 4) }, () => pick(pieces)).join('');
    const scalar = (): unknown => pick([() => text(), () => pick([-5, -0, 0, 0.5, 3, 1e9]), () => pick([true, false, null]), () => undefined])();
    const values = Array.from({ length: 300 }, () => ({ s: text(), x: scalar(), y: scalar() }));
    const db = await Sluice.open<Record<string, unknown>>(directory(), { log: await MemoryLog.open() });
    const stress: QueryIndex[] = [
      { name: 's', value: [['value', 's']] },
      { name: 'x-s', value: [['value', 'x'], ['value', 's']] },
      { name: 'y-x', value: [['value', 'y'], ['value', 'x']] },
    ];
    const indexed = db.use('indexed', query<Record<string, unknown>>(1, { indexes: stress }));
    const plain = db.use('plain', query<Record<string, unknown>>(1));
    // JSON drops undefined fields: those records miss the field.
    await db.append(values);
    const bound = (): unknown => pick([() => text(), () => pick([-5, -0, 0, 0.25, 3, 1e9])])();
    const constraint = (): unknown => {
      const b = bound();
      switch (Math.floor(random() * 6)) {
        case 0:
          return b;
        case 1:
          return { $prefix: text() };
        case 2:
          return { [pick(['$gt', '$gte'])]: b };
        case 3:
          return { [pick(['$lt', '$lte'])]: b };
        default: {
          const other = typeof b === 'string' ? text() : pick([-5, 0, 0.25, 3, 1e9]);
          const [low, high] = [b, other].sort() as [unknown, unknown];
          return { [pick(['$gt', '$gte'])]: low, [pick(['$lt', '$lte'])]: high };
        }
      }
    };
    let served = 0;
    for (let round = 0; round < 400; round++) {
      const value: Record<string, unknown> = {};
      for (const field of ['s', 'x', 'y']) if (random() < 0.6) value[field] = constraint();
      const q = { query: [{ $filter: { value } }, { $map: ['offset'] }] };
      if (!indexed.explain(q).scan) served++;
      assert.deepEqual(await collect(indexed.read(q)), await collect(plain.read(q)), JSON.stringify(q));
    }
    assert.ok(served > 50, `most queries used an index (${served})`);
    await db.close();
  });

  it('finds infinite numbers through an index, as the filter matches them, with a codec that keeps them', async () => {
    // JSON turns infinities into null; a structured-clone codec keeps them, and a range matches them.
    const db = await Sluice.open<Record<string, unknown>>(directory(), { log: await MemoryLog.open({ codec: v8Codec }) });
    const indexed = db.use('indexed', query<Record<string, unknown>>(1, { indexes: [{ name: 'n', value: [['value', 'n']] }, { name: 's-n', value: [['value', 's'], ['value', 'n']] }] }));
    const plain = db.use('plain', query<Record<string, unknown>>(1));
    await db.append([1, Infinity, -Infinity, Number.NaN, 10, -Number.MAX_VALUE, Number.MAX_VALUE].map((n) => ({ s: 'a', n })));
    const filters = [{ n: { $gt: 5 } }, { n: { $lt: 5 } }, { n: { $gte: -Number.MAX_VALUE } }, { s: 'a', n: { $gt: 5 } }, { s: 'a', n: { $lte: 1 } }, { n: Infinity }, { n: -Infinity }];
    for (const filter of filters) {
      const q = { query: [{ $filter: { value: filter } }, { $map: ['offset'] }] };
      assert.notEqual(indexed.explain(q).index, null, 'served by an index');
      const found = await collect(indexed.read(q));
      assert.ok(found.length > 0);
      assert.deepEqual(found, await collect(plain.read(q)), inspect(filter));
    }
    await db.close();
  });

  it('groups by value: objects whatever the order of their keys, NaN apart from null, -0 with 0', async () => {
    const db = await Sluice.open<Record<string, unknown>>(directory(), { log: await MemoryLog.open({ codec: v8Codec }) });
    const plain = db.use('plain', query<Record<string, unknown>>(1));
    await db.append([
      { at: { city: 'Oslo', zip: 1 } },
      { at: { zip: 1, city: 'Oslo' } },
      { at: { city: 'Oslo', zip: 2 } },
      { at: [{ a: 1, b: 2 }] },
      { at: [{ b: 2, a: 1 }] },
      { at: Number.NaN },
      { at: null },
      { at: Number.NaN },
      { at: 0 },
      { at: -0 },
      { at: Infinity },
    ]);
    const groups = await collect(plain.read({ query: [{ $reduce: { at: ['value', 'at'], n: { $count: true } } }] }));
    assert.deepEqual(
      groups.map((group) => (group as { n: number }).n),
      [2, 1, 2, 2, 1, 2, 1],
      inspect(groups),
    );
    await db.close();
  });

  it('groups apart values that only JSON would take for one: undefined and holes in arrays, Maps, Sets, Dates, typed arrays', async () => {
    const db = await Sluice.open<Record<string, unknown>>(directory(), { log: await MemoryLog.open({ codec: v8Codec }) });
    const plain = db.use('plain', query<Record<string, unknown>>(1));
    // eslint-disable-next-line no-sparse-arrays
    const holed = [, 1];
    const values: unknown[] = [
      [undefined, 1],
      [null, 1],
      holed,
      [],
      // eslint-disable-next-line no-sparse-arrays
      [,],
      new Map([['a', 1]]),
      new Map([['b', 2]]),
      new Map([['b', 2]]),
      new Set([1]),
      new Set([2]),
      {},
      new Date(0),
      '1970-01-01T00:00:00.000Z',
      new Date(Number.NaN),
      null,
      new Uint8Array([7]),
      { 0: 7 },
    ];
    await db.append(values.map((at) => ({ at })));
    const groups = await collect(plain.read({ query: [{ $reduce: { at: ['value', 'at'], n: { $count: true } } }] }));
    // A hole reads as undefined (as a filter takes it); every other pair is two values. The two equal Maps are one group.
    assert.deepEqual(
      groups.map((group) => (group as { n: number }).n),
      [2, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1],
      inspect(groups),
    );
    await db.close();
  });

  it('finds through a three-field index the records that miss both later fields (entry keys ending in nulls)', async () => {
    const db = await Sluice.open<Record<string, unknown>>(directory(), { log: await MemoryLog.open() });
    const indexed = db.use('indexed', query<Record<string, unknown>>(1, { indexes: [{ name: 'bca', value: [['value', 'b'], ['value', 'c'], ['value', 'a']] }] }));
    const plain = db.use('plain', query<Record<string, unknown>>(1));
    await db.append([{ b: 3 }, { b: 3, c: 'x' }, { b: 3, a: 'y' }, { b: 3, c: { o: 1 }, a: [] }, { b: 'k' }, { b: 'k', c: 1 }, { b: 'abc' }, { b: 'abc', c: 'x' }]);
    for (const filter of [{ b: 3 }, { b: { $gte: 3 } }, { b: 'k' }, { b: { $prefix: 'k' } }, { b: 'abc' }]) {
      const q = { query: [{ $filter: { value: filter } }, { $map: ['offset'] }] };
      assert.equal(indexed.explain(q).scan, false);
      const found = await collect(indexed.read(q));
      assert.deepEqual(found, await collect(plain.read(q)), JSON.stringify(filter));
      assert.ok(found.length > 0);
    }
    await db.close();
  });

  it('gives the same results with and without an index around every string edge of the key encoding', async () => {
    // Control characters (ordered-binary escapes them), code points around the surrogates (the index orders by
    // code point), lone surrogates, and the same after 30 and 62 characters (the index cuts strings at 31 code
    // points; ordered-binary encodes strings of 64 units and more differently).
    const base = ['', 'a', '\x00', '\x03', '\x04', '\x05', '\x1b', '\x1c', 'é', '\ud7ff', '\ud800', '\ud83d', '\ude00', '😀', '\ue000', '\uffff', '\u{10ffff}'];
    const heads = ['', 'z'.repeat(30), 'y'.repeat(62)];
    const strings = heads.flatMap((head) => base.map((tail) => head + tail));
    const db = await Sluice.open<{ s: string }>(directory(), { log: await MemoryLog.open() });
    const indexed = db.use('indexed', query<{ s: string }>(1, { indexes: [{ name: 's', value: [['value', 's']] }] }));
    const plain = db.use('plain', query<{ s: string }>(1));
    const tails = ['', 'a', '\x00', '😀', '\ud83d'];
    await db.append(heads.flatMap((head) => base.flatMap((a) => tails.map((b) => ({ s: head + a + b })))));
    for (const bound of strings) {
      for (const operator of ['$gt', '$gte', '$lt', '$lte', '$prefix', '$eq']) {
        const q = { query: [{ $filter: { value: { s: operator === '$eq' ? bound : { [operator]: bound } } } }, { $map: ['offset'] }] };
        assert.equal(indexed.explain(q).index, 's');
        assert.deepEqual(await collect(indexed.read(q)), await collect(plain.read(q)), JSON.stringify(q));
      }
    }
    await db.close();
  });

  it('rebuilds when the declared indexes change, and says so', async () => {
    const dir = directory();
    let db = await Sluice.open<Doc>(dir);
    let view = db.use('q', query<Doc>(1, { indexes: [{ name: 'type', value: [['value', 'type']] }] }));
    await db.append(Array.from({ length: 30 }, (_, n) => doc(n)));
    const posts = await collect(view.read(filter({ value: { type: 'post' } })));
    await db.close();
    db = await Sluice.open<Doc>(dir);
    const reports: string[] = [];
    db.on('report', (event) => reports.push(event.message));
    // Same name, another field: entries of the old declaration must not survive (they would sit in the range
    // of every string and come back as duplicates).
    view = db.use('q', query<Doc>(1, { indexes: [{ name: 'type', value: [['value', 'text']] }] }));
    assert.deepEqual(await collect(view.read(filter({ value: { type: 'post' } }))), posts);
    const everyText = filter({ value: { text: { $prefix: '' } } });
    assert.deepEqual(view.explain(everyText), { index: 'type', range: { eq: [], prefix: '' }, scan: false });
    const texts = await collect(view.read<QueryRecord<Doc>>(everyText));
    assert.deepEqual(texts.map((r) => r.value.n), Array.from({ length: 30 }, (_, n) => n));
    assert.ok(reports.some((message) => /declared indexes changed/.test(message)), reports.join('; '));
    await db.close();
  });
});

describe('query view: live', () => {
  const postNs: Query = { query: [{ $filter: { value: { type: 'post' } } }, { $map: ['value', 'n'] }] };
  const postsOf = (ns: readonly number[]): number[] => ns.filter((n) => n % 3 === 0);

  /** Takes the next `n` results of a live read (which never ends by itself). */
  async function take<R>(results: AsyncIterator<R>, n: number): Promise<R[]> {
    const found: R[] = [];
    while (found.length < n) {
      const step = await results.next();
      if (step.done === true) throw new Error(`the read ended after ${found.length} of ${n}`);
      found.push(step.value);
    }
    return found;
  }

  const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

  it('yields the existing matches, then each new matching record as it is indexed, with or without an index', async () => {
    await using f = await fixture();
    assert.equal(f.indexed.explain(postNs).index, 'type');
    const readers = [f.indexed, f.plain].map((view) => view.read<number>({ ...postNs, live: true })[Symbol.asyncIterator]());
    for (const reader of readers) assert.deepEqual(await take(reader, 20), postsOf(range(0, 60)));
    // Two batches; the records that are not posts are skipped.
    await f.db.append(range(60, 65).map(doc));
    await f.db.append(range(65, 70).map(doc));
    for (const reader of readers) assert.deepEqual(await take(reader, 4), postsOf(range(60, 70)));
    // A record that does not match is not yielded: the next result is the next post.
    await f.db.append([doc(70), doc(71)]);
    const next = readers.map((reader) => reader.next());
    await f.db.append([doc(72)]);
    for (const step of await Promise.all(next)) assert.deepEqual(step, { done: false, value: 72 });
    for (const reader of readers) await reader.return?.();
  });

  it('sees each record once when appends race with the start of the read', async () => {
    await using f = await fixture();
    for (const view of [f.indexed, f.plain]) {
      const start = 60 + (view === f.indexed ? 0 : 30);
      // The read starts (waits for the view, takes its snapshot) while batches are being appended.
      const expected = postsOf(range(0, start + 30));
      const reading = collect(view.read<number>({ ...postNs, live: true, limit: expected.length }));
      const appends = [];
      for (let n = start; n < start + 30; n += 3) appends.push(f.db.append(range(n, n + 3).map(doc)));
      await Promise.all(appends);
      assert.deepEqual(await reading, expected);
    }
  });

  it('counts limit across both phases', async () => {
    await using f = await fixture();
    const reader = f.indexed.read<number>({ ...postNs, live: true, limit: 22 })[Symbol.asyncIterator]();
    assert.deepEqual(await take(reader, 20), postsOf(range(0, 60)));
    await f.db.append(range(60, 72).map(doc));
    assert.deepEqual(await take(reader, 2), [60, 63]);
    assert.deepEqual(await reader.next(), { done: true, value: undefined }, 'the limit ends the read');
    // A limit within the existing matches never waits for new records.
    assert.deepEqual(await collect(f.plain.read({ ...postNs, live: true, limit: 3 })), [0, 3, 6]);
    assert.deepEqual(await collect(f.plain.read({ ...postNs, live: true, limit: 0 })), []);
  });

  it('ends with ABORTED when the signal aborts, and with VIEW_CLOSED when the view closes', async () => {
    await using f = await fixture();
    const controller = new AbortController();
    const reader = f.plain.read<number>({ ...postNs, live: true }, { signal: controller.signal })[Symbol.asyncIterator]();
    assert.deepEqual(await take(reader, 20), postsOf(range(0, 60)));
    const waiting = reader.next();
    controller.abort(new Error('enough'));
    await assert.rejects(waiting, (error: unknown) => isSluiceError(error, 'ABORTED') && (error.cause as Error).message === 'enough');
    assert.deepEqual(await reader.next(), { done: true, value: undefined });
    // Aborted in the first phase.
    const early = new AbortController();
    const second = f.indexed.read<number>({ ...postNs, live: true }, { signal: early.signal })[Symbol.asyncIterator]();
    assert.deepEqual(await take(second, 2), [0, 3]);
    early.abort();
    await assert.rejects(second.next(), (error: unknown) => isSluiceError(error, 'ABORTED'));
    // Closing the database ends a waiting live read.
    const third = f.indexed.read<number>({ ...postNs, live: true })[Symbol.asyncIterator]();
    assert.deepEqual(await take(third, 20), postsOf(range(0, 60)));
    // Handled from the start: the read ends while the close still syncs the view's environment.
    const pending = assert.rejects(third.next(), (error: unknown) => isSluiceError(error, 'VIEW_CLOSED'));
    await f.db.close();
    await pending;
  });

  it('refuses $reduce, $sort and reverse, saying why', () => {
    const view = query<Doc>(1, { indexes });
    const refuses = (q: Query, pattern: RegExp): void => {
      assert.throws(() => view.read(q), (error: unknown) => error instanceof TypeError && pattern.test(error.message), JSON.stringify(q));
      assert.throws(() => view.explain(q), TypeError);
    };
    refuses({ query: [{ $filter: { value: { type: 'post' } } }, { $reduce: { $count: true } }], live: true }, /query\[1\] is a \$reduce, which gives its results only after the last record/);
    refuses({ query: [{ $sort: ['value', 'ts'] }, { $map: ['value', 'n'] }], live: true }, /query\[0\] is a \$sort/);
    refuses({ ...postNs, live: true, reverse: true }, /a live query cannot be reversed/);
    // Not live: the same stages are fine.
    assert.doesNotThrow(() => view.read({ query: [{ $reduce: { $count: true } }], live: false }));
  });
});

describe('query view: validation', () => {
  const view = query<Doc>(1, { indexes });
  const rejects = (q: unknown, pattern: RegExp, type: typeof TypeError | typeof RangeError = TypeError): void => {
    assert.throws(() => view.explain(q as Query), (error: unknown) => error instanceof type && pattern.test(error.message));
    assert.throws(() => view.read(q as Query), type, 'read validates at once');
  };

  it('names unknown stages and operators', () => {
    rejects({ query: [{ $fliter: { value: {} } }] }, /unknown query stage \$fliter/);
    rejects(filter({ value: { n: { $gtt: 1 } } }), /unknown filter operator \$gtt/);
    rejects(filter({ value: { n: { $gt: 1, x: 2 } } }), /mixes operators/);
    rejects({ query: [{ $reduce: { $avg: ['value', 'n'] } }] }, /unknown reducer \$avg/);
    rejects({ query: [{ $reduce: { n: { $count: true, $sum: ['n'] } } }] }, /one reducer/);
    rejects({ query: [{ $map: { $count: true } }] }, /unknown operator \$count/);
    rejects({ query: [{ $filter: {}, $map: true }] }, /exactly one/);
    rejects({ query: [], lmit: 3 }, /unknown query option lmit/);
  });

  it('rejects a $sort or $reduce on something that is not a path, and bad arguments', () => {
    rejects({ query: [{ $sort: 'ts' }] }, /\$sort takes a path/);
    rejects({ query: [{ $sort: [['ts'], 'up'] }] }, /\$sort takes a path/);
    rejects({ query: [{ $reduce: { total: { $sum: 'ts' } } }] }, /\$sum takes a path/);
    rejects({ query: [{ $reduce: { author: 'author', n: { $count: true } } }] }, /must be a path/);
    rejects({ query: [{ $reduce: ['value', 'author'] }] }, /takes a reducer/);
    rejects({ query: [{ $reduce: { n: { $count: 1 } } }] }, /\$count must be true/);
    rejects({ query: [{ $map: 'author' }] }, /\$map takes a path/);
    rejects(filter({ value: { n: { $gt: 1, $gte: 2 } } }), /not both/);
    rejects(filter({ value: { n: { $gt: 1, $lt: 'z' } } }), /mixes a number bound with a string/);
    rejects(filter({ value: { n: { $gt: true } } }), /string or a finite number/);
    rejects(filter({ value: { n: { $prefix: 1 } } }), /must be a string/);
    rejects(filter({ value: { at: new Date(0) } }), /a filter holds/);
    rejects({ query: { $filter: {} } }, /array of stages/);
    rejects({ live: 'yes' }, /live must be a boolean/);
    rejects({ limit: -1 }, /non-negative/, RangeError);
    rejects({ limit: '3' }, /must be a number/);
  });

  it('validates index declarations', () => {
    assert.throws(() => query(1, { indexes: [{ name: 'a b', value: [['value']] }] }), /name must be/);
    assert.throws(() => query(1, { indexes: [{ name: 'a', value: [] }] }), /list of 1 to 8 paths/);
    assert.throws(() => query(1, { indexes: [{ name: 'a', value: ['value' as never] }] }), /non-empty path/);
    assert.throws(() => query(1, { indexes: [{ name: 'a', value: [['x']] }, { name: 'a', value: [['y']] }] }), /two indexes are named a/);
    assert.throws(() => query(1.5), /version must be an integer/);
  });

  it('reads only once in use by a database', async () => {
    await assert.rejects(collect(query<Doc>(1).read({})), /not in use by a database/);
  });
});

describe('query view: record keys', () => {
  it('keeps a key that starts with U+FEFF as it is, distinct from the key without it', async () => {
    await using db = await Sluice.open<{ n: number }>(temporaryDirectory());
    const view = db.use('q', query<{ n: number }>(1, { indexes: [{ name: 'key', value: [['key']] }] }));
    await db.append({ n: 1 }, { key: 'a' });
    await db.append({ n: 2 }, { key: '\ufeffa' });
    const run = async (stages: Query['query']): Promise<unknown[]> => {
      const found: unknown[] = [];
      for await (const row of view.read({ query: stages })) found.push(row);
      return found;
    };
    assert.deepEqual(await run([{ $map: ['key'] }]), ['a', '\ufeffa']);
    assert.deepEqual(await run([{ $filter: { key: 'a' } }, { $map: ['value', 'n'] }]), [1]);
    assert.deepEqual(await run([{ $filter: { key: '\ufeffa' } }, { $map: ['value', 'n'] }]), [2]);
  });
});

describe('query view: long strings', () => {
  it('finds values with long strings holding U+0000…U+0004 through an index as by a scan', async () => {
    await using db = await Sluice.open<{ s: string; n: number }>(temporaryDirectory());
    const indexed = db.use('indexed', query<{ s: string; n: number }>(1, { indexes: [{ name: 's', value: [['value', 's']] }] }));
    const scanned = db.use('scanned', query<{ s: string; n: number }>(1));
    const long = 'x'.repeat(80);
    await db.append([long + '\u0000', long + '\u0000y', long + '\u0003', long].map((s, n) => ({ s, n })));
    for (const view of [indexed, scanned]) {
      const found: unknown[] = [];
      for await (const row of view.read({ query: [{ $filter: { value: { s: { $prefix: long + '\u0000' } } } }, { $map: ['value', 'n'] }] })) found.push(row);
      assert.deepEqual(found.sort(), [0, 1]);
      const equal: unknown[] = [];
      for await (const row of view.read({ query: [{ $filter: { value: { s: long + '\u0003' } } }, { $map: ['value', 'n'] }] })) equal.push(row);
      assert.deepEqual(equal, [2]);
    }
  });
});
