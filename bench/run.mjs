// Runs the benchmark cases against Sluice and its peers and prints the medians.
//
//   node bench/run.mjs [--n 1000000] [--runs 3] [--cases scan,get] [--stores sluice,flumelog-offset]
//                      [--gets 100000] [--seed 42] [--raw] [--no-caps]
//
// Each (case, store, run) is a separate child process (bench/stores/<store>.mjs)
// with a fresh directory under os.tmpdir(), removed afterwards, so that peak RSS
// is per store and no run inherits another's caches but the OS page cache.
// Within a repetition the stores run one after the other (A B C, A B C, ...)
// so that the noise of a shared machine hits all of them alike.
// Raw results go to bench/results/latest.json.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CASES, RAW_CASES } from './stores/driver.mjs'
import { GETS } from './workload.mjs'

const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
const SLUICE_DIST = join(BENCH_DIR, '..', 'dist', 'src', 'index.js')
const STORES = ['flumelog-offset', 'async-append-only-log', 'sluice']
const RAW_STORES = ['async-append-only-log', 'sluice'] // flumelog-offset is not in the raw-bytes variant
const SHORT = { 'flumelog-offset': 'flumelog-offset', 'async-append-only-log': 'aaol', sluice: 'sluice' }
const ALIASES = { aaol: 'async-append-only-log', flume: 'flumelog-offset', flumedb: 'flumelog-offset' }

// Combinations too slow to run at full size: flumelog-offset awaits one
// fs.write per single append (~10k/s, so 100 s per million). n is capped for
// them and the table says so.
const CAPS = { 'flumelog-offset': { 'append-single': 100_000 } }

const CHILD_TIMEOUT_MS = 30 * 60 * 1000

function parseArgs (argv) {
  const opts = { n: 1_000_000, runs: 3, cases: null, stores: null, gets: GETS, seed: 42, raw: false, caps: true }
  for (let i = 2; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '')
    if (name === 'raw') opts.raw = true
    else if (name === 'no-caps') opts.caps = false
    else if (['n', 'runs', 'gets', 'seed'].includes(name)) opts[name] = Number(argv[++i])
    else if (name === 'cases' || name === 'stores') opts[name] = argv[++i].split(',').map((s) => s.trim()).filter(Boolean)
    else throw new Error(`unknown argument ${argv[i]} (see the top of bench/run.mjs)`)
  }
  opts.cases ??= opts.raw ? RAW_CASES : CASES
  opts.stores = (opts.stores ?? (opts.raw ? RAW_STORES : STORES)).map((s) => ALIASES[s] ?? s)
  for (const c of opts.cases) if (!CASES.includes(c) && !RAW_CASES.includes(c)) throw new Error('unknown case ' + c)
  for (const s of opts.stores) if (!STORES.includes(s)) throw new Error('unknown store ' + s)
  if (!(opts.n > 0) || !(opts.runs > 0)) throw new Error('--n and --runs must be positive')
  return opts
}

// On a fresh clone the peers are not installed yet: install them from the lock file.
function ensurePeersInstalled () {
  if (existsSync(join(BENCH_DIR, 'node_modules'))) return
  console.error('bench/node_modules is missing: running npm ci --prefix bench')
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  const res = spawnSync(npm, ['ci', '--prefix', BENCH_DIR, '--no-audit', '--no-fund'], { stdio: 'inherit' })
  if (res.status !== 0) throw new Error('npm ci --prefix bench failed')
}

function runChild (store, kase, n, opts) {
  const parent = mkdtempSync(join(os.tmpdir(), 'sluice-bench-'))
  const dir = join(parent, 'store')
  mkdirSync(dir)
  try {
    const args = [join(BENCH_DIR, 'stores', store + '.mjs'), '--case', kase, '--n', String(n), '--dir', dir,
      '--gets', String(opts.gets), '--seed', String(opts.seed)]
    const res = spawnSync(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', timeout: CHILD_TIMEOUT_MS, maxBuffer: 1 << 20
    })
    if (res.status !== 0) return { store, case: kase, n, error: `exit ${res.status}${res.signal ? ' ' + res.signal : ''}` }
    return JSON.parse(res.stdout.trim().split('\n').pop())
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

const fmtRate = (x) => x == null ? '-' : x >= 1e6 ? (x / 1e6).toFixed(2) + 'M' : (x / 1e3).toFixed(1) + 'k'
const fmtMB = (x) => x == null ? '-' : (x / 1048576).toFixed(1)
const fmtMs = (x) => x == null ? '-' : x.toFixed(2)

function printTable (title, header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
  const line = (cells) => cells.map((c, i) => i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i])).join('  ')
  console.log('\n' + title)
  console.log(line(header))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows) console.log(line(r))
}

