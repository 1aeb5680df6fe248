/**
 * The tcp server: the shell around the protocol core (core/core.ts). It owns the rings, the pool, the
 * connection table and the transactions; the core owns the protocol and never sees any of them.
 *
 * Inputs:  from ip    L4_IN (a segment, by descriptor), ICMP_ERR (about a segment we sent)
 *          from shim  CONNECT, LISTEN, OP (api.ts)
 * Outputs: to ip      L4_OUT (a segment, in a pool buffer with headroom)
 *          to shim    REPLY, NOTIFY, ACCEPTED
 *
 * Survival (issue: "a crash of the TCP server breaks no connection"). Every Tcb, the table and its
 * hash live in the tcp state (layout.ts), and each input message is one transaction (tx.ts): the
 * Tcbs it touches are loaded into scratch objects, the core runs, the changed words are written back
 * through the undo log, and the log is committed before anything is published. A crash anywhere
 * before the commit leaves the state as it was before the message, which the host then offers again;
 * a crash after it leaves the message done (a replayed segment is a duplicate, which TCP handles; a
 * replayed request finds its token). What a crash can lose is output: segments not yet flushed (TCP
 * retransmits; on restart every connection sends what it may) and wake-ups for the shim (on restart
 * every connection's words are published again and pending NOTIFYs and ACCEPTEDs re-sent).
 * Timers are absolute deadlines on the central clock inside each Tcb, so they run on across restarts.
 *
 * Backpressure: nothing waits for the ring to ip (a segment that does not fit is lost, like on a
 * wire, and TCP recovers); replies wait for room in the ring to the shim (checked before any effect);
 * NOTIFY and ACCEPTED that do not fit are retried from poll().
 */
import { createHash } from 'node:crypto';
import { siphash4x32 } from './siphash.js';
import { K } from '../runtime/counters.js';
import { copyAnyAlign } from '../runtime/fast-copy.js';
import { D, DATA_MSG, FRAME_CSUM_OK, HDR_DST_GEN, HDR_SRC_GEN, HEADROOM, L4F_CSUM, L4F_DF, rd32, rdU16, wr16, wr32 } from '../runtime/messages.js';
import type { ServerContext, ServerModule } from '../runtime/server.js';
import { tcpInstanceOf, type Endpoint } from '../runtime/topology.js';
import type { RingProducer } from '../../shared-rings/ring.js';
import { IPPROTO_TCP } from '../wire/ipv4.js';
import { TCP_ACK, TCP_RST, TCP_SYN, TcpRepr, TcpView } from '../wire/tcp.js';
import { OP, OPTF_KEEPALIVE, OPTF_NODELAY, T, TCP_MSG, TERR } from './api.js';
import { ConnTable } from './conn-table.js';
import { TC } from './counters.js';
import { connId, genOf, H, KIND_CONN, KIND_FREE, KIND_LISTENER, M, PUB, slotOf, SW, TCB_SLOT_WORDS, TcpViews } from './layout.js';
import { N } from './notify.js';
import { Tx } from './tx.js';
import * as core from './core/core.js';
import { N_ACCEPTABLE, N_CLOSED, N_CONNECTED, N_ERROR, N_READABLE, N_WRITABLE, Tcb, TCB_WORDS, tcbLoad, tcbSave, tcbCopy, tcbFieldNames } from './core/tcb.js';
import { tcbFacts, tcbConfigure } from './tcb-facts.js';

if (TCB_WORDS > TCB_SLOT_WORDS) throw new Error(`Tcb needs ${TCB_WORDS} words, the layout keeps ${TCB_SLOT_WORDS}`);

const LOOPBACK = 0x7f000001;

/** The counter of each drop verdict of the core ('drop:seg-<verdict name>'), built once. */
const DROP_COUNTER: readonly (number | undefined)[] = (() => {
  const out: (number | undefined)[] = [];
  for (const [v, name] of Object.entries(core.VERDICT_NAMES)) out[Number(v)] = TC[`drop:seg-${name}` as keyof typeof TC];
  return out;
})();

interface Shell {
  ctx: ServerContext;
  v: TcpViews;
  tx: Tx;
  table: ConnTable;
  toIp: RingProducer;
  toShim: RingProducer;
  /** Scratch Tcbs: the connection being worked on, and a listener (for a SYN). */
  a: Tcb;
  b: Tcb;
  aSlot: number;
  /**
   * The slot whose committed Tcb words s.a holds unchanged (finish() just stored and committed it), or
   * -1: beginA() on that slot skips the load. In request/response the same connection's segment and
   * send alternate, and a load is 166 words. Anything that puts other contents in s.a sets it to -1
   * (every assignment of aSlot), and so does a store of another Tcb into that slot.
   */
  aLoaded: number;
  bSlot: number;
  aBits: number;
  bBits: number;
  pristine: Tcb;
  words: Float64Array;
  /** The same scratch as Int32 pairs. */
  words32: Int32Array;
  repr: TcpRepr;
  view: TcpView;
  outRepr: TcpRepr;
  rstSeg: core.OutSeg;
  io: core.TcpIo;
  timerMin: number;
  /** Slots whose NOTIFY / ACCEPTED did not fit in the ring to the shim. */
  retry: Set<number>;
  secret: Buffer;
  /** The same secret as four words: the SipHash key of the ISN (siphash.ts). */
  sipKey: Uint32Array;
  /** random32()'s pool: one getRandomValues call per 256 numbers (see random32). */
  rand: Uint32Array;
  randNext: number;
  offload: boolean;
  /**
   * Connections whose ACK is due at the end of this pass (io.ackAtBatchEnd): poll() fires them first,
   * without the sweep over every slot. Heap state only: their deadline is also in the table, so after a
   * restart the sweep finds them.
   */
  ackDue: number[];
  ackDueMark: Uint8Array;
  /**
   * Connections a segment of which could not be sent (pool or ring full): the window it advertised
   * never left, though the core counts it as advertised. Until a segment of the connection goes out,
   * publish() shows the shim no room past what was received, so reads kick (and appRecv advertises
   * again) as before the shim learned to skip kicks (tcp-shm-channel.ts read()).
   */
  unsentWindow: Uint8Array;
  ifAddr: number;
  prefix: number;
  mss: number;
  counters: Float64Array;
  /** SYN cookies: the ISS the core gets from io.isn() while set, and output swallowed while muted. */
  isnOverride: boolean;
  isnValue: number;
  muted: boolean;
  /** Scratch: the SYN a cookie stands for. */
  synRepr: TcpRepr;
  /** Flow sharding (runtime/flow-shard.ts): how many tcp instances, which one this is, the stack's key. */
  shards: number;
  shard: number;
  shardKey: readonly number[];
}

const shells = new WeakMap<ServerContext, Shell>();

const count = (s: Shell, c: number, n = 1): void => {
  s.counters[c] += n;
};

function header(b: Uint8Array, o: number, gen: number): void {
  wr32(b, o + HDR_DST_GEN, 0);
  wr32(b, o + HDR_SRC_GEN, gen);
}

// ---- the core's view of the world (TcpIo) ----------------------------------------------------------

