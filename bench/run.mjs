// Runs the benchmark cases against Sluice and its peers and prints the medians,
// then checks the targets of shared/BENCHMARKS.md against the ratios of this run.
//
//   node bench/run.mjs [--n 1000000] [--runs 3] [--cases scan,get] [--stores sluice,flumelog-offset]
//                      [--gets 100000] [--seed 42] [--raw] [--views] [--no-views] [--flume] [--no-caps] [--all-cells]
//
// The columns (STORES below) are store adapters (bench/stores/<script>.mjs) with
// options: `sluice`, `sluice-buffered` and `sluice-disk` are the same adapter
// with durability 'os', 'buffered' and 'disk'. Each column runs only the cases
// where it tells something (`cases`): durability changes nothing for reads, so
// only `sluice` runs scan/get/reopen, and the fsync'd columns (`sluice-disk`,
// `lmdb`) only run append-single and append-nowait. `--all-cells` runs every
// case each selected adapter supports.
//
// Each (case, store, run) is a separate child process with a fresh directory
// under os.tmpdir(), removed afterwards, so that peak RSS is per store and no
// run inherits another's caches but the OS page cache. Within a repetition the
// stores run one after the other (A B C, A B C, ...) so that the noise of a
// shared machine hits all of them alike.
// The view cases (VIEW_CASES: Sluice's reduce and index views against flumedb's
// flumeview-reduce and flumeview-level over flumelog-offset) are part of the
// default run; `--views` runs only them, `--no-views` leaves them out.
// append-with-reduce (Sluice's append-batch with a reduce view attached) is
// compared with Sluice's append-batch of the same run, so that cell is always
// run with it, the two interleaved run by run (INTERLEAVED).
// The flumelog-offset file cases (FLUME_STORES: Sluice's FlumeOffsetLog reading
// and importing the file format flumelog-offset writes, and sluice/flume running
// flumeview-reduce / flumeview-level unchanged in place of flumedb) have a table
// of their own; `--flume` runs only them.
// Raw results go to bench/results/latest.json.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { CASES, IMPORT_CASES, RAW_CASES, VIEW_CASES } from './stores/driver.mjs'
import { GETS } from './workload.mjs'

const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
const SLUICE_DIST = join(BENCH_DIR, '..', 'dist', 'src', 'index.js')

const APPEND_CASES = ['append-single', 'append-nowait', 'append-batch']
// The rows of the "Durable appends" table, where the fsync'd columns are shown.
const DURABLE_CASES = ['append-single', 'append-nowait']
// Whether a plain run (no --cases, --raw or --views) includes the view cases.
const VIEWS_BY_DEFAULT = true
// Cases run interleaved (for each run: every store of the first, then of the
// second, ...), because one is the baseline of the other's ratio.
const INTERLEAVED = [['append-batch', 'append-with-reduce']]
// The view cases flumedb runs by default (append-with-reduce only with --all-cells).
const FLUME_VIEW_CASES = ['view-reduce-rebuild', 'view-index-build', 'view-index-get']

