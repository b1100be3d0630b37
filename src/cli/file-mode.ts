import type { CommandLine } from './args.js';

/** The `--file-mode` flag of the commands that create files: its spec, its help line, and its value. */
export const fileModeFlag = { 'file-mode': { type: 'string' } } as const;

export const fileModeHelp: [string, string] = ['--file-mode 0640', 'the mode of the files created (octal; default 0600, owner only)'];

/** `{ fileMode }` from `--file-mode` (octal digits, as chmod takes them), or `{}` when absent; a usage error otherwise. */
export function fileModeOf(line: CommandLine): { fileMode?: number } {
  const text = line.string('file-mode');
  if (text === undefined) return {};
  if (!/^(0o?)?[0-7]{3}$/.test(text)) throw line.usageError(`--file-mode takes an octal mode such as 0640, got '${text}'`);
  const fileMode = parseInt(text.replace(/^0o?/, ''), 8);
  if ((fileMode & 0o600) !== 0o600 || (fileMode & 0o111) !== 0) {
    throw line.usageError(`--file-mode must give the owner read and write and no one execute, got '${text}'`);
  }
  return { fileMode };
}
