/**
 * IPv4 fragmentation on output (RFC 791 §3.2 "fragmentation procedure", RFC 1122 §3.3.3).
 * Pure: no I/O; fragments are written into caller-provided buffers.
 *
 * Call order:
 *   const f = new Fragmenter();              // one per server, reused
 *   switch (f.start(bytes, off, len, mtu)) {
 *     case 'fits':       send the packet unchanged;
 *     case 'needs-frag': DF is set: drop it and answer ICMP "fragmentation needed" with
 *                        next-hop MTU `f.mtu` (RFC 1191) — for a local sender, report it locally;
 *     case 'bad-mtu' / 'bad-packet': drop (counted);
 *     case 'fragment':   while (f.remaining > 0) { n = f.next(out, o); send out[o..o+n) }
 *   }
 * `nextLen()` is the size of the next fragment, to pick a buffer first. `nextHeader(out, o)` writes
 * only the header and sets `payloadOff`/`payloadLen` to the slice of the source that follows it,
 * for a caller that can send header and payload as two pieces (no payload copy).
 *
 * Layout: every fragment but the last carries a multiple of 8 payload bytes, as many as fit in the
 * MTU. Options (RFC 791 §3.1): the first fragment carries the original header with all its options;
 * the others carry only the options whose copied flag is set, padded with EOL to a 4-byte multiple.
 * Identification, TOS, TTL, protocol and addresses are kept; DF is clear (we only fragment when it
 * is); MF is set on all but the last fragment, and on the last one too if the input was itself a
 * non-last fragment (offsets are relative to its own offset: re-fragmenting a fragment works). Each
 * header checksum is computed.
 *
 * The source packet must stay unchanged between `start` and the last `next`.
 */
import { needRoom, readU16, writeU16 } from '../wire/bytes.js';
import { checksum } from '../wire/checksum.js';
import { IPV4_HEADER_LEN, IPV4_MAX_TOTAL_LEN, Ipv4View } from '../wire/ipv4.js';
import { ReasonCounters, counterSlots } from './counters.js';
import { ipv4CopyOptions } from './options.js';
import { IPV4_MIN_MTU } from './route.js';

export const FRAG_COUNTERS = [
  'fits',
  'fragmented',
  'fragments',
  'drop:needs-frag',
  'drop:bad-mtu',
  'drop:bad-packet',
] as const;
export type FragCounter = (typeof FRAG_COUNTERS)[number];
const C = counterSlots(FRAG_COUNTERS);

export type FragStart = 'fits' | 'fragment' | 'needs-frag' | 'bad-mtu' | 'bad-packet';

const F_FLAGS = 6;
const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;

/** Number of fragments for a packet with `headerLen`-byte header and `payloadLen` bytes of payload. */
export function fragmentCount(headerLen: number, copiedHeaderLen: number, payloadLen: number, mtu: number): number {
  const first = (mtu - headerLen) & ~7;
  if (payloadLen <= first) return 1;
  const other = (mtu - copiedHeaderLen) & ~7;
  return 1 + Math.ceil((payloadLen - first) / other);
}

export class Fragmenter {
  readonly counters = new ReasonCounters(FRAG_COUNTERS);
  /** Fragments in the current plan. */
  count = 0;
  /** Fragments not yet written. */
  remaining = 0;
  /** MTU of the last `start` (the value to report in ICMP fragmentation needed). */
  mtu = 0;
  /** After `nextHeader`: absolute index and length of the source payload this fragment carries. */
  payloadOff = 0;
  payloadLen = 0;

  private readonly view = new Ipv4View();
  private src: Uint8Array = new Uint8Array(0);
  private off = 0;
  private hl = 0;
  private dataLen = 0;
  private baseOff = 0;
  private lastMf = false;
  private firstData = 0;
  private otherData = 0;
  private readonly copied = new Uint8Array(40);
  private copiedLen = 0;
  private pos = 0;

