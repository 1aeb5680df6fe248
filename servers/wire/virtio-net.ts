/**
 * struct virtio_net_hdr (virtio 1.x §5.1.6; linux/virtio_net.h), the header a TAP opened with
 * IFF_VNET_HDR puts in front of every frame, both ways. Little-endian (the tun default on
 * little-endian hosts; TUNSETVNETBE is not used). 10 bytes, or 12 with num_buffers (TUNSETVNETHDRSZ).
 *
 *    0       1       2               4               6               8               10
 *   +-------+-------+---------------+---------------+---------------+---------------+---------------+
 *   | flags |gsoType| hdr_len       | gso_size      | csum_start    | csum_offset   | num_buffers   |
 *   +-------+-------+---------------+---------------+---------------+---------------+---------------+
 *
 *   flags      NEEDS_CSUM: the transport checksum is partial: the field at csum_start + csum_offset
 *              holds the pseudo-header sum (folded, not complemented) and the sum of the bytes from
 *              csum_start to the end is still to be added (whoever delivers the packet locally needs
 *              no verification: the sender is the local kernel or this stack). DATA_VALID: the
 *              checksum was verified already (receive only).
 *   gsoType    NONE, or TCPV4 (optionally | ECN): the frame is one TCP segment larger than the MSS,
 *              to be cut into gso_size-byte payloads (Linux's tcp_gso_segment), each with a copy of
 *              the headers (hdr_len bytes: Ethernet + IPv4 + TCP). UDP, TCPV6, UDP_L4 are not
 *              supported here (no IPv6, no UDP GSO): a frame with them is dropped.
 *   csum_start / csum_offset  where the checksummed range starts (from the Ethernet header) and where
 *              in it the checksum field is.
 *
 * Contract (as every view in this folder): after `reset` returned null, no accessor reads outside the
 * header; `checkFrame` validates the header against the frame it came with, so the driver never trusts
 * an offset from the wire. Malformed input returns a WireError, never throws.
 */
import { ByteView, inBounds } from './bytes.js';
import type { WireError } from './errors.js';

export const VNET_HDR_LEN = 10;
export const VNET_HDR_MRG_LEN = 12;

export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_F_RSC_INFO = 4;
const KNOWN_FLAGS = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID | VIRTIO_NET_HDR_F_RSC_INFO;

export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

const F_FLAGS = 0;
const F_GSO_TYPE = 1;
const F_HDR_LEN = 2;
const F_GSO_SIZE = 4;
const F_CSUM_START = 6;
const F_CSUM_OFFSET = 8;
const F_NUM_BUFFERS = 10;

const ETH_LEN = 14;
const ETHERTYPE_IPV4 = 0x0800;
const IPPROTO_TCP = 6;

function rdLe16(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8);
}
function wrLe16(b: Uint8Array, i: number, v: number): void {
  b[i] = v;
  b[i + 1] = v >>> 8;
}

export class VirtioNetHdrView extends ByteView {
  /** 'truncated' unless [off, off+size) is inside bytes; size is 10 or 12 ('bad-length' otherwise). */
  static check(bytes: Uint8Array, off: number, size: number): WireError | null {
    if (size !== VNET_HDR_LEN && size !== VNET_HDR_MRG_LEN) return 'bad-length';
    if (!inBounds(bytes, off, size)) return 'truncated';
    return null;
  }

  reset(bytes: Uint8Array, off: number, size: number = VNET_HDR_LEN): WireError | null {
    const e = VirtioNetHdrView.check(bytes, off, size);
    if (e !== null) {
      this.clear();
      return e;
    }
    this.bind(bytes, off, size);
    return null;
  }

  static checked(bytes: Uint8Array, off = 0, size: number = VNET_HDR_LEN): VirtioNetHdrView | WireError {
    const v = new VirtioNetHdrView();
    return v.reset(bytes, off, size) ?? v;
  }

