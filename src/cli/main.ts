#!/usr/bin/env node
import { CommandLine, UsageError } from './args.js';
import type { Command, CommandIo } from './command.js';
import { appendCommand } from './commands/append.js';
import { backupCommand, restoreCommand } from './commands/backup.js';
import { checkCommand } from './commands/check.js';
import { compactCommand } from './commands/compact.js';
import { deleteCommand } from './commands/delete.js';
import { dumpCommand } from './commands/dump.js';
import { exportCommand } from './commands/export.js';
import { getCommand } from './commands/get.js';
import { importCommand } from './commands/import.js';
import { rebuildCommand } from './commands/rebuild.js';
import { recoverCommand } from './commands/recover.js';
import { statCommand } from './commands/stat.js';
import { tailCommand } from './commands/tail.js';
import { trimCommand } from './commands/trim.js';
import { LineOutput } from './output.js';
import { errorCode, exitStatus, reportError } from './report.js';

const commands: readonly Command[] = [
  appendCommand,
  getCommand,
  dumpCommand,
  statCommand,
  rebuildCommand,
  importCommand,
  exportCommand,
  trimCommand,
  deleteCommand,
  compactCommand,
  checkCommand,
  recoverCommand,
  backupCommand,
  restoreCommand,
  tailCommand,
];

const nameWidth = Math.max(...commands.map((command) => command.name.length));
const usage =
  'Usage: sluice <command> [options]\n\nCommands:\n' +
  commands.map((command) => `  ${command.name.padEnd(nameWidth)}  ${command.summary}\n`).join('') +
  '\nRun `sluice <command> --help` for the options of a command.\n';

/** Runs `sluice` with the arguments after the program name and resolves to the exit status. */
async function main(args: readonly string[], io: CommandIo): Promise<number> {
  const [name, ...rest] = args;
  if (name === '--help' || name === '-h' || name === 'help') {
    await io.output.writeLine(usage.trimEnd());
    return exitStatus.ok;
  }
  if (name === undefined) throw new UsageError('missing command', usage);
  const command = commands.find((candidate) => candidate.name === name);
  if (command === undefined) throw new UsageError(`unknown command '${name}'`, usage);
  const line = CommandLine.parse(rest, command.spec);
  if (line.help) {
    await io.output.writeLine(command.spec.usage.trimEnd());
    return exitStatus.ok;
  }
  return command.run(line, io);
}

const output = new LineOutput(process.stdout);
let status: number;
try {
  status = await main(process.argv.slice(2), { output, openInput: () => process.stdin });
} catch (error) {
  status = reportError(error);
}
await output.end();
if (output.failure !== undefined) {
  process.stderr.write(`sluice: ${errorCode(output.failure)}: cannot write to stdout: ${output.failure.message}\n`);
  status = exitStatus.failed;
}
process.exitCode = status;
