import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import type { Log, LogRecord } from '../../src/log/log.js';
import type { ReadOptions, View } from '../../src/views/view.js';
import { rejectsWith } from './log-suite.js';

/** The messages every view test appends: a small social feed. */
export interface Message {
  readonly type: 'post' | 'like' | 'follow';
  readonly author: string;
  readonly n: number;
}

export function message(n: number): Message {
  const types = ['post', 'like', 'follow'] as const;
  return { type: types[n % 3] as Message['type'], author: `@author-${n % 7}`, n };
}

/** How the suite makes and reads one kind of view. */
export interface ViewUnderTest<V extends View<Message>, R> {
  /** A new view instance; `version` lets the suite test rebuilds. `calls` counts records applied. */
  create(version: number, calls: { records: number }): V;
  /** The view's main read. */
  read(view: V, options?: ReadOptions): Promise<R>;
  /** What `read` must answer after exactly these records, computed from scratch. */
  expected(records: readonly LogRecord<Message>[]): R;
  /** The view's state file, relative to its directory, for the damaged-state test (if it keeps one). */
  readonly stateFile?: string;
}

export interface ViewSuiteOptions<V extends View<Message>, R> {
  readonly name: string;
  readonly view: ViewUnderTest<V, R>;
  /** A new log for a database in `dir`, or undefined for the native log there. */
  readonly log?: (dir: string) => Promise<Log<Message>>;
  readonly directory: () => string;
}

async function all(db: Sluice<Message>): Promise<LogRecord<Message>[]> {
  const records: LogRecord<Message>[] = [];
  for await (const record of db.stream()) records.push(record);
  return records;
}

/**
 * The behaviour every view owes (the View contract and the runner's promises), run for each built-in view
 * over the memory log and the native log.
 */
