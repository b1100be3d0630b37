import type { LogRecord } from '../log/log.js';
import { IndexView } from './index-view.js';
import type { ReadOptions } from './view.js';

/** The name `sluice import` gives the view, under `<dir>/views/`. */
export const importedOffsetsViewName = 'flumelog-offsets';

/** The record key `sluice import` stores with each record: its offset in the imported file, 8 bytes big-endian. */
export function importedOffsetKey(oldOffset: number): Uint8Array {
  const key = Buffer.alloc(8);
  key.writeUInt32BE(Math.floor(oldOffset / 0x1_0000_0000), 0);
  key.writeUInt32BE(oldOffset >>> 0, 4);
  return key;
}

function oldOffsetOf(key: Uint8Array | undefined): number | undefined {
  if (key?.length !== 8) return undefined;
  const bytes = Buffer.from(key.buffer, key.byteOffset, 8);
  return bytes.readUInt32BE(0) * 0x1_0000_0000 + bytes.readUInt32BE(4);
}

/**
 * The table from a record's offset in the flumelog-offset file it was imported from to its offset in this log,
 * so references kept by an application (flumedb views store offsets) still resolve after `sluice import`.
 * Built from the record keys the import writes (`importedOffsetKey`); records appended later have no such key
 * (or another one) and are not in the table. Records deleted before the import were not imported: their old
 * offsets resolve to `undefined`.
 */
export class ImportedOffsetsView<T> extends IndexView<T> {
  constructor() {
    super(1, (_value: T, record: LogRecord<T>) => oldOffsetOf(record.key));
  }

  /** The offset in this log of the record that was at `oldOffset` in the imported file, or `undefined`. */
  resolve(oldOffset: number, options?: ReadOptions): Promise<number | undefined> {
    if (!Number.isSafeInteger(oldOffset) || oldOffset < 0) throw new RangeError('oldOffset must be a non-negative integer');
    return this.offsetOf(oldOffset, options);
  }
}

/** `db.use(importedOffsetsViewName, importedOffsets())`. */
export function importedOffsets<T>(): ImportedOffsetsView<T> {
  return new ImportedOffsetsView<T>();
}
