;; CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of a range of linear memory, slicing by 8: eight bytes
;; per step through eight tables of 256 entries. The caller places the tables at address 0 (slice k at byte
;; 1024 * k: the CRC of byte b followed by k zero bytes, as crc32c.ts builds them) and the bytes after them.
;; Compiled by `npm run wasm` into crc32c-wasm-module.ts. Addresses and lengths are unsigned and stay far
;; below 4 GiB (a window is a few MiB at most), so `at + 8` cannot wrap.
(module
  (import "sluice" "memory" (memory 1))
  (func (export "crc32c") (param $at i32) (param $length i32) (result i32)
    (local $crc i32) (local $end i32) (local $word i32)
    (local.set $crc (i32.const -1))
    (local.set $end (i32.add (local.get $at) (local.get $length)))
    ;; Blocks of eight while eight bytes are left: at + 8 <= end.
    (block $blocksDone
      (loop $blocks
        (br_if $blocksDone (i32.gt_u (i32.add (local.get $at) (i32.const 8)) (local.get $end)))
        ;; The first four bytes (little-endian) meet the CRC so far; the last four go in as they are.
        (local.set $word (i32.xor (local.get $crc) (i32.load (local.get $at))))
        (local.set $crc
          (i32.xor
            (i32.xor
              (i32.xor
                (i32.load offset=7168 (i32.shl (i32.and (local.get $word) (i32.const 255)) (i32.const 2)))
                (i32.load offset=6144 (i32.shl (i32.and (i32.shr_u (local.get $word) (i32.const 8)) (i32.const 255)) (i32.const 2))))
              (i32.xor
                (i32.load offset=5120 (i32.shl (i32.and (i32.shr_u (local.get $word) (i32.const 16)) (i32.const 255)) (i32.const 2)))
                (i32.load offset=4096 (i32.shl (i32.shr_u (local.get $word) (i32.const 24)) (i32.const 2)))))
            (i32.xor
              (i32.xor
                (i32.load offset=3072 (i32.shl (i32.load8_u offset=4 (local.get $at)) (i32.const 2)))
                (i32.load offset=2048 (i32.shl (i32.load8_u offset=5 (local.get $at)) (i32.const 2))))
              (i32.xor
                (i32.load offset=1024 (i32.shl (i32.load8_u offset=6 (local.get $at)) (i32.const 2)))
                (i32.load (i32.shl (i32.load8_u offset=7 (local.get $at)) (i32.const 2)))))))
        (local.set $at (i32.add (local.get $at) (i32.const 8)))
        (br $blocks)))
    ;; The last bytes one at a time.
    (block $bytesDone
      (loop $bytes
        (br_if $bytesDone (i32.ge_u (local.get $at) (local.get $end)))
        (local.set $crc
          (i32.xor
            (i32.load (i32.shl (i32.and (i32.xor (local.get $crc) (i32.load8_u (local.get $at))) (i32.const 255)) (i32.const 2)))
            (i32.shr_u (local.get $crc) (i32.const 8))))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $bytes)))
    (i32.xor (local.get $crc) (i32.const -1))))
