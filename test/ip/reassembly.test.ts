import t, { type Test } from 'tap';
import { REASM_QUOTE_MAX, Reassembler, type ReassemblerOptions, type ReassemblyResult } from '../../servers/ip/reassembly.js';
import { IPPROTO_TCP, IPPROTO_UDP, Ipv4View } from '../../servers/wire/ipv4.js';
import { checksum } from '../../servers/wire/checksum.js';
import { mulberry32, randInt } from '../helpers/prng.js';
import { bytesOf, fragmentOf, hexOf, ipPacket, shuffle } from './helpers.js';

const S = 1_000_000;
const A = 0x0a090001;
const B = 0x0a090002;

const view = new Ipv4View();
function feed(r: Reassembler, frag: Uint8Array, now = 0): ReassemblyResult {
  const e = view.reset(frag, 0, frag.length);
  if (e !== null) throw new Error(`test built a bad fragment: ${e}`);
  return r.input(view, now);
}

function take(r: Reassembler): Uint8Array {
  const out = new Uint8Array(r.readyLen);
  const n = r.take(out, 0);
  if (n !== out.length) throw new Error('take length');
  return out;
}

function packet(len: number, seed = 1, extra: Partial<Parameters<typeof ipPacket>[0]> = {}): Uint8Array {
  return ipPacket({ src: A, dst: B, proto: IPPROTO_UDP, ident: 0x4242, payload: bytesOf(mulberry32(seed), len), ...extra });
}

/** Cut the payload of `pkt` at the given offsets (multiples of 8) into fragments. */
function cut(pkt: Uint8Array, cuts: number[]): Uint8Array[] {
  const hl = (pkt[0] & 0xf) * 4;
  const total = pkt.length - hl;
  const edges = [0, ...cuts, total];
  const out: Uint8Array[] = [];
  for (let i = 0; i + 1 < edges.length; i++) out.push(fragmentOf(pkt, edges[i], edges[i + 1] - edges[i], i + 2 < edges.length));
  return out;
}

function leakCheck(t: Test, r: Reassembler): void {
  t.equal(r.inProgress, 0, 'no datagram left');
  t.equal(r.chunksInUse, 0, 'no memory left');
}

t.test('in order, reverse order, and every datagram rebuilt byte for byte', async (t) => {
  const pkt = packet(3000);
  for (const order of ['forward', 'reverse'] as const) {
    const r = new Reassembler();
    const frags = cut(pkt, [1480, 2960]);
    if (order === 'reverse') frags.reverse();
    t.equal(feed(r, frags[0]), 'held');
    t.equal(feed(r, frags[1]), 'held');
    t.equal(feed(r, frags[2]), 'complete', order);
    t.equal(r.readyLen, pkt.length);
    t.equal(hexOf(take(r)), hexOf(pkt), `${order}: identical to the original`);
    t.equal(r.counters.get('reassembled'), 1);
    t.equal(r.take(new Uint8Array(10), 0), 0, 'nothing more to take');
    leakCheck(t, r);
  }
});

t.test('seeded random orders, sizes and cut points', async (t) => {
  const rand = mulberry32(0xfa9);
  const r = new Reassembler();
  let ok = 0;
  for (let k = 0; k < 300; k++) {
    const len = randInt(rand, 9, 20000);
    const pkt = packet(len, k);
    const cuts: number[] = [];
    for (let o = 8 * randInt(rand, 1, 200); o < len; o += 8 * randInt(rand, 1, 400)) cuts.push(o);
    if (cuts.length === 0) cuts.push(8);
    if (cuts[cuts.length - 1] >= len) continue;
    const frags = shuffle(rand, cut(pkt, cuts));
    let res: ReassemblyResult = 'held';
    for (let i = 0; i < frags.length; i++) {
      res = feed(r, frags[i]);
      if (i < frags.length - 1 && res !== 'held') t.fail(`early ${res} at ${i}/${frags.length}`);
    }
    if (res !== 'complete') {
      t.fail(`k=${k}: ${res} ${JSON.stringify(r.counters.nonZero())}`);
      continue;
    }
    if (hexOf(take(r)) === hexOf(pkt)) ok++;
  }
  t.ok(ok >= 290, `${ok} datagrams rebuilt`);
  t.equal(r.counters.drops(), 0);
  leakCheck(t, r);
});

