/**
 * The udp server shell, in-process (test/udp/harness.ts runs it as host.ts does): requests and
 * replies, datagrams by descriptor in both directions without copies, port unreachable, ICMP errors,
 * backpressure, replays after a crash, malformed input, and no buffer leaked.
 */
import t from 'tap';
import { makeOwner } from '../../shared-rings/pool.js';
import { RingConsumer, RingProducer } from '../../shared-rings/ring.js';
import { D, DATA_MSG, HDR_SRC_GEN, HEADROOM } from '../../servers/runtime/messages.js';
import { ENDPOINT_ID } from '../../servers/runtime/topology.js';
import { OP_RECV, OP_SEND, OPT_BROADCAST, RECVF_BROADCAST, SENDF_CONNECTED, U, UDP_MSG, UERR } from '../../servers/udp/api.js';
import { udpCounters } from '../../servers/udp/socket-table.js';
import { FakeIp, IFACE, ip, Net, r32, UdpHost, w16, w32 } from './harness.js';

const ME = IFACE.address;
const PEER = ip('10.7.0.9');
const SHIM_OWNER = makeOwner(ENDPOINT_ID.shim, 1);

interface Rec {
  tag: number;
  f: (o: number) => number;
  u16: (o: number) => number;
}

/** The shim's two ends, raw. */
class RawShim {
  readonly net: Net;
  readonly out: RingProducer;
  readonly inp: RingConsumer;
  constructor(net: Net) {
    this.net = net;
    this.out = new RingProducer(net.ring('shim', 'udp'));
    this.inp = new RingConsumer(net.ring('udp', 'shim'));
  }
  request(tag: number, reqId: number, sockId: number, addr = 0, port = 0, a = 0, b = 0): void {
    const len = tag === UDP_MSG.CLOSE || tag === UDP_MSG.DISCONNECT ? U.SIMPLE_BYTES : U.BIND_BYTES;
    const o = this.out.reserve(len, tag);
    const x = this.out.bytes;
    x.fill(0, o, o + len);
    w32(x, o + 4, 1);
    w32(x, o + U.REQ_ID, reqId);
    w32(x, o + U.SOCK_ID, sockId);
    if (tag === UDP_MSG.SET_OPT) {
      w16(x, o + U.OPT, a);
      w32(x, o + U.OPT_VALUE, b);
    } else if (len > U.SIMPLE_BYTES) {
      w32(x, o + U.ADDR, addr);
      w16(x, o + U.PORT, port);
      w16(x, o + U.BIND_FLAGS, a);
    }
    this.out.commit();
    this.out.flush();
  }
  /** A SEND of `payload` (copied into a fresh pool buffer); returns the buffer. */
  send(sockId: number, payload: Uint8Array, dst: number, dport: number, flags = 0, off = HEADROOM + 8): number {
    const pools = this.net.pools;
    const buf = pools.alloc(off + payload.length, SHIM_OWNER);
    pools.bytesOf(buf).set(payload, pools.offsetOf(buf) + off);
    const o = this.out.reserve(U.SEND_BYTES, UDP_MSG.SEND);
    const x = this.out.bytes;
    w32(x, o, 0);
    w32(x, o + 4, 1);
    w32(x, o + U.S_BUF, buf);
    w32(x, o + U.S_EPOCH, pools.epochOf(buf));
    w32(x, o + U.S_OFF, off);
    w32(x, o + U.S_LEN, payload.length);
    w32(x, o + U.S_SOCK_ID, sockId);
    w32(x, o + U.S_DST, dst);
    w16(x, o + U.S_DPORT, dport);
    w16(x, o + U.S_FLAGS, flags);
    this.out.commit();
    this.out.flush();
    return buf;
  }
  /** Every record udp sent the shim (committed as read). */
  drain(): Rec[] {
    const out: Rec[] = [];
    while (this.inp.peek() >= 0) {
      const copy = this.inp.bytes.slice(this.inp.offset, this.inp.offset + this.inp.length);
      out.push({ tag: this.inp.tag, f: (o) => r32(copy, o), u16: (o) => copy[o] | (copy[o + 1] << 8) });
      this.inp.commit();
    }
    return out;
  }
  /** Claim, read and free the buffer of a RECV (as the dgram API does); null if the claim fails. */
  take(r: Rec): Buffer | null {
    const pools = this.net.pools;
    const buf = r.f(U.V_BUF);
    const gen = r.f(HDR_SRC_GEN);
    if (!pools.transfer(buf, makeOwner(ENDPOINT_ID.udp, gen), SHIM_OWNER) && !pools.transfer(buf, makeOwner(ENDPOINT_ID.udp, 0), SHIM_OWNER)) return null;
    if (pools.epochOf(buf) !== r.f(U.V_EPOCH) >>> 0) return null;
    const at = pools.offsetOf(buf) + r.f(U.V_OFF);
    const b = Buffer.from(pools.bytesOf(buf).subarray(at, at + r.f(U.V_LEN)));
    pools.free(buf, SHIM_OWNER);
    return b;
  }
}

