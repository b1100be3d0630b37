import { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { jsonCodec, logFormatFlags, logFormatHelp, openReadOnly } from '../log-format.js';
import { dumpCommand } from './dump.js';

const defaultLines = 10;

const usage = usageText(
  'tail <dir> [-n N] [--format <format>]',
  'Prints the last N records of the log in <dir> as JSON lines ({"offset":N,"value":...}), then keeps printing\n' +
    'new records as a writer appends them, until SIGINT or SIGTERM (as `tail -f`).',
  [['-n, --lines N', `how many of the last records to print first (default ${defaultLines})`], ...logFormatHelp],
);

/** `sluice tail`: the last records, then the new ones as they come. */
export const tailCommand: Command = {
  name: 'tail',
  summary: 'print the last records of a log, then follow new ones (tail -f)',
  spec: { usage, flags: { lines: { type: 'string', short: 'n' }, ...logFormatFlags }, positionals: ['dir'] },
  run,
};

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  const dir = line.positional(0);
  const count = line.integer('lines') ?? defaultLines;
  const bound = await startOf(line, dir, count);
  // From the first record to print on, this is `dump --live`: the same reading, output and stopping.
  // Every flag that says how to open the log goes on, so none can be forgotten here (keys, NATS access).
  const format = Object.keys(logFormatFlags).flatMap((name) => {
    const value = line.string(name);
    return value === undefined ? [] : [`--${name}`, value];
  });
  // With --nats there is no <dir> to pass on.
  const where = dir === '' ? [] : [dir];
  const dumpLine = CommandLine.parse([...where, '--live', ...bound, ...format], dumpCommand.spec);
  return dumpCommand.run(dumpLine, io);
}

/** The dump bound that starts at the `count`-th last record (after the last one when `count` is 0). */
async function startOf(line: CommandLine, dir: string, count: number): Promise<string[]> {
  const log = await openReadOnly(line, dir, jsonCodec);
  try {
    if (log.since < 0) return [];
    if (count === 0) return ['--gt', String(log.since)];
    let first: number | undefined;
    for await (const record of log.stream({ reverse: true, limit: count })) first = record.offset;
    return first === undefined ? [] : ['--gte', String(first)];
  } finally {
    await log.close();
  }
}