// Every column. script: bench/stores/<script>.mjs; args: its options; cases:
// what it runs by default; supports: what it can run (--all-cells); durable:
// acknowledges after fsync (shown in its own table); caps: n for the slow cases
// (each awaited append waits for a thread-pool round trip or an fsync).
const STORES = {
  'flumelog-offset': {
    script: 'flumelog-offset', short: 'flumelog-offset', peer: true,
    viewShort: 'flumedb', // with flumeview-reduce / flumeview-level
    cases: [...CASES, ...FLUME_VIEW_CASES], supports: [...CASES, ...VIEW_CASES],
    caps: { 'append-single': 100_000 } // one fs.write per awaited append: ~10-25k/s
  },
  'async-append-only-log': {
    script: 'async-append-only-log', short: 'aaol', peer: true,
    cases: [...CASES, ...RAW_CASES], supports: [...CASES, ...RAW_CASES]
  },
  sluice: {
    script: 'sluice', args: ['--durability', 'os'], short: 'sluice',
    cases: [...CASES, ...RAW_CASES, ...VIEW_CASES], supports: [...CASES, ...RAW_CASES, ...VIEW_CASES]
  },
  'sluice-buffered': {
    script: 'sluice', args: ['--durability', 'buffered'], short: 'sluice-buffered',
    cases: [...APPEND_CASES, 'raw-publish'], supports: [...CASES, ...RAW_CASES, ...VIEW_CASES]
  },
  'sluice-disk': {
    script: 'sluice', args: ['--durability', 'disk'], short: 'sluice-disk', durable: true,
    cases: DURABLE_CASES, supports: [...CASES, ...RAW_CASES, ...VIEW_CASES],
    caps: { 'append-single': 5_000 } // an fsync per awaited append: ~1-4k/s
  },
  lmdb: {
    script: 'lmdb', short: 'lmdb', peer: true, durable: true,
    cases: DURABLE_CASES, supports: CASES,
    caps: { 'append-single': 5_000 } // a synced transaction per awaited put: ~1-2k/s
  },
  // Sluice on flumelog-offset files: FlumeOffsetLog through Sluice's API, and
  // sluice/flume (flumedb's API) with the flumeview-* modules over it.
  'sluice-offset': {
    script: 'sluice-offset', short: 'sluice-offset', flume: true,
    cases: ['scan', 'get', ...IMPORT_CASES], supports: [...CASES, ...IMPORT_CASES]
  },
  'sluice-flume': {
    script: 'sluice-flume', short: 'sluice/flume', viewShort: 'sluice/flume', flume: true,
    cases: ['scan', 'get', 'view-reduce-rebuild', 'view-index-build'], supports: [...CASES, ...FLUME_VIEW_CASES]
  }
}
const DEFAULT_STORES = Object.keys(STORES)
const RAW_STORES = ['async-append-only-log', 'sluice'] // flumelog-offset and lmdb are not in the raw-bytes variant
const ALIASES = {
  aaol: 'async-append-only-log', flume: 'flumelog-offset', flumedb: 'flumelog-offset',
  'sluice-os': 'sluice', buffered: 'sluice-buffered', disk: 'sluice-disk'
}
const short = (s) => STORES[s].short
// The Sluice columns that get ratio columns against every peer in the main table.
const SUBJECTS = ['sluice', 'sluice-buffered']
// The cases and columns of --flume (the flumelog-offset file table).
const FLUME_CASES = ['scan', 'get', ...IMPORT_CASES, 'view-reduce-rebuild', 'view-index-build']
const FLUME_STORES = ['flumelog-offset', 'sluice-offset', 'sluice-flume']

const CHILD_TIMEOUT_MS = 30 * 60 * 1000

function parseArgs (argv) {
  const opts = { n: 1_000_000, runs: 3, cases: null, stores: null, gets: GETS, seed: 42, raw: false, views: null, flume: false, caps: true, allCells: false }
  for (let i = 2; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '')
    if (name === 'raw') opts.raw = true
    else if (name === 'views') opts.views = true
    else if (name === 'no-views') opts.views = false
    else if (name === 'flume') opts.flume = true
    else if (name === 'no-caps') opts.caps = false
    else if (name === 'all-cells') opts.allCells = true
    else if (['n', 'runs', 'gets', 'seed'].includes(name)) opts[name] = Number(argv[++i])
    else if (name === 'cases' || name === 'stores') opts[name] = argv[++i].split(',').map((s) => s.trim()).filter(Boolean)
    else throw new Error(`unknown argument ${argv[i]} (see the top of bench/run.mjs)`)
  }
  if (opts.views && (opts.cases || opts.raw)) throw new Error('--views runs the view cases only: not with --cases or --raw')
  if (opts.flume && (opts.raw || opts.views != null)) throw new Error('--flume runs the flumelog-offset file cases (and --cases among them) only')
  if (opts.flume) opts.stores ??= FLUME_STORES
  opts.cases ??= opts.raw ? RAW_CASES : opts.flume ? FLUME_CASES : opts.views ? VIEW_CASES
    : (opts.views ?? VIEWS_BY_DEFAULT) ? [...CASES, ...VIEW_CASES, ...IMPORT_CASES] : [...CASES, ...IMPORT_CASES]
  if (opts.views === false) opts.cases = opts.cases.filter((c) => !VIEW_CASES.includes(c))
  opts.stores = (opts.stores ?? (opts.raw ? RAW_STORES : DEFAULT_STORES)).map((s) => ALIASES[s] ?? s)
  for (const c of opts.cases) if (![...CASES, ...RAW_CASES, ...VIEW_CASES, ...IMPORT_CASES].includes(c)) throw new Error('unknown case ' + c)
  // append-with-reduce is read against append-batch of the same store and run:
  // add that cell when it was not asked for (only for the stores that need it).
  opts.baselineOnly = null
  if (opts.cases.includes('append-with-reduce') && !opts.cases.includes('append-batch')) {
    opts.cases = opts.cases.flatMap((c) => c === 'append-with-reduce' ? ['append-batch', c] : [c])
    opts.baselineOnly = { 'append-batch': 'append-with-reduce' }
  }
  for (const s of opts.stores) if (!STORES[s]) throw new Error(`unknown store ${s} (one of ${Object.keys(STORES).join(', ')})`)
  if (!(opts.n > 0) || !(opts.runs > 0)) throw new Error('--n and --runs must be positive')
  return opts
}

