/**
 * TCP segments (RFC 9293) over IPv4, with the options this stack speaks: MSS (RFC 9293), window
 * scale and timestamps (RFC 7323), SACK-permitted and SACK blocks (RFC 2018).
 *
 *    0              16              32
 *   +---------------+---------------+
 *   | source port   | dest port     |  0
 *   | sequence number               |  4
 *   | acknowledgment number         |  8
 *   |doff|rsv|N|CEUAPRSF| window    | 12   doff = header length / 4; N = NS (RFC 3540, historic)
 *   | checksum      | urgent ptr    | 16
 *   | options (doff*4 - 20 bytes)   | 20
 *   | data ...                      |
 *
 * Option parsing rules (`parseTcpOptions`): EOL ends the list (what follows is padding); NOP is one
 * byte; every other option has a length byte that must be >= 2 and must not run past the header
 * ('bad-option' otherwise). Known options must have their exact length (SACK: 2 + 8n, n = 1..4),
 * else 'bad-option'; unknown kinds are skipped by their length. A repeated option overwrites.
 *
 * Emit lays options out exactly as Linux's tcp_options_write does, so every option stays 4-aligned:
 *   MSS          02 04 mm mm
 *   TS (+SACKOK) 04 02 08 0a tsval tsecr   or   01 01 08 0a tsval tsecr
 *   SACKOK alone 01 01 04 02                    (only without timestamps)
 *   window scale 01 03 03 ws
 *   SACK blocks  01 01 05 len (left right)*n    (n clamped to what fits in 40 bytes)
 */
import { ByteView, inBounds, needRoom, readU16, readU32, writeU16, writeU32 } from './bytes.js';
import { checksum, pseudoHeaderSumV4 } from './checksum.js';
import type { WireError } from './errors.js';
import { IPPROTO_TCP } from './ipv4.js';

export const TCP_HEADER_LEN = 20;
export const TCP_MAX_HEADER_LEN = 60;
export const TCP_MAX_OPTIONS_LEN = 40;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;
export const TCP_NS = 0x100;

export const TCP_OPT_EOL = 0;
export const TCP_OPT_NOP = 1;
export const TCP_OPT_MSS = 2;
export const TCP_OPT_WSCALE = 3;
export const TCP_OPT_SACK_PERMITTED = 4;
export const TCP_OPT_SACK = 5;
export const TCP_OPT_TIMESTAMP = 8;

export const TCP_MAX_SACK_BLOCKS = 4;
/** Largest window-scale shift (RFC 7323 §2.3): larger received values are used as 14. */
export const TCP_MAX_WSCALE = 14;

const F_SRC_PORT = 0;
const F_DST_PORT = 2;
const F_SEQ = 4;
const F_ACK = 8;
const F_DOFF = 12;
const F_FLAGS = 13;
const F_WINDOW = 14;
const F_CHECKSUM = 16;
const F_URGENT = 18;

/** Render flags like tcpdump: "S", "S.", "P.", "F.", "R" ("." = ACK). */
export function tcpFlagsString(flags: number): string {
  let s = '';
  if (flags & TCP_SYN) s += 'S';
  if (flags & TCP_FIN) s += 'F';
  if (flags & TCP_RST) s += 'R';
  if (flags & TCP_PSH) s += 'P';
  if (flags & TCP_URG) s += 'U';
  if (flags & TCP_ECE) s += 'E';
  if (flags & TCP_CWR) s += 'W';
  if (flags & TCP_ACK) s += '.';
  if (flags & TCP_NS) s += 'N';
  return s === '' ? 'none' : s;
}

/**
 * Checked view of a TCP segment. The window given to `reset` is the whole segment (the IP payload,
 * whose length IPv4 already validated).
 */
export class TcpView extends ByteView {
  /**
   * 'truncated' (window outside `bytes`, or < 20 bytes), 'bad-data-offset' (data offset < 5),
   * 'truncated' (header longer than the segment). Options are checked by `TcpRepr.parse`.
   */
  static check(bytes: Uint8Array, off: number, len: number): WireError | null {
    if (!inBounds(bytes, off, len) || len < TCP_HEADER_LEN) return 'truncated';
    const hl = (bytes[off + F_DOFF] >>> 4) * 4;
    if (hl < TCP_HEADER_LEN) return 'bad-data-offset';
    if (hl > len) return 'truncated';
    return null;
  }

