import t from 'tap';
import { IN_CSUM_OK, IN_LOOPBACK, INPUT_COUNTERS, IpInput, type InputCounter } from '../../servers/ip/input.js';
import { RouteTable } from '../../servers/ip/route.js';
import { Reassembler } from '../../servers/ip/reassembly.js';
import { Fragmenter } from '../../servers/ip/fragment.js';
import { IcmpErrorBuilder, ICMP_ERROR_MAX_LEN } from '../../servers/ip/icmp-error.js';
import { ArpCache } from '../../servers/ip/arp-cache.js';
import { ARP_OP_REQUEST } from '../../servers/wire/arp.js';
import { ETHERTYPE_ARP, MAC_BROADCAST } from '../../servers/wire/ethernet.js';
import { ICMP_UNREACH_PORT, ICMP_UNREACH_PROTOCOL } from '../../servers/wire/icmp.js';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4View } from '../../servers/wire/ipv4.js';
import { checksum } from '../../servers/wire/checksum.js';
import {
  ARP_REQUEST,
  ICMP_PORT_UNREACH,
  IP_A,
  IP_B,
  MAC_A,
  MAC_B,
  PING_REPLY,
  PING_REQUEST,
  TCP_SYN,
  UDP_DNS,
} from '../wire/fixtures/helpers.js';
import { mulberry32 } from '../helpers/prng.js';
import { bytesOf, ethFrame, fixIcmpChecksum, fixIpChecksum, fragmentOf, hexOf, icmpMessage, ipPacket, udpDatagram } from './helpers.js';

const BCAST = 0x0a0900ff;

function stackB(reassembler?: Reassembler): IpInput {
  const routes = new RouteTable();
  routes.addInterface({ addr: IP_B, prefixLen: 24, mtu: 1500 });
  return new IpInput({ mac: MAC_B, routes, reassembler });
}

function stackA(): IpInput {
  const routes = new RouteTable();
  routes.addInterface({ addr: IP_A, prefixLen: 24, mtu: 1500 });
  return new IpInput({ mac: MAC_A, routes });
}

/** An IPv4 frame from A to B (overridable). */
function frame(
  ip: Partial<Parameters<typeof ipPacket>[0]> & { payload?: Uint8Array },
  ethDst = MAC_B,
): Uint8Array {
  return ethFrame(
    ethDst,
    MAC_A,
    ipPacket({ src: IP_A, dst: IP_B, proto: IPPROTO_UDP, payload: udpDatagram(IP_A, IP_B, 1000, 2000, new Uint8Array(4)), ...ip }),
  );
}

t.test('captured frames are classified with offsets', async (t) => {
  const inp = stackB();
  let r = inp.receive(UDP_DNS, 0, UDP_DNS.length, 0);
  t.equal(r.kind, 'udp');
  t.same([r.ipOff, r.ipHeaderLen, r.ipLen, r.l4Off, r.l4Len], [14, 20, 0x39, 34, 0x39 - 20]);
  t.same([r.src, r.dst, r.protocol, r.ttl, r.tos, r.cast], [IP_A, IP_B, IPPROTO_UDP, 64, 0, 'unicast']);
  t.equal(r.bytes, UDP_DNS, 'no copy: offsets into the caller buffer');
  t.equal(r.ethSrc, MAC_A);
  r = inp.receive(TCP_SYN, 0, TCP_SYN.length, 0);
  t.equal(r.kind, 'tcp');
  t.equal(r.l4Len, 40);
  r = inp.receive(ARP_REQUEST, 0, ARP_REQUEST.length, 0);
  t.equal(r.kind, 'arp');
  t.equal(r.arp.operation, ARP_OP_REQUEST);
  t.equal(r.arp.targetIp, IP_B);
  // Feeding the parsed ARP to the cache answers it.
  const arp = new ArpCache();
  arp.setLocal(MAC_B, [IP_B]);
  t.equal(arp.input(r.arp, 0).replyReady, true);
  // Padding after the IPv4 packet is excluded.
  const padded = new Uint8Array(UDP_DNS.length + 9);
  padded.set(UDP_DNS);
  r = inp.receive(padded, 0, padded.length, 0);
  t.equal(r.l4Len, 0x39 - 20);
  // The port unreachable capture, received by A: an error about A's datagram.
  const a = stackA();
  r = a.receive(ICMP_PORT_UNREACH, 0, ICMP_PORT_UNREACH.length, 0);
  t.equal(r.kind, 'icmp-error');
  t.same([r.icmp.innerProtocol, r.icmp.innerSrc, r.icmp.innerDst, r.icmp.innerSrcPort, r.icmp.innerDstPort], [IPPROTO_UDP, IP_A, IP_B, 0xe17b, 53]);
  t.equal(r.tos, 0xc0);
  r = a.receive(PING_REPLY, 0, PING_REPLY.length, 0);
  t.equal(r.kind, 'icmp');
  t.equal(r.icmp.ident, 0x0ff2);
  t.equal(inp.counters.drops(), 0);
  t.equal(a.counters.drops(), 0);
});