t.test('interleaved datagrams keyed by (src, dst, proto, id)', async (t) => {
  const r = new Reassembler();
  const p1 = packet(2000, 1, { ident: 7 });
  const p2 = packet(2000, 2, { ident: 8 });
  const p3 = packet(2000, 3, { ident: 7, proto: IPPROTO_TCP });
  const p4 = packet(2000, 4, { ident: 7, src: 0x0a090003 });
  const f = [p1, p2, p3, p4].map((p) => cut(p, [1000]));
  for (const k of [0, 1, 2, 3]) t.equal(feed(r, f[k][1]), 'held');
  t.equal(r.inProgress, 4, 'four distinct keys');
  for (const k of [3, 2, 1, 0]) {
    t.equal(feed(r, f[k][0]), 'complete');
    t.equal(hexOf(take(r)), hexOf([p1, p2, p3, p4][k]));
  }
  leakCheck(t, r);
});

t.test('duplicates and identical overlaps are accepted; conflicting overlaps kill the datagram', async (t) => {
  const pkt = packet(4000);
  let r = new Reassembler();
  const [a, b, c] = cut(pkt, [1600, 3200]);
  t.equal(feed(r, a), 'held');
  t.equal(feed(r, a), 'held', 'exact duplicate');
  t.equal(r.counters.get('duplicate'), 1);
  t.equal(feed(r, fragmentOf(pkt, 800, 1600, true)), 'held', 'overlaps a and b with the same bytes');
  t.equal(r.counters.get('overlap-identical'), 1);
  t.equal(feed(r, fragmentOf(pkt, 8, 16, true)), 'held', 'inside received bytes: duplicate');
  t.equal(feed(r, c), 'held');
  t.equal(feed(r, b), 'complete');
  t.equal(hexOf(take(r)), hexOf(pkt));
  leakCheck(t, r);

  // Conflict: same range, one byte different.
  r = new Reassembler();
  t.equal(feed(r, a), 'held');
  const evil = fragmentOf(pkt, 1592, 16, true);
  evil[20 + 3] ^= 0xff; // a byte at offset 1595, which fragment a already delivered
  t.equal(feed(r, evil), 'dropped');
  t.equal(r.lastDrop, 'drop:overlap-conflict');
  t.equal(r.chunksInUse, 0, 'memory freed at once');
  t.equal(feed(r, b), 'dropped', 'the rest of the datagram is refused');
  t.equal(feed(r, c), 'dropped');
  t.equal(r.counters.get('drop:poisoned'), 2);
  t.equal(r.expire(30 * S - 1, new Uint8Array(600), 0), -1);
  t.equal(r.expire(30 * S, new Uint8Array(600), 0), 0, 'dead key expires without ICMP');
  t.equal(r.counters.get('timeout'), 0);
  // The same key can be used again afterwards.
  for (const f of [a, b]) t.equal(feed(r, f, 31 * S), 'held');
  t.equal(feed(r, c, 31 * S), 'complete');
  take(r);
  leakCheck(t, r);

  // A conflicting overlap with a later fragment (new data is the one that differs, at its start).
  r = new Reassembler();
  feed(r, b);
  const evil2 = fragmentOf(pkt, 1600, 1600, true);
  evil2[20 + 1599] ^= 1;
  t.equal(feed(r, evil2), 'dropped');
  t.equal(r.counters.get('drop:overlap-conflict'), 1);
  r.clear();
  leakCheck(t, r);
});

