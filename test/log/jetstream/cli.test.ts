import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { linesOf, runCli, startCli, waitFor } from '../../cli/run-cli.js';
import { trackChild } from './cleanup.js';
import { freePort, natsFixture } from './nats-servers.js';

const nats = natsFixture(1);

describe('sluice CLI with --nats', { skip: nats.skip, timeout: 120_000 }, () => {
  const on = (stream: string): string[] => ['--nats', nats.servers().urls, '--stream', stream];
  const values = [{ a: 1 }, [1, 2], 'three', 4, null];
  const input = values.map((value) => JSON.stringify(value)).join('\n') + '\n';

  it('append, get, dump and stat work on a stream in place of a directory', async () => {
    const appended = await runCli(['append', ...on('cli')], input);
    assert.equal(appended.status, 0, appended.stderr);
    assert.deepEqual(linesOf(appended.stdout), ['0', '1', '2', '3', '4']);

    const got = await runCli(['get', ...on('cli'), '1']);
    assert.equal(got.status, 0, got.stderr);
    assert.deepEqual(JSON.parse(got.stdout), [1, 2]);

    const dumped = await runCli(['dump', ...on('cli'), '--gt', '1', '--reverse', '--limit', '2']);
    assert.equal(dumped.status, 0, dumped.stderr);
    assert.deepEqual(
      linesOf(dumped.stdout).map((line) => JSON.parse(line) as unknown),
      [
        { offset: 4, value: null },
        { offset: 3, value: 4 },
      ],
    );

    const stat = await runCli(['stat', ...on('cli'), '--json']);
    assert.equal(stat.status, 0, stat.stderr);
    const result = JSON.parse(stat.stdout) as { records: number; firstOffset: number; lastOffset: number; views: [] };
    assert.deepEqual([result.records, result.firstOffset, result.lastOffset, result.views], [5, 0, 4, []]);
  });

  it('tail prints the last records, then follows what another process appends', async () => {
    await runCli(['append', ...on('tailed')], input);
    const tail = startCli(['tail', ...on('tailed'), '-n', '2']);
    trackChild(tail.child);
    try {
      await waitFor(() => linesOf(tail.stdout()).length === 2, 'the last two records');
      const appended = await runCli(['append', ...on('tailed')], '"new"\n');
      assert.equal(appended.status, 0, appended.stderr);
      await waitFor(() => linesOf(tail.stdout()).length === 3, 'the new record');
    } finally {
      tail.child.kill('SIGTERM');
    }
    const result = await tail.exited;
    assert.deepEqual(
      linesOf(result.stdout).map((line) => JSON.parse(line) as unknown),
      [
        { offset: 3, value: 4 },
        { offset: 4, value: null },
        { offset: 5, value: 'new' },
      ],
    );
  });

  it('reports a missing stream, unreachable servers and wrong flags with their codes', async () => {
    const missing = await runCli(['get', ...on('never-created'), '0']);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /^sluice: LOG_NOT_FOUND: /);
    const nowhere = await runCli(['dump', '--nats', `127.0.0.1:${await freePort()}`, '--stream', 'x']);
    assert.equal(nowhere.status, 1);
    assert.match(nowhere.stderr, /^sluice: UNAVAILABLE: /);
    for (const args of [
      ['get', '--nats', nats.servers().urls, '0'],
      ['get', '--stream', 'cli', 'some-dir', '0'],
      ['get', 'some-dir', ...on('cli'), '0'],
      ['dump', ...on('cli'), '--format', 'flumelog-offset'],
    ]) {
      const result = await runCli(args);
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    }
  });
});
