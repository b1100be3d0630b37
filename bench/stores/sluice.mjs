// Sluice, through its public API as built by `npm run build` (tsc -> dist/).
import { FileLog, codecs } from '../../dist/src/index.js'
import { main } from './driver.mjs'

async function open (dir, { raw }) {
  // durability 'os': acknowledged once handed to the OS, like the peers'
  // default settings (neither of them fsyncs before acknowledging).
  const log = await FileLog.open(dir, raw ? { durability: 'os', codec: codecs.raw() } : { durability: 'os' })

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

main({ store: 'sluice', open })
