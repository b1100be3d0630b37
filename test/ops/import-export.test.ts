/**
 * How import and export group the records they copy: by count and by bytes, so that large records never make an
 * append larger than a batch may be.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { codecs } from '../../src/codec/codec.js';
import { FileLog } from '../../src/log/file/file-log.js';
import { FlumeOffsetLog } from '../../src/log/flume-offset/flume-offset-log.js';
import { exportFlumeOffset } from '../../src/ops/export.js';
import { importFlumeOffset } from '../../src/ops/import.js';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory('sluice-import-export-');
let count = 0;
const fresh = (): string => join(root, `case-${count++}`);

type Append = (this: unknown, values: unknown, options?: unknown) => Promise<number[]>;

/** Records the size of every batch appended through `prototype` while `run` runs. */
async function batchSizes(prototype: { append: unknown }, run: () => Promise<unknown>): Promise<number[]> {
  const original = prototype.append as Append;
  const own = Object.hasOwn(prototype, 'append');
  const sizes: number[] = [];
  prototype.append = function (this: unknown, values: unknown, options?: unknown): Promise<number[]> {
    sizes.push(Array.isArray(values) ? values.length : 1);
    return original.call(this, values, options);
  };
  try {
    await run();
  } finally {
    if (own) prototype.append = original;
    else delete (prototype as { append?: unknown }).append;
  }
  return sizes;
}

const values = Array.from({ length: 7 }, (_, i) => Buffer.alloc(1000, 0x61 + i));

describe('import and export batches', () => {
  it('import appends whenever the values gathered reach the byte budget', async () => {
    const base = fresh();
    const file = join(base, 'source.offset');
    {
      await using log = await FlumeOffsetLog.open(file, { codec: codecs.raw() });
      await log.append(values);
    }
    const sizes = await batchSizes(FileLog.prototype, () => importFlumeOffset(file, join(base, 'imported'), { batchBytes: 2500 }));
    // Three records reach 2500 bytes; the last one goes alone at the end.
    assert.deepEqual(sizes, [3, 3, 1]);
    await using imported = await FileLog.open(join(base, 'imported'), { codec: codecs.raw(), readonly: true });
    const copied: Buffer[] = [];
    for await (const record of imported.stream()) copied.push(Buffer.from(record.value));
    assert.deepEqual(copied, values);
    const everything = await batchSizes(FileLog.prototype, () => importFlumeOffset(file, join(base, 'default')));
    assert.equal(everything[0], values.length, 'small records are one append under the default budget');
  });

  it('export appends whenever the values gathered reach the byte budget', async () => {
    const base = fresh();
    const dir = join(base, 'log');
    {
      await using log = await FileLog.open(dir, { codec: codecs.raw() });
      await log.append(values);
    }
    const file = join(base, 'out.offset');
    const sizes = await batchSizes(FlumeOffsetLog.prototype, () => exportFlumeOffset(dir, file, { batchBytes: 1000 }));
    assert.deepEqual(sizes, values.map(() => 1));
    await using exported = await FlumeOffsetLog.open(file, { codec: codecs.raw(), readonly: true });
    const copied: Buffer[] = [];
    for await (const record of exported.stream()) copied.push(Buffer.from(record.value));
    assert.deepEqual(copied, values);
  });

  it('checks the byte budget', async () => {
    for (const batchBytes of [0, -1, 1.5, 64 * 1024 * 1024 + 1, Number.NaN]) {
      await assert.rejects(importFlumeOffset(join(root, 'none.offset'), join(root, 'none'), { batchBytes }), RangeError);
      await assert.rejects(exportFlumeOffset(join(root, 'none'), join(root, 'none.offset'), { batchBytes }), RangeError);
    }
  });
});
