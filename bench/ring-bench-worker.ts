/**
 * Worker side of `keepnet bench rings`. Every role waits on a shared start word so that thread start-up
 * is not measured, then runs a fixed number of messages and reports its own elapsed time.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { RingConsumer, RingProducer, type RingRegion } from '../shared-rings/ring.js';
import { PacketPool, makeOwner } from '../shared-rings/pool.js';

export interface BenchRole {
  role: 'src' | 'sink' | 'fwd' | 'ping' | 'pong' | 'pm-src' | 'pm-sink' | 'pool-src' | 'pool-sink';
  control: SharedArrayBuffer;
  count: number;
  size: number;
  batch: number;
  inRing?: RingRegion;
  outRing?: RingRegion;
  port?: MessagePort;
  pool?: SharedArrayBuffer;
}

const d = workerData as BenchRole;
const control = new Int32Array(d.control);

function waitStart(): void {
  parentPort!.postMessage({ ready: true });
  while (Atomics.load(control, 0) === 0) Atomics.wait(control, 0, 0, 1000);
}

function produceAll(p: RingProducer, count: number, size: number, batch: number): void {
  const src = new Uint8Array(size);
  for (let i = 0; i < size; i++) src[i] = i & 255;
  for (let i = 0; i < count; i++) {
    let off = p.reserve(size, i);
    if (off < 0) {
      p.waitForSpace(size);
      off = p.reserve(size, i);
    }
    p.bytes.set(src, off);
    p.commit();
    if (p.pending >= batch) p.flush();
  }
  p.flush();
}

function run(): void {
  const port = parentPort!;
  switch (d.role) {
    case 'src': {
      const p = new RingProducer(d.outRing!);
      waitStart();
      const t0 = performance.now();
      produceAll(p, d.count, d.size, d.batch);
      port.postMessage({ ms: performance.now() - t0 });
      return;
    }
    case 'sink': {
      const c = new RingConsumer(d.inRing!);
      waitStart();
      const t0 = performance.now();
      let sum = 0;
      for (let i = 0; i < d.count; i++) {
        while (c.peek() < 0) c.wait();
        sum += c.bytes[c.offset + (c.length >> 1)];
        c.commit();
      }
      port.postMessage({ ms: performance.now() - t0, sum, parks: c.parks });
      return;
    }
    case 'fwd': {
      // A middle server: read in place, copy the record into the next ring, commit the input.
      const c = new RingConsumer(d.inRing!);
      const p = new RingProducer(d.outRing!);
      waitStart();
      const t0 = performance.now();
      for (let i = 0; i < d.count; i++) {
        if (c.peek() < 0) {
          p.flush();
          while (c.peek() < 0) c.wait();
        }
        if (!p.forward(c)) {
          p.waitForSpace(c.length);
          p.forward(c);
        }
        c.commit();
        if (p.pending >= d.batch) p.flush();
      }
      p.flush();
      port.postMessage({ ms: performance.now() - t0 });
      return;
    }
    case 'ping':
    case 'pong': {
      const p = new RingProducer(d.outRing!);
      const c = new RingConsumer(d.inRing!);
      const src = new Uint8Array(d.size);
      waitStart();
      const t0 = performance.now();
      for (let i = 0; i < d.count; i++) {
        if (d.role === 'ping') {
          p.bytes.set(src, p.reserve(d.size, i));
          p.commit();
          p.flush();
        }
        while (c.peek() < 0) c.wait();
        c.commit();
        if (d.role === 'pong') {
          p.bytes.set(src, p.reserve(d.size, i));
          p.commit();
          p.flush();
        }
      }
      port.postMessage({ ms: performance.now() - t0, parks: c.parks });
      return;
    }
    case 'pm-src': {
      // The same traffic through postMessage: one message per record, as a server would send it.
      const src = new Uint8Array(d.size);
      waitStart();
      const t0 = performance.now();
      let sent = 0;
      // Pace by acknowledgements so the receiver's queue stays bounded (as a ring's capacity does).
      const window = 4096;
      let acked = 0;
      const pump = (): void => {
        while (sent < d.count && sent - acked < window) {
          d.port!.postMessage(src);
          sent++;
        }
        if (sent === d.count) {
          port.postMessage({ ms: performance.now() - t0 });
        }
      };
      d.port!.on('message', (n: number) => {
        acked = n;
        pump();
      });
      pump();
      return;
    }
    case 'pm-sink': {
      waitStart();
      const t0 = performance.now();
      let got = 0;
      let sum = 0;
      d.port!.on('message', (m: Uint8Array) => {
        sum += m[m.length >> 1];
        got++;
        if ((got & 1023) === 0) d.port!.postMessage(got);
        if (got === d.count) {
          port.postMessage({ ms: performance.now() - t0, sum });
          d.port!.close();
        }
      });
      return;
    }
    case 'pool-src': {
      // Descriptor passing: allocate a buffer, write a 64-byte header into it in place, pass
      // (index, epoch, length) through the ring; the sink frees it.
      const pool = PacketPool.attach(d.pool!);
      const me = makeOwner(1, 1);
      const sinkOwner = makeOwner(2, 1);
      const p = new RingProducer(d.outRing!);
      const dv = new DataView(p.bytes.buffer, p.bytes.byteOffset, p.bytes.byteLength);
      waitStart();
      const t0 = performance.now();
      let exhausted = 0;
      for (let i = 0; i < d.count; i++) {
        let idx = pool.alloc(me);
        while (idx < 0) {
          exhausted++;
          p.flush();
          Atomics.wait(control, 1, 0, 0.05);
          idx = pool.alloc(me);
        }
        pool.bytes[pool.offsetOf(idx)] = i & 255;
        pool.transfer(idx, me, sinkOwner);
        let off = p.reserve(12, 0);
        if (off < 0) {
          p.waitForSpace(12);
          off = p.reserve(12, 0);
        }
        dv.setInt32(off, idx, true);
        dv.setInt32(off + 4, pool.epochOf(idx), true);
        dv.setInt32(off + 8, d.size, true);
        p.commit();
        if (p.pending >= d.batch) p.flush();
      }
      p.flush();
      port.postMessage({ ms: performance.now() - t0, exhausted });
      return;
    }
    case 'pool-sink': {
      const pool = PacketPool.attach(d.pool!);
      const me = makeOwner(2, 1);
      const c = new RingConsumer(d.inRing!);
      const dv = new DataView(c.bytes.buffer, c.bytes.byteOffset, c.bytes.byteLength);
      waitStart();
      const t0 = performance.now();
      let bad = 0;
      for (let i = 0; i < d.count; i++) {
        while (c.peek() < 0) c.wait();
        const idx = dv.getInt32(c.offset, true);
        if (pool.epochOf(idx) !== dv.getInt32(c.offset + 4, true)) bad++;
        if (pool.bytes[pool.offsetOf(idx)] !== (i & 255)) bad++;
        if (!pool.free(idx, me)) bad++;
        c.commit();
      }
      port.postMessage({ ms: performance.now() - t0, bad });
      return;
    }
  }
}

run();
