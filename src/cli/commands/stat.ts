import { stat, statFlumeOffset, type LogStat } from '../../ops/stat.js';
import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { flumeFormatOf, logFormatFlags, logFormatHelp, natsLocationOf, statJetStream } from '../log-format.js';
import { exitStatus } from '../report.js';

const usage = usageText(
  'stat <dir> [--json] [--format <format>]',
  'Prints the segments of the log in <dir> with their sizes and record counts, its first and last offset\n' +
    '(-1 when the log is empty), and each view stored under <dir>/views/ with its version, since and size.\n' +
    'A flumelog-offset file (--format) is shown as one segment, and so is a JetStream stream (--nats), whose\n' +
    'views live with each process that uses it.',
  [['--json', 'print one JSON object instead of a table'], ...logFormatHelp],
);

/** `sluice stat`: segments, records, bytes, offsets. */
export const statCommand: Command = {
  name: 'stat',
  summary: 'print the segments, record count, size and offsets of a log, and its views',
  spec: { usage, flags: { json: { type: 'boolean' }, ...logFormatFlags }, positionals: ['dir'] },
  run,
};

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  const path = line.positional(0);
  const nats = natsLocationOf(line, path);
  const flume = flumeFormatOf(line);
  const result =
    nats !== undefined
      ? await statJetStream(nats)
      : flume === undefined
        ? await stat(path)
        : await statFlumeOffset(path, flume);
  const lines = line.boolean('json') ? [JSON.stringify(result)] : formatTable(result);
  for (const text of lines) await io.output.writeLine(text);
  return exitStatus.ok;
}

/** The human-readable form: one row per segment, a total row, the offsets, then one row per view. */
export function formatTable(result: LogStat): string[] {
  const rows = result.segments.map((segment) => [
    segment.file,
    String(segment.base),
    String(segment.bytes),
    String(segment.records),
    String(segment.deletedRecords),
    String(segment.deletedBytes),
  ]);
  const total = ['total', '', String(result.bytes), String(result.records), String(result.deletedRecords), String(result.deletedBytes)];
  const lines = [
    ...alignColumns([['segment', 'base', 'bytes', 'records', 'deleted', 'deleted bytes'], ...rows, total], 1),
    '',
    `first offset  ${result.firstOffset}`,
    `last offset   ${result.lastOffset}`,
    ...(result.chain === undefined ? [] : [`chained       ${result.chain ?? 'no'}`]),
    ...(result.encrypted === undefined ? [] : [`encrypted     ${result.encrypted ? `yes (AES-256-GCM), key ids ${keyIds(result)}` : 'no'}`]),
  ];
  if (result.views.length === 0) return lines;
  const views = result.views.map((view) => [
    view.name,
    view.storage,
    view.version === null ? '-' : String(view.version),
    view.since === null ? '-' : String(view.since),
    String(view.bytes),
    view.problem ?? '',
  ]);
  return [...lines, '', ...alignColumns([['view', 'storage', 'version', 'since', 'bytes', ''], ...views], 2)];
}

/** The key ids of an encrypted log's segments, oldest first, each once. */
function keyIds(result: LogStat): string {
  return [...new Set(result.segments.map((segment) => segment.keyId))].filter((id) => id !== undefined).join(', ');
}

/** Pads cells into columns: text columns (before `numbersFrom`, and the last) align left, numbers right. */
function alignColumns(table: readonly string[][], numbersFrom: number): string[] {
  const columns = table[0]?.length ?? 0;
  const widths = Array.from({ length: columns }, (_, column) => Math.max(...table.map((row) => (row[column] ?? '').length)));
  // Numbers align right, so digits of equal weight line up.
  const format = (row: readonly string[]): string =>
    row
      .map((cell, column) => {
        const width = column === columns - 1 && numbersFrom > 1 ? 0 : (widths[column] ?? 0);
        return column < numbersFrom || width === 0 ? cell.padEnd(width) : cell.padStart(width);
      })
      .join('  ')
      .trimEnd();
  return table.map(format);
}
