import t from 'tap';
import { ICMP_ERROR_MAX_LEN, IcmpErrorBuilder, echoReplyInPlace, ipv4IsHostSource } from '../../servers/ip/icmp-error.js';
import { RouteTable } from '../../servers/ip/route.js';
import { Reassembler, REASM_QUOTE_MAX } from '../../servers/ip/reassembly.js';
import {
  ICMP_DST_UNREACHABLE,
  ICMP_ECHO_REPLY,
  ICMP_TIME_EXCEEDED,
  ICMP_TIMXCEED_REASSEMBLY,
  ICMP_UNREACH_FRAG_NEEDED,
  ICMP_UNREACH_PORT,
  ICMP_UNREACH_PROTOCOL,
  IcmpRepr,
  IcmpView,
} from '../../servers/wire/icmp.js';
import { IPPROTO_ICMP, IPPROTO_UDP, Ipv4View } from '../../servers/wire/ipv4.js';
import { checksum } from '../../servers/wire/checksum.js';
import { ICMP_PORT_UNREACH, IP_A, IP_B, PING_REPLY, PING_REQUEST, UDP_DNS } from '../wire/fixtures/helpers.js';
import { mulberry32 } from '../helpers/prng.js';
import { bytesOf, fragmentOf, hexOf, icmpMessage, ipPacket } from './helpers.js';

const S = 1_000_000;

function routesB(): RouteTable {
  const rt = new RouteTable();
  rt.addInterface({ addr: IP_B, prefixLen: 24, mtu: 1500 });
  return rt;
}

function parse(out: Uint8Array, n: number): { ip: Ipv4View; icmp: IcmpRepr } {
  const ip = new Ipv4View();
  if (ip.reset(out, 0, n) !== null) throw new Error('ip');
  const v = new IcmpView();
  const icmp = new IcmpRepr();
  if (v.reset(out, ip.payloadOff, ip.payloadLen) !== null) throw new Error('icmp view');
  const e = icmp.parse(v);
  if (e !== null) throw new Error(`icmp: ${e}`);
  return { ip, icmp };
}

t.test('port unreachable for the captured DNS query matches the captured answer byte for byte', async (t) => {
  const b = new IcmpErrorBuilder(routesB());
  b.ident = 0x59f5;
  const out = new Uint8Array(ICMP_ERROR_MAX_LEN);
  const n = b.unreachable(ICMP_UNREACH_PORT, UDP_DNS, 14, UDP_DNS.length - 14, out, 0, 0);
  t.equal(n, ICMP_PORT_UNREACH.length - 14);
  t.equal(hexOf(out, 0, n), hexOf(ICMP_PORT_UNREACH, 14), 'Linux sends exactly this');
  t.equal(b.ident, 0x59f6);
  t.equal(b.counters.get('sent-unreachable'), 1);
});

t.test('quote limits (RFC 1812 §4.3.2.3): 576 bytes in all, never past the datagram', async (t) => {
  const b = new IcmpErrorBuilder(routesB());
  const big = ipPacket({ src: IP_A, dst: IP_B, proto: 99, payload: bytesOf(mulberry32(1), 1480) });
  const out = new Uint8Array(ICMP_ERROR_MAX_LEN);
  const n = b.unreachable(ICMP_UNREACH_PROTOCOL, big, 0, big.length, out, 0, 0);
  t.equal(n, 576);
  const { ip, icmp } = parse(out, n);
  t.equal(ip.src, IP_B);
  t.equal(ip.dst, IP_A);
  t.equal(ip.ttl, 64);
  t.equal(ip.dontFrag, false);
  t.equal(icmp.code, ICMP_UNREACH_PROTOCOL);
  t.equal(icmp.innerProtocol, 99);
  t.equal(hexOf(out, 28, 548), hexOf(big, 0, 548));
  // Link padding after the datagram is not quoted.
  const padded = new Uint8Array(UDP_DNS.length - 14 + 10);
  padded.set(UDP_DNS.subarray(14));
  t.equal(b.unreachable(ICMP_UNREACH_PORT, padded, 0, padded.length, out, 0, 0), 28 + UDP_DNS.length - 14);
  t.throws(() => b.unreachable(ICMP_UNREACH_PORT, big, 0, big.length, new Uint8Array(100), 0, 0), RangeError);
});