function slotOfTcb(s: Shell, t: Tcb): number {
  return t === s.a ? s.aSlot : s.bSlot;
}

function makeIo(s: Shell): core.TcpIo {
  const sock = s.v.sock;
  const bytes = s.v.bytes;
  const mask = s.v.layout.bufBytes - 1;
  return {
    nowUs: 0,
    gsoMaxBytes: s.ctx.config.iface?.gsoMaxBytes ?? 0,
    ackAtBatchEnd: true,
    sendEnd(t: Tcb): number {
      const slot = slotOfTcb(s, t);
      return (tcbFacts.iss(t) + 1 + Atomics.load(sock, slot * SW.WORDS + SW.APP_WRITTEN)) >>> 0;
    },
    recvLimit(t: Tcb): number {
      const slot = slotOfTcb(s, t);
      return (tcbFacts.irs(t) + 1 + Atomics.load(sock, slot * SW.WORDS + SW.APP_CONSUMED) + mask + 1) >>> 0;
    },
    recvWrite(t: Tcb, seq: number, src: Uint8Array, off: number, len: number): void {
      const base = s.v.recvBufOff(slotOfTcb(s, t));
      const pos = ((seq - tcbFacts.irs(t) - 1) >>> 0) & mask;
      const first = Math.min(len, mask + 1 - pos);
      // The payload sits where the frame landed, the receive buffer position where its sequence number
      // says: usually unequally aligned, which V8 copies a byte at a time (runtime/fast-copy.ts).
      copyAnyAlign(bytes, base + pos, src, off, first);
      if (first < len) copyAnyAlign(bytes, base, src, off + first, len - first);
    },
    emit(t: Tcb, seg: core.OutSeg): boolean {
      return emit(s, seg, slotOfTcb(s, t), t);
    },
    notify(t: Tcb, bits: number): void {
      if (t === s.a) s.aBits |= bits;
      else s.bBits |= bits;
    },
    isn(t: Tcb): number {
      if (s.isnOverride) return s.isnValue;
      const f = tcbFacts;
      // RFC 6528: ISN = M + F(4-tuple, secret), M a 4 us timer (the central clock: it runs on across
      // restarts, so a restarted server never reuses a sequence space). F is SipHash-2-4 keyed with the
      // secret (siphash.ts). Timed inside the tcp worker during bench crr (shared placement), where the
      // call is cold (once per connection, between parks): sha256 29 - 41 us a call, SipHash 3.6 - 6.4 us
      // (in a hot loop: 2 - 2.8 us against 0.2 us). One call per connection on each side.
      const h = siphash4x32(s.sipKey, f.localAddr(t), f.localPort(t), f.remoteAddr(t), f.remotePort(t));
      return (Math.floor(this.nowUs / 4) + h) >>> 0;
    },
    random32(): number {
      // Drawn from a pool refilled 256 at a time: getRandomValues(new Uint32Array(1)) timed 19 - 24 us a
      // call inside the tcp worker during bench crr (cold, once per connection; 2 - 3.3 us in a hot loop),
      // the pool 1.7 us (0.04 us hot). Together with the SipHash ISN: crr shared 1267 -> 1894 cps
      // (medians of 7 alternated runs).
      if (s.randNext >= s.rand.length) {
        crypto.getRandomValues(s.rand);
        s.randNext = 0;
      }
      return s.rand[s.randNext++];
    },
  };
}

/** Build and send one segment; false if it could not be (pool or ring full): the core counts it lost. */
function emit(s: Shell, seg: core.OutSeg, slot: number, t: Tcb | null): boolean {
  if (s.muted) return true; // rebuilding a cookie connection: its SYN-ACK went out long ago
  const ctx = s.ctx;
  const pools = ctx.pools;
  const r = s.outRepr;
  r.srcPort = seg.srcPort;
  r.dstPort = seg.dstPort;
  r.seqNum = seg.seq >>> 0;
  r.ackNum = seg.ack >>> 0;
  r.flags = seg.flags;
  r.window = seg.window;
  r.urgent = 0;
  r.clearOptions();
  r.mss = seg.mss;
  r.wscale = seg.wscale;
  r.sackPermitted = seg.sackPermitted;
  r.tsPresent = seg.tsPresent;
  r.tsVal = seg.tsVal >>> 0;
  r.tsEcr = seg.tsEcr >>> 0;
  for (let i = 0; i < seg.sackCount; i++) r.addSack(seg.sackBlocks[2 * i] >>> 0, seg.sackBlocks[2 * i + 1] >>> 0);
  r.payloadLen = seg.dataLen;
  const hl = r.headerLen();
  const segLen = hl + seg.dataLen;
  // Payload bytes go to the same address modulo 8 as in the send buffer (up to 7 bytes of extra
  // headroom): V8 copies between SharedArrayBuffers word by word only when both ends are equally
  // aligned, else byte by byte (16 GB/s against 2-3 GB/s for 64 KiB here). Copies of 1 KiB or more now
  // go through memmove at any alignment when the addon is built (runtime/fast-copy.ts); the alignment
  // still serves shorter payloads, and every copy without the addon. The wire (shm-wire.ts) and the
  // receiver keep it, so the receiver's copy into its receive buffer gets the same benefit.
  const slack = seg.dataLen > 0 && t !== null && HEADROOM + segLen + 7 <= pools.maxSize ? 7 : 0;
  const buf = pools.alloc(HEADROOM + segLen + slack, ctx.owner);
  if (buf < 0) {
    count(s, TC['tx-failed']);
    if (slot >= 0) s.unsentWindow[slot] = 1;
    return false;
  }
  const o = s.toIp.reserve(D.L4_OUT_BYTES, DATA_MSG.L4_OUT);
  if (o < 0) {
    pools.free(buf, ctx.owner);
    count(s, TC['tx-failed']);
    if (slot >= 0) s.unsentWindow[slot] = 1;
    return false;
  }
  const pb = pools.bytesOf(buf);
  const base = pools.offsetOf(buf);
  let segOff = base + HEADROOM;
  if (seg.dataLen > 0 && t !== null) {
    const mask = s.v.layout.bufBytes - 1;
    const sb = s.v.sendBufOff(slot);
    const pos = ((seg.seq - tcbFacts.iss(t) - 1) >>> 0) & mask;
    const first = Math.min(seg.dataLen, mask + 1 - pos);
    const bytes = s.v.bytes;
    if (slack !== 0) segOff += (bytes.byteOffset + sb + pos - (pb.byteOffset + segOff + hl)) & 7;
    copyAnyAlign(pb, segOff + hl, bytes, sb + pos, first);
    if (first < seg.dataLen) copyAnyAlign(pb, segOff + hl + first, bytes, sb, seg.dataLen - first);
  }
  r.emit(pb, segOff, seg.srcAddr >>> 0, seg.dstAddr >>> 0, !s.offload);
  if (slot >= 0) s.unsentWindow[slot] = 0; // this segment carries the window
  const ib = s.toIp.bytes;
  header(ib, o, ctx.generation);
  wr32(ib, o + D.BUF, buf);
  wr32(ib, o + D.EPOCH, pools.epochOf(buf));
  wr32(ib, o + D.OFF, segOff - base);
  wr32(ib, o + D.LEN, segLen);
  wr32(ib, o + D.OUT_SRC, seg.srcAddr);
  wr32(ib, o + D.OUT_DST, seg.dstAddr);
  ib[o + D.OUT_PROTO] = IPPROTO_TCP;
  ib[o + D.OUT_TTL] = 0;
  ib[o + D.OUT_TOS] = 0;
  ib[o + D.OUT_FLAGS] = L4F_DF | (s.offload ? L4F_CSUM : 0);
  wr32(ib, o + D.OUT_GSO, seg.gsoSize);
  s.toIp.commit();
  count(s, TC.tx);
  return true;
}

