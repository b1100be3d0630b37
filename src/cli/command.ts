import type { Readable } from 'node:stream';
import type { CommandLine, CommandSpec } from './args.js';
import type { LineOutput } from './output.js';

/** What a command reads from and writes to; stdin is opened only by the commands that read it. */
export interface CommandIo {
  readonly output: LineOutput;
  readonly openInput: () => Readable;
}

/** One `sluice <name>` command: it parses nothing itself (main does) and returns its exit status. */
export interface Command {
  readonly name: string;
  /** One line for `sluice --help`. */
  readonly summary: string;
  readonly spec: CommandSpec;
  run(line: CommandLine, io: CommandIo): Promise<number>;
}

/** An option in a help text: how it is written, and what it does. */
export type OptionHelp = readonly [flags: string, description: string];

/** Builds a command's help text from its synopsis, description and options (`--help` is added). */
export function usageText(synopsis: string, description: string, options: readonly OptionHelp[] = []): string {
  const all: readonly OptionHelp[] = [...options, ['-h, --help', 'show this help']];
  const width = Math.max(...all.map(([flags]) => flags.length));
  const optionLines = all.map(([flags, text]) => `  ${flags.padEnd(width)}  ${text}\n`).join('');
  return `Usage: sluice ${synopsis}\n\n${description}\n\nOptions:\n${optionLines}`;
}