t.test('tiny and misaligned fragments are rejected', async (t) => {
  const r = new Reassembler();
  const udp = packet(100);
  const tcp = packet(100, 1, { proto: IPPROTO_TCP });
  const cases: [Uint8Array, string][] = [
    [fragmentOf(udp, 0, 12, true), 'drop:misaligned'],
    [fragmentOf(udp, 8, 20, true), 'drop:misaligned'],
    [fragmentOf(udp, 16, 0, true), 'drop:tiny'],
    [fragmentOf(tcp, 0, 16, true), 'drop:tiny'], // first fragment cannot hold the TCP header
    [fragmentOf(tcp, 8, 16, true), 'drop:tiny'], // RFC 1858: TCP fragment at offset 8
    [fragmentOf(tcp, 8, 92, false), 'drop:tiny'],
    [fragmentOf(udp, 0, 100, false), 'drop:not-fragment'],
  ];
  for (const [f, reason] of cases) {
    t.equal(feed(r, f), 'dropped', reason);
    t.equal(r.lastDrop, reason);
  }
  t.equal(feed(r, fragmentOf(udp, 0, 8, true)), 'held', 'an 8-byte UDP first fragment is fine');
  t.equal(feed(r, fragmentOf(tcp, 0, 24, true)), 'held', 'a TCP first fragment with the header');
  const strict = new Reassembler({ minFragmentPayload: 64 });
  t.equal(feed(strict, fragmentOf(udp, 0, 56, true)), 'dropped');
  t.equal(strict.lastDrop, 'drop:tiny');
  r.clear();
  leakCheck(t, r);
});

t.test('timeout: time exceeded quote only when fragment zero arrived', async (t) => {
  const r = new Reassembler({ timeoutUs: 30 * S });
  const pkt = packet(3000);
  const [a, , c] = cut(pkt, [1480, 2960]);
  t.equal(feed(r, a, 1000), 'held');
  t.equal(feed(r, c, 5 * S), 'held');
  const other = cut(packet(3000, 2, { ident: 9 }), [1480]);
  t.equal(feed(r, other[1], 2 * S), 'held');
  t.equal(r.nextDeadline(), 30 * S + 1000, 'from the first fragment; later ones do not extend it');
  const q = new Uint8Array(REASM_QUOTE_MAX + 10);
  t.equal(r.expire(30 * S + 999, q, 0), -1);
  const n = r.expire(30 * S + 1000, q, 0);
  t.equal(n, REASM_QUOTE_MAX, 'header plus as much data as fits in a 576-byte error');
  t.equal(hexOf(q, 0, n), hexOf(a, 0, n), 'fragment zero as received');
  t.equal(r.nextDeadline(), 32 * S);
  t.equal(r.expire(32 * S, q, 0), 0, 'no fragment zero: no ICMP');
  t.equal(r.expire(40 * S, q, 0), -1);
  t.equal(r.counters.get('timeout'), 2);
  t.equal(r.counters.get('time-exceeded'), 1);
  t.equal(r.nextDeadline(), Infinity);
  leakCheck(t, r);
  // A short fragment zero: the quote is only what was received.
  feed(r, fragmentOf(pkt, 0, 64, true), 0);
  t.equal(r.expire(30 * S, q, 0), 20 + 64);
  leakCheck(t, r);
});

t.test('limits: datagrams in progress, memory, extents', async (t) => {
  // Datagram count: the oldest is evicted.
  let r = new Reassembler({ maxDatagrams: 2 });
  const p = [1, 2, 3].map((k) => cut(packet(2000, k, { ident: k }), [1000]));
  feed(r, p[0][0], 0);
  feed(r, p[1][0], 1);
  t.equal(feed(r, p[2][0], 2), 'held');
  t.equal(r.counters.get('evicted'), 1);
  t.equal(r.inProgress, 2);
  t.equal(feed(r, p[0][1], 3), 'held', 'the evicted datagram starts over');
  t.equal(feed(r, p[2][1], 4), 'complete');
  take(r);
  r.clear();
  leakCheck(t, r);

  // Memory: 4 chunks (8 KiB). A needs 3, B needs 2: A is evicted for B.
  r = new Reassembler({ maxBytes: 8192 });
  const big = packet(6000, 1, { ident: 1 });
  const other = packet(4000, 2, { ident: 2 });
  t.equal(feed(r, fragmentOf(big, 0, 5000, true)), 'held');
  t.equal(r.chunksInUse, 3);
  t.equal(feed(r, fragmentOf(other, 0, 3000, true)), 'held');
  t.equal(r.counters.get('evicted'), 1);
  t.equal(r.chunksInUse, 2);
  // One datagram larger than all the memory dies alone.
  const huge = packet(12000, 3, { ident: 3 });
  t.equal(feed(r, fragmentOf(huge, 0, 4096, true)), 'held');
  t.equal(feed(r, fragmentOf(huge, 4096, 6144, true)), 'dropped', 'needs 5 chunks in all');
  t.equal(r.counters.get('evicted'), 2, 'the other datagram was evicted first, in vain');
  t.equal(r.lastDrop, 'drop:memory');
  r.clear();
  leakCheck(t, r);

  // Extents: holes beyond the limit kill the datagram.
  r = new Reassembler({ maxExtents: 3 });
  const h = packet(1000);
  for (const o of [0, 200, 400]) t.equal(feed(r, fragmentOf(h, o, 80, true)), 'held');
  t.equal(feed(r, fragmentOf(h, 600, 80, true)), 'dropped');
  t.equal(r.lastDrop, 'drop:too-many-holes');
  r = new Reassembler({ maxExtents: 3 });
  for (const o of [0, 200, 400]) feed(r, fragmentOf(h, o, 80, true));
  t.equal(feed(r, fragmentOf(h, 80, 120, true)), 'held', 'filling a hole merges extents');
  t.equal(feed(r, fragmentOf(h, 600, 80, true)), 'held');
  r.clear();
  leakCheck(t, r);
});

