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
  // F-72, F-74: the secured logs owe every behaviour of the plain one.
  ['FileLog (chained, SHA-256)', { chain: 'sha256' }],
  ['FileLog (keyed chain, HMAC-SHA-256, disk durability)', { chain: 'hmac-sha256', chainKey: Buffer.alloc(32, 0x3c), durability: 'disk' }],
  ['FileLog (encrypted, 4 KiB segments)', { encryption: { key: { id: 7, key: Buffer.alloc(32, 0x5a) } }, segmentBytesMax: 4096 }],
  [
    'FileLog (chained BLAKE2s and encrypted, buffered, 4 KiB segments)',
    { chain: 'blake2s256', encryption: { key: { id: 1, key: Buffer.alloc(32, 0xa5) } }, durability: 'buffered', segmentBytesMax: 4096 },
  ],
] as const) {
  // F-71, F-72: a nonce and tag (28 bytes) and a digest and link (64 bytes) per frame.
  const securityBytes = ('encryption' in options ? 28 : 0) + ('chain' in options ? 64 : 0);
  const factory: LogFactory = {
      recordBytes: (valueBytes) => 32 + securityBytes + valueBytes,
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
