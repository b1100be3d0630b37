import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Sluice } from '../../src/db/sluice.js';
import { reduce } from '../../src/views/reduce.js';
import { temporaryDirectory } from '../helpers.js';
import { runCli } from './run-cli.js';

const indexModule = fileURLToPath(new URL('../../src/index.js', import.meta.url));

describe('sluice rebuild', () => {
  it('rebuilds the views a module exports, reporting progress, and leaves their state caught up', async () => {
    const root = temporaryDirectory();
    const dir = join(root, 'db');
    const viewsModule = join(root, 'views.mjs');
    writeFileSync(
      viewsModule,
      `import { reduce } from ${JSON.stringify(indexModule)};
       export const views = { count: reduce(1, (n) => n + 1, { initial: 0 }) };`,
    );
    const db = await Sluice.open<{ n: number }>(dir);
    await db.append(Array.from({ length: 30_000 }, (_, n) => ({ n })));
    await db.close();

    const result = await runCli(['rebuild', dir, '--views', viewsModule]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /rebuilt count up to offset \d+/);
    assert.match(result.stderr, /count \[#+\] 100\.0% {2}30,000 records/);

    const again = await Sluice.open<{ n: number }>(dir);
    const count = again.use('count', reduce(1, (n: number) => n + 1, { initial: 0 }));
    assert.equal(await count.get({ since: -1 }), 30_000);
    await again.close();
  });

  it('refuses a missing --views and a module without views', async () => {
    const root = temporaryDirectory();
    const empty = join(root, 'empty.mjs');
    writeFileSync(empty, 'export const nothing = 1;');
    assert.equal((await runCli(['rebuild', join(root, 'db')])).status, 2);
    const noViews = await runCli(['rebuild', join(root, 'db'), '--views', empty]);
    assert.equal(noViews.status, 1);
    assert.match(noViews.stderr, /INVALID_INPUT/);
  });
});