// ---- transactions over one connection -----------------------------------------------------------------

function tcbWord(s: Shell, slot: number): number {
  return s.v.layout.tcbWord + slot * TCB_SLOT_WORDS;
}

/** The Tcb word holding `state` (checked at load: the schema must have it). */
const TCB_STATE = tcbFieldNames().indexOf('state');
if (TCB_STATE < 0) throw new Error('Tcb schema has no state field');

/** The Tcb word holding `synRetransmitted` (checked at load, like TCB_STATE). */
const TCB_SYN_RETX = tcbFieldNames().indexOf('synRetransmitted');
if (TCB_SYN_RETX < 0) throw new Error('Tcb schema has no synRetransmitted field');

/** A slot's TCP state, read straight from its stored Tcb (scans need no full load). */
function stateOf(s: Shell, slot: number): number {
  return s.v.tx[tcbWord(s, slot) + TCB_STATE];
}

function load(s: Shell, slot: number, t: Tcb): void {
  tcbLoad(t, s.v.tx, tcbWord(s, slot));
}

/**
 * Write back the words of `t` that changed, through the undo log. Words are compared as bit patterns
 * (two Int32 halves each) rather than with Object.is: a segment changes about 12 of the 166, and the
 * comparison with those 12 writes took 350 ns instead of 530 in isolation (tx.set still ignores a
 * change of NaN payload alone).
 */
function store(s: Shell, slot: number, t: Tcb): void {
  if (t !== s.a && slot === s.aLoaded) s.aLoaded = -1;
  const w = s.words;
  tcbSave(t, w, 0);
  const base = tcbWord(s, slot);
  const w32 = s.words32;
  const tx32 = s.v.tx32;
  for (let i = 0, j = 2 * base; i < 2 * TCB_WORDS; i += 2, j += 2) {
    if (tx32[j] !== w32[i] || tx32[j + 1] !== w32[i + 1]) s.tx.set(base + (i >> 1), w[i >> 1]);
  }
}

function beginA(s: Shell, slot: number): Tcb {
  s.aSlot = slot;
  s.aBits = 0;
  if (s.aLoaded !== slot) load(s, slot, s.a);
  s.aLoaded = -1;
  s.io.nowUs = s.ctx.clock.nowUs();
  return s.a;
}

/**
 * After the core ran on a connection: store it, re-arm its timer, release it if it is over, commit,
 * then publish to the shim. `bits` are the core's notifications.
 */
function finish(s: Shell, slot: number, t: Tcb, bits: number): void {
  const table = s.table;
  store(s, slot, t);
  const deadline = core.nextDeadline(t);
  table.set(slot, M.DEADLINE, deadline);
  if (deadline === t.tDelack && deadline <= s.io.nowUs) {
    // An ACK owed at the end of this pass (io.ackAtBatchEnd): poll() sends it.
    if (s.ackDueMark[slot] === 0) {
      s.ackDueMark[slot] = 1;
      s.ackDue.push(slot);
    }
  } else if (deadline < s.timerMin) s.timerMin = deadline;
  if (bits & N_ACCEPTABLE) table.set(slot, M.READY, 1);
  let freed = false;
  if (tcbFacts.closed(t)) {
    const parent = table.get(slot, M.PARENT);
    if (table.get(slot, M.APP_CLOSED) === 1 || (parent !== 0 && table.get(slot, M.READY) === 0)) {
      if (parent !== 0) leaveBacklog(s, slot);
      table.free(slot);
      freed = true;
      count(s, TC.closed);
    }
  }
  s.tx.commit();
  if (freed) {
    Atomics.store(s.v.sock, slot * SW.WORDS + SW.GEN, 0);
    return;
  }
  if (t === s.a) s.aLoaded = slot;
  publish(s, slot, t, bits);
}

function leaveBacklog(s: Shell, slot: number): void {
  const table = s.table;
  const parent = table.get(slot, M.PARENT);
  if (parent === 0) return;
  const l = parent - 1;
  if (table.kind(l) === KIND_LISTENER) table.set(l, M.PENDING, Math.max(0, table.get(l, M.PENDING) - 1));
  table.set(slot, M.PARENT, 0);
}

/** Publish a connection's words for the shim, then wake it (NOTIFY on 0 -> non-0, ACCEPTED). */
function publish(s: Shell, slot: number, t: Tcb, bits: number): void {
  const sock = s.v.sock;
  const b = slot * SW.WORDS;
  const f = tcbFacts;
  Atomics.store(sock, b + SW.ACKED, f.ackedData(t, Atomics.load(sock, b + SW.APP_WRITTEN) >>> 0) | 0);
  // The edge before RCVD: the shim loads RCVD first, so the edge it then loads is at least as new (never
  // one older than the received data it is compared with).
  const received = f.receivedData(t);
  Atomics.store(sock, b + SW.RCV_EDGE, (s.unsentWindow[slot] !== 0 ? received : f.advertisedData(t)) | 0);
  Atomics.store(sock, b + SW.RCVD, received | 0);
  Atomics.store(sock, b + SW.ERR, f.err(t));
  Atomics.store(
    sock,
    b + SW.FLAGS,
    (f.connected(t) ? PUB.CONNECTED : 0) |
      (f.finReceived(t) ? PUB.FIN : 0) |
      (f.closed(t) ? PUB.CLOSED : 0) |
      (f.finQueued(t) ? PUB.SHUT : 0) |
      (f.ackOwedOnRead(t) ? PUB.ACK_OWED : 0),
  );
  let n = 0;
  if (bits & N_CONNECTED) n |= N.CONNECTED;
  if (bits & N_READABLE) n |= N.READABLE;
  if (bits & N_WRITABLE) n |= N.WRITABLE;
  if (bits & N_ERROR) n |= N.ERROR;
  if (bits & N_CLOSED) n |= N.CLOSED;
  if (n !== 0 && Atomics.or(sock, b + SW.NOTIFY, n) === 0) {
    if (!sendNotify(s, slot)) s.retry.add(slot);
  }
  const table = s.table;
  if (table.get(slot, M.PARENT) !== 0 && table.get(slot, M.READY) === 1 && Atomics.load(sock, b + SW.TAKEN) === 0 && bits & N_ACCEPTABLE) {
    if (!sendAccepted(s, slot)) s.retry.add(slot);
  }
}

function sendNotify(s: Shell, slot: number): boolean {
  const o = s.toShim.reserve(T.NOTIFY_BYTES, TCP_MSG.NOTIFY);
  if (o < 0) return false;
  header(s.toShim.bytes, o, s.ctx.generation);
  wr32(s.toShim.bytes, o + T.N_CONN, connId(slot, s.table.gen(slot)));
  s.toShim.commit();
  return true;
}

