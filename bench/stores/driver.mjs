// The benchmark cases, written once and run against any store adapter, so that
// every store does exactly the same work in the same order. Each adapter script
// (flumelog-offset.mjs, async-append-only-log.mjs, sluice.mjs, lmdb.mjs) only wraps its
// store's API in a few promise-returning functions and calls main(adapter).
//
// Usage: node bench/stores/<store>.mjs --case <name> --n <count> --dir <fresh dir> [--<option> <value>]
// Prints one line of JSON: { store, case, n, ms, opsPerSec, rssPeakBytes, diskBytes, options, extra }.
//
// An adapter may take options of its own (sluice.mjs: `--durability`): it lists
// them with their defaults in `adapter.options`, receives them in open(dir,
// { raw, ...options }), and names the column it measures with
// `adapter.name(options)` (e.g. 'sluice-disk'); `adapter.notes` may then be a
// function of the options.
//
// The read cases (scan, get, reopen and their raw twins) need a filled store:
// it is filled, untimed, by a separate process running this same script with
// `--case fill` (or `raw-fill`), so that the memory the filling took does not
// count in this process's peak RSS. The fill writes the key of every record
// (its offset) to `<dir>.bench-keys`, which is how "record i" maps to each
// store's own key in the get case.
//
// The view cases need `adapter.openViews(dir, { reduce, index, ...options })`:
// the store's database over the log in dir with the views asked for (a reduce
// view counting messages per type, a key index by [author, ts]; workload.mjs
// has both functions), returning { appendBatch(values), counts(), byKey(key),
// close() }: counts() and byKey() wait until the view has caught up with the
// log (byKey resolves to the record's value). `adapter.viewPaths(dir)` lists
// the files and folders the views keep (their size goes to extra.viewBytes).
// view-index-get fills the log and builds the index in a separate process
// (`--case index-fill`), untimed, as the read cases do.

import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import {
  BATCH, GETS, NOWAIT_WINDOW, authorTsKeyOf, message, randomIndexes, rawKey, rawValue, rawValueIndex
} from '../workload.mjs'

export const CASES = ['append-single', 'append-nowait', 'append-batch', 'scan', 'get', 'reopen']
export const RAW_CASES = ['raw-publish', 'raw-consume', 'raw-get']
export const VIEW_CASES = ['view-reduce-rebuild', 'view-index-build', 'view-index-get', 'append-with-reduce']
// Adapters with `importInto(dir)` (sluice-offset): converting the filled log into another store.
export const IMPORT_CASES = ['import']

function parseArgs (argv, adapterOptions = {}) {
  const args = { case: null, n: 1_000_000, dir: null, gets: GETS, seed: 42, options: { ...adapterOptions } }
  for (let i = 2; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '')
    const value = argv[i + 1]
    if (name === 'case' || name === 'dir') args[name] = value
    else if (name === 'n' || name === 'gets' || name === 'seed') args[name] = Number(value)
    else if (Object.hasOwn(adapterOptions, name)) args.options[name] = value
    else throw new Error('unknown argument ' + argv[i])
  }
  if (!args.case || !args.dir || !(args.n > 0)) {
    throw new Error('usage: --case <name> --n <count> --dir <fresh dir> [--gets 100000] [--seed 42]')
  }
  return args
}

// Apparent size of every file under dir, after the store was closed.
export function dirBytes (dir) {
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) total += dirBytes(p)
    else total += statSync(p).size
  }
  return total
}

const peakRss = () => process.resourceUsage().maxRSS * 1024

// CPU time (user + system, every thread of this process) since `start` (process.cpuUsage()), in ms. On a
// shared machine it swings far less than the elapsed time: the read and view cases report it in extra.cpuMs.
function cpuMsSince (start) {
  const { user, system } = process.cpuUsage(start)
  return (user + system) / 1000
}

function rawRecord (i) {
  return { key: rawKey(i), value: rawValue(i) }
}

