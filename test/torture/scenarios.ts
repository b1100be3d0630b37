import type { Durability } from '../../src/log/file/file-log.js';

/** What a torture child does besides appending, concurrently with its appends. */
export type Maintenance = 'none' | 'delete' | 'trim' | 'retention' | 'compact' | 'backup' | 'rebuild';

/**
 * One torture scenario, as data: the child process (`child.ts`) reads it by name, the parent (`engine.ts`) checks
 * the log against it after every kill.
 */
export interface Scenario {
  readonly name: string;
  readonly durability: Durability;
  /** The share of appends that are single values rather than batches. */
  readonly singleShare: number;
  /** A batch holds 1 to this many records. */
  readonly batchRecordsMax: number;
  /** Appends in flight at once (each child picks 1 to this many from its seed). */
  readonly inFlightMax: number;
  /** The database with a reduce, an index and a key index view (`Sluice`), instead of the bare log. */
  readonly views: boolean;
  readonly maintenance: Maintenance;
  /** The child is killed after 1 to this many acknowledgement lines (or at a random time, see `engine.ts`). */
  readonly acksMax: number;
}

/** The retention scenario's policy: the log trims itself in the background after every seal (F-60). */
export const tortureRetention = { maxRecords: 300 } as const;

/** Small segments, so that kills land around rollovers, seals and the maintenance of sealed segments. */
export const tortureSegmentBytesMax = 16 * 1024;

const base = { singleShare: 0.4, batchRecordsMax: 20, inFlightMax: 8, views: false, maintenance: 'none', acksMax: 400 } as const;

export const scenarios: readonly Scenario[] = [
  { ...base, name: 'single-os', durability: 'os', singleShare: 1 },
  { ...base, name: 'single-disk', durability: 'disk', singleShare: 1, acksMax: 200 },
  { ...base, name: 'batches-os', durability: 'os', singleShare: 0 },
  { ...base, name: 'batches-disk', durability: 'disk', singleShare: 0, acksMax: 200 },
  { ...base, name: 'buffered', durability: 'buffered' },
  { ...base, name: 'views', durability: 'os', views: true, acksMax: 300 },
  { ...base, name: 'view-rebuild', durability: 'os', views: true, maintenance: 'rebuild', acksMax: 300 },
  { ...base, name: 'delete', durability: 'os', maintenance: 'delete' },
  { ...base, name: 'trim', durability: 'os', maintenance: 'trim' },
  { ...base, name: 'retention', durability: 'os', maintenance: 'retention' },
  { ...base, name: 'compact', durability: 'os', maintenance: 'compact' },
  { ...base, name: 'backup', durability: 'os', maintenance: 'backup', acksMax: 300 },
];

export function scenarioNamed(name: string): Scenario {
  const scenario = scenarios.find((candidate) => candidate.name === name);
  if (scenario === undefined) {
    throw new RangeError(`no torture scenario ${name} (${scenarios.map((known) => known.name).join(', ')})`);
  }
  return scenario;
}

/** The value of record `i` of batch `b` (`n` records): its padding follows from `b` and `i`, so a reader can check it whole. */
export interface TortureValue {
  readonly b: number;
  readonly i: number;
  readonly n: number;
  readonly p: string;
}

export function valueOf(b: number, i: number, n: number): TortureValue {
  let size = (b * 31 + i * 17) % 90;
  // Now and then a large one, often alone in a segment.
  if (b % 29 === 7 && i === 0) size = 6000 + ((b * 977) % 12_000);
  return { b, i, n, p: String.fromCharCode(97 + ((b + i) % 26)).repeat(size) };
}

/**
 * The record key of a batch's records. In the compaction scenario only single records carry one, from a small set
 * that later records repeat (so compaction has superseded records to drop, and never a part of a batch).
 */
export function keyOf(scenario: Scenario, b: number, n: number): string | undefined {
  if (scenario.maintenance === 'compact') return n === 1 ? `k${b % 13}` : undefined;
  return b % 3 === 0 ? `key-${b % 50}` : undefined;
}

/**
 * One line of the child's acknowledgement file, written synchronously the moment the promise it reports resolved
 * (before that line exists the parent assumes nothing):
 * - `{ b, n, o }`: batch `b` of `n` records was acknowledged at offsets `o`;
 * - `{ synced }`: `sync()` resolved: every record up to that offset is durable (what makes buffered appends count);
 * - `{ deleting }` / `{ deleted }`: a delete of these offsets started / resolved;
 * - `{ trimming }` / `{ trimmed }`: a trim started / resolved, leaving the log starting at `trimmed`;
 * - `{ backup, through }` / `{ backedUp }`: a backup into `backup` started when everything up to offset `through`
 *   was acknowledged / resolved;
 * - `{ compacted }`, `{ rebuilt }`: a compaction (records dropped) or view rebuild resolved.
 */
export interface Ack {
  readonly b?: number;
  readonly n?: number;
  readonly o?: number[];
  readonly synced?: number;
  readonly deleting?: number[];
  readonly deleted?: number[];
  readonly trimming?: true;
  readonly trimmed?: number;
  readonly backup?: string;
  readonly through?: number;
  readonly backedUp?: string;
  readonly compacted?: number;
  readonly rebuilt?: string;
}

/** What the parent hands a child in `SLUICE_TORTURE`. */
export interface ChildConfig {
  readonly scenario: string;
  readonly dir: string;
  readonly seed: number;
  /** The number of the child's first batch (batches are numbered in call order across children). */
  readonly start: number;
  readonly ackFile: string;
  /** Where backups go (backup scenario). */
  readonly backupDir: string;
}