t.test('echo request -> echo reply in place, identical to the captured reply', async (t) => {
  const inp = stackB();
  inp.ident = 0xd9f1;
  const f = PING_REQUEST.slice();
  const r = inp.receive(f, 0, f.length, 0);
  t.equal(r.kind, 'echo-reply');
  t.equal(r.frameOff, 0);
  t.equal(r.frameLen, PING_REPLY.length);
  t.equal(hexOf(f, r.frameOff, r.frameLen), hexOf(PING_REPLY), 'Ethernet, IPv4 and ICMP bytes as Linux sent them');
  t.same([r.src, r.dst, r.ipOff, r.ipLen, r.ttl], [IP_B, IP_A, 14, 36, 64]);
  t.equal(inp.ident, 0xd9f2);
  t.equal(inp.counters.get('echo-replies'), 1);
  // Without a link header (loopback path): the IP packet is rewritten in place.
  const lo = PING_REQUEST.slice(14);
  const lr = stackB().receiveIp(lo, 0, lo.length, 0, IN_LOOPBACK);
  t.equal(lr.kind, 'echo-reply');
  t.same([lr.frameOff, lr.frameLen], [0, 36]);
  t.ok(checksum(lo, 0, 20) === 0 && checksum(lo, 20, 16) === 0);
  // A request carrying IP options: the reply header is shifted, not the payload.
  const icmp = icmpMessage(8, 0, 0x00090001, bytesOf(mulberry32(1), 56));
  const withOpt = frame({ proto: IPPROTO_ICMP, payload: icmp, options: new Uint8Array([1, 1, 1, 0]) });
  const o = inp.receive(withOpt, 0, withOpt.length, 0);
  t.equal(o.kind, 'echo-reply');
  t.equal(o.frameOff, 4);
  t.equal(o.frameLen, 14 + 20 + icmp.length);
  const v = new Ipv4View();
  t.equal(v.reset(withOpt, o.ipOff, o.ipLen), null);
  t.ok(v.verifyChecksum());
  t.equal(checksum(withOpt, o.l4Off, icmp.length), 0);
  t.equal(hexOf(withOpt, o.frameOff, 6), MAC_A.toString(16).padStart(12, '0'), 'sent back to the asker');
});