function setup(o: ConstructorParameters<typeof Net>[0] = {}): { net: Net; host: UdpHost; ipf: FakeIp; shim: RawShim; step: () => number } {
  const net = new Net(o);
  const host = new UdpHost(net);
  const ipf = new FakeIp(net);
  const shim = new RawShim(net);
  const bench = { net, host, ipf, shim, step: () => bench.host.step() + ipf.step() };
  return bench;
}

t.test('requests get replies; the table is in the server state', async (t) => {
  const { net, shim, step } = setup();
  shim.request(UDP_MSG.BIND, 11, 1, 0, 5000);
  shim.request(UDP_MSG.BIND, 12, 2, 0, 5000);
  shim.request(UDP_MSG.BIND, 13, 3, 0, 0);
  shim.request(UDP_MSG.BIND, 0, 4, 0, 0);
  shim.request(UDP_MSG.CONNECT, 14, 3, PEER, 53);
  shim.request(UDP_MSG.SET_OPT, 15, 3, 0, 0, 77, 1);
  shim.request(UDP_MSG.DISCONNECT, 16, 1);
  shim.request(UDP_MSG.CLOSE, 17, 1);
  step();
  const r = shim.drain();
  t.same(
    r.map((x) => [x.tag, x.f(U.R_REQ_ID), x.f(U.R_SOCK_ID), x.u16(U.R_CODE), x.u16(U.R_TAG)]),
    [
      [UDP_MSG.REPLY, 11, 1, UERR.OK, UDP_MSG.BIND],
      [UDP_MSG.REPLY, 12, 2, UERR.EADDRINUSE, UDP_MSG.BIND],
      [UDP_MSG.REPLY, 13, 3, UERR.OK, UDP_MSG.BIND],
      [UDP_MSG.REPLY, 14, 3, UERR.OK, UDP_MSG.CONNECT],
      [UDP_MSG.REPLY, 15, 3, UERR.EINVAL, UDP_MSG.SET_OPT],
      [UDP_MSG.REPLY, 16, 1, UERR.ENOTCONN, UDP_MSG.DISCONNECT],
      [UDP_MSG.REPLY, 17, 1, UERR.OK, UDP_MSG.CLOSE],
    ],
    'one reply per request with a reqId, in order',
  );
  t.equal(r[0].u16(U.R_PORT), 5000);
  t.ok(r[2].u16(U.R_PORT) >= 49152, 'ephemeral');
  t.equal(r[3].f(U.R_ADDR) >>> 0, ME, 'connect: the local address becomes the source address for the peer');
  t.equal(udpCounters(net.state)['drop:bad-request'], 0);
});

