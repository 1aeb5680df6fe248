/**
 * Worker side of the ring tests: producers and consumers that run on real threads.
 * Payload of record `seq` with length `len`: byte i = (seq * 31 + i * 7) & 255, and the tag is seq.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RingConsumer, RingProducer, type RingRegion } from '../../shared-rings/ring.js';
import { mulberry32 } from './prng.js';

export interface RingWorkerData {
  mode: 'produce' | 'consume' | 'ping' | 'pong' | 'consume-hold' | 'produce-die';
  region: RingRegion;
  region2?: RingRegion;
  count: number;
  seed?: number;
  maxLen?: number;
  flushEvery?: number;
  startSeq?: number;
  holdAt?: number;
  generation?: number;
  spin?: number;
}

export function fill(bytes: Uint8Array, off: number, len: number, seq: number): void {
  const base = (seq * 31) & 255;
  for (let i = 0; i < len; i++) bytes[off + i] = (base + i * 7) & 255;
}

export function check(bytes: Uint8Array, off: number, len: number, seq: number): boolean {
  const base = (seq * 31) & 255;
  for (let i = 0; i < len; i++) if (bytes[off + i] !== ((base + i * 7) & 255)) return false;
  return true;
}

/** Length of record `seq` for a given seed: the same on both sides. */
export function lengthFor(rand: () => number, maxLen: number): number {
  return Math.floor(rand() * (maxLen + 1));
}

function run(d: RingWorkerData): void {
  const port = parentPort!;
  const maxLen = d.maxLen ?? 64;
  const flushEvery = d.flushEvery ?? 16;
  const startSeq = d.startSeq ?? 0;
  switch (d.mode) {
    case 'produce': {
      const p = new RingProducer(d.region, { generation: d.generation ?? 1, spin: d.spin ?? 0 });
      const rand = mulberry32(d.seed ?? 1);
      for (let seq = startSeq; seq < startSeq + d.count; seq++) {
        const len = lengthFor(rand, maxLen);
        let off = p.reserve(len, seq);
        if (off < 0) {
          p.waitForSpace(len);
          off = p.reserve(len, seq);
        }
        fill(p.bytes, off, len, seq);
        p.commit();
        if (p.pending >= flushEvery) p.flush();
      }
      p.flush();
      port.postMessage({ done: true, fullWaits: p.fullWaits, flushes: p.flushes });
      return;
    }
    case 'consume':
    case 'consume-hold': {
      const c = new RingConsumer(d.region, { generation: d.generation ?? 1, spin: d.spin ?? 0 });
      const rand = mulberry32(d.seed ?? 1);
      // Skip the lengths of records before startSeq so the PRNG stays in step with the producer.
      for (let s = 0; s < startSeq; s++) lengthFor(rand, maxLen);
      let bad = 0;
      let timeouts = 0;
      let first = -1;
      for (let seq = startSeq; seq < startSeq + d.count; seq++) {
        while (c.peek() < 0) if (!c.wait(2000)) timeouts++;
        const len = lengthFor(rand, maxLen);
        if (first < 0) first = c.tag;
        if (c.tag !== seq || c.length !== len || !check(c.bytes, c.offset, c.length, seq)) bad++;
        if (d.mode === 'consume-hold' && seq === d.holdAt) {
          // Peeked, "handling": tell the test, then hang here until terminated.
          port.postMessage({ holding: seq, first, bad });
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
        }
        c.commit();
      }
      port.postMessage({ done: true, bad, timeouts, first, parks: c.parks });
      return;
    }
    case 'ping':
    case 'pong': {
      // ping sends on region and receives on region2; pong the other way round. Every message makes the
      // other side wake from a park: the lost wake-up hunt. A wait that times out means a lost wake-up.
      const out = new RingProducer(d.mode === 'ping' ? d.region : d.region2!, { generation: 1 });
      const inp = new RingConsumer(d.mode === 'ping' ? d.region2! : d.region, { generation: 1 });
      let timeouts = 0;
      let bad = 0;
      for (let i = 0; i < d.count; i++) {
        if (d.mode === 'ping') {
          const off = out.reserve(8, i);
          out.bytes[off] = i & 255;
          out.commit();
          out.flush();
        }
        while (inp.peek() < 0) if (!inp.wait(2000)) timeouts++;
        if (inp.tag !== i || inp.bytes[inp.offset] !== (i & 255)) bad++;
        inp.commit();
        if (d.mode === 'pong') {
          const off = out.reserve(8, i);
          out.bytes[off] = i & 255;
          out.commit();
          out.flush();
        }
      }
      port.postMessage({ done: true, timeouts, bad, parks: inp.parks, notifies: out.wake.notifies });
      return;
    }
    case 'produce-die': {
      const p = new RingProducer(d.region, { generation: d.generation ?? 1 });
      const rand = mulberry32(d.seed ?? 1);
      for (let s = 0; s < startSeq; s++) lengthFor(rand, maxLen);
      // Write `count` complete records and flush them, then write one more without flushing and die.
      for (let seq = startSeq; seq < startSeq + d.count; seq++) {
        const len = lengthFor(rand, maxLen);
        const off = p.reserve(len, seq);
        fill(p.bytes, off, len, seq);
        p.commit();
      }
      p.flush();
      const off = p.reserve(maxLen, 0x7fffffff);
      p.bytes.fill(0xee, off, off + (maxLen >> 1));
      p.commit();
      process.exit(3);
    }
  }
}

if (parentPort && workerData) run(workerData as RingWorkerData);
