/**
 * ICMPv4 (RFC 792): echo request/reply, destination unreachable and time exceeded. Other types parse
 * as 'unsupported' (servers count and drop them).
 *
 *    0       8      16                      32
 *   +-------+-------+-----------------------+
 *   | type  | code  | checksum              |  0
 *   | identifier    | sequence number       |  4   echo request / reply
 *   | unused        | next-hop MTU          |  4   destination unreachable (MTU only for code 4)
 *   | unused                                |  4   time exceeded
 *   | data ...                              |  8
 *
 * For the two error types the data quotes the offending datagram: its IPv4 header and at least its
 * first 8 payload bytes (RFC 792; RFC 1812 §4.3.2.3 allows up to 576 bytes in total). The checksum
 * covers the whole message.
 */
import { ByteView, inBounds, needRoom, readU16, readU32, writeU16 } from './bytes.js';
import { checksum } from './checksum.js';
import type { WireError } from './errors.js';
import { IPV4_HEADER_LEN, IPPROTO_TCP, IPPROTO_UDP } from './ipv4.js';

export const ICMP_HEADER_LEN = 8;

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DST_UNREACHABLE = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;

/** Destination-unreachable codes (RFC 792, RFC 1122, RFC 1812). */
export const ICMP_UNREACH_NET = 0;
export const ICMP_UNREACH_HOST = 1;
export const ICMP_UNREACH_PROTOCOL = 2;
export const ICMP_UNREACH_PORT = 3;
export const ICMP_UNREACH_FRAG_NEEDED = 4;
export const ICMP_UNREACH_SRC_ROUTE_FAILED = 5;
export const ICMP_UNREACH_ADMIN_PROHIBITED = 13;
const ICMP_UNREACH_MAX_CODE = 15;

/** Time-exceeded codes. */
export const ICMP_TIMXCEED_TTL = 0;
export const ICMP_TIMXCEED_REASSEMBLY = 1;

/** Largest quote that keeps an error message within 576 bytes (RFC 1812 §4.3.2.3). */
export const ICMP_ERROR_MAX_QUOTE = 576 - IPV4_HEADER_LEN - ICMP_HEADER_LEN;
/** Payload bytes of the offending datagram that must be quoted after its header. */
export const ICMP_ERROR_MIN_QUOTED_PAYLOAD = 8;

const F_TYPE = 0;
const F_CODE = 1;
const F_CHECKSUM = 2;
const F_IDENT = 4;
const F_SEQ = 6;
const F_MTU = 6;

/** How many bytes of an offending datagram of `totalLen` bytes to quote in an error message. */
export function icmpErrorQuoteLen(totalLen: number): number {
  return Math.min(totalLen, ICMP_ERROR_MAX_QUOTE);
}

/** Checked view of an ICMPv4 message (the window is the whole message). */
export class IcmpView extends ByteView {
  /** 'truncated' if the window is outside `bytes` or shorter than the 8-byte header. */
  static check(bytes: Uint8Array, off: number, len: number): WireError | null {
    if (!inBounds(bytes, off, len) || len < ICMP_HEADER_LEN) return 'truncated';
    return null;
  }

  reset(bytes: Uint8Array, off: number, len: number): WireError | null {
    const e = IcmpView.check(bytes, off, len);
    if (e !== null) {
      this.clear();
      return e;
    }
    this.bind(bytes, off, len);
    return null;
  }

  static checked(bytes: Uint8Array, off = 0, len = bytes.length - off): IcmpView | WireError {
    const v = new IcmpView();
    return v.reset(bytes, off, len) ?? v;
  }

  get type(): number {
    return this.bytes[this.off + F_TYPE];
  }
  set type(v: number) {
    this.bytes[this.off + F_TYPE] = v;
  }
  get code(): number {
    return this.bytes[this.off + F_CODE];
  }
  set code(v: number) {
    this.bytes[this.off + F_CODE] = v;
  }
  get checksum(): number {
    return readU16(this.bytes, this.off + F_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.bytes, this.off + F_CHECKSUM, v);
  }
  /** Echo identifier. */
  get ident(): number {
    return readU16(this.bytes, this.off + F_IDENT);
  }
  set ident(v: number) {
    writeU16(this.bytes, this.off + F_IDENT, v);
  }
  /** Echo sequence number. */
  get seq(): number {
    return readU16(this.bytes, this.off + F_SEQ);
  }
  set seq(v: number) {
    writeU16(this.bytes, this.off + F_SEQ, v);
  }
  /** Next-hop MTU of a "fragmentation needed" message (RFC 1191). */
  get mtu(): number {
    return readU16(this.bytes, this.off + F_MTU);
  }
  set mtu(v: number) {
    writeU16(this.bytes, this.off + F_MTU, v);
  }
  /** The 4 bytes after the checksum as one uint32 ("rest of header"). */
  get restOfHeader(): number {
    return readU32(this.bytes, this.off + F_IDENT);
  }
  /** Absolute index of the data in `bytes`. */
  get dataOff(): number {
    return this.off + ICMP_HEADER_LEN;
  }
  get dataLen(): number {
    return this.len - ICMP_HEADER_LEN;
  }

  verifyChecksum(): boolean {
    return checksum(this.bytes, this.off, this.len) === 0;
  }

  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = checksum(this.bytes, this.off, this.len);
  }
}