t.test('every malformed or refused input is counted by reason', async (t) => {
  const inp = stackB();
  const icmp = (type: number, code: number, rest: number, data: Uint8Array, dst = IP_B, ethDst = MAC_B) =>
    frame({ proto: IPPROTO_ICMP, dst, payload: icmpMessage(type, code, rest, data) }, ethDst);
  const udpTo = (dst: number, ethDst: number) => frame({ dst, payload: udpDatagram(IP_A, dst, 1, 2, new Uint8Array(4)) }, ethDst);
  const mut = (f: Uint8Array, fn: (b: Uint8Array) => void, fix = true): Uint8Array => {
    const b = f.slice();
    fn(b);
    if (fix) fixIpChecksum(b, 14);
    return b;
  };
  const base = frame({});
  const quoteOfA = ipPacket({ src: IP_B, dst: IP_A, proto: IPPROTO_UDP, payload: new Uint8Array(8) });
  const quoteOfOther = ipPacket({ src: 0x0a090007, dst: IP_A, proto: IPPROTO_UDP, payload: new Uint8Array(8) });
  const cases: [string, Uint8Array, InputCounter][] = [
    ['short frame', base.subarray(0, 10), 'drop:eth-truncated'],
    ['802.3 length field', mut(base, (b) => (b[12] = 0x05), false), 'drop:eth-8023'],
    ['other unicast MAC', frame({}, 0x020000000001), 'drop:not-our-mac'],
    ['IPv6', mut(base, (b) => ((b[12] = 0x86), (b[13] = 0xdd)), false), 'drop:ethertype'],
    ['ARP cut short', ARP_REQUEST.subarray(0, 30), 'drop:arp-truncated'],
    ['ARP htype', mut(ARP_REQUEST, (b) => (b[15] = 6), false), 'drop:arp-bad-hardware'],
    ['ARP ptype', mut(ARP_REQUEST, (b) => (b[16] = 0x86), false), 'drop:arp-bad-protocol'],
    ['ARP op 3', mut(ARP_REQUEST, (b) => (b[21] = 3), false), 'drop:arp-bad-operation'],
    ['IP cut short', base.subarray(0, 14 + 19), 'drop:ip-truncated'],
    ['IP total length past the frame', mut(base, (b) => (b[17] += 1)), 'drop:ip-truncated'],
    ['IP version 6', mut(base, (b) => (b[14] = 0x65)), 'drop:ip-bad-version'],
    ['IHL 4', mut(base, (b) => (b[14] = 0x44)), 'drop:ip-bad-ihl'],
    ['total length < header', mut(base, (b) => ((b[16] = 0), (b[17] = 16))), 'drop:ip-bad-length'],
    ['header checksum', mut(base, (b) => (b[24] ^= 1), false), 'drop:ip-bad-checksum'],
    ['option runs past the header', frame({ options: new Uint8Array([7, 9, 4, 0]) }), 'drop:ip-bad-option'],
    ['option length 1', frame({ options: new Uint8Array([0x44, 1, 0, 0]) }), 'drop:ip-bad-option'],
    ['src 255.255.255.255', frame({ src: 0xffffffff }), 'drop:src-broadcast'],
    ['src our subnet broadcast', frame({ src: BCAST }), 'drop:src-broadcast'],
    ['src multicast', frame({ src: 0xe0000001 }), 'drop:src-multicast'],
    ['src 127.0.0.1 from the wire', frame({ src: 0x7f000001 }), 'drop:src-martian'],
    ['src 0.1.2.3', frame({ src: 0x00010203 }), 'drop:src-martian'],
    ['src class E', frame({ src: 0xf0000001 }), 'drop:src-martian'],
    ['src 0.0.0.0 unicast', frame({ src: 0 }), 'drop:src-martian'],
    ['src is ours', frame({ src: IP_B }), 'drop:src-ours'],
    ['dst 0.0.0.0', frame({ dst: 0 }), 'drop:dst-martian'],
    ['dst 127.0.0.1 from the wire', frame({ dst: 0x7f000001 }), 'drop:dst-martian'],
    ['dst another host', frame({ dst: 0x0a090003 }), 'drop:dst-not-ours'],
    ['dst 8.8.8.8 (we do not forward)', frame({ dst: 0x08080808 }), 'drop:dst-not-ours'],
    ['multicast group not joined', udpTo(0xe00000fb, 0x01005e0000fb), 'drop:multicast-not-joined'],
    ['unicast IP in a broadcast frame', frame({}, MAC_BROADCAST), 'drop:l2-broadcast-unicast'],
    ['misaligned fragment', frame({ mf: true, payload: new Uint8Array(13) }), 'drop:fragment'],
    ['ICMP of 4 bytes', frame({ proto: IPPROTO_ICMP, payload: new Uint8Array(4) }), 'drop:icmp-truncated'],
    ['ICMP checksum', mut(icmp(8, 0, 0, new Uint8Array(8)), (b) => (b[40] ^= 1), false), 'drop:icmp-bad-checksum'],
    ['unreachable code 99', icmp(3, 99, 0, quoteOfA), 'drop:icmp-bad-code'],
    ['unreachable quoting 10 bytes', icmp(3, 3, 0, quoteOfA.subarray(0, 10)), 'drop:icmp-bad-quote'],
    ['timestamp request', icmp(13, 0, 0, new Uint8Array(12)), 'drop:icmp-unsupported'],
    ['redirect', icmp(5, 1, IP_A, quoteOfA), 'drop:icmp-unsupported'],
    ['broadcast ping', icmp(8, 0, 0, new Uint8Array(8), BCAST, MAC_BROADCAST), 'drop:echo-broadcast'],
    ['all-hosts ping', icmp(8, 0, 0, new Uint8Array(8), 0xe0000001, 0x01005e000001), 'drop:echo-broadcast'],
    ['error sent to broadcast', icmp(3, 3, 0, quoteOfA, BCAST, MAC_BROADCAST), 'drop:icmp-error-broadcast'],
    ['error about another host', icmp(3, 3, 0, quoteOfOther), 'drop:icmp-error-not-ours'],
    ['TCP to broadcast', frame({ dst: BCAST, proto: IPPROTO_TCP, payload: new Uint8Array(20) }, MAC_BROADCAST), 'drop:tcp-not-unicast'],
    ['unknown protocol to broadcast', frame({ dst: 0xffffffff, proto: 99 }, MAC_BROADCAST), 'drop:unknown-protocol-broadcast'],
  ];
  const seen = new Set<string>();
  for (const [name, f, reason] of cases) {
    const before = inp.counters.values.slice();
    let r;
    try {
      r = inp.receive(f, 0, f.length, 0);
    } catch (err) {
      t.fail(`${name}: threw ${String(err)}`);
      continue;
    }
    t.equal(r.kind, 'drop', name);
    t.equal(r.reason, reason, name);
    const after = inp.counters.values;
    const dropsChanged = INPUT_COUNTERS.filter((n, i) => n.startsWith('drop:') && after[i] !== before[i]);
    t.same(dropsChanged, [reason], `${name}: exactly one drop counter moved`);
    seen.add(reason);
  }
  const allDrops = INPUT_COUNTERS.filter((n) => n.startsWith('drop:'));
  t.same(allDrops.filter((d) => !seen.has(d)), [], 'every drop reason has a case');
  t.equal(inp.counters.drops(), cases.length);
});

