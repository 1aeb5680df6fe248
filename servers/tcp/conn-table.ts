/**
 * The connection table: slots for connections and listeners, a four-tuple hash for demultiplexing,
 * listener bookkeeping (pending children, backlog) and ephemeral ports. Every change goes through the
 * transaction (tx.ts); the table has no state outside the shared SAB, so a new incarnation attaches
 * and finds every connection where its predecessor committed it.
 *
 * Demultiplexing (RFC 9293 §3.10.7, as Linux's __inet_lookup): the exact four-tuple first, then a
 * listener bound to the local address, then one bound to 0.0.0.0.
 */
import { G, KIND_CONN, KIND_FREE, KIND_LISTENER, M, TcpViews, type TcpLayout } from './layout.js';
import type { Tx } from './tx.js';
import { flowShard } from '../runtime/flow-shard.js';

const NO_KEY: readonly number[] = [0, 0, 0, 0];

export const EPHEMERAL_LO = 32768;
export const EPHEMERAL_HI = 60999;

function mix(a: number, b: number, c: number, d: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ b, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ c, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 15) ^ d, 0x165667b1);
  return (h ^ (h >>> 16)) >>> 0;
}

export class ConnTable {
  readonly layout: TcpLayout;
  private readonly w: Float64Array;
  private readonly tx: Tx;
  private readonly header: Int32Array;

  constructor(views: TcpViews, tx: Tx) {
    this.layout = views.layout;
    this.w = views.tx;
    this.tx = tx;
    this.header = views.header;
  }

  /** Word index of a slot's meta field. */
  m(slot: number, field: number): number {
    return this.layout.metaWord + slot * M.WORDS + field;
  }
  get(slot: number, field: number): number {
    return this.w[this.layout.metaWord + slot * M.WORDS + field];
  }
  set(slot: number, field: number, v: number): void {
    this.tx.set(this.layout.metaWord + slot * M.WORDS + field, v);
  }

  get used(): number {
    return this.w[this.layout.globalsWord + G.USED];
  }

  kind(slot: number): number {
    return this.w[this.m(slot, M.KIND)];
  }

  gen(slot: number): number {
    return this.w[this.m(slot, M.GEN)];
  }

  private bucketOf(laddr: number, lport: number, raddr: number, rport: number): number {
    return mix(laddr, lport, raddr, rport) & (this.layout.nBuckets - 1);
  }

  /** Take a free slot for a connection or listener with this four-tuple; -1 if the table is full. */
  alloc(kind: number, laddr: number, lport: number, raddr: number, rport: number): number {
    const g = this.layout.globalsWord;
    const head = this.w[g + G.FREE_HEAD];
    if (head === 0) return -1;
    const slot = head - 1;
    this.tx.set(g + G.FREE_HEAD, this.get(slot, M.FREE_NEXT));
    this.tx.set(g + G.USED, this.w[g + G.USED] + 1);
    const gen = (this.get(slot, M.GEN) % 0xffff) + 1;
    this.set(slot, M.KIND, kind);
    this.set(slot, M.GEN, gen);
    this.set(slot, M.FREE_NEXT, 0);
    this.set(slot, M.PARENT, 0);
    this.set(slot, M.AQ_HEAD, 0);
    this.set(slot, M.AQ_TAIL, 0);
    this.set(slot, M.AQ_NEXT, 0);
    this.set(slot, M.BACKLOG, 0);
    this.set(slot, M.PENDING, 0);
    this.set(slot, M.DEADLINE, Infinity);
    this.set(slot, M.TOKEN, 0);
    this.set(slot, M.APP_CLOSED, 0);
    this.set(slot, M.READY, 0);
    this.link(slot, laddr, lport, raddr, rport);
    return slot;
  }

  /** Put a slot in the hash under a (new) four-tuple. */
  link(slot: number, laddr: number, lport: number, raddr: number, rport: number): void {
    this.unlink(slot);
    this.set(slot, M.LADDR, laddr);
    this.set(slot, M.LPORT, lport);
    this.set(slot, M.RADDR, raddr);
    this.set(slot, M.RPORT, rport);
    const b = this.bucketOf(laddr, lport, raddr, rport);
    const bw = this.layout.bucketsWord + b;
    this.set(slot, M.HNEXT, this.w[bw]);
    this.set(slot, M.BUCKET, b);
    this.tx.set(bw, slot + 1);
  }

