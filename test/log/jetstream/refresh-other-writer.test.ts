import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JetStreamLog } from '../../../src/log/jetstream/jetstream-log.js';
import { collect } from '../../conformance/log-suite.js';
import { track } from './cleanup.js';
import { natsFixture } from './nats-servers.js';

const nats = natsFixture(1);

describe('JetStreamLog reading the end of a stream another writer appended to', { skip: nats.skip, timeout: 60_000 }, () => {
  it('shows the other writer’s records while its own append, which must move after them, is in flight', async () => {
    const open = (): Promise<JetStreamLog<string>> =>
      track(JetStreamLog.open<string>({ servers: nats.servers().urls, stream: 'two-writers' }));
    await using first = await open();
    await using second = await open();
    assert.equal(await second.append('theirs'), 0);
    // The first log's append expects sequence 1, which the other writer took: it is moved after it (offset 1), and
    // resolves only after a round of retries. Meanwhile get and streams must still show offset 0, stored before it began.
    const appending = first.append('ours');
    assert.equal(await first.get(0), 'theirs');
    const records = await collect(first.stream({ limit: 1 }));
    assert.deepEqual(records.map((record) => [record.offset, record.value]), [[0, 'theirs']]);
    assert.equal(await appending, 1);
    assert.deepEqual((await collect(first.stream())).map((record) => record.value), ['theirs', 'ours']);
  });
});