t.test('a datagram out: header in place in the same buffer, L4_OUT to ip, no copy', async (t) => {
  const { net, host, ipf, shim, step } = setup();
  shim.request(UDP_MSG.BIND, 1, 1, 0, 5000);
  step();
  shim.drain();
  const buf = shim.send(1, Buffer.from('hello'), PEER, 53);
  host.step();
  // Look at the L4_OUT before the fake ip takes it.
  const inp = ipf.fromUdp;
  t.equal(inp.peek(), D.L4_OUT_BYTES);
  t.equal(inp.tag, DATA_MSG.L4_OUT);
  const b = inp.bytes;
  const o = inp.offset;
  t.same(
    [r32(b, o + D.BUF), r32(b, o + D.OFF), r32(b, o + D.LEN), r32(b, o + D.OUT_SRC) >>> 0, r32(b, o + D.OUT_DST) >>> 0, b[o + D.OUT_PROTO]],
    [buf, HEADROOM, 13, ME, PEER, 17],
    'the shim buffer itself, segment at HEADROOM',
  );
  t.equal(r32(b, o + HDR_SRC_GEN), 1, 'srcGen: the udp incarnation that holds the buffer');
  ipf.step();
  t.same(ipf.wire.map((w) => [w.src, w.dst, w.sport, w.dport, w.checksumOk, w.payload.toString()]), [[ME, PEER, 5000, 53, true, 'hello']]);
  t.equal(net.inUse(), 0, 'no buffer leaked');
  t.equal(udpCounters(net.state).tx, 1);
});

t.test('a datagram in: the received buffer goes to the shim by descriptor', async (t) => {
  const { net, host, ipf, shim, step } = setup();
  shim.request(UDP_MSG.BIND, 1, 1, 0, 53);
  step();
  shim.drain();
  const buf = ipf.inject(PEER, 4000, ME, 53, Buffer.from('question'));
  host.step();
  const [r] = shim.drain();
  t.equal(r.tag, UDP_MSG.RECV);
  t.same([r.f(U.V_SOCK_ID), r.f(U.V_BUF), r.f(U.V_SRC) >>> 0, r.u16(U.V_SPORT), r.f(U.V_LEN), r.u16(U.V_FLAGS)], [1, buf, PEER, 4000, 8, 0]);
  t.equal(net.pools.ownerOf(buf), host.ctx.owner, 'held by the udp incarnation until the shim claims it');
  t.equal(shim.take(r)?.toString(), 'question');
  t.equal(net.inUse(), 0);
});

t.test('no socket: PORT_UNREACH with the original descriptor; a connected sender hears ECONNREFUSED', async (t) => {
  const { net, host, ipf, shim, step } = setup();
  const buf = ipf.inject(PEER, 4000, ME, 9, Buffer.from('x'));
  host.step();
  const inp = ipf.fromUdp;
  t.equal(inp.peek(), D.L4_IN_BYTES);
  t.equal(inp.tag, DATA_MSG.PORT_UNREACH);
  t.same([r32(inp.bytes, inp.offset + D.BUF), r32(inp.bytes, inp.offset + D.OFF), r32(inp.bytes, inp.offset + D.LEN)], [buf, 64, 29], 'the L4_IN as it came');
  ipf.step();
  t.equal(ipf.portUnreach, 1);
  shim.drain();
  t.equal(net.inUse(), 0, 'ip freed it');
  // Over the loopback: a connected socket sends to a closed port and hears about it.
  shim.request(UDP_MSG.CONNECT, 1, 1, ip('127.0.0.1'), 9);
  step();
  step();
  shim.drain();
  shim.send(1, Buffer.from('anyone?'), 0, 0, SENDF_CONNECTED);
  for (let i = 0; i < 4; i++) step();
  const [e] = shim.drain();
  t.equal(e.tag, UDP_MSG.ERROR);
  t.same([e.f(U.E_SOCK_ID), e.u16(U.E_CODE), e.f(U.E_OP) & 0xff, e.f(U.E_ADDR) >>> 0, e.u16(U.E_PORT)], [1, UERR.ECONNREFUSED, OP_RECV, ip('127.0.0.1'), 9]);
  t.equal(net.inUse(), 0);
  t.equal(udpCounters(net.state)['port-unreach'], 2);
});