t.test('accepted corner cases', async (t) => {
  const inp = stackB();
  // Protocol unreachable for an unknown protocol to us, then the builder quotes it.
  const f = frame({ proto: 99, payload: new Uint8Array(30) });
  let r = inp.receive(f, 0, f.length, 0);
  t.equal(r.kind, 'proto-unreach');
  const b = new IcmpErrorBuilder();
  const out = new Uint8Array(ICMP_ERROR_MAX_LEN);
  const n = b.unreachable(ICMP_UNREACH_PROTOCOL, r.bytes, r.ipOff, r.ipLen, out, 0, 0);
  t.equal(n, 28 + 50);
  t.equal(hexOf(out, 28, 50), hexOf(f, 14));
  // DHCP-style: source 0.0.0.0 to the limited broadcast over UDP.
  const dhcp = frame({ src: 0, dst: 0xffffffff, payload: udpDatagram(0, 0xffffffff, 68, 67, new Uint8Array(8)) }, MAC_BROADCAST);
  r = inp.receive(dhcp, 0, dhcp.length, 0);
  t.equal(r.kind, 'udp');
  t.equal(r.cast, 'broadcast');
  // Directed broadcast UDP.
  const db = frame({ dst: BCAST }, MAC_BROADCAST);
  t.equal(inp.receive(db, 0, db.length, 0).cast, 'broadcast');
  // Joined multicast group.
  inp.joinGroup(0xe00000fb);
  const mc = frame({ dst: 0xe00000fb }, 0x01005e0000fb);
  r = inp.receive(mc, 0, mc.length, 0);
  t.equal(r.kind, 'udp');
  t.equal(r.cast, 'multicast');
  inp.leaveGroup(0xe00000fb);
  t.equal(inp.receive(mc, 0, mc.length, 0).reason, 'drop:multicast-not-joined');
  // TTL 0 to us: received, noted.
  const z = frame({ ttl: 0 });
  t.equal(inp.receive(z, 0, z.length, 0).kind, 'udp');
  t.equal(inp.counters.get('note:ttl-zero'), 1);
  // Options that parse are accepted.
  const opt = frame({ options: new Uint8Array([0x94, 4, 0, 0]) });
  r = inp.receive(opt, 0, opt.length, 0);
  t.equal(r.kind, 'udp');
  t.equal(r.l4Off, 14 + 24);
  t.equal(inp.counters.get('note:options'), 1);
  // Checksum offload: a bad header checksum passes when the driver says it verified it.
  const bad = frame({});
  bad[24] ^= 1;
  t.equal(inp.receive(bad, 0, bad.length, 0, IN_CSUM_OK).kind, 'udp');
  t.equal(inp.receive(bad, 0, bad.length, 0).reason, 'drop:ip-bad-checksum');
  // Loopback: 127/8 both ends.
  const lo = ipPacket({ src: 0x7f000001, dst: 0x7f000001, proto: IPPROTO_UDP, payload: new Uint8Array(8) });
  t.equal(inp.receiveIp(lo, 0, lo.length, 0, IN_LOOPBACK).kind, 'udp');
  t.equal(inp.receiveIp(lo, 0, lo.length, 0).reason, 'drop:src-martian');
  // Any offset in a shared buffer.
  const sab = new Uint8Array(new SharedArrayBuffer(UDP_DNS.length + 7), 3, UDP_DNS.length + 4);
  sab.set(UDP_DNS, 1);
  r = inp.receive(sab, 1, UDP_DNS.length, 0);
  t.equal(r.kind, 'udp');
  t.equal(r.l4Off, 1 + 34);
});