  /**
   * Plan the fragmentation of the IPv4 packet at `bytes[off..off+len)` (its total length field says
   * how long it is; `len` may include link padding) for a link of `mtu` bytes.
   */
  start(bytes: Uint8Array, off: number, len: number, mtu: number): FragStart {
    const v = this.counters.values;
    this.count = this.remaining = 0;
    this.mtu = mtu;
    const view = this.view;
    if (view.reset(bytes, off, len) !== null) {
      v[C['drop:bad-packet']]++;
      return 'bad-packet';
    }
    if (!Number.isInteger(mtu) || mtu < IPV4_MIN_MTU || mtu > IPV4_MAX_TOTAL_LEN) {
      v[C['drop:bad-mtu']]++;
      return 'bad-mtu';
    }
    const total = view.totalLen;
    if (total <= mtu) {
      v[C.fits]++;
      return 'fits';
    }
    if (view.dontFrag) {
      v[C['drop:needs-frag']]++;
      return 'needs-frag';
    }
    const hl = view.headerLen;
    const cl = ipv4CopyOptions(bytes, view.optionsOff, hl - IPV4_HEADER_LEN, this.copied, 0);
    if (cl < 0) {
      v[C['drop:bad-packet']]++;
      return 'bad-packet';
    }
    this.src = bytes;
    this.off = off;
    this.hl = hl;
    this.copiedLen = cl;
    this.dataLen = total - hl;
    this.baseOff = view.fragOffset;
    this.lastMf = view.moreFrags;
    this.firstData = (mtu - hl) & ~7;
    this.otherData = (mtu - IPV4_HEADER_LEN - cl) & ~7;
    const count = fragmentCount(hl, IPV4_HEADER_LEN + cl, this.dataLen, mtu);
    // The last fragment's offset must fit the 13-bit field (only a weird input fragment can fail this).
    if (this.baseOff + this.firstData + (count - 2) * this.otherData > 0xfff8) {
      v[C['drop:bad-packet']]++;
      return 'bad-packet';
    }
    this.count = this.remaining = count;
    this.pos = 0;
    v[C.fragmented]++;
    return 'fragment';
  }

  /** Total length of the next fragment (0 when done). */
  nextLen(): number {
    if (this.remaining === 0) return 0;
    const first = this.pos === 0;
    const room = first ? this.firstData : this.otherData;
    const data = Math.min(room, this.dataLen - this.pos);
    return (first ? this.hl : IPV4_HEADER_LEN + this.copiedLen) + data;
  }

  /** Write the next fragment (header and payload) at `out[outOff..]`; returns its length, 0 when done. */
  next(out: Uint8Array, outOff: number): number {
    const len = this.nextLen();
    if (len === 0) return 0;
    needRoom(out, outOff, len, 'fragment');
    const hl = this.nextHeader(out, outOff);
    const s = this.src;
    const p = this.payloadOff;
    const n = this.payloadLen;
    if (n >= 128) out.set(s.subarray(p, p + n), outOff + hl);
    else for (let i = 0; i < n; i++) out[outOff + hl + i] = s[p + i];
    return len;
  }

  /**
   * Write only the next fragment's header at `out[outOff..]` and advance; `payloadOff`/`payloadLen`
   * give the source bytes that follow it. Returns the header length, 0 when done.
   */
  nextHeader(out: Uint8Array, outOff: number): number {
    if (this.remaining === 0) return 0;
    const first = this.pos === 0;
    const hl = first ? this.hl : IPV4_HEADER_LEN + this.copiedLen;
    const data = Math.min(first ? this.firstData : this.otherData, this.dataLen - this.pos);
    needRoom(out, outOff, hl, 'fragment header');
    const s = this.src;
    const o = this.off;
    if (first) {
      for (let i = 0; i < hl; i++) out[outOff + i] = s[o + i];
    } else {
      for (let i = 0; i < IPV4_HEADER_LEN; i++) out[outOff + i] = s[o + i];
      for (let i = 0; i < this.copiedLen; i++) out[outOff + IPV4_HEADER_LEN + i] = this.copied[i];
      out[outOff] = 0x40 | (hl >>> 2);
    }
    this.remaining--;
    const last = this.remaining === 0;
    writeU16(out, outOff + 2, hl + data);
    const flags = readU16(s, o + F_FLAGS) & ~(FLAG_DF | FLAG_MF | 0x1fff);
    const mf = !last || this.lastMf;
    writeU16(out, outOff + F_FLAGS, flags | (mf ? FLAG_MF : 0) | ((this.baseOff + this.pos) >>> 3));
    writeU16(out, outOff + 10, 0);
    writeU16(out, outOff + 10, checksum(out, outOff, hl));
    this.payloadOff = o + this.hl + this.pos;
    this.payloadLen = data;
    this.pos += data;
    this.counters.values[C.fragments]++;
    return hl;
  }
}
