/**
 * Worker side of the packet pool tests (test/pool.test.ts). Each worker plays one server incarnation.
 *   hold:     allocate `count` buffers, fill them, transfer the first `transfer` to `transferTo`,
 *             report, then park forever (the test terminates it) or process.exit(exitCode).
 *   churn:    alloc / fill / transfer / take back / free in a loop until terminated.
 *   exchange: the concurrent test; two workers send each other buffers through the pool: alloc, write
 *             a pattern + checksum, transfer to (peer, 0), post (idx, epoch) on a descriptor queue;
 *             the peer adopts, checks owner + epoch + contents, frees.
 * When run by tap as a plain file (no parentPort) it does nothing, so tap reports it as skipped.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PacketPool, makeOwner } from '../../shared-rings/pool.js';

export interface PoolWorkerData {
  mode: 'hold' | 'churn' | 'exchange';
  pool: SharedArrayBuffer;
  serverId: number;
  gen: number;
  count?: number;
  transfer?: number;
  transferTo?: number;
  exitCode?: number;
  /** hold/churn: Int32Array words: [0] progress counter (churn), [1] park word. exchange: queues. */
  ctl?: SharedArrayBuffer;
  /** exchange: which queue this worker sends on (0 or 1); it receives on the other. */
  side?: 0 | 1;
  peerServerId?: number;
  peerGen?: number;
  messages?: number;
  seed?: number;
}

export interface ExchangeResult {
  sent: number;
  received: number;
  badContent: number;
  badDescriptor: number;
  allocFailures: number;
  deliberateBadFrees: number;
  refusedBadFrees: number;
  deliberateBadTransfers: number;
  refusedBadTransfers: number;
}

/** Descriptor queue: single producer, single consumer; Int32 words [head, tail, (idx, epoch) * QCAP]. */
export const QCAP = 1024;
export const QWORDS = 2 + 2 * QCAP;
/** Word (in the exchange ctl SAB) where both workers report "started"; the test waits on it. */
export const READY_WORD = 2 * QWORDS;
export const EXCHANGE_CTL_WORDS = 2 * QWORDS + 1;

/** Pattern byte i of message `seq` from server `id`. */
export function patternByte(id: number, seq: number, i: number): number {
  let x = (Math.imul(seq, 0x9e3779b1) ^ Math.imul(id, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35)) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x2c1b3c6d);
  x ^= x >>> 12;
  return x & 255;
}

