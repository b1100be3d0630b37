// The flumedb API over a flumelog-offset file, for the two columns that use it:
// flumedb + flumelog-offset from npm (flumelog-offset.mjs) and Sluice's
// sluice/flume + OffsetLog (sluice-flume.mjs), with the same views from npm
// (flumeview-reduce 1.4.0, flumeview-level 4.0.4) and the same JSON codec.
import { join } from 'node:path'
import json from 'flumecodec/json.js'
import pull from 'pull-stream'
import Reduce from 'flumeview-reduce'
import Level from 'flumeview-level'
import { authorTsKey, countByType, typeOf } from '../workload.mjs'

// flumelog-offset frames each record as <len u32><data><len u32><end offset u32>
// (32-bit offset codec, the default): 12 bytes around the data. Its append
// callback only gives the offset of the LAST record of a write, so the fill
// derives the other offsets from this and checks the result against it.
const FRAME_BYTES = 12

function promise (fn) {
  return new Promise((resolve, reject) => fn((err, value) => err ? reject(err) : resolve(value)))
}

async function open (Flume, OffsetLog, dir, { raw }) {
  if (raw) throw new Error('flumelog-offset is not part of the raw-bytes variant')
  const db = Flume(OffsetLog(join(dir, 'log.offset'), { codec: json }))
  // `since` is set once the file is opened and its tail checked; every call
  // before that is queued behind it, so this is when the log is ready.
  await new Promise((resolve) => db.since.once(resolve))
  let end = 0 // end of the file; fill only runs on a fresh, empty log

  return {
    append: (value) => promise((cb) => db.append(value, cb)),
    // Issue every append at once; flumelog-offset groups the waiting ones
    // into a single write (append-batch). Callbacks are counted, not promised.
    appendNoWait: (values) => new Promise((resolve, reject) => {
      let left = values.length
      for (const v of values) {
        db.append(v, (err) => {
          if (err) reject(err)
          else if (--left === 0) resolve()
        })
      }
    }),
    appendBatch: (values) => promise((cb) => db.append(values, cb)),
    async fill (values) {
      const keys = []
      for (const v of values) {
        keys.push(end)
        end += Buffer.byteLength(JSON.stringify(v)) + FRAME_BYTES
      }
      const last = await promise((cb) => db.append(values, cb))
      if (last !== keys[keys.length - 1]) throw new Error(`offset mismatch: ${last} vs ${keys[keys.length - 1]}`)
      return keys
    },
    // A pull-stream of { seq, value }, the same shape (key + decoded value) as
    // the other stores' scans.
    scan: (onValue) => new Promise((resolve, reject) => {
      pull(db.stream({ seqs: true }), pull.drain((rec) => { onValue(rec.value) }, (err) => err ? reject(err) : resolve()))
    }),
    get: (seq) => promise((cb) => db.get(seq, cb)),
    lastOffset: async () => db.since.value,
    // flumelog-offset has no close(): flumedb's close calls back at once. Each
    // append has already been written (fs.write, no fsync) when it calls back.
    close: () => promise((cb) => db.close(cb))
  }
}

// The view cases: the same flumedb over the same log, with flumeview-reduce
// 1.4.0 (state in <dir>/perType.json) and flumeview-level 4.0.4 (LevelDB
// through level 6 / leveldown 5, charwise keys, in <dir>/byAuthorTs/), the
// views SSB used. An async view method called through flumedb waits until the
// view has caught up with the log, as Sluice's view reads do.
async function openViews (Flume, OffsetLog, dir, { reduce, index }) {
  const db = Flume(OffsetLog(join(dir, 'log.offset'), { codec: json }))
  // flumeview-reduce(version, reducer, map, codec, initial)
  if (reduce) db.use('perType', Reduce(1, countByType, typeOf, undefined, {}))
  // flumeview-level's map returns the list of a record's keys
  if (index) db.use('byAuthorTs', Level(1, (value) => [authorTsKey(value)]))
  await new Promise((resolve) => db.since.once(resolve))
  return {
    appendBatch: (values) => promise((cb) => db.append(values, cb)),
    counts: () => promise((cb) => db.perType.get(cb)),
    byKey: (key) => promise((cb) => db.byAuthorTs.get(key, cb)),
    close: () => promise((cb) => db.close(cb))
  }
}

// `Flume` and `OffsetLog`: flumedb's and flumelog-offset's constructors, or
// sluice/flume's replacements for them.
export function flumedbAdapter (Flume, OffsetLog) {
  return {
    open: (dir, options) => open(Flume, OffsetLog, dir, options),
    openViews: (dir, options) => openViews(Flume, OffsetLog, dir, options),
    viewPaths: (dir) => [join(dir, 'perType.json'), join(dir, 'byAuthorTs')]
  }
}