// The records of batch number b (BATCH per batch, the last one may be short).
function batchOf (b, n, raw) {
  const out = []
  const end = Math.min(n, (b + 1) * BATCH)
  for (let i = b * BATCH; i < end; i++) out.push(raw ? rawRecord(i) : message(i))
  return out
}

function checkMessage (value, i) {
  if (value === null || typeof value !== 'object' || value.seq !== i) {
    throw new Error(`record ${i}: read back ${JSON.stringify(value)?.slice(0, 80)}`)
  }
}

function checkRaw (value, i) {
  if (rawValueIndex(value) !== i) throw new Error(`raw record ${i}: read back value of ${rawValueIndex(value)}`)
}

// Runs this script again, in its own process, to fill dir with n records
// (kind: 'fill', 'raw-fill', or 'index-fill': fill, then build the index).
function prefill (args, raw, kind = raw ? 'raw-fill' : 'fill') {
  const options = Object.entries(args.options).flatMap(([name, value]) => ['--' + name, String(value)])
  const res = spawnSync(process.execPath, [process.argv[1], '--case', kind, '--n', String(args.n), '--dir', args.dir, ...options], {
    stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 1 << 20
  })
  if (res.status !== 0) throw new Error(`prefill of ${args.dir} failed (exit ${res.status}, signal ${res.signal})`)
  return JSON.parse(res.stdout.trim().split('\n').pop())
}

function readKeys (dir) {
  const buf = readFileSync(dir + '.bench-keys')
  return new Float64Array(buf.buffer, buf.byteOffset, buf.byteLength / 8)
}

async function fill (adapter, args, raw) {
  const handle = await adapter.open(args.dir, { raw, ...args.options })
  const keys = new Float64Array(args.n)
  const t0 = performance.now()
  for (let b = 0, i = 0; i < args.n; b++) {
    const records = batchOf(b, args.n, raw)
    const got = await handle.fill(records)
    for (const key of got) keys[i++] = key
  }
  await handle.close()
  const ms = performance.now() - t0
  writeFileSync(args.dir + '.bench-keys', new Uint8Array(keys.buffer))
  return { ms, ops: args.n }
}

async function appendCase (adapter, args, mode, raw) {
  const handle = await adapter.open(args.dir, { raw, ...args.options })
  const n = args.n
  const t0 = performance.now()
  if (mode === 'single') {
    for (let i = 0; i < n; i++) await handle.append(message(i))
  } else if (mode === 'nowait') {
    for (let start = 0; start < n; start += NOWAIT_WINDOW) {
      const values = []
      for (let i = start; i < Math.min(n, start + NOWAIT_WINDOW); i++) values.push(message(i))
      await handle.appendNoWait(values)
    }
  } else {
    for (let b = 0; b * BATCH < n; b++) await handle.appendBatch(batchOf(b, n, raw))
  }
  await handle.close() // inside the timing: the store's own flush counts
  return { ms: performance.now() - t0, ops: n }
}

async function scanCase (adapter, args, raw) {
  prefill(args, raw)
  const handle = await adapter.open(args.dir, { raw, ...args.options })
  const rssBefore = process.memoryUsage.rss()
  let i = 0
  const check = raw ? checkRaw : checkMessage
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  await handle.scan((value) => { check(value, i); i++ })
  const ms = performance.now() - t0
  const cpuMs = cpuMsSince(cpu0)
  const scanRssAddedBytes = peakRss() - rssBefore
  await handle.close()
  if (i !== args.n) throw new Error(`scan read ${i} records, expected ${args.n}`)
  return { ms, ops: args.n, extra: { cpuMs, scanRssAddedBytes, rssBeforeScanBytes: rssBefore } }
}

async function getCase (adapter, args, raw) {
  prefill(args, raw)
  const keys = readKeys(args.dir)
  const indexes = randomIndexes(args.gets, args.n, args.seed)
  const check = raw ? checkRaw : checkMessage
  const handle = await adapter.open(args.dir, { raw, ...args.options })
  const t0 = performance.now()
  for (let j = 0; j < indexes.length; j++) {
    const i = indexes[j]
    check(await handle.get(keys[i]), i)
  }
  const ms = performance.now() - t0
  await handle.close()
  return { ms, ops: indexes.length, extra: { gets: indexes.length } }
}

