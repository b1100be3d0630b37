// The log on NATS JetStream next to the local log, on real nats-server processes started here (127.0.0.1,
// free ports, fresh directories, stopped by their pids): a single node, then a 3-node cluster with an R3 stream.
//
//   npm run build && node bench/jetstream.mjs [--n 20000] [--in-flight 1000] [--latency 500]
//
// For each: appends of ~150-byte messages with up to --in-flight unresolved at once (log order is append
// order: the writer pipelines with expected sequences), a full scan, and how soon a live stream on a second
// connection in this process (a read-only JetStreamLog: the path another process's reader takes through the
// servers) yields a record after its append resolved (one append every 5 ms). A negative delay means the
// reader had it before the writer's acknowledgement arrived.
// The targets: R3 appends ≥ 10,000/s, scan ≥ 50,000/s, live view within 50 ms (p99).
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { FileLog, JetStreamLog } from '../dist/src/index.js'
import { NatsServers, findNatsServer } from '../dist/test/log/jetstream/nats-servers.js'
import { message } from './workload.mjs'

const args = Object.fromEntries(process.argv.slice(2).map((a, i, all) => a.startsWith('--') ? [a.slice(2), Number(all[i + 1])] : null).filter(Boolean))
const n = args.n ?? 20_000
const inFlight = args['in-flight'] ?? 1000
const latencyRecords = args.latency ?? 500
const now = () => performance.timeOrigin + performance.now()

async function appendPipelined (log) {
  const t0 = performance.now()
  let pending = []
  for (let i = 0; i < n; i++) {
    pending.push(log.append(message(i)))
    if (pending.length >= inFlight) {
      await Promise.all(pending)
      pending = []
    }
  }
  await Promise.all(pending)
  return n / ((performance.now() - t0) / 1000)
}

async function scan (log) {
  const t0 = performance.now()
  let count = 0
  for await (const record of log.stream()) if (record.value) count++
  if (count < n) throw new Error(`scan read ${count} of ${n}`)
  return count / ((performance.now() - t0) / 1000)
}

async function liveLatency (writer, reader) {
  const stamped = new Map()
  const seen = []
  const start = writer.since
  const following = (async () => {
    for await (const record of reader.stream({ gt: start, live: true })) {
      const at = now()
      seen.push([record.offset, at])
      if (seen.length === latencyRecords) break
    }
  })()
  for (let i = 0; i < latencyRecords; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5))
    const offset = await writer.append({ i })
    stamped.set(offset, now())
  }
  await following
  const latencies = seen.map(([offset, at]) => at - stamped.get(offset)).filter(Number.isFinite).sort((a, b) => a - b)
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]
  return { median: q(0.5), p99: q(0.99) }
}

const rows = []
{
  const dir = join(mkdtempSync(join(os.tmpdir(), 'sluice-js-bench-')), 'log')
  const log = await FileLog.open(dir)
  const append = await appendPipelined(log)
  const scanned = await scan(log)
  await log.close()
  rmSync(dir, { recursive: true, force: true })
  rows.push(['local FileLog (os)', append, scanned, null])
}
const found = findNatsServer()
if (!('path' in found)) {
  console.log(`nats-server: ${found.skip}; only the local log was measured`)
} else {
  for (const [label, count, replicas] of [['JetStream, 1 node', 1, 1], ['JetStream, 3 nodes, R3', 3, 3]]) {
    const servers = await NatsServers.start(found.path, count)
    try {
      const stream = `bench${count}`
      const writer = await JetStreamLog.open({ servers: servers.urls, stream, replicas })
      const append = await appendPipelined(writer)
      const scanned = await scan(writer)
      const reader = await JetStreamLog.open({ servers: servers.urls, stream, readonly: true })
      const latency = await liveLatency(writer, reader)
      await reader.close()
      await writer.close()
      rows.push([label, append, scanned, latency])
    } finally {
      await servers.stop()
    }
  }
}
const k = (x) => `${Math.round(x / 1000)}k/s`
console.log(`n = ${n} messages of ~150 bytes, ${inFlight} appends in flight; live latency over ${latencyRecords} appends`)
for (const [label, append, scanned, latency] of rows) {
  console.log(`${label.padEnd(24)} append ${k(append).padStart(7)}   scan ${k(scanned).padStart(7)}` +
    (latency ? `   live view after append: median ${latency.median.toFixed(1)} ms, p99 ${latency.p99.toFixed(1)} ms` : ''))
}
