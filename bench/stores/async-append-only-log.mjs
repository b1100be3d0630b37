// async-append-only-log 4.3.10 (the log under ssb-db2), 64 KiB blocks, other
// options at their defaults. JSON messages are stored as Buffers of their
// JSON text; in the raw variant a record is the 10-byte key followed by the
// 128-byte value, since this log has no keys of its own.
import { join } from 'node:path'
import Log from 'async-append-only-log'
import { RAW_KEY_BYTES } from '../workload.mjs'
import { main } from './driver.mjs'

const jsonCodec = {
  encode: (value) => Buffer.from(JSON.stringify(value)),
  decode: (buf) => JSON.parse(buf.toString())
}

function promise (fn) {
  return new Promise((resolve, reject) => fn((err, value) => err ? reject(err) : resolve(value)))
}

async function open (dir, { raw }) {
  const log = Log(join(dir, 'log'), { blockSize: 64 * 1024, codec: raw ? undefined : jsonCodec })
  // `since` is set once the last block is read and its records validated;
  // calls made before that are queued behind it.
  await new Promise((resolve) => log.since.once(resolve))

  const encode = raw ? (r) => Buffer.concat([r.key, r.value]) : (v) => v
  const value = raw ? (buf) => buf.subarray(RAW_KEY_BYTES) : (v) => v

  return {
    // The callback comes synchronously: the record is only copied into the
    // block in memory. Writing happens later (see close).
    append: (v) => promise((cb) => log.append(encode(v), cb)),
    appendNoWait: (values) => new Promise((resolve, reject) => {
      let left = values.length
      for (const v of values) {
        log.append(encode(v), (err) => {
          if (err) reject(err)
          else if (--left === 0) resolve()
        })
      }
    }),
    // append(array) appends record by record (not atomically) and calls back
    // with the last offset. appendTransaction would give every offset but
    // starts a new block whenever the whole batch does not fit.
    appendBatch: (values) => promise((cb) => log.append(values.map(encode), cb)),
    // One call per record so the layout is the one append(array) makes, and
    // each call gives that record's offset.
    async fill (values) {
      const keys = []
      for (const v of values) keys.push(await promise((cb) => log.append(encode(v), cb)))
      return keys
    },
    // The push-stream sink: stream() reads block by block (64 KiB fs reads
    // through a 1024-block cache) and writes { offset, value } to it.
    scan: (onValue) => new Promise((resolve, reject) => {
      log.stream({ offsets: true, values: true }).pipe({
        paused: false,
        ended: false,
        write (rec) { onValue(value(rec.value)) },
        end (err) { err ? reject(err) : resolve() }
      })
    }),
    get: async (offset) => value(await promise((cb) => log.get(offset, cb))),
    lastOffset: async () => log.since.value,
    // close() waits for onDrain: the debounced writer only starts once no
    // append came for `writeTimeout` (250 ms), then writes and fsyncs every
    // pending 64 KiB block, one after the other.
    close: () => promise((cb) => log.close(cb))
  }
}

const appendNote = 'acks before writing (records only copied into in-memory blocks); close() waits for the debounced writer (starts 250 ms after the last append) which writes + fsyncs each 64 KiB block'
const notes = {
  'append-single': appendNote,
  'append-nowait': appendNote + '; nothing to group: each append already returns at once',
  'append-batch': appendNote,
  'raw-publish': appendNote + '; record = 10-byte key + 128-byte value concatenated (no keys in this log)',
  get: 'log.get -> 64 KiB block reads through a 1024-block LRU (64 MiB); a cached block calls back synchronously',
  'raw-get': 'get by offset; the key is the first 10 bytes of the record',
  reopen: 'ready = since observable set (last block read and validated); last offset is known at the same moment'
}

main({ store: 'async-append-only-log', open, notes })