// Whether the (case, store) cell is run.
function runs (opts, kase, store) {
  const of = opts.baselineOnly?.[kase]
  if (of) return runs(opts, of, store) && STORES[store].supports.includes(kase)
  return (opts.allCells ? STORES[store].supports : STORES[store].cases).includes(kase)
}

// The selected cases in groups run together (see INTERLEAVED), in order.
function caseGroups (cases) {
  const groups = []
  const done = new Set()
  for (const c of cases) {
    if (done.has(c)) continue
    const together = INTERLEAVED.find((g) => g.includes(c))?.filter((k) => cases.includes(k)) ?? [c]
    for (const k of together) done.add(k)
    groups.push(together)
  }
  return groups
}

// On a fresh clone the peers are not installed yet, and after a pull one may be
// missing: install them from the lock file.
function ensurePeersInstalled () {
  const deps = Object.keys(JSON.parse(readFileSync(join(BENCH_DIR, 'package.json'), 'utf8')).dependencies)
  const missing = deps.filter((d) => !existsSync(join(BENCH_DIR, 'node_modules', d, 'package.json')))
  if (missing.length === 0) return
  console.error(`bench/node_modules lacks ${missing.join(', ')}: running npm ci --prefix bench`)
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  const res = spawnSync(npm, ['ci', '--prefix', BENCH_DIR, '--no-audit', '--no-fund'], { stdio: 'inherit' })
  if (res.status !== 0) throw new Error('npm ci --prefix bench failed')
}

function runChild (store, kase, n, opts) {
  const parent = mkdtempSync(join(os.tmpdir(), 'sluice-bench-'))
  const dir = join(parent, 'store')
  mkdirSync(dir)
  try {
    const { script, args: storeArgs = [] } = STORES[store]
    const args = [join(BENCH_DIR, 'stores', script + '.mjs'), '--case', kase, '--n', String(n), '--dir', dir,
      '--gets', String(opts.gets), '--seed', String(opts.seed), ...storeArgs]
    const res = spawnSync(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', timeout: CHILD_TIMEOUT_MS, maxBuffer: 1 << 20
    })
    if (res.status !== 0) return { store, case: kase, n, error: `exit ${res.status}${res.signal ? ' ' + res.signal : ''}` }
    const out = JSON.parse(res.stdout.trim().split('\n').pop())
    if (out.store !== store) throw new Error(`${script}.mjs ${storeArgs.join(' ')} measured ${out.store}, expected ${store}`)
    return out
  } finally {
    rmSync(parent, { recursive: true, force: true })
  }
}

function median (values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const mid = v.length >> 1
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

// Median of every numeric field (and of every numeric field of `extra`).
function summarize (runs) {
  const ok = runs.filter((r) => !r.error)
  if (ok.length === 0) return { error: runs[0]?.error ?? 'no run' }
  const out = { n: ok[0].n, runs: ok.length, errors: runs.length - ok.length }
  for (const key of ['ms', 'opsPerSec', 'rssPeakBytes', 'diskBytes']) out[key] = median(ok.map((r) => r[key]))
  out.extra = {}
  for (const key of Object.keys(ok[0].extra ?? {})) {
    const values = ok.map((r) => r.extra?.[key])
    out.extra[key] = typeof values[0] === 'number' ? median(values) : values[0]
  }
  return out
}

const fmtRate = (x) => x == null ? '-' : x >= 1e6 ? (x / 1e6).toFixed(2) + 'M' : x >= 1e5 ? (x / 1e3).toFixed(0) + 'k' : (x / 1e3).toFixed(1) + 'k'
const fmtMB = (x) => x == null ? '-' : (x / 1048576).toFixed(1)
const fmtMs = (x) => x == null ? '-' : x.toFixed(2)
const fmtRatio = (x) => x == null ? '-' : x >= 100 ? x.toFixed(0) + 'x' : x.toFixed(2) + 'x'
const fmtN = (n) => n.toLocaleString('en')

// groups: optional labels spanning columns, printed above the header:
// [{ label, from, to }] (column indexes, inclusive).
function printTable (title, header, rows, groups = []) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
  const spanOf = (g) => widths.slice(g.from, g.to + 1).reduce((a, b) => a + b, 0) + 2 * (g.to - g.from)
  for (const g of groups) { // widen the last column of a group if its label does not fit
    const missing = g.label.length + 4 - spanOf(g) // at least "- label -"
    if (missing > 0) widths[g.to] += missing
  }
  const line = (cells) => cells.map((c, i) => i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i])).join('  ')
  console.log('\n' + title)
  if (groups.length) { // "---- label ----" centred over its columns
    let text = ''
    for (const g of groups) {
      const dashes = spanOf(g) - g.label.length - 2
      const left = dashes >> 1
      text = text.padEnd(widths.slice(0, g.from).reduce((a, b) => a + b + 2, 0)) +
        '-'.repeat(left) + ' ' + g.label + ' ' + '-'.repeat(dashes - left)
    }
    console.log(text)
  }
  console.log(line(header))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows) console.log(line(r))
}

