/**
 * What a log answers after a write failed, with the failure injected under the real code (FaultyFs): every
 * append fails with that failure, an empty batch included, and in `buffered` durability a record acknowledged
 * but never written is not served from a read window that copied it from the writer's memory.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileLog } from '../../src/log/file/file-log.js';
import { rejectsWith } from '../conformance/log-suite.js';
import { temporaryDirectory } from '../helpers.js';
import { FaultyFs } from './faulty-fs.js';

describe('FileLog after a failed write', () => {
  const root = temporaryDirectory('sluice-failed-write-');
  let store: FaultyFs;
  before(async () => (store = await FaultyFs.install(root)));
  after(() => store.uninstall());

  it('buffered: a get of a record lost with the write fails with WRITE_FAILED, as streams do', async () => {
    await using log = await FileLog.open<string>(join(root, 'buffered'), { durability: 'buffered' });
    const kept = await log.append('written');
    await log.sync();
    // The writer goes idle, so the next append is acknowledged before its write (at the end of its turn).
    await new Promise((resolve) => setImmediate(resolve));
    store.inject({ operation: 'write', path: (path) => path.endsWith('.seg'), kind: 'EIO' });
    const lost = await log.append('acknowledged, never written');
    // Read while the bytes still wait in the writer: the get's window copies them.
    assert.equal(await log.get(lost), 'acknowledged, never written');
    await rejectsWith(log.sync(), 'WRITE_FAILED');
    await rejectsWith(log.get(lost), 'WRITE_FAILED');
    await rejectsWith(log.getRecord(lost), 'WRITE_FAILED');
    await rejectsWith(log.stream({ gt: kept })[Symbol.asyncIterator]().next(), 'WRITE_FAILED');
    assert.equal(await log.get(kept), 'written');
  });

  for (const durability of ['os', 'buffered'] as const) {
    it(`${durability}: an empty batch fails with the write's error, as every append does`, async () => {
      await using log = await FileLog.open<string>(join(root, `empty-${durability}`), { durability });
      store.inject({ operation: 'write', path: (path) => path.endsWith('.seg'), kind: 'EIO' });
      await log.append('fails').catch(() => undefined);
      await log.sync().catch(() => undefined);
      await rejectsWith(log.append('next'), 'WRITE_FAILED');
      await rejectsWith(log.append([]), 'WRITE_FAILED');
    });
  }
});
