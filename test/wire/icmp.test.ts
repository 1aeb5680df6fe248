import t from 'tap';
import {
  ICMP_DST_UNREACHABLE,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_ERROR_MAX_QUOTE,
  ICMP_TIME_EXCEEDED,
  ICMP_TIMXCEED_TTL,
  ICMP_UNREACH_FRAG_NEEDED,
  ICMP_UNREACH_PORT,
  IcmpRepr,
  IcmpView,
  icmpErrorQuoteLen,
} from '../../servers/wire/icmp.js';
import { IPPROTO_ICMP, IPPROTO_UDP, Ipv4Repr } from '../../servers/wire/ipv4.js';
import { checksum } from '../../servers/wire/checksum.js';
import { ICMP_PORT_UNREACH, IP_A, IP_B, PING_REPLY, PING_REQUEST, TCP_SYN, UDP_DNS, inShared, toHex } from './fixtures/helpers.js';

const PING_OFF = 34;
const PING_LEN = 16;
const UNREACH_LEN = ICMP_PORT_UNREACH.length - 34;

t.test('deconstruct captured echo request and reply', async (t) => {
  const v = new IcmpView();
  const r = new IcmpRepr();
  t.equal(v.reset(PING_REQUEST, PING_OFF, PING_LEN), null);
  t.equal(r.parse(v), null);
  t.equal(r.type, ICMP_ECHO_REQUEST);
  t.equal(r.code, 0);
  t.equal(r.ident, 0x0ff2);
  t.equal(r.seq, 1);
  t.equal(r.dataOff, PING_OFF + 8);
  t.equal(r.dataLen, 8);
  t.equal(toHex(PING_REQUEST, r.dataOff, r.dataLen), '6b6e000000000000');
  t.equal(v.checksum, 0x7c9e);
  t.equal(v.reset(PING_REPLY, PING_OFF, PING_LEN), null);
  t.equal(r.parse(v), null);
  t.equal(r.type, ICMP_ECHO_REPLY);
  t.equal(r.ident, 0x0ff2);
  t.equal(r.seq, 1);
});

t.test('deconstruct captured port unreachable', async (t) => {
  const v = new IcmpView();
  const r = new IcmpRepr();
  t.equal(v.reset(ICMP_PORT_UNREACH, 34, UNREACH_LEN), null);
  t.equal(r.parse(v), null);
  t.equal(r.type, ICMP_DST_UNREACHABLE);
  t.equal(r.code, ICMP_UNREACH_PORT);
  t.equal(r.mtu, 0);
  t.equal(r.innerHeaderLen, 20);
  t.equal(r.innerProtocol, IPPROTO_UDP);
  t.equal(r.innerSrc, IP_A);
  t.equal(r.innerDst, IP_B);
  t.equal(r.innerSrcPort, 0xe17b);
  t.equal(r.innerDstPort, 53);
  t.equal(toHex(ICMP_PORT_UNREACH, r.dataOff, r.dataLen), toHex(UDP_DNS, 14), 'quotes the whole datagram');
});

t.test('construct: echo reply from a request, in place (as a server answers a ping)', async (t) => {
  const frame = inShared(PING_REQUEST, 1);
  const v = new IcmpView();
  const r = new IcmpRepr();
  t.equal(v.reset(frame, PING_OFF, PING_LEN), null);
  t.equal(r.parse(v), null);
  r.type = ICMP_ECHO_REPLY;
  t.equal(r.bufferLen(), 16);
  t.equal(r.emit(frame, PING_OFF), 8);
  t.equal(toHex(frame, PING_OFF), toHex(PING_REPLY, PING_OFF));
  // The same through the view's setters.
  const b = PING_REQUEST.slice();
  const w = IcmpView.checked(b, PING_OFF);
  if (typeof w === 'string') throw new Error(w);
  w.type = ICMP_ECHO_REPLY;
  w.fillChecksum();
  t.equal(toHex(b, PING_OFF), toHex(PING_REPLY, PING_OFF));
  t.ok(w.verifyChecksum());
});

t.test('construct: port unreachable quoting the offending datagram', async (t) => {
  const quote = icmpErrorQuoteLen(UDP_DNS.length - 14);
  t.equal(quote, 57);
  const out = new Uint8Array(34 + 8 + quote);
  out.set(UDP_DNS.subarray(14, 14 + quote), 42); // caller copies the quote first
  const r = new IcmpRepr();
  r.type = ICMP_DST_UNREACHABLE;
  r.code = ICMP_UNREACH_PORT;
  r.dataLen = quote;
  t.equal(r.emit(out, 34), 8);
  const ip = new Ipv4Repr();
  Object.assign(ip, { src: IP_B, dst: IP_A, protocol: IPPROTO_ICMP, payloadLen: r.bufferLen(), ident: 0x59f5, dscp: 0x30 });
  ip.emit(out, 14);
  out.set(ICMP_PORT_UNREACH.subarray(0, 14));
  t.equal(toHex(out), toHex(ICMP_PORT_UNREACH));
  t.equal(icmpErrorQuoteLen(1500), ICMP_ERROR_MAX_QUOTE);
  t.equal(ICMP_ERROR_MAX_QUOTE, 548);
});