function report (opts, medians, capped) {
  const { stores } = opts
  const cell = (kase, store) => medians[kase]?.[store]
  const rate = (kase, store) => { const m = cell(kase, store); return m && !m.error ? m.opsPerSec : null }
  const ratio = (a, b) => a && b ? a / b : null
  const rateCell = (c, s) => {
    const m = cell(c, s)
    if (!m) return '-'
    if (m.error) return 'ERR'
    return fmtRate(m.opsPerSec) + (capped.has(`${c}/${s}`) ? '*' : '')
  }
  const capNotes = (cells) => {
    for (const [c, s] of cells) {
      if (capped.has(`${c}/${s}`)) console.log(`* ${short(s)} ${c}: n capped at ${fmtN(cell(c, s)?.n ?? 0)} (too slow at full size; --no-caps to lift)`)
    }
  }
  const rateCases = opts.cases.filter((c) => c !== 'reopen' && !VIEW_CASES.includes(c))

  // Main table: every column but the fsync'd ones, which have their own table
  // (unless they were also run for other cases, with --all-cells).
  const mainStores = stores.filter((s) => !STORES[s].flume && ((!STORES[s].durable && rateCases.some((c) => cell(c, s))) ||
    rateCases.some((c) => !DURABLE_CASES.includes(c) && cell(c, s))))
  const subjects = SUBJECTS.filter((s) => mainStores.includes(s))
  const peers = mainStores.filter((s) => STORES[s].peer)
  const mainRows = rateCases.filter((c) => mainStores.some((s) => cell(c, s)))
  // --flume has a table of its own, with flumelog-offset as the baseline.
  if (mainRows.length && mainStores.length && !opts.flume) {
    const header = ['msgs/s (median)', ...mainStores.map(short)]
    const groups = []
    for (const subject of peers.length ? subjects : []) {
      groups.push({ label: `${short(subject)} /`, from: header.length, to: header.length + peers.length - 1 })
      header.push(...peers.map(short))
    }
    const rows = mainRows.map((c) => [
      c,
      ...mainStores.map((s) => rateCell(c, s)),
      ...groups.flatMap((_, g) => peers.map((p) => fmtRatio(ratio(rate(c, subjects[g]), rate(c, p)))))
    ])
    printTable(`Throughput, n = ${fmtN(opts.n)}, ${opts.runs} run(s) each`, header, rows, groups)
    capNotes(mainRows.flatMap((c) => mainStores.map((s) => [c, s])))
  }

  // Durable appends: acknowledged only once fsynced.
  const durableStores = stores.filter((s) => STORES[s].durable)
  const durableRows = DURABLE_CASES.filter((c) => opts.cases.includes(c) && durableStores.some((s) => cell(c, s)))
  if (durableRows.length) {
    const pair = durableStores.includes('sluice-disk') && durableStores.includes('lmdb')
    const header = ['msgs/s (median)', ...durableStores.map(short), ...(pair ? ['sluice-disk / lmdb'] : [])]
    const rows = durableRows.map((c) => [c, ...durableStores.map((s) => rateCell(c, s)),
      ...(pair ? [fmtRatio(ratio(rate(c, 'sluice-disk'), rate(c, 'lmdb')))] : [])])
    printTable('Durable appends (fsync before acknowledging)', header, rows)
    capNotes(durableRows.flatMap((c) => durableStores.map((s) => [c, s])))
    if (pair) {
      console.log(`sluice-disk nowait / lmdb single: ${fmtRatio(ratio(rate('append-nowait', 'sluice-disk'), rate('append-single', 'lmdb')))}` +
        ' (group commit vs one synced transaction per awaited put)')
    }
  }

  // Disk bytes per message, from whichever case filled the store with the full n
  // (every case leaves the same log behind, capped ones excepted).
  const allStores = stores.filter((s) => opts.cases.some((c) => cell(c, s)))
  const diskRow = ['disk bytes/msg', ...allStores.map((s) => {
    const c = opts.cases.find((k) => !VIEW_CASES.includes(k) && cell(k, s)?.diskBytes != null && !capped.has(`${k}/${s}`))
    const m = c && cell(c, s)
    return m ? (m.diskBytes / m.n).toFixed(1) : '-'
  })]
  const rssRows = opts.cases.filter((c) => allStores.some((s) => cell(c, s))).map((c) => [`peak RSS MB, ${c}`, ...allStores.map((s) => fmtMB(cell(c, s)?.rssPeakBytes))])
  const scanCase = opts.cases.find((c) => c === 'scan' || c === 'raw-consume')
  const scanRow = scanCase ? [[`RSS added by ${scanCase}, MB`, ...allStores.map((s) => fmtMB(cell(scanCase, s)?.extra?.scanRssAddedBytes))]] : []
  if (allStores.length) printTable('Disk and memory (medians)', ['', ...allStores.map(short)], [diskRow, ...rssRows, ...scanRow])

  const reopenStores = stores.filter((s) => cell('reopen', s))
  if (reopenStores.length) {
    const row = (label, key) => [label, ...reopenStores.map((s) => fmtMs(cell('reopen', s)?.extra?.[key]))]
    printTable(`Reopen of a ${fmtN(opts.n)}-message log, ms from open() (medians)`, ['', ...reopenStores.map(short)],
      [row('ready', 'readyMs'), row('last offset known', 'lastOffsetMs'), row('first record read', 'firstReadMs')])
  }

  if (!opts.flume) printViews(opts, cell, rate, ratio, rateCell)

  printFlume(opts, cell, rate, ratio, rateCell)

  printTargets(opts, cell, rate)

  // The same note often applies to several cases of a store: print it once.
  const notes = new Map() // "store: note" -> cases
  for (const s of stores) {
    for (const c of opts.cases) {
      const note = cell(c, s)?.extra?.note
      if (!note) continue
      const key = `${short(s)}: ${note}`
      if (!notes.has(key)) notes.set(key, [])
      notes.get(key).push(c)
    }
  }
  const errors = []
  for (const c of opts.cases) for (const s of stores) if (cell(c, s)?.error || cell(c, s)?.errors) errors.push(`${short(s)} ${c}: ${cell(c, s).error ?? cell(c, s).errors + ' failed run(s)'}`)
  if (notes.size) console.log('\nNotes\n' + [...notes].map(([note, cases]) => `- ${note} [${cases.join(', ')}]`).join('\n'))
  if (errors.length) console.log('\nErrors\n' + errors.map((n) => '- ' + n).join('\n'))
}