function report (opts, medians, capped) {
  const { stores } = opts
  const cell = (kase, store) => medians[kase]?.[store]
  const peers = stores.includes('sluice') ? stores.filter((s) => s !== 'sluice') : []
  const rateCases = opts.cases.filter((c) => c !== 'reopen')

  if (rateCases.length) {
    const header = ['msgs/s (median)', ...stores.map((s) => SHORT[s]), ...peers.map((p) => `sluice / ${SHORT[p]}`)]
    const rows = rateCases.map((c) => [
      c,
      ...stores.map((s) => {
        const m = cell(c, s)
        if (!m || m.error) return 'ERR'
        return fmtRate(m.opsPerSec) + (capped.has(`${c}/${s}`) ? '*' : '')
      }),
      ...peers.map((p) => {
        const a = cell(c, 'sluice')?.opsPerSec
        const b = cell(c, p)?.opsPerSec
        return a && b ? (a / b).toFixed(2) + 'x' : '-'
      })
    ])
    printTable(`Throughput, n = ${opts.n.toLocaleString('en')}, ${opts.runs} run(s) each`, header, rows)
    for (const key of capped) {
      const [c, s] = key.split('/')
      console.log(`* ${s} ${c}: n capped at ${cell(c, s)?.n?.toLocaleString('en')} (too slow at full size; --no-caps to lift)`)
    }
  }

  // Disk bytes per message, from whichever case filled the store with the full n
  // (every case leaves the same log behind, capped ones excepted).
  const diskRow = ['disk bytes/msg', ...stores.map((s) => {
    const c = opts.cases.find((k) => cell(k, s)?.diskBytes != null && !capped.has(`${k}/${s}`))
    const m = c && cell(c, s)
    return m ? (m.diskBytes / m.n).toFixed(1) : '-'
  })]
  const rssRows = opts.cases.map((c) => [`peak RSS MB, ${c}`, ...stores.map((s) => fmtMB(cell(c, s)?.rssPeakBytes))])
  const scanCase = opts.cases.find((c) => c === 'scan' || c === 'raw-consume')
  const scanRow = scanCase ? [[`RSS added by ${scanCase}, MB`, ...stores.map((s) => fmtMB(cell(scanCase, s)?.extra?.scanRssAddedBytes))]] : []
  printTable('Disk and memory (medians)', ['', ...stores.map((s) => SHORT[s])], [diskRow, ...rssRows, ...scanRow])

  if (opts.cases.includes('reopen')) {
    const row = (label, key) => [label, ...stores.map((s) => fmtMs(cell('reopen', s)?.extra?.[key]))]
    printTable(`Reopen of a ${opts.n.toLocaleString('en')}-message log, ms from open() (medians)`, ['', ...stores.map((s) => SHORT[s])],
      [row('ready', 'readyMs'), row('last offset known', 'lastOffsetMs'), row('first record read', 'firstReadMs')])
  }

  // The same note often applies to several cases of a store: print it once.
  const notes = new Map() // "store: note" -> cases
  for (const s of stores) {
    for (const c of opts.cases) {
      const note = cell(c, s)?.extra?.note
      if (!note) continue
      const key = `${SHORT[s]}: ${note}`
      if (!notes.has(key)) notes.set(key, [])
      notes.get(key).push(c)
    }
  }
  const errors = []
  for (const c of opts.cases) for (const s of stores) if (cell(c, s)?.error || cell(c, s)?.errors) errors.push(`${SHORT[s]} ${c}: ${cell(c, s).error ?? cell(c, s).errors + ' failed run(s)'}`)
  if (notes.size) console.log('\nNotes\n' + [...notes].map(([note, cases]) => `- ${note} [${cases.join(', ')}]`).join('\n'))
  if (errors.length) console.log('\nErrors\n' + errors.map((n) => '- ' + n).join('\n'))
}

function main () {
  const opts = parseArgs(process.argv)
  ensurePeersInstalled()
  if (opts.stores.includes('sluice') && !existsSync(SLUICE_DIST)) {
    console.error(`sluice: ${SLUICE_DIST} not found (run npm run build); leaving sluice out`)
    opts.stores = opts.stores.filter((s) => s !== 'sluice')
  }

  const results = []
  const capped = new Set()
  const medians = {}
  for (const kase of opts.cases) {
    const byStore = {}
    for (let run = 1; run <= opts.runs; run++) {
      for (const store of opts.stores) {
        const cap = opts.caps ? CAPS[store]?.[kase] : undefined
        const n = cap && cap < opts.n ? cap : opts.n
        if (n !== opts.n) capped.add(`${kase}/${store}`)
        const r = runChild(store, kase, n, opts)
        r.run = run
        results.push(r)
        ;(byStore[store] ??= []).push(r)
        const shown = r.error ? 'ERROR ' + r.error : kase === 'reopen' ? fmtMs(r.ms) + ' ms' : fmtRate(r.opsPerSec) + ' msgs/s'
        console.error(`[${kase}] ${store} run ${run}/${opts.runs}, n=${n}: ${shown}`)
      }
    }
    medians[kase] = {}
    for (const store of opts.stores) medians[kase][store] = summarize(byStore[store])
  }

  report(opts, medians, capped)

  const out = join(BENCH_DIR, 'results', 'latest.json')
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, JSON.stringify({
    date: new Date().toISOString(),
    node: process.version,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, totalMemBytes: os.totalmem(), platform: `${os.platform()} ${os.release()}` },
    options: opts,
    capped: [...capped],
    medians,
    results
  }, null, 2) + '\n')
  console.log(`\nraw results: ${out}`)
}

main()
