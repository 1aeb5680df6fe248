import t from 'tap';
import { UDP_HEADER_LEN, UdpRepr, UdpView } from '../../servers/wire/udp.js';
import { IP_A, IP_B, UDP_DNS, hex, inShared, toHex } from './fixtures/helpers.js';

const OFF = 34;
const N = UDP_DNS.length - OFF; // 37

t.test('deconstruct the captured DNS query', async (t) => {
  const v = new UdpView();
  const r = new UdpRepr();
  t.equal(v.reset(UDP_DNS, OFF, N), null);
  t.equal(r.parse(v, IP_A, IP_B), null);
  t.same(
    { ...r },
    { srcPort: 57723, dstPort: 53, payloadLen: 29, payloadOff: OFF + 8, hadChecksum: true },
  );
  t.equal(v.length, 37);
  t.equal(v.checksum, 0x283d);
  t.ok(v.verifyChecksum(IP_A, IP_B));
  t.notOk(v.verifyChecksum(IP_B, 0x0a090003), 'pseudo-header matters');
  t.equal(toHex(UDP_DNS, r.payloadOff, 12), '123401000001000000000000');
});

t.test('construct: emit equals the captured bytes', async (t) => {
  for (const at of [0, 1, 2, 3]) {
    const out = inShared(new Uint8Array(N + 5), at);
    out.set(UDP_DNS.subarray(OFF + 8), 3 + 8); // payload first (zero-copy tx), then the header
    const r = new UdpRepr();
    r.srcPort = 57723;
    r.dstPort = 53;
    r.payloadLen = 29;
    t.equal(r.bufferLen(), 37);
    t.equal(r.emit(out, 3, IP_A, IP_B), UDP_HEADER_LEN);
    t.equal(toHex(out, 3, N), toHex(UDP_DNS, OFF), `at ${at}`);
  }
  const r = new UdpRepr();
  r.payloadLen = 29;
  t.throws(() => r.emit(new Uint8Array(36), 0, IP_A, IP_B), RangeError);
});

t.test('zero checksum means none; a computed zero is sent as 0xffff', async (t) => {
  const b = UDP_DNS.slice(OFF);
  const v = new UdpView();
  const r = new UdpRepr();
  b[6] = 0;
  b[7] = 0;
  t.equal(v.reset(b, 0, N), null);
  t.equal(r.parse(v, IP_A, IP_B), null, 'no checksum is accepted');
  t.equal(r.hadChecksum, false);
  // emit without a checksum writes 0.
  const c = new UdpRepr();
  c.srcPort = 1;
  c.dstPort = 2;
  c.payloadLen = 2;
  const d = new Uint8Array(10);
  c.emit(d, 0, IP_A, IP_B, false);
  t.equal(toHex(d), '0001000200 0a 0000 0000'.replace(/ /g, ''));
  // Choose the last payload word so that the computed checksum is 0.
  c.emit(d, 0, IP_A, IP_B);
  const cs = (d[6] << 8) | d[7];
  d[8] = cs >>> 8;
  d[9] = cs & 0xff;
  c.emit(d, 0, IP_A, IP_B);
  t.equal(toHex(d, 6, 2), 'ffff');
  t.equal(v.reset(d, 0, 10), null);
  t.ok(v.verifyChecksum(IP_A, IP_B));
  t.equal(r.parse(v, IP_A, IP_B), null);
  v.fillChecksum(IP_A, IP_B);
  t.equal(v.checksum, 0xffff, 'fillChecksum maps 0 to 0xffff too');
});

t.test('truncated at every length', async (t) => {
  const v = new UdpView();
  for (let len = 0; len < N; len++) {
    let e: string | null = null;
    t.doesNotThrow(() => {
      e = v.reset(UDP_DNS, OFF, len);
    });
    if (e !== 'truncated') t.fail(`len ${len}: ${e}`);
  }
});

t.test('malformed', async (t) => {
  const v = new UdpView();
  const r = new UdpRepr();
  const withLen = (n: number): Uint8Array => {
    const b = UDP_DNS.slice(OFF);
    b[4] = n >>> 8;
    b[5] = n & 0xff;
    return b;
  };
  for (let n = 0; n < 8; n++) t.equal(v.reset(withLen(n), 0, N), 'bad-length', `length ${n}`);
  t.equal(v.reset(withLen(38), 0, N), 'truncated', 'length > IP payload');
  t.equal(v.reset(withLen(0xffff), 0, N), 'truncated');
  // Length < IP payload: the datagram is trimmed to its length (then the checksum no longer fits).
  t.equal(v.reset(withLen(8), 0, N), null);
  t.equal(v.len, 8);
  t.equal(v.payloadLen, 0);
  t.equal(r.parse(v, IP_A, IP_B), 'bad-checksum');
  // Trailing bytes past the UDP length are ignored by the checksum.
  const padded = new Uint8Array(N + 9);
  padded.set(UDP_DNS.subarray(OFF));
  padded.fill(0x5a, N);
  t.equal(v.reset(padded, 0, padded.length), null);
  t.equal(r.parse(v, IP_A, IP_B), null);
  t.equal(r.payloadLen, 29);
  const flipped = UDP_DNS.slice(OFF);
  flipped[20] ^= 1;
  t.equal(v.reset(flipped, 0, N), null);
  t.equal(r.parse(v, IP_A, IP_B), 'bad-checksum');
  t.equal(r.parse(v, IP_A, IP_B, false), null, 'verification can be skipped (offload)');
  t.equal(v.reset(hex('0001000200080000'), 0, 8), null, 'empty datagram');
});
