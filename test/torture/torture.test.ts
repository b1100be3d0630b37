/**
 * The short torture run of `npm test`: 36 SIGKILLs spread over every scenario of `scenarios.ts` (`npm run
 * torture` runs 1,000). After each kill the log must hold every durable acknowledged record intact, nothing but
 * whole batches, keep its deletions and trims, have complete backups and views equal to their recomputation, and
 * take the next append (`verify.ts`). Rerun with SLUICE_TORTURE_SEED=<seed>.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { temporaryDirectory } from '../helpers.js';
import { tortureScenario } from './engine.js';
import { scenarios } from './scenarios.js';

const seed = process.env.SLUICE_TORTURE_SEED === undefined ? 0x70a7 : Number(process.env.SLUICE_TORTURE_SEED);
const killsTotal = 36;

describe('torture: SIGKILL at seeded moments', () => {
  const root = temporaryDirectory('sluice-torture-');
  for (const [index, scenario] of scenarios.entries()) {
    const kills = Math.floor(killsTotal / scenarios.length) + (index < killsTotal % scenarios.length ? 1 : 0);
    it(`${scenario.name}: ${kills} kills, nothing acknowledged lost`, { timeout: 60_000 }, async (t) => {
      const result = await tortureScenario(scenario, index, { kills, seed, root });
      t.diagnostic(`${result.kills} kills, ${result.acked} records acknowledged, ${result.lost} lost, ${result.openFailures} opens failed`);
      assert.deepEqual(result.problems, []);
      assert.equal(result.kills, kills);
      assert.equal(result.lost, 0);
      assert.equal(result.openFailures, 0);
      if (scenario.durability !== 'buffered') assert.ok(result.acked > 0, 'some records were acknowledged');
    });
  }
});
