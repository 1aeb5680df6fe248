/**
 * ARP for IPv4 over Ethernet (RFC 826). Only htype 1 / ptype 0x0800 / hlen 6 / plen 4 is supported:
 * anything else is rejected by `check`, so the view's fixed offsets are always valid.
 *
 *   0      2      4    5    6      8          14      18         24      28
 *   +------+------+----+----+------+----------+-------+----------+-------+
 *   |htype |ptype |hlen|plen| oper | sender HW|sndr IP| target HW|tgt IP |
 *   +------+------+----+----+------+----------+-------+----------+-------+
 *
 * Frames carrying ARP are padded to 60 bytes; bytes after 28 are ignored.
 */
import { ByteView, inBounds, needRoom, readU16, readU32, writeU16, writeU32 } from './bytes.js';
import type { WireError } from './errors.js';
import { readMac, writeMac, ETHERTYPE_IPV4 } from './ethernet.js';

export const ARP_LEN = 28;
export const ARP_HTYPE_ETHERNET = 1;
export const ARP_OP_REQUEST = 1;
export const ARP_OP_REPLY = 2;

const F_HTYPE = 0;
const F_PTYPE = 2;
const F_HLEN = 4;
const F_PLEN = 5;
const F_OPER = 6;
const F_SHA = 8;
const F_SPA = 14;
const F_THA = 18;
const F_TPA = 24;

/** Checked view of an Ethernet/IPv4 ARP packet. */
export class ArpView extends ByteView {
  /**
   * 'truncated' (< 8 bytes, or fewer than the addresses need), 'bad-hardware' (htype != 1 or
   * hlen != 6), 'bad-protocol' (ptype != IPv4 or plen != 4).
   */
  static check(bytes: Uint8Array, off: number, len: number): WireError | null {
    if (!inBounds(bytes, off, len) || len < 8) return 'truncated';
    const hlen = bytes[off + F_HLEN];
    const plen = bytes[off + F_PLEN];
    if (len < 8 + 2 * (hlen + plen)) return 'truncated';
    if (readU16(bytes, off + F_HTYPE) !== ARP_HTYPE_ETHERNET || hlen !== 6) return 'bad-hardware';
    if (readU16(bytes, off + F_PTYPE) !== ETHERTYPE_IPV4 || plen !== 4) return 'bad-protocol';
    return null;
  }

  reset(bytes: Uint8Array, off: number, len: number): WireError | null {
    const e = ArpView.check(bytes, off, len);
    if (e !== null) {
      this.clear();
      return e;
    }
    this.bind(bytes, off, ARP_LEN);
    return null;
  }

  static checked(bytes: Uint8Array, off = 0, len = bytes.length - off): ArpView | WireError {
    const v = new ArpView();
    return v.reset(bytes, off, len) ?? v;
  }

  get htype(): number {
    return readU16(this.bytes, this.off + F_HTYPE);
  }
  get ptype(): number {
    return readU16(this.bytes, this.off + F_PTYPE);
  }
  get hlen(): number {
    return this.bytes[this.off + F_HLEN];
  }
  get plen(): number {
    return this.bytes[this.off + F_PLEN];
  }
  get operation(): number {
    return readU16(this.bytes, this.off + F_OPER);
  }
  set operation(v: number) {
    writeU16(this.bytes, this.off + F_OPER, v);
  }
  get senderMac(): number {
    return readMac(this.bytes, this.off + F_SHA);
  }
  set senderMac(v: number) {
    writeMac(this.bytes, this.off + F_SHA, v);
  }
  get senderIp(): number {
    return readU32(this.bytes, this.off + F_SPA);
  }
  set senderIp(v: number) {
    writeU32(this.bytes, this.off + F_SPA, v);
  }
  get targetMac(): number {
    return readMac(this.bytes, this.off + F_THA);
  }
  set targetMac(v: number) {
    writeMac(this.bytes, this.off + F_THA, v);
  }
  get targetIp(): number {
    return readU32(this.bytes, this.off + F_TPA);
  }
  set targetIp(v: number) {
    writeU32(this.bytes, this.off + F_TPA, v);
  }
}

/** Parsed ARP request/reply. Reusable. */
export class ArpRepr {
  operation = ARP_OP_REQUEST;
  senderMac = 0;
  senderIp = 0;
  targetMac = 0;
  targetIp = 0;

  /** 'bad-operation' unless the operation is request (1) or reply (2). */
  parse(view: ArpView): WireError | null {
    const op = view.operation;
    if (op !== ARP_OP_REQUEST && op !== ARP_OP_REPLY) return 'bad-operation';
    this.operation = op;
    this.senderMac = view.senderMac;
    this.senderIp = view.senderIp;
    this.targetMac = view.targetMac;
    this.targetIp = view.targetIp;
    return null;
  }

  bufferLen(): number {
    return ARP_LEN;
  }

  /** Write the 28-byte packet at `off`; returns 28. */
  emit(bytes: Uint8Array, off: number): number {
    needRoom(bytes, off, ARP_LEN, 'arp emit');
    writeU16(bytes, off + F_HTYPE, ARP_HTYPE_ETHERNET);
    writeU16(bytes, off + F_PTYPE, ETHERTYPE_IPV4);
    bytes[off + F_HLEN] = 6;
    bytes[off + F_PLEN] = 4;
    writeU16(bytes, off + F_OPER, this.operation);
    writeMac(bytes, off + F_SHA, this.senderMac);
    writeU32(bytes, off + F_SPA, this.senderIp);
    writeMac(bytes, off + F_THA, this.targetMac);
    writeU32(bytes, off + F_TPA, this.targetIp);
    return ARP_LEN;
  }
}
