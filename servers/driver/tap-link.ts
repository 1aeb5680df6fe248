/**
 * A TAP device as a Link: batched, non-blocking reads and writes through the N-API addon, straight
 * between the device and pool buffers (one copy each way, done by the kernel). The fd is opened by the
 * stack on the main thread and outlives driver restarts; a new driver incarnation wraps the same fd.
 * TAP offers no doorbell, so `wait` is the fd: the driver polls it between parks (see driver server).
 *
 * With IFF_VNET_HDR (vnetHdrSize 10 or 12) every frame is preceded by a struct virtio_net_hdr
 * (wire/virtio-net.ts), read and written in place in the pool buffer, in front of the frame:
 *   receive   the slot gets header + frame; the frame's offset moves past the header. A header that
 *             vouches for the checksum (NEEDS_CSUM: partial from the local kernel, DATA_VALID) makes the
 *             frame FRAME_CSUM_OFFLOADED; a GSO header (the kernel's TSO/GRO: frames up to 64 KiB, only
 *             when TUN_F_TSO4 was granted, `gso`) makes it FRAME_GSO. A header that does not match its
 *             frame is a counted drop (drop:vnet-*); so is a frame larger than the MTU without GSO.
 *   transmit  the header goes in the bytes just before the frame (every sender leaves headroom; a frame
 *             at the very start of its buffer, an ARP reply, goes through a scratch copy). A
 *             FRAME_CSUM_OFFLOADED TCP/UDP frame gets NEEDS_CSUM with csum_start/csum_offset and its
 *             checksum field set to the pseudo-header sum (folded, not complemented: what Linux's
 *             __tcp_v4_send_check leaves for CHECKSUM_PARTIAL, and what tcp_gso_segment adjusts per
 *             segment); a FRAME_GSO frame also gets gso_type TCPV4, gso_size and hdr_len, and the kernel
 *             cuts it. Writing the checksum field modifies the frame: the driver frees it after.
 */
import { FRAME_CSUM_OFFLOADED, FRAME_GSO, type FrameBatch, type Link, type LinkStats, type LinkWait, maxFrameFor, newLinkStats } from './link.js';
import type { DriverCounters } from './counters.js';
import { TapDevice } from './tap-device.js';
import { pseudoHeaderSumV4 } from '../wire/checksum.js';
import {
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VirtioNetHdrView,
} from '../wire/virtio-net.js';

/** The largest IP packet a GSO frame carries (IPv4 total length is 16 bits). */
export const GSO_MAX_IP_BYTES = 65535;
const ETH = 14;

export interface TapLinkOptions {
  fd: number;
  name: string;
  mtu: number;
  mac: Uint8Array;
  batch?: number;
  /** The fd was opened with IFF_VNET_HDR and this header size (10 or 12); 0 / absent: plain frames. */
  vnetHdrSize?: number;
  /** TUN_F_TSO4 was granted: the kernel may send GSO frames up to 64 KiB. */
  gso?: boolean;
  /** The driver's counters (vnet drops and GSO frame counts). */
  counters?: DriverCounters;
  /** Tests: the frame I/O in place of the device on `fd` (crafted input, captured output). */
  device?: Pick<TapDevice, 'readBatch' | 'writeBatch'>;
}

export class TapLink implements Link {
  readonly name: string;
  readonly mtu: number;
  readonly maxFrame: number;
  readonly checksumOffload: boolean;
  readonly gsoMaxBytes: number;
  readonly rxSlotBytes: number;
  readonly vnetHdrSize: number;
  readonly mac: Uint8Array;
  readonly wait: LinkWait;
  readonly stats: LinkStats = newLinkStats();
  /** Frames that filled their slot entirely: possibly truncated by the kernel, so dropped. */
  truncated = 0;
  /** Frames dropped because the device refused them (down: EIO), and the last such error. */
  txDropped = 0;
  lastTxError = '';
  rxErrors = 0;
  lastRxError = '';
  private readonly dev: Pick<TapDevice, 'readBatch' | 'writeBatch'>;
  private readonly offsets: Int32Array;
  private readonly lengths: Int32Array;
  private readonly index: Int32Array;
  private closed = false;
  private readonly hdr = new VirtioNetHdrView();
  private readonly counters: DriverCounters | null;
  /** Frames with no room for the header in front of them are sent from here (rare: ARP replies). */
  private scratch: Uint8Array | null = null;