t.test('construct and parse: time exceeded and fragmentation needed', async (t) => {
  // TTL exceeded for the captured SYN: quote header + 8 bytes (the RFC 792 minimum).
  const quoted = TCP_SYN.subarray(14, 14 + 28);
  const b = new Uint8Array(8 + 28);
  b.set(quoted, 8);
  const r = new IcmpRepr();
  r.type = ICMP_TIME_EXCEEDED;
  r.code = ICMP_TIMXCEED_TTL;
  r.dataLen = 28;
  r.emit(b, 0);
  t.equal(toHex(b, 0, 2), '0b00');
  t.equal(toHex(b, 4, 4), '00000000');
  t.equal(checksum(b, 0, 36), 0);
  const v = new IcmpView();
  const p = new IcmpRepr();
  t.equal(v.reset(b, 0, b.length), null);
  t.equal(p.parse(v), null);
  t.same(
    [p.type, p.code, p.innerProtocol, p.innerSrc, p.innerDst, p.innerSrcPort, p.innerDstPort],
    [ICMP_TIME_EXCEEDED, 0, 6, IP_A, IP_B, 43262, 8080],
  );
  // Fragmentation needed carries the next-hop MTU.
  r.type = ICMP_DST_UNREACHABLE;
  r.code = ICMP_UNREACH_FRAG_NEEDED;
  r.mtu = 1400;
  r.emit(b, 0);
  t.equal(toHex(b, 4, 4), '00000578');
  t.equal(v.reset(b, 0, b.length), null);
  t.equal(p.parse(v), null);
  t.equal(p.mtu, 1400);
  t.equal(v.mtu, 1400);
});

t.test('truncated at every length', async (t) => {
  const v = new IcmpView();
  const r = new IcmpRepr();
  for (const [pkt, off, n] of [
    [PING_REQUEST, PING_OFF, PING_LEN],
    [ICMP_PORT_UNREACH, 34, UNREACH_LEN],
  ] as const) {
    for (let len = 0; len < n; len++) {
      let e: string | null = null;
      t.doesNotThrow(() => {
        e = v.reset(pkt, off, len) ?? r.parse(v);
      });
      // ICMP has no length field: a cut message is caught by the checksum, which cannot notice
      // dropped trailing zero bytes (the captured echo data ends in six of them).
      const droppedNonZero = pkt.subarray(off + len, off + n).some((x) => x !== 0);
      if ((e === null) === droppedNonZero) t.fail(`len ${len}: ${e}`);
      if (len < 8 && e !== 'truncated') t.fail(`len ${len}: ${e}`);
    }
  }
  // Without checksum verification, a cut error message fails on its quote.
  for (let len = 8; len < 8 + 28; len++) {
    t.equal(v.reset(ICMP_PORT_UNREACH, 34, len), null);
    t.equal(r.parse(v, false), 'truncated', `quote of ${len - 8} bytes`);
  }
});

t.test('malformed', async (t) => {
  const v = new IcmpView();
  const r = new IcmpRepr();
  const mut = (f: (b: Uint8Array) => void): Uint8Array => {
    const b = ICMP_PORT_UNREACH.slice(34);
    f(b);
    new IcmpView().bind(b, 0, b.length).fillChecksum();
    return b;
  };
  const check = (b: Uint8Array): string | null => v.reset(b, 0, b.length) ?? r.parse(v);
  t.equal(check(mut(() => {})), null);
  t.equal(check(mut((b) => (b[8] = 0x65))), 'bad-version', 'quoted IPv6-ish header');
  t.equal(check(mut((b) => (b[8] = 0x44))), 'bad-ihl', 'quoted IHL 4');
  t.equal(check(mut((b) => (b[8] = 0x4f))), 'truncated', 'quoted IHL 15 leaves < 8 bytes');
  t.equal(check(mut((b) => (b[1] = 16))), 'bad-code', 'unreachable code 16');
  t.equal(check(mut((b) => ((b[0] = ICMP_TIME_EXCEEDED), (b[1] = 2)))), 'bad-code');
  t.equal(check(mut((b) => (b[0] = 13))), 'unsupported', 'timestamp request');
  t.equal(check(mut((b) => (b[0] = 5))), 'unsupported', 'redirect');
  const bad = ICMP_PORT_UNREACH.slice(34);
  bad[20] ^= 0x40;
  t.equal(check(bad), 'bad-checksum');
  t.equal(v.reset(bad, 0, bad.length), null);
  t.equal(r.parse(v, false), null, 'checksum check can be skipped');
});