function sendAccepted(s: Shell, slot: number): boolean {
  const table = s.table;
  const o = s.toShim.reserve(T.ACCEPTED_BYTES, TCP_MSG.ACCEPTED);
  if (o < 0) return false;
  const sb = s.toShim.bytes;
  const l = table.get(slot, M.PARENT) - 1;
  header(sb, o, s.ctx.generation);
  wr32(sb, o + T.A_LISTENER, connId(l, table.gen(l)));
  wr32(sb, o + T.A_CONN, connId(slot, table.gen(slot)));
  wr32(sb, o + T.A_RADDR, table.get(slot, M.RADDR));
  wr16(sb, o + T.A_RPORT, table.get(slot, M.RPORT));
  wr16(sb, o + T.A_LPORT, table.get(slot, M.LPORT));
  wr32(sb, o + T.A_LADDR, table.get(slot, M.LADDR));
  s.toShim.commit();
  count(s, TC.accepted);
  return true;
}

/** Fresh sock words for a newly allocated slot (nobody else knows the slot yet). */
function initSock(s: Shell, slot: number, laddr: number, lport: number, raddr: number, rport: number): void {
  const sock = s.v.sock;
  const b = slot * SW.WORDS;
  for (let i = 0; i < SW.WORDS; i++) Atomics.store(sock, b + i, 0);
  s.unsentWindow[slot] = 0;
  Atomics.store(sock, b + SW.LADDR, laddr | 0);
  Atomics.store(sock, b + SW.LPORT, lport);
  Atomics.store(sock, b + SW.RADDR, raddr | 0);
  Atomics.store(sock, b + SW.RPORT, rport);
  Atomics.store(sock, b + SW.GEN, s.table.gen(slot));
}

// ---- the server ------------------------------------------------------------------------------------------

export const tcpServer: ServerModule = {
  name: 'tcp',

  start(ctx: ServerContext): void {
    const v = new TcpViews(ctx.state);
    const tx = new Tx(v.tx, v.log, v.header);
    const iface = ctx.config.iface;
    const secret = Buffer.alloc(16);
    for (let i = 0; i < 4; i++) secret.writeInt32LE(v.header[H.SECRET + i], 4 * i);
    const words = new Float64Array(TCB_WORDS);
    const s: Shell = {
      ctx,
      v,
      tx,
      table: new ConnTable(v, tx),
      toIp: ctx.out.get('ip')!,
      toShim: ctx.out.get('shim')!,
      a: new Tcb(),
      b: new Tcb(),
      aSlot: -1,
      aLoaded: -1,
      bSlot: -1,
      aBits: 0,
      bBits: 0,
      pristine: new Tcb(),
      words,
      words32: new Int32Array(words.buffer),
      repr: new TcpRepr(),
      view: new TcpView(),
      outRepr: new TcpRepr(),
      rstSeg: core.newOutSeg(),
      io: null as unknown as core.TcpIo,
      timerMin: Infinity,
      retry: new Set(),
      secret,
      sipKey: Uint32Array.from({ length: 4 }, (_, i) => v.header[H.SECRET + i] >>> 0),
      rand: new Uint32Array(256),
      randNext: 256,
      offload: iface?.checksumOffload ?? false,
      ackDue: [],
      ackDueMark: new Uint8Array(v.layout.maxConns),
      unsentWindow: new Uint8Array(v.layout.maxConns),
      ifAddr: iface?.address ?? 0,
      prefix: iface?.prefix ?? 32,
      mss: (iface?.mtu ?? 1500) - 40,
      counters: v.counters,
      isnOverride: false,
      isnValue: 0,
      muted: false,
      synRepr: new TcpRepr(),
      shards: ctx.config.tcpShards?.count ?? 1,
      shard: Math.max(0, tcpInstanceOf(ctx.name)),
      shardKey: ctx.config.tcpShards?.key ?? [0, 0, 0, 0],
    };
    s.io = makeIo(s);
    shells.set(ctx, s);
    // A predecessor that died inside a transaction: undo it (the host offers its message again).
    const undone = tx.recover();
    if (undone > 0) count(s, TC['tx-recovered']);
    // Publish every connection again and re-send wake-ups that may have been lost with the
    // predecessor's unflushed output; let every connection send what it may (lost segments).
    const table = s.table;
    const maxConns = v.layout.maxConns;
    for (let slot = 0; slot < maxConns; slot++) {
      const kind = table.kind(slot);
      if (kind === KIND_FREE) continue;
      const d = table.get(slot, M.DEADLINE);
      if (d < s.timerMin) s.timerMin = d;
      if (kind !== KIND_CONN) continue;
      const t = beginA(s, slot);
      core.appSend(t, s.io);
      finish(s, slot, t, s.aBits);
      if ((slot & 63) === 63) ctx.beat();
      const b = slot * SW.WORDS;
      if (table.kind(slot) !== KIND_CONN) continue;
      if (Atomics.load(v.sock, b + SW.NOTIFY) !== 0 && !sendNotify(s, slot)) s.retry.add(slot);
      if (table.get(slot, M.PARENT) !== 0 && table.get(slot, M.READY) === 1 && Atomics.load(v.sock, b + SW.TAKEN) === 0) {
        if (!sendAccepted(s, slot)) s.retry.add(slot);
      }
    }
  },

  handle(ctx: ServerContext, from: Endpoint, type: number, bytes: Uint8Array, off: number, len: number): boolean {
    const s = shells.get(ctx)!;
    if (from === 'ip') {
      if (type === DATA_MSG.L4_IN) return len >= D.L4_IN_BYTES ? l4In(s, bytes, off) : bad(s);
      if (type === DATA_MSG.ICMP_ERR) return len >= D.ICMP_ERR_BYTES ? icmpErr(s, bytes, off) : bad(s);
    } else if (from === 'shim') {
      switch (type) {
        case TCP_MSG.CONNECT:
          return len >= T.CONNECT_BYTES ? connect(s, bytes, off) : bad(s);
        case TCP_MSG.LISTEN:
          return len >= T.LISTEN_BYTES ? listen(s, bytes, off) : bad(s);
        case TCP_MSG.OP:
          return len >= T.OP_BYTES ? op(s, bytes, off) : bad(s);
      }
    }
    ctx.counters.add(K.unknownDropped);
    count(s, TC['drop:unknown']);
    return true;
  },

  poll(ctx: ServerContext, nowUs: number): number {
    const s = shells.get(ctx)!;
    if (s.retry.size > 0) retryWakeups(s);
    if (s.ackDue.length > 0) fireAckDue(s);
    if (nowUs < s.timerMin) return s.timerMin;
    const table = s.table;
    const maxConns = s.v.layout.maxConns;
    let min = Infinity;
    let fired = 0;
    for (let slot = 0; slot < maxConns; slot++) {
      const kind = table.kind(slot);
      if (kind !== KIND_CONN) continue;
      let d = table.get(slot, M.DEADLINE);
      if (d <= nowUs) {
        const t = beginA(s, slot);
        core.onTimers(t, s.io);
        count(s, TC.timers);
        finish(s, slot, t, s.aBits);
        // A sweep over thousands of expiring timers is long: keep the heartbeat going.
        if ((++fired & 63) === 0) ctx.beat();
        d = table.kind(slot) === KIND_CONN ? table.get(slot, M.DEADLINE) : Infinity;
      }
      if (d < min) min = d;
    }
    s.timerMin = min;
    return min;
  },
};

