/**
 * A real full disk: the log on a 4 MiB tmpfs mounted for the test (as root; skipped with the reason otherwise),
 * with a 1 MiB filler file beside it. A database with a reduce view appends batches until an append fails, then:
 * the failure is `WRITE_FAILED` caused by ENOSPC, sticky (the next append and sync fail alike); every
 * acknowledged record still reads back, by `get` and by a stream; the view's checkpoint on the full disk (after
 * a rebuild gave it new state to write) fails and is reported as a view error while the database still closes. Then the filler is removed (space freed) and
 * the log reopened: `check` finds no damage, the log holds exactly the acknowledged records, appends go on, and
 * the view equals its recomputation. The tmpfs is unmounted in a `finally`, also when the test fails.
 *
 * LMDB views are left out here: LMDB does its own I/O in native code, and a write through a memory map into a full
 * file system can be a signal for the whole process rather than an error (see README "Reliability").
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import { check } from '../../src/ops/check.js';
import { reduce } from '../../src/views/reduce.js';

interface Value {
  readonly n: number;
  readonly p: string;
}

const tmpfsBytes = 4 * 1024 * 1024;
const fillerBytes = 1024 * 1024;

/** Mounts a tmpfs of `bytes` on a new directory; a string saying why not when it cannot. */
function mountTmpfs(bytes: number): string | { readonly dir: string } {
  if (process.platform !== 'linux') return 'tmpfs mounts are Linux only';
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  const dir = mkdtempSync(join(tmpdir(), 'sluice-disk-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
    return { dir };
  } catch (error) {
    rmdirSync(dir);
    return `mount -t tmpfs is not permitted here: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
  }
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    // Still busy (a descriptor the failure left open): detach it now, the kernel frees it when released.
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
  rmdirSync(dir);
}

/** Writes `path` until the file system is full. */
function fillUp(path: string): void {
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(4096, 2);
  try {
    for (;;) writeSync(fd, block);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

const mounted = mountTmpfs(tmpfsBytes);
const sumOf = () => reduce<Value, number>(1, (sum, value) => sum + value.n, { initial: 0 });

describe('a real full disk (tmpfs)', () => {
  it('appends fail cleanly, reads go on, and after space is freed nothing acknowledged is lost', { skip: typeof mounted === 'string' ? mounted : false }, async (t) => {
    const { dir: mount } = mounted as { dir: string };
    try {
      const dir = join(mount, 'log');
      writeFileSync(join(mount, 'filler'), Buffer.alloc(fillerBytes, 1));
      const acked = new Map<number, Value>();
      const viewErrors: Error[] = [];
      const db = await Sluice.open<Value>(dir);
      db.on('view-error', ({ error }) => viewErrors.push(error));
      const view = db.use('sum', sumOf());
      let failure: unknown;
      for (let n = 0; failure === undefined; ) {
        const values = Array.from({ length: 1 + (n % 7) }, (_, i): Value => ({ n: n + i, p: 'f'.repeat(900) }));
        try {
          const offsets = await db.append(values);
          offsets.forEach((offset, i) => acked.set(offset, values[i] as Value));
          n += values.length;
        } catch (error) {
          failure = error;
        }
        assert.ok(n < 10_000, 'the disk never filled');
      }
      t.diagnostic(`${acked.size} records acknowledged before the disk was full`);
      assert.ok(isSluiceError(failure, 'WRITE_FAILED'), (failure as Error).message);
      assert.equal(((failure as Error).cause as NodeJS.ErrnoException).code, 'ENOSPC');
      await assert.rejects(db.append({ n: -1, p: '' }), (error) => error === failure, 'sticky: the same error');
      await assert.rejects(db.log.sync(), (error) => error === failure, 'sync fails alike');
      for (const [offset, value] of acked) assert.deepEqual(await db.get(offset), value, `get(${offset}) on the full disk`);
      let streamed = 0;
      for await (const record of db.stream()) {
        assert.deepEqual(record.value, acked.get(record.offset));
        streamed++;
      }
      assert.equal(streamed, acked.size, 'a stream reads exactly the acknowledged records');
      // The failed write was cut back, which freed a little: fill that too, then make the view write its state
      // (a rebuild, so there is a new state to checkpoint, once idle or at the latest when closing).
      fillUp(join(mount, 'filler-rest'));
      await db.rebuild('sum');
      const during = await view.get().catch((error: unknown) => error);
      if (during instanceof Error) assert.ok(isSluiceError(during, 'VIEW_FAILED'), during.message);
      else assert.equal(during, [...acked.values()].reduce((total, value) => total + value.n, 0));
      await db.close();
      assert.equal(viewErrors.length, 1, 'the view reported its failed checkpoint');
      assert.equal((viewErrors[0] as NodeJS.ErrnoException).code, 'ENOSPC');
      rmSync(join(mount, 'filler-rest'));

      rmSync(join(mount, 'filler'));
      const report = await check(dir);
      assert.equal(report.errors, 0, JSON.stringify(report.problems.slice(0, 3)));
      await using reopened = await Sluice.open<Value>(dir);
      const sum = reopened.use('sum', sumOf());
      const found = new Map<number, Value>();
      for await (const record of reopened.stream()) found.set(record.offset, record.value);
      assert.deepEqual(found, acked, 'exactly the acknowledged records');
      const next = await reopened.append({ n: acked.size, p: 'after' });
      assert.deepEqual(await reopened.get(next), { n: acked.size, p: 'after' });
      const expected = [...acked.values(), { n: acked.size, p: 'after' }].reduce((total, value) => total + value.n, 0);
      assert.equal(await sum.get(), expected, 'the view equals its recomputation');
    } finally {
      unmount(mount);
    }
  });
});