t.test('fragments: held, then reassembled into the input buffer; big ping answered', async (t) => {
  const inp = stackB();
  const payload = bytesOf(mulberry32(7), 4000);
  const dgram = ipPacket({ src: IP_A, dst: IP_B, proto: IPPROTO_UDP, ident: 99, payload: udpDatagram(IP_A, IP_B, 5, 6, payload) });
  const frags = [fragmentOf(dgram, 0, 1480, true), fragmentOf(dgram, 1480, 1480, true), fragmentOf(dgram, 2960, 1048, false)];
  const kinds: string[] = [];
  for (const fr of [frags[2], frags[0], frags[1]]) {
    const fb = ethFrame(MAC_B, MAC_A, fr);
    kinds.push(inp.receive(fb, 0, fb.length, 0).kind);
  }
  t.same(kinds, ['held', 'held', 'udp']);
  const r = inp.result;
  t.equal(r.reassembled, true);
  t.equal(r.ipLen, dgram.length);
  t.equal(hexOf(r.bytes, r.ipOff, r.ipLen), hexOf(dgram));
  t.equal(r.l4Len, 4008);
  t.equal(inp.counters.get('rx-fragments'), 3);
  t.equal(inp.counters.get('held:fragment'), 2);
  t.equal(inp.counters.get('reassembled'), 1);

  // A 3000-byte ping in fragments: the reply is built in the reassembly buffer, then fragmented.
  const echo = icmpMessage(8, 0, 0x12340001, bytesOf(mulberry32(8), 3000));
  const ping = ipPacket({ src: IP_A, dst: IP_B, proto: IPPROTO_ICMP, ident: 5, payload: echo });
  const pf = [fragmentOf(ping, 0, 1480, true), fragmentOf(ping, 1480, 1480, true), fragmentOf(ping, 2960, 48, false)];
  let last = inp.result;
  for (const fr of pf) {
    const fb = ethFrame(MAC_B, MAC_A, fr);
    last = inp.receive(fb, 0, fb.length, 0);
  }
  t.equal(last.kind, 'echo-reply');
  t.equal(last.ipLen, 3028);
  t.equal(last.frameLen, 14 + 3028);
  const fragger = new Fragmenter();
  t.equal(fragger.start(last.bytes, last.ipOff, last.ipLen, 1500), 'fragment');
  const back = new Reassembler();
  const v = new Ipv4View();
  let res = '';
  while (fragger.remaining > 0) {
    const o = new Uint8Array(fragger.nextLen());
    fragger.next(o, 0);
    v.reset(o, 0, o.length);
    res = back.input(v, 0);
  }
  t.equal(res, 'complete');
  const reply = new Uint8Array(back.readyLen);
  back.take(reply, 0);
  t.equal(reply[20], 0, 'echo reply');
  t.equal(checksum(reply, 20, reply.length - 20), 0);
  t.equal(hexOf(reply, 24), hexOf(echo, 4), 'identifier, sequence and data echoed');
});

