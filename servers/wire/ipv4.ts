/**
 * IPv4 headers (RFC 791). Options are validated only by length (IHL) and skipped; the stack never
 * emits them.
 *
 *    0       4       8      16  19          24           32
 *   +-------+-------+-------+---+------------------------+
 *   |ver|ihl| DSCP/ECN      | total length               |  0
 *   | identification        |flg| fragment offset (x8)   |  4
 *   | TTL   | protocol      | header checksum            |  8
 *   | source address                                     | 12
 *   | destination address                                | 16
 *   | options (ihl*4 - 20 bytes)                         | 20
 *
 * Addresses are uint32 numbers (first octet most significant, `>>> 0`): 10.9.0.1 is 0x0a090001.
 */
import { ByteView, inBounds, needRoom, readU16, readU32, writeU16, writeU32 } from './bytes.js';
import { checksum, checksumUpdate16 } from './checksum.js';
import type { WireError } from './errors.js';

export const IPV4_HEADER_LEN = 20;
export const IPV4_MAX_HEADER_LEN = 60;
export const IPV4_MAX_TOTAL_LEN = 0xffff;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const IPV4_ANY = 0;
export const IPV4_BROADCAST = 0xffffffff;

const F_VER_IHL = 0;
const F_TOS = 1;
const F_LEN = 2;
const F_IDENT = 4;
const F_FLAGS_FRAG = 6;
const F_TTL = 8;
const F_PROTO = 9;
const F_CHECKSUM = 10;
const F_SRC = 12;
const F_DST = 16;

const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
const FRAG_MASK = 0x1fff;

/** Parse dotted-quad "a.b.c.d" (each 0..255, no leading '+', no empty parts) to uint32; null if bad. */
export function ipv4Parse(s: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (m === null) return null;
  let v = 0;
  for (let k = 1; k <= 4; k++) {
    const o = Number(m[k]);
    if (o > 255) return null;
    v = v * 256 + o;
  }
  return v;
}