// The view cases: Sluice's views against flumedb's (flumeview-reduce,
// flumeview-level), then append-with-reduce against append-batch.
function printViews (opts, cell, rate, ratio, rateCell) {
  const viewRows = VIEW_CASES.filter((c) => opts.cases.includes(c) && opts.stores.some((s) => cell(c, s)))
  if (viewRows.length === 0) return
  const viewStores = opts.stores.filter((s) => viewRows.some((c) => cell(c, s)))
  const peers = viewStores.filter((s) => STORES[s].peer)
  const label = (s) => STORES[s].viewShort ?? short(s)
  const what = {
    'view-reduce-rebuild': 'reduce rebuild, msgs/s',
    'view-index-build': 'index build, msgs/s',
    'view-index-get': 'get by key, gets/s',
    'append-with-reduce': 'append batch + reduce view, msgs/s'
  }
  const header = ['view case (median)', ...viewStores.map(label), ...peers.map((p) => `sluice / ${label(p)}`)]
  const rows = viewRows.map((c) => [what[c], ...viewStores.map((s) => rateCell(c, s)),
    ...peers.map((p) => fmtRatio(ratio(rate(c, 'sluice'), rate(c, p))))])
  printTable(`Views, n = ${fmtN(opts.n)}, ${opts.runs} run(s) each (flumedb: flumelog-offset with flumeview-reduce / flumeview-level)`, header, rows)
  // Messages per CPU-second (every thread of the process: LMDB's write thread, leveldown's pool): on a shared
  // machine the CPU a case took swings far less than its elapsed time.
  const cpuRate = (c, s) => {
    const m = cell(c, s)
    return m && !m.error && m.extra?.cpuMs ? (c === 'view-index-get' ? m.extra.gets : m.n) / (m.extra.cpuMs / 1000) : null
  }
  const cpuRows = ['scan', ...viewRows].filter((c) => c !== 'append-with-reduce' && opts.cases.includes(c) && viewStores.some((s) => cpuRate(c, s)))
  if (cpuRows.length) {
    printTable('The same per CPU-second (user + system time of every thread; medians)', ['per CPU-second', ...viewStores.map(label), ...peers.map((p) => `sluice / ${label(p)}`)],
      cpuRows.map((c) => [what[c] ?? 'scan decoded, msgs/s', ...viewStores.map((s) => fmtRate(cpuRate(c, s))),
        ...peers.map((p) => fmtRatio(ratio(cpuRate(c, 'sluice'), cpuRate(c, p))))]))
  }
  if (viewRows.includes('view-index-build')) {
    const c = 'view-index-build'
    const perMsg = (s) => { const b = cell(c, s)?.extra?.viewBytes; return b == null ? '-' : (b / cell(c, s).n).toFixed(1) }
    printTable('Index on disk after the build (medians)', ['', ...viewStores.map(label)],
      [['bytes/msg', ...viewStores.map(perMsg)]])
  }
  for (const s of viewStores) {
    const w = cell('append-with-reduce', s)
    const base = rate('append-batch', s)
    if (!w || w.error || !base) continue
    console.log(`\nappend-with-reduce / append-batch (${short(s)}): ${fmtRatio(w.opsPerSec / base)} counting the wait for the view to catch up` +
      ` (${fmtMs(w.extra.viewLagMs)} ms after the last append); ${fmtRatio(w.extra.noViewWaitPerSec / base)} without that wait (appends + close)`)
  }
}

