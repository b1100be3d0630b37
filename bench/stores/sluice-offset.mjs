// Sluice's FlumeOffsetLog: a flumelog-offset 3.x file (4-byte offsets, JSON),
// the very bytes flumelog-offset writes, read and written through Sluice's
// promise API. Its read cases are the "flumelog-offset file through Sluice"
// targets: the same file format as the flumelog-offset column, another reader.
//
// `import` times importFlumeOffset (sluice import) of the filled file into a
// native log, the table of old offsets included.
import { join } from 'node:path'
import { FlumeOffsetLog, importFlumeOffset } from '../../dist/src/index.js'
import { main } from './driver.mjs'

async function open (dir, { raw }) {
  if (raw) throw new Error('the flumelog-offset format is not part of the raw-bytes variant (it has no keys)')
  const log = await FlumeOffsetLog.open(join(dir, 'log.offset'))
  return {
    append: (value) => log.append(value),
    appendNoWait: (values) => Promise.all(values.map((v) => log.append(v))),
    appendBatch: (values) => log.append(values),
    fill: (values) => log.append(values),
    async scan (onValue) {
      for await (const { value } of log.stream()) onValue(value)
    },
    get: (offset) => log.get(offset),
    lastOffset: async () => log.since,
    close: () => log.close()
  }
}

async function importInto (dir) {
  const result = await importFlumeOffset(join(dir, 'log.offset'), join(dir, 'imported'))
  return result.records
}

main({
  store: 'sluice-offset',
  notes: {
    import: 'copies every record (bytes unchanged, old offset as key) into a native log, then builds the old→new offset table (one pair per 32 records, in a state file)'
  },
  open,
  importInto
})
