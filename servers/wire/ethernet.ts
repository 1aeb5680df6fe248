/**
 * Ethernet II frames (IEEE 802.3 with an EtherType; no 802.1Q tag handling: a tagged frame reports
 * EtherType 0x8100 and the server drops it).
 *
 *   0                   6                   12      14
 *   +-------------------+-------------------+-------+---------
 *   | destination MAC   | source MAC        | type  | payload (46..1500, may carry padding)
 *   +-------------------+-------------------+-------+---------
 *
 * MAC addresses are numbers holding the 48-bit value (first octet most significant), e.g.
 * `0xffffffffffff` for broadcast: exact in a float64, comparable with `===`, and free to copy.
 */
import { ByteView, inBounds, needRoom, readU16, readU32, writeU16, writeU32 } from './bytes.js';
import type { WireError } from './errors.js';

export const ETH_HEADER_LEN = 14;
/** Smallest frame on the wire without FCS: shorter frames are padded with zeros to this length. */
export const ETH_MIN_FRAME_LEN = 60;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;

export const MAC_BROADCAST = 0xffffffffffff;
export const MAC_ZERO = 0;

const F_DST = 0;
const F_SRC = 6;
const F_TYPE = 12;

const TWO32 = 0x100000000;

/** Read a 6-byte MAC at index i. */
export function readMac(b: Uint8Array, i: number): number {
  return ((b[i] << 8) | b[i + 1]) * TWO32 + readU32(b, i + 2);
}

/** Write a 48-bit MAC at index i. */
export function writeMac(b: Uint8Array, i: number, mac: number): void {
  writeU16(b, i, Math.floor(mac / TWO32));
  writeU32(b, i + 2, mac >>> 0);
}

/** Parse "aa:bb:cc:dd:ee:ff" (also '-' separated, case-insensitive); null if malformed. */
export function macParse(s: string): number | null {
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(s);
  if (m === null) return null;
  let v = 0;
  for (let k = 1; k <= 6; k++) v = v * 256 + parseInt(m[k], 16);
  return v;
}

/** Format as lowercase "aa:bb:cc:dd:ee:ff". */
export function macFormat(mac: number): string {
  let s = '';
  for (let k = 5; k >= 0; k--) {
    const octet = Math.floor(mac / 2 ** (8 * k)) & 0xff;
    s += (octet < 16 ? '0' : '') + octet.toString(16) + (k > 0 ? ':' : '');
  }
  return s;
}

export function macIsBroadcast(mac: number): boolean {
  return mac === MAC_BROADCAST;
}

/** Group bit (I/G, lowest bit of the first octet) set: multicast or broadcast. */
export function macIsMulticast(mac: number): boolean {
  return (Math.floor(mac / 2 ** 40) & 1) === 1;
}

/** An individual (non-group) address other than all-zeros. */
export function macIsUnicast(mac: number): boolean {
  return mac !== 0 && !macIsMulticast(mac);
}

/** Locally administered bit (U/L, second-lowest bit of the first octet). */
export function macIsLocal(mac: number): boolean {
  return (Math.floor(mac / 2 ** 40) & 2) === 2;
}

/** Checked view of an Ethernet II frame. After `reset` succeeds no accessor can fail. */
export class EthernetView extends ByteView {
  /** 'truncated' if the window is outside `bytes` or shorter than the 14-byte header. */
  static check(bytes: Uint8Array, off: number, len: number): WireError | null {
    if (!inBounds(bytes, off, len) || len < ETH_HEADER_LEN) return 'truncated';
    return null;
  }

  /** Validate and bind. On error the view is cleared. */
  reset(bytes: Uint8Array, off: number, len: number): WireError | null {
    const e = EthernetView.check(bytes, off, len);
    if (e !== null) {
      this.clear();
      return e;
    }
    this.bind(bytes, off, len);
    return null;
  }

  /** Allocating convenience for tests and slow paths. */
  static checked(bytes: Uint8Array, off = 0, len = bytes.length - off): EthernetView | WireError {
    const v = new EthernetView();
    return v.reset(bytes, off, len) ?? v;
  }

  get dst(): number {
    return readMac(this.bytes, this.off + F_DST);
  }
  set dst(mac: number) {
    writeMac(this.bytes, this.off + F_DST, mac);
  }
  get src(): number {
    return readMac(this.bytes, this.off + F_SRC);
  }
  set src(mac: number) {
    writeMac(this.bytes, this.off + F_SRC, mac);
  }
  get ethertype(): number {
    return readU16(this.bytes, this.off + F_TYPE);
  }
  set ethertype(t: number) {
    writeU16(this.bytes, this.off + F_TYPE, t);
  }
  /** Absolute index of the payload in `bytes`. */
  get payloadOff(): number {
    return this.off + ETH_HEADER_LEN;
  }
  /** Payload length including any minimum-frame padding (the network layer trims it). */
  get payloadLen(): number {
    return this.len - ETH_HEADER_LEN;
  }
}

/** Parsed Ethernet II header. Reusable: `parse` overwrites every field. */
export class EthernetRepr {
  dst = 0;
  src = 0;
  ethertype = 0;

  /** 'unsupported' for an 802.3 length field (EtherType < 0x0600) instead of a type. */
  parse(view: EthernetView): WireError | null {
    const t = view.ethertype;
    if (t < 0x0600) return 'unsupported';
    this.dst = view.dst;
    this.src = view.src;
    this.ethertype = t;
    return null;
  }

  bufferLen(): number {
    return ETH_HEADER_LEN;
  }

  /** Write the 14-byte header at `off`; returns the bytes written. Payload goes at off + 14. */
  emit(bytes: Uint8Array, off: number): number {
    needRoom(bytes, off, ETH_HEADER_LEN, 'ethernet emit');
    writeMac(bytes, off + F_DST, this.dst);
    writeMac(bytes, off + F_SRC, this.src);
    writeU16(bytes, off + F_TYPE, this.ethertype);
    return ETH_HEADER_LEN;
  }
}
