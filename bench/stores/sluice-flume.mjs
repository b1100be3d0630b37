// sluice/flume: Sluice's flumedb API over its FlumeOffsetLog, with the same
// view modules from npm as the flumelog-offset column (flumeview-reduce 1.4.0,
// flumeview-level 4.0.4), unchanged: the application that swaps
// require('flumedb') and require('flumelog-offset') for sluice/flume.
import { Flume, OffsetLog } from '../../dist/src/flume/index.js'
import { flumedbAdapter } from './flumedb-api.mjs'
import { main } from './driver.mjs'

const notes = {
  get: 'sluice/flume get -> FlumeOffsetLog: one 1 KiB synchronous read per record',
  'view-reduce-rebuild': 'sluice/flume + flumeview-reduce 1.4.0 from npm',
  'view-index-build': 'sluice/flume + flumeview-level 4.0.4 from npm (LevelDB via leveldown 5)',
  'view-index-get': 'flumeview-level get: async LevelDB get, then a FlumeOffsetLog get'
}

main({ store: 'sluice-flume', ...flumedbAdapter(Flume, OffsetLog), notes })
