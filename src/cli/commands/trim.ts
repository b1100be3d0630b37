import type { RetentionPolicy } from '../../log/file/retention.js';
import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { keyFileFlags, keyFileHelp } from '../log-format.js';
import { runMaintenance } from '../maintenance.js';

const usage = usageText(
  'trim <dir> [--before-offset N] [--older-than DURATION] [--max-count N] [--max-bytes N] [--json]',
  'Drops whole old segments from the front of the log in <dir>; offsets of the records kept do not change.\n' +
    'The segment being written always stays, so a limit may be exceeded by up to one segment.',
  [
    ['--before-offset N', 'drop the segments whose records all lie before offset N'],
    ['--older-than DURATION', 'drop the segments whose last record is older (ms, or 90s, 15m, 12h, 30d)'],
    ['--max-count N', 'keep at least the N newest records, drop the segments before them'],
    ['--max-bytes N', 'keep at most N bytes of the newest segments (plus the active one)'],
    ['--json', 'print the result as one JSON object'],
    ...keyFileHelp,
  ],
);

/** `sluice trim`: retention on demand. */
export const trimCommand: Command = {
  name: 'trim',
  summary: 'drop old segments by offset, age, record count or size',
  spec: {
    usage,
    flags: {
      ...keyFileFlags,
      'before-offset': { type: 'string' },
      'older-than': { type: 'string' },
      'max-count': { type: 'string' },
      'max-bytes': { type: 'string' },
      json: { type: 'boolean' },
    },
    positionals: ['dir'],
  },
  run,
};

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration flag (milliseconds, or a number with ms, s, m, h or d) in milliseconds; `undefined` when absent. */
export function durationMsOf(line: CommandLine, flag: string): number | undefined {
  const text = line.string(flag);
  if (text === undefined) return undefined;
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text);
  const ms = match === null ? NaN : Number(match[1]) * (unitMs[match[2] ?? 'ms'] as number);
  if (!Number.isSafeInteger(ms)) throw line.usageError(`--${flag} must be a duration such as 3600000, 90s or 30d, got '${text}'`);
  return ms;
}

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  const dir = line.positional(0);
  const policy: { -readonly [K in keyof RetentionPolicy]: RetentionPolicy[K] } = {};
  const beforeOffset = line.integer('before-offset');
  if (beforeOffset !== undefined) policy.beforeOffset = beforeOffset;
  const maxRecords = line.integer('max-count');
  if (maxRecords !== undefined) policy.maxRecords = maxRecords;
  const maxBytes = line.integer('max-bytes');
  if (maxBytes !== undefined) policy.maxBytes = maxBytes;
  const age = durationMsOf(line, 'older-than');
  if (age !== undefined) policy.olderThanMs = age;
  if (Object.keys(policy).length === 0) {
    throw line.usageError('give at least one of --before-offset, --older-than, --max-count, --max-bytes');
  }
  return runMaintenance(
    line,
    io,
    dir,
    (log, options) => log.trim(policy, options),
    (result) => `dropped ${result.segmentsDropped} segments (${result.bytesDropped} bytes); the log starts at offset ${result.firstOffset}`,
  );
}