t.test('a send the server refuses: ERROR to the shim, buffer freed', async (t) => {
  const { net, shim, step } = setup();
  shim.request(UDP_MSG.BIND, 1, 1, 0, 5000);
  step();
  shim.drain();
  shim.send(1, Buffer.from('all'), ip('10.7.0.255'), 9);
  shim.send(1, Buffer.from('x'), 0, 0, SENDF_CONNECTED);
  shim.send(99, Buffer.from('x'), PEER, 9);
  step();
  const r = shim.drain();
  t.same(
    r.map((x) => [x.tag, x.u16(U.E_CODE), x.f(U.E_OP) & 0xff]),
    [
      [UDP_MSG.ERROR, UERR.EACCES, OP_SEND],
      [UDP_MSG.ERROR, UERR.EDESTADDRREQ, OP_SEND],
    ],
    'unknown socket: dropped silently (it was closed)',
  );
  shim.request(UDP_MSG.SET_OPT, 0, 1, 0, 0, OPT_BROADCAST, 1);
  shim.send(1, Buffer.from('all'), ip('10.7.0.255'), 9);
  step();
  t.equal(shim.drain().length, 0, 'SO_BROADCAST set: sent, no reply to a reqId 0');
  t.equal(net.inUse(), 0);
  const c = udpCounters(net.state);
  t.same([c['send-error'], c['drop:send-no-socket'], c.tx], [2, 1, 1]);
});

t.test('a broadcast reaching two sockets: one copy, one original', async (t) => {
  const { net, host, ipf, shim, step } = setup();
  shim.request(UDP_MSG.BIND, 1, 1, 0, 67, 1);
  shim.request(UDP_MSG.BIND, 2, 2, 0, 67, 1);
  step();
  shim.drain();
  const buf = ipf.inject(PEER, 68, ip('255.255.255.255'), 67, Buffer.from('offer'));
  host.step();
  const r = shim.drain();
  t.equal(r.length, 2);
  t.same(r.map((x) => x.u16(U.V_FLAGS)), [RECVF_BROADCAST, RECVF_BROADCAST]);
  t.same(r.map((x) => x.f(U.V_SOCK_ID)).sort(), [1, 2]);
  t.equal(r.filter((x) => x.f(U.V_BUF) === buf).length, 1, 'the received buffer goes to one');
  t.same(r.map((x) => shim.take(x)?.toString()), ['offer', 'offer']);
  t.equal(net.inUse(), 0);
  t.equal(udpCounters(net.state)['bcast-copies'], 1);
});

t.test('backpressure: a full ring to the shim pauses input, nothing is lost or duplicated', async (t) => {
  const { net, host, ipf, shim, step } = setup({ ringCapacity: 1024 });
  shim.request(UDP_MSG.BIND, 1, 1, 0, 53);
  step();
  shim.drain();
  const n = 60;
  let got = 0;
  let injected = 0;
  // The ring to udp holds ~20 L4_IN records; keep injecting as room appears.
  while (got < n) {
    while (injected < n && ipf.toUdp.canReserve(D.L4_IN_BYTES)) ipf.inject(PEER, 4000, ME, 53, Buffer.from(`d${injected++}`));
    host.step();
    if (host.refusals > 0 || injected === n) for (const r of shim.drain()) if (shim.take(r) !== null) got++;
  }
  t.ok(host.refusals > 0, `the server refused ${host.refusals} times`);
  t.equal(got, n, 'every datagram delivered once');
  t.equal(host.counters.get('backpressure'), host.refusals);
  t.equal(net.inUse(), 0);
});

