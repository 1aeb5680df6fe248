import t from 'tap';
import { checksum } from '../../servers/wire/checksum.js';
import {
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  Ipv4Repr,
  Ipv4View,
  ipv4Format,
  ipv4IsLoopback,
  ipv4IsMulticast,
  ipv4Mask,
  ipv4Parse,
  ipv4SameNet,
} from '../../servers/wire/ipv4.js';
import { ICMP_PORT_UNREACH, IP_A, IP_B, PING_REQUEST, TCP_SYN, UDP_DNS, hex, inShared, mulberry32, toHex } from './fixtures/helpers.js';

t.test('address helpers', async (t) => {
  t.equal(ipv4Parse('10.9.0.1'), IP_A);
  t.equal(ipv4Parse('255.255.255.255'), 0xffffffff);
  t.equal(ipv4Parse('0.0.0.0'), 0);
  t.equal(ipv4Format(IP_B), '10.9.0.2');
  t.equal(ipv4Format(0xc0a800c7), '192.168.0.199');
  t.equal(ipv4Format(0xffffffff), '255.255.255.255');
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '1.2.3.-4', ' 1.2.3.4', '1..3.4', '1.2.3.4444', 'a.b.c.d']) {
    t.equal(ipv4Parse(bad), null, `reject ${JSON.stringify(bad)}`);
  }
  const rng = mulberry32(4);
  let bad = 0;
  for (let k = 0; k < 1000; k++) {
    const a = rng();
    if (ipv4Parse(ipv4Format(a)) !== a) bad++;
  }
  t.equal(bad, 0, 'format/parse round trip');
  t.ok(ipv4IsMulticast(ipv4Parse('224.0.0.251')!));
  t.notOk(ipv4IsMulticast(IP_A));
  t.ok(ipv4IsLoopback(ipv4Parse('127.0.0.1')!));
  t.equal(ipv4Mask(24), 0xffffff00);
  t.equal(ipv4Mask(0), 0);
  t.equal(ipv4Mask(32), 0xffffffff);
  t.ok(ipv4SameNet(IP_A, IP_B, 24));
  t.notOk(ipv4SameNet(IP_A, ipv4Parse('10.9.1.1')!, 24));
});

t.test('deconstruct captured packets', async (t) => {
  const v = new Ipv4View();
  const r = new Ipv4Repr();
  t.equal(v.reset(TCP_SYN, 14, TCP_SYN.length - 14), null);
  t.equal(r.parse(v), null);
  t.same(
    { ...r },
    {
      src: IP_A, dst: IP_B, protocol: IPPROTO_TCP, payloadLen: 40, ttl: 64, dscp: 0, ecn: 0, ident: 0x982b,
      dontFrag: true, moreFrags: false, fragOffset: 0, headerLen: 20,
    },
  );
  t.equal(v.version, 4);
  t.equal(v.checksum, 0x8e7c);
  t.equal(v.totalLen, 60);
  t.equal(v.payloadOff, 34);
  t.equal(v.payloadLen, 40);
  t.equal(v.optionsLen, 0);
  t.notOk(v.isFragment);
  t.ok(v.verifyChecksum());

  t.equal(v.reset(ICMP_PORT_UNREACH, 14, ICMP_PORT_UNREACH.length - 14), null);
  t.equal(r.parse(v), null);
  t.equal(r.dscp, 0x30, 'TOS 0xc0 = DSCP CS6 (network control)');
  t.equal(r.ecn, 0);
  t.equal(r.dontFrag, false);
  t.equal(r.protocol, IPPROTO_ICMP);
  t.equal(r.src, IP_B);

  t.equal(v.reset(UDP_DNS, 14, UDP_DNS.length - 14), null);
  t.equal(r.parse(v), null);
  t.equal(r.protocol, IPPROTO_UDP);
  t.equal(r.payloadLen, 37);
});

t.test('construct: emit equals the captured header', async (t) => {
  const r = new Ipv4Repr();
  Object.assign(r, { src: IP_A, dst: IP_B, protocol: IPPROTO_TCP, payloadLen: 40, ttl: 64, ident: 0x982b, dontFrag: true });
  t.equal(r.bufferLen(), 20);
  t.equal(r.totalLen(), 60);
  for (const at of [0, 1, 2, 3]) {
    const out = inShared(new Uint8Array(24).fill(0xaa), at);
    t.equal(r.emit(out, 2), 20);
    t.equal(toHex(out, 2, 20), toHex(TCP_SYN, 14, 20), `at ${at}`);
  }
  const icmpErr = new Ipv4Repr();
  Object.assign(icmpErr, { src: IP_B, dst: IP_A, protocol: IPPROTO_ICMP, payloadLen: 65, ttl: 64, ident: 0x59f5, dscp: 0x30 });
  const out = new Uint8Array(20);
  icmpErr.emit(out, 0);
  t.equal(toHex(out), toHex(ICMP_PORT_UNREACH, 14, 20));
  // Without a checksum, then filled through the view.
  icmpErr.emit(out, 0, false);
  t.equal(out[10] | out[11], 0);
  const v = new Ipv4View().bind(out, 0, 20);
  v.fillChecksum();
  t.equal(toHex(out), toHex(ICMP_PORT_UNREACH, 14, 20));
  t.throws(() => r.emit(new Uint8Array(19), 0), RangeError);
  r.payloadLen = 65516;
  t.throws(() => r.emit(new Uint8Array(20), 0), RangeError);
});

