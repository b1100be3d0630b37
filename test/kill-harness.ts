import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';

/**
 * Runs `script` (an ES module's source) in a child process with `env` added, hands every JSON line it prints to
 * `onLine`, and kills it with SIGKILL as soon as `onLine` returns true (or `poll`, asked every `pollMs` for what
 * lines do not show, such as a file the child wrote). Fails when the child ends by itself; never leaves it running.
 */
export async function killWhen<Line>(
  script: string,
  env: Record<string, string>,
  onLine: (line: Line) => boolean,
  context: string,
  poll?: { readonly everyMs: number; readonly check: () => boolean },
): Promise<void> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (data: string) => (stderr += data));
  let pending = '';
  let killed = false;
  const kill = (): void => {
    killed = true;
    child.kill('SIGKILL');
  };
  child.stdout.setEncoding('utf8').on('data', (data: string) => {
    if (killed) return;
    pending += data;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (!onLine(JSON.parse(line) as Line)) continue;
      kill();
      return;
    }
  });
  const timer = poll === undefined ? undefined : setInterval(() => !killed && poll.check() && kill(), poll.everyMs);
  try {
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    assert.equal(signal, 'SIGKILL', `${context}: the child ended by itself (exit code ${code}): ${stderr}`);
  } finally {
    clearInterval(timer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/**
 * Runs `script` with `config` (and `ackFile`) in `SLUICE_KILL_CONFIG`, kills it once `weigh` has counted `target`
 * on the acknowledgement lines it prints, and returns the lines of `ackFile`: the child writes each one there
 * synchronously before printing it, so the file, not stdout, is the truth, and a line the kill cut short never
 * counts.
 */
export async function runUntilKilled<Ack>(
  script: string,
  config: object,
  ackFile: string,
  target: number,
  weigh: (ack: Ack) => number,
  context: string,
): Promise<Ack[]> {
  let counted = 0;
  await killWhen<Ack>(
    script,
    { SLUICE_KILL_CONFIG: JSON.stringify({ ...config, ackFile }) },
    (ack) => (counted += weigh(ack)) >= target,
    context,
  );
  return readAcks<Ack>(ackFile);
}

/** The whole lines of an ack file (a line the kill cut short never counts); none when the child wrote none. */
export function readAcks<Ack>(ackFile: string): Ack[] {
  let text: string;
  try {
    text = readFileSync(ackFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Ack);
}

/**
 * Child-script source shared by the append kill tests. `acknowledge(pending, ack)` counts an append in flight;
 * once it resolves, `{ ...ack, offsets }` is written as a line to the ack file (synchronously: once written, the
 * acknowledgement survives the kill) and to stdout, and `pump()` starts the next; a rejected append ends the child
 * with status 3. `pump()` keeps `inFlightMax` (a number, or the name of the script's variable) appends in flight by
 * calling the script's `start()`. The script imports `writeSync`, opens `acks`, defines `start` and calls `pump()`.
 */
export function ackedAppendsSource(inFlightMax: string | number): string {
  return `
let inFlight = 0;
function acknowledge(pending, ack) {
  inFlight++;
  pending.then(
    (offsets) => {
      const line = JSON.stringify({ ...ack, offsets }) + '\\n';
      writeSync(acks, line);
      process.stdout.write(line);
      inFlight--;
      pump();
    },
    (error) => {
      writeSync(2, 'append failed: ' + (error && error.stack) + '\\n');
      process.exit(3);
    },
  );
}
function pump() {
  while (inFlight < ${inFlightMax}) start();
}`;
}
