/**
 * The UDP core, pure: input checks and demux verdicts over literal datagrams, the send path (header
 * in place, checksum, source address, errors), ICMP error reporting.
 */
import t from 'tap';
import { FRAME_CSUM_OK, L4F_CSUM } from '../../servers/runtime/messages.js';
import { BINDF_REUSEADDR, OP_RECV, OP_SEND, OPT_BROADCAST, OPT_TTL, SENDF_CONNECTED, UERR } from '../../servers/udp/api.js';
import { envFromConfig, IN_DELIVER, IN_DROP, IN_UNREACH, OUT_DROP, OUT_ERROR, OUT_SEND, UdpCore, type UdpEnv } from '../../servers/udp/core.js';
import { SocketTable } from '../../servers/udp/socket-table.js';
import { UdpRepr, UdpView } from '../../servers/wire/udp.js';
import { IFACE, ip } from './harness.js';

const ME = IFACE.address;
const LO = ip('127.0.0.1');
const PEER = ip('10.7.0.9');
const ENV: UdpEnv = envFromConfig({ iface: { ...IFACE }, link: { kind: 'none' } });

function core(env: UdpEnv = ENV): UdpCore {
  return new UdpCore(SocketTable.attach(new SharedArrayBuffer(1 << 18), { seed: 1 }), env);
}

/** A datagram at offset 10 of a fresh array: [10..18) header, then the payload. */
function dgram(src: number, sport: number, dst: number, dport: number, payload: number[], csum = true): Uint8Array {
  const b = new Uint8Array(10 + 8 + payload.length + 6);
  b.set(payload, 18);
  const r = new UdpRepr();
  r.srcPort = sport;
  r.dstPort = dport;
  r.payloadLen = payload.length;
  r.emit(b, 10, src, dst, csum);
  return b;
}

t.test('envFromConfig', async (t) => {
  t.same(envFromConfig({ iface: null, link: { kind: 'none' } }), { ifAddr: 0, prefix: 32, checksumOffload: false });
  t.same(ENV, { ifAddr: ME, prefix: 24, checksumOffload: false });
});

t.test('input: delivered to the socket, payload located in place', async (t) => {
  const c = core();
  c.bind(1, 0, 53, 0);
  const b = dgram(PEER, 4000, ME, 53, [1, 2, 3, 4, 5]);
  t.equal(c.input(b, 10, 13, PEER, ME, 0), IN_DELIVER);
  t.equal(c.rx.count, 1);
  t.equal(c.table.sockIdOf(c.rx.slots[0]), 1);
  t.same([c.rx.srcPort, c.rx.dstPort, c.rx.payloadOff, c.rx.payloadLen, c.rx.broadcast], [4000, 53, 18, 5, false]);
  // IP padding after the datagram: the UDP length field wins.
  t.equal(c.input(b, 10, 16, PEER, ME, 0), IN_DELIVER);
  t.equal(c.rx.payloadLen, 5);
});

t.test('input: checksums good, bad, zero, or verified by the link', async (t) => {
  const c = core();
  c.bind(1, 0, 53, 0);
  const good = dgram(PEER, 4000, ME, 53, [9, 8, 7]);
  t.equal(c.input(good, 10, 11, PEER, ME, 0), IN_DELIVER, 'good');
  const bad = dgram(PEER, 4000, ME, 53, [9, 8, 7]);
  bad[18] ^= 1;
  t.equal(c.input(bad, 10, 11, PEER, ME, 0), IN_DROP, 'a flipped bit');
  t.equal(c.rx.reason, 'bad-checksum');
  t.equal(c.input(good, 10, 11, PEER, ip('10.7.0.10'), 0), IN_DROP, 'the pseudo-header counts (another destination)');
  t.equal(c.input(bad, 10, 11, PEER, ME, FRAME_CSUM_OK), IN_DELIVER, 'FRAME_CSUM_OK: not verified again');
  const none = dgram(PEER, 4000, ME, 53, [9, 8, 7], false);
  none[18] ^= 1;
  t.equal(c.input(none, 10, 11, PEER, ME, 0), IN_DELIVER, 'checksum 0 means none');
  t.equal(c.table.counter('drop:bad-checksum'), 2);
});

t.test('input: truncated and bad lengths', async (t) => {
  const c = core();
  c.bind(1, 0, 53, 0);
  const b = dgram(PEER, 4000, ME, 53, [1, 2, 3, 4]);
  t.equal(c.input(b, 10, 7, PEER, ME, 0), IN_DROP, 'shorter than a header');
  t.equal(c.rx.reason, 'truncated');
  t.equal(c.input(b, 10, 11, PEER, ME, 0), IN_DROP, 'length field beyond the IP payload');
  t.equal(c.rx.reason, 'truncated');
  t.equal(c.input(b, b.length - 4, 8, PEER, ME, 0), IN_DROP, 'window outside the bytes');
  b[14] = 0;
  b[15] = 7;
  t.equal(c.input(b, 10, 12, PEER, ME, 0), IN_DROP, 'length field < 8');
  t.equal(c.rx.reason, 'bad-length');
  t.equal(c.table.counter('drop:truncated'), 3);
  t.equal(c.table.counter('drop:bad-length'), 1);
});

