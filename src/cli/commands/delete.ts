import { FileLog } from '../../log/file/file-log.js';
import { FlumeOffsetLog } from '../../log/flume-offset/flume-offset-log.js';
import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { hasNatsAccessFlags } from '../nats-access.js';
import { encryptionOf, flumeFormatOf, jsonCodec, logFormatFlags, logFormatHelp, natsHelp } from '../log-format.js';
import { exitStatus } from '../report.js';

const usage = usageText(
  'delete <dir> <offsets> [--format <format>] [--json]',
  'Deletes the records at <offsets> (one offset, or several separated by commas) from the log in <dir> (or a\n' +
    'file with --format): their bytes are erased,\n' +
    'their offsets stay taken. Every offset is checked before anything is deleted. Views learn of it when the\n' +
    'database deletes (db.delete); after this command, index reads skip the deleted records and a rebuild drops them.',
  [...logFormatHelp.filter((option) => !natsHelp.includes(option)), ['--json', 'print the result as one JSON object']],
);

/** `sluice delete`: deletes records by offset. */
export const deleteCommand: Command = {
  name: 'delete',
  summary: 'delete records by offset (their offsets stay taken)',
  spec: { usage, flags: { ...logFormatFlags, json: { type: 'boolean' } }, positionals: ['dir', 'offsets'] },
  run,
};

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  // The NATS flags are parsed (they are every log command's) only to be refused here by name: a JetStream log has
  // no deletes, and a stream's messages must not be deleted behind its back.
  if (line.string('nats') !== undefined || line.string('stream') !== undefined || hasNatsAccessFlags(line)) {
    throw line.usageError('delete works on a log directory or a flumelog-offset file: a log on NATS JetStream has no deletes');
  }
  const dir = line.positional(0);
  const offsets = line
    .positional(1)
    .split(',')
    .map((text) => {
      if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(Number(text))) {
        throw line.usageError(`<offsets> must be offsets separated by commas, got '${text}'`);
      }
      return Number(text);
    });
  const flume = flumeFormatOf(line);
  const log =
    flume === undefined
      ? await FileLog.open(dir, { create: false, codec: jsonCodec, ...encryptionOf(line) })
      : await FlumeOffsetLog.open(dir, { ...flume, create: false, codec: jsonCodec });
  try {
    await log.delete(offsets);
  } finally {
    await log.close();
  }
  await io.output.writeLine(
    line.boolean('json')
      ? JSON.stringify({ deleted: offsets })
      : `deleted ${offsets.length} record${offsets.length === 1 ? '' : 's'}`,
  );
  return exitStatus.ok;
}
