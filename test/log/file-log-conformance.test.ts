import { join } from 'node:path';
import { FileLog } from '../../src/log/file/file-log.js';
import type { Log } from '../../src/log/log.js';
import { deleteSuite } from '../conformance/delete-suite.js';
import { logSuite, type LogFactory } from '../conformance/log-suite.js';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory();
let count = 0;
const dirs = new WeakMap<object, string>();

for (const [label, options] of [
  ['FileLog', {}],
  ['FileLog (disk durability, 4 KiB segments)', { durability: 'disk', segmentBytesMax: 4096 }],
  ['FileLog (buffered durability, 4 KiB segments)', { durability: 'buffered', segmentBytesMax: 4096 }],
] as const) {
  const factory: LogFactory = {
      async open(codecOptions) {
        const dir = join(root, `log-${count++}`);
        const log = await FileLog.open(dir, { ...options, ...codecOptions });
        dirs.set(log, dir);
        return log;
      },
      async reopen<T>(log: Log<T>, codecOptions?: object) {
        await log.close();
        const dir = dirs.get(log) as string;
        const again = await FileLog.open<T>(dir, { ...options, ...codecOptions });
        dirs.set(again, dir);
        return again;
      },
  };
  logSuite({ name: label, factory });
  deleteSuite({ name: label, factory });
}
