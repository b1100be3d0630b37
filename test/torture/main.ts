/**
 * `npm run torture`: kills torture children `--kills` times in all (default 1,000), spread over the scenarios
 * (`--scenarios a,b`, default all), from `--seed` (default 0x70a7), and prints the table: scenario, kills,
 * records acknowledged, records lost, opens that failed. Exit status 1 when any promise was broken (each one is
 * printed with the seed and kill that replays it).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { tortureScenario, type ScenarioResult } from './engine.js';
import { scenarioNamed, scenarios } from './scenarios.js';

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '1000' },
    seed: { type: 'string', default: String(0x70a7) },
    scenarios: { type: 'string' },
  },
});
const kills = Number(values.kills);
const seed = Number(values.seed);
if (!Number.isSafeInteger(kills) || kills < 1) throw new RangeError(`--kills must be a positive integer, got ${values.kills}`);
if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`--seed must be a non-negative integer, got ${values.seed}`);
const chosen = values.scenarios === undefined ? scenarios : values.scenarios.split(',').map(scenarioNamed);

const root = mkdtempSync(join(tmpdir(), 'sluice-torture-'));
const results: ScenarioResult[] = [];
const started = Date.now();
try {
  for (const [index, scenario] of chosen.entries()) {
    const share = Math.floor(kills / chosen.length) + (index < kills % chosen.length ? 1 : 0);
    if (share === 0) continue;
    const result = await tortureScenario(scenario, scenarios.indexOf(scenario), {
      kills: share,
      seed,
      root,
      onKill: (progress, kill) => process.stderr.write(`\r${scenario.name}: kill ${kill + 1} of ${share}, ${progress.problems.length} problems   `),
    });
    process.stderr.write('\n');
    results.push(result);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}

const rows = [['scenario', 'kills', 'records acknowledged', 'records lost', 'opens failed', 'problems']];
for (const result of results) {
  rows.push([result.scenario, result.kills, result.acked, result.lost, result.openFailures, result.problems.length].map(String));
}
const total = (field: 'kills' | 'acked' | 'lost' | 'openFailures'): string => String(results.reduce((sum, result) => sum + result[field], 0));
rows.push(['total', total('kills'), total('acked'), total('lost'), total('openFailures'), String(results.reduce((sum, result) => sum + result.problems.length, 0))]);
const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
for (const [i, row] of rows.entries()) {
  console.log(`| ${row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join(' | ')} |`);
  if (i === 0) console.log(`|${widths.map((width, column) => (column === 0 ? '-'.repeat(width + 2) : `${'-'.repeat(width + 1)}:`)).join('|')}|`);
}
console.log(`seed ${seed}, ${((Date.now() - started) / 1000).toFixed(0)} s`);
const problems = results.flatMap((result) => result.problems);
for (const problem of problems.slice(0, 50)) console.log(problem);
if (problems.length > 0) process.exitCode = 1;
