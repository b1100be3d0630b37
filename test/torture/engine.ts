import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 } from '../helpers.js';
import { killWhen, readAcks } from '../kill-harness.js';
import type { Ack, ChildConfig, Scenario } from './scenarios.js';
import { verifyRound, type Model } from './verify.js';

/** A directory goes through this many kills in a row (each child reopening what the last one left), then a fresh one. */
const killsPerDirectory = 25;
/** The share of kills that land at a random time after the start (during open and recovery too) rather than after a number of acknowledgements. */
const timedKillShare = 0.25;
const timedKillMsMax = 600;

/** The totals of one scenario's kills: the torture table's row. */
export interface ScenarioResult {
  readonly scenario: string;
  kills: number;
  /** Records acknowledged as durable (see `durableAcks`), summed over the kills. */
  acked: number;
  lost: number;
  openFailures: number;
  /** Every broken promise, with the seed and kill that replays it. */
  readonly problems: string[];
}

export interface TortureOptions {
  readonly kills: number;
  readonly seed: number;
  /** A scratch directory; everything is made below it. */
  readonly root: string;
  /** Called after every kill (progress). */
  readonly onKill?: (result: ScenarioResult, kill: number) => void;
}

const childUrl = new URL('./child.js', import.meta.url).href;

/**
 * Kills a child running `scenario` `options.kills` times, each at a seeded moment, and checks the log after each
 * kill (`verifyRound`). Everything but the exact instant a kill lands follows from the seed; a problem names the
 * seed, scenario and kill, and `--seed <seed> --scenarios <name> --kills <kill + 1>` replays up to it.
 */
export async function tortureScenario(scenario: Scenario, scenarioIndex: number, options: TortureOptions): Promise<ScenarioResult> {
  const result: ScenarioResult = { scenario: scenario.name, kills: 0, acked: 0, lost: 0, openFailures: 0, problems: [] };
  const root = join(options.root, scenario.name);
  let model: Model | undefined;
  for (let kill = 0; kill < options.kills; kill++) {
    if (kill % killsPerDirectory === 0) {
      const dir = join(root, `log-${kill}`);
      if (model !== undefined) rmSync(model.dir, { recursive: true, force: true });
      model = { dir, backupDir: join(root, 'backups'), records: new Map(), deleted: new Set(), firstOffset: 0, nextBatch: 0 };
      mkdirSync(model.backupDir, { recursive: true });
    }
    const seed = (options.seed + scenarioIndex * 0x9e37 + kill * 0x85eb) >>> 0;
    const random = mulberry32(seed);
    const context = `torture --seed ${options.seed} --scenarios ${scenario.name}, kill ${kill} (seed ${seed})`;
    const config: ChildConfig = {
      scenario: scenario.name,
      dir: (model as Model).dir,
      seed,
      start: (model as Model).nextBatch,
      ackFile: join(root, `kill-${kill}.acks`),
      backupDir: (model as Model).backupDir,
    };
    const timed = random() < timedKillShare;
    const acksTarget = 1 + Math.floor(random() * scenario.acksMax);
    const deadline = Date.now() + Math.floor(random() * timedKillMsMax);
    let lines = 0;
    try {
      await killWhen<Ack>(
        `await import(${JSON.stringify(childUrl)});`,
        { SLUICE_TORTURE: JSON.stringify(config) },
        () => !timed && ++lines >= acksTarget,
        context,
        timed ? { everyMs: 5, check: () => Date.now() >= deadline } : undefined,
      );
    } catch (error) {
      result.problems.push(`${context}: ${String(error)}`);
      const text = String(error);
      if (text.includes('open failed')) result.openFailures++;
    }
    const acks = readAcks<Ack>(config.ackFile);
    rmSync(config.ackFile, { force: true });
    const round = await verifyRound(scenario, model as Model, acks, context);
    result.kills++;
    result.acked += round.acked;
    result.lost += round.lost;
    if (round.openFailed) result.openFailures++;
    for (const problem of round.problems) result.problems.push(`${context}: ${problem}`);
    options.onKill?.(result, kill);
  }
  rmSync(root, { recursive: true, force: true });
  return result;
}