/**
 * Parsed ICMPv4 message. Reusable. Data is not copied: `dataOff`/`dataLen` index the parsed view's
 * `bytes`. For error messages the quoted datagram's addresses, protocol and (for TCP/UDP) ports are
 * extracted, so a server can find the socket the error is about without parsing again.
 */
export class IcmpRepr {
  type = ICMP_ECHO_REQUEST;
  code = 0;
  /** Echo identifier and sequence number (0 for other types). */
  ident = 0;
  seq = 0;
  /** Next-hop MTU for destination unreachable / fragmentation needed (0 otherwise). */
  mtu = 0;
  /** Absolute index and length of the data (echo payload or quoted datagram) in the parsed bytes. */
  dataOff = 0;
  dataLen = 0;
  /** Error messages only: the quoted datagram's header fields. */
  innerHeaderLen = 0;
  innerSrc = 0;
  innerDst = 0;
  innerProtocol = 0;
  /** Error messages quoting TCP or UDP: the quoted ports (0 otherwise). */
  innerSrcPort = 0;
  innerDstPort = 0;
  /** Error messages quoting TCP: the quoted sequence number (0 otherwise). */
  innerSeq = 0;

  /**
   * 'bad-checksum' (when `verifyChecksum`), 'unsupported' (other types), 'bad-code' (unknown code of
   * a supported error type), and for the quoted datagram of an error: 'truncated' (shorter than 20
   * bytes, or than its header plus 8 bytes), 'bad-version', 'bad-ihl'.
   */
  parse(view: IcmpView, verifyChecksum = true): WireError | null {
    if (verifyChecksum && !view.verifyChecksum()) return 'bad-checksum';
    const type = view.type;
    const code = view.code;
    this.type = type;
    this.code = code;
    this.ident = 0;
    this.seq = 0;
    this.mtu = 0;
    this.dataOff = view.dataOff;
    this.dataLen = view.dataLen;
    this.innerHeaderLen = 0;
    this.innerSrc = 0;
    this.innerDst = 0;
    this.innerProtocol = 0;
    this.innerSrcPort = 0;
    this.innerDstPort = 0;
    this.innerSeq = 0;
    switch (type) {
      case ICMP_ECHO_REQUEST:
      case ICMP_ECHO_REPLY:
        this.ident = view.ident;
        this.seq = view.seq;
        return null;
      case ICMP_DST_UNREACHABLE:
        if (code > ICMP_UNREACH_MAX_CODE) return 'bad-code';
        if (code === ICMP_UNREACH_FRAG_NEEDED) this.mtu = view.mtu;
        return this.parseQuote(view.bytes, this.dataOff, this.dataLen);
      case ICMP_TIME_EXCEEDED:
        if (code > ICMP_TIMXCEED_REASSEMBLY) return 'bad-code';
        return this.parseQuote(view.bytes, this.dataOff, this.dataLen);
      default:
        return 'unsupported';
    }
  }

  private parseQuote(b: Uint8Array, off: number, len: number): WireError | null {
    // The quoted header's total length describes the original datagram, which was cut: only the
    // header itself and the first 8 payload bytes are required to be here.
    if (len < IPV4_HEADER_LEN) return 'truncated';
    const vi = b[off];
    if (vi >>> 4 !== 4) return 'bad-version';
    const hl = (vi & 0xf) * 4;
    if (hl < IPV4_HEADER_LEN) return 'bad-ihl';
    if (len < hl + ICMP_ERROR_MIN_QUOTED_PAYLOAD) return 'truncated';
    this.innerHeaderLen = hl;
    this.innerProtocol = b[off + 9];
    this.innerSrc = readU32(b, off + 12);
    this.innerDst = readU32(b, off + 16);
    if (this.innerProtocol === IPPROTO_TCP || this.innerProtocol === IPPROTO_UDP) {
      this.innerSrcPort = readU16(b, off + hl);
      this.innerDstPort = readU16(b, off + hl + 2);
      if (this.innerProtocol === IPPROTO_TCP) this.innerSeq = readU32(b, off + hl + 4);
    }
    return null;
  }

  /** Header plus data. */
  bufferLen(): number {
    return ICMP_HEADER_LEN + this.dataLen;
  }

  /**
   * Write the 8-byte header at `off` and the checksum over header + `dataLen` bytes of data, which
   * the caller has already placed at off + 8 (echo payload, or the quote for an error; see
   * `icmpErrorQuoteLen`). `dataOff` is ignored. Returns 8.
   */
  emit(bytes: Uint8Array, off: number, fillChecksum = true): number {
    needRoom(bytes, off, ICMP_HEADER_LEN + this.dataLen, 'icmp emit');
    bytes[off + F_TYPE] = this.type;
    bytes[off + F_CODE] = this.code;
    writeU16(bytes, off + F_CHECKSUM, 0);
    if (this.type === ICMP_ECHO_REQUEST || this.type === ICMP_ECHO_REPLY) {
      writeU16(bytes, off + F_IDENT, this.ident);
      writeU16(bytes, off + F_SEQ, this.seq);
    } else {
      writeU16(bytes, off + F_IDENT, 0);
      writeU16(
        bytes,
        off + F_MTU,
        this.type === ICMP_DST_UNREACHABLE && this.code === ICMP_UNREACH_FRAG_NEEDED ? this.mtu : 0,
      );
    }
    if (fillChecksum) {
      writeU16(bytes, off + F_CHECKSUM, checksum(bytes, off, ICMP_HEADER_LEN + this.dataLen));
    }
    return ICMP_HEADER_LEN;
  }
}