  reset(bytes: Uint8Array, off: number, len: number): WireError | null {
    const e = TcpView.check(bytes, off, len);
    if (e !== null) {
      this.clear();
      return e;
    }
    this.bind(bytes, off, len);
    return null;
  }

  static checked(bytes: Uint8Array, off = 0, len = bytes.length - off): TcpView | WireError {
    const v = new TcpView();
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
  get seqNum(): number {
    return readU32(this.bytes, this.off + F_SEQ);
  }
  set seqNum(v: number) {
    writeU32(this.bytes, this.off + F_SEQ, v);
  }
  get ackNum(): number {
    return readU32(this.bytes, this.off + F_ACK);
  }
  set ackNum(v: number) {
    writeU32(this.bytes, this.off + F_ACK, v);
  }
  /** Header length in bytes (data offset * 4), 20..60. */
  get headerLen(): number {
    return (this.bytes[this.off + F_DOFF] >>> 4) * 4;
  }
  /** Sets the data offset to len / 4, keeping the NS bit. */
  set headerLen(len: number) {
    const i = this.off + F_DOFF;
    this.bytes[i] = (((len >>> 2) & 0xf) << 4) | (this.bytes[i] & 1);
  }
  /** The 9 flag bits: TCP_FIN .. TCP_CWR, plus TCP_NS. */
  get flags(): number {
    return ((this.bytes[this.off + F_DOFF] & 1) << 8) | this.bytes[this.off + F_FLAGS];
  }
  set flags(v: number) {
    const i = this.off + F_DOFF;
    this.bytes[i] = (this.bytes[i] & 0xf0) | ((v >>> 8) & 1);
    this.bytes[this.off + F_FLAGS] = v & 0xff;
  }
  hasFlags(mask: number): boolean {
    return (this.flags & mask) === mask;
  }
  get window(): number {
    return readU16(this.bytes, this.off + F_WINDOW);
  }
  set window(v: number) {
    writeU16(this.bytes, this.off + F_WINDOW, v);
  }
  get checksum(): number {
    return readU16(this.bytes, this.off + F_CHECKSUM);
  }
  set checksum(v: number) {
    writeU16(this.bytes, this.off + F_CHECKSUM, v);
  }
  get urgent(): number {
    return readU16(this.bytes, this.off + F_URGENT);
  }
  set urgent(v: number) {
    writeU16(this.bytes, this.off + F_URGENT, v);
  }
  get optionsOff(): number {
    return this.off + TCP_HEADER_LEN;
  }
  get optionsLen(): number {
    return this.headerLen - TCP_HEADER_LEN;
  }
  get payloadOff(): number {
    return this.off + this.headerLen;
  }
  get payloadLen(): number {
    return this.len - this.headerLen;
  }
  /** Sequence space the segment occupies: data length + 1 for SYN + 1 for FIN. */
  get segmentLen(): number {
    const f = this.bytes[this.off + F_FLAGS];
    return this.payloadLen + (f & TCP_SYN ? 1 : 0) + (f & TCP_FIN ? 1 : 0);
  }

  verifyChecksum(src: number, dst: number): boolean {
    return checksum(this.bytes, this.off, this.len, pseudoHeaderSumV4(src, dst, IPPROTO_TCP, this.len)) === 0;
  }

  fillChecksum(src: number, dst: number): void {
    this.checksum = 0;
    this.checksum = checksum(this.bytes, this.off, this.len, pseudoHeaderSumV4(src, dst, IPPROTO_TCP, this.len));
  }
}

/**
 * Parsed TCP header and options. Reusable: `parse` resets every field; SACK blocks live in a
 * preallocated array, so parsing allocates nothing. Absent options: mss 0 (Linux also treats an
 * MSS of 0 as absent), wscale -1, sackPermitted false, sackCount 0, tsPresent false.
 */
export class TcpRepr {
  srcPort = 0;
  dstPort = 0;
  seqNum = 0;
  ackNum = 0;
  /** TCP_* flag bits (9 bits with NS). */
  flags = 0;
  /** Window field as sent (not scaled). */
  window = 0;
  urgent = 0;
  mss = 0;
  wscale = -1;
  sackPermitted = false;
  /** Number of SACK blocks in `sackBlocks` (0..4). */
  sackCount = 0;
  /** SACK block i is [sackBlocks[2i], sackBlocks[2i+1]) in sequence space. */
  readonly sackBlocks = new Uint32Array(2 * TCP_MAX_SACK_BLOCKS);
  tsPresent = false;
  tsVal = 0;
  tsEcr = 0;
  /** Absolute index of the data in the parsed bytes (set by `parse`). */
  payloadOff = 0;
  payloadLen = 0;

