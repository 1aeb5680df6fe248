/**
 * The udp server: the shell that wires the protocol core (core.ts) and the socket table
 * (socket-table.ts, in ctx.state) to the rings.
 *
 * Inputs:  from ip    L4_IN (a datagram, by descriptor), ICMP_ERR (about a datagram we sent)
 *          from shim  BIND, CONNECT, DISCONNECT, CLOSE, SET_OPT, SEND (api.ts)
 * Outputs: to ip      L4_OUT (a datagram to send), PORT_UNREACH (a datagram nobody wanted)
 *          to shim    REPLY, RECV (a datagram, by descriptor: the received buffer itself), ERROR
 *
 * Buffers: every buffer that arrives is claimed first (ctx.claim: it becomes this incarnation's); a
 * failed claim is a record replayed after a crash whose effect already happened: dropped and counted
 * (K.replayDropped). A claimed buffer is forwarded by descriptor (RECV to the shim, L4_OUT or
 * PORT_UNREACH to ip), with no copy: it stays this incarnation's until the receiver claims it (the
 * record's srcGen names us). Or it is freed. The only copies are for a broadcast that reaches several
 * sockets: all but the last get a new buffer, allocated as this incarnation (a crash before the record
 * is published leaves it to the supervisor's reclaim).
 *
 * Backpressure: a handler returns false, before any effect other than a claim, when the ring it must
 * write is full; the host offers the record again (the claim then succeeds again: host.ts). To keep
 * the rings free of cycles, input from ip never waits for the ring to ip: a PORT_UNREACH that does not
 * fit is dropped (ICMP errors are best effort). Input from ip waits only for the shim, which always
 * drains; input from the shim waits for ip or the shim.
 */
import { K } from '../runtime/counters.js';
import { D, DATA_MSG, HDR_DST_GEN, HDR_SRC_GEN, HEADROOM } from '../runtime/messages.js';
import type { ServerContext, ServerModule } from '../runtime/server.js';
import type { StackConfig } from '../runtime/stack-memory.js';
import type { Endpoint } from '../runtime/topology.js';
import type { RingProducer } from '../../shared-rings/ring.js';
import { IPPROTO_UDP } from '../wire/ipv4.js';
import { UDP_HEADER_LEN } from '../wire/udp.js';
import { OP_SEND, rdI32, rdU16, rdU32, RECVF_BROADCAST, U, UDP_MSG, wr16, wr32 } from './api.js';
import { UC } from './counters.js';
import { envFromConfig, IN_DROP, IN_UNREACH, OUT_DROP, OUT_ERROR, UdpCore } from './core.js';
import { SocketTable } from './socket-table.js';

interface Udp {
  core: UdpCore;
  table: SocketTable;
  toIp: RingProducer;
  toShim: RingProducer;
}

/** Per-incarnation shell state (the table itself lives in ctx.state). */
const instances = new WeakMap<ServerContext, Udp>();

/** Bytes a RECV record takes in a ring (header + payload rounded to 8). */
const RECV_RECORD = 8 + ((U.RECV_BYTES + 7) & ~7);

/** The ephemeral port sequence's seed: fixed per stack configuration, so runs are reproducible. */
export function udpSeed(config: StackConfig): number {
  const i = config.iface;
  return (0x5eed0d9a ^ (i ? Math.imul(i.address | 0, 0x9e3779b1) ^ (i.mac % 0x1_0000_0000) : 0)) >>> 0;
}

function header(b: Uint8Array, o: number, gen: number): void {
  wr32(b, o + HDR_DST_GEN, 0);
  wr32(b, o + HDR_SRC_GEN, gen);
}