/** The ACKs owed at the end of the pass (finish() queued them): one per connection, for all it got. */
function fireAckDue(s: Shell): void {
  const due = s.ackDue;
  for (let i = 0; i < due.length; i++) {
    const slot = due[i];
    s.ackDueMark[slot] = 0;
    if (s.table.kind(slot) !== KIND_CONN) continue;
    const t = beginA(s, slot);
    core.onTimers(t, s.io);
    finish(s, slot, t, s.aBits);
  }
  due.length = 0;
}

function retryWakeups(s: Shell): void {
  for (const slot of s.retry) {
    if (s.table.kind(slot) !== KIND_CONN) {
      s.retry.delete(slot);
      continue;
    }
    const b = slot * SW.WORDS;
    if (Atomics.load(s.v.sock, b + SW.NOTIFY) !== 0 && !sendNotify(s, slot)) return;
    if (s.table.get(slot, M.PARENT) !== 0 && s.table.get(slot, M.READY) === 1 && Atomics.load(s.v.sock, b + SW.TAKEN) === 0) {
      if (!sendAccepted(s, slot)) return;
    }
    count(s, TC['notify-retried']);
    s.retry.delete(slot);
  }
}

function bad(s: Shell): boolean {
  count(s, TC['drop:bad-request']);
  return true;
}

// ---- from ip ---------------------------------------------------------------------------------------------

function l4In(s: Shell, b: Uint8Array, off: number): boolean {
  const ctx = s.ctx;
  const pools = ctx.pools;
  const buf = rd32(b, off + D.BUF);
  if (!ctx.claim(buf, rd32(b, off + D.EPOCH))) {
    ctx.counters.add(K.replayDropped);
    return true;
  }
  try {
    const l4Off = rd32(b, off + D.L4_OFF);
    const l4Len = rd32(b, off + D.L4_LEN);
    if (!(l4Off >= 0 && l4Len >= 0 && l4Off + l4Len <= pools.capacityOf(buf))) {
      count(s, TC['drop:bad-descriptor']);
      return true;
    }
    const pb = pools.bytesOf(buf);
    const base = pools.offsetOf(buf);
    const src = rd32(b, off + D.SRC) >>> 0;
    const dst = rd32(b, off + D.DST) >>> 0;
    const csumOk = (rdU16(b, off + D.IN_FLAGS) & FRAME_CSUM_OK) !== 0;
    const view = s.view;
    const e = view.reset(pb, base + l4Off, l4Len);
    if (e !== null) {
      count(s, TC['drop:truncated']);
      return true;
    }
    const r = s.repr;
    const pe = r.parse(view, src, dst, !csumOk);
    if (pe !== null) {
      count(s, pe === 'bad-checksum' ? TC['drop:bad-checksum'] : TC['drop:bad-option']);
      return true;
    }
    count(s, TC.rx);
    segment(s, r, pb, src, dst);
    return true;
  } finally {
    pools.free(buf, ctx.owner);
  }
}

function segment(s: Shell, r: TcpRepr, data: Uint8Array, src: number, dst: number): void {
  const table = s.table;
  const slot = table.lookup(dst, r.dstPort, src, r.srcPort);
  if (slot < 0) return noConnection(s, r, src, dst);
  if (table.kind(slot) === KIND_LISTENER) return toListener(s, slot, r, data, src, dst);
  const t = beginA(s, slot);
  const verdict = core.segmentArrives(t, r, data, s.io);
  if (verdict >= core.DROP_FIRST) {
    count(s, TC['drop:segment']);
    const why = DROP_COUNTER[verdict];
    if (why !== undefined) count(s, why);
  }
  finish(s, slot, t, s.aBits);
  if (verdict === core.SEG_REOPEN) {
    // A new SYN ended a TIME_WAIT connection (RFC 9293 §3.10.7.4 / RFC 6191): the listener takes it.
    const l = s.table.listener(dst, r.dstPort);
    if (l >= 0) toListener(s, l, r, data, src, dst);
  }
}

/** RFC 9293 §3.10.7.1: a segment for no connection gets a reset (unless it is one). */
function noConnection(s: Shell, r: TcpRepr, src: number, dst: number): void {
  const seg = s.rstSeg;
  if (!core.resetFor(r, dst, src, seg)) return;
  if (emit(s, seg, -1, null)) count(s, TC['rst-sent']);
}

/**
 * The scratch Tcbs for a SYN to listener `lslot`: the listener loaded into s.b, and a fresh child for
 * slot `child` in s.a with the segment's four-tuple (seen from our side) and this stack's settings.
 */
function childOf(s: Shell, lslot: number, child: number, r: TcpRepr, src: number, dst: number, nowUs: number): { l: Tcb; t: Tcb } {
  const l = s.b;
  s.bSlot = lslot;
  s.bBits = 0;
  load(s, lslot, l);
  const t = s.a;
  s.aSlot = child;
  s.aLoaded = -1;
  s.aBits = 0;
  tcbCopy(t, s.pristine);
  tcbConfigure(t, { localAddr: dst, localPort: r.dstPort, remoteAddr: src, remotePort: r.srcPort, mss: mssFor(s, src), rcvBuf: s.v.layout.bufBytes });
  s.io.nowUs = nowUs;
  return { l, t };
}

function toListener(s: Shell, lslot: number, r: TcpRepr, data: Uint8Array, src: number, dst: number): void {
  const table = s.table;
  if (!core.isPlainSyn(r)) {
    if (cookieAck(s, lslot, r, data, src, dst)) return;
    return noConnection(s, r, src, dst);
  }
  if (table.get(lslot, M.PENDING) >= table.get(lslot, M.BACKLOG)) {
    // The backlog is full (a SYN flood, or an application not accepting): answer with a SYN cookie
    // instead of keeping state (RFC 4987 §3.6); the connection is made when its last ACK returns it.
    sendCookie(s, lslot, r, data, src, dst);
    return;
  }
  const child = allocConn(s, dst, r.dstPort, src, r.srcPort);
  if (child < 0) {
    // The table is full (a flood's embryonic children fill it long before any backlog does): answer
    // statelessly too. The cookie's ACK makes room by evicting an embryonic child (cookieAck).
    count(s, TC['drop:no-listener-slot']);
    sendCookie(s, lslot, r, data, src, dst);
    return;
  }
  const { l, t } = childOf(s, lslot, child, r, src, dst, s.ctx.clock.nowUs());
  // The child's shared words first: the SYN-ACK's window comes from them (recvLimit), and they still
  // hold the slot's previous occupant's counts. (If the SYN is refused the slot goes back to the free
  // list and nobody reads them.)
  initSock(s, child, dst, r.dstPort, src, r.srcPort);
  if (!core.listenInput(l, t, r, data, s.io)) {
    s.tx.abort();
    count(s, TC['drop:segment']);
    return;
  }
  table.set(child, M.PARENT, lslot + 1);
  table.set(lslot, M.PENDING, table.get(lslot, M.PENDING) + 1);
  store(s, lslot, l);
  finish(s, child, t, s.aBits);
}

