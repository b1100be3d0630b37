import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { linesOf, runCli, startCli, waitFor } from './run-cli.js';

interface DumpLine {
  readonly offset: number;
  readonly value: unknown;
}

const values = [{ a: 1 }, [1, 2], 'three', 4, null, { nested: { b: true } }];
const input = values.map((value) => JSON.stringify(value)).join('\n\n') + '\n';

describe('sluice CLI', () => {
  let root = '';
  let dir = '';
  let offsets: number[] = [];

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
    dir = join(root, 'log');
    const result = await runCli(['append', dir], input);
    assert.equal(result.status, 0, result.stderr);
    offsets = linesOf(result.stdout).map(Number);
  });

  after(() => rmSync(root, { recursive: true, force: true }));

  const dump = async (...args: string[]): Promise<DumpLine[]> => {
    const result = await runCli(['dump', dir, ...args]);
    assert.equal(result.status, 0, result.stderr);
    return linesOf(result.stdout).map((line) => JSON.parse(line) as DumpLine);
  };

  it('append prints one increasing offset per value, starting at 0, skipping blank lines', () => {
    assert.equal(offsets.length, values.length);
    assert.equal(offsets[0], 0);
    for (let i = 1; i < offsets.length; i++) assert.ok((offsets[i] as number) > (offsets[i - 1] as number));
  });

  it('get returns what append stored, arrays included', async () => {
    const results = await Promise.all(offsets.map((offset) => runCli(['get', dir, String(offset)])));
    for (const [i, result] of results.entries()) {
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(JSON.parse(result.stdout), values[i]);
      assert.equal(linesOf(result.stdout).length, 1);
    }
  });

  it('dump prints every record as a JSON line', async () => {
    const records = await dump();
    assert.deepEqual(
      records,
      values.map((value, i) => ({ offset: offsets[i], value })),
    );
  });

  it('dump honours --gt, --lt, --reverse and --limit', async () => {
    const at = (i: number): number => offsets[i] as number;
    const offsetsOf = async (...args: string[]): Promise<number[]> =>
      (await dump(...args)).map((record) => record.offset);
    const [gtLt, reversed, bounded, none] = await Promise.all([
      offsetsOf('--gt', String(at(1)), '--lt', String(at(4))),
      offsetsOf('--reverse', '--limit', '2'),
      offsetsOf('--gte', String(at(1)), '--lte', String(at(2)), '--reverse'),
      offsetsOf('--limit', '0'),
    ]);
    assert.deepEqual(gtLt, [at(2), at(3)]);
    assert.deepEqual(reversed, [at(5), at(4)]);
    assert.deepEqual(bounded, [at(2), at(1)]);
    assert.deepEqual(none, []);
  });

  it('stat --json counts the records and ends at the last offset printed by append', async () => {
    const result = await runCli(['stat', dir, '--json']);
    assert.equal(result.status, 0, result.stderr);
    const stat = JSON.parse(result.stdout) as {
      records: number;
      bytes: number;
      firstOffset: number;
      lastOffset: number;
      segments: Array<{ records: number; bytes: number }>;
    };
    assert.equal(stat.records, values.length);
    assert.equal(stat.firstOffset, 0);
    assert.equal(stat.lastOffset, offsets[offsets.length - 1]);
    assert.equal(stat.segments.reduce((sum, segment) => sum + segment.records, 0), stat.records);
    assert.equal(stat.segments.reduce((sum, segment) => sum + segment.bytes, 0), stat.bytes);
  });

  it('stat prints a table by default', async () => {
    const result = await runCli(['stat', dir]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^segment\s+base\s+bytes\s+records\s+deleted\s+deleted bytes$/m);
    assert.match(result.stdout, new RegExp(`^last offset\\s+${offsets[offsets.length - 1]}$`, 'm'));
  });

  it('dump --live prints a record appended by another process and exits 0 on SIGTERM', async () => {
    const liveDir = join(root, 'live');
    assert.equal((await runCli(['append', liveDir], '"first"\n')).status, 0);
    const live = startCli(['dump', liveDir, '--live']);
    try {
      // Once the existing record is out, the dump is past the end and following: what comes next is live.
      await waitFor(() => linesOf(live.stdout()).length === 1, 'the live dump to print the existing record');
      const appended = await runCli(['append', liveDir], '{"late":true}\n');
      assert.equal(appended.status, 0, appended.stderr);
      await waitFor(() => linesOf(live.stdout()).length === 2, 'the live dump to print the new record');
      const late = JSON.parse(linesOf(live.stdout())[1] ?? '') as DumpLine;
      assert.deepEqual(late, { offset: Number(appended.stdout.trim()), value: { late: true } });
    } finally {
      live.child.kill('SIGTERM');
    }
    const result = await live.exited;
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr, '');
  });

  it('append stops at a line that is not JSON, keeping the lines before it', async () => {
    const other = join(root, 'invalid');
    const result = await runCli(['append', other], '1\n2\n{"oops"\n3\n');
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /INVALID_INPUT/);
    assert.match(result.stderr, /line 3\b/);
    const stat = JSON.parse((await runCli(['stat', other, '--json'])).stdout) as { records: number };
    assert.equal(stat.records, 2);
    assert.equal(linesOf(result.stdout).length, 2);
  });

  it('get at an offset where no record starts fails with NOT_A_RECORD', async () => {
    const result = await runCli(['get', dir, '1']);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /^sluice: NOT_A_RECORD: /);
  });

  it('get on a missing directory fails with LOG_NOT_FOUND', async () => {
    const result = await runCli(['get', join(root, 'missing'), '0']);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /^sluice: LOG_NOT_FOUND: /);
  });

  it('usage errors exit with 2 and print the usage to stderr', async () => {
    const cases = [
      ['frobnicate'],
      [],
      ['get', dir],
      ['get', dir, '1.5'],
      ['get', dir, '-1'],
      ['dump', dir, '--nope'],
      ['check', ''],
      ['backup', dir, ''],
    ];
    const results = await Promise.all(cases.map((args) => runCli(args)));
    for (const [i, result] of results.entries()) {
      assert.equal(result.status, 2, `sluice ${(cases[i] ?? []).join(' ')}`);
      assert.match(result.stderr, /Usage: sluice/);
      assert.equal(result.stdout, '');
    }
  });

  it('arguments the log rejects fail with INVALID_ARGUMENT', async () => {
    const result = await runCli(['dump', dir, '--gt', '1', '--gte', '2']);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /^sluice: INVALID_ARGUMENT: /);
  });

  it('--help works for sluice and every command', async () => {
    const commands = ['append', 'get', 'dump', 'stat'];
    const [main, results] = await Promise.all([
      runCli(['--help']),
      Promise.all(commands.map((command) => runCli([command, '--help']))),
    ]);
    assert.equal(main.status, 0, main.stderr);
    for (const [i, command] of commands.entries()) {
      assert.match(main.stdout, new RegExp(`^  ${command} `, 'm'));
      const result = results[i];
      assert.ok(result !== undefined);
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`^Usage: sluice ${command} `));
    }
  });
});
