// Live tailing across processes: how long after a writer's append resolves does a
// read-only FileLog in another process yield the record from a live stream?
//
//   node bench/tail-latency.mjs [--records 2000] [--interval-ms 2]
//
// The writer (a child process) appends one record every interval, stamped with
// the wall clock (performance.timeOrigin + performance.now(), sub-millisecond)
// right after its append resolved; this process reads with stream({ live: true })
// and prints the median, p90, p99 and max of (seen − stamped). Sluice's read-only
// log watches the directory (fs.watch) and polls every 250 ms as a fallback.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { FileLog } from '../dist/src/index.js'

const args = Object.fromEntries(process.argv.slice(2).map((a, i, all) => a.startsWith('--') ? [a.slice(2), Number(all[i + 1])] : null).filter(Boolean))
const records = args.records ?? 2000
const intervalMs = args['interval-ms'] ?? 2
const now = () => performance.timeOrigin + performance.now()

const dir = join(mkdtempSync(join(os.tmpdir(), 'sluice-tail-')), 'log')
const writerLog = await FileLog.open(dir)
await writerLog.close()

const writerScript = `
import { FileLog } from ${JSON.stringify(new URL('../dist/src/index.js', import.meta.url).href)};
const log = await FileLog.open(${JSON.stringify(dir)});
const now = () => performance.timeOrigin + performance.now();
for (let i = 0; i < ${records}; i++) {
  await new Promise((resolve) => setTimeout(resolve, ${intervalMs}));
  const offset = await log.append({ i });
  process.send({ offset, at: now() });
}
await log.close();
`
const reader = await FileLog.open(dir, { readonly: true })
const stamped = new Map()
const seen = new Map()
const child = spawn(process.execPath, ['--input-type=module', '-e', writerScript], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
child.on('message', ({ offset, at }) => stamped.set(offset, at))
for await (const record of reader.stream({ live: true })) {
  seen.set(record.offset, now())
  if (seen.size === records) break
}
await new Promise((resolve) => child.once('exit', resolve))
await reader.close()
rmSync(dir, { recursive: true, force: true })

const latencies = [...seen].map(([offset, at]) => at - stamped.get(offset)).filter(Number.isFinite).sort((a, b) => a - b)
const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]
console.log(`cross-process live tail, ${latencies.length} records, one every ${intervalMs} ms:` +
  ` median ${q(0.5).toFixed(2)} ms, p90 ${q(0.9).toFixed(2)} ms, p99 ${q(0.99).toFixed(2)} ms, max ${latencies[latencies.length - 1].toFixed(2)} ms`)
console.log('(negative values: the reader saw the record before the writer stamped it, i.e. between write() and the resolve)')
