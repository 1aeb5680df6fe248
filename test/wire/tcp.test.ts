import t from 'tap';
import {
  TCP_ACK,
  TCP_FIN,
  TCP_NS,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TcpRepr,
  TcpView,
  tcpFlagsString,
} from '../../servers/wire/tcp.js';
import type { WireError } from '../../servers/wire/errors.js';
import { IP_A, IP_B, TCP_DATA, TCP_FIN_ACK, TCP_SYN_ACK, hex, inShared, toHex } from './fixtures/helpers.js';
import { TCP_SYN as SYN_FRAME } from './fixtures/helpers.js';

const OFF = 34;

function parse(frame: Uint8Array, src: number, dst: number): TcpRepr {
  const v = new TcpView();
  const r = new TcpRepr();
  const e = v.reset(frame, OFF, frame.length - OFF) ?? r.parse(v, src, dst);
  if (e !== null) throw new Error(e);
  return r;
}

/** A segment A -> B with the SYN's fixed header and the given option bytes, checksum filled. */
function withOptions(optHex: string, payload = ''): Uint8Array {
  const opts = hex(optHex);
  const data = hex(payload);
  const b = new Uint8Array(20 + opts.length + data.length);
  b.set(SYN_FRAME.subarray(OFF, OFF + 20));
  b.set(opts, 20);
  b.set(data, 20 + opts.length);
  const v = new TcpView().bind(b, 0, b.length);
  v.headerLen = 20 + opts.length;
  v.fillChecksum(IP_A, IP_B);
  return b;
}

function parseOpts(optHex: string): TcpRepr | WireError {
  const b = withOptions(optHex);
  const v = new TcpView();
  const r = new TcpRepr();
  return v.reset(b, 0, b.length) ?? r.parse(v, IP_A, IP_B) ?? r;
}

t.test('deconstruct the captured Linux SYN', async (t) => {
  const v = new TcpView();
  t.equal(v.reset(SYN_FRAME, OFF, 40), null);
  t.equal(v.headerLen, 40);
  t.equal(v.payloadLen, 0);
  t.equal(v.segmentLen, 1, 'SYN occupies one sequence number');
  t.equal(v.checksum, 0x0ecc);
  t.ok(v.verifyChecksum(IP_A, IP_B));
  t.ok(v.hasFlags(TCP_SYN));
  t.notOk(v.hasFlags(TCP_ACK));
  const r = parse(SYN_FRAME, IP_A, IP_B);
  t.same(
    {
      srcPort: r.srcPort, dstPort: r.dstPort, seqNum: r.seqNum, ackNum: r.ackNum, flags: r.flags,
      window: r.window, urgent: r.urgent, mss: r.mss, wscale: r.wscale, sackPermitted: r.sackPermitted,
      sackCount: r.sackCount, tsPresent: r.tsPresent, tsVal: r.tsVal, tsEcr: r.tsEcr, payloadLen: r.payloadLen,
    },
    {
      srcPort: 43262, dstPort: 8080, seqNum: 0xcadfa7ad, ackNum: 0, flags: TCP_SYN, window: 64240, urgent: 0,
      mss: 1460, wscale: 10, sackPermitted: true, sackCount: 0, tsPresent: true, tsVal: 0x07cde742, tsEcr: 0,
      payloadLen: 0,
    },
  );
  t.equal(tcpFlagsString(r.flags), 'S');
});

