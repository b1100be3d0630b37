import { stat, statFlumeOffset, type LogStat } from '../../ops/stat.js';
import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { flumeFormatOf, logFormatFlags, logFormatHelp } from '../log-format.js';
import { exitStatus } from '../report.js';

const usage = usageText(
  'stat <dir> [--json] [--format <format>]',
  'Prints the segments of the log in <dir> with their sizes and record counts, and its first and last offset\n' +
    '(-1 when the log is empty). A flumelog-offset file (--format) is shown as one segment.',
  [['--json', 'print one JSON object instead of a table'], ...logFormatHelp],
);

/** `sluice stat`: segments, records, bytes, offsets. */
export const statCommand: Command = {
  name: 'stat',
  summary: 'print the segments, record count, size and offsets of a log',
  spec: { usage, flags: { json: { type: 'boolean' }, ...logFormatFlags }, positionals: ['dir'] },
  run,
};

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  const path = line.positional(0);
  const flume = flumeFormatOf(line);
  const result = flume === undefined ? await stat(path) : await statFlumeOffset(path, flume);
  const lines = line.boolean('json') ? [JSON.stringify(result)] : formatTable(result);
  for (const text of lines) await io.output.writeLine(text);
  return exitStatus.ok;
}

/** The human-readable form: one row per segment, a total row, then the offsets. */
export function formatTable(result: LogStat): string[] {
  const header = ['segment', 'base', 'bytes', 'records'];
  const rows = result.segments.map((segment) => [
    segment.file,
    String(segment.base),
    String(segment.bytes),
    String(segment.records),
  ]);
  const total = ['total', '', String(result.bytes), String(result.records)];
  const table = [header, ...rows, total];
  const widths = header.map((_, column) => Math.max(...table.map((row) => (row[column] ?? '').length)));
  // Names align left, numbers right, so digits of equal weight line up.
  const format = (row: string[]): string =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0)))
      .join('  ');
  return [
    ...table.map(format),
    '',
    `first offset  ${result.firstOffset}`,
    `last offset   ${result.lastOffset}`,
  ];
}
