import { FileLog } from '../../src/log/file/file-log.js';

/** The records the crash tests write: `{ n }`, n = 0, 1, … in log order. */
export interface NumberedValue {
  readonly n: number;
}

const appendBatchRecords = 1000;

/** Appends `count` records `{ n }` (n = 0, 1, … continuing the log) in batches; adds their offsets to `offsets`. */
export async function fill(dir: string, offsets: number[], count: number): Promise<void> {
  const log = await FileLog.open<NumberedValue>(dir);
  const first = offsets.length;
  try {
    for (let start = first; start < first + count; start += appendBatchRecords) {
      const values: NumberedValue[] = [];
      for (let n = start; n < Math.min(start + appendBatchRecords, first + count); n++) values.push({ n });
      for (const offset of await log.append(values)) offsets.push(offset);
    }
  } finally {
    await log.close();
  }
}

/** How many of the (ascending) offsets are ≤ `since`. */
export function countUpTo(offsets: readonly number[], since: number): number {
  let low = 0;
  let high = offsets.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((offsets[middle] as number) <= since) low = middle + 1;
    else high = middle;
  }
  return low;
}