t.test('deconstruct SYN-ACK, data and FIN-ACK', async (t) => {
  const sa = parse(TCP_SYN_ACK, IP_B, IP_A);
  t.equal(sa.flags, TCP_SYN | TCP_ACK);
  t.equal(tcpFlagsString(sa.flags), 'S.');
  t.equal(sa.ackNum, 0xcadfa7ae, 'acks ISN + 1');
  t.equal(sa.window, 65160);
  t.same([sa.mss, sa.wscale, sa.sackPermitted, sa.tsVal, sa.tsEcr], [1460, 10, true, 0x3a72ae5d, 0x07cde742]);
  const d = parse(TCP_DATA, IP_A, IP_B);
  t.equal(tcpFlagsString(d.flags), 'P.');
  t.same([d.mss, d.wscale, d.sackPermitted, d.tsPresent, d.tsVal, d.tsEcr], [0, -1, false, true, 0x07cde743, 0x3a72ae5d]);
  t.equal(d.window, 63);
  t.equal(d.payloadLen, 5);
  t.equal(Buffer.from(TCP_DATA.subarray(d.payloadOff, d.payloadOff + d.payloadLen)).toString(), 'ping\n');
  const f = parse(TCP_FIN_ACK, IP_B, IP_A);
  t.equal(tcpFlagsString(f.flags), 'F.');
  const v = new TcpView();
  v.reset(TCP_FIN_ACK, OFF, TCP_FIN_ACK.length - OFF);
  t.equal(v.segmentLen, 1);
});

t.test('construct: emit reproduces every captured segment', async (t) => {
  for (const [name, frame, src, dst] of [
    ['syn', SYN_FRAME, IP_A, IP_B],
    ['syn-ack', TCP_SYN_ACK, IP_B, IP_A],
    ['data', TCP_DATA, IP_A, IP_B],
    ['fin-ack', TCP_FIN_ACK, IP_B, IP_A],
  ] as const) {
    const r = parse(frame, src, dst);
    const seg = frame.subarray(OFF);
    for (const at of [0, 1, 2, 3]) {
      const out = inShared(new Uint8Array(seg.length + 4).fill(0xcc), at);
      const hl = r.headerLen();
      out.set(seg.subarray(hl), 2 + hl); // payload in place, then the header
      t.equal(r.emit(out, 2, src, dst), hl);
      if (toHex(out, 2, seg.length) !== toHex(seg)) t.fail(`${name} at ${at}: ${toHex(out, 2, seg.length)}`);
    }
    t.equal(r.bufferLen(), seg.length, name);
  }
  // Built from scratch, field by field: the SYN.
  const r = new TcpRepr();
  Object.assign(r, {
    srcPort: 43262, dstPort: 8080, seqNum: 0xcadfa7ad, flags: TCP_SYN, window: 64240,
    mss: 1460, sackPermitted: true, tsPresent: true, tsVal: 0x07cde742, wscale: 10,
  });
  const out = new Uint8Array(40);
  r.emit(out, 0, IP_A, IP_B);
  t.equal(toHex(out), toHex(SYN_FRAME, OFF));
  t.throws(() => r.emit(new Uint8Array(39), 0, IP_A, IP_B), RangeError);
});

t.test('option layouts on emit (Linux order, 4-aligned)', async (t) => {
  const r = new TcpRepr();
  const emitOpts = (): string => {
    const b = new Uint8Array(r.headerLen());
    r.emit(b, 0, IP_A, IP_B);
    return toHex(b, 20);
  };
  t.equal(emitOpts(), '', 'no options');
  r.sackPermitted = true;
  t.equal(emitOpts(), '01010402', 'SACK-permitted without timestamps');
  r.sackPermitted = false;
  r.tsPresent = true;
  r.tsVal = 1;
  r.tsEcr = 2;
  t.equal(emitOpts(), '0101080a0000000100000002', 'timestamps alone');
  r.addSack(0x100, 0x200);
  r.addSack(0x300, 0x400);
  t.equal(emitOpts(), '0101080a00000001000000020101051200000100000002000000030000000400', 'TS + 2 SACK blocks');
  r.addSack(0x500, 0x600);
  r.addSack(0x700, 0x800);
  t.notOk(r.addSack(1, 2), 'at most four blocks');
  t.equal(r.sackBlocksToEmit(), 3, 'TS leaves room for 3 blocks');
  t.equal(r.optionsLen(), 40);
  r.tsPresent = false;
  t.equal(r.sackBlocksToEmit(), 4);
  t.equal(r.optionsLen(), 36);
  t.equal(
    emitOpts(),
    '01010522' + '0000010000000200' + '0000030000000400' + '0000050000000600' + '0000070000000800',
    'four blocks without TS',
  );
  r.mss = 1400;
  r.wscale = 7;
  r.tsPresent = true;
  t.equal(r.sackBlocksToEmit(), 2, 'MSS + TS + WS leave room for 2 blocks');
  t.equal(r.optionsLen(), 40);
  r.wscale = 20;
  r.sackCount = 0;
  t.equal(emitOpts(), '02040578' + '0101080a0000000100000002' + '0103030e', 'window scale clamped to 14');
});

