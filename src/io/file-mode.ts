import { fileModeDefault } from '../limits.js';

/**
 * The permissions of what Sluice creates: one `fileMode` option (default owner-only, `fileModeDefault`) and the
 * directory mode derived from it, so that a log shared with a group is one option, not two that may disagree.
 */

/**
 * Validates a `fileMode` option: permission bits only, read and write for the owner (Sluice must write its
 * own files), no execute bits (they are data). `undefined` gives the default, 0o600.
 */
export function checkFileMode(fileMode: unknown): number {
  if (fileMode === undefined) return fileModeDefault;
  if (typeof fileMode !== 'number' || !Number.isInteger(fileMode)) throw new TypeError('fileMode must be an integer such as 0o640');
  if ((fileMode & ~0o666) !== 0 || (fileMode & 0o600) !== 0o600) {
    throw new RangeError(`fileMode must give the owner read and write and no one execute (0o600 to 0o666), got 0o${fileMode.toString(8)}`);
  }
  return fileMode;
}

/** The mode of directories beside files of `fileMode`: search wherever read is allowed (0o600 → 0o700, 0o640 → 0o750). */
export function directoryModeOf(fileMode: number): number {
  return fileMode | ((fileMode & 0o444) >> 2);
}
