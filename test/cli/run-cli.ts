import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The compiled CLI, next to this compiled test in `dist/`. */
export const cliPath = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface CliResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A CLI process still running, with what it printed so far. */
export interface RunningCli {
  readonly child: ChildProcess;
  stdout(): string;
  readonly exited: Promise<CliResult>;
}

/** Starts `sluice <args>`; stdin stays open for the caller (or is closed at once when `input` is given). */
export function startCli(args: readonly string[], input?: string): RunningCli {
  const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  if (input !== undefined) child.stdin.end(input);
  const exited = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
  return { child, stdout: () => stdout, exited };
}

/** Runs `sluice <args>` to completion with `input` (default: nothing) on stdin. */
export function runCli(args: readonly string[], input = ''): Promise<CliResult> {
  return startCli(args, input).exited;
}

/** Polls `condition` every few milliseconds; rejects when it is still false after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The non-empty lines of a command's output. */
export function linesOf(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}
