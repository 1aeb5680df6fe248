/**
 * UDP datagrams (RFC 768) over IPv4.
 *
 *    0              16              32
 *   +---------------+---------------+
 *   | source port   | dest port     |  0
 *   | length        | checksum      |  4
 *   | data ...                      |  8
 *
 * The checksum covers the IPv4 pseudo-header, header and data. A transmitted checksum of 0 means
 * "none" (always accepted); a computed checksum of 0 is sent as 0xffff.
 */
import { ByteView, inBounds, needRoom, readU16, writeU16 } from './bytes.js';
import { checksum, checksumPartial, pseudoHeaderSumV4 } from './checksum.js';
import type { WireError } from './errors.js';
import { IPPROTO_UDP } from './ipv4.js';

export const UDP_HEADER_LEN = 8;
export const UDP_MAX_PAYLOAD_V4 = 0xffff - 20 - UDP_HEADER_LEN;

const F_SRC_PORT = 0;
const F_DST_PORT = 2;
const F_LEN = 4;
const F_CHECKSUM = 6;

/**
 * Checked view of a UDP datagram. The window given to `reset` is the IP payload; after `reset` it is
 * trimmed to the UDP length field.
 */
export class UdpView extends ByteView {
  /**
   * 'truncated' (window outside `bytes` or < 8 bytes), 'bad-length' (length field < 8), 'truncated'
   * (length field > the bytes available).
   */
  static check(bytes: Uint8Array, off: number, len: number): WireError | null {
    if (!inBounds(bytes, off, len) || len < UDP_HEADER_LEN) return 'truncated';
    const ulen = readU16(bytes, off + F_LEN);
    if (ulen < UDP_HEADER_LEN) return 'bad-length';
    if (ulen > len) return 'truncated';
    return null;
  }

  reset(bytes: Uint8Array, off: number, len: number): WireError | null {
    const e = UdpView.check(bytes, off, len);
    if (e !== null) {
      this.clear();
      return e;
    }
    this.bind(bytes, off, readU16(bytes, off + F_LEN));
    return null;
  }

  static checked(bytes: Uint8Array, off = 0, len = bytes.length - off): UdpView | WireError {
    const v = new UdpView();
    return v.reset(bytes, off, len) ?? v;
  }

  get srcPort(): number {
    return readU16(this.bytes, this.off + F_SRC_PORT);
  }
  set srcPort(v: number) {
    writeU16(this.bytes, this.off + F_SRC_PORT, v);
  }
  get dstPort(): number {
    return readU16(this.bytes, this.off + F_DST_PORT);
  }
  set dstPort(v: number) {
    writeU16(this.bytes, this.off + F_DST_PORT, v);
  }
  get length(): number {
    return readU16(this.bytes, this.off + F_LEN);
  }
  set length(v: number) {
    writeU16(this.bytes, this.off + F_LEN, v);
  }
  get checksum(): number {
    return readU16(this.bytes, this.off + F_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.bytes, this.off + F_CHECKSUM, v);
  }
  get payloadOff(): number {
    return this.off + UDP_HEADER_LEN;
  }
  get payloadLen(): number {
    return this.len - UDP_HEADER_LEN;
  }

  /** True if the checksum field is 0 (none) or verifies against the pseudo-header. */
  verifyChecksum(src: number, dst: number): boolean {
    if (this.checksum === 0) return true;
    return checksum(this.bytes, this.off, this.len, pseudoHeaderSumV4(src, dst, IPPROTO_UDP, this.len)) === 0;
  }

  /** Compute and store the checksum (0 is stored as 0xffff). */
  fillChecksum(src: number, dst: number): void {
    this.checksum = 0;
    this.checksum = udpChecksum(this.bytes, this.off, this.len, src, dst);
  }
}

/** Checksum to store for a datagram of `len` bytes at `off` whose checksum field is zero. */
function udpChecksum(bytes: Uint8Array, off: number, len: number, src: number, dst: number): number {
  const c = ~checksumPartial(bytes, off, len, pseudoHeaderSumV4(src, dst, IPPROTO_UDP, len)) & 0xffff;
  return c === 0 ? 0xffff : c;
}

/** Parsed UDP header. Reusable. Data stays in place at `payloadOff` of the parsed bytes. */
export class UdpRepr {
  srcPort = 0;
  dstPort = 0;
  payloadLen = 0;
  /** Absolute index of the data in the parsed view's bytes (set by `parse`). */
  payloadOff = 0;
  /** The datagram carried a checksum (false when the field was 0). */
  hadChecksum = false;

  /** 'bad-checksum' if `verifyChecksum` and a non-zero checksum is wrong. */
  parse(view: UdpView, src: number, dst: number, verifyChecksum = true): WireError | null {
    if (verifyChecksum && !view.verifyChecksum(src, dst)) return 'bad-checksum';
    this.srcPort = view.srcPort;
    this.dstPort = view.dstPort;
    this.payloadOff = view.payloadOff;
    this.payloadLen = view.payloadLen;
    this.hadChecksum = view.checksum !== 0;
    return null;
  }

  bufferLen(): number {
    return UDP_HEADER_LEN + this.payloadLen;
  }

  /**
   * Write the header at `off` and, if `fillChecksum`, the checksum over the pseudo-header, header and
   * the `payloadLen` data bytes the caller placed at off + 8 (else the checksum is 0, "none").
   * Returns 8.
   */
  emit(bytes: Uint8Array, off: number, src: number, dst: number, fillChecksum = true): number {
    const len = UDP_HEADER_LEN + this.payloadLen;
    if (this.payloadLen < 0 || len > 0xffff) throw new RangeError(`udp emit: payload length ${this.payloadLen}`);
    needRoom(bytes, off, len, 'udp emit');
    writeU16(bytes, off + F_SRC_PORT, this.srcPort);
    writeU16(bytes, off + F_DST_PORT, this.dstPort);
    writeU16(bytes, off + F_LEN, len);
    writeU16(bytes, off + F_CHECKSUM, 0);
    if (fillChecksum) writeU16(bytes, off + F_CHECKSUM, udpChecksum(bytes, off, len, src, dst));
    return UDP_HEADER_LEN;
  }
}