t.test('UDP to a closed port: the caller builds port unreachable from the result', async (t) => {
  const inp = stackB();
  const r = inp.receive(UDP_DNS, 0, UDP_DNS.length, 0);
  const b = new IcmpErrorBuilder();
  b.ident = 0x59f5;
  const out = new Uint8Array(ICMP_ERROR_MAX_LEN);
  const n = b.unreachable(ICMP_UNREACH_PORT, r.bytes, r.ipOff, r.ipLen, out, 0, 0, r.dst);
  t.equal(hexOf(out, 0, n), hexOf(ICMP_PORT_UNREACH, 14));
});

t.test('seeded corruption fuzz: never throws, every drop has a reason', async (t) => {
  const inp = stackB(new Reassembler({ maxDatagrams: 4, maxBytes: 16384 }));
  const rand = mulberry32(0xbad);
  const pool = [UDP_DNS, TCP_SYN, PING_REQUEST, ARP_REQUEST, ICMP_PORT_UNREACH];
  let drops = 0;
  for (let k = 0; k < 20000; k++) {
    const f = pool[k % pool.length].slice();
    const flips = 1 + Math.floor(rand() * 3);
    for (let i = 0; i < flips; i++) f[Math.floor(rand() * f.length)] = Math.floor(rand() * 256);
    const ihlFits = 14 + (f[14] & 0xf) * 4 <= f.length;
    if (rand() < 0.5 && ihlFits && f[12] === 0x08 && f[13] === 0) fixIpChecksum(f, 14);
    if (rand() < 0.3 && f[23] === IPPROTO_ICMP && f.length >= 42) fixIcmpChecksum(f, 34, f.length - 34);
    const len = rand() < 0.1 ? Math.floor(rand() * f.length) : f.length;
    try {
      const r = inp.receive(f, 0, len, k * 1000);
      if (r.kind === 'drop') {
        drops++;
        if (r.reason === null) t.fail('drop without a reason');
      }
    } catch (err) {
      t.fail(`threw ${String(err)}`);
      break;
    }
  }
  t.equal(inp.counters.drops(), drops, 'counters agree with the results');
  t.ok(drops > 1000);
  t.comment(JSON.stringify(inp.counters.nonZero()));
});

t.test('ARP frames with an 802.1Q tag or unknown type do not reach the ARP cache', async (t) => {
  const inp = stackB();
  const tagged = ethFrame(MAC_BROADCAST, MAC_A, new Uint8Array(46), 0x8100);
  t.equal(inp.receive(tagged, 0, tagged.length, 0).reason, 'drop:ethertype');
  const arp = ethFrame(MAC_BROADCAST, MAC_A, ARP_REQUEST.subarray(14), ETHERTYPE_ARP);
  t.equal(inp.receive(arp, 0, arp.length, 0).kind, 'arp');
});
