import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { jsonCodec, logFormatFlags, logFormatHelp, openReadOnly } from '../log-format.js';
import { exitStatus } from '../report.js';

const usage = usageText(
  'get <dir> <offset> [--format <format>]',
  'Prints the value of the record at <offset> as JSON on one line. <dir> is a log directory, or a file with --format.',
  logFormatHelp,
);

/** `sluice get`: one record's value. */
export const getCommand: Command = {
  name: 'get',
  summary: 'print the value of the record at an offset',
  spec: { usage, flags: logFormatFlags, positionals: ['dir', 'offset'] },
  run,
};

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  const dir = line.positional(0);
  const offset = line.integerPositional(1);
  const log = await openReadOnly(line, dir, jsonCodec);
  try {
    const value = await log.get(offset);
    await io.output.writeLine(JSON.stringify(value));
  } finally {
    await log.close();
  }
  return exitStatus.ok;
}