t.test('65535 is the largest datagram; beyond is refused (ping of death)', async (t) => {
  const r = new Reassembler();
  const max = packet(65535 - 20);
  const cuts: number[] = [];
  for (let o = 1480; o < 65515; o += 1480) cuts.push(o);
  const frags = cut(max, cuts);
  let res: ReassemblyResult = 'held';
  for (const f of shuffle(mulberry32(3), frags)) res = feed(r, f);
  t.equal(res, 'complete');
  t.equal(r.readyLen, 65535);
  const out = take(r);
  t.equal(hexOf(out), hexOf(max));
  t.equal(checksum(out, 0, 20), 0);

  // Last fragment past 65535.
  const tail = fragmentOf(max, 65512, 0, false);
  const pod = new Uint8Array(20 + 16);
  pod.set(tail.subarray(0, 20));
  pod[3] = 36; // total length 36: 16 bytes at offset 65512 -> ends at 65528 + 20 > 65535
  const v = new Ipv4View();
  v.reset(pod, 0, pod.length);
  v.fragOffset = 65512;
  v.moreFrags = false;
  v.fillChecksum();
  t.equal(feed(r, frags[0]), 'held');
  t.equal(feed(r, pod), 'dropped');
  t.equal(r.lastDrop, 'drop:too-big');
  t.equal(feed(r, frags[1]), 'dropped', 'and the datagram is dead');

  // With options in fragment zero the payload limit shrinks by the option bytes.
  const r2 = new Reassembler();
  const opt = new Uint8Array([0x94, 0x04, 0, 0]); // router alert
  const withOpt = ipPacket({ src: A, dst: B, proto: IPPROTO_UDP, ident: 77, payload: new Uint8Array(65512), options: opt, totalLen: 65535 });
  t.equal(feed(r2, fragmentOf(withOpt, 65504, 8, false)), 'held', '65512 bytes alone would fit with 20');
  t.equal(feed(r2, fragmentOf(withOpt, 0, 1480, true)), 'dropped', 'fragment zero with 24 bytes of header overflows');
  t.equal(r2.lastDrop, 'drop:too-big');
  r.clear();
  r2.clear();
  leakCheck(t, r);
  leakCheck(t, r2);
});

