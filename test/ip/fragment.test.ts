import t from 'tap';
import { Fragmenter, fragmentCount } from '../../servers/ip/fragment.js';
import { Reassembler, type ReassemblyResult } from '../../servers/ip/reassembly.js';
import { IPPROTO_UDP, Ipv4View } from '../../servers/wire/ipv4.js';
import { mulberry32, randInt } from '../helpers/prng.js';
import { bytesOf, hexOf, ipPacket, shuffle } from './helpers.js';

const A = 0x0a090001;
const B = 0x0a090002;

function packet(len: number, seed = 1, extra: Partial<Parameters<typeof ipPacket>[0]> = {}): Uint8Array {
  return ipPacket({ src: A, dst: B, proto: IPPROTO_UDP, ident: 0xbeef, payload: bytesOf(mulberry32(seed), len), ...extra });
}

/** All fragments as separate arrays. */
function fragmentAll(f: Fragmenter, pkt: Uint8Array, mtu: number): Uint8Array[] {
  const s = f.start(pkt, 0, pkt.length, mtu);
  if (s !== 'fragment') throw new Error(`start: ${s}`);
  const out: Uint8Array[] = [];
  while (f.remaining > 0) {
    const buf = new Uint8Array(f.nextLen());
    const n = f.next(buf, 0);
    if (n !== buf.length) throw new Error('nextLen disagrees with next');
    out.push(buf);
  }
  return out;
}

interface Seen {
  len: number;
  hl: number;
  off: number;
  mf: boolean;
  df: boolean;
  id: number;
  csumOk: boolean;
}
function describe(frag: Uint8Array): Seen {
  const v = new Ipv4View();
  const e = v.reset(frag, 0, frag.length);
  if (e !== null) throw new Error(e);
  return { len: v.totalLen, hl: v.headerLen, off: v.fragOffset, mf: v.moreFrags, df: v.dontFrag, id: v.ident, csumOk: v.verifyChecksum() };
}

t.test('fits, needs-frag, bad mtu, bad packet', async (t) => {
  const f = new Fragmenter();
  const small = packet(100);
  t.equal(f.start(small, 0, small.length, 1500), 'fits');
  t.equal(f.start(small, 0, small.length, 120), 'fits', 'exactly the MTU');
  const df = packet(2000, 1, { df: true });
  t.equal(f.start(df, 0, df.length, 1500), 'needs-frag');
  t.equal(f.mtu, 1500, 'the MTU for ICMP fragmentation needed');
  t.equal(f.start(small, 0, small.length, 67), 'bad-mtu');
  t.equal(f.start(small, 0, small.length, 1.5), 'bad-mtu');
  t.equal(f.start(small, 0, 50, 1500), 'bad-packet', 'total length beyond the bytes');
  const badOpt = packet(2000, 1, { options: new Uint8Array([0x83, 0x09, 4, 0]) });
  t.equal(f.start(badOpt, 0, badOpt.length, 576), 'bad-packet', 'malformed options');
  t.same(f.counters.nonZero(), { fits: 2, 'drop:needs-frag': 1, 'drop:bad-mtu': 2, 'drop:bad-packet': 2 });
  t.equal(f.remaining, 0);
  t.equal(f.next(new Uint8Array(100), 0), 0, 'nothing to write');
});

t.test('layout: 4000 bytes of payload at MTU 1500', async (t) => {
  const f = new Fragmenter();
  const pkt = packet(4000);
  const frags = fragmentAll(f, pkt, 1500);
  t.equal(f.count, 3);
  t.equal(fragmentCount(20, 20, 4000, 1500), 3);
  t.same(frags.map(describe), [
    { len: 1500, hl: 20, off: 0, mf: true, df: false, id: 0xbeef, csumOk: true },
    { len: 1500, hl: 20, off: 1480, mf: true, df: false, id: 0xbeef, csumOk: true },
    { len: 1060, hl: 20, off: 2960, mf: false, df: false, id: 0xbeef, csumOk: true },
  ]);
  t.equal(hexOf(frags[1], 20), hexOf(pkt, 20 + 1480, 1480));
  t.same(f.counters.nonZero(), { fragmented: 1, fragments: 3 });
  // MTU 68, the RFC 791 minimum: 48 data bytes per fragment.
  const tiny = fragmentAll(f, packet(100), 68);
  t.same(tiny.map((x) => describe(x).len), [68, 68, 24]);
});