/**
 * A slot for a new connection. When the table is full, the TIME_WAIT connection closest to its end
 * (and already released by the application) gives its slot up: a busy server must not be refused for
 * 60 s of TIME_WAIT (Linux bounds them with tcp_max_tw_buckets and drops the excess the same way).
 */
function allocConn(s: Shell, laddr: number, lport: number, raddr: number, rport: number): number {
  const table = s.table;
  const slot = table.alloc(KIND_CONN, laddr, lport, raddr, rport);
  if (slot >= 0) return slot;
  // A scan of the whole table on every connection made while it is full (a busy server's table
  // fills with TIME_WAIT): meta words and one Tcb word per slot, no Tcb loads.
  let victim = -1;
  let best = Infinity;
  for (let i = 0; i < s.v.layout.maxConns; i++) {
    if (table.kind(i) !== KIND_CONN || table.get(i, M.APP_CLOSED) !== 1) continue;
    if (stateOf(s, i) !== core.TIME_WAIT) continue;
    const d = table.get(i, M.DEADLINE);
    if (d < best) {
      best = d;
      victim = i;
    }
  }
  if (victim < 0) return -1;
  table.free(victim);
  count(s, TC['tw-recycled']);
  Atomics.store(s.v.sock, victim * SW.WORDS + SW.GEN, 0);
  return table.alloc(KIND_CONN, laddr, lport, raddr, rport);
}

// ---- SYN cookies (RFC 4987 §3.6, as Linux's): stateless SYN-ACKs when a listener's backlog is full ----
//
// ISS = count(8 bits) << 24 | (H(secret, four-tuple, peer ISN, count) + mss index) mod 2^24, with count
// the 64 s period of the central clock (so cookies stay valid across tcp restarts). A cookie SYN-ACK
// offers no window scaling, SACK or timestamps (they could not be remembered); the MSS goes in the
// index. An ACK reaching a listener with a valid cookie of this or the previous period makes the
// connection: the SYN it stands for is replayed through the core (output muted), then the ACK.

const COOKIE_PERIOD_US = 64_000_000;
const COOKIE_MSS = [216, 536, 1200, 1360, 1440, 1460, 4312, 8960] as const;

function cookieHash(s: Shell, laddr: number, lport: number, raddr: number, rport: number, peerIsn: number, period: number): number {
  const h = createHash('sha256')
    .update(s.secret)
    .update(Uint32Array.of(laddr, lport, raddr, rport, peerIsn, period, 0x636b6965))
    .digest();
  return h.readUInt32LE(0) & 0xffffff;
}

function makeCookie(s: Shell, r: TcpRepr, src: number, dst: number, nowUs: number): { iss: number; mss: number } {
  const period = Math.floor(nowUs / COOKIE_PERIOD_US) & 0xff;
  const peerMss = r.mss > 0 ? r.mss : 536;
  let idx = 0;
  while (idx + 1 < COOKIE_MSS.length && COOKIE_MSS[idx + 1] <= peerMss) idx++;
  const h = cookieHash(s, dst, r.dstPort, src, r.srcPort, r.seqNum >>> 0, period);
  return { iss: ((period << 24) | ((h + idx) & 0xffffff)) >>> 0, mss: COOKIE_MSS[idx] };
}

/** The MSS a cookie ACK stands for, or 0 if it is not a valid cookie. */
function checkCookie(s: Shell, r: TcpRepr, src: number, dst: number, nowUs: number): number {
  const iss = (r.ackNum - 1) >>> 0;
  const peerIsn = (r.seqNum - 1) >>> 0;
  const now = Math.floor(nowUs / COOKIE_PERIOD_US);
  for (const p of [now, now - 1]) {
    const period = p & 0xff;
    if (p < 0 || iss >>> 24 !== period) continue;
    const idx = ((iss & 0xffffff) - cookieHash(s, dst, r.dstPort, src, r.srcPort, peerIsn, period)) & 0xffffff;
    if (idx < COOKIE_MSS.length) return COOKIE_MSS[idx];
  }
  return 0;
}

/** The SYN a cookie answers, without the options a cookie cannot remember. */
function strippedSyn(s: Shell, r: TcpRepr, peerIsn: number, mss: number, window: number): TcpRepr {
  const syn = s.synRepr;
  syn.clearOptions();
  syn.srcPort = r.srcPort;
  syn.dstPort = r.dstPort;
  syn.seqNum = peerIsn >>> 0;
  syn.ackNum = 0;
  syn.flags = TCP_SYN;
  syn.window = window;
  syn.urgent = 0;
  syn.mss = mss;
  syn.payloadOff = 0;
  syn.payloadLen = 0;
  return syn;
}

function sendCookie(s: Shell, lslot: number, r: TcpRepr, data: Uint8Array, src: number, dst: number): void {
  const nowUs = s.ctx.clock.nowUs();
  const { iss, mss } = makeCookie(s, r, src, dst, nowUs);
  // A scratch child, never stored: its buffer words are read from the listener's slot (all zero).
  const { l, t } = childOf(s, lslot, lslot, r, src, dst, nowUs);
  s.isnOverride = true;
  s.isnValue = iss;
  try {
    if (core.listenInput(l, t, strippedSyn(s, r, r.seqNum >>> 0, mss, r.window), data, s.io)) count(s, TC['syncookies-sent']);
  } finally {
    s.isnOverride = false;
    s.tx.abort(); // nothing of it is kept
  }
}

/**
 * An embryonic child gives its place up for a connection whose handshake completed: a child of
 * listener `lslot`, or of any listener when `lslot` is -1 (the table is full: a flood on one port
 * must not shut out every other). The search starts at a moving point, so the victim is effectively
 * random: a flood's children are the likely ones, and no peer can predict which is taken.
 * A child whose SYN-ACK already went unanswered for a retransmission timeout (1 s at least) is taken
 * first: a real peer's handshake completes within a round trip, well under that on most paths, and
 * evicting one in progress answers its ACK with a reset (a client saw ECONNRESET, once, seconds after a SYN flood, when any child could
 * be taken). Only when none has yet (the flood's first second) is a fresh one taken.
 */
function evictEmbryonic(s: Shell, lslot: number): boolean {
  const table = s.table;
  const max = s.v.layout.maxConns;
  const start = (Atomics.add(s.v.header, H.PORT_CURSOR, 1) >>> 0) % max;
  let victim = -1;
  for (let k = 0; k < max; k++) {
    const i = (start + k) % max;
    if (table.kind(i) !== KIND_CONN || table.get(i, M.READY) !== 0) continue;
    const parent = table.get(i, M.PARENT);
    if (parent === 0 || (lslot >= 0 && parent !== lslot + 1)) continue;
    if (stateOf(s, i) !== core.SYN_RECEIVED) continue;
    if (victim < 0) victim = i;
    if (s.v.tx[tcbWord(s, i) + TCB_SYN_RETX] !== 0) {
      victim = i;
      break;
    }
  }
  if (victim >= 0) {
    const i = victim;
    leaveBacklog(s, i);
    table.free(i);
    Atomics.store(s.v.sock, i * SW.WORDS + SW.GEN, 0);
    count(s, TC['syn-evicted']);
    return true;
  }
  return false;
}