export function viewSuite<V extends View<Message>, R>(options: ViewSuiteOptions<V, R>): void {
  const { view: subject } = options;
  const open = async (dir: string, version = 1, calls = { records: 0 }) => {
    const db = await Sluice.open<Message>(dir, options.log === undefined ? {} : { log: await options.log(dir) });
    const view = db.use('subject', subject.create(version, calls));
    return { db, view, calls };
  };
  const persistent = options.log === undefined;

  describe(`View conformance: ${options.name}`, () => {
    it('catches up with records appended before it was used', async () => {
      const dir = options.directory();
      const db = await Sluice.open<Message>(dir, options.log === undefined ? {} : { log: await options.log(dir) });
      await db.append(Array.from({ length: 2500 }, (_, n) => message(n)));
      const view = db.use('subject', subject.create(1, { records: 0 }));
      assert.deepEqual(await subject.read(view), subject.expected(await all(db)));
      await db.close();
    });

    it('sees every append before it, read after read', async () => {
      const { db, view } = await open(options.directory());
      for (let n = 0; n < 30; n++) {
        await (n % 4 === 0 ? db.append([message(n), message(n + 100)]) : db.append(message(n)));
        assert.deepEqual(await subject.read(view), subject.expected(await all(db)), `after append ${n}`);
      }
      await db.close();
    });

    it('answers { since: -1 } at once from what it has, and { since: N } once it reached N', async () => {
      const { db, view } = await open(options.directory());
      const offsets = await db.append(Array.from({ length: 10 }, (_, n) => message(n)));
      await subject.read(view, { since: -1 });
      const records = await all(db);
      const upTo = records.filter((record) => record.offset <= (offsets[4] as number));
      const answer = await subject.read(view, { since: offsets[4] as number });
      // It may have gone further than asked, never less far.
      assert.ok(
        JSON.stringify(answer) === JSON.stringify(subject.expected(upTo)) ||
          JSON.stringify(answer) === JSON.stringify(subject.expected(records)),
      );
      await db.close();
    });

    it('keeps appends free of views: appends resolve while a view is stuck', async () => {
      const dir = options.directory();
      let release: () => void = () => undefined;
      const blocked = new Promise<void>((resolve) => (release = resolve));
      const stuck: View<Message> = {
        version: 1,
        open: () => Promise.resolve(-1),
        apply: () => blocked,
        checkpoint: () => Promise.resolve(),
        clear: () => Promise.resolve(),
        close: () => Promise.resolve(),
      };
      const db = await Sluice.open<Message>(dir, options.log === undefined ? {} : { log: await options.log(dir) });
      db.use('stuck', stuck);
      for (let n = 0; n < 20; n++) await db.append(message(n));
      assert.equal(db.viewStatus('stuck').since, -1, 'the view has not finished its first batch');
      release();
      await db.ready('stuck');
      assert.equal(db.viewStatus('stuck').since, db.since);
      await db.close();
    });

    it('fails pending reads with VIEW_CLOSED when the database closes', async () => {
      const dir = options.directory();
      const db = await Sluice.open<Message>(dir, options.log === undefined ? {} : { log: await options.log(dir) });
      let release: () => void = () => undefined;
      let entered: () => void = () => undefined;
      const applying = new Promise<void>((resolve) => (entered = resolve));
      const stuck: View<Message> = {
        version: 1,
        open: () => Promise.resolve(-1),
        apply: () => {
          entered();
          return new Promise<void>((resolve) => (release = resolve));
        },
        checkpoint: () => Promise.resolve(),
        clear: () => Promise.resolve(),
        close: () => Promise.resolve(),
      };
      db.use('stuck', stuck);
      await db.append(message(1));
      await applying;
      await db.append(message(2));
      const pending = rejectsWith(db.ready('stuck'), 'VIEW_CLOSED');
      const closing = db.close();
      release();
      await closing;
      await pending;
    });

    it('isolates a view that throws: reported with its name and offset, reads fail, others go on', async () => {
      const { db, view } = await open(options.directory());
      const errors: Array<{ view: string; offset: number }> = [];
      db.on('view-error', (event) => errors.push(event));
      const failing: View<Message> = {
        version: 1,
        open: () => Promise.resolve(-1),
        apply: (records) => {
          if (records.some((record) => record.value.n === 13)) throw new Error('unlucky');
        },
        checkpoint: () => Promise.resolve(),
        clear: () => Promise.resolve(),
        close: () => Promise.resolve(),
      };
      db.use('failing', failing);
      for (let n = 0; n < 20; n++) await db.append(message(n));
      await rejectsWith(db.ready('failing'), 'VIEW_FAILED');
      assert.deepEqual(await subject.read(view), subject.expected(await all(db)));
      assert.equal(errors.length, 1);
      assert.equal(errors[0]?.view, 'failing');
      assert.equal(db.viewStatus('failing').status, 'failed');
      await db.append(message(21));
      assert.deepEqual(await subject.read(view), subject.expected(await all(db)));
      await db.close();
    });

    it('rebuilds on demand while appends go on, and reports progress', async () => {
      const { db, view } = await open(options.directory());
      await db.append(Array.from({ length: 3000 }, (_, n) => message(n)));
      await subject.read(view);
      const progress: number[] = [];
      db.on('progress', (event) => {
        progress.push(event.bytesDone / Math.max(1, event.bytesTotal));
        // The same report is readable as a property while the view catches up.
        const status = db.viewStatus('subject');
        if (status.status === 'catching-up') assert.equal(status.progress, event);
      });
      const rebuilding = db.rebuild('subject');
      await db.append(message(5000));
      await rebuilding;
      assert.deepEqual(await subject.read(view), subject.expected(await all(db)));
      assert.ok(progress.length > 0, 'progress was reported');
      assert.ok(progress.every((fraction) => fraction >= 0 && fraction <= 1));
      await db.close();
    });

    it('validates use(): a taken name, a bad name, a missing method are TypeErrors', async () => {
      const { db } = await open(options.directory());
      assert.throws(() => db.use('subject', subject.create(1, { records: 0 })), TypeError);
      assert.throws(() => db.use('../escape', subject.create(1, { records: 0 })), TypeError);
      assert.throws(() => db.use('x', { version: 1 } as unknown as View<Message>), /no open\(\) method/);
      await db.close();
    });

    if (persistent) {
      it('reopens without reprocessing what it had stored', async () => {
        const dir = options.directory();
        let opened = await open(dir);
        await opened.db.append(Array.from({ length: 500 }, (_, n) => message(n)));
        const before = await subject.read(opened.view);
        await opened.db.close();
        const calls = { records: 0 };
        opened = await open(dir, 1, calls);
        assert.deepEqual(await subject.read(opened.view), before);
        assert.equal(calls.records, 0, 'nothing was applied again');
        await opened.db.close();
      });

      it('rebuilds from the start when its version changes', async () => {
        const dir = options.directory();
        let opened = await open(dir);
        await opened.db.append(Array.from({ length: 200 }, (_, n) => message(n)));
        await subject.read(opened.view);
        await opened.db.close();
        const calls = { records: 0 };
        opened = await open(dir, 2, calls);
        assert.deepEqual(await subject.read(opened.view), subject.expected(await all(opened.db)));
        assert.equal(calls.records, 200, 'every record was applied again');
        await opened.db.close();
      });

      it('rebuilds when its state is ahead of the log (the log lost its tail)', async () => {
        const dir = options.directory();
        const opened = await open(dir);
        await opened.db.append(Array.from({ length: 50 }, (_, n) => message(n)));
        await subject.read(opened.view);
        await opened.db.close();
        // A shorter log with the view state of the longer one: as if the log lost its tail in a crash.
        const shorter = options.directory();
        cpSync(join(dir, 'views'), join(shorter, 'views'), { recursive: true });
        const reports: string[] = [];
        const db = await Sluice.open<Message>(shorter);
        db.on('report', (event) => reports.push(event.message));
        await db.append(message(1));
        const view = db.use('subject', subject.create(1, { records: 0 }));
        assert.deepEqual(await subject.read(view), subject.expected(await all(db)));
        assert.ok(reports.some((text) => /ahead of the log/.test(text)));
        await db.close();
      });

      it('rebuilds when its state file is damaged, and says so', { skip: subject.stateFile === undefined }, async () => {
        const dir = options.directory();
        const opened = await open(dir);
        await opened.db.append(Array.from({ length: 20 }, (_, n) => message(n)));
        await subject.read(opened.view);
        await opened.db.close();
        writeFileSync(join(dir, 'views', 'subject', subject.stateFile ?? ''), 'not a state file at all');
        const reports: string[] = [];
        const db = await Sluice.open<Message>(dir);
        db.on('report', (event) => reports.push(event.message));
        const view = db.use('subject', subject.create(1, { records: 0 }));
        assert.deepEqual(await subject.read(view), subject.expected(await all(db)));
        assert.ok(reports.length > 0);
        await db.close();
      });
    }
  });
}
