import { codecs, type Codec } from '../codec/codec.js';
import { readFileSync } from 'node:fs';
import { FileLog, type ChainAlgorithm, type Durability, type EncryptionOptions } from '../log/file/file-log.js';
import { parseChainKeyFile, parseKeyFile } from '../log/file/security/keys.js';
import { SluiceError } from '../errors.js';
import { FlumeOffsetLog } from '../log/flume-offset/flume-offset-log.js';
import { JetStreamLog } from '../log/jetstream/jetstream-log.js';
import type { Log } from '../log/log.js';
import type { LogStat } from '../ops/stat.js';
import type { CommandLine, FlagSpec } from './args.js';
import type { OptionHelp } from './command.js';
import { hasNatsAccessFlags, natsAccessFlags, natsAccessHelp, natsAccessOf, type NatsAccess } from './nats-access.js';

/** The flags that name a log on NATS JetStream in place of a directory. */
export const natsFlags: FlagSpec = { nats: { type: 'string' }, stream: { type: 'string' }, ...natsAccessFlags };

export const natsHelp: readonly OptionHelp[] = [
  ['--nats <urls> --stream <name>', 'in place of <dir>: the log in a JetStream stream on these NATS servers'],
  ...natsAccessHelp,
];

/** The keys of an encrypted native log come from a file, never from the command line (where `ps` shows them). */
export const keyFileFlags: FlagSpec = { 'key-file': { type: 'string' }, 'chain-key-file': { type: 'string' } };

export const keyFileHelp: readonly OptionHelp[] = [
  ['--key-file <path>', 'the keys of an encrypted log: lines <key id>:<64 hex digits>, the first the current key'],
  ['--chain-key-file <path>', 'the key of a keyed chain (hmac-sha256): 64 hex digits'],
];

/** `{ chainKey }` from `--chain-key-file`, or `{}`; `INVALID_INPUT` for a file that cannot be read or parsed. */
export function chainKeyOf(line: CommandLine): { chainKey?: Buffer } {
  const file = line.string('chain-key-file');
  if (file === undefined) return {};
  return { chainKey: parseChainKeyFile(readKeyFile(file), file) };
}

function readKeyFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (cause) {
    throw new SluiceError('INVALID_INPUT', `cannot read the key file ${file}: ${(cause as Error).message}`, { cause, file });
  }
}

/** `{ encryption }` from `--key-file` (and `{ chainKey }` from `--chain-key-file`), or `{}`; `INVALID_INPUT` for a file that cannot be read or parsed. */
export function encryptionOf(line: CommandLine): { encryption?: EncryptionOptions; chainKey?: Buffer } {
  const file = line.string('key-file');
  const chain = chainKeyOf(line);
  if (file === undefined) return chain;
  return { encryption: parseKeyFile(readKeyFile(file), file), ...chain };
}

/** The flags of every command that reads a log: which format the path is in, or where on NATS the log is. */
export const logFormatFlags: FlagSpec = {
  format: { type: 'string' },
  'offset-width': { type: 'string' },
  ...natsFlags,
  ...keyFileFlags,
};

export const logFormatHelp: readonly OptionHelp[] = [
  ['--format <format>', "sluice (default: a log directory), flumelog-offset or flumelog-offset-legacy (a file)"],
  ['--offset-width 4|6|8', 'the offset width of a flumelog-offset file (default 4)'],
  ...natsHelp,
  ...keyFileHelp,
];

/** Where a log on NATS is, from `--nats` and `--stream`; `undefined` when the command names a directory. */
export interface NatsLocation extends NatsAccess {
  readonly servers: string;
  readonly stream: string;
}

/** Reads `--nats` and `--stream`: both or neither, and then no <dir> and no `--format`. */
export function natsLocationOf(line: CommandLine, path: string): NatsLocation | undefined {
  const servers = line.string('nats');
  const stream = line.string('stream');
  if (servers === undefined) {
    if (stream !== undefined) throw line.usageError('--stream goes with --nats');
    if (hasNatsAccessFlags(line)) throw line.usageError('credentials and TLS flags go with --nats');
    return undefined;
  }
  if (stream === undefined) throw line.usageError('--nats needs --stream <name>');
  if (path !== '') throw line.usageError('give <dir> or --nats, not both');
  if (line.string('format') !== undefined) throw line.usageError('--format names a file format, not a NATS stream');
  return { servers, stream, ...natsAccessOf(line) };
}