  get flags(): number {
    return this.bytes[this.off + F_FLAGS];
  }
  set flags(v: number) {
    this.bytes[this.off + F_FLAGS] = v;
  }
  get gsoType(): number {
    return this.bytes[this.off + F_GSO_TYPE];
  }
  set gsoType(v: number) {
    this.bytes[this.off + F_GSO_TYPE] = v;
  }
  get hdrLen(): number {
    return rdLe16(this.bytes, this.off + F_HDR_LEN);
  }
  set hdrLen(v: number) {
    wrLe16(this.bytes, this.off + F_HDR_LEN, v);
  }
  get gsoSize(): number {
    return rdLe16(this.bytes, this.off + F_GSO_SIZE);
  }
  set gsoSize(v: number) {
    wrLe16(this.bytes, this.off + F_GSO_SIZE, v);
  }
  get csumStart(): number {
    return rdLe16(this.bytes, this.off + F_CSUM_START);
  }
  set csumStart(v: number) {
    wrLe16(this.bytes, this.off + F_CSUM_START, v);
  }
  get csumOffset(): number {
    return rdLe16(this.bytes, this.off + F_CSUM_OFFSET);
  }
  set csumOffset(v: number) {
    wrLe16(this.bytes, this.off + F_CSUM_OFFSET, v);
  }
  /** 0 for the 10-byte header. */
  get numBuffers(): number {
    return this.len >= VNET_HDR_MRG_LEN ? rdLe16(this.bytes, this.off + F_NUM_BUFFERS) : 0;
  }

  /** Zero every field (a plain frame: no offload). */
  zero(): void {
    for (let i = 0; i < this.len; i++) this.bytes[this.off + i] = 0;
  }

  /** The checksum needs no verification by the receiver (partial from the local kernel, or verified). */
  get csumTrusted(): boolean {
    return (this.flags & (VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID)) !== 0;
  }

  get isGso(): boolean {
    return (this.gsoType & ~VIRTIO_NET_HDR_GSO_ECN) !== VIRTIO_NET_HDR_GSO_NONE;
  }

  /**
   * Validate a received header against its Ethernet frame `frame[frameOff, +frameLen)`:
   *   'bad-code'      unknown flag bits;
   *   'unsupported'   a GSO type other than NONE / TCPV4 (| ECN);
   *   'bad-length'    NEEDS_CSUM with csum_start / csum_offset outside the frame, or hdr_len beyond it;
   *   'bad-protocol'  GSO on a frame that is not TCP over IPv4 (as Linux's virtio_net_hdr_to_skb
   *                   rejects), or without NEEDS_CSUM, or with gso_size 0.
   * null: usable.
   */
  checkFrame(frame: Uint8Array, frameOff: number, frameLen: number): WireError | null {
    const flags = this.flags;
    if ((flags & ~KNOWN_FLAGS) !== 0) return 'bad-code';
    const gt = this.gsoType & ~VIRTIO_NET_HDR_GSO_ECN;
    if (gt !== VIRTIO_NET_HDR_GSO_NONE && gt !== VIRTIO_NET_HDR_GSO_TCPV4) return 'unsupported';
    if (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      const start = this.csumStart;
      if (start < ETH_LEN || start + this.csumOffset + 2 > frameLen) return 'bad-length';
    }
    if (this.hdrLen > frameLen) return 'bad-length';
    if (gt === VIRTIO_NET_HDR_GSO_NONE) return null;
    if (this.gsoSize === 0 || (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) === 0) return 'bad-protocol';
    if (frameLen < ETH_LEN + 20 || !inBounds(frame, frameOff, frameLen)) return 'bad-protocol';
    const b = frame;
    if (((b[frameOff + 12] << 8) | b[frameOff + 13]) !== ETHERTYPE_IPV4) return 'bad-protocol';
    if (b[frameOff + ETH_LEN] >> 4 !== 4 || b[frameOff + ETH_LEN + 9] !== IPPROTO_TCP) return 'bad-protocol';
    const ihl = (b[frameOff + ETH_LEN] & 15) * 4;
    if (this.csumStart !== ETH_LEN + ihl || this.csumOffset !== 16) return 'bad-protocol';
    return null;
  }
}
