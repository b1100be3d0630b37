// The cost of the native log's security options against the plain log, side by side in one run:
// plain, chained (SHA-256), chained with a key (HMAC-SHA-256), encrypted (AES-256-GCM) and both, each in a fresh directory, on ~150-byte JSON
// messages of the standard workload.
//
//   node bench/security.mjs [--n 200000] [--runs 3]
//
// Cases: append-single (each append awaited), append-batch (100 per call, each awaited), a full scan of the
// log the batch case wrote (decoded, decrypted), and the chain verification pass of `check --verify-chain` (MB/s
// of segment bytes, with its default digest workers and on one thread) on the chained logs. Medians of the runs, and each option's ratio
// to the plain log of the same run. Targets (ARCHITECTURE/README "Security"): chained appends at ≥ 70% of the
// plain rate, encrypted at ≥ 50%, verify-chain at ≥ 200 MB/s.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { FileLog } from '../dist/src/index.js'
import { verifyChain } from '../dist/src/ops/verify-chain.js'
import { BATCH, message } from './workload.mjs'

const args = Object.fromEntries(process.argv.slice(2).map((a, i, all) => a.startsWith('--') ? [a.slice(2), Number(all[i + 1])] : null).filter(Boolean))
const n = args.n ?? 200_000
const runs = args.runs ?? 3
const key = { id: 1, key: Buffer.alloc(32, 0x42) }

const VARIANTS = {
  plain: {},
  chained: { chain: 'sha256' },
  'chained-keyed': { chain: 'hmac-sha256', chainKey: Buffer.alloc(32, 0x24) },
  encrypted: { encryption: { key } },
  'chained+encrypted': { chain: 'sha256', encryption: { key } }
}

const messages = Array.from({ length: n }, (_, i) => message(i))

async function appendCase (variant, mode) {
  const dir = mkdtempSync(join(os.tmpdir(), 'sluice-bench-security-'))
  try {
    const log = await FileLog.open(join(dir, 'log'), VARIANTS[variant])
    const start = performance.now()
    if (mode === 'single') {
      for (let i = 0; i < n; i++) await log.append(messages[i])
    } else {
      for (let i = 0; i < n; i += BATCH) await log.append(messages.slice(i, i + BATCH))
    }
    await log.close()
    const seconds = (performance.now() - start) / 1000
    let scanRate = null
    if (mode === 'batch') {
      // The read side: a full scan, decoded (and decrypted, for the encrypted variants).
      const reader = await FileLog.open(join(dir, 'log'), { ...VARIANTS[variant], readonly: true })
      const t = performance.now()
      let records = 0
      for await (const record of reader.stream()) if (record.value !== undefined) records++
      scanRate = records / ((performance.now() - t) / 1000)
      await reader.close()
      if (records !== n) throw new Error(`${variant}: scanned ${records} of ${n}`)
    }
    let verifyMBs = null
    if (VARIANTS[variant].chain !== undefined && mode === 'batch') {
      // The chain pass alone (check's framing pass is measured by bench/maintenance.mjs): on this thread only
      // (workers: 0), then as `check --verify-chain` runs it by default (digest workers beside the walk).
      const names = readdirSync(join(dir, 'log')).filter((name) => name.endsWith('.seg')).sort()
      const bytes = names.reduce((sum, name) => sum + statSync(join(dir, 'log', name)).size, 0)
      verifyMBs = {}
      for (const [name, workers] of [['single', { workers: 0 }], ['default', {}]]) {
        const t = performance.now()
        const result = await verifyChain(join(dir, 'log'), names.map((name) => Number(name.slice(0, 20))), { chainKey: VARIANTS[variant].chainKey, ...workers })
        const ms = performance.now() - t
        if (result.broken !== null || result.records !== n) throw new Error(`${variant}: the chain does not verify`)
        verifyMBs[name] = bytes / 1e6 / (ms / 1000)
      }
    }
    return { rate: n / seconds, verifyMBs, scanRate }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const median = (values) => { const sorted = [...values].sort((a, b) => a - b); return sorted[Math.floor(sorted.length / 2)] }
const results = {}
for (let run = 0; run < runs; run++) {
  for (const mode of ['single', 'batch']) {
    // Interleaved: the variants of one run follow each other, so a noisy moment hits them alike; and each run
    // starts at the next variant, so none always runs first or just after another's writes are flushed.
    const names = Object.keys(VARIANTS)
    for (const variant of [...names.slice(run % names.length), ...names.slice(0, run % names.length)]) {
      const { rate, verifyMBs, scanRate } = await appendCase(variant, mode)
      const cell = (results[`${mode}:${variant}`] ??= { rates: [], verify: [], verifySingle: [], scans: [] })
      cell.rates.push(rate)
      if (scanRate !== null) cell.scans.push(scanRate)
      if (verifyMBs !== null) {
        cell.verify.push(verifyMBs.default)
        cell.verifySingle.push(verifyMBs.single)
      }
    }
  }
}

// Two ratios: of the medians, and the median of each run's own ratio (a variant against the plain log of the same
// run, which ran moments before it), the steadier of the two when the machine's speed drifts between runs.
const runRatios = (cells, plainCells) => median(cells.map((rate, run) => rate / plainCells[run]))
console.log(`security options, n = ${n}, ${runs} runs: medians (msgs/s), their ratio to the plain log, and the median of the runs' ratios`)
for (const mode of ['single', 'batch']) {
  const plainRates = results[`${mode}:plain`].rates
  for (const variant of Object.keys(VARIANTS)) {
    const rates = results[`${mode}:${variant}`].rates
    console.log(`append-${mode.padEnd(6)} ${variant.padEnd(18)} ${Math.round(median(rates)).toString().padStart(9)}  ${(median(rates) / median(plainRates)).toFixed(2)}  ${runRatios(rates, plainRates).toFixed(2)}`)
  }
}
const plainScans = results['batch:plain'].scans
for (const variant of Object.keys(VARIANTS)) {
  const scans = results[`batch:${variant}`].scans
  console.log(`scan decoded  ${variant.padEnd(18)} ${Math.round(median(scans)).toString().padStart(9)}  ${(median(scans) / median(plainScans)).toFixed(2)}  ${runRatios(scans, plainScans).toFixed(2)}`)
}
for (const variant of ['chained', 'chained-keyed', 'chained+encrypted']) {
  const { verify, verifySingle } = results[`batch:${variant}`]
  console.log(`check --verify-chain ${variant.padEnd(18)} ${median(verify).toFixed(0)} MB/s (one thread: ${median(verifySingle).toFixed(0)} MB/s, ratio ${median(verify.map((v, run) => v / verifySingle[run])).toFixed(2)})`)
}
