// What LMDB's append (MDB_APPEND) saves the index view on growing keys: 1,000,000 entries
// [AUTHOR, ts] -> offset (the benchmark's index keys, one author, growing times) written in transactions of
// 10,000 as the view catches up, once with plain puts and once with appends. Prints the medians of CPU time
// (user + system, every thread) and elapsed time over the runs, and the file size.
//   node bench/lmdb-append.mjs [--n 1000000] [--runs 3]
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from 'lmdb'
import { AUTHOR, TS0 } from './workload.mjs'

const argv = process.argv.slice(2)
const arg = (name, fallback) => { const i = argv.indexOf(`--${name}`); return i < 0 ? fallback : Number(argv[i + 1]) }
const n = arg('n', 1_000_000)
const runs = arg('runs', 3)
const batch = 10_000

async function build (dir, append) {
  const root = open({ path: join(dir, 'index.mdb'), compression: false })
  const entries = root.openDB({ name: 'entries', encoding: 'ordered-binary' })
  const options = append ? { append: true } : undefined
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < n; i += batch) {
    await entries.transaction(() => {
      for (let j = i; j < Math.min(n, i + batch); j++) {
        if (entries.putSync([AUTHOR, TS0 + j], j * 180, options) === false) throw new Error(`append of ${j} refused`)
      }
    })
  }
  await root.flushed
  const ms = performance.now() - t0
  const { user, system } = process.cpuUsage(cpu0)
  if (entries.get([AUTHOR, TS0 + n - 1]) !== (n - 1) * 180) throw new Error('the last entry is missing')
  await root.close()
  return { ms, cpuMs: (user + system) / 1000, bytes: statSync(join(dir, 'index.mdb')).size }
}

const median = (values) => values.sort((a, b) => a - b)[values.length >> 1]
const results = { put: [], append: [] }
for (let run = 0; run < runs; run++) {
  for (const mode of ['put', 'append']) { // interleaved, so the noise of a shared machine hits both alike
    const dir = mkdtempSync(join(tmpdir(), 'sluice-lmdb-append-'))
    try {
      results[mode].push(await build(dir, mode === 'append'))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
for (const mode of ['put', 'append']) {
  const r = results[mode]
  console.log(`${mode.padEnd(6)}  cpu ${median(r.map((x) => x.cpuMs)).toFixed(0)} ms  elapsed ${median(r.map((x) => x.ms)).toFixed(0)} ms  file ${(median(r.map((x) => x.bytes)) / 1048576).toFixed(1)} MiB`)
}
const cpuRatio = median(results.put.map((x) => x.cpuMs)) / median(results.append.map((x) => x.cpuMs))
console.log(`plain puts / appends, CPU: ${cpuRatio.toFixed(2)}x (n = ${n}, medians of ${runs})`)