t.test('input: no socket -> port unreachable for unicast, silence for broadcast', async (t) => {
  const c = core();
  t.equal(c.input(dgram(PEER, 4000, ME, 9, [1]), 10, 9, PEER, ME, 0), IN_UNREACH);
  t.equal(c.rx.reason, 'no-socket');
  const bad = dgram(PEER, 4000, ME, 9, [1]);
  bad[18] ^= 0xff;
  t.equal(c.input(bad, 10, 9, PEER, ME, 0), IN_DROP, 'a bad checksum is dropped before that (as Linux)');
  for (const dst of [ip('10.7.0.255'), ip('255.255.255.255'), ip('239.0.0.1')]) {
    t.equal(c.input(dgram(PEER, 4000, dst, 9, [1]), 10, 9, PEER, dst, 0), IN_DROP);
    t.equal(c.rx.reason, 'no-socket-bcast');
  }
  t.equal(c.table.counter('drop:no-socket'), 1);
  t.equal(c.table.counter('drop:no-socket-bcast'), 3);
});

t.test('input: a broadcast reaches every socket on the port', async (t) => {
  const c = core();
  c.bind(1, 0, 67, BINDF_REUSEADDR);
  c.bind(2, 0, 67, BINDF_REUSEADDR);
  c.bind(3, ip('10.7.0.255'), 67, BINDF_REUSEADDR);
  c.bind(4, ME, 67, BINDF_REUSEADDR);
  const dst = ip('10.7.0.255');
  t.equal(c.input(dgram(PEER, 68, dst, 67, [1, 2]), 10, 10, PEER, dst, 0), IN_DELIVER);
  t.ok(c.rx.broadcast);
  t.same([...c.rx.slots.subarray(0, c.rx.count)].map((s) => c.table.sockIdOf(s)).sort(), [1, 2, 3], 'wildcards and the one bound to the broadcast address');
  t.equal(c.input(dgram(PEER, 68, ME, 67, [1, 2]), 10, 10, PEER, ME, 0), IN_DELIVER);
  t.equal(c.rx.count, 1, 'unicast: one socket');
  t.equal(c.table.sockIdOf(c.rx.slots[0]), 4);
});

/** A send buffer: payload at 72 (HEADROOM + 8), like the shim writes it. */
function payload(n: number, fill = 0x61): Uint8Array {
  const b = new Uint8Array(72 + n + 8);
  b.fill(fill, 72, 72 + n);
  return b;
}

t.test('send: the header in place, checksum over the pseudo-header, source address', async (t) => {
  const c = core();
  c.bind(1, 0, 5000, 0);
  const b = payload(10);
  t.equal(c.send(b, 1, 72, 10, PEER, 53, 0), OUT_SEND);
  const tx = c.tx;
  t.same([tx.src, tx.dst, tx.dport, tx.segOff, tx.segLen, tx.ttl, tx.l4Flags], [ME, PEER, 53, 64, 18, 0, 0]);
  const v = UdpView.checked(b, 64, 18) as UdpView;
  t.same([v.srcPort, v.dstPort, v.length], [5000, 53, 18]);
  t.not(v.checksum, 0, 'computed');
  t.ok(v.verifyChecksum(ME, PEER), 'and right');
  // To ourselves: no checksum (the datagram never leaves the stack).
  t.equal(c.send(payload(3), 1, 72, 3, LO, 53, 0), OUT_SEND);
  t.same([c.tx.src, c.tx.l4Flags], [LO, 0], 'loopback: source 127.0.0.1');
  const b2 = payload(3);
  c.send(b2, 1, 72, 3, ME, 53, 0);
  t.equal((b2[70] << 8) | b2[71], 0, 'to our own address: checksum 0 (none)');
  t.equal(c.send(payload(3), 1, 72, 3, 0, 53, 0), OUT_SEND);
  t.equal(c.tx.dst, LO, 'to 0.0.0.0: this host');
  // A specific local address is the source.
  c.bind(2, ip('127.0.0.5'), 5001, 0);
  c.send(payload(1), 2, 72, 1, LO, 9, 0);
  t.equal(c.tx.src, ip('127.0.0.5'));
  t.equal(c.send(payload(1), 2, 72, 1, PEER, 9, 0), OUT_ERROR, 'a loopback source cannot reach the network');
  t.equal(c.tx.code, UERR.EINVAL);
  // Checksum offload: left to ip.
  const off = core({ ...ENV, checksumOffload: true });
  off.bind(1, 0, 5000, 0);
  const b3 = payload(4);
  off.send(b3, 1, 72, 4, PEER, 53, 0);
  t.same([off.tx.l4Flags, (b3[70] << 8) | b3[71]], [L4F_CSUM, 0], 'L4F_CSUM and a zero field');
});