  constructor(opts: TapLinkOptions) {
    this.dev = opts.device ?? TapDevice.fromFd(opts.fd, opts.name);
    this.name = opts.name;
    this.mtu = opts.mtu;
    const h = opts.vnetHdrSize ?? 0;
    if (h !== 0 && h !== 10 && h !== 12) throw new RangeError(`vnetHdrSize must be 0, 10 or 12, got ${h}`);
    this.vnetHdrSize = h;
    this.checksumOffload = h > 0;
    // The kernel takes GSO frames from any IFF_VNET_HDR fd; it sends them only when TSO4 was granted.
    this.gsoMaxBytes = h > 0 ? GSO_MAX_IP_BYTES : 0;
    this.maxFrame = h > 0 ? ETH + GSO_MAX_IP_BYTES : maxFrameFor(opts.mtu);
    this.rxSlotBytes = h + (h > 0 && opts.gso ? ETH + GSO_MAX_IP_BYTES : maxFrameFor(opts.mtu)) + 1;
    this.counters = opts.counters ?? null;
    this.mac = opts.mac;
    this.wait = { kind: 'fd', fd: opts.fd };
    const n = opts.batch ?? 64;
    this.offsets = new Int32Array(n);
    this.lengths = new Int32Array(n);
    this.index = new Int32Array(n);
  }

  /** TAP cannot say without a syscall; the driver polls with receive(). */
  get rxReady(): boolean {
    return false;
  }

  receive(into: FrameBatch): number {
    if (this.closed) return 0;
    const start = into.count;
    const n = Math.min(into.capacity - start, this.offsets.length);
    if (n <= 0) return 0;
    // One read call covers slots in one byte area (the addon takes one array); a slot one byte larger
    // than the largest frame tells a full frame from a truncated one.
    let area: Uint8Array | null = null;
    let k = 0;
    for (; k < n; k++) {
      if (!into.fit(start + k, this.rxSlotBytes)) break;
      const a = into.bytesAt(start + k);
      if (area === null) area = a;
      else if (a !== area) break;
      this.offsets[k] = into.pos(start + k);
      this.lengths[k] = into.room(start + k);
    }
    if (area === null || k === 0) return 0;
    let got: number;
    try {
      got = this.dev.readBatch(area, this.offsets, this.lengths, k, 0);
    } catch (err) {
      this.lastRxError = String((err as { code?: string }).code ?? err);
      this.rxErrors++;
      return 0;
    }
    return this.finishReceive(into, start, k, got, area);
  }

  private finishReceive(into: FrameBatch, start: number, _offered: number, got: number, area: Uint8Array): number {
    let w = start;
    const h = this.vnetHdrSize;
    for (let i = 0; i < got; i++) {
      const slot = start + i;
      const raw = this.lengths[i];
      if (raw >= into.room(slot) || raw - h < ETH) {
        this.truncated++;
        this.stats.rxTooBig++;
        continue;
      }
      const len = raw - h;
      let flags = 0;
      if (h > 0) {
        flags = this.checkRxHeader(area, this.offsets[i], len);
        if (flags < 0) continue;
      } else if (len > this.maxFrame) {
        this.stats.rxTooBig++;
        continue;
      }
      if (w !== slot) into.swap(w, slot);
      into.off[w] += h;
      into.len[w] = len;
      into.flags[w] = flags;
      this.stats.rxFrames++;
      this.stats.rxBytes += len;
      w++;
    }
    into.count = w;
    return w - start;
  }