export const udpServer: ServerModule = {
  name: 'udp',

  start(ctx: ServerContext): void {
    const table = SocketTable.attach(ctx.state, { seed: udpSeed(ctx.config) });
    instances.set(ctx, {
      core: new UdpCore(table, envFromConfig(ctx.config)),
      table,
      toIp: ctx.out.get('ip')!,
      toShim: ctx.out.get('shim')!,
    });
  },

  handle(ctx: ServerContext, from: Endpoint, type: number, bytes: Uint8Array, off: number, len: number): boolean {
    const u = instances.get(ctx)!;
    if (from === 'ip') {
      if (type === DATA_MSG.L4_IN) return len >= D.L4_IN_BYTES ? l4In(ctx, u, bytes, off) : bad(u);
      if (type === DATA_MSG.ICMP_ERR) return len >= D.ICMP_ERR_BYTES ? icmpErr(ctx, u, bytes, off) : bad(u);
    } else if (from === 'shim') {
      switch (type) {
        case UDP_MSG.SEND:
          return len >= U.SEND_BYTES ? send(ctx, u, bytes, off) : bad(u);
        case UDP_MSG.BIND:
        case UDP_MSG.CONNECT:
        case UDP_MSG.SET_OPT:
          return len >= U.BIND_BYTES ? control(ctx, u, type, bytes, off) : bad(u);
        case UDP_MSG.DISCONNECT:
        case UDP_MSG.CLOSE:
          return len >= U.SIMPLE_BYTES ? control(ctx, u, type, bytes, off) : bad(u);
      }
    }
    ctx.counters.add(K.unknownDropped);
    u.table.count(UC['drop:unknown']);
    return true;
  },

  poll(): number {
    return Infinity;
  },
};

function bad(u: Udp): boolean {
  u.table.count(UC['drop:bad-request']);
  return true;
}

// ---- from ip ------------------------------------------------------------------------------------

function l4In(ctx: ServerContext, u: Udp, b: Uint8Array, off: number): boolean {
  const buf = rdI32(b, off + D.BUF);
  if (!ctx.claim(buf, rdI32(b, off + D.EPOCH))) {
    ctx.counters.add(K.replayDropped);
    return true;
  }
  const pools = ctx.pools;
  const l4Off = rdI32(b, off + D.L4_OFF);
  const l4Len = rdI32(b, off + D.L4_LEN);
  if (!(l4Off >= 0 && l4Len >= 0 && l4Off + l4Len <= pools.capacityOf(buf))) {
    pools.free(buf, ctx.owner);
    u.table.count(UC['drop:bad-descriptor']);
    return true;
  }
  const pb = pools.bytesOf(buf);
  const base = pools.offsetOf(buf);
  const src = rdU32(b, off + D.SRC);
  const verdict = u.core.input(pb, base + l4Off, l4Len, src, rdU32(b, off + D.DST), rdU16(b, off + D.IN_FLAGS));
  if (verdict === IN_DROP) {
    pools.free(buf, ctx.owner);
    u.table.count(UC.rx);
    return true;
  }
  if (verdict === IN_UNREACH) {
    u.table.count(UC.rx);
    // Best effort: never wait for the ring to ip here (see the header: no cycles).
    const o = u.toIp.reserve(D.L4_IN_BYTES, DATA_MSG.PORT_UNREACH);
    if (o < 0) {
      pools.free(buf, ctx.owner);
      u.table.count(UC['port-unreach-dropped']);
      return true;
    }
    u.toIp.bytes.set(b.subarray(off, off + D.L4_IN_BYTES), o);
    header(u.toIp.bytes, o, ctx.generation);
    u.toIp.commit();
    u.table.count(UC['port-unreach']);
    return true;
  }
  // IN_DELIVER
  const rx = u.core.rx;
  const n = rx.count;
  const shim = u.toShim;
  if (!shim.canReserve(n * RECV_RECORD - 8)) return false;
  u.table.count(UC.rx);
  // All but the last receiver of a broadcast get a copy; the last gets the received buffer.
  for (let i = 0; i < n - 1; i++) {
    const copy = pools.alloc(rx.payloadLen, ctx.owner);
    if (copy < 0) {
      u.table.count(UC['drop:copy-no-buffer']);
      continue;
    }
    pools.bytesOf(copy).set(pb.subarray(rx.payloadOff, rx.payloadOff + rx.payloadLen), pools.offsetOf(copy));
    if (!recv(ctx, u, rx.slots[i], copy, 0, src)) {
      pools.free(copy, ctx.owner);
      continue;
    }
    u.table.count(UC['bcast-copies']);
  }
  if (!recv(ctx, u, rx.slots[n - 1], buf, rx.payloadOff - base, src)) pools.free(buf, ctx.owner);
  return true;
}

