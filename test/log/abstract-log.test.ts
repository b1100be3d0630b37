import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

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
});
