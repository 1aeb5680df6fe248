/**
 * Internet checksum throughput (servers/wire/checksum.ts) over a SharedArrayBuffer, as the servers use
 * it: 1500-byte packets (an Ethernet MTU) and 64 KiB segments, at start offsets cycling through 0..7
 * so aligned and unaligned starts are both measured. Reports the best of several timed rounds.
 *
 *   node dist/bench/checksum.js
 */
import { pathToFileURL } from 'node:url';
import { checksumPartial } from '../servers/wire/checksum.js';

export interface ChecksumBenchResult {
  gbPerSec1500: number;
  gbPerSec64k: number;
}

function measure(bytes: Uint8Array, len: number, targetMs: number, rounds: number): number {
  const span = bytes.length - len - 8;
  let sink = 0;
  // Warm up so the optimizing compiler has run.
  for (let k = 0; k < 20000; k++) sink ^= checksumPartial(bytes, k & 7, len);
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    let iters = 0;
    let bytesDone = 0;
    const t0 = process.hrtime.bigint();
    let elapsedNs = 0;
    let off = 0;
    while (elapsedNs < targetMs * 1e6) {
      for (let k = 0; k < 64; k++) {
        sink ^= checksumPartial(bytes, off + (iters & 7), len);
        off += len;
        if (off > span) off = 0;
        iters++;
      }
      bytesDone += 64 * len;
      elapsedNs = Number(process.hrtime.bigint() - t0);
    }
    best = Math.max(best, bytesDone / elapsedNs); // bytes per ns == GB/s
  }
  if (sink === -1) console.log(sink); // keep the result live
  return best;
}

export async function benchChecksum(): Promise<ChecksumBenchResult> {
  // 4 MiB of pseudo-random bytes: larger than L2, like packets spread over a ring.
  const sab = new SharedArrayBuffer(4 << 20);
  const bytes = new Uint8Array(sab);
  let x = 0x12345678;
  for (let i = 0; i < bytes.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  const gbPerSec1500 = measure(bytes, 1500, 200, 5);
  const gbPerSec64k = measure(bytes, 65536, 200, 5);
  return { gbPerSec1500, gbPerSec64k };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await benchChecksum();
  console.log(`checksum 1500 B: ${r.gbPerSec1500.toFixed(2)} GB/s`);
  console.log(`checksum 64 KiB: ${r.gbPerSec64k.toFixed(2)} GB/s`);
}
