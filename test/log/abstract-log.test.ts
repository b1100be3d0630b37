import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isSluiceError } from '../../src/errors.js';
import { MemoryLog } from '../../src/log/memory/memory-log.js';

const memoryLogModule = fileURLToPath(new URL('../../src/log/memory/memory-log.js', import.meta.url));

describe('AbstractLog', () => {
  it('rethrows a subscriber error asynchronously, after the append resolved and other subscribers ran', () => {
    // In a child process: the error must reach the process as an uncaught exception, as an EventEmitter's would.
    const script = `
      const { MemoryLog } = await import(${JSON.stringify(memoryLogModule)});
      const log = new MemoryLog();
      log.subscribe(() => { throw new Error('listener failure'); });
      log.subscribe((since) => console.log('second listener', since));
      console.log('appended', await log.append('a'));
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.match(child.stdout, /second listener 0\nappended 0/);
    assert.match(child.stderr, /listener failure/);
    assert.notEqual(child.status, 0);
  });

  it('takes an aborted live stream off the waiting list, and stops following once none waits', async () => {
    // A read-only file log's follower holds the process open while it follows: what start and stop count here.
    class Following extends MemoryLog<string> {
      started = 0;
      stopped = 0;
      protected override _followStart(): void {
        this.started++;
      }
      protected override _followStop(): void {
        this.stopped++;
      }
    }
    const log = new Following();
    const controllers = [new AbortController(), new AbortController()];
    const waiting = controllers.map((controller) => log.stream({ live: true, signal: controller.signal })[Symbol.asyncIterator]().next());
    // Both streams read nothing and wait (their reads settle within microtasks; this runs after them).
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual([log.started, log.stopped], [1, 0]);
    const aborted = (error: unknown): boolean => isSluiceError(error, 'ABORTED');
    (controllers[0] as AbortController).abort();
    await assert.rejects(waiting[0] as Promise<unknown>, aborted);
    assert.deepEqual([log.started, log.stopped], [1, 0], 'the other stream still waits');
    (controllers[1] as AbortController).abort();
    await assert.rejects(waiting[1] as Promise<unknown>, aborted);
    assert.deepEqual([log.started, log.stopped], [1, 1]);
    // Nobody waits: an append wakes no one and starts nothing.
    await log.append('a');
    assert.deepEqual([log.started, log.stopped], [1, 1]);
    await log.close();
  });
});
