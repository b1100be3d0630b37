/**
 * The CLI on flumelog-offset files: read commands with --format, `import` into a native log with a table of old
 * offsets, and `export` back, each checked against flumelog-offset 3.4.4 itself.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Sluice } from '../../src/db/sluice.js';
import { importedOffsets, importedOffsetsViewName } from '../../src/views/imported-offsets.js';
import { temporaryDirectory } from '../helpers.js';
import { Upstream } from '../log/flume-offset/upstream.js';
import { linesOf, runCli } from './run-cli.js';

const root = temporaryDirectory();
const values = Array.from({ length: 300 }, (_, i) => ({ i, text: 'é'.repeat(i % 17) }));

async function upstreamFile(name: string, width: 4 | 6 | 8): Promise<{ file: string; seqs: number[] }> {
  const file = join(root, name);
  const upstream = await Upstream.open(file, width);
  const seqs: number[] = [];
  for (const value of values) seqs.push(await upstream.append(value));
  return { file, seqs };
}

describe('sluice CLI on flumelog-offset files', () => {
  it('get, dump and stat read a file with --format flumelog-offset', async () => {
    const { file, seqs } = await upstreamFile('read.offset', 6);
    const format = ['--format', 'flumelog-offset', '--offset-width', '6'];
    const get = await runCli(['get', file, String(seqs[42]), ...format]);
    assert.equal(get.status, 0, get.stderr);
    assert.deepEqual(JSON.parse(get.stdout), values[42]);
    const dump = await runCli(['dump', file, '--gt', String(seqs[10]), '--limit', '3', ...format]);
    assert.deepEqual(
      linesOf(dump.stdout).map((line) => JSON.parse(line) as unknown),
      [11, 12, 13].map((i) => ({ offset: seqs[i], value: values[i] })),
    );
    const stat = await runCli(['stat', file, '--json', ...format]);
    const result = JSON.parse(stat.stdout) as { records: number; bytes: number; lastOffset: number };
    assert.equal(result.records, values.length);
    assert.equal(result.bytes, statSync(file).size);
    assert.equal(result.lastOffset, seqs[seqs.length - 1]);
  });

  it('names the right width when given the wrong one, and rejects unknown formats', async () => {
    const { file } = await upstreamFile('wrong.offset', 4);
    const wrong = await runCli(['get', file, '0', '--format', 'flumelog-offset', '--offset-width', '8']);
    assert.notEqual(wrong.status, 0);
    assert.match(wrong.stderr, /NOT_A_LOG/);
    assert.match(wrong.stderr, /offsetWidth 4/);
    const unknown = await runCli(['dump', file, '--format', 'flumelog']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown --format/);
    const width = await runCli(['dump', file, '--format', 'flumelog-offset', '--offset-width', '5']);
    assert.equal(width.status, 2);
  });

  it('imports a file into a new log whose view maps old offsets to new ones, and exports it back', async () => {
    const { file, seqs } = await upstreamFile('import.offset', 4);
    const deleted = seqs[7] as number;
    const upstream = await Upstream.open(file, 4);
    await upstream.delete(deleted);
    const before = readFileSync(file);
    const dir = join(root, 'imported');
    const imported = await runCli(['import', file, dir, '--json']);
    assert.equal(imported.status, 0, imported.stderr);
    assert.match(imported.stderr, /import .*100\.0%/);
    assert.equal((JSON.parse(imported.stdout) as { records: number }).records, values.length - 1);
    assert.ok(readFileSync(file).equals(before), 'the source file is not modified');

    {
      const db = await Sluice.open(dir, { views: { [importedOffsetsViewName]: importedOffsets() } });
      try {
        const table = db.views[importedOffsetsViewName] as ReturnType<typeof importedOffsets>;
        for (const i of [0, 1, 6, 8, 150, values.length - 1]) {
          const offset = await table.resolve(seqs[i] as number);
          assert.equal(typeof offset, 'number');
          assert.deepEqual(await db.get(offset as number), values[i]);
        }
        assert.equal(await table.resolve(deleted), undefined);
        assert.equal(await table.resolve((seqs[3] as number) + 1), undefined);
      } finally {
        await db.close();
      }
    }

    const again = await runCli(['import', file, dir]);
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /INVALID_INPUT/);

    const exported = join(root, 'exported.offset');
    const result = await runCli(['export', dir, exported, '--format', 'flumelog-offset', '--offset-width', '8']);
    assert.equal(result.status, 0, result.stderr);
    const reader = await Upstream.open(exported, 8);
    assert.deepEqual(
      (await reader.entries()).map((entry) => entry.value),
      values.filter((_, i) => i !== 7),
    );
    const overwrite = await runCli(['export', dir, exported, '--format', 'flumelog-offset']);
    assert.notEqual(overwrite.status, 0);
    assert.match(overwrite.stderr, /exists/);
  });
});
