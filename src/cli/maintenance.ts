import { FileLog, type MaintenanceOptions } from '../log/file/file-log.js';
import type { CommandLine } from './args.js';
import type { CommandIo } from './command.js';
import { encryptionOf } from './log-format.js';
import { ProgressBar } from './progress-bar.js';
import { exitStatus } from './report.js';

/**
 * Runs one maintenance call (`trim`, `compact`) on the log in `dir` as a writer, with a progress bar on stderr,
 * and prints its result: as JSON with `--json`, else as `describe` puts it.
 */
export async function runMaintenance<R>(
  line: CommandLine,
  io: CommandIo,
  dir: string,
  task: (log: FileLog, options: MaintenanceOptions) => Promise<R>,
  describe: (result: R) => string,
): Promise<number> {
  const log = await FileLog.open(dir, { create: false, ...encryptionOf(line) });
  const bar = new ProgressBar(process.stderr);
  let result: R;
  try {
    result = await task(log, { onProgress: (progress) => bar.update(progress) });
  } finally {
    bar.done();
    await log.close();
  }
  await io.output.writeLine(line.boolean('json') ? JSON.stringify(result) : describe(result));
  return exitStatus.ok;
}