/** The last ACK of a cookie handshake: make the connection. False if it carries no valid cookie. */
function cookieAck(s: Shell, lslot: number, r: TcpRepr, data: Uint8Array, src: number, dst: number): boolean {
  if ((r.flags & (TCP_ACK | TCP_SYN | TCP_RST)) !== TCP_ACK) return false;
  const nowUs = s.ctx.clock.nowUs();
  const mss = checkCookie(s, r, src, dst, nowUs);
  if (mss === 0) return false;
  const table = s.table;
  if (table.get(lslot, M.PENDING) >= table.get(lslot, M.BACKLOG) && !evictEmbryonic(s, lslot)) {
    // Every place is taken by a connection the application has not accepted yet: drop the ACK
    // (Linux does too); the peer's next segment carries the cookie again.
    s.tx.abort();
    count(s, TC['drop:backlog']);
    return true;
  }
  let child = allocConn(s, dst, r.dstPort, src, r.srcPort);
  if (child < 0 && evictEmbryonic(s, -1)) child = allocConn(s, dst, r.dstPort, src, r.srcPort);
  if (child < 0) {
    s.tx.abort();
    count(s, TC['drop:no-listener-slot']);
    return true;
  }
  const { l, t } = childOf(s, lslot, child, r, src, dst, nowUs);
  initSock(s, child, dst, r.dstPort, src, r.srcPort);
  s.isnOverride = true;
  s.isnValue = (r.ackNum - 1) >>> 0;
  s.muted = true;
  let ok = false;
  try {
    ok = core.listenInput(l, t, strippedSyn(s, r, (r.seqNum - 1) >>> 0, mss, r.window), data, s.io);
  } finally {
    s.isnOverride = false;
    s.muted = false;
  }
  if (!ok) {
    s.tx.abort();
    Atomics.store(s.v.sock, child * SW.WORDS + SW.GEN, 0);
    count(s, TC['drop:segment']);
    return true;
  }
  table.set(child, M.PARENT, lslot + 1);
  table.set(lslot, M.PENDING, table.get(lslot, M.PENDING) + 1);
  store(s, lslot, l);
  const verdict = core.segmentArrives(t, r, data, s.io);
  if (verdict >= core.DROP_FIRST) {
    count(s, TC['drop:segment']);
    const why = DROP_COUNTER[verdict];
    if (why !== undefined) count(s, why);
  }
  count(s, TC['syncookies-ok']);
  finish(s, child, t, s.aBits);
  return true;
}

function mssFor(s: Shell, peer: number): number {
  // Loopback segments never leave the stack: the largest MSS a pool buffer can carry would do, but
  // keep the interface's, so the same code paths run.
  void peer;
  return s.mss;
}

function icmpErr(s: Shell, b: Uint8Array, off: number): boolean {
  if (b[off + D.E_PROTO] !== IPPROTO_TCP) return true;
  count(s, TC.icmp);
  const table = s.table;
  const src = rd32(b, off + D.E_SRC) >>> 0;
  const dst = rd32(b, off + D.E_DST) >>> 0;
  const slot = table.exact(src, rdU16(b, off + D.E_SPORT), dst, rdU16(b, off + D.E_DPORT));
  if (slot < 0 || table.kind(slot) !== KIND_CONN) return true;
  const t = beginA(s, slot);
  // A report from the network quotes the segment's sequence number: the core ignores it unless it lies
  // in what we have outstanding (RFC 5927 §4.1). Our own ip's reports (reporter 0: no route, ARP
  // failure) quote nothing.
  const fromNet = rd32(b, off + D.E_REPORTER) !== 0;
  core.icmpError(t, b[off + D.E_TYPE], b[off + D.E_CODE], rdU16(b, off + D.E_MTU), s.io, fromNet ? rd32(b, off + D.E_SEQ) >>> 0 : undefined);
  finish(s, slot, t, s.aBits);
  return true;
}

// ---- from the shim -------------------------------------------------------------------------------------

function reply(s: Shell, token: number, code: number, slot: number): void {
  const o = s.toShim.reserve(T.REPLY_BYTES, TCP_MSG.REPLY);
  const sb = s.toShim.bytes;
  header(sb, o, s.ctx.generation);
  const table = s.table;
  wr32(sb, o + T.R_TOKEN, token);
  wr32(sb, o + T.R_CODE, code);
  wr32(sb, o + T.R_CONN, slot >= 0 ? connId(slot, table.gen(slot)) : 0);
  wr32(sb, o + T.R_LADDR, slot >= 0 ? table.get(slot, M.LADDR) : 0);
  wr16(sb, o + T.R_LPORT, slot >= 0 ? table.get(slot, M.LPORT) : 0);
  wr16(sb, o + T.R_RPORT, slot >= 0 ? table.get(slot, M.RPORT) : 0);
  wr32(sb, o + T.R_RADDR, slot >= 0 ? table.get(slot, M.RADDR) : 0);
  s.toShim.commit();
}

/** The slot a replayed CONNECT/LISTEN already created, or -1. */
function byToken(s: Shell, token: number): number {
  const table = s.table;
  for (let slot = 0; slot < s.v.layout.maxConns; slot++) {
    if (table.kind(slot) !== KIND_FREE && table.get(slot, M.TOKEN) === token) return slot;
  }
  return -1;
}

function isLocal(s: Shell, addr: number): boolean {
  return addr >>> 24 === 127 || addr === s.ifAddr;
}