/** Fletcher-style checksum of bytes[off, off + len). */
export function checksum(bytes: Uint8Array, off: number, len: number): number {
  let a = 1, b = 0;
  for (let i = 0; i < len; i++) {
    a = (a + bytes[off + i]!) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

function put32(bytes: Uint8Array, off: number, v: number): void {
  bytes[off] = v & 255; bytes[off + 1] = (v >>> 8) & 255; bytes[off + 2] = (v >>> 16) & 255; bytes[off + 3] = (v >>> 24) & 255;
}
function get32(bytes: Uint8Array, off: number): number {
  return (bytes[off]! | (bytes[off + 1]! << 8) | (bytes[off + 2]! << 16) | (bytes[off + 3]! << 24)) >>> 0;
}

/** Buffer layout: [0..4) seq, [4..6) len, [6..10) checksum of the payload, [10..10+len) payload. */
export function writeMessage(bytes: Uint8Array, off: number, id: number, seq: number, len: number): void {
  put32(bytes, off, seq);
  bytes[off + 4] = len & 255; bytes[off + 5] = len >>> 8;
  for (let i = 0; i < len; i++) bytes[off + 10 + i] = patternByte(id, seq, i);
  put32(bytes, off + 6, checksum(bytes, off + 10, len));
}

export function checkMessage(bytes: Uint8Array, off: number, id: number, seq: number, maxLen: number): boolean {
  if (get32(bytes, off) !== seq) return false;
  const len = bytes[off + 4]! | (bytes[off + 5]! << 8);
  if (len < 1 || len > maxLen) return false;
  if (get32(bytes, off + 6) !== checksum(bytes, off + 10, len)) return false;
  for (let i = 0; i < len; i++) if (bytes[off + 10 + i] !== patternByte(id, seq, i)) return false;
  return true;
}

function hold(d: PoolWorkerData): void {
  const pool = PacketPool.attach(d.pool);
  const me = makeOwner(d.serverId, d.gen);
  const held: number[] = [];
  for (let k = 0; k < d.count!; k++) {
    const idx = pool.alloc(me);
    if (idx < 0) break;
    writeMessage(pool.bytes, pool.offsetOf(idx), d.serverId, k, 16);
    held.push(idx);
  }
  const transferred: number[] = [];
  for (let k = 0; k < (d.transfer ?? 0) && k < held.length; k++) {
    if (pool.transfer(held[k]!, me, d.transferTo!)) transferred.push(held[k]!);
  }
  parentPort!.postMessage({ held, transferred });
  if (d.exitCode !== undefined) process.exit(d.exitCode);
  const park = new Int32Array(d.ctl!);
  for (;;) Atomics.wait(park, 1, 0); // until terminated
}

function churn(d: PoolWorkerData): void {
  const pool = PacketPool.attach(d.pool);
  const me = makeOwner(d.serverId, d.gen);
  const other = d.transferTo!;
  const progress = new Int32Array(d.ctl!);
  const held = new Int32Array(8).fill(-1);
  let announced = false;
  for (let seq = 0; ; seq++) {
    const slot = seq & 7;
    if (held[slot]! >= 0) {
      const idx = held[slot]!;
      // Round trip through another owner, then free; some buffers stay held across iterations.
      pool.transfer(idx, me, other);
      pool.transfer(idx, other, me);
      pool.free(idx, me);
      held[slot] = -1;
    }
    const idx = pool.alloc(me);
    if (idx >= 0) {
      writeMessage(pool.bytes, pool.offsetOf(idx), d.serverId, seq, 32);
      held[slot] = idx;
    }
    if ((seq & 1023) === 0) {
      Atomics.add(progress, 0, 1);
      if (!announced && seq >= 10000) {
        announced = true;
        parentPort!.postMessage('busy');
      }
    }
  }
}

function exchange(d: PoolWorkerData): void {
  const pool = PacketPool.attach(d.pool);
  const bytes = pool.bytes;
  const me = makeOwner(d.serverId, d.gen);
  const transit = makeOwner(d.peerServerId!, 0);
  const q = new Int32Array(d.ctl!);
  const outBase = d.side! * QWORDS;
  const inBase = (1 - d.side!) * QWORDS;
  const total = d.messages!;
  const maxLen = pool.bufferSize - 10;
  let rnd = (d.seed! >>> 0) || 1;
  const r: ExchangeResult = {
    sent: 0, received: 0, badContent: 0, badDescriptor: 0, allocFailures: 0,
    deliberateBadFrees: 0, refusedBadFrees: 0, deliberateBadTransfers: 0, refusedBadTransfers: 0,
  };
  Atomics.add(q, READY_WORD, 1);
  Atomics.notify(q, READY_WORD);
  while (Atomics.load(q, READY_WORD) < 2) Atomics.wait(q, READY_WORD, 1, 10);

  while (r.sent < total || r.received < total) {
    let progressed = false;
    // Receive everything queued.
    const tail = Atomics.load(q, inBase + 1);
    let head = Atomics.load(q, inBase);
    while (head !== tail) {
      const e = inBase + 2 + 2 * (head & (QCAP - 1));
      const idx = q[e]!, epoch = q[e + 1]! >>> 0;
      head = (head + 1) | 0;
      if (!pool.adopt(idx, d.serverId, d.gen) || !pool.owns(idx, epoch, me)) {
        r.badDescriptor++;
      } else if (!checkMessage(bytes, pool.offsetOf(idx), d.peerServerId!, r.received, maxLen)) {
        r.badContent++;
      }
      if (!pool.free(idx, me)) r.badDescriptor++;
      if ((r.received & 4095) === 7) {
        // A deliberate double free: must be refused (nobody can have re-allocated it as `me`).
        r.deliberateBadFrees++;
        if (!pool.free(idx, me)) r.refusedBadFrees++;
      }
      r.received++;
      progressed = true;
    }
    Atomics.store(q, inBase, head);
    // Send a few.
    for (let burst = 0; burst < 16 && r.sent < total; burst++) {
      const idx = pool.alloc(me);
      if (idx < 0) {
        r.allocFailures++;
        break;
      }
      rnd ^= rnd << 13; rnd ^= rnd >>> 17; rnd ^= rnd << 5;
      const len = 1 + ((rnd >>> 0) % maxLen);
      writeMessage(bytes, pool.offsetOf(idx), d.serverId, r.sent, len);
      const epoch = pool.epochOf(idx);
      if ((r.sent & 4095) === 11) {
        // A deliberate transfer by a non-owner: must be refused.
        r.deliberateBadTransfers++;
        if (!pool.transfer(idx, transit, me)) r.refusedBadTransfers++;
      }
      if (!pool.transfer(idx, me, transit)) r.badDescriptor++;
      const t = Atomics.load(q, outBase + 1);
      const e = outBase + 2 + 2 * (t & (QCAP - 1));
      q[e] = idx;
      q[e + 1] = epoch | 0;
      Atomics.store(q, outBase + 1, (t + 1) | 0);
      Atomics.notify(q, outBase + 1);
      r.sent++;
      progressed = true;
    }
    if (!progressed) {
      // Nothing to receive and no buffer free: park until the peer posts (bounded, in case the
      // notify raced with us going to sleep).
      Atomics.wait(q, inBase + 1, tail, 1);
    }
  }
  parentPort!.postMessage(r);
}

if (parentPort !== null) {
  const d = workerData as PoolWorkerData;
  if (d.mode === 'hold') hold(d);
  else if (d.mode === 'churn') churn(d);
  else exchange(d);
}