t.test('options: all in the first fragment, only copied ones after (padded)', async (t) => {
  // Record route (7, not copied, 11 bytes), NOP, LSRR (0x83, copied, 7 bytes), EOL: 20 bytes.
  const opts = new Uint8Array([7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x83, 7, 4, 10, 9, 0, 9, 0]);
  const pkt = packet(3000, 2, { options: opts });
  const f = new Fragmenter();
  const frags = fragmentAll(f, pkt, 1000);
  const d = frags.map(describe);
  t.equal(d[0].hl, 40, 'first: the original header');
  t.equal(hexOf(frags[0], 20, 20), hexOf(opts));
  t.equal(d[0].len, 40 + 960);
  for (let i = 1; i < d.length; i++) {
    t.equal(d[i].hl, 28, `fragment ${i}: LSRR padded to 8`);
    t.equal(hexOf(frags[i], 20, 8), '8307040a09000900');
    t.ok(d[i].csumOk);
  }
  t.equal(d[1].off, 960);
  t.equal(d[1].len, 28 + 968, 'data a multiple of 8 under the MTU');
  // And the round trip restores the original header (fragment zero's).
  const r = new Reassembler();
  const v = new Ipv4View();
  let res: ReassemblyResult = 'held';
  for (const fr of frags) {
    v.reset(fr, 0, fr.length);
    res = r.input(v, 0);
  }
  t.equal(res, 'complete');
  const out = new Uint8Array(r.readyLen);
  r.take(out, 0);
  t.equal(hexOf(out), hexOf(pkt));
});

t.test('header-only mode gives the same fragments without copying the payload', async (t) => {
  const pkt = packet(5000);
  const f = new Fragmenter();
  const full = fragmentAll(f, pkt, 1400);
  t.equal(f.start(pkt, 0, pkt.length, 1400), 'fragment');
  const hdr = new Uint8Array(60);
  for (let i = 0; f.remaining > 0; i++) {
    const hl = f.nextHeader(hdr, 0);
    const joined = new Uint8Array(hl + f.payloadLen);
    joined.set(hdr.subarray(0, hl));
    joined.set(pkt.subarray(f.payloadOff, f.payloadOff + f.payloadLen), hl);
    t.equal(hexOf(joined), hexOf(full[i]), `fragment ${i}`);
  }
  t.equal(f.nextHeader(hdr, 0), 0);
});

t.test('a fragment can be fragmented again; offsets stay relative to the original', async (t) => {
  const pkt = packet(6000, 3);
  const f = new Fragmenter();
  const g = new Fragmenter();
  const first = fragmentAll(f, pkt, 1500);
  const second: Uint8Array[] = [];
  for (const fr of first) {
    const s = g.start(fr, 0, fr.length, 576);
    if (s === 'fits') second.push(fr);
    else second.push(...fragmentAll(g, fr, 576));
  }
  const d = second.map(describe);
  t.ok(d.every((x) => x.len <= 576 && x.csumOk));
  t.ok(d.slice(0, -1).every((x) => x.mf), 'MF on all but the very last');
  t.notOk(d[d.length - 1].mf);
  const r = new Reassembler();
  const v = new Ipv4View();
  let res: ReassemblyResult = 'held';
  for (const fr of shuffle(mulberry32(8), second)) {
    v.reset(fr, 0, fr.length);
    res = r.input(v, 0);
  }
  t.equal(res, 'complete');
  const out = new Uint8Array(r.readyLen);
  r.take(out, 0);
  t.equal(hexOf(out), hexOf(pkt));
});

