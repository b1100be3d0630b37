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
import { FileLog, codecs } from '../../dist/src/index.js'
import { main } from './driver.mjs'

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

const APPEND_CASES = ['append-single', 'append-nowait', 'append-batch', 'raw-publish']
const APPEND_NOTES = {
  os: 'acks after write() to the OS (no fsync: survives kill -9, not a power cut); close() syncs',
  buffered: 'acks once visible in-process (not yet written: the same promise as aaol); written at the end of the event-loop turn; close() writes and syncs',
  disk: 'acks after write + fdatasync; appends waiting together share one fsync (group commit)'
}

main({
  store: 'sluice',
  options: { durability: 'os' },
  name: ({ durability }) => durability === 'os' ? 'sluice' : 'sluice-' + durability,
  notes: ({ durability }) => APPEND_NOTES[durability]
    ? Object.fromEntries(APPEND_CASES.map((c) => [c, APPEND_NOTES[durability]]))
    : {},
  open
})