t.test('view setters round trip', async (t) => {
  const b = new Uint8Array(24);
  const v = new Ipv4View().bind(b, 0, 24);
  v.headerLen = 24;
  v.dscp = 46;
  v.ecn = 2;
  v.totalLen = 24;
  v.ident = 0xbeef;
  v.dontFrag = true;
  v.moreFrags = true;
  v.fragOffset = 1480;
  v.ttl = 3;
  v.protocol = IPPROTO_UDP;
  v.src = 0xc0000201;
  v.dst = 0xc0000202;
  v.fillChecksum();
  t.equal(Ipv4View.check(b, 0, 24), null);
  const r = new Ipv4Repr();
  t.equal(r.parse(v), null);
  t.same(
    { ...r },
    {
      src: 0xc0000201, dst: 0xc0000202, protocol: 17, payloadLen: 0, ttl: 3, dscp: 46, ecn: 2, ident: 0xbeef,
      dontFrag: true, moreFrags: true, fragOffset: 1480, headerLen: 24,
    },
  );
  t.ok(v.isFragment);
  t.equal(v.optionsLen, 4);
  v.dontFrag = false;
  v.moreFrags = false;
  t.equal(v.fragOffset, 1480, 'flag setters keep the offset');
  v.fragOffset = 0;
  t.notOk(v.isFragment);
  t.equal(v.dscp, 46);
  t.equal(v.ecn, 2);
});

t.test('options are skipped by IHL', async (t) => {
  // The SYN's header with a 4-byte Router Alert option (94 04 0000): IHL 6, total 64.
  const ip = hex('4600 0040 982b 4000 4006 0000 0a090001 0a090002 94040000');
  const pkt = new Uint8Array(64);
  pkt.set(ip);
  pkt.set(TCP_SYN.subarray(34), 24);
  const v = new Ipv4View();
  t.equal(v.reset(pkt, 0, 64), null);
  v.fillChecksum();
  const r = new Ipv4Repr();
  t.equal(r.parse(v), null);
  t.equal(r.headerLen, 24);
  t.equal(r.payloadLen, 40);
  t.equal(v.payloadOff, 24);
  t.equal(toHex(pkt, v.payloadOff, 4), 'a8fe1f90');
});

t.test('TTL decrement patches the checksum like a recomputation', async (t) => {
  const b = TCP_SYN.slice(14, 34);
  const v = new Ipv4View();
  t.equal(v.reset(b, 0, 20), 'truncated', 'total length 60 > 20 bytes');
  v.bind(b, 0, 20);
  for (let ttl = 64; ttl > 0; ttl--) {
    t.equal(v.decrementTtl(), ttl - 1);
    const inc = v.checksum;
    v.fillChecksum();
    if (inc !== v.checksum) t.fail(`ttl ${ttl - 1}: ${inc} != ${v.checksum}`);
    t.equal(checksum(b, 0, 20), 0);
  }
  t.equal(v.decrementTtl(), 0, 'stays at 0');
  t.equal(v.ttl, 0);
});

t.test('truncated at every length', async (t) => {
  const v = new Ipv4View();
  for (const pkt of [PING_REQUEST, TCP_SYN, UDP_DNS, ICMP_PORT_UNREACH]) {
    const n = pkt.length - 14;
    for (let len = 0; len < n; len++) {
      let e: string | null = 'none';
      t.doesNotThrow(() => {
        e = v.reset(pkt, 14, len);
      });
      if (e !== 'truncated') t.fail(`len ${len}: ${e}`);
    }
  }
  t.equal(v.len, 0);
});

t.test('malformed headers', async (t) => {
  const base = TCP_SYN.slice(14);
  const v = new Ipv4View();
  const r = new Ipv4Repr();
  const mut = (f: (b: Uint8Array) => void): Uint8Array => {
    const b = base.slice();
    f(b);
    return b;
  };
  t.equal(v.reset(mut((b) => (b[0] = 0x65)), 0, 60), 'bad-version', 'version 6');
  t.equal(v.reset(mut((b) => (b[0] = 0x05)), 0, 60), 'bad-version', 'version 0');
  for (let ihl = 0; ihl < 5; ihl++) t.equal(v.reset(mut((b) => (b[0] = 0x40 | ihl)), 0, 60), 'bad-ihl', `ihl ${ihl}`);
  t.equal(v.reset(mut((b) => (b[0] = 0x4f)), 0, 60), null, 'ihl 15 fits in total length 60');
  t.equal(v.reset(mut((b) => ((b[0] = 0x4f), (b[3] = 56))), 0, 60), 'bad-length', 'ihl 15 > total length 56');
  t.equal(v.reset(mut((b) => (b[3] = 19)), 0, 60), 'bad-length', 'total length 19 < 20');
  t.equal(v.reset(mut((b) => (b[3] = 0)), 0, 60), 'bad-length', 'total length 0');
  t.equal(v.reset(mut((b) => (b[3] = 61)), 0, 60), 'truncated', 'total length > buffer');
  t.equal(v.reset(mut((b) => ((b[2] = 0xff), (b[3] = 0xff))), 0, 60), 'truncated', 'total length 65535 > buffer');
  // Trailing bytes (Ethernet padding) are excluded from the view.
  const padded = new Uint8Array(70);
  padded.set(base);
  t.equal(v.reset(padded, 0, 70), null);
  t.equal(v.len, 60);
  t.equal(v.payloadLen, 40);
  // Checksum errors are reported by the repr, and can be skipped (offload).
  t.equal(v.reset(mut((b) => (b[11] ^= 1)), 0, 60), null);
  t.equal(r.parse(v), 'bad-checksum');
  t.equal(r.parse(v, false), null);
});