/** Write a RECV for socket `slot` carrying buffer `buf` (payload at `payOff`); false if the ring is full. */
function recv(ctx: ServerContext, u: Udp, slot: number, buf: number, payOff: number, src: number): boolean {
  const rx = u.core.rx;
  const shim = u.toShim;
  const o = shim.reserve(U.RECV_BYTES, UDP_MSG.RECV);
  if (o < 0) return false;
  const pools = ctx.pools;
  const sb = shim.bytes;
  header(sb, o, ctx.generation);
  wr32(sb, o + U.V_SOCK_ID, u.table.sockIdOf(slot));
  wr32(sb, o + U.V_BUF, buf);
  wr32(sb, o + U.V_EPOCH, pools.epochOf(buf));
  wr32(sb, o + U.V_OFF, payOff);
  wr32(sb, o + U.V_LEN, rx.payloadLen);
  wr32(sb, o + U.V_SRC, src);
  wr16(sb, o + U.V_SPORT, rx.srcPort);
  wr16(sb, o + U.V_FLAGS, rx.broadcast ? RECVF_BROADCAST : 0);
  shim.commit();
  u.table.count(UC.delivered);
  return true;
}

function icmpErr(ctx: ServerContext, u: Udp, b: Uint8Array, off: number): boolean {
  const shim = u.toShim;
  if (!shim.canReserve(U.ERROR_BYTES)) return false;
  const report = u.core.icmpError(
    b[off + D.E_TYPE],
    b[off + D.E_CODE],
    b[off + D.E_PROTO],
    rdU32(b, off + D.E_SRC),
    rdU32(b, off + D.E_DST),
    rdU16(b, off + D.E_SPORT),
    rdU16(b, off + D.E_DPORT),
    rdU16(b, off + D.E_MTU),
    rdU32(b, off + D.E_REPORTER),
  );
  if (!report) return true;
  const e = u.core.err;
  error(ctx, u, u.table.sockIdOf(e.slot), e.code, e.op, e.addr, e.port, e.info);
  return true;
}

function error(ctx: ServerContext, u: Udp, sockId: number, code: number, op: number, addr: number, port: number, info: number): void {
  const shim = u.toShim;
  const o = shim.reserve(U.ERROR_BYTES, UDP_MSG.ERROR);
  const sb = shim.bytes;
  header(sb, o, ctx.generation);
  wr32(sb, o + U.E_SOCK_ID, sockId);
  wr16(sb, o + U.E_CODE, code);
  sb[o + U.E_OP] = op;
  sb[o + U.E_OP + 1] = 0;
  wr32(sb, o + U.E_ADDR, addr);
  wr16(sb, o + U.E_PORT, port);
  wr16(sb, o + U.E_PORT + 2, 0);
  wr32(sb, o + U.E_INFO, info);
  shim.commit();
}

// ---- from the shim --------------------------------------------------------------------------------

