// Sluice, through its public API as built by `npm run build` (tsc -> dist/).
//
//   node bench/stores/sluice.mjs --case <name> --n <count> --dir <dir> [--durability os|buffered|disk]
//
// One adapter for the three durability modes of FileLog.open (see the top of
// src/log/file/writer.ts); each mode is its own column in the results:
// - `sluice`          durability 'os' (the default): an append resolves once
//                     handed to the OS with write(); survives kill -9.
// - `sluice-buffered` durability 'buffered': resolves once visible in-process,
//                     written at the end of the event-loop turn (the promise
//                     async-append-only-log makes: acked before writing).
// - `sluice-disk`     durability 'disk': resolves after fdatasync; concurrent
//                     appends share one fsync (group commit).
//
// The view cases go through Sluice.open(dir) over the same log, with the
// library's own views: reduce() for the counts per type, index() for the key
// index (entries in LMDB under <dir>/views/<name>/).
import { join } from 'node:path'
import { FileLog, Sluice, codecs, index, reduce } from '../../dist/src/index.js'
import { authorTsKey, countByType, typeOf } from '../workload.mjs'
import { main } from './driver.mjs'

async function openViews (dir, { reduce: withReduce, index: withIndex, durability }) {
  const db = await Sluice.open(dir, { durability })
  const perType = withReduce ? db.use('perType', reduce(1, countByType, { initial: {}, map: typeOf })) : null
  const byAuthorTs = withIndex ? db.use('byAuthorTs', index(1, (value) => authorTsKey(value))) : null
  return {
    appendBatch: (values) => db.append(values),
    counts: () => perType.get(),
    byKey: async (key) => (await byAuthorTs.get(key))?.value,
    close: () => db.close()
  }
}

async function open (dir, { raw, durability }) {
  const log = await FileLog.open(dir, raw ? { durability, codec: codecs.raw() } : { durability })

  // Raw records carry a key: a batch takes one key per record.
  const appendRaw = (records) => log.append(records.map((r) => r.value), { key: records.map((r) => r.key) })

  return {
    append: (value) => log.append(value),
    appendNoWait: (values) => Promise.all(values.map((v) => log.append(v))),
    appendBatch: (values) => raw ? appendRaw(values) : log.append(values),
    fill: (values) => raw ? appendRaw(values) : log.append(values),
    async scan (onValue) {
      for await (const { value } of log.stream()) onValue(value)
    },
    get: (offset) => log.get(offset),
    lastOffset: async () => log.since,
    close: () => log.close()
  }
}

const APPEND_CASES = ['append-single', 'append-nowait', 'append-batch', 'raw-publish', 'append-with-reduce']
const APPEND_NOTES = {
  os: 'acks after write() to the OS (no fsync: survives kill -9, not a power cut); close() syncs',
  buffered: 'acks once visible in-process (not yet written: the same promise as aaol); written at the end of the event-loop turn; close() writes and syncs',
  disk: 'acks after write + fdatasync; appends waiting together share one fsync (group commit)'
}

const VIEW_NOTES = {
  'view-index-build': 'index entries in LMDB, one transaction per 2,000 records (not synced one by one: synced at checkpoints, every 100,000 records or 2 s, FORMAT.md F-99); growing keys go in with MDB_APPEND; each transaction runs and commits on the main thread',
  'view-index-get': 'LMDB lookup (synchronous, memory map), then a log read'
}

main({
  store: 'sluice',
  options: { durability: 'os' },
  name: ({ durability }) => durability === 'os' ? 'sluice' : 'sluice-' + durability,
  notes: ({ durability }) => ({
    ...VIEW_NOTES,
    ...(APPEND_NOTES[durability] ? Object.fromEntries(APPEND_CASES.map((c) => [c, APPEND_NOTES[durability]])) : {})
  }),
  open,
  openViews,
  viewPaths: (dir) => [join(dir, 'views')]
})