t.test('fragmentation needed carries the next-hop MTU; explicit source', async (t) => {
  const b = new IcmpErrorBuilder(routesB());
  const df = ipPacket({ src: IP_A, dst: 0x08080808, proto: IPPROTO_UDP, df: true, payload: new Uint8Array(1600) });
  const out = new Uint8Array(ICMP_ERROR_MAX_LEN);
  const n = b.unreachable(ICMP_UNREACH_FRAG_NEEDED, df, 0, df.length, out, 0, 0, IP_B, 1400);
  const { ip, icmp } = parse(out, n);
  t.equal(icmp.type, ICMP_DST_UNREACHABLE);
  t.equal(icmp.mtu, 1400);
  t.equal(ip.src, IP_B, 'the given source, not the datagram destination');
});

t.test('time exceeded (reassembly) from an expired datagram', async (t) => {
  const r = new Reassembler();
  const v = new Ipv4View();
  const pkt = ipPacket({ src: IP_A, dst: IP_B, proto: IPPROTO_UDP, ident: 3, payload: bytesOf(mulberry32(2), 3000) });
  const f0 = fragmentOf(pkt, 0, 1480, true);
  v.reset(f0, 0, f0.length);
  r.input(v, 0);
  const q = new Uint8Array(REASM_QUOTE_MAX);
  const qn = r.expire(30 * S, q, 0);
  const b = new IcmpErrorBuilder(routesB());
  const out = new Uint8Array(ICMP_ERROR_MAX_LEN);
  const n = b.timeExceeded(ICMP_TIMXCEED_REASSEMBLY, q, 0, qn, out, 0, 30 * S);
  t.equal(n, 576);
  const { icmp } = parse(out, n);
  t.equal(icmp.type, ICMP_TIME_EXCEEDED);
  t.equal(icmp.code, ICMP_TIMXCEED_REASSEMBLY);
  t.equal(icmp.innerSrc, IP_A);
  t.equal(b.counters.get('sent-time-exceeded'), 1);
});

t.test('never about errors, non-initial fragments, broadcasts, or non-host sources', async (t) => {
  const b = new IcmpErrorBuilder(routesB(), { ratePerSec: 0 });
  const out = new Uint8Array(ICMP_ERROR_MAX_LEN);
  const udp = (src: number, dst: number, extra = {}) => ipPacket({ src, dst, proto: IPPROTO_UDP, payload: new Uint8Array(16), ...extra });
  const cases: [Uint8Array, string][] = [
    [ICMP_PORT_UNREACH.subarray(14), 'refused:icmp-error'],
    [ipPacket({ src: IP_A, dst: IP_B, proto: IPPROTO_ICMP, payload: icmpMessage(11, 0, 0, new Uint8Array(28)) }), 'refused:icmp-error'],
    [ipPacket({ src: IP_A, dst: IP_B, proto: IPPROTO_ICMP, payload: new Uint8Array(0) }), 'refused:icmp-error'],
    [udp(IP_A, IP_B, { fragOffset: 8, mf: true }), 'refused:fragment'],
    [udp(IP_A, 0xffffffff), 'refused:bad-dst'],
    [udp(IP_A, 0x0a0900ff), 'refused:bad-dst'],
    [udp(IP_A, 0xe0000001), 'refused:bad-dst'],
    [udp(0, IP_B), 'refused:bad-src'],
    [udp(0x7f000001, IP_B), 'refused:bad-src'],
    [udp(0xe0000001, IP_B), 'refused:bad-src'],
    [udp(0xf0000001, IP_B), 'refused:bad-src'],
    [udp(0x0a0900ff, IP_B), 'refused:bad-src'],
    [new Uint8Array(10), 'refused:malformed'],
    [udp(IP_A, IP_B).map((x, i) => (i === 0 ? 0x65 : x)), 'refused:malformed'],
  ];
  for (const [pkt, reason] of cases) {
    const before = b.counters.get(reason as never);
    t.equal(b.unreachable(ICMP_UNREACH_PORT, pkt, 0, pkt.length, out, 0, 0), 0, reason);
    t.equal(b.counters.get(reason as never), before + 1, reason);
  }
  // Queries are fine to answer about (e.g. an echo request to a closed protocol path).
  const echo = ipPacket({ src: IP_A, dst: IP_B, proto: IPPROTO_ICMP, payload: icmpMessage(8, 0, 0, new Uint8Array(8)) });
  t.ok(b.unreachable(ICMP_UNREACH_PORT, echo, 0, echo.length, out, 0, 0) > 0);
  // Loopback to loopback is allowed (our own traffic).
  const lo = udp(0x7f000001, 0x7f000001);
  t.ok(b.unreachable(ICMP_UNREACH_PORT, lo, 0, lo.length, out, 0, 0) > 0);
  t.ok(ipv4IsHostSource(IP_A));
  t.notOk(ipv4IsHostSource(0));
});