  /** Clear the options (before building a segment, or on parse). */
  clearOptions(): void {
    this.mss = 0;
    this.wscale = -1;
    this.sackPermitted = false;
    this.sackCount = 0;
    this.tsPresent = false;
    this.tsVal = 0;
    this.tsEcr = 0;
  }

  /** Append a SACK block; false if four are already set. */
  addSack(left: number, right: number): boolean {
    if (this.sackCount >= TCP_MAX_SACK_BLOCKS) return false;
    this.sackBlocks[2 * this.sackCount] = left;
    this.sackBlocks[2 * this.sackCount + 1] = right;
    this.sackCount++;
    return true;
  }

  hasFlags(mask: number): boolean {
    return (this.flags & mask) === mask;
  }

  /** 'bad-checksum' (when `verifyChecksum`), then the option errors of `parseTcpOptions`. */
  parse(view: TcpView, src: number, dst: number, verifyChecksum = true): WireError | null {
    if (verifyChecksum && !view.verifyChecksum(src, dst)) return 'bad-checksum';
    this.srcPort = view.srcPort;
    this.dstPort = view.dstPort;
    this.seqNum = view.seqNum;
    this.ackNum = view.ackNum;
    this.flags = view.flags;
    this.window = view.window;
    this.urgent = view.urgent;
    this.payloadOff = view.payloadOff;
    this.payloadLen = view.payloadLen;
    return parseTcpOptions(this, view.bytes, view.optionsOff, view.optionsLen);
  }

  /** SACK blocks `emit` will write: sackCount clamped to the room left in 40 option bytes. */
  sackBlocksToEmit(): number {
    const room = TCP_MAX_OPTIONS_LEN - this.fixedOptionsLen() - 4;
    if (room < 8 || this.sackCount <= 0) return 0;
    return Math.min(this.sackCount, TCP_MAX_SACK_BLOCKS, Math.floor(room / 8));
  }

  private fixedOptionsLen(): number {
    return (
      (this.mss > 0 ? 4 : 0) +
      (this.tsPresent ? 12 : this.sackPermitted ? 4 : 0) +
      (this.wscale >= 0 ? 4 : 0)
    );
  }

  /** Option bytes `emit` writes (a multiple of 4, at most 40). */
  optionsLen(): number {
    const n = this.sackBlocksToEmit();
    return this.fixedOptionsLen() + (n > 0 ? 4 + 8 * n : 0);
  }

  /** 20 + optionsLen(). */
  headerLen(): number {
    return TCP_HEADER_LEN + this.optionsLen();
  }

  /** Header, options and data. */
  bufferLen(): number {
    return this.headerLen() + this.payloadLen;
  }