  /**
   * The virtio_net_hdr at `at` of a received frame of `len` bytes (after it): the frame's FRAME_* flags,
   * or -1 when the frame is dropped (counted).
   */
  private checkRxHeader(area: Uint8Array, at: number, len: number): number {
    const v = this.hdr;
    const c = this.counters;
    if (v.reset(area, at, this.vnetHdrSize) !== null) return -1;
    const e = v.checkFrame(area, at + this.vnetHdrSize, len);
    if (e !== null) {
      this.stats.rxTooBig++;
      c?.add(
        e === 'bad-code' ? 'drop:vnet-bad-flags' : e === 'unsupported' ? 'drop:vnet-bad-gso-type' : e === 'bad-length' ? 'drop:vnet-bad-offsets' : 'drop:vnet-bad-gso',
      );
      return -1;
    }
    const gso = v.isGso;
    if (len > maxFrameFor(this.mtu) && !gso) {
      this.stats.rxTooBig++;
      c?.add('drop:rx-oversize');
      return -1;
    }
    let flags = 0;
    if (v.csumTrusted) {
      flags |= FRAME_CSUM_OFFLOADED;
      if (c) c.add('rxCsumTrusted');
    }
    if (gso) {
      flags |= FRAME_GSO;
      if (c) c.add('rxGsoFrames');
    }
    return flags;
  }

  /**
   * Fill the virtio_net_hdr at `at` (vnetHdrSize bytes, just before the frame at `pos`) for a frame of
   * `len` bytes with FRAME_* `flags`. False: the frame cannot be sent (a GSO request on a frame that is
   * not TCP over IPv4, or an oversize frame without GSO).
   */
  private fillTxHeader(b: Uint8Array, at: number, pos: number, len: number, flags: number): boolean {
    const v = this.hdr;
    v.bind(b, at, this.vnetHdrSize);
    v.zero();
    const gso = (flags & FRAME_GSO) !== 0;
    if (len > maxFrameFor(this.mtu) && !gso) return false;
    if ((flags & FRAME_CSUM_OFFLOADED) === 0) return !gso;
    if (len < ETH + 20 || b[pos + 12] !== 0x08 || b[pos + 13] !== 0x00 || b[pos + ETH] >> 4 !== 4) return !gso;
    const ip = pos + ETH;
    const ihl = (b[ip] & 15) * 4;
    const proto = b[ip + 9];
    const fragmented = ((b[ip + 6] & 0x3f) | b[ip + 7]) !== 0; // MF or a fragment offset
    const totLen = (b[ip + 2] << 8) | b[ip + 3];
    const l4 = ip + ihl;
    const l4Len = totLen - ihl;
    const at16 = proto === 6 ? 16 : proto === 17 ? 6 : -1;
    if (fragmented || at16 < 0 || ihl < 20 || totLen > len - ETH || l4Len < at16 + 2) return !gso;
    if (gso && (proto !== 6 || l4Len < 20)) return false;
    const src = ((b[ip + 12] << 24) | (b[ip + 13] << 16) | (b[ip + 14] << 8) | b[ip + 15]) >>> 0;
    const dst = ((b[ip + 16] << 24) | (b[ip + 17] << 16) | (b[ip + 18] << 8) | b[ip + 19]) >>> 0;
    const sum = pseudoHeaderSumV4(src, dst, proto, l4Len);
    b[l4 + at16] = sum >>> 8;
    b[l4 + at16 + 1] = sum;
    v.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    v.csumStart = ETH + ihl;
    v.csumOffset = at16;
    if (gso) {
      v.gsoType = VIRTIO_NET_HDR_GSO_TCPV4;
      v.gsoSize = flags >>> 16;
      v.hdrLen = ETH + ihl + (b[l4 + 12] >> 4) * 4;
      if (this.counters) this.counters.add('txGsoFrames');
    }
    if (this.counters) this.counters.add('txCsumOffloaded');
    return true;
  }