  private unlink(slot: number): void {
    const b = this.get(slot, M.BUCKET);
    if (b < 0) return;
    const bw = this.layout.bucketsWord + b;
    let prev = -1;
    let cur = this.w[bw] - 1;
    while (cur >= 0 && cur !== slot) {
      prev = cur;
      cur = this.get(cur, M.HNEXT) - 1;
    }
    if (cur === slot) {
      const next = this.get(slot, M.HNEXT);
      if (prev < 0) this.tx.set(bw, next);
      else this.set(prev, M.HNEXT, next);
    }
    this.set(slot, M.HNEXT, 0);
    this.set(slot, M.BUCKET, -1);
  }

  free(slot: number): void {
    if (this.kind(slot) === KIND_FREE) return;
    this.unlink(slot);
    const g = this.layout.globalsWord;
    this.set(slot, M.KIND, KIND_FREE);
    this.set(slot, M.DEADLINE, Infinity);
    this.set(slot, M.FREE_NEXT, this.w[g + G.FREE_HEAD]);
    this.tx.set(g + G.FREE_HEAD, slot + 1);
    this.tx.set(g + G.USED, this.w[g + G.USED] - 1);
  }

  /** The slot with exactly this four-tuple, or -1. */
  exact(laddr: number, lport: number, raddr: number, rport: number): number {
    let cur = this.w[this.layout.bucketsWord + this.bucketOf(laddr, lport, raddr, rport)] - 1;
    const mw = this.layout.metaWord;
    while (cur >= 0) {
      const base = mw + cur * M.WORDS;
      if (
        this.w[base + M.LPORT] === lport &&
        this.w[base + M.RPORT] === rport &&
        this.w[base + M.LADDR] === laddr &&
        this.w[base + M.RADDR] === raddr
      ) {
        return cur;
      }
      cur = this.w[base + M.HNEXT] - 1;
    }
    return -1;
  }

  /** Demultiplex an arriving segment: connection first, then listener (specific address, then any). */
  lookup(laddr: number, lport: number, raddr: number, rport: number): number {
    const c = this.exact(laddr, lport, raddr, rport);
    if (c >= 0) return c;
    return this.listener(laddr, lport);
  }

  listener(laddr: number, lport: number): number {
    const l = this.exact(laddr, lport, 0, 0);
    if (l >= 0 && this.kind(l) === KIND_LISTENER) return l;
    const a = this.exact(0, lport, 0, 0);
    if (a >= 0 && this.kind(a) === KIND_LISTENER) return a;
    return -1;
  }

  /** A listener already on `port` that conflicts with binding `addr` (either is 0.0.0.0, or equal). */
  listenConflict(addr: number, port: number): boolean {
    if (addr === 0) {
      // Any listener on the port conflicts with a wildcard bind: scan (listens are rare).
      for (let s = 0; s < this.layout.maxConns; s++) {
        if (this.kind(s) === KIND_LISTENER && this.get(s, M.LPORT) === port) return true;
      }
      return false;
    }
    return this.exact(addr, port, 0, 0) >= 0 || this.exact(0, port, 0, 0) >= 0;
  }

  /** Any slot (listener or connection) using local `port`. */
  portInUse(port: number): boolean {
    for (let s = 0; s < this.layout.maxConns; s++) {
      if (this.kind(s) !== KIND_FREE && this.get(s, M.LPORT) === port) return true;
    }
    return false;
  }

  /**
   * An ephemeral port for a connection to raddr:rport from laddr (Linux's range 32768..60999): the
   * four-tuple must be unused and no listener may own the port. 0 if none is free. With flow-sharded
   * tcp instances (runtime/flow-shard.ts), only ports whose tuple hashes to instance `shard` of
   * `shards` qualify (as mTCP picks them), so the ip server hands this connection's segments to us.
   */
  ephemeral(laddr: number, raddr: number, rport: number, seed: number, shards = 1, shard = 0, key: ArrayLike<number> = NO_KEY): number {
    const span = EPHEMERAL_HI - EPHEMERAL_LO + 1;
    const cursor = Atomics.add(this.header, 10 /* H.PORT_CURSOR */, 1);
    const start = (mix(raddr, rport, seed, 0) + cursor) % span;
    for (let i = 0; i < span; i++) {
      const port = EPHEMERAL_LO + ((start + i) % span);
      if (shards > 1 && flowShard(key, shards, laddr, port, raddr, rport) !== shard) continue;
      if (this.exact(laddr, port, raddr, rport) >= 0) continue;
      if (this.listener(laddr, port) >= 0) continue;
      return port;
    }
    return 0;
  }

  /** Slots of a kind, for scans after a restart (allocates: not for the data path). */
  slots(kind: number): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.layout.maxConns; s++) if (this.kind(s) === kind) out.push(s);
    return out;
  }

  isConn(slot: number): boolean {
    return this.kind(slot) === KIND_CONN;
  }
}
