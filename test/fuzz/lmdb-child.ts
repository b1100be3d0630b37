/**
 * The child process of the LMDB fuzz test (`lmdb.test.ts`): LMDB can kill the process it runs in on a damaged
 * file, so each case runs here. Arguments: the template directory, a work directory, the first seed, the number
 * of cases, and the kind of damage (`cut`, `pages`: up to 64 garbage bytes, or `page`: a zeroed page). Before each case it prints `{"start": seed}`, after it
 * `{"seed", "rebuilt", "wrong", "missing", "errors"}` (`wrong`: an answer with another record; `missing`: no
 * answer for a key that has a record), one JSON line each; the parent sees a crash as a start without an end.
 */
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Sluice } from '../../src/db/sluice.js';
import { isSluiceError } from '../../src/errors.js';
import { index } from '../../src/views/index-view.js';
import { Random } from './engine.js';

interface Value {
  readonly i: number;
}

const [template, work, firstSeed, cases, kind] = process.argv.slice(2) as [string, string, string, string, string];
export const lmdbRecordCount = 600;

for (let seed = Number(firstSeed); seed < Number(firstSeed) + Number(cases); seed++) {
  process.stdout.write(`${JSON.stringify({ start: seed })}\n`);
  const random = new Random(seed);
  const dir = join(work, `case-${seed}`);
  rmSync(dir, { recursive: true, force: true });
  cpSync(template, dir, { recursive: true });
  const file = join(dir, 'views', 'byI', 'index.mdb');
  const bytes = readFileSync(file);
  if (kind === 'cut') writeFileSync(file, bytes.subarray(0, random.below(bytes.length)));
  else if (kind === 'page') {
    // A whole page lost (zeros where a page was, as a file system may leave after a crash).
    const page = random.below(Math.floor(bytes.length / 4096));
    bytes.fill(0, page * 4096, (page + 1) * 4096);
    writeFileSync(file, bytes);
  } else {
    const start = random.below(bytes.length);
    const end = Math.min(bytes.length, start + random.between(1, 64));
    for (let i = start; i < end; i++) bytes[i] = random.below(256);
    writeFileSync(file, bytes);
  }
  const db = await Sluice.open<Value>(dir);
  let rebuilt = false;
  let wrong = 0;
  let missing = 0;
  const errors: string[] = [];
  db.on('report', () => (rebuilt = true));
  try {
    const view = db.use('byI', index<Value>(1, (value) => value.i));
    const offsets: number[] = [];
    for await (const record of db.log.stream()) offsets.push(record.offset);
    for (let i = 0; i < lmdbRecordCount; i += 3) {
      try {
        const entry = await view.get(i);
        if (entry === undefined) missing++;
        else if (entry.value.i !== i || entry.offset !== offsets[i]) wrong++;
      } catch (error) {
        errors.push(isSluiceError(error) ? error.code : `not a SluiceError: ${(error as Error).message}`);
      }
    }
  } finally {
    await db.close().catch((error: unknown) => errors.push(`close: ${(error as Error).message}`));
  }
  process.stdout.write(`${JSON.stringify({ seed, rebuilt, wrong, missing, errors: [...new Set(errors)] })}\n`);
  rmSync(dir, { recursive: true, force: true });
}