t.test('inconsistent lengths', async (t) => {
  const pkt = packet(3000);
  let r = new Reassembler();
  feed(r, fragmentOf(pkt, 1480, 1520, false));
  t.equal(feed(r, fragmentOf(pkt, 1480, 800, false)), 'dropped', 'a second, different end');
  t.equal(r.lastDrop, 'drop:inconsistent-length');
  r = new Reassembler();
  feed(r, fragmentOf(pkt, 1480, 800, false));
  t.equal(feed(r, fragmentOf(pkt, 1480, 1520, true)), 'dropped', 'data past the end');
  r = new Reassembler();
  feed(r, fragmentOf(pkt, 1480, 1520, true));
  t.equal(feed(r, fragmentOf(pkt, 800, 400, false)), 'dropped', 'an end below received data');
  t.equal(r.counters.get('drop:inconsistent-length'), 1);
  // A last fragment that repeats data already received still fixes the end.
  r = new Reassembler();
  feed(r, fragmentOf(pkt, 0, 1480, true));
  feed(r, fragmentOf(pkt, 1480, 1520, true));
  t.equal(feed(r, fragmentOf(pkt, 2960, 40, false)), 'complete');
  t.equal(hexOf(take(r)), hexOf(pkt));
  leakCheck(t, r);
});

t.test('ECN (RFC 3168 §5.3)', async (t) => {
  const pkt = packet(2000, 1, { tos: 0x02 }); // ECT(0)
  let r = new Reassembler();
  const [a, b] = cut(pkt, [1000]);
  const ce = b.slice();
  ce[1] = 0x03;
  const v = new Ipv4View();
  v.reset(ce, 0, ce.length);
  v.fillChecksum();
  feed(r, a);
  t.equal(feed(r, ce), 'complete');
  const out = take(r);
  t.equal(out[1] & 3, 3, 'CE carried to the datagram');
  t.equal(checksum(out, 0, 20), 0);
  r = new Reassembler();
  const notEct = b.slice();
  notEct[1] = 0;
  v.reset(notEct, 0, notEct.length);
  v.fillChecksum();
  feed(r, a);
  t.equal(feed(r, notEct), 'dropped');
  t.equal(r.lastDrop, 'drop:ecn-mismatch');
  r.clear();
  leakCheck(t, r);
});

t.test('a ready datagram not taken is discarded by the next input; take checks room', async (t) => {
  const r = new Reassembler();
  const [a, b] = cut(packet(2000), [1000]);
  const [c] = cut(packet(2000, 2, { ident: 5 }), [1000]);
  feed(r, a);
  t.equal(feed(r, b), 'complete');
  t.throws(() => r.take(new Uint8Array(100), 0), RangeError);
  t.equal(feed(r, c), 'held');
  t.equal(r.counters.get('drop:not-taken'), 1);
  t.equal(r.readyLen, 0);
  r.clear();
  leakCheck(t, r);
});

t.test('deterministic under a seeded adversarial mix', async (t) => {
  function run(seed: number, opts: ReassemblerOptions): string {
    const rand = mulberry32(seed);
    const r = new Reassembler(opts);
    const pkts = Array.from({ length: 12 }, (_, k) => packet(randInt(rand, 100, 9000), k, { ident: k }));
    const log: string[] = [];
    let now = 0;
    for (let step = 0; step < 3000; step++) {
      const p = pkts[randInt(rand, 0, pkts.length - 1)];
      const total = p.length - 20;
      const off = 8 * randInt(rand, 0, Math.floor((total - 1) / 8));
      let len = Math.min(total - off, 8 * randInt(rand, 1, 200));
      const last = off + len === total;
      if (!last && rand() < 0.05) len -= 3; // misaligned
      const f = fragmentOf(p, off, len, !last);
      if (rand() < 0.03) f[25] ^= 0x40; // corrupt one payload byte
      const res = feed(r, f, now);
      log.push(res[0]);
      if (res === 'complete') {
        const out = take(r);
        if (hexOf(out) !== hexOf(p)) t.fail('rebuilt datagram differs from its original');
      }
      now += randInt(rand, 0, S);
      while (r.nextDeadline() <= now) r.expire(now, new Uint8Array(REASM_QUOTE_MAX), 0);
      if (r.chunksInUse > r.maxChunks || r.inProgress > r.maxDatagrams) t.fail('limits');
    }
    r.clear();
    t.equal(r.chunksInUse, 0);
    return log.join('') + JSON.stringify(r.counters.snapshot());
  }
  const opts = { maxDatagrams: 6, maxBytes: 32 * 1024, maxExtents: 8 };
  const a = run(99, opts);
  t.equal(run(99, opts), a);
  t.match(a, /c/, 'some datagrams complete');
});