  transmit(frames: FrameBatch, start = 0): number {
    if (this.closed) return 0;
    if (this.vnetHdrSize > 0) return this.transmitVnet(frames, start);
    let i = start;
    while (i < frames.count) {
      // Gather a batch of sendable frames; frames the device can never take are dropped, counted, and
      // count as taken. index[k] is the batch position of gathered frame k.
      let n = 0;
      let j = i;
      let area: Uint8Array | null = null;
      for (; j < frames.count && n < this.offsets.length; j++) {
        const a = frames.bytesAt(j);
        if (area === null) area = a;
        else if (a !== area) break;
        const len = frames.len[j];
        if (len < 14 || len > this.maxFrame) {
          this.stats.txInvalid++;
          continue;
        }
        this.offsets[n] = frames.pos(j);
        this.lengths[n] = len;
        this.index[n++] = j;
      }
      const sent = this.writeGathered(area, n, 0);
      if (sent < n) return this.index[sent] - start;
      i = j;
    }
    return frames.count - start;
  }

  /**
   * Write the n gathered frames (offsets/lengths, each with `hdr` bytes of virtio_net_hdr in front) and
   * count them. Returns n when all were written or dropped, else how many the device took before it was
   * full (the caller offers the rest again later).
   */
  private writeGathered(area: Uint8Array | null, n: number, hdr: number): number {
    let sent: number;
    try {
      sent = n === 0 || area === null ? 0 : this.dev.writeBatch(area, this.offsets, this.lengths, n);
    } catch (err) {
      // The device is down or gone (EIO, ENETDOWN...): like a wire with nobody on it, the frames are
      // dropped and counted; the driver carries on (bad conditions never crash a server).
      const written = Number((err as { framesWritten?: number }).framesWritten ?? 0);
      this.countSent(written, hdr);
      this.txDropped += n - written;
      this.lastTxError = String((err as { code?: string }).code ?? err);
      return n;
    }
    this.countSent(sent, hdr);
    if (sent < n) this.stats.txBackpressure++;
    return sent;
  }

  private countSent(k: number, hdr: number): void {
    for (let i = 0; i < k; i++) {
      this.stats.txFrames++;
      this.stats.txBytes += this.lengths[i] - hdr;
    }
  }

  /** Transmit with a virtio_net_hdr in front of each frame (see the header). */
  private transmitVnet(frames: FrameBatch, start: number): number {
    const h = this.vnetHdrSize;
    let i = start;
    while (i < frames.count) {
      let n = 0;
      let j = i;
      let area: Uint8Array | null = null;
      let single = false;
      for (; j < frames.count && n < this.offsets.length; j++) {
        const a = frames.bytesAt(j);
        const len = frames.len[j];
        if (len < ETH || len > this.maxFrame) {
          this.stats.txInvalid++;
          this.counters?.add('drop:tx-oversize');
          continue;
        }
        let pos = frames.pos(j);
        let b = a;
        if (frames.off[j] < h) {
          // No headroom: copy into the scratch area and send it alone.
          if (n > 0) break;
          const s = this.scratch ?? (this.scratch = new Uint8Array(h + this.maxFrame));
          s.set(a.subarray(pos, pos + len), h);
          b = s;
          pos = h;
          single = true;
        } else if (area !== null && a !== area) break;
        if (!this.fillTxHeader(b, pos - h, pos, len, frames.flags[j])) {
          this.stats.txInvalid++;
          this.counters?.add('drop:tx-oversize');
          single = false;
          continue;
        }
        area = b;
        this.offsets[n] = pos - h;
        this.lengths[n] = len + h;
        this.index[n++] = j;
        if (single) {
          j++;
          break;
        }
      }
      const sent = this.writeGathered(area, n, h);
      if (sent < n) return this.index[sent] - start;
      i = j;
    }
    return frames.count - start;
  }

  poll(): number {
    return Infinity;
  }

  /** The fd belongs to the stack, which closes it; a driver incarnation only lets go. */
  close(): void {
    this.closed = true;
  }
}
