/**
 * What a JetStream test file must undo even when a test fails or times out. node:test runs `after` hooks when a
 * test times out, but not the `finally` blocks (nor `await using` disposals) of the test still waiting: child
 * processes, NATS connections and logs opened there would keep the file's process alive for ever (a log's
 * connection reconnects for ever). So tests register them here, and `natsFixture`'s `after` hook undoes them all
 * before it stops the servers: children killed by their pid, logs and connections closed. Children that shared
 * helpers started (the CLI, kill harnesses) are found by their parent pid in /proc and killed too.
 */
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** How long one close may take in the `after` hook before the hook moves on (to stopping the servers). */
const closeMsMax = 10_000;

const undos = new Set<() => unknown>();

/** Registers `undo` for the end of the file; the returned function unregisters it (once done by the test). */
export function deferCleanup(undo: () => unknown): () => void {
  undos.add(undo);
  return () => undos.delete(undo);
}

/** Kills `child` by its pid at the end of the file if it still runs then. */
export function trackChild<C extends ChildProcess>(child: C): C {
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // It exited meanwhile.
      }
    }
  };
  const forget = deferCleanup(kill);
  child.once('exit', forget);
  return child;
}

/** Closes what `opening` resolves to (a log, a database, a NATS connection) at the end of the file. */
export async function track<C extends { close(): Promise<unknown> }>(opening: Promise<C>): Promise<C> {
  const closeable = await opening;
  deferCleanup(() => closeable.close());
  return closeable;
}

/** The pids of this process's children still running (from /proc; none where there is no /proc). */
export function childPids(): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so split after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === process.pid && fields[0] !== 'Z') pids.push(Number(entry));
    } catch {
      // It exited meanwhile.
    }
  }
  return pids;
}

/**
 * Undoes everything registered: children first (synchronously; with every other child of this process but
 * `keep`), then closes, each bounded by `closeMsMax` with an unreferenced timer. Never throws: a close that fails
 * is reported and the rest go on.
 */
export async function cleanUpAll(keep: ReadonlySet<number> = new Set()): Promise<void> {
  for (const pid of childPids()) {
    if (keep.has(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // It exited meanwhile.
    }
  }
  const pending = [...undos];
  undos.clear();
  await Promise.all(
    pending.map(async (undo) => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, closeMsMax);
        timer.unref();
      });
      try {
        await Promise.race([Promise.resolve().then(undo), late]);
      } catch (error) {
        process.stderr.write(`cleanup after the tests failed: ${String(error)}\n`);
      } finally {
        clearTimeout(timer);
      }
    }),
  );
}