  /**
   * Write header and options at `off` and, if `fillChecksum`, the checksum over the pseudo-header,
   * header and the `payloadLen` data bytes the caller placed at off + headerLen(). Returns the
   * header length. `payloadOff` is ignored.
   */
  emit(bytes: Uint8Array, off: number, src: number, dst: number, fillChecksum = true): number {
    const hl = this.headerLen();
    const total = hl + this.payloadLen;
    if (this.payloadLen < 0 || total > 0xffff) throw new RangeError(`tcp emit: payload length ${this.payloadLen}`);
    needRoom(bytes, off, total, 'tcp emit');
    writeU16(bytes, off + F_SRC_PORT, this.srcPort);
    writeU16(bytes, off + F_DST_PORT, this.dstPort);
    writeU32(bytes, off + F_SEQ, this.seqNum);
    writeU32(bytes, off + F_ACK, this.ackNum);
    bytes[off + F_DOFF] = ((hl >>> 2) << 4) | ((this.flags >>> 8) & 1);
    bytes[off + F_FLAGS] = this.flags & 0xff;
    writeU16(bytes, off + F_WINDOW, this.window);
    writeU16(bytes, off + F_CHECKSUM, 0);
    writeU16(bytes, off + F_URGENT, this.urgent);
    let i = off + TCP_HEADER_LEN;
    if (this.mss > 0) {
      bytes[i] = TCP_OPT_MSS;
      bytes[i + 1] = 4;
      writeU16(bytes, i + 2, this.mss);
      i += 4;
    }
    if (this.tsPresent) {
      if (this.sackPermitted) {
        bytes[i] = TCP_OPT_SACK_PERMITTED;
        bytes[i + 1] = 2;
      } else {
        bytes[i] = TCP_OPT_NOP;
        bytes[i + 1] = TCP_OPT_NOP;
      }
      bytes[i + 2] = TCP_OPT_TIMESTAMP;
      bytes[i + 3] = 10;
      writeU32(bytes, i + 4, this.tsVal);
      writeU32(bytes, i + 8, this.tsEcr);
      i += 12;
    } else if (this.sackPermitted) {
      bytes[i] = TCP_OPT_NOP;
      bytes[i + 1] = TCP_OPT_NOP;
      bytes[i + 2] = TCP_OPT_SACK_PERMITTED;
      bytes[i + 3] = 2;
      i += 4;
    }
    if (this.wscale >= 0) {
      bytes[i] = TCP_OPT_NOP;
      bytes[i + 1] = TCP_OPT_WSCALE;
      bytes[i + 2] = 3;
      bytes[i + 3] = Math.min(this.wscale, TCP_MAX_WSCALE);
      i += 4;
    }
    const n = this.sackBlocksToEmit();
    if (n > 0) {
      bytes[i] = TCP_OPT_NOP;
      bytes[i + 1] = TCP_OPT_NOP;
      bytes[i + 2] = TCP_OPT_SACK;
      bytes[i + 3] = 2 + 8 * n;
      i += 4;
      for (let k = 0; k < 2 * n; k++, i += 4) writeU32(bytes, i, this.sackBlocks[k]);
    }
    if (fillChecksum) {
      writeU16(bytes, off + F_CHECKSUM, checksum(bytes, off, total, pseudoHeaderSumV4(src, dst, IPPROTO_TCP, total)));
    }
    return hl;
  }
}

/**
 * Parse the option bytes [off, off+len) into `repr` (whose options are cleared first). Returns
 * 'bad-option' for a length byte missing, < 2 or overrunning the options, or a known option with the
 * wrong length; null otherwise. Received window scales above 14 are stored as 14 (RFC 7323 §2.3).
 */
export function parseTcpOptions(repr: TcpRepr, b: Uint8Array, off: number, len: number): WireError | null {
  repr.clearOptions();
  const end = off + len;
  let i = off;
  while (i < end) {
    const kind = b[i];
    if (kind === TCP_OPT_EOL) break;
    if (kind === TCP_OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return 'bad-option';
    const olen = b[i + 1];
    if (olen < 2 || i + olen > end) return 'bad-option';
    switch (kind) {
      case TCP_OPT_MSS:
        if (olen !== 4) return 'bad-option';
        repr.mss = readU16(b, i + 2);
        break;
      case TCP_OPT_WSCALE:
        if (olen !== 3) return 'bad-option';
        repr.wscale = Math.min(b[i + 2], TCP_MAX_WSCALE);
        break;
      case TCP_OPT_SACK_PERMITTED:
        if (olen !== 2) return 'bad-option';
        repr.sackPermitted = true;
        break;
      case TCP_OPT_SACK: {
        const n = (olen - 2) >>> 3;
        if (olen < 10 || (olen - 2) % 8 !== 0 || n > TCP_MAX_SACK_BLOCKS) return 'bad-option';
        for (let k = 0; k < 2 * n; k++) repr.sackBlocks[k] = readU32(b, i + 2 + 4 * k);
        repr.sackCount = n;
        break;
      }
      case TCP_OPT_TIMESTAMP:
        if (olen !== 10) return 'bad-option';
        repr.tsPresent = true;
        repr.tsVal = readU32(b, i + 2);
        repr.tsEcr = readU32(b, i + 6);
        break;
      default:
        // Unknown option (e.g. MD5 19, TFO 34, experimental 253/254): skipped by its length.
        break;
    }
    i += olen;
  }
  return null;
}
