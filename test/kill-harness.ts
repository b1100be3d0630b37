import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';

/**
 * Runs `script` (an ES module's source) in a child process with `config` in `SLUICE_KILL_CONFIG`, kills it with
 * SIGKILL once `weigh` has counted `target` on the acknowledgement lines it prints, and returns the lines of
 * `ackFile`: the child writes each acknowledgement there synchronously before printing it, so the file, not
 * stdout, is the truth, and a line the kill cut short never counts. Fails when the child ends by itself.
 */
export async function runUntilKilled<Ack>(
  script: string,
  config: object,
  ackFile: string,
  target: number,
  weigh: (ack: Ack) => number,
  context: string,
): Promise<Ack[]> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, SLUICE_KILL_CONFIG: JSON.stringify({ ...config, ackFile }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (data: string) => (stderr += data));
  let pending = '';
  let counted = 0;
  let killed = false;
  child.stdout.setEncoding('utf8').on('data', (data: string) => {
    pending += data;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) counted += weigh(JSON.parse(line) as Ack);
    if (!killed && counted >= target) {
      killed = true;
      child.kill('SIGKILL');
    }
  });
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  assert.equal(signal, 'SIGKILL', `${context}: the child ended by itself (exit code ${code}): ${stderr}`);
  const text = readFileSync(ackFile, 'utf8');
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Ack);
}
