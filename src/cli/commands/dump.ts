import { isSluiceError } from '../../errors.js';
import type { StreamOptions } from '../../log/log.js';
import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { jsonCodec, logFormatFlags, logFormatHelp, openReadOnly } from '../log-format.js';
import { exitStatus } from '../report.js';

const usage = usageText(
  'dump <dir> [--gt N] [--gte N] [--lt N] [--lte N] [--reverse] [--limit N] [--live] [--format <format>]',
  'Prints the records of the log in <dir> (a log directory, or a file with --format) as JSON lines:\n' +
    '{"offset":N,"value":...}. Bounds are offsets and need not be record starts.',
  [
    ['--gt N, --gte N', 'only records after (at or after) offset N'],
    ['--lt N, --lte N', 'only records before (at or before) offset N'],
    ['--reverse', 'newest first'],
    ['--limit N', 'at most N records'],
    ['--live', 'keep printing new records as they are appended, until SIGINT or SIGTERM'],
    ...logFormatHelp,
  ],
);

const integerFlags = ['gt', 'gte', 'lt', 'lte', 'limit'] as const;

/** `sluice dump`: a range of records as JSON lines. */
export const dumpCommand: Command = {
  name: 'dump',
  summary: 'print records as JSON lines (a range, reversed, limited, or live)',
  spec: {
    usage,
    flags: {
      gt: { type: 'string' },
      gte: { type: 'string' },
      lt: { type: 'string' },
      lte: { type: 'string' },
      limit: { type: 'string' },
      reverse: { type: 'boolean' },
      live: { type: 'boolean' },
      ...logFormatFlags,
    },
    positionals: ['dir'],
  },
  run,
};

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  const dir = line.positional(0);
  const options = streamOptionsOf(line);
  const stopping = new AbortController();
  const stop = (): void => stopping.abort();
  // A reader that went away (`| head`) is a reason to stop, not an error.
  if (io.output.closedSignal.aborted) return exitStatus.ok;
  io.output.closedSignal.addEventListener('abort', stop, { once: true });
  const log = await openReadOnly(line, dir, jsonCodec);
  const stopFollowing = options.live === true ? followUntilSignalled(stop) : undefined;
  try {
    for await (const record of log.stream({ ...options, signal: stopping.signal })) {
      const backedUp = io.output.writeLine(JSON.stringify({ offset: record.offset, value: record.value }));
      if (backedUp !== undefined) await backedUp;
    }
  } catch (error) {
    if (!(stopping.signal.aborted && isSluiceError(error, 'ABORTED'))) throw error;
  } finally {
    stopFollowing?.();
    io.output.closedSignal.removeEventListener('abort', stop);
    await log.close();
  }
  return exitStatus.ok;
}

function streamOptionsOf(line: CommandLine): StreamOptions {
  const options: { -readonly [K in keyof StreamOptions]: StreamOptions[K] } = {};
  for (const name of integerFlags) {
    const value = line.integer(name);
    if (value !== undefined) options[name] = value;
  }
  if (line.boolean('reverse')) options.reverse = true;
  if (line.boolean('live')) options.live = true;
  return options;
}

/**
 * Stops a live dump on SIGINT or SIGTERM, and keeps the process alive meanwhile: a read-only log waits for new
 * records with an unref'd timer and a non-persistent watcher, which would otherwise let Node exit at once.
 * Returns the function that undoes both.
 */
function followUntilSignalled(stop: () => void): () => void {
  const keepAlive = setInterval(() => {}, 1 << 30);
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return () => {
    clearInterval(keepAlive);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  };
}
