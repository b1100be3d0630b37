// The log's maintenance on the standard 1M-message workload, each in a fresh log:
//   trim by offset (segment drops), compaction (1,000 keys), check.
//
//   node bench/maintenance.mjs [--n 1000000] [--runs 3]
//
// Then, once each: an index view's prune after a trim, and a backup of a 1 GiB log while appends go on. Prints
// the medians and the goals:
// trim of 1M records under 100 ms, compaction at ≥ 50 MB/s, check at ≥ 300 MB/s, appends during a backup
// above half their rate.
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { FileLog, check } from '../dist/src/index.js'
import { authorTsKey, message } from './workload.mjs'

const args = Object.fromEntries(process.argv.slice(2).map((a, i, all) => a.startsWith('--') ? [a.slice(2), Number(all[i + 1])] : null).filter(Boolean))
const n = args.n ?? 1_000_000
const runs = args.runs ?? 3
const keys = 1000

async function filled () {
  const dir = join(mkdtempSync(join(os.tmpdir(), 'sluice-maint-')), 'log')
  const log = await FileLog.open(dir, { segmentBytesMax: 16 * 1024 * 1024 })
  for (let i = 0; i < n; i += 1000) {
    const values = []
    const keyList = []
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      values.push(message(j))
      keyList.push(`key-${j % keys}`)
    }
    await log.append(values, { key: keyList })
  }
  return { dir, log }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]
const results = { trimMs: [], compactMBps: [], checkMBps: [] }
for (let run = 0; run < runs; run++) {
  {
    const { dir, log } = await filled()
    const bytes = log.segments.end
    const t0 = performance.now()
    const report = await check(dir)
    results.checkMBps.push(bytes / 1048576 / ((performance.now() - t0) / 1000))
    if (!report.healthy) throw new Error('check found problems in a fresh log')
    const t1 = performance.now()
    const compacted = await log.compact()
    const sealed = log.segments.bases[log.segments.bases.length - 1]
    results.compactMBps.push(sealed / 1048576 / ((performance.now() - t1) / 1000))
    console.error(`run ${run + 1}: compaction dropped ${compacted.recordsDropped} records, freed ${(compacted.diskBytesFreed / 1048576).toFixed(1)} MB`)
    const t2 = performance.now()
    const trimmed = await log.trim({ beforeOffset: log.since })
    results.trimMs.push(performance.now() - t2)
    console.error(`run ${run + 1}: trim dropped ${trimmed.segmentsDropped} segments`)
    await log.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
console.log(`n = ${n}, ${keys} keys, 16 MiB segments, medians of ${runs} runs`)
console.log(`check:      ${median(results.checkMBps).toFixed(0)} MB/s   (goal ≥ 300 MB/s)`)
console.log(`compaction: ${median(results.compactMBps).toFixed(0)} MB/s of sealed segments   (goal ≥ 50 MB/s)`)
console.log(`trim:       ${median(results.trimMs).toFixed(1)} ms to drop every sealed segment   (goal < 100 ms)`)

// The index view's prune after a trim (View.prune): an index by author and time over the n messages, then a trim
// of the older half of the log; timed from the trim until the view has taken in one more append, which it does
// after its prune. Once.
{
  const { Sluice, index } = await import('../dist/src/index.js')
  const { dir, log } = await filled()
  const db = await Sluice.open(join(dir, '..', 'db'), { log, views: { byAuthor: index(1, authorTsKey) } })
  await db.ready()
  const trimmed = await log.trim({ beforeOffset: Math.floor(log.since / 2) })
  const t0 = performance.now()
  await db.append(message(n))
  await db.ready()
  const pruneMs = performance.now() - t0
  await db.close()
  await log.close()
  rmSync(join(dir, '..'), { recursive: true, force: true })
  console.log(`prune:      ${(pruneMs / 1000).toFixed(2)} s for the index view to drop the entries of ${trimmed.segmentsDropped} trimmed segments (a pass over ${n.toLocaleString('en')} entries)`)
}

// Backup of a ~1 GB log while appends go on: the append rate (batches of 100 messages) alone, then while
// backup() runs, in the same process.
{
  const { backup } = await import('../dist/src/index.js')
  const { codecs } = await import('../dist/src/index.js')
  const root = mkdtempSync(join(os.tmpdir(), 'sluice-backup-'))
  const dir = join(root, 'log')
  const big = await FileLog.open(dir, { codec: codecs.raw() })
  const kib = Buffer.alloc(1024, 7)
  for (let i = 0; i < 1024 * 1024; i += 1024) await big.append(Array.from({ length: 1024 }, () => kib))
  await big.close()
  const log = await FileLog.open(dir)
  let next = 0
  const appendFor = async (keepGoing) => {
    let count = 0
    const t0 = performance.now()
    while (keepGoing()) {
      const values = []
      for (let j = 0; j < 100; j++) values.push(message(next++))
      await log.append(values)
      count += 100
    }
    return count / ((performance.now() - t0) / 1000)
  }
  const until = performance.now() + 2000
  const alone = await appendFor(() => performance.now() < until)
  let done = false
  const t0 = performance.now()
  const copying = backup(dir, join(root, 'backup')).then(() => { done = true })
  const during = await appendFor(() => !done)
  await copying
  const backupMs = performance.now() - t0
  await log.close()
  rmSync(root, { recursive: true, force: true })
  console.log(`backup:     ${(backupMs / 1000).toFixed(1)} s for 1 GiB; appends ran at ${(during / alone).toFixed(2)}× their rate alone (${Math.round(alone / 1000)}k/s alone, ${Math.round(during / 1000)}k/s during)   (goal > 0.5×)`)
}