/** A flumelog-offset file's format as `FlumeOffsetLog.open` takes it, or `undefined` for a native log. */
export interface FlumeFormat {
  readonly offsetWidth?: 4 | 6 | 8;
  readonly legacy?: boolean;
}

/**
 * Reads `--format` and `--offset-width`, rejecting unknown formats and widths as usage errors, and the key flags
 * with a flumelog-offset file (the format has no cipher and no chain: a key given for it would be ignored).
 */
export function flumeFormatOf(line: CommandLine): FlumeFormat | undefined {
  const format = line.string('format') ?? 'sluice';
  const width = widthOf(line);
  if (format === 'sluice') {
    if (width !== undefined) throw line.usageError('--offset-width goes with --format flumelog-offset');
    return undefined;
  }
  for (const flag of Object.keys(keyFileFlags)) {
    if (line.string(flag) !== undefined) throw line.usageError(`--${flag} goes with a log directory, not a flumelog-offset file`);
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

/** Opens the log at `path` (or on NATS, with `--nats`) read-only in the format the command line names. */
export async function openReadOnly<T>(line: CommandLine, path: string, codec: Codec<T>): Promise<Log<T>> {
  const nats = natsLocationOf(line, path);
  if (nats !== undefined) return JetStreamLog.open<T>({ ...nats, readonly: true, codec });
  const flume = flumeFormatOf(line);
  if (flume === undefined) return FileLog.open<T>(path, { readonly: true, codec, ...encryptionOf(line) });
  return FlumeOffsetLog.open<T>(path, { ...flume, readonly: true, codec });
}

/** Opens the log `append` writes to: the directory (created when missing), or the stream with `--nats`. */
export async function openForAppend<T>(line: CommandLine, path: string, durability: Durability): Promise<Log<T>> {
  const nats = natsLocationOf(line, path);
  // On NATS an acknowledged append is already stored by the stream's replicas: --sync adds nothing to wait for.
  if (nats !== undefined) return JetStreamLog.open<T>(nats);
  return FileLog.open<T>(path, { ...(durability === 'disk' ? { durability } : {}), ...securityOf(line) });
}

/** The security of a log a command creates or writes: `--chain`, `--key-file`, `--chain-key-file`. */
export function securityOf(line: CommandLine): { chain?: ChainAlgorithm; chainKey?: Buffer; encryption?: EncryptionOptions } {
  const chain = line.string('chain');
  if (chain !== undefined && chain !== 'sha256' && chain !== 'blake2s256' && chain !== 'hmac-sha256') {
    throw line.usageError(`--chain must be sha256, blake2s256 or hmac-sha256, got ${chain}`);
  }
  return { ...(chain === undefined ? {} : { chain }), ...encryptionOf(line) };
}

/** `stat` of a log on NATS: the stream as one segment; its views live with each process, not on the servers. */
export async function statJetStream(location: NatsLocation): Promise<LogStat> {
  const log = await JetStreamLog.open({ ...location, readonly: true });
  try {
    const info = await log.info();
    const where = `stream ${info.stream} (${info.replicas} replica${info.replicas === 1 ? '' : 's'}` +
      `${info.leader === undefined || info.leader === '' ? '' : `, leader ${info.leader}`})`;
    return {
      segments: [
        { file: where, base: Math.max(0, info.firstOffset), bytes: info.bytes, records: info.records, deletedRecords: 0, deletedBytes: 0 },
      ],
      records: info.records,
      bytes: info.bytes,
      firstOffset: info.firstOffset,
      lastOffset: info.lastOffset,
      // A stream's deleted messages leave no frames behind to count.
      deletedRecords: 0,
      deletedBytes: 0,
      views: [],
    };
  } finally {
    await log.close();
  }
}

export const jsonCodec = codecs.json<unknown>();
