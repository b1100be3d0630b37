// flumedb 2.1.8 over flumelog-offset 3.4.4 with the JSON codec, the way SSB
// (ssb-db before db2) used it: Flume(OffsetLog(file, { codec: json })).
import Flume from 'flumedb'
import OffsetLog from 'flumelog-offset'
import { flumedbAdapter } from './flumedb-api.mjs'
import { main } from './driver.mjs'

const notes = {
  'append-single': 'acks after fs.write of each record (no fsync, ever); flumelog-offset has no close, so nothing is flushed at the end',
  'append-nowait': 'concurrent appends are grouped into one fs.write per group by the log (append-batch)',
  'append-batch': 'db.append(array) writes the batch as one fs.write; callback gives only the last offset',
  get: 'flumedb.get -> async 16 KiB block reads through a 1024-block LRU (16 MiB)',
  reopen: 'ready = since observable set (file opened, tail record checked); last offset is known at the same moment',
  'view-reduce-rebuild': 'flumedb + flumeview-reduce 1.4.0',
  'view-index-build': 'flumedb + flumeview-level 4.0.4 (LevelDB via leveldown 5, unsynced writes, batches of up to 512 records)',
  'view-index-get': 'flumeview-level get: async LevelDB get, then flumedb get (async 16 KiB block read)',
  'append-with-reduce': 'flumedb + flumeview-reduce 1.4.0, fed by a live stream of the log'
}

main({ store: 'flumelog-offset', ...flumedbAdapter(Flume, OffsetLog), notes })
