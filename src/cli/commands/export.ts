import { exportFlumeOffset } from '../../ops/export.js';
import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { fileModeFlag, fileModeHelp, fileModeOf } from '../file-mode.js';
import { encryptionOf, flumeFileFormatOf, keyFileFlags } from '../log-format.js';
import { ProgressBar } from '../progress-bar.js';
import { exitStatus } from '../report.js';

const usage = usageText(
  'export <dir> <file> --format flumelog-offset [--offset-width 4|6|8] [--legacy] [--file-mode 0640] [--json]',
  'Writes the records of the log in <dir> into the new flumelog-offset file <file> (never overwritten), their\n' +
    'bytes unchanged, with a progress bar on stderr. Offsets change; keys and times are not kept.',
  [
    ['--format flumelog-offset', 'the format to write (the only one, for now)'],
    ['--offset-width 4|6|8', 'the offset width to write (default 4)'],
    ['--legacy', 'write the legacy (pre-3.0) format'],
    fileModeHelp,
    ['--json', 'print the result as one JSON object'],
    ['--key-file <path>', 'the keys of an encrypted log (the file written holds its records decrypted)'],
  ],
);

/** `sluice export`: a native log into a new flumelog-offset file. */
export const exportCommand: Command = {
  name: 'export',
  summary: 'write a log into a new flumelog-offset file',
  spec: {
    usage,
    flags: {
      format: { type: 'string' },
      'offset-width': { type: 'string' },
      legacy: { type: 'boolean' },
      json: { type: 'boolean' },
      ...keyFileFlags,
      ...fileModeFlag,
    },
    positionals: ['dir', 'file'],
  },
  run,
};

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  const [dir, file] = [line.positional(0), line.positional(1)];
  const format = line.string('format');
  if (format !== 'flumelog-offset') throw line.usageError('--format flumelog-offset is required');
  const bar = new ProgressBar(process.stderr);
  let result;
  try {
    const { encryption } = encryptionOf(line);
    result = await exportFlumeOffset(dir, file, {
      ...flumeFileFormatOf(line),
      ...fileModeOf(line),
      ...(encryption === undefined ? {} : { encryption }),
      onProgress: (progress) => bar.update(progress),
    });
  } finally {
    bar.done();
  }
  await io.output.writeLine(
    line.boolean('json') ? JSON.stringify(result) : `exported ${result.records} records to ${file} (${result.bytes} bytes)`,
  );
  return exitStatus.ok;
}
