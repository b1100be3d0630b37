// lmdb 3.5.6 (lmdb-js, prebuilt LMDB binding) as an fsync'd append log:
// sequential integer keys (0, 1, 2, ...) -> JSON values (`encoding: 'json'`),
// every other option at its default. run.mjs only runs it for the durable
// append comparison (append-single, append-nowait); the other JSON cases work
// too when asked for explicitly (--all-cells). No raw-bytes variant.
//
// Durability at the defaults (Linux): every write transaction is committed and
// fdatasynced before the promises of its puts resolve (overlappingSync only
// lets the next transaction start during that flush). Checked with strace: an
// awaited put is acknowledged right after its own fdatasync. Puts issued in
// the same event-loop turn go into one transaction (eventTurnBatching).
import { open as openLmdb } from 'lmdb'
import { main } from './driver.mjs'

async function open (dir, { raw }) {
  if (raw) throw new Error('lmdb is not part of the raw-bytes variant')
  const db = openLmdb({ path: dir, encoding: 'json' })
  const lastKey = () => {
    for (const key of db.getKeys({ reverse: true, limit: 1 })) return key
    return -1
  }
  let next = lastKey() + 1

  return {
    // One transaction per awaited put: committed and synced when it resolves.
    append: (value) => db.put(next++, value),
    // Issued in one turn: one transaction (one fsync) for the whole window.
    appendNoWait: (values) => Promise.all(values.map((v) => db.put(next++, v))),
    // One transaction per batch of 100, awaited.
    appendBatch: (values) => db.transaction(() => { for (const v of values) db.put(next++, v) }),
    async fill (values) {
      const keys = values.map(() => next++)
      await db.transaction(() => { for (let i = 0; i < values.length; i++) db.put(keys[i], values[i]) })
      return keys
    },
    // Synchronous cursor over the memory map, values decoded from JSON.
    async scan (onValue) {
      for (const { value } of db.getRange()) onValue(value)
    },
    get: async (key) => db.get(key),
    lastOffset: async () => lastKey(),
    close: () => db.close()
  }
}

const notes = {
  'append-single': 'one transaction per awaited put, committed and fdatasynced before it resolves (defaults)',
  'append-nowait': 'the 10,000 puts of a window are issued in one turn: one transaction, one fdatasync',
  'append-batch': 'one transaction (one fdatasync) per batch of 100',
  get: 'synchronous read from the memory map',
  reopen: 'ready = open() returned; last offset = last key of a reverse cursor'
}

main({ store: 'lmdb', open, notes })