// The flumelog-offset file table: the same file format read by flumelog-offset
// (through flumedb) and by Sluice's FlumeOffsetLog, the flumeview-* modules on
// flumedb and on sluice/flume, and sluice import of the file.
function printFlume (opts, cell, rate, ratio, rateCell) {
  const subjects = opts.stores.filter((s) => STORES[s].flume)
  const what = {
    scan: 'scan decoded, msgs/s',
    get: 'random get, gets/s',
    import: 'sluice import, msgs/s',
    'view-reduce-rebuild': 'flumeview-reduce rebuild, msgs/s',
    'view-index-build': 'flumeview-level build, msgs/s',
    'view-index-get': 'flumeview-level get, gets/s'
  }
  const rows = Object.keys(what).filter((c) => opts.cases.includes(c) && subjects.some((s) => cell(c, s)))
  if (rows.length === 0) return
  const peer = opts.stores.includes('flumelog-offset') ? 'flumelog-offset' : null
  const columns = [...(peer ? [peer] : []), ...subjects]
  const header = ['flumelog-offset file (median)', ...columns.map((s) => s === peer ? 'flumedb' : short(s)),
    ...(peer ? subjects.map((s) => `${short(s)} / flumedb`) : [])]
  const table = rows.map((c) => [what[c], ...columns.map((s) => rateCell(c, s)),
    ...(peer ? subjects.map((s) => fmtRatio(ratio(rate(c, s), rate(c, peer)))) : [])])
  printTable(`flumelog-offset files, n = ${fmtN(opts.n)}, ${opts.runs} run(s) each (flumedb: flumedb over flumelog-offset)`, header, table)
  const imported = cell('import', 'sluice-offset')
  if (imported && !imported.error) console.log(`sluice import of ${fmtN(imported.n)} messages: ${(imported.ms / 1000).toFixed(1)} s (median)`)
}

