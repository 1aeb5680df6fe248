/**
 * Hand-built frames for hostile and fuzz tests: Ethernet, ARP, IPv4 (with options and fragments), TCP
 * (with options), UDP and ICMP, with correct checksums unless asked otherwise. Plain functions that
 * allocate a Uint8Array per frame: test code, not the data path.
 */
import { checksumFinish, checksumPartial, pseudoHeaderSumV4 } from '../../servers/wire/checksum.js';

export const ETH_LEN = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const BROADCAST_MAC = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

export function ip4(s: string): number {
  const p = s.split('.').map(Number);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}
export function ip4str(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export const be16 = (b: Uint8Array, o: number, v: number): void => {
  b[o] = (v >>> 8) & 255;
  b[o + 1] = v & 255;
};
export const be32 = (b: Uint8Array, o: number, v: number): void => {
  b[o] = (v >>> 24) & 255;
  b[o + 1] = (v >>> 16) & 255;
  b[o + 2] = (v >>> 8) & 255;
  b[o + 3] = v & 255;
};
export const rd16 = (b: Uint8Array, o: number): number => (b[o] << 8) | b[o + 1];
export const rd32 = (b: Uint8Array, o: number): number => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

export function eth(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(ETH_LEN + payload.length);
  f.set(dst, 0);
  f.set(src, 6);
  be16(f, 12, type);
  f.set(payload, ETH_LEN);
  return f;
}

/** An ARP packet (request: op 1, reply: op 2). */
export function arp(op: number, sha: Uint8Array, spa: number, tha: Uint8Array, tpa: number): Uint8Array {
  const a = new Uint8Array(28);
  be16(a, 0, 1);
  be16(a, 2, ETHERTYPE_IPV4);
  a[4] = 6;
  a[5] = 4;
  be16(a, 6, op);
  a.set(sha, 8);
  be32(a, 14, spa);
  a.set(tha, 18);
  be32(a, 24, tpa);
  return a;
}

export interface Ipv4Opts {
  src: number;
  dst: number;
  proto: number;
  ttl?: number;
  id?: number;
  /** Fragment offset in bytes (a multiple of 8). */
  fragOff?: number;
  mf?: boolean;
  df?: boolean;
  /** IP options (padded to 4 bytes). */
  options?: Uint8Array;
  tos?: number;
  badChecksum?: boolean;
}

export function ipv4(o: Ipv4Opts, payload: Uint8Array): Uint8Array {
  const optLen = o.options ? (o.options.length + 3) & ~3 : 0;
  const hl = 20 + optLen;
  const p = new Uint8Array(hl + payload.length);
  p[0] = 0x40 | (hl >> 2);
  p[1] = o.tos ?? 0;
  be16(p, 2, p.length);
  be16(p, 4, o.id ?? 0);
  be16(p, 6, ((o.fragOff ?? 0) >> 3) | (o.mf ? 0x2000 : 0) | (o.df ? 0x4000 : 0));
  p[8] = o.ttl ?? 64;
  p[9] = o.proto;
  be32(p, 12, o.src);
  be32(p, 16, o.dst);
  if (o.options) p.set(o.options, 20);
  be16(p, 10, checksumFinish(checksumPartial(p, 0, hl)) ^ (o.badChecksum ? 0x5a5a : 0));
  p.set(payload, hl);
  return p;
}

export const TCP = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16, URG: 32 } as const;

export interface TcpOpts {
  src: number;
  dst: number;
  sport: number;
  dport: number;
  seq: number;
  ack?: number;
  flags: number;
  window?: number;
  /** Raw option bytes (padded to 4 with NOPs... EOL). */
  options?: Uint8Array;
  badChecksum?: boolean;
}

export function tcp(o: TcpOpts, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const optLen = o.options ? (o.options.length + 3) & ~3 : 0;
  const hl = 20 + optLen;
  const s = new Uint8Array(hl + data.length);
  be16(s, 0, o.sport);
  be16(s, 2, o.dport);
  be32(s, 4, o.seq >>> 0);
  be32(s, 8, (o.ack ?? 0) >>> 0);
  s[12] = (hl >> 2) << 4;
  s[13] = o.flags & 0xff;
  be16(s, 14, o.window ?? 65535);
  if (o.options) s.set(o.options, 20);
  s.set(data, hl);
  be16(s, 16, checksumFinish(checksumPartial(s, 0, s.length, pseudoHeaderSumV4(o.src, o.dst, 6, s.length))) ^ (o.badChecksum ? 0x1111 : 0));
  return s;
}

