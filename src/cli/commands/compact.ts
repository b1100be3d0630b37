import type { CompactionPolicy } from '../../log/file/compaction.js';
import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { keyFileFlags, keyFileHelp } from '../log-format.js';
import { runMaintenance } from '../maintenance.js';
import { durationMsOf } from './trim.js';

const usage = usageText(
  'compact <dir> [--older-than DURATION] [--tombstones-older-than DURATION] [--json]',
  'Keeps only the last record of each key in the sealed segments of the log in <dir> (and drops deleted records),\n' +
    'freeing their space; the offsets of the records kept do not change.',
  [
    ['--older-than DURATION', 'drop a superseded record only once older (ms, or 90s, 15m, 12h, 30d)'],
    ['--tombstones-older-than DURATION', "also drop tombstones (a key's last record, empty) older than this"],
    ['--json', 'print the result as one JSON object'],
    ...keyFileHelp,
  ],
);

/** `sluice compact`: compaction on demand. */
export const compactCommand: Command = {
  name: 'compact',
  summary: 'keep only the last record of each key, without moving any record',
  spec: {
    usage,
    flags: {
      ...keyFileFlags, 'older-than': { type: 'string' }, 'tombstones-older-than': { type: 'string' }, json: { type: 'boolean' } },
    positionals: ['dir'],
  },
  run,
};

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  const dir = line.positional(0);
  const policy: { -readonly [K in keyof CompactionPolicy]: CompactionPolicy[K] } = {};
  const age = durationMsOf(line, 'older-than');
  if (age !== undefined) policy.olderThanMs = age;
  const tombstones = durationMsOf(line, 'tombstones-older-than');
  if (tombstones !== undefined) policy.tombstonesOlderThanMs = tombstones;
  return runMaintenance(
    line,
    io,
    dir,
    (log, options) => log.compact(policy, options),
    (result) =>
      `dropped ${result.recordsDropped} records from ${result.segmentsRewritten} segments; ${result.diskBytesFreed} bytes freed on disk`,
  );
}
