import { it } from 'node:test';
import { JetStreamLog } from '../../../src/log/jetstream/jetstream-log.js';
import type { Log } from '../../../src/log/log.js';
import { logSuite } from '../../conformance/log-suite.js';
import { track } from './cleanup.js';
import { natsFixture } from './nats-servers.js';

const nats = natsFixture(1);
let count = 0;
const streams = new WeakMap<object, string>();

if (nats.skip !== undefined) {
  it('Log conformance: JetStreamLog (single node)', { skip: nats.skip }, () => undefined);
} else {
  logSuite({
    name: 'JetStreamLog (single node)',
    factory: {
      recordBytes: () => 1,
      denseOffsets: true,
      async open<T>(codecOptions?: object) {
        const stream = `conformance-${count++}`;
        const log = await track(JetStreamLog.open<T>({ servers: nats.servers().urls, stream, ...codecOptions }));
        streams.set(log, stream);
        return log;
      },
      async reopen<T>(log: Log<T>, codecOptions?: object) {
        await log.close();
        const stream = streams.get(log) as string;
        const again = await track(JetStreamLog.open<T>({ servers: nats.servers().urls, stream, ...codecOptions }));
        streams.set(again, stream);
        return again;
      },
    },
  });
}
