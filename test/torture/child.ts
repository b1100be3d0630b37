/**
 * The torture child: opens the log (or the database with views) of its scenario, appends as fast as it can with
 * several appends in flight, runs the scenario's maintenance alongside, and writes every acknowledgement to the
 * ack file synchronously the moment its promise resolves (then to stdout, which only tells the parent when to
 * kill). It never ends by itself: the parent kills it with SIGKILL. Any failure exits with status 3.
 */
import { openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FileLog } from '../../src/log/file/file-log.js';
import { mulberry32 } from '../helpers.js';
import { keyOf, scenarioNamed, tortureRetention, tortureSegmentBytesMax, valueOf, type Ack, type ChildConfig, type TortureValue } from './scenarios.js';

const config = JSON.parse(process.env.SLUICE_TORTURE ?? '') as ChildConfig;
const scenario = scenarioNamed(config.scenario);
const random = mulberry32(config.seed);
const acks = openSync(config.ackFile, 'a');

function ack(entry: Ack): void {
  const line = `${JSON.stringify(entry)}\n`;
  writeSync(acks, line);
  process.stdout.write(line);
}

function die(what: string, error: unknown): never {
  writeSync(2, `torture child (${scenario.name}): ${what}: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(3);
}

interface Appender {
  readonly log: FileLog<TortureValue>;
  append(values: TortureValue[], key: string | undefined): Promise<number[]>;
  rebuild?: () => Promise<void>;
}

async function openAppender(): Promise<Appender> {
  const options = {
    durability: scenario.durability,
    segmentBytesMax: tortureSegmentBytesMax,
    ...(scenario.maintenance === 'retention' ? { retention: tortureRetention } : {}),
  };
  if (!scenario.views) {
    const log = await FileLog.open<TortureValue>(config.dir, options);
    return { log, append: (values, key) => log.append(values, key === undefined ? {} : { key }) };
  }
  const { Sluice } = await import('../../src/db/sluice.js');
  const { tortureViews } = await import('./views.js');
  const log = await FileLog.open<TortureValue>(config.dir, options);
  const db = await Sluice.open<TortureValue>(config.dir, { log });
  db.on('view-error', ({ error }) => die('a view failed', error));
  tortureViews(db);
  return {
    log,
    append: (values, key) => db.append(values, key === undefined ? {} : { key }),
    rebuild: () => db.rebuild(random() < 0.5 ? 'totals' : undefined),
  };
}

const appender = await openAppender().catch((error: unknown) => die('open failed', error));
const log = appender.log;
/** Acknowledged offsets of this child, for deletes to pick from. */
const live: number[] = [];
let next = config.start;
let inFlight = 0;
const inFlightMax = 1 + Math.floor(random() * scenario.inFlightMax);

function start(): void {
  const b = next++;
  const n = random() < scenario.singleShare ? 1 : 1 + Math.floor(random() * scenario.batchRecordsMax);
  const values = Array.from({ length: n }, (_, i) => valueOf(b, i, n));
  inFlight++;
  appender.append(values, keyOf(scenario, b, n)).then((offsets) => {
    ack({ b, n, o: offsets });
    live.push(...offsets);
    // Buffered acknowledgements are durable against a kill only once a sync() after them resolved.
    if (scenario.durability === 'buffered' && b % 8 === 0) log.sync().then((synced) => ack({ synced }), (error: unknown) => die('sync', error));
    inFlight--;
    // Buffered appends resolve in a microtask: a producer that never yields to the event loop would starve the
    // writes and syncs it waits for, as any program that never yields would. Real ones do I/O in between.
    if (scenario.durability === 'buffered') setImmediate(pump);
    else pump();
  }, (error: unknown) => die(`append of batch ${b}`, error));
}

function pump(): void {
  while (inFlight < inFlightMax) start();
}

async function maintain(): Promise<void> {
  for (let round = 0; ; round++) {
    await new Promise((resolve) => setTimeout(resolve, 1 + Math.floor(random() * 15)));
    switch (scenario.maintenance) {
      case 'none':
      case 'retention':
        return;
      case 'delete': {
        if (live.length < 10) break;
        const picked = [...new Set(Array.from({ length: 1 + Math.floor(random() * 3) }, () => live[Math.floor(random() * live.length)] as number))];
        ack({ deleting: picked });
        await log.delete(picked);
        ack({ deleted: picked });
        live.splice(0, live.length, ...live.filter((offset) => !picked.includes(offset)));
        break;
      }
      case 'trim': {
        if (random() < 0.7) break;
        ack({ trimming: true });
        const { firstOffset } = await log.trim({ maxRecords: 100 + Math.floor(random() * 200) });
        ack({ trimmed: firstOffset });
        break;
      }
      case 'compact':
        if (random() < 0.6) break;
        try {
          ack({ compacted: (await log.compact()).recordsDropped });
        } catch (error) {
          // Before the first keyed record there is nothing to compact by.
          if ((error as { code?: string }).code !== 'INVALID_INPUT') throw error;
        }
        break;
      case 'backup': {
        const { backup } = await import('../../src/ops/backup.js');
        const dest = join(config.backupDir, `backup-${config.seed}-${round}`);
        ack({ backup: dest, through: log.since });
        await backup(config.dir, dest);
        ack({ backedUp: dest });
        break;
      }
      case 'rebuild':
        if (random() < 0.5) break;
        await appender.rebuild?.();
        ack({ rebuilt: 'views' });
        break;
    }
  }
}

pump();
maintain().catch((error: unknown) => die(`${scenario.maintenance}`, error));
setInterval(() => undefined, 1 << 30);
