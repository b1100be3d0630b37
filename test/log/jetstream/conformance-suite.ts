import { it } from 'node:test';
import { JetStreamLog } from '../../../src/log/jetstream/jetstream-log.js';
import type { Log } from '../../../src/log/log.js';
import { logSuite } from '../../conformance/log-suite.js';
import { track } from './cleanup.js';
import { natsFixture } from './nats-servers.js';

/**
 * The log conformance suite on JetStream: one set of `nodes` servers for the whole suite (starting them is the
 * slow part), every log a new stream with `replicas` replicas on it.
 */
export function jetStreamConformance(name: string, nodes: 1 | 3, replicas: number): void {
  const nats = natsFixture(nodes);
  let count = 0;
  const streams = new WeakMap<object, string>();
  const prefix = `conformance-r${replicas}-`;
  if (nats.skip !== undefined) {
    it(`Log conformance: JetStreamLog (${name})`, { skip: nats.skip }, () => undefined);
    return;
  }
  logSuite({
    name: `JetStreamLog (${name})`,
    factory: {
      recordBytes: () => 1,
      denseOffsets: true,
      async open<T>(codecOptions?: object) {
        const stream = `${prefix}${count++}`;
        const log = await track(JetStreamLog.open<T>({ servers: nats.servers().urls, stream, replicas, ...codecOptions }));
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