t.test('send: connected sockets, errors, TTL, broadcast', async (t) => {
  const c = core();
  c.bind(1, 0, 5000, 0);
  t.equal(c.send(payload(1), 1, 72, 1, 0, 0, SENDF_CONNECTED), OUT_ERROR);
  t.equal(c.tx.code, UERR.EDESTADDRREQ, 'not connected, no destination');
  c.connect(1, PEER, 53);
  t.equal(c.send(payload(1), 1, 72, 1, 0, 0, SENDF_CONNECTED), OUT_SEND);
  t.same([c.tx.src, c.tx.dst, c.tx.dport], [ME, PEER, 53]);
  t.equal(c.send(payload(1), 1, 72, 1, PEER, 54, 0), OUT_ERROR);
  t.equal(c.tx.code, UERR.EISCONN);
  c.bind(2, 0, 5002, 0);
  t.equal(c.send(payload(1), 2, 72, 1, PEER, 0, 0), OUT_ERROR);
  t.equal(c.tx.code, UERR.EINVAL, 'port 0');
  const big = payload(65508);
  t.equal(c.send(big, 2, 72, 65508, PEER, 9, 0), OUT_ERROR);
  t.equal(c.tx.code, UERR.EMSGSIZE);
  t.equal(c.send(big, 2, 72, 65507, PEER, 9, 0), OUT_SEND, '65507 is the largest');
  t.equal(c.tx.segLen, 65515);
  t.equal(c.send(payload(1), 2, 72, 1, ip('10.7.0.255'), 9, 0), OUT_ERROR);
  t.equal(c.tx.code, UERR.EACCES, 'broadcast needs SO_BROADCAST');
  c.setOpt(2, OPT_BROADCAST, 1);
  t.equal(c.send(payload(1), 2, 72, 1, ip('255.255.255.255'), 9, 0), OUT_SEND);
  c.setOpt(2, OPT_TTL, 9);
  c.send(payload(1), 2, 72, 1, PEER, 9, 0);
  t.equal(c.tx.ttl, 9);
  c.send(payload(1), 2, 72, 1, ip('239.1.1.1'), 9, 0);
  t.equal(c.tx.ttl, 1, 'multicast: TTL 1');
  t.equal(c.send(payload(1), 77, 72, 1, PEER, 9, 0), OUT_DROP, 'unknown socket');
  t.equal(c.tx.reason, 'send-no-socket');
  const lonely = core(envFromConfig({ iface: null, link: { kind: 'none' } }));
  lonely.bind(1, 0, 5000, 0);
  t.equal(lonely.send(payload(1), 1, 72, 1, PEER, 9, 0), OUT_ERROR);
  t.equal(lonely.tx.code, UERR.ENETUNREACH, 'no interface');
  t.equal(lonely.send(payload(1), 1, 72, 1, LO, 9, 0), OUT_SEND, 'the loopback still works');
});

t.test('ICMP errors: hard ones to connected sockets, ours to the sender', async (t) => {
  const c = core();
  c.bind(1, 0, 5000, 0);
  c.connect(1, PEER, 53);
  c.bind(2, 0, 5001, 0);
  t.ok(c.icmpError(3, 3, 17, ME, PEER, 5000, 53, 0, PEER), 'port unreachable');
  t.same([c.table.sockIdOf(c.err.slot), c.err.code, c.err.op], [1, UERR.ECONNREFUSED, OP_RECV]);
  t.notOk(c.icmpError(3, 3, 17, ME, PEER, 5001, 53, 0, PEER), 'not to an unconnected socket');
  t.notOk(c.icmpError(3, 3, 17, ME, PEER, 5000, 54, 0, PEER), 'not about another peer');
  t.notOk(c.icmpError(3, 1, 17, ME, PEER, 5000, 53, 0, PEER), 'host unreachable is soft');
  t.notOk(c.icmpError(11, 0, 17, ME, PEER, 5000, 53, 0, PEER), 'time exceeded is soft');
  t.notOk(c.icmpError(3, 3, 6, ME, PEER, 5000, 53, 0, PEER), 'about TCP');
  t.ok(c.icmpError(3, 4, 17, ME, PEER, 5000, 53, 1400, PEER));
  t.same([c.err.code, c.err.info], [UERR.EMSGSIZE, 1400], 'fragmentation needed, with the MTU');
  t.ok(c.icmpError(3, 2, 17, ME, PEER, 5000, 53, 0, PEER));
  t.equal(c.err.code, UERR.ENOPROTOOPT);
  t.ok(c.icmpError(12, 0, 17, ME, PEER, 5000, 53, 0, PEER));
  t.equal(c.err.code, UERR.EPROTO);
  t.ok(c.icmpError(3, 0, 17, ME, PEER, 5001, 53, 0, 0), 'our own ip had no route: told to the sender, connected or not');
  t.same([c.table.sockIdOf(c.err.slot), c.err.code, c.err.op, c.err.addr, c.err.port], [2, UERR.ENETUNREACH, OP_SEND, PEER, 53]);
  t.equal(c.table.counter('icmp-reported'), 5);
  t.equal(c.table.counter('icmp-ignored'), 5);
});
