/**
 * A write torn at every byte: the first `k` bytes reach the file, then the call fails (as when a disk fills or
 * fails mid-write), for every `k` of a batch's write and of a new segment's header. Each time: the append fails
 * with `WRITE_FAILED`, sticky; the acknowledged records still read back; `check` finds no damage after the close;
 * the reopened log holds exactly the acknowledged records (the torn bytes are cut, a half-made segment's
 * temporary file removed); and the next append works.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isSluiceError } from '../../src/errors.js';
import { FileLog, type Durability } from '../../src/log/file/file-log.js';
import { frameBytes } from '../../src/log/file/format.js';
import { check } from '../../src/ops/check.js';
import { temporaryDirectory } from '../helpers.js';
import { FaultyFs, type Fault } from './faulty-fs.js';

interface Value {
  readonly n: number;
  readonly p: string;
}

const failedWrite = (error: unknown): boolean => isSluiceError(error, 'WRITE_FAILED');

/**
 * Opens a log in `dir`, appends `before` (acknowledged), injects `fault`, and expects `append` of `torn` to fail;
 * then checks everything the file's comment lists. Returns whether the fault fired.
 */
async function tearOnce(store: FaultyFs, dir: string, durability: Durability, fault: Fault, torn: Value[], context: string): Promise<boolean> {
  store.reset();
  const log = await FileLog.open<Value>(dir, { durability, segmentBytesMax: 4096 });
  const before = [{ n: 0, p: 'a'.repeat(50) }, { n: 1, p: 'b'.repeat(70) }];
  const offsets = await log.append(before);
  store.inject(fault);
  await assert.rejects(log.append(torn, { key: 'torn' }), failedWrite, context);
  const fired = store.fired.length === 1;
  await assert.rejects(log.append({ n: 9, p: '' }), failedWrite, `${context}: sticky`);
  for (const [i, offset] of offsets.entries()) assert.deepEqual(await log.get(offset), before[i], `${context}: get`);
  await log.close();
  store.reset();
  const report = await check(dir);
  assert.equal(report.errors, 0, `${context}: ${JSON.stringify(report.problems.slice(0, 2))}`);
  await using reopened = await FileLog.open<Value>(dir, { durability, segmentBytesMax: 4096 });
  const values: Value[] = [];
  for await (const record of reopened.stream()) values.push(record.value);
  assert.deepEqual(values, before, `${context}: exactly the acknowledged records`);
  assert.ok(!readdirSync(dir).some((name) => name.endsWith('.tmp')), `${context}: no temporary file left`);
  const next = await reopened.append(torn);
  assert.deepEqual(await reopened.get(next[next.length - 1] as number), torn[torn.length - 1], `${context}: the next append`);
  return fired;
}

describe('a write torn at every byte', () => {
  const root = temporaryDirectory('sluice-torn-');
  let store: FaultyFs;
  before(async () => (store = await FaultyFs.install(root)));
  after(() => store.uninstall());

  for (const durability of ['os', 'disk'] as const) {
    it(`a batch's write torn after each of its bytes (durability ${durability})`, { timeout: 60_000 }, async (t) => {
      const batch = [0, 1, 2].map((i): Value => ({ n: 2 + i, p: String(i).repeat(5 + i * 10) }));
      // A batch of three framed records with a key: about 200 bytes in one write.
      const bytes = batch.reduce((sum, value) => sum + frameBytes(4, Buffer.byteLength(JSON.stringify(value))), 0);
      // Every byte in `os` mode; every fifth in `disk` mode, whose fsyncs make each run slower.
      const stride = durability === 'os' ? 1 : 5;
      let fired = 0;
      for (let k = 0; k < bytes; k += stride) {
        const fault: Fault = { operation: 'write', path: (path) => path.endsWith('.seg'), kind: { tornBytes: k } };
        if (await tearOnce(store, join(root, `${durability}-batch-${k}`), durability, fault, batch, `${durability}, torn after byte ${k}`)) fired++;
      }
      t.diagnostic(`${fired} torn writes of a ${bytes}-byte batch`);
      assert.equal(fired, Math.ceil(bytes / stride));
    });
  }

  it('a new segment\'s header torn after each of its 64 bytes (at a rollover)', async () => {
    // A value too large for what is left of the first segment: the append must start a new one.
    const large = [{ n: 2, p: 'L'.repeat(3900) }];
    let fired = 0;
    for (let k = 0; k < 64; k++) {
      const fault: Fault = { operation: 'write', path: (path) => path.endsWith('.seg.tmp'), kind: { tornBytes: k } };
      const dir = join(root, `header-${k}`);
      if (await tearOnce(store, dir, 'os', fault, large, `header torn after byte ${k}`)) fired++;
      assert.ok(existsSync(join(dir, '00000000000000000000.seg')));
    }
    assert.equal(fired, 64);
  });
});
