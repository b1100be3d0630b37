import type { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import type { JsonValue } from '../../codec/codec.js';
import { SluiceError } from '../../errors.js';
import type { CommandLine } from '../args.js';
import { usageText, type Command, type CommandIo } from '../command.js';
import { keyFileFlags, keyFileHelp, natsFlags, natsHelp, openForAppend } from '../log-format.js';
import { exitStatus } from '../report.js';
import { PipelinedAppender } from '../pipelined-appender.js';

/** Appends awaiting their offsets at once: enough to batch writes, few enough to bound memory. */
const appendsInFlightMax = 1000;

const usage = usageText(
  'append <dir> [--sync] | append --nats <urls> --stream <name>',
  'Reads newline-delimited JSON values from stdin, appends each to the log in <dir> (created when missing)\n' +
    'and prints the offset of each record on its own line as soon as it is appended. Blank lines are skipped.\n' +
    'A line that is not JSON stops the command; the lines before it stay appended. With --nats the stream is\n' +
    'created when missing, and an offset is printed once the stream acknowledged the record.',
  [
    ['--sync', 'print an offset only once its record is on disk (fsynced)'],
    ['--chain sha256|blake2s256|hmac-sha256', 'create the log tamper-evident (hmac-sha256: keyed, with --chain-key-file)'],
    ...keyFileHelp,
    ...natsHelp,
  ],
);

/** `sluice append`: stdin lines in, offsets out. */
export const appendCommand: Command = {
  name: 'append',
  summary: 'append JSON values read from stdin, one per line; print their offsets',
  spec: { usage, flags: { sync: { type: 'boolean' }, chain: { type: 'string' }, ...keyFileFlags, ...natsFlags }, positionals: ['dir'] },
  run,
};

async function run(line: CommandLine, io: CommandIo): Promise<number> {
  const log = await openForAppend<JsonValue>(line, line.positional(0), line.boolean('sync') ? 'disk' : 'os');
  const appender = new PipelinedAppender(log, (offset) => io.output.writeLine(String(offset)), appendsInFlightMax);
  const input = io.openInput();
  let failure: { readonly error: unknown } | undefined;
  try {
    await appendLines(input, appender, io.output.closedSignal);
  } catch (error) {
    failure = { error };
  } finally {
    // After a bad line or a closed stdout the rest of stdin is not read: an open pipe must not keep us alive.
    input.destroy();
  }
  // The offsets of the lines before a bad one are printed too, and close() below must not race them.
  await appender.settled().catch((error: unknown) => {
    failure ??= { error };
  });
  await log.close().catch((error: unknown) => {
    failure ??= { error };
  });
  if (failure !== undefined) throw failure.error;
  return exitStatus.ok;
}

/** Feeds every non-blank line of `input` to `appender`; stops early (quietly) when `stop` aborts. */
async function appendLines(input: Readable, appender: PipelinedAppender<JsonValue>, stop: AbortSignal): Promise<void> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNumber = 0;
  for await (const text of lines) {
    lineNumber++;
    if (stop.aborted) break;
    if (text.trim() === '') continue;
    await appender.add(parseLine(text, lineNumber));
  }
}

function parseLine(text: string, lineNumber: number): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (error) {
    throw new SluiceError('INVALID_INPUT', `line ${lineNumber} is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