async function reopenCase (adapter, args) {
  prefill(args, false)
  const keys = readKeys(args.dir)
  // Every timing below starts at t0, before the store's constructor runs, and
  // each one is taken when that step is done (ready, then last offset, then a
  // read of the first record).
  const t0 = performance.now()
  const handle = await adapter.open(args.dir, { raw: false, ...args.options })
  const readyMs = performance.now() - t0
  const last = await handle.lastOffset()
  const lastOffsetMs = performance.now() - t0
  const first = await handle.get(keys[0])
  const firstReadMs = performance.now() - t0
  await handle.close()
  checkMessage(first, 0)
  if (last !== keys[args.n - 1]) throw new Error(`last offset ${last}, expected ${keys[args.n - 1]}`)
  return { ms: lastOffsetMs, ops: null, extra: { readyMs, lastOffsetMs, firstReadMs } }
}

// Total size of the views' files (index and state), after the store was closed.
function viewBytes (adapter, dir) {
  let total = 0
  for (const p of adapter.viewPaths(dir)) {
    if (!existsSync(p)) continue
    total += statSync(p).isDirectory() ? dirBytes(p) : statSync(p).size
  }
  return total
}

function checkCounts (counts, n) {
  if (counts?.post !== n || Object.keys(counts).length !== 1) throw new Error(`reduce view: ${JSON.stringify(counts)}, expected { post: ${n} }`)
}

// Opens the database over the filled log with the reduce view, which has no
// state yet: timed until its get() returns the count of every message.
async function viewReduceRebuildCase (adapter, args) {
  prefill(args, false)
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  const db = await adapter.openViews(args.dir, { reduce: true, ...args.options })
  const counts = await db.counts()
  const ms = performance.now() - t0
  const cpuMs = cpuMsSince(cpu0)
  checkCounts(counts, args.n)
  const t1 = performance.now()
  await db.close()
  return { ms, ops: args.n, extra: { cpuMs, closeMs: performance.now() - t1, viewBytes: viewBytes(adapter, args.dir) } }
}

// Opens the database over the filled log with the key index, which is empty:
// timed until a get of the last message's key resolves (the index caught up).
async function viewIndexBuildCase (adapter, args) {
  prefill(args, false)
  const last = args.n - 1
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  const db = await adapter.openViews(args.dir, { index: true, ...args.options })
  const value = await db.byKey(authorTsKeyOf(last))
  const ms = performance.now() - t0
  const cpuMs = cpuMsSince(cpu0)
  checkMessage(value, last)
  const t1 = performance.now()
  await db.close()
  return { ms, ops: args.n, extra: { cpuMs, closeMs: performance.now() - t1, viewBytes: viewBytes(adapter, args.dir) } }
}

// Builds the index (untimed, in the fill process), reopens the database, then
// times `gets` gets by key of seeded random messages, one awaited at a time.
async function viewIndexGetCase (adapter, args) {
  prefill(args, false, 'index-fill')
  const indexes = randomIndexes(args.gets, args.n, args.seed)
  const db = await adapter.openViews(args.dir, { index: true, ...args.options })
  checkMessage(await db.byKey(authorTsKeyOf(0)), 0) // untimed: opened and caught up
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  for (let j = 0; j < indexes.length; j++) {
    const i = indexes[j]
    checkMessage(await db.byKey(authorTsKeyOf(i)), i)
  }
  const ms = performance.now() - t0
  const cpuMs = cpuMsSince(cpu0)
  await db.close()
  return { ms, ops: indexes.length, extra: { cpuMs, gets: indexes.length } }
}

async function indexFill (adapter, args) {
  const res = await fill(adapter, args, false)
  const db = await adapter.openViews(args.dir, { index: true, ...args.options })
  checkMessage(await db.byKey(authorTsKeyOf(args.n - 1)), args.n - 1)
  await db.close()
  return res
}

