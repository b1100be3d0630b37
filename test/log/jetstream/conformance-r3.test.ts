import { it } from 'node:test';
import { JetStreamLog } from '../../../src/log/jetstream/jetstream-log.js';
import type { Log } from '../../../src/log/log.js';
import { logSuite } from '../../conformance/log-suite.js';
import { track } from './cleanup.js';
import { natsFixture } from './nats-servers.js';

// One three-node cluster for the whole suite (starting it is the slow part); every log is a new R3 stream on it.
const nats = natsFixture(3);
let count = 0;
const streams = new WeakMap<object, string>();

if (nats.skip !== undefined) {
  it('Log conformance: JetStreamLog (three nodes, three replicas)', { skip: nats.skip }, () => undefined);
} else {
  logSuite({
    name: 'JetStreamLog (three nodes, three replicas)',
    factory: {
      recordBytes: () => 1,
      denseOffsets: true,
      async open<T>(codecOptions?: object) {
        const stream = `conformance-r3-${count++}`;
        const log = await track(JetStreamLog.open<T>({ servers: nats.servers().urls, stream, replicas: 3, ...codecOptions }));
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
