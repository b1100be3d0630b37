// Which embedded key-value store should back the index view? The index view's workload on both candidates:
// 1,000,000 entries [author, offset] -> offset written in transactions of 10,000 (as the view runner batches while catching up),
// then 100,000 random point gets, one at a time, awaited. Prints medians of 3 runs and the ratio.
//   node bench/kv-stores.mjs [--n 1000000] [--runs 3]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { open } from 'lmdb'
import { mulberry32 } from './workload.mjs'

const argv = process.argv.slice(2)
const arg = (name, fallback) => { const i = argv.indexOf(`--${name}`); return i < 0 ? fallback : Number(argv[i + 1]) }
const n = arg('n', 1_000_000)
const runs = arg('runs', 3)
const gets = 100_000
const batch = 10_000
const authors = Array.from({ length: 1000 }, (_, i) => `@author-${i}`.padEnd(53, 'x'))
const keyOf = (i) => [authors[i % authors.length], i * 180]

async function lmdbRun (dir) {
  const root = open({ path: join(dir, 'index.mdb'), compression: false })
  const db = root.openDB({ name: 'entries' })
  let t = performance.now()
  for (let i = 0; i < n; i += batch) {
    await db.transaction(() => { for (let j = i; j < i + batch; j++) db.put(keyOf(j), j * 180) })
  }
  const build = performance.now() - t
  const random = mulberry32(7)
  t = performance.now()
  for (let i = 0; i < gets; i++) await Promise.resolve(db.get(keyOf(Math.floor(random() * n))))
  const get = performance.now() - t
  await root.close()
  return { build, get }
}

async function levelRun (dir) {
  const db = new ClassicLevel(join(dir, 'index.level'), { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  await db.open()
  const key = (k) => `${k[0]}\x00${String(k[1]).padStart(16, '0')}`
  let t = performance.now()
  for (let i = 0; i < n; i += batch) {
    const chained = db.batch()
    for (let j = i; j < i + batch; j++) chained.put(key(keyOf(j)), String(j * 180))
    await chained.write()
  }
  const build = performance.now() - t
  const random = mulberry32(7)
  t = performance.now()
  for (let i = 0; i < gets; i++) await db.get(key(keyOf(Math.floor(random() * n))))
  const get = performance.now() - t
  await db.close()
  return { build, get }
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const results = { lmdb: [], 'classic-level': [] }
for (let r = 0; r < runs; r++) {
  for (const [name, run] of [['lmdb', lmdbRun], ['classic-level', levelRun]]) {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-kv-'))
    try { results[name].push(await run(dir)) } finally { rmSync(dir, { recursive: true, force: true }) }
  }
}
const rate = (count, ms) => Math.round(count / ms * 1000)
const row = (name) => ({ build: rate(n, median(results[name].map((r) => r.build))), get: rate(gets, median(results[name].map((r) => r.get))) })
const lmdb = row('lmdb')
const level = row('classic-level')
console.log(`index workload, n = ${n.toLocaleString('en')}, medians of ${runs}`)
console.log(`                 build entries/s   random get/s`)
console.log(`lmdb 3.5.6       ${String(lmdb.build).padStart(16)}   ${String(lmdb.get).padStart(12)}`)
console.log(`classic-level 3  ${String(level.build).padStart(16)}   ${String(level.get).padStart(12)}`)
console.log(`lmdb / level     ${(lmdb.build / level.build).toFixed(2).padStart(15)}x   ${(lmdb.get / level.get).toFixed(2).padStart(11)}x`)
