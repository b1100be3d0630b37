import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileLog } from '../../src/log/file/file-log.js';
import { FlumeOffsetLog } from '../../src/log/flume-offset/flume-offset-log.js';
import { temporaryDirectory } from '../helpers.js';
import { runCli } from './run-cli.js';

describe('sluice trim', () => {
  it('drops old segments by count, prints the new first offset, and rejects bad arguments', async () => {
    const dir = join(temporaryDirectory(), 'log');
    {
      await using log = await FileLog.open(dir, { segmentBytesMax: 4096 });
      for (let i = 0; i < 300; i += 10) await log.append(Array.from({ length: 10 }, (_, j) => ({ i: i + j, pad: 'y'.repeat(100) })));
    }
    const result = await runCli(['trim', dir, '--max-count', '50', '--json']);
    assert.equal(result.status, 0, result.stderr);
    const trimmed = JSON.parse(result.stdout) as { segmentsDropped: number; firstOffset: number };
    assert.ok(trimmed.segmentsDropped > 0);
    {
      await using log = await FileLog.open(dir, { readonly: true });
      assert.equal(log.firstOffset, trimmed.firstOffset);
    }
    const text = await runCli(['trim', dir, '--older-than', '30d']);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^dropped 0 segments/);
    for (const args of [[], ['--older-than', '3 days'], ['--max-count', '-1']]) {
      const bad = await runCli(['trim', dir, ...args]);
      assert.equal(bad.status, 2, `${args.join(' ')}: ${bad.stderr}`);
    }
    const missing = await runCli(['trim', join(dir, 'nope'), '--max-count', '1']);
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /LOG_NOT_FOUND/);
  });
});

describe('sluice delete', () => {
  it('deletes records by offset, checking them all first', async () => {
    const dir = join(temporaryDirectory(), 'log');
    let offsets: number[];
    {
      await using log = await FileLog.open(dir);
      offsets = await log.append(['a', 'b', 'c']);
    }
    const bad = await runCli(['delete', dir, `${offsets[0]},${(offsets[1] as number) + 1}`]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /NOT_A_RECORD/);
    const usage = await runCli(['delete', dir, '1,x']);
    assert.equal(usage.status, 2);
    const result = await runCli(['delete', dir, `${offsets[0]},${offsets[2]}`]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /deleted 2 records/);
    const stat = JSON.parse((await runCli(['stat', dir, '--json'])).stdout) as { records: number; deletedRecords: number; deletedBytes: number };
    assert.deepEqual([stat.records, stat.deletedRecords], [1, 2]);
    assert.ok(stat.deletedBytes > 64);
    await using log = await FileLog.open(dir, { readonly: true });
    const values: unknown[] = [];
    for await (const record of log.stream()) values.push(record.value);
    assert.deepEqual(values, ['b']);
  });

  it('refuses --nats (a JetStream log has no deletes) and key files with a flumelog-offset file, deleting nothing', async () => {
    const base = temporaryDirectory();
    const dir = join(base, 'log');
    const file = join(base, 'log.offset');
    {
      await using log = await FileLog.open(dir);
      await log.append(['a']);
      await using flume = await FlumeOffsetLog.open(file);
      await flume.append(['a']);
    }
    const keys = join(base, 'keys');
    writeFileSync(keys, `k1:${'ab'.repeat(32)}\n`);
    for (const args of [
      ['delete', dir, '0', '--nats', 'nats://127.0.0.1:4222', '--stream', 'events'],
      ['delete', '--nats', 'nats://127.0.0.1:4222', '--stream', 'events', '0'],
      ['delete', file, '0', '--format', 'flumelog-offset', '--key-file', keys],
      ['delete', file, '0', '--format', 'flumelog-offset', '--chain-key-file', keys],
    ]) {
      const result = await runCli(args);
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /NATS JetStream has no deletes|goes with a log directory/);
    }
    assert.equal((await runCli(['get', dir, '0'])).status, 0, 'the record in <dir> is still there');
    assert.equal((await runCli(['get', file, '0', '--format', 'flumelog-offset'])).status, 0, 'the record in the file is still there');
    const help = await runCli(['delete', '--help']);
    assert.doesNotMatch(help.stdout, /--nats/);
  });
});

describe('sluice compact', () => {
  it('keeps the last record of each key and says how much it dropped', async () => {
    const dir = join(temporaryDirectory(), 'log');
    {
      await using log = await FileLog.open(dir, { segmentBytesMax: 4096 });
      for (let i = 0; i < 200; i++) await log.append({ i, pad: 'c'.repeat(60) }, { key: `k${i % 5}` });
    }
    const result = await runCli(['compact', dir, '--json']);
    assert.equal(result.status, 0, result.stderr);
    const compacted = JSON.parse(result.stdout) as { recordsDropped: number; segmentsRewritten: number };
    assert.ok(compacted.recordsDropped > 100, `dropped ${compacted.recordsDropped}`);
    const bad = await runCli(['compact', dir, '--older-than', 'soon']);
    assert.equal(bad.status, 2);
  });
});