// append-batch with the reduce view attached: timed until the last append
// resolved, then the view's get() returned the full count (so the work the
// view had left to do counts), then close() resolved. extra: appendsMs (until
// the last append resolved), viewLagMs (from then until the view had caught
// up), closeMs, and noViewWaitPerSec = n / (appendsMs + closeMs): the rate
// when nobody waits for the view, comparable with append-batch (which also
// counts close()).
async function appendWithReduceCase (adapter, args) {
  const n = args.n
  const db = await adapter.openViews(args.dir, { reduce: true, ...args.options })
  const t0 = performance.now()
  for (let b = 0; b * BATCH < n; b++) await db.appendBatch(batchOf(b, n, false))
  const t1 = performance.now()
  const counts = await db.counts()
  const t2 = performance.now()
  await db.close()
  const t3 = performance.now()
  checkCounts(counts, n)
  const appendsMs = t1 - t0
  const closeMs = t3 - t2
  return {
    ms: t3 - t0,
    ops: n,
    extra: { appendsMs, viewLagMs: t2 - t1, closeMs, noViewWaitPerSec: n / ((appendsMs + closeMs) / 1000), viewBytes: viewBytes(adapter, args.dir) }
  }
}

// Fills the log (in its own process), then times adapter.importInto(dir), which
// converts it and resolves to the number of records copied.
async function importCase (adapter, args) {
  prefill(args, false)
  const t0 = performance.now()
  const records = await adapter.importInto(args.dir)
  const ms = performance.now() - t0
  if (records !== args.n) throw new Error(`import copied ${records} records, expected ${args.n}`)
  return { ms, ops: args.n }
}

async function runCase (adapter, args) {
  if (VIEW_CASES.includes(args.case) && typeof adapter.openViews !== 'function') throw new Error(`${adapter.store} has no views`)
  switch (args.case) {
    case 'fill': return fill(adapter, args, false)
    case 'raw-fill': return fill(adapter, args, true)
    case 'append-single': return appendCase(adapter, args, 'single', false)
    case 'append-nowait': return appendCase(adapter, args, 'nowait', false)
    case 'append-batch': return appendCase(adapter, args, 'batch', false)
    case 'scan': return scanCase(adapter, args, false)
    case 'get': return getCase(adapter, args, false)
    case 'reopen': return reopenCase(adapter, args)
    case 'raw-publish': return appendCase(adapter, args, 'batch', true)
    case 'raw-consume': return scanCase(adapter, args, true)
    case 'raw-get': return getCase(adapter, args, true)
    case 'index-fill': return indexFill(adapter, args)
    case 'view-reduce-rebuild': return viewReduceRebuildCase(adapter, args)
    case 'view-index-build': return viewIndexBuildCase(adapter, args)
    case 'view-index-get': return viewIndexGetCase(adapter, args)
    case 'append-with-reduce': return appendWithReduceCase(adapter, args)
    case 'import':
      if (typeof adapter.importInto !== 'function') throw new Error(`${adapter.store} has no import`)
      return importCase(adapter, args)
    default: throw new Error('unknown case ' + args.case)
  }
}

export async function main (adapter) {
  const args = parseArgs(process.argv, adapter.options)
  const res = await runCase(adapter, args)
  const notes = typeof adapter.notes === 'function' ? adapter.notes(args.options) : adapter.notes
  const note = notes?.[args.case]
  const out = {
    store: adapter.name ? adapter.name(args.options) : adapter.store,
    case: args.case,
    n: args.n,
    options: args.options,
    ms: res.ms,
    opsPerSec: res.ops ? res.ops / (res.ms / 1000) : null,
    rssPeakBytes: peakRss(),
    diskBytes: dirBytes(args.dir),
    extra: { ...res.extra, ...(note ? { note } : {}) }
  }
  // Exit explicitly: a peer may leave a file descriptor or a timer behind.
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0))
}