/** Format a uint32 address as "a.b.c.d". */
export function ipv4Format(a: number): string {
  return `${(a >>> 24) & 255}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

/** 224.0.0.0/4. */
export function ipv4IsMulticast(a: number): boolean {
  return a >>> 28 === 0xe;
}

/** 127.0.0.0/8. */
export function ipv4IsLoopback(a: number): boolean {
  return a >>> 24 === 127;
}

/** Network mask for a prefix length 0..32, as uint32. */
export function ipv4Mask(prefixLen: number): number {
  return prefixLen <= 0 ? 0 : (0xffffffff << (32 - Math.min(prefixLen, 32))) >>> 0;
}

/** a and b are in the same prefixLen-bit network. */
export function ipv4SameNet(a: number, b: number, prefixLen: number): boolean {
  const m = ipv4Mask(prefixLen);
  return ((a & m) >>> 0) === ((b & m) >>> 0);
}

/**
 * Checked view of an IPv4 packet. After `reset`, `len` is the header's total length (Ethernet
 * padding past it is excluded) and every accessor stays inside the window.
 */
export class Ipv4View extends ByteView {
  /**
   * In order: 'truncated' (window outside `bytes`, or < 20 bytes), 'bad-version' (not 4),
   * 'bad-ihl' (IHL < 5), 'bad-length' (total length < header length), 'truncated' (total length >
   * the bytes available). The checksum is not verified here (see `verifyChecksum`, `Ipv4Repr.parse`).
   */
  static check(bytes: Uint8Array, off: number, len: number): WireError | null {
    if (!inBounds(bytes, off, len) || len < IPV4_HEADER_LEN) return 'truncated';
    const vi = bytes[off + F_VER_IHL];
    if (vi >>> 4 !== 4) return 'bad-version';
    const hl = (vi & 0xf) * 4;
    if (hl < IPV4_HEADER_LEN) return 'bad-ihl';
    const total = readU16(bytes, off + F_LEN);
    if (total < hl) return 'bad-length';
    if (total > len) return 'truncated';
    return null;
  }

  /** Validate and bind (window trimmed to the total length). On error the view is cleared. */
  reset(bytes: Uint8Array, off: number, len: number): WireError | null {
    const e = Ipv4View.check(bytes, off, len);
    if (e !== null) {
      this.clear();
      return e;
    }
    this.bind(bytes, off, readU16(bytes, off + F_LEN));
    return null;
  }

  static checked(bytes: Uint8Array, off = 0, len = bytes.length - off): Ipv4View | WireError {
    const v = new Ipv4View();
    return v.reset(bytes, off, len) ?? v;
  }

  get version(): number {
    return this.bytes[this.off + F_VER_IHL] >>> 4;
  }
  /** Header length in bytes (IHL * 4), 20..60. */
  get headerLen(): number {
    return (this.bytes[this.off + F_VER_IHL] & 0xf) * 4;
  }
  /** Sets version 4 and IHL = len / 4. */
  set headerLen(len: number) {
    this.bytes[this.off + F_VER_IHL] = 0x40 | ((len >>> 2) & 0xf);
  }
  get dscp(): number {
    return this.bytes[this.off + F_TOS] >>> 2;
  }
  set dscp(v: number) {
    const i = this.off + F_TOS;
    this.bytes[i] = ((v & 0x3f) << 2) | (this.bytes[i] & 3);
  }
  get ecn(): number {
    return this.bytes[this.off + F_TOS] & 3;
  }
  set ecn(v: number) {
    const i = this.off + F_TOS;
    this.bytes[i] = (this.bytes[i] & 0xfc) | (v & 3);
  }
  get totalLen(): number {
    return readU16(this.bytes, this.off + F_LEN);
  }
  set totalLen(v: number) {
    writeU16(this.bytes, this.off + F_LEN, v);
  }
  get ident(): number {
    return readU16(this.bytes, this.off + F_IDENT);
  }
  set ident(v: number) {
    writeU16(this.bytes, this.off + F_IDENT, v);
  }
  get dontFrag(): boolean {
    return (readU16(this.bytes, this.off + F_FLAGS_FRAG) & FLAG_DF) !== 0;
  }
  set dontFrag(v: boolean) {
    const i = this.off + F_FLAGS_FRAG;
    writeU16(this.bytes, i, (readU16(this.bytes, i) & ~FLAG_DF) | (v ? FLAG_DF : 0));
  }
  get moreFrags(): boolean {
    return (readU16(this.bytes, this.off + F_FLAGS_FRAG) & FLAG_MF) !== 0;
  }
  set moreFrags(v: boolean) {
    const i = this.off + F_FLAGS_FRAG;
    writeU16(this.bytes, i, (readU16(this.bytes, i) & ~FLAG_MF) | (v ? FLAG_MF : 0));
  }
  /** Fragment offset in bytes (the field counts 8-byte units). */
  get fragOffset(): number {
    return (readU16(this.bytes, this.off + F_FLAGS_FRAG) & FRAG_MASK) * 8;
  }
  /** Set the fragment offset in bytes (rounded down to a multiple of 8). */
  set fragOffset(bytes: number) {
    const i = this.off + F_FLAGS_FRAG;
    writeU16(this.bytes, i, (readU16(this.bytes, i) & ~FRAG_MASK) | ((bytes >>> 3) & FRAG_MASK));
  }
  /** MF set or a non-zero offset. */
  get isFragment(): boolean {
    return (readU16(this.bytes, this.off + F_FLAGS_FRAG) & (FLAG_MF | FRAG_MASK)) !== 0;
  }
  get ttl(): number {
    return this.bytes[this.off + F_TTL];
  }
  set ttl(v: number) {
    this.bytes[this.off + F_TTL] = v;
  }
  get protocol(): number {
    return this.bytes[this.off + F_PROTO];
  }
  set protocol(v: number) {
    this.bytes[this.off + F_PROTO] = v;
  }
  get checksum(): number {
    return readU16(this.bytes, this.off + F_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.bytes, this.off + F_CHECKSUM, v);
  }
  get src(): number {
    return readU32(this.bytes, this.off + F_SRC);
  }
  set src(v: number) {
    writeU32(this.bytes, this.off + F_SRC, v);
  }
  get dst(): number {
    return readU32(this.bytes, this.off + F_DST);
  }
  set dst(v: number) {
    writeU32(this.bytes, this.off + F_DST, v);
  }
  /** Absolute index of the options in `bytes`; length `headerLen - 20`. */
  get optionsOff(): number {
    return this.off + IPV4_HEADER_LEN;
  }
  get optionsLen(): number {
    return this.headerLen - IPV4_HEADER_LEN;
  }
  /** Absolute index of the payload in `bytes`. */
  get payloadOff(): number {
    return this.off + this.headerLen;
  }
  /** totalLen - headerLen. */
  get payloadLen(): number {
    return this.totalLen - this.headerLen;
  }

  /** The header checksum is correct. */
  verifyChecksum(): boolean {
    return checksum(this.bytes, this.off, this.headerLen) === 0;
  }

  /** Compute and store the header checksum. */
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = checksum(this.bytes, this.off, this.headerLen);
  }

  /**
   * Decrement the TTL by one and patch the checksum incrementally (RFC 1624), as a router does.
   * Returns the new TTL; does nothing and returns 0 if the TTL already was 0.
   */
  decrementTtl(): number {
    const ttl = this.ttl;
    if (ttl === 0) return 0;
    const proto = this.protocol;
    this.checksum = checksumUpdate16(this.checksum, (ttl << 8) | proto, ((ttl - 1) << 8) | proto);
    this.ttl = ttl - 1;
    return ttl - 1;
  }
}

/**
 * Parsed IPv4 header. Reusable: `parse` overwrites every field. `emit` always writes a 20-byte
 * header (no options).
 */
export class Ipv4Repr {
  src = 0;
  dst = 0;
  protocol = 0;
  /** Bytes after the header. */
  payloadLen = 0;
  ttl = 64;
  dscp = 0;
  ecn = 0;
  ident = 0;
  dontFrag = false;
  moreFrags = false;
  /** In bytes (multiple of 8). */
  fragOffset = 0;
  /** Header length seen by `parse` (> 20 when options were skipped); `emit` ignores it. */
  headerLen = IPV4_HEADER_LEN;

  /** 'bad-checksum' if `verifyChecksum` and the header checksum is wrong (pass false with offload). */
  parse(view: Ipv4View, verifyChecksum = true): WireError | null {
    if (verifyChecksum && !view.verifyChecksum()) return 'bad-checksum';
    this.src = view.src;
    this.dst = view.dst;
    this.protocol = view.protocol;
    this.headerLen = view.headerLen;
    this.payloadLen = view.totalLen - this.headerLen;
    this.ttl = view.ttl;
    this.dscp = view.dscp;
    this.ecn = view.ecn;
    this.ident = view.ident;
    this.dontFrag = view.dontFrag;
    this.moreFrags = view.moreFrags;
    this.fragOffset = view.fragOffset;
    return null;
  }

  /** Header bytes `emit` writes (20). */
  bufferLen(): number {
    return IPV4_HEADER_LEN;
  }

  /** Header plus payload. */
  totalLen(): number {
    return IPV4_HEADER_LEN + this.payloadLen;
  }

  /**
   * Write a 20-byte header at `off` (total length = 20 + payloadLen) and, unless told not to, its
   * checksum. Returns 20. The payload belongs at off + 20. Throws RangeError if the header does not
   * fit or payloadLen is too large for IPv4.
   */
  emit(bytes: Uint8Array, off: number, fillChecksum = true): number {
    needRoom(bytes, off, IPV4_HEADER_LEN, 'ipv4 emit');
    const total = IPV4_HEADER_LEN + this.payloadLen;
    if (this.payloadLen < 0 || total > IPV4_MAX_TOTAL_LEN) {
      throw new RangeError(`ipv4 emit: payload length ${this.payloadLen} out of range`);
    }
    bytes[off + F_VER_IHL] = 0x45;
    bytes[off + F_TOS] = ((this.dscp & 0x3f) << 2) | (this.ecn & 3);
    writeU16(bytes, off + F_LEN, total);
    writeU16(bytes, off + F_IDENT, this.ident);
    writeU16(
      bytes,
      off + F_FLAGS_FRAG,
      (this.dontFrag ? FLAG_DF : 0) | (this.moreFrags ? FLAG_MF : 0) | ((this.fragOffset >>> 3) & FRAG_MASK),
    );
    bytes[off + F_TTL] = this.ttl;
    bytes[off + F_PROTO] = this.protocol;
    writeU16(bytes, off + F_CHECKSUM, 0);
    writeU32(bytes, off + F_SRC, this.src);
    writeU32(bytes, off + F_DST, this.dst);
    if (fillChecksum) writeU16(bytes, off + F_CHECKSUM, checksum(bytes, off, IPV4_HEADER_LEN));
    return IPV4_HEADER_LEN;
  }
}