// The targets of shared/BENCHMARKS.md, each checked against this run's medians.
// A target whose cells were not run (or failed) is listed as not measured;
// `optional` ones are only listed when measured (lmdb's reads need --all-cells).
function targets (opts, cell, rate) {
  const r = (numCase, num, denCase, den) => {
    const a = rate(numCase, num)
    const b = rate(denCase, den)
    return a && b ? a / b : null
  }
  const extra = (kase, store, key) => { const m = cell(kase, store); return m && !m.error ? m.extra?.[key] ?? null : null }
  const MiB = 1048576
  // A miss never prints as the goal itself (1.4996 would show as 1.50x).
  const atLeast = (min) => ({
    goal: `≥ ${min}x`,
    ok: (x) => x >= min,
    fmt: (x) => x < min && fmtRatio(x) === fmtRatio(min) ? x.toFixed(4) + 'x' : fmtRatio(x)
  })
  return [
    { what: 'append batch of 100: sluice / aaol', value: r('append-batch', 'sluice', 'append-batch', 'async-append-only-log'), ...atLeast(1.5) },
    { what: 'append batch of 100: sluice / flumelog-offset', value: r('append-batch', 'sluice', 'append-batch', 'flumelog-offset'), ...atLeast(1.5) },
    { what: 'append single: sluice-buffered / aaol (both ack before writing)', value: r('append-single', 'sluice-buffered', 'append-single', 'async-append-only-log'), ...atLeast(1) },
    { what: 'append single: sluice (os: acks after write) / aaol', value: r('append-single', 'sluice', 'append-single', 'async-append-only-log'), goal: 'info', fmt: fmtRatio },
    { what: 'append single: sluice / flumelog-offset', value: r('append-single', 'sluice', 'append-single', 'flumelog-offset'), ...atLeast(10) },
    { what: 'scan decoded: sluice / aaol', value: r('scan', 'sluice', 'scan', 'async-append-only-log'), ...atLeast(1) },
    { what: 'scan decoded: sluice / flumelog-offset', value: r('scan', 'sluice', 'scan', 'flumelog-offset'), ...atLeast(3) },
    { what: 'scan decoded: sluice / lmdb', value: r('scan', 'sluice', 'scan', 'lmdb'), ...atLeast(1), optional: true },
    { what: 'random get: sluice / flumelog-offset', value: r('get', 'sluice', 'get', 'flumelog-offset'), ...atLeast(10) },
    { what: 'random get: sluice / lmdb', value: r('get', 'sluice', 'get', 'lmdb'), ...atLeast(1), optional: true },
    {
      what: `reopen of the ${fmtN(opts.n)}-message log to last offset: sluice`,
      value: extra('reopen', 'sluice', 'lastOffsetMs'), goal: '≤ 10 ms', ok: (x) => x <= 10, fmt: (x) => fmtMs(x) + ' ms'
    },
    {
      what: 'RSS added by a full scan: sluice',
      value: extra('scan', 'sluice', 'scanRssAddedBytes'), goal: '< 64 MB', ok: (x) => x < 64 * MiB, fmt: (x) => fmtMB(x) + ' MB'
    },
    { what: 'durable: sluice-disk nowait / lmdb single', value: r('append-nowait', 'sluice-disk', 'append-single', 'lmdb'), ...atLeast(20) },
    { what: 'views: reduce rebuild: sluice / flumeview-reduce', value: r('view-reduce-rebuild', 'sluice', 'view-reduce-rebuild', 'flumelog-offset'), ...atLeast(5) },
    { what: 'views: index build: sluice / flumeview-level', value: r('view-index-build', 'sluice', 'view-index-build', 'flumelog-offset'), ...atLeast(3) },
    { what: 'views: get by key: sluice / flumeview-level', value: r('view-index-get', 'sluice', 'view-index-get', 'flumelog-offset'), ...atLeast(5) },
    // The target is the speed of the appends themselves (appends + close); the view catches up afterwards.
    {
      what: 'views: append batch with a reduce view / without: sluice',
      value: (() => { const w = extra('append-with-reduce', 'sluice', 'noViewWaitPerSec'); const b = rate('append-batch', 'sluice'); return w && b ? w / b : null })(),
      ...atLeast(0.9)
    },
    { what: 'flume files: scan decoded: sluice-offset / flumelog-offset', value: r('scan', 'sluice-offset', 'scan', 'flumelog-offset'), ...atLeast(3) },
    { what: 'flume files: random get: sluice-offset / flumelog-offset', value: r('get', 'sluice-offset', 'get', 'flumelog-offset'), ...atLeast(3) },
    {
      what: `flume files: sluice import of ${fmtN(opts.n)} messages`,
      value: (() => { const m = cell('import', 'sluice-offset'); return m && !m.error ? m.ms / 1000 : null })(),
      goal: '< 10 s', ok: (x) => x < 10, fmt: (x) => x.toFixed(1) + ' s'
    },
    { what: 'flume files: flumeview-reduce rebuild: sluice/flume / flumedb', value: r('view-reduce-rebuild', 'sluice-flume', 'view-reduce-rebuild', 'flumelog-offset'), ...atLeast(1) },
    { what: 'flume files: flumeview-level build: sluice/flume / flumedb', value: r('view-index-build', 'sluice-flume', 'view-index-build', 'flumelog-offset'), ...atLeast(1) },
    {
      what: 'views: the same, including the wait for the view to catch up: sluice',
      value: r('append-with-reduce', 'sluice', 'append-batch', 'sluice'),
      goal: 'info', fmt: fmtRatio, optional: true
    }
  ].filter((t) => !(t.optional && t.value == null) &&
    // --views lists only the view targets, --no-views leaves them out; --flume only the flume ones
    (opts.views == null || opts.views === t.what.startsWith('views:')) &&
    (!opts.flume || t.what.startsWith('flume files:')))
}

