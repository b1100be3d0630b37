import { recover, type RecoverReport } from '../../ops/recover.js';
import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { exitStatus } from '../report.js';
import { runInterruptible } from './interrupt.js';

const usage = usageText(
  'recover <dir> [--json]',
  'Cuts the log in <dir> back to its longest valid prefix: the bytes cut from the segment where damage starts,\n' +
    'and every later segment, are moved into <dir>/quarantine/ (never deleted). The state of every view that is\n' +
    'damaged or ahead of the recovered log is removed, so the view rebuilds when next used. Takes the writer\'s\n' +
    'lock (fails with LOCKED while a writer runs). Interrupted, it leaves a log that opens: run it again.',
  [['--json', 'print the report as one JSON object']],
);

/** `sluice recover`: repair a damaged log by cutting it to its valid prefix. */
export const recoverCommand: Command = {
  name: 'recover',
  summary: 'cut a damaged log back to its longest valid prefix, keeping what is cut in quarantine/',
  spec: { usage, flags: { json: { type: 'boolean' } }, positionals: ['dir'] },
  run,
};

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  const dir = line.positional(0);
  const report = await runInterruptible((context) => recover(dir, context));
  const lines = line.boolean('json') ? [JSON.stringify(report)] : describeReport(report);
  for (const text of lines) await io.output.writeLine(text);
  return exitStatus.ok;
}

function describeReport(report: RecoverReport): string[] {
  const lines = [
    ...report.cuts.map((cut) => `cut ${cut.file} at position ${cut.position}: ${cut.bytes} bytes kept in ${cut.quarantine}`),
    ...report.removedSegments.map((removal) => `moved ${removal.file} to ${removal.quarantine}`),
    ...report.temporaryRemoved.map((file) => `removed ${file}`),
    ...report.viewsCleared.map((view) => `cleared view ${view.name} (it rebuilds): ${view.reason}`),
  ];
  const what = report.changed ? 'recovered' : 'nothing to recover';
  lines.push(`${report.dir}: ${what}; ${report.records} records, last offset ${report.lastOffset}`);
  return lines;
}
