import { backup, restore } from '../../ops/backup.js';
import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { exitStatus } from '../report.js';
import { runInterruptible } from './interrupt.js';

const backupUsage = usageText(
  'backup <dir> <dest> [--copy] [--json]',
  'Writes a consistent snapshot of the log in <dir> and its views\' state into the new directory <dest>, while\n' +
    'appends go on: every record acknowledged before the backup started is in it. Sealed segments are hard-linked\n' +
    '(copied across file systems), the segment being written is copied up to its last whole batch. <dest> must\n' +
    'not exist; it appears only once complete. A progress bar goes to stderr.',
  [
    ['--copy', 'copy sealed segments instead of hard-linking them (a later delete in <dir> then leaves the backup as it is)'],
    ['--json', 'print the report as one JSON object'],
  ],
);

/** `sluice backup`: a consistent snapshot of a log directory. */
export const backupCommand: Command = {
  name: 'backup',
  summary: 'write a consistent snapshot of a log and its views into a new directory, while appends go on',
  spec: { usage: backupUsage, flags: { copy: { type: 'boolean' }, json: { type: 'boolean' } }, positionals: ['dir', 'dest'] },
  async run(line: CommandLine, io: CommandIo): Promise<number> {
    const [dir, dest] = [line.positional(0), line.positional(1)];
    const link = !line.boolean('copy');
    const report = await runInterruptible((context) => backup(dir, dest, { ...context, link }));
    await io.output.writeLine(
      line.boolean('json')
        ? JSON.stringify(report)
        : `backed up ${dir} to ${dest}: ${report.segments} segments (${report.linked} linked, ${report.copied} copied), ` +
            `${report.bytes} bytes, last offset ${report.lastOffset}, views: ${report.views.join(', ') || 'none'}` +
            (report.viewsDropped.length > 0 ? ` (left out, ahead of the log: ${report.viewsDropped.join(', ')})` : ''),
    );
    return exitStatus.ok;
  },
};

const restoreUsage = usageText(
  'restore <backup> <dir> [--json]',
  'Copies the backup in <backup> into the new directory <dir>, checks the copy (as `sluice check`), and only then\n' +
    'gives it its name: the restored log opens and passes check. <dir> must not exist. A progress bar goes to stderr.',
  [['--json', 'print the report as one JSON object']],
);

/** `sluice restore`: a backup into a new log directory. */
export const restoreCommand: Command = {
  name: 'restore',
  summary: 'restore a backup into a new log directory, checked before it appears',
  spec: { usage: restoreUsage, flags: { json: { type: 'boolean' } }, positionals: ['backup', 'dir'] },
  async run(line: CommandLine, io: CommandIo): Promise<number> {
    const [from, dir] = [line.positional(0), line.positional(1)];
    const report = await runInterruptible((context) => restore(from, dir, context));
    await io.output.writeLine(
      line.boolean('json')
        ? JSON.stringify(report)
        : `restored ${from} into ${dir}: ${report.segments} segments, ${report.bytes} bytes, last offset ${report.lastOffset}, ` +
            `views: ${report.views.join(', ') || 'none'}` +
            (report.viewsCleared.length > 0 ? ` (to rebuild: ${report.viewsCleared.join(', ')})` : ''),
    );
    return exitStatus.ok;
  },
};