t.test('replays after a crash: effects happen once', async (t) => {
  const { net, host, ipf, shim } = setup();
  shim.request(UDP_MSG.BIND, 1, 1, 0, 53);
  host.step();
  shim.drain();
  // Crash after publishing a RECV, before committing the L4_IN.
  ipf.inject(PEER, 4000, ME, 53, Buffer.from('once'));
  t.ok(host.handleNoCommit('ip'));
  const first = shim.drain();
  t.equal(first.length, 1);
  t.equal(shim.take(first[0])?.toString(), 'once', 'the shim got it and took the buffer');
  const h2 = new UdpHost(net, 2);
  h2.step();
  t.equal(shim.drain().length, 0, 'the replay is dropped: its buffer is gone on');
  t.equal(h2.counters.get('replayDropped'), 1);

  // Crash after replying to a BIND, before committing it: the replay answers the same.
  shim.request(UDP_MSG.BIND, 2, 2, 0, 0);
  t.ok(h2.handleNoCommit('shim'));
  const [a] = shim.drain();
  const h3 = new UdpHost(net, 3);
  h3.step();
  const [b] = shim.drain();
  t.same([b.f(U.R_REQ_ID), b.u16(U.R_CODE), b.u16(U.R_PORT)], [a.f(U.R_REQ_ID), UERR.OK, a.u16(U.R_PORT)], 'same port, not EADDRINUSE against itself');

  // Crash after sending a datagram on, before committing the SEND: ip gets it once.
  const replaysBefore = h3.counters.get('replayDropped');
  shim.send(1, Buffer.from('out'), PEER, 9);
  t.ok(h3.handleNoCommit('shim'));
  ipf.step();
  const h4 = new UdpHost(net, 4);
  h4.step();
  ipf.step();
  t.equal(ipf.wire.length, 1, 'one datagram on the wire');
  t.equal(h4.counters.get('replayDropped') - replaysBefore, 1, 'the replayed SEND is dropped');
  t.equal(net.inUse(), 0);
});

t.test('a restarted incarnation finds its sockets and serves them', async (t) => {
  const { net, host, ipf, shim } = setup();
  shim.request(UDP_MSG.BIND, 1, 1, 0, 53);
  shim.request(UDP_MSG.CONNECT, 2, 2, PEER, 7);
  host.step();
  const replies = shim.drain();
  const h2 = new UdpHost(net, 2);
  ipf.inject(PEER, 4000, ME, 53, Buffer.from('after'));
  ipf.inject(PEER, 7, ME, replies[1].u16(U.R_PORT), Buffer.from('peer'));
  ipf.inject(PEER, 8, ME, replies[1].u16(U.R_PORT), Buffer.from('stranger'));
  h2.step();
  const r = shim.drain().filter((x) => x.tag === UDP_MSG.RECV);
  t.same(r.map((x) => [x.f(U.V_SOCK_ID), shim.take(x)?.toString()]), [
    [1, 'after'],
    [2, 'peer'],
  ], 'the stranger is not for the connected socket (port unreachable)');
  ipf.step();
  t.equal(ipf.portUnreach, 1);
  t.equal(net.inUse(), 0);
});

t.test('malformed input is counted and dropped, buffers freed', async (t) => {
  const { net, host, ipf, shim } = setup();
  // A short request.
  const o = shim.out.reserve(12, UDP_MSG.BIND);
  shim.out.bytes.fill(0, o, o + 12);
  shim.out.commit();
  // An unknown type.
  const o2 = shim.out.reserve(16, 0x2ff);
  shim.out.bytes.fill(0, o2, o2 + 16);
  shim.out.commit();
  shim.out.flush();
  // A SEND whose payload leaves no headroom.
  shim.send(1, Buffer.from('x'), PEER, 9, 0, 8);
  // An L4_IN whose l4Off is outside its buffer.
  const pools = net.pools;
  const buf = pools.alloc(100, ipf.owner);
  ipf.l4In(buf, 0, 40, 1 << 20, 20, PEER, ME, 0);
  ipf.toUdp.flush();
  host.step();
  const c = udpCounters(net.state);
  t.same([c['drop:bad-request'], c['drop:unknown'], c['drop:bad-descriptor']], [1, 1, 2]);
  t.equal(host.counters.get('unknownDropped'), 1);
  t.equal(net.inUse(), 0);
});
