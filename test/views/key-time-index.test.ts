import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import type { LogRecord } from '../../src/log/log.js';
import { keyIndex, KeyIndexView, timeIndex, type TimeIndexView } from '../../src/views/key-time-index.js';
import { message, viewSuite, type Message } from '../conformance/view-suite.js';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory();
let count = 0;
const directory = (): string => join(root, `db-${count++}`);

async function offsetsOf(records: AsyncIterable<{ offset: number }>): Promise<number[]> {
  const offsets: number[] = [];
  for await (const record of records) offsets.push(record.offset);
  return offsets;
}

/** Counts the records applied (reads call `keyOf` too, to verify the entries they return). */
class CountingKeyIndexView extends KeyIndexView<Message> {
  readonly #calls: { records: number };
  constructor(version: number, calls: { records: number }) {
    super(version, { keyOf: (value) => value.author });
    this.#calls = calls;
  }
  override apply(records: readonly LogRecord<Message>[]): Promise<void> {
    this.#calls.records += records.length;
    return super.apply(records);
  }
}

viewSuite({
  name: 'key index (by author through keyOf), native log',
  directory,
  view: {
    create: (version: number, calls: { records: number }): KeyIndexView<Message> => new CountingKeyIndexView(version, calls),
    read: async (view: KeyIndexView<Message>, options?: object) => {
      const last: Record<string, number | undefined> = {};
      for (let a = 0; a < 7; a++) last[`@author-${a}`] = (await view.last(`@author-${a}`, options))?.offset;
      return last;
    },
    expected: (records: readonly LogRecord<Message>[]) => {
      const last: Record<string, number | undefined> = {};
      for (let a = 0; a < 7; a++) last[`@author-${a}`] = undefined;
      for (const record of records) last[record.value.author] = record.offset;
      return last;
    },
  },
});

viewSuite({
  name: 'time index, native log',
  directory,
  view: {
    create: (version: number, calls: { records: number }): TimeIndexView<Message> => {
      const view = timeIndex<Message>(version);
      const apply = view.apply.bind(view);
      view.apply = (records) => {
        calls.records += records.length;
        return apply(records);
      };
      return view;
    },
    read: async (view: TimeIndexView<Message>, options?: object) => offsetsOf(view.between(0, Number.MAX_SAFE_INTEGER, options)),
    expected: (records: readonly LogRecord<Message>[]) =>
      [...records].sort((a, b) => a.time - b.time || a.offset - b.offset).map((record) => record.offset),
  },
});

describe('key index', () => {
  it('finds the last record of a record key, and all of them from an offset', async () => {
    await using db = await Sluice.open<Message>(directory());
    const byKey = db.use('byKey', keyIndex<Message>(1));
    const a1 = await db.append(message(1), { key: 'alice' });
    await db.append(message(2), { key: 'bob' });
    const a2 = await db.append(message(3), { key: new Uint8Array(Buffer.from('alice')) });
    await db.append(message(4));
    const last = await byKey.last('alice');
    assert.equal(last?.offset, a2);
    assert.deepEqual(last?.value, message(3));
    assert.equal(Buffer.from(last?.key ?? []).toString(), 'alice');
    assert.equal(await byKey.last('carol'), undefined);
    assert.deepEqual(await offsetsOf(byKey.records('alice')), [a1, a2]);
    assert.deepEqual(await offsetsOf(byKey.records('alice', a1 + 1)), [a2]);
    assert.throws(() => byKey.records('alice', -1), RangeError);
  });

  it('holds keys of any length the log takes (long ones by their digest)', async () => {
    await using db = await Sluice.open<Message>(directory());
    const byKey = db.use('byKey', keyIndex<Message>(1));
    const long = (fill: string, bytes: number): string => fill.repeat(bytes);
    const offsets: number[] = [];
    for (const bytes of [512, 513, 4000, 65_535]) offsets.push(await db.append(message(bytes), { key: long('x', bytes) }));
    const other = await db.append(message(0), { key: `${long('x', 4000)}y` });
    for (const [i, bytes] of [512, 513, 4000, 65_535].entries()) {
      assert.equal((await byKey.last(long('x', bytes)))?.offset, offsets[i], `a ${bytes}-byte key`);
    }
    assert.deepEqual(await offsetsOf(byKey.records(`${long('x', 4000)}y`)), [other]);
    assert.equal(await byKey.last(long('x', 5000)), undefined);
    assert.equal(db.viewStatus('byKey').status, 'live');
  });
});

describe('time index', () => {
  it('finds the first record at or after a time, and the records between two times', async () => {
    await using db = await Sluice.open<Message>(directory());
    const byTime = db.use('byTime', timeIndex<Message>(1));
    const at100 = await db.append(message(1), { time: 100 });
    const at200 = await db.append([message(2), message(3)], { time: 200 });
    const at150 = await db.append(message(4), { time: 150 });
    assert.equal((await byTime.firstAtOrAfter(120))?.offset, at150);
    assert.equal((await byTime.firstAtOrAfter(0))?.offset, at100);
    assert.equal(await byTime.firstAtOrAfter(201), undefined);
    assert.deepEqual(await offsetsOf(byTime.between(100, 200)), [at100, at150]);
    assert.deepEqual(await offsetsOf(byTime.between(150, 201)), [at150, ...at200]);
    assert.throws(() => byTime.between(-1, 5), RangeError);
  });
});