function connect(s: Shell, b: Uint8Array, off: number): boolean {
  if (!s.toShim.canReserve(T.REPLY_BYTES)) return false;
  const token = rd32(b, off + T.TOKEN) >>> 0;
  const again = byToken(s, token);
  if (again >= 0) {
    reply(s, token, TERR.OK, again);
    return true;
  }
  let raddr = rd32(b, off + T.C_RADDR) >>> 0;
  const rport = rdU16(b, off + T.C_RPORT);
  let lport = rdU16(b, off + T.C_LPORT);
  let laddr = rd32(b, off + T.C_LADDR) >>> 0;
  const flags = rdU16(b, off + T.C_FLAGS);
  // connect() to 0.0.0.0 reaches this host (Linux).
  if (raddr === 0) raddr = LOOPBACK;
  if (rport === 0) {
    reply(s, token, TERR.EADDRNOTAVAIL, -1);
    return true;
  }
  if (laddr === 0) {
    if (raddr >>> 24 === 127) laddr = LOOPBACK;
    else if (s.ifAddr !== 0) laddr = s.ifAddr;
    else {
      reply(s, token, TERR.ENETUNREACH, -1);
      return true;
    }
  } else if (!isLocal(s, laddr)) {
    reply(s, token, TERR.EADDRNOTAVAIL, -1);
    return true;
  }
  const table = s.table;
  if (lport === 0) {
    lport = table.ephemeral(laddr, raddr, rport, s.secret.readUInt32LE(0), s.shards, s.shard, s.shardKey);
    if (lport === 0) {
      reply(s, token, TERR.EADDRNOTAVAIL, -1);
      return true;
    }
  } else if (table.exact(laddr, lport, raddr, rport) >= 0) {
    reply(s, token, TERR.EADDRINUSE, -1);
    return true;
  }
  const slot = allocConn(s, laddr, lport, raddr, rport);
  if (slot < 0) {
    reply(s, token, TERR.EMFILE, -1);
    return true;
  }
  table.set(slot, M.TOKEN, token);
  const t = s.a;
  s.aSlot = slot;
  s.aLoaded = -1;
  s.aBits = 0;
  tcbCopy(t, s.pristine);
  tcbConfigure(t, {
    localAddr: laddr,
    localPort: lport,
    remoteAddr: raddr,
    remotePort: rport,
    mss: mssFor(s, raddr),
    rcvBuf: s.v.layout.bufBytes,
    noDelay: (flags & OPTF_NODELAY) !== 0,
    keepAliveMs: flags & OPTF_KEEPALIVE ? rd32(b, off + T.C_KEEPIDLE) >>> 0 : 0,
    cc: b[off + T.C_CC],
  });
  s.io.nowUs = s.ctx.clock.nowUs();
  initSock(s, slot, laddr, lport, raddr, rport);
  core.openActive(t, s.io);
  count(s, TC.connects);
  finish(s, slot, t, s.aBits);
  // The reply comes after the commit: a crash before it replays the CONNECT, which finds its token.
  if (table.kind(slot) === KIND_CONN) reply(s, token, TERR.OK, slot);
  else reply(s, token, TERR.ECONNREFUSED, -1);
  return true;
}

function listen(s: Shell, b: Uint8Array, off: number): boolean {
  if (!s.toShim.canReserve(T.REPLY_BYTES)) return false;
  const token = rd32(b, off + T.TOKEN) >>> 0;
  const again = byToken(s, token);
  if (again >= 0) {
    reply(s, token, TERR.OK, again);
    return true;
  }
  const addr = rd32(b, off + T.L_ADDR) >>> 0;
  let port = rdU16(b, off + T.L_PORT);
  const backlog = Math.max(1, rdU16(b, off + T.L_BACKLOG));
  const table = s.table;
  if (addr !== 0 && !isLocal(s, addr)) {
    reply(s, token, TERR.EADDRNOTAVAIL, -1);
    return true;
  }
  if (port === 0) {
    port = ephemeralListenPort(s);
    if (port === 0) {
      reply(s, token, TERR.EADDRINUSE, -1);
      return true;
    }
  } else if (table.listenConflict(addr, port)) {
    reply(s, token, TERR.EADDRINUSE, -1);
    return true;
  }
  const slot = table.alloc(KIND_LISTENER, addr, port, 0, 0);
  if (slot < 0) {
    reply(s, token, TERR.EMFILE, -1);
    return true;
  }
  table.set(slot, M.TOKEN, token);
  table.set(slot, M.BACKLOG, backlog);
  const t = s.a;
  s.aSlot = slot;
  s.aLoaded = -1;
  tcbCopy(t, s.pristine);
  tcbConfigure(t, { localAddr: addr, localPort: port, remoteAddr: 0, remotePort: 0, mss: s.mss, rcvBuf: s.v.layout.bufBytes });
  core.listen(t);
  store(s, slot, t);
  s.tx.commit();
  initSock(s, slot, addr, port, 0, 0);
  count(s, TC.listens);
  reply(s, token, TERR.OK, slot);
  return true;
}

function ephemeralListenPort(s: Shell): number {
  const span = 60999 - 32768 + 1;
  const start = (Atomics.add(s.v.header, H.PORT_CURSOR, 7919) >>> 0) % span;
  for (let i = 0; i < span; i++) {
    const port = 32768 + ((start + i) % span);
    if (!s.table.portInUse(port)) return port;
  }
  return 0;
}

function op(s: Shell, b: Uint8Array, off: number): boolean {
  const id = rd32(b, off + T.O_CONN) >>> 0;
  const slot = slotOf(id);
  const table = s.table;
  const code = b[off + T.O_OP];
  if (slot >= s.v.layout.maxConns || table.kind(slot) === KIND_FREE || table.gen(slot) !== genOf(id)) {
    count(s, TC['drop:stale-conn']);
    return true;
  }
  if (table.kind(slot) === KIND_LISTENER) {
    if (code === OP.UNLISTEN) unlisten(s, slot);
    else count(s, TC['drop:bad-request']);
    return true;
  }
  const value = rd32(b, off + T.O_VALUE);
  const t = beginA(s, slot);
  const io = s.io;
  switch (code) {
    case OP.SHUTDOWN:
      core.appClose(t, io);
      break;
    case OP.CLOSE: {
      table.set(slot, M.APP_CLOSED, 1);
      leaveBacklog(s, slot);
      const sb = slot * SW.WORDS;
      const unread = (Atomics.load(s.v.sock, sb + SW.RCVD) - Atomics.load(s.v.sock, sb + SW.APP_CONSUMED)) >>> 0;
      // close(2) with unread data resets the connection (RFC 2525 §2.17, as Linux does).
      if (unread !== 0) core.appAbort(t, io);
      else core.appClose(t, io, true);
      break;
    }
    case OP.ABORT:
      table.set(slot, M.APP_CLOSED, 1);
      leaveBacklog(s, slot);
      core.appAbort(t, io);
      break;
    case OP.KICK:
      // Re-arm the shim's coalescing, then look at both directions whatever the bits said: a
      // predecessor may have taken the bits and died before committing (the KICK is replayed with the
      // word already 0), and both calls only act on what the shared words say.
      Atomics.exchange(s.v.sock, slot * SW.WORDS + SW.KICK, 0);
      count(s, TC.kicks);
      core.appSend(t, io);
      core.appRecv(t, io);
      break;
    case OP.NODELAY:
      tcbConfigure(t, { noDelay: value !== 0 });
      core.appSend(t, io);
      break;
    case OP.KEEPALIVE:
      tcbConfigure(t, { keepAliveMs: value >>> 0 });
      core.appSend(t, io);
      break;
    case OP.TAKEN:
      leaveBacklog(s, slot);
      break;
    default:
      count(s, TC['drop:bad-request']);
  }
  finish(s, slot, t, s.aBits);
  return true;
}

function unlisten(s: Shell, lslot: number): void {
  const table = s.table;
  // Connections not yet taken by the application are reset (Linux: close() of a listener resets
  // its accept queue).
  for (let slot = 0; slot < s.v.layout.maxConns; slot++) {
    if (table.kind(slot) !== KIND_CONN || table.get(slot, M.PARENT) !== lslot + 1) continue;
    const t = beginA(s, slot);
    table.set(slot, M.APP_CLOSED, 1);
    leaveBacklog(s, slot);
    core.appAbort(t, s.io);
    finish(s, slot, t, s.aBits);
  }
  table.free(lslot);
  s.tx.commit();
  Atomics.store(s.v.sock, lslot * SW.WORDS + SW.GEN, 0);
}