t.test('SACK blocks round trip through parse', async (t) => {
  const r = new TcpRepr();
  Object.assign(r, { srcPort: 1, dstPort: 2, seqNum: 0xfffffff0, ackNum: 7, flags: TCP_ACK, window: 512, tsPresent: true, tsVal: 9, tsEcr: 8 });
  r.addSack(0xfffffff0, 0x10);
  r.addSack(0x20, 0x30);
  r.addSack(0x40, 0x50);
  const b = new Uint8Array(r.bufferLen());
  r.emit(b, 0, IP_A, IP_B);
  const p = parseOpts(toHex(b, 20));
  if (typeof p === 'string') throw new Error(p);
  t.equal(p.sackCount, 3);
  t.same(Array.from(p.sackBlocks.subarray(0, 6)), [0xfffffff0, 0x10, 0x20, 0x30, 0x40, 0x50]);
  t.same([p.tsVal, p.tsEcr], [9, 8]);
  const four = parseOpts('0101' + '0522' + '00000001000000020000000300000004000000050000000600000007' + '00000008' + '0000');
  if (typeof four === 'string') throw new Error(four);
  t.equal(four.sackCount, 4);
  t.equal(four.sackBlocks[7], 8);
});

t.test('option parsing: NOP, EOL, unknown kinds, duplicates, clamping', async (t) => {
  const u = parseOpts('020405b4 220a0102030405060708 0101 1312' + '00'.repeat(16) + '0000');
  if (typeof u === 'string') throw new Error(u);
  t.equal(u.mss, 1460, 'TFO cookie (34) and MD5 (19) skipped by length');
  const eol = parseOpts('020405b4 00 ff ff ff');
  if (typeof eol === 'string') throw new Error(eol);
  t.equal(eol.mss, 1460, 'bytes after EOL are padding, not parsed');
  const dup = parseOpts('020405b4 02040578');
  if (typeof dup === 'string') throw new Error(dup);
  t.equal(dup.mss, 1400, 'a repeated option overwrites');
  const ws = parseOpts('0103030f');
  if (typeof ws === 'string') throw new Error(ws);
  t.equal(ws.wscale, 14, 'shift 15 is used as 14 (RFC 7323)');
  const nops = parseOpts('01010101');
  if (typeof nops === 'string') throw new Error(nops);
  t.same([nops.mss, nops.wscale, nops.sackPermitted, nops.tsPresent, nops.sackCount], [0, -1, false, false, 0]);
});

t.test('malformed options are rejected', async (t) => {
  const cases: Array<[string, string]> = [
    ['05000000', 'length 0'],
    ['05010000', 'length 1'],
    ['fe00 0000', 'unknown kind with length 0'],
        ['010101 08', 'kind as the last byte'],
    ['020805b4', 'length overruns the options'],
    ['0101 fe07 0000', 'unknown kind overruns'],
    ['020305 00', 'MSS length 3'],
    ['02050000 00000000', 'MSS length 5'],
    ['03040a00', 'window scale length 4'],
    ['04030000', 'SACK-permitted length 3'],
    ['0101 0809 0000000000000000 00', 'timestamps length 9'],
    ['0101 050b 0000000000000000 00', 'SACK length 11'],
    ['0101 0509 0000000000000000 00', 'SACK length 9'],
    ['0101 0502', 'SACK with no blocks'],
  ];
  for (const [opts, what] of cases) {
    const b = hex(opts);
    const padded = b.length % 4 === 0 ? opts : opts + '00'.repeat(4 - (b.length % 4));
    t.equal(parseOpts(padded), 'bad-option', what);
  }
});

