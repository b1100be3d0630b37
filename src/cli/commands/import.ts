import { importFlumeOffset } from '../../ops/import.js';
import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { fileModeFlag, fileModeHelp, fileModeOf } from '../file-mode.js';
import { flumeFileFormatOf, keyFileFlags, keyFileHelp, securityOf } from '../log-format.js';
import { ProgressBar } from '../progress-bar.js';
import { exitStatus } from '../report.js';

const usage = usageText(
  'import <file> <dir> [--offset-width 4|6|8] [--legacy] [--file-mode 0640] [--json]',
  'Converts the flumelog-offset file <file> into a new Sluice log in <dir>, with a progress bar on stderr.\n' +
    'Every record that is not deleted is copied, its bytes unchanged, with its old offset as its record key; the\n' +
    "view 'flumelog-offsets' (importedOffsets()) maps each old offset to the new one. <file> is not modified.",
  [
    ['--offset-width 4|6|8', 'the offset width <file> was written with (default 4)'],
    ['--legacy', '<file> is in the legacy (pre-3.0) format'],
    fileModeHelp,
    ['--json', 'print the result as one JSON object'],
    ['--chain sha256|blake2s256|hmac-sha256', 'make the new log tamper-evident'],
    ...keyFileHelp,
  ],
);

/** `sluice import`: a flumelog-offset file into a new native log. */
export const importCommand: Command = {
  name: 'import',
  summary: 'convert a flumelog-offset file into a new log, keeping a table of old offsets',
  spec: {
    usage,
    flags: {
      'offset-width': { type: 'string' },
      legacy: { type: 'boolean' },
      json: { type: 'boolean' },
      chain: { type: 'string' },
      ...keyFileFlags,
      ...fileModeFlag,
    },
    positionals: ['file', 'dir'],
  },
  run,
};

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  const [file, dir] = [line.positional(0), line.positional(1)];
  const format = flumeFileFormatOf(line);
  const bar = new ProgressBar(process.stderr);
  let result;
  try {
    result = await importFlumeOffset(file, dir, { ...format, ...fileModeOf(line), log: securityOf(line), onProgress: (progress) => bar.update(progress) });
  } finally {
    bar.done();
  }
  await io.output.writeLine(
    line.boolean('json')
      ? JSON.stringify(result)
      : `imported ${result.records} records: offset ${result.lastSourceOffset} of ${file} is offset ${result.lastOffset} of ${dir}`,
  );
  return exitStatus.ok;
}
