// The standard workload of /work/shared/BENCHMARKS.md, shared by every store
// adapter so that all of them write, read and look up exactly the same data.

export const MESSAGE_BYTES = 150 // target length of JSON.stringify(message(n))
export const TS0 = 1763750000000
export const GETS = 100_000 // random gets per `get` case
export const NOWAIT_WINDOW = 10_000 // appends issued before awaiting them together
export const BATCH = 100 // messages per call in the batch cases
export const RAW_KEY_BYTES = 10
export const RAW_VALUE_BYTES = 128

// mulberry32: a tiny, fast 32-bit PRNG. Seeded so every store, every run and
// every machine gets the same sequence.
export function mulberry32 (seed) {
  let a = seed >>> 0
  return function next () {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// `count` record positions in [0, n), uniformly drawn (with repetition).
export function randomIndexes (count, n, seed = 42) {
  const rnd = mulberry32(seed)
  const out = new Uint32Array(count)
  for (let i = 0; i < count; i++) out[i] = Math.floor(rnd() * n)
  return out
}

// A fixed, SSB-like feed id: '@' followed by 53 characters (45 of base64-like
// text ending in '=', then the '.ed25519' suffix).
function makeAuthor () {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  const rnd = mulberry32(7)
  let id = ''
  for (let i = 0; i < 44; i++) id += alphabet[Math.floor(rnd() * 64)]
  return '@' + id + '=.ed25519'
}
export const AUTHOR = makeAuthor()

const FILLER = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ' +
  'incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud '

// The padding depends only on how many digits n has, so it is computed once per
// digit count; message(n) itself then costs one small object and two concats.
const padByDigits = new Map()
function padFor (n) {
  const digits = String(n).length
  let pad = padByDigits.get(digits)
  if (pad === undefined) {
    const probe = { type: 'post', author: AUTHOR, seq: n, text: 'hello world ' + n + ' ', ts: TS0 + n }
    const missing = MESSAGE_BYTES - Buffer.byteLength(JSON.stringify(probe))
    pad = FILLER.repeat(3).slice(0, Math.max(0, missing))
    padByDigits.set(digits, pad)
  }
  return pad
}

// Message number n: JSON.stringify of it is exactly MESSAGE_BYTES bytes long
// (for n below 10^15), all ASCII.
export function message (n) {
  return { type: 'post', author: AUTHOR, seq: n, text: 'hello world ' + n + ' ' + padFor(n), ts: TS0 + n }
}

// Raw-bytes variant: a 10-byte key and a 128-byte value, both derived from n so
// a read can be checked (the value starts with n as a big-endian uint32).
export function rawKey (n) {
  const key = new Uint8Array(RAW_KEY_BYTES)
  const s = String(n).padStart(RAW_KEY_BYTES, '0')
  for (let i = 0; i < RAW_KEY_BYTES; i++) key[i] = s.charCodeAt(i)
  return key
}

const RAW_TEMPLATE = Buffer.alloc(RAW_VALUE_BYTES)
for (let i = 0; i < RAW_VALUE_BYTES; i++) RAW_TEMPLATE[i] = 97 + (i % 26)

export function rawValue (n) {
  const value = Buffer.allocUnsafe(RAW_VALUE_BYTES)
  RAW_TEMPLATE.copy(value)
  value.writeUInt32BE(n >>> 0, 0)
  return value
}

export function rawValueIndex (value) {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).readUInt32BE(0)
}

// The views of the view cases, the same functions for every store (Sluice's
// reduce/index and flumedb's flumeview-reduce/flumeview-level).
// A reduce view counting messages per type (every message of the workload is a
// 'post', so the full count is { post: n }). The reducer updates the state in
// place (both libraries hand it the previous state and keep what it returns).
export const countByType = (counts, type) => { counts[type] = (counts[type] ?? 0) + 1; return counts }
export const typeOf = (value) => value.type
// A key index by author and time: [author, ts], unique per message here.
export const authorTsKey = (value) => [value.author, value.ts]
// The key that authorTsKey gives message number i.
export const authorTsKeyOf = (i) => [AUTHOR, TS0 + i]