t.test('truncated at every length', async (t) => {
  const v = new TcpView();
  const r = new TcpRepr();
  for (const frame of [SYN_FRAME, TCP_DATA]) {
    const n = frame.length - OFF;
    for (let len = 0; len < n; len++) {
      let e: WireError | null = null;
      let eNoSum: WireError | null = null;
      t.doesNotThrow(() => {
        e = v.reset(frame, OFF, len) ?? r.parse(v, IP_A, IP_B);
        eNoSum = v.reset(frame, OFF, len) ?? r.parse(v, IP_A, IP_B, false);
      });
      if (e === null) t.fail(`len ${len} accepted`);
      const hl = (frame[OFF + 12] >>> 4) * 4;
      if (len < hl && eNoSum !== 'truncated') t.fail(`len ${len} < header ${hl}: ${eNoSum}`);
    }
  }
});

t.test('malformed headers', async (t) => {
  const v = new TcpView();
  const r = new TcpRepr();
  for (let doff = 0; doff < 5; doff++) {
    const b = SYN_FRAME.slice(OFF);
    b[12] = doff << 4;
    t.equal(v.reset(b, 0, b.length), 'bad-data-offset', `data offset ${doff}`);
  }
  const b = SYN_FRAME.slice(OFF);
  b[12] = 0xf0; // 60-byte header in a 40-byte segment
  t.equal(v.reset(b, 0, b.length), 'truncated', 'data offset past the segment');
  const flipped = TCP_DATA.slice(OFF);
  flipped[flipped.length - 1] ^= 0x20;
  t.equal(v.reset(flipped, 0, flipped.length), null);
  t.equal(r.parse(v, IP_A, IP_B), 'bad-checksum');
  t.equal(r.parse(v, IP_A, IP_B, false), null);
  t.equal(v.reset(TCP_DATA, OFF, TCP_DATA.length - OFF), null);
  t.equal(r.parse(v, IP_A, 0x0a090003), 'bad-checksum', 'pseudo-header covers the addresses');
});

t.test('view setters', async (t) => {
  const b = new Uint8Array(24);
  const v = new TcpView().bind(b, 0, 24);
  v.srcPort = 0xabcd;
  v.dstPort = 80;
  v.seqNum = 0xfedcba98;
  v.ackNum = 0x01234567;
  v.headerLen = 24;
  v.flags = TCP_NS | TCP_RST | TCP_ACK;
  v.window = 0xffff;
  v.urgent = 3;
  b.set([1, 1, 1, 0], 20);
  v.fillChecksum(IP_A, IP_B);
  t.equal(TcpView.check(b, 0, 24), null);
  t.ok(v.verifyChecksum(IP_A, IP_B));
  t.equal(v.headerLen, 24);
  t.equal(v.flags, TCP_NS | TCP_RST | TCP_ACK);
  t.equal(tcpFlagsString(v.flags), 'R.N');
  v.headerLen = 20;
  t.equal(v.flags & TCP_NS, TCP_NS, 'header length setter keeps NS');
  v.flags = TCP_FIN | TCP_PSH;
  t.equal(v.headerLen, 20, 'flags setter keeps the data offset');
  t.same([v.srcPort, v.dstPort, v.seqNum, v.ackNum, v.window, v.urgent], [0xabcd, 80, 0xfedcba98, 0x01234567, 0xffff, 3]);
  t.equal(tcpFlagsString(0), 'none');
});