function send(ctx: ServerContext, u: Udp, b: Uint8Array, off: number): boolean {
  const buf = rdI32(b, off + U.S_BUF);
  if (!ctx.claim(buf, rdI32(b, off + U.S_EPOCH))) {
    ctx.counters.add(K.replayDropped);
    return true;
  }
  const pools = ctx.pools;
  const payOff = rdI32(b, off + U.S_OFF);
  const len = rdI32(b, off + U.S_LEN);
  if (!(payOff >= HEADROOM + UDP_HEADER_LEN && len >= 0 && payOff + len <= pools.capacityOf(buf))) {
    pools.free(buf, ctx.owner);
    u.table.count(UC['drop:bad-descriptor']);
    return true;
  }
  const sockId = rdU32(b, off + U.S_SOCK_ID);
  const base = pools.offsetOf(buf);
  const core = u.core;
  const verdict = core.send(pools.bytesOf(buf), sockId, base + payOff, len, rdU32(b, off + U.S_DST), rdU16(b, off + U.S_DPORT), rdU16(b, off + U.S_FLAGS));
  const tx = core.tx;
  if (verdict === OUT_DROP) {
    pools.free(buf, ctx.owner);
    return true;
  }
  if (verdict === OUT_ERROR) {
    if (!u.toShim.canReserve(U.ERROR_BYTES)) return false;
    pools.free(buf, ctx.owner);
    error(ctx, u, sockId, tx.code, OP_SEND, tx.dst, tx.dport, 0);
    u.table.count(UC['send-error']);
    return true;
  }
  const ip = u.toIp;
  const o = ip.reserve(D.L4_OUT_BYTES, DATA_MSG.L4_OUT);
  if (o < 0) return false;
  const ib = ip.bytes;
  header(ib, o, ctx.generation);
  wr32(ib, o + D.BUF, buf);
  wr32(ib, o + D.EPOCH, pools.epochOf(buf));
  wr32(ib, o + D.OFF, tx.segOff - base);
  wr32(ib, o + D.LEN, tx.segLen);
  wr32(ib, o + D.OUT_SRC, tx.src);
  wr32(ib, o + D.OUT_DST, tx.dst);
  ib[o + D.OUT_PROTO] = IPPROTO_UDP;
  ib[o + D.OUT_TTL] = tx.ttl;
  ib[o + D.OUT_TOS] = 0;
  ib[o + D.OUT_FLAGS] = tx.l4Flags;
  wr32(ib, o + D.OUT_GSO, 0);
  ip.commit();
  u.table.count(UC.tx);
  return true;
}

function control(ctx: ServerContext, u: Udp, type: number, b: Uint8Array, off: number): boolean {
  const reqId = rdU32(b, off + U.REQ_ID);
  const sockId = rdU32(b, off + U.SOCK_ID);
  const shim = u.toShim;
  if (reqId !== 0 && !shim.canReserve(U.REPLY_BYTES)) return false;
  const core = u.core;
  let code: number;
  let addr = 0;
  let port = 0;
  switch (type) {
    case UDP_MSG.BIND: {
      const r = core.bind(sockId, rdU32(b, off + U.ADDR), rdU16(b, off + U.PORT), rdU16(b, off + U.BIND_FLAGS));
      ({ code, addr, port } = r);
      break;
    }
    case UDP_MSG.CONNECT: {
      const r = core.connect(sockId, rdU32(b, off + U.ADDR), rdU16(b, off + U.PORT));
      ({ code, addr, port } = r);
      break;
    }
    case UDP_MSG.DISCONNECT: {
      const r = core.disconnect(sockId);
      ({ code, addr, port } = r);
      break;
    }
    case UDP_MSG.CLOSE:
      code = core.close(sockId);
      break;
    default:
      code = core.setOpt(sockId, rdU16(b, off + U.OPT), rdI32(b, off + U.OPT_VALUE));
      break;
  }
  if (reqId === 0) return true;
  const o = shim.reserve(U.REPLY_BYTES, UDP_MSG.REPLY);
  const sb = shim.bytes;
  header(sb, o, ctx.generation);
  wr32(sb, o + U.R_REQ_ID, reqId);
  wr32(sb, o + U.R_SOCK_ID, sockId);
  wr16(sb, o + U.R_CODE, code);
  wr16(sb, o + U.R_TAG, type);
  wr32(sb, o + U.R_ADDR, addr);
  wr16(sb, o + U.R_PORT, port);
  wr16(sb, o + U.R_PORT + 2, 0);
  shim.commit();
  return true;
}
