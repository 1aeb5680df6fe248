/** Packet builders for the IP core tests (literal fields in, checked bytes out). */
import { checksum, pseudoHeaderSumV4, checksumPartial } from '../../servers/wire/checksum.js';
import { readU16, writeU16, writeU32 } from '../../servers/wire/bytes.js';
import { ETHERTYPE_IPV4, writeMac } from '../../servers/wire/ethernet.js';

export interface IpSpec {
  src: number;
  dst: number;
  proto: number;
  payload: Uint8Array;
  ident?: number;
  ttl?: number;
  tos?: number;
  df?: boolean;
  mf?: boolean;
  /** In bytes. */
  fragOffset?: number;
  /** Raw option bytes (length a multiple of 4). */
  options?: Uint8Array;
  /** Override the total length field. */
  totalLen?: number;
}

/** An IPv4 packet with a correct header checksum. */
export function ipPacket(s: IpSpec): Uint8Array {
  const opt = s.options ?? new Uint8Array(0);
  const hl = 20 + opt.length;
  const b = new Uint8Array(hl + s.payload.length);
  b[0] = 0x40 | (hl >>> 2);
  b[1] = s.tos ?? 0;
  writeU16(b, 2, s.totalLen ?? b.length);
  writeU16(b, 4, s.ident ?? 0x1234);
  writeU16(b, 6, (s.df ? 0x4000 : 0) | (s.mf ? 0x2000 : 0) | ((s.fragOffset ?? 0) >>> 3));
  b[8] = s.ttl ?? 64;
  b[9] = s.proto;
  writeU32(b, 12, s.src);
  writeU32(b, 16, s.dst);
  b.set(opt, 20);
  writeU16(b, 10, checksum(b, 0, hl));
  b.set(s.payload, hl);
  return b;
}

/** Recompute the IPv4 header checksum of the packet at `off`. */
export function fixIpChecksum(b: Uint8Array, off: number): void {
  const hl = (b[off] & 0xf) * 4;
  writeU16(b, off + 10, 0);
  writeU16(b, off + 10, checksum(b, off, hl));
}

/** Recompute an ICMP checksum over `len` bytes at `off`. */
export function fixIcmpChecksum(b: Uint8Array, off: number, len: number): void {
  writeU16(b, off + 2, 0);
  writeU16(b, off + 2, checksum(b, off, len));
}

/** Prefix an Ethernet II header. */
export function ethFrame(dst: number, src: number, payload: Uint8Array, type = ETHERTYPE_IPV4): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  writeMac(f, 0, dst);
  writeMac(f, 6, src);
  writeU16(f, 12, type);
  f.set(payload, 14);
  return f;
}

/** An ICMP message (type, code, 4 bytes rest-of-header, data) with its checksum. */
export function icmpMessage(type: number, code: number, rest: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  m[0] = type;
  m[1] = code;
  writeU32(m, 4, rest);
  m.set(data, 8);
  writeU16(m, 2, checksum(m, 0, m.length));
  return m;
}

/** A UDP datagram with a correct checksum. */
export function udpDatagram(src: number, dst: number, sport: number, dport: number, data: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + data.length);
  writeU16(u, 0, sport);
  writeU16(u, 2, dport);
  writeU16(u, 4, u.length);
  u.set(data, 8);
  const c = ~checksumPartial(u, 0, u.length, pseudoHeaderSumV4(src, dst, 17, u.length)) & 0xffff;
  writeU16(u, 6, c === 0 ? 0xffff : c);
  return u;
}

/**
 * A fragment of the unfragmented packet `pkt` carrying payload bytes [off, off + len), with MF as
 * given. Fragment zero keeps all options; the others keep none (tests of option copying build their
 * own).
 */
export function fragmentOf(pkt: Uint8Array, off: number, len: number, mf: boolean, keepOptions = off === 0): Uint8Array {
  const hl = (pkt[0] & 0xf) * 4;
  const nhl = keepOptions ? hl : 20;
  const f = new Uint8Array(nhl + len);
  f.set(pkt.subarray(0, nhl), 0);
  f[0] = 0x40 | (nhl >>> 2);
  writeU16(f, 2, f.length);
  writeU16(f, 6, (readU16(pkt, 6) & 0x4000) | (mf ? 0x2000 : 0) | (off >>> 3));
  f.set(pkt.subarray(hl + off, hl + off + len), nhl);
  fixIpChecksum(f, 0);
  return f;
}

export function bytesOf(rand: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Fisher-Yates with a seeded PRNG. */
export function shuffle<T>(rand: () => number, a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

export function hexOf(b: Uint8Array, off = 0, len = b.length - off): string {
  return Buffer.from(b.buffer, b.byteOffset + off, len).toString('hex');
}