/** MSS, SACK-permitted, timestamps and window scale, as Linux sends on a SYN. */
export function synOptions(mss = 1460, tsVal = 1, wscale = 7): Uint8Array {
  const b = new Uint8Array(20);
  b.set([2, 4, mss >> 8, mss & 255, 4, 2, 8, 10], 0);
  be32(b, 8, tsVal);
  be32(b, 12, 0);
  b.set([1, 3, 3, wscale], 16);
  return b;
}

export function udp(src: number, dst: number, sport: number, dport: number, data: Uint8Array): Uint8Array {
  const s = new Uint8Array(8 + data.length);
  be16(s, 0, sport);
  be16(s, 2, dport);
  be16(s, 4, s.length);
  s.set(data, 8);
  let c = checksumFinish(checksumPartial(s, 0, s.length, pseudoHeaderSumV4(src, dst, 17, s.length)));
  if (c === 0) c = 0xffff;
  be16(s, 6, c);
  return s;
}

/** An ICMP message: type, code, the 4 "rest of header" bytes, then the body. */
export function icmp(type: number, code: number, rest: number, body: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + body.length);
  m[0] = type;
  m[1] = code;
  be32(m, 4, rest);
  m.set(body, 8);
  be16(m, 2, checksumFinish(checksumPartial(m, 0, m.length)));
  return m;
}

/** Recompute the IPv4 header checksum and the TCP/UDP/ICMP checksum of a frame in place (best effort). */
export function fixChecksums(f: Uint8Array): void {
  if (f.length < ETH_LEN + 20 || rd16(f, 12) !== ETHERTYPE_IPV4) return;
  const ip = ETH_LEN;
  const hl = (f[ip] & 15) * 4;
  if (hl < 20 || ip + hl > f.length) return;
  be16(f, ip + 10, 0);
  be16(f, ip + 10, checksumFinish(checksumPartial(f, ip, hl)));
  const total = Math.min(rd16(f, ip + 2), f.length - ip);
  const frag = rd16(f, ip + 6) & 0x3fff;
  if (frag !== 0 || total <= hl) return;
  const l4 = ip + hl;
  const len = total - hl;
  const proto = f[ip + 9];
  const src = rd32(f, ip + 12);
  const dst = rd32(f, ip + 16);
  const at = proto === 6 ? 16 : proto === 17 ? 6 : proto === 1 ? 2 : -1;
  if (at < 0 || at + 2 > len) return;
  be16(f, l4 + at, 0);
  const init = proto === 1 ? 0 : pseudoHeaderSumV4(src, dst, proto, len);
  let c = checksumFinish(checksumPartial(f, l4, len, init));
  if (c === 0 && proto === 17) c = 0xffff;
  be16(f, l4 + at, c);
}

/** A parsed view of a TCP segment in an Ethernet frame (or null). */
export interface SegInfo {
  src: number;
  dst: number;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  dataLen: number;
  data: Uint8Array;
}

export function parseTcpFrame(f: Uint8Array): SegInfo | null {
  if (f.length < ETH_LEN + 40 || rd16(f, 12) !== ETHERTYPE_IPV4) return null;
  const ip = ETH_LEN;
  if (f[ip + 9] !== 6) return null;
  const hl = (f[ip] & 15) * 4;
  const total = rd16(f, ip + 2);
  const l4 = ip + hl;
  const thl = (f[l4 + 12] >> 4) * 4;
  const dataLen = total - hl - thl;
  return {
    src: rd32(f, ip + 12),
    dst: rd32(f, ip + 16),
    sport: rd16(f, l4),
    dport: rd16(f, l4 + 2),
    seq: rd32(f, l4 + 4),
    ack: rd32(f, l4 + 8),
    flags: f[l4 + 13],
    window: rd16(f, l4 + 14),
    dataLen,
    data: f.slice(l4 + thl, l4 + thl + dataLen),
  };
}