function printTargets (opts, cell, rate) {
  if (opts.raw && !opts.cases.some((c) => CASES.includes(c))) return // the targets are for the JSON workload
  const list = targets(opts, cell, rate)
  const rows = list.map((t) => [
    t.what, t.goal,
    t.value == null ? 'not measured' : t.fmt(t.value),
    t.value == null || !t.ok ? '' : t.ok(t.value) ? '✓' : '✗'
  ])
  printTable(`Targets (shared/BENCHMARKS.md), medians of this run`, ['target', 'goal', 'this run', ''], rows)
  const checked = list.filter((t) => t.ok && t.value != null)
  const met = checked.filter((t) => t.ok(t.value)).length
  const unmeasured = list.filter((t) => t.ok && t.value == null).length
  console.log(`${met} of ${checked.length} measured targets met` + (unmeasured ? `; ${unmeasured} not measured (cases or stores left out)` : ''))
  if (opts.n !== 1_000_000) console.log(`n = ${fmtN(opts.n)}: the targets are set for n = 1,000,000; at other sizes they are only indicative.`)
  console.log('Not checked here: batch vs the JSON encoding limit, raw bytes vs klevdb (Go), scan and get vs better-sqlite3.')
}

function main () {
  const started = performance.now()
  const opts = parseArgs(process.argv)
  ensurePeersInstalled()
  if (opts.stores.some((s) => STORES[s].script === 'sluice') && !existsSync(SLUICE_DIST)) {
    console.error(`sluice: ${SLUICE_DIST} not found (run npm run build); leaving sluice out`)
    opts.stores = opts.stores.filter((s) => STORES[s].script !== 'sluice')
  }

  const results = []
  const capped = new Set()
  const medians = {}
  for (const group of caseGroups(opts.cases)) {
    const caseStores = Object.fromEntries(group.map((kase) => [kase, opts.stores.filter((s) => runs(opts, kase, s))]))
    const byStore = Object.fromEntries(group.map((kase) => [kase, {}]))
    for (let run = 1; run <= opts.runs; run++) {
      for (const kase of group) {
        for (const store of caseStores[kase]) {
          const cap = opts.caps ? STORES[store].caps?.[kase] : undefined
          const n = cap && cap < opts.n ? cap : opts.n
          if (n !== opts.n) capped.add(`${kase}/${store}`)
          const r = runChild(store, kase, n, opts)
          r.run = run
          results.push(r)
          ;(byStore[kase][store] ??= []).push(r)
          const unit = kase === 'view-index-get' ? ' gets/s' : ' msgs/s'
          const shown = r.error ? 'ERROR ' + r.error : kase === 'reopen' ? fmtMs(r.ms) + ' ms' : fmtRate(r.opsPerSec) + unit
          console.error(`[${kase}] ${store} run ${run}/${opts.runs}, n=${n}: ${shown}`)
        }
      }
    }
    for (const kase of group) {
      if (caseStores[kase].length === 0) continue
      medians[kase] = {}
      for (const store of caseStores[kase]) medians[kase][store] = summarize(byStore[kase][store])
    }
  }

  report(opts, medians, capped)

  const out = join(BENCH_DIR, 'results', 'latest.json')
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, JSON.stringify({
    date: new Date().toISOString(),
    node: process.version,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, totalMemBytes: os.totalmem(), platform: `${os.platform()} ${os.release()}` },
    options: opts,
    stores: Object.fromEntries(opts.stores.map((s) => [s, { script: STORES[s].script, args: STORES[s].args ?? [] }])),
    capped: [...capped],
    medians,
    results
  }, null, 2) + '\n')
  console.log(`\nraw results: ${out}`)
  const seconds = (performance.now() - started) / 1000
  console.log(`total time: ${seconds < 120 ? seconds.toFixed(0) + ' s' : (seconds / 60).toFixed(1) + ' min'}`)
}

main()
