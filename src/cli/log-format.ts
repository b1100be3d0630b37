import { codecs, type Codec } from '../codec/codec.js';
import { FileLog } from '../log/file/file-log.js';
import { FlumeOffsetLog } from '../log/flume-offset/flume-offset-log.js';
import type { Log } from '../log/log.js';
import type { CommandLine, FlagSpec } from './args.js';
import type { OptionHelp } from './command.js';

/** The flags of every command that reads a log: which format the path is in. */
export const logFormatFlags: FlagSpec = { format: { type: 'string' }, 'offset-width': { type: 'string' } };

export const logFormatHelp: readonly OptionHelp[] = [
  ['--format <format>', "sluice (default: a log directory), flumelog-offset or flumelog-offset-legacy (a file)"],
  ['--offset-width 4|6|8', 'the offset width of a flumelog-offset file (default 4)'],
];

/** A flumelog-offset file's format as `FlumeOffsetLog.open` takes it, or `undefined` for a native log. */
export interface FlumeFormat {
  readonly offsetWidth?: 4 | 6 | 8;
  readonly legacy?: boolean;
}

/** Reads `--format` and `--offset-width`, rejecting unknown formats and widths as usage errors. */
export function flumeFormatOf(line: CommandLine): FlumeFormat | undefined {
  const format = line.string('format') ?? 'sluice';
  const width = widthOf(line);
  if (format === 'sluice') {
    if (width !== undefined) throw line.usageError('--offset-width goes with --format flumelog-offset');
    return undefined;
  }
  if (format === 'flumelog-offset') return { offsetWidth: width ?? 4 };
  if (format === 'flumelog-offset-legacy') {
    if (width !== undefined) throw line.usageError('the legacy flumelog-offset format has no offset width');
    return { legacy: true };
  }
  throw line.usageError(`unknown --format '${format}' (sluice, flumelog-offset or flumelog-offset-legacy)`);
}

/** For commands whose file is always flumelog-offset (import, export): `--offset-width` or `--legacy`. */
export function flumeFileFormatOf(line: CommandLine): FlumeFormat {
  const width = widthOf(line);
  if (!line.boolean('legacy')) return { offsetWidth: width ?? 4 };
  if (width !== undefined) throw line.usageError('the legacy flumelog-offset format has no offset width');
  return { legacy: true };
}

function widthOf(line: CommandLine): 4 | 6 | 8 | undefined {
  const width = line.integer('offset-width');
  if (width !== undefined && width !== 4 && width !== 6 && width !== 8) {
    throw line.usageError(`--offset-width must be 4, 6 or 8, got ${width}`);
  }
  return width;
}

/** Opens the log at `path` read-only in the format the command line names. */
export async function openReadOnly<T>(line: CommandLine, path: string, codec: Codec<T>): Promise<Log<T>> {
  const flume = flumeFormatOf(line);
  if (flume === undefined) return FileLog.open<T>(path, { readonly: true, codec });
  return FlumeOffsetLog.open<T>(path, { ...flume, readonly: true, codec });
}

export const jsonCodec = codecs.json<unknown>();
