import { join } from 'node:path';
import { FlumeOffsetLog, type FlumeOffsetLogOptions } from '../../../src/log/flume-offset/flume-offset-log.js';
import type { Log } from '../../../src/log/log.js';
import { deleteSuite } from '../../conformance/delete-suite.js';
import { logSuite, type LogFactory } from '../../conformance/log-suite.js';
import { temporaryDirectory } from '../../helpers.js';

const root = temporaryDirectory();
let count = 0;
const files = new WeakMap<object, string>();

const variants: [string, Omit<FlumeOffsetLogOptions<unknown>, 'codec'>, number][] = [
  ['FlumeOffsetLog (4-byte offsets)', { offsetWidth: 4 }, 12],
  ['FlumeOffsetLog (6-byte offsets, disk durability)', { offsetWidth: 6, durability: 'disk' }, 14],
  ['FlumeOffsetLog (8-byte offsets)', { offsetWidth: 8 }, 16],
  ['FlumeOffsetLog (legacy format)', { legacy: true }, 8],
];

for (const [label, options, overhead] of variants) {
  const factory: LogFactory = {
      recordBytes: (valueBytes) => valueBytes + overhead,
      emptyValues: false,
      async open<T>(codecOptions?: object) {
        const file = join(root, `log-${count++}`, 'log.offset');
        const log = await FlumeOffsetLog.open<T>(file, { ...options, ...codecOptions });
        files.set(log, file);
        return log;
      },
      async reopen<T>(log: Log<T>, codecOptions?: object) {
        await log.close();
        const file = files.get(log) as string;
        const again = await FlumeOffsetLog.open<T>(file, { ...options, ...codecOptions });
        files.set(again, file);
        return again;
      },
  };
  logSuite({ name: label, factory });
  deleteSuite({ name: label, factory });
}