t.test('round trip through reassembly for many sizes and MTUs (seeded)', async (t) => {
  const rand = mulberry32(0x7a6);
  const f = new Fragmenter();
  // Shuffled delivery of up to 1365 fragments leaves hundreds of holes: raise the default limit
  // (32, which bounds the per-fragment work) for this test; in-order delivery needs one extent.
  const r = new Reassembler({ maxExtents: 1024 });
  const v = new Ipv4View();
  const buf = new Uint8Array(70000);
  let trips = 0;
  let bad = 0;
  const sizes = [1, 7, 8, 9, 47, 48, 49, 1472, 1480, 1481, 8000, 65515];
  for (let k = 0; k < 400; k++) {
    const withOpt = k % 4 === 0;
    const maxLen = 65535 - (withOpt ? 28 : 20);
    const len = Math.min(maxLen, k < sizes.length * 3 ? sizes[k % sizes.length] : randInt(rand, 1, maxLen));
    const mtu = k % 7 === 0 ? 68 : k % 5 === 0 ? 576 : randInt(rand, 68, 9000);
    const pkt = packet(len, k, {
      ident: k,
      options: withOpt ? new Uint8Array([0x94, 4, 0, 0, 1, 1, 1, 0]) : undefined,
    });
    // Place the source at an odd offset of a bigger buffer, as a pool buffer would.
    const at = 1 + (k % 5);
    buf.set(pkt, at);
    const s = f.start(buf, at, pkt.length, mtu);
    if (s === 'fits') {
      if (pkt.length > mtu) bad++;
      continue;
    }
    if (s !== 'fragment') {
      bad++;
      continue;
    }
    const frags: Uint8Array[] = [];
    while (f.remaining > 0) {
      const o = new Uint8Array(f.nextLen() + 3);
      const n = f.next(o, 3);
      if (n > mtu) bad++;
      frags.push(o.subarray(3, 3 + n));
    }
    // Router alert (copied) goes into every fragment, the NOPs do not: 24-byte headers after the first.
    if (frags.length !== fragmentCount(withOpt ? 28 : 20, withOpt ? 24 : 20, len, mtu)) {
      t.fail(`k=${k}: ${frags.length} fragments`);
      bad++;
    }
    let res: ReassemblyResult = 'held';
    for (const fr of shuffle(rand, frags)) {
      v.reset(fr, 0, fr.length);
      if (!v.verifyChecksum()) bad++;
      res = r.input(v, k);
    }
    if (res !== 'complete') {
      t.fail(`k=${k} len=${len} mtu=${mtu}: ${res} ${r.lastDrop}`);
      bad++;
      continue;
    }
    const out = new Uint8Array(r.readyLen);
    r.take(out, 0);
    if (hexOf(out) !== hexOf(pkt)) {
      t.fail(`k=${k}: differs`);
      bad++;
    } else trips++;
  }
  t.equal(bad, 0);
  t.ok(trips > 300, `${trips} round trips`);
  t.equal(r.inProgress, 0);
  t.equal(r.chunksInUse, 0);
  t.equal(r.counters.drops(), 0);
});

t.test('default limits: 65515 bytes at MTU 68 in order (1365 fragments, one extent)', async (t) => {
  const f = new Fragmenter();
  const r = new Reassembler();
  const v = new Ipv4View();
  const pkt = packet(65515, 5);
  const frags = fragmentAll(f, pkt, 68);
  t.equal(frags.length, 1365);
  let res: ReassemblyResult = 'held';
  for (const fr of frags) {
    v.reset(fr, 0, fr.length);
    res = r.input(v, 0);
  }
  t.equal(res, 'complete');
  const out = new Uint8Array(r.readyLen);
  r.take(out, 0);
  t.equal(hexOf(out), hexOf(pkt));
});