t.test('rate limit: burst, then one per refill interval', async (t) => {
  const b = new IcmpErrorBuilder(null, { ratePerSec: 1000, burst: 5 });
  const out = new Uint8Array(ICMP_ERROR_MAX_LEN);
  const d = UDP_DNS.subarray(14);
  let sent = 0;
  for (let i = 0; i < 10; i++) if (b.unreachable(ICMP_UNREACH_PORT, d, 0, d.length, out, 0, 0) > 0) sent++;
  t.equal(sent, 5);
  t.equal(b.counters.get('refused:rate-limit'), 5);
  t.equal(b.unreachable(ICMP_UNREACH_PORT, d, 0, d.length, out, 0, 999), 0);
  t.ok(b.unreachable(ICMP_UNREACH_PORT, d, 0, d.length, out, 0, 1000) > 0, 'one token per ms');
  t.equal(b.unreachable(ICMP_UNREACH_PORT, d, 0, d.length, out, 0, 1000), 0);
  t.ok(b.unreachable(ICMP_UNREACH_PORT, d, 0, d.length, out, 0, 10 * S) > 0);
});

t.test('building into the buffer that holds the offending datagram', async (t) => {
  const b = new IcmpErrorBuilder(routesB());
  const buf = new Uint8Array(ICMP_ERROR_MAX_LEN + 64);
  buf.set(UDP_DNS.subarray(14), 0);
  b.ident = 0x59f5;
  const n = b.unreachable(ICMP_UNREACH_PORT, buf, 0, UDP_DNS.length - 14, buf, 0, 0);
  t.equal(hexOf(buf, 0, n), hexOf(ICMP_PORT_UNREACH, 14), 'overlapping copy is safe');
});

t.test('echo reply in place: the captured request becomes the captured reply', async (t) => {
  const req = PING_REQUEST.slice();
  const n = echoReplyInPlace(req, 14, 0xd9f1);
  t.equal(n, 14);
  t.equal(hexOf(req, 14), hexOf(PING_REPLY, 14), 'IPv4 + ICMP identical to Linux');

  // With options, the 20-byte reply header ends where the ICMP message starts.
  const icmp = icmpMessage(8, 0, 0x00010002, bytesOf(mulberry32(3), 40));
  const withOpt = ipPacket({ src: IP_A, dst: IP_B, proto: IPPROTO_ICMP, ttl: 3, tos: 0x10, payload: icmp, options: new Uint8Array([0x94, 4, 0, 0, 1, 1, 1, 0]) });
  const m = echoReplyInPlace(withOpt, 0, 7, 64);
  t.equal(m, 8);
  const ip = new Ipv4View();
  t.equal(ip.reset(withOpt, m, withOpt.length - m), null);
  t.equal(ip.headerLen, 20);
  t.equal(ip.totalLen, 20 + icmp.length);
  t.equal(ip.src, IP_B);
  t.equal(ip.dst, IP_A);
  t.equal(ip.ttl, 64);
  t.equal(withOpt[m + 1], 0x10, 'TOS kept');
  t.ok(ip.verifyChecksum());
  t.equal(withOpt[ip.payloadOff], ICMP_ECHO_REPLY);
  t.equal(checksum(withOpt, ip.payloadOff, icmp.length), 0, 'ICMP checksum patched correctly');
  t.equal(hexOf(withOpt, ip.payloadOff + 4), hexOf(icmp, 4), 'identifier, sequence and data unchanged');
});
