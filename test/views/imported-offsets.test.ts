import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { codecs, skipValues } from '../../src/codec/codec.js';
import { Sluice } from '../../src/db/sluice.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { importedOffsetKey, importedOffsets, type ImportedOffsetsView } from '../../src/views/imported-offsets.js';
import { mulberry32, temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory();

/** Old offsets as an imported file would have them: growing, with gaps where records were deleted. */
function oldOffsets(count: number, seed: number): number[] {
  const random = mulberry32(seed);
  const offsets: number[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    offset += 13 + Math.floor(random() * 200);
    if (random() < 0.1) continue;
    offsets.push(i === count - 1 ? 2 ** 40 + offset : offset);
  }
  return offsets;
}

describe('the flumelog-offsets view (imported offsets)', () => {
  it('resolves every imported offset, and nothing else, before and after a reopen', async () => {
    const dir = join(root, 'table');
    const olds = oldOffsets(1000, 7);
    const news: number[] = [];
    {
      await using db = await Sluice.open<number>(dir, { views: { table: importedOffsets() } });
      for (let start = 0; start < olds.length; start += 100) {
        const slice = olds.slice(start, start + 100);
        news.push(...(await db.append(slice, { key: slice.map((old) => importedOffsetKey(old)) })));
      }
      // Appended after the import: no key, another key, an imported-looking key that does not grow.
      await db.append(1, {});
      await db.append(2, { key: 'user key' });
      await db.append(3, { key: importedOffsetKey(olds[5] as number) });
      const table = db.views.table as ImportedOffsetsView<number>;
      for (const [i, old] of olds.entries()) assert.equal(await table.resolve(old), news[i], `old offset ${old}`);
      for (const missing of [0, (olds[0] as number) - 1, (olds[3] as number) + 1, 2 ** 41]) {
        assert.equal(await table.resolve(missing), undefined, `old offset ${missing}`);
      }
      assert.throws(() => table.resolve(-1), RangeError);
    }
    {
      let applied = 0;
      const table = importedOffsets<number>();
      const apply = table.apply.bind(table);
      table.apply = (records) => {
        applied += records.length;
        apply(records);
      };
      await using db = await Sluice.open<number>(dir, { views: { table } });
      assert.equal(db.views.table, table);
      assert.equal(await table.resolve(olds[olds.length - 1] as number), news[news.length - 1]);
      assert.equal(await table.resolve(olds[500] as number), news[500]);
      assert.equal(applied, 0, 'the table was restored from its state, not rebuilt');
    }
  });

  it('works over a log opened with the skip codec as with the values', async () => {
    const dir = join(root, 'skip');
    const log = await FileLog.open<string>(dir, { codec: codecs.utf8() });
    const offsets = await log.append(['a', 'b', 'c'], { key: [importedOffsetKey(10), importedOffsetKey(20), importedOffsetKey(30)] });
    await log.close();
    await using db = await Sluice.open(dir, {
      codec: skipValues,
      views: { table: importedOffsets() },
    });
    assert.equal(await (db.views.table as ImportedOffsetsView<null>).resolve(20), offsets[1]);
  });
});
