/**
 * An index view whose LMDB commit fails (here: a real file-size limit makes the kernel refuse the write, as a
 * full disk or a damaged file would): the view fails alone, and the process neither dies of the rejected promise
 * lmdb-js leaves unhandled nor waits forever in `close()` for the flush of the failed commit.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { temporaryDirectory } from '../helpers.js';

const root = temporaryDirectory('sluice-lmdb-commit-');
const sluiceModule = new URL('../../src/index.js', import.meta.url).href;

const script = `
import { Sluice, index } from ${JSON.stringify(sluiceModule)};
process.on('unhandledRejection', (reason) => { console.log('unhandled: ' + (reason && reason.message)); process.exit(3); });
const db = await Sluice.open(process.argv[1]);
const errors = [];
db.on('view-error', ({ error }) => errors.push(error.message));
// Long keys: the log stays small, the index outgrows the file-size limit at its first commit.
const byText = db.use('byText', index(1, (value) => String(value.i).padStart(300, 'k')));
await db.append(Array.from({ length: 2000 }, (_, i) => ({ i })));
const read = await byText.get('x').then(() => 'answered', (error) => error.code);
await db.close();
console.log(JSON.stringify({ read, errors: errors.length, closed: true }));
`;

describe('an LMDB commit that fails', () => {
  it('fails the view alone; closing the database finishes; nothing is left unhandled', async () => {
    const dir = join(root, 'db');
    // 256 KiB per file: the log (about 90 KiB) fits, the index (about 700 KiB) does not. SIGXFSZ is ignored.
    const command = `trap '' XFSZ; ulimit -f 256; exec "$0" --input-type=module -e "$1" "$2"`;
    const child = spawn('bash', ['-c', command, process.execPath, script, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (data: string) => (out += data));
    child.stderr.setEncoding('utf8').on('data', (data: string) => (err += data));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    clearTimeout(timer);
    assert.equal(code, 0, `the child ended with ${code} (13: close never finished; 3: an unhandled rejection): ${out} ${err.slice(0, 1500)}`);
    const result = JSON.parse(out.trim().split('\n').pop() as string) as { read: string; errors: number; closed: boolean };
    assert.deepEqual(result, { read: 'VIEW_FAILED', errors: 1, closed: true });
  });
});
