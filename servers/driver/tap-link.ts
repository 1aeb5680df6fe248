/**
 * A TAP device as a Link: batched, non-blocking reads and writes through the N-API addon, straight
 * between the device and pool buffers (one copy each way, done by the kernel). The fd is opened by the
 * stack on the main thread and outlives driver restarts; a new driver incarnation wraps the same fd.
 * TAP offers no doorbell, so `wait` is the fd: the driver polls it between parks (see driver server).
 */
import { TapDevice } from './tap-device.js';
import { type FrameBatch, type Link, type LinkStats, type LinkWait, maxFrameFor, newLinkStats } from './link.js';

export class TapLink implements Link {
  readonly name: string;
  readonly mtu: number;
  readonly maxFrame: number;
  readonly checksumOffload = false;
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
  private readonly dev: TapDevice;
  private readonly offsets: Int32Array;
  private readonly lengths: Int32Array;
  private readonly index: Int32Array;
  private closed = false;

  constructor(opts: { fd: number; name: string; mtu: number; mac: Uint8Array; batch?: number }) {
    this.dev = TapDevice.fromFd(opts.fd, opts.name);
    this.name = opts.name;
    this.mtu = opts.mtu;
    this.maxFrame = maxFrameFor(opts.mtu);
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
      if (!into.fit(start + k, this.maxFrame + 1)) break;
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
    return this.finishReceive(into, start, k, got);
  }

  private finishReceive(into: FrameBatch, start: number, _offered: number, got: number): number {
    let w = start;
    for (let i = 0; i < got; i++) {
      const slot = start + i;
      const len = this.lengths[i];
      if (len >= into.room(slot) || len > this.maxFrame || len < 14) {
        this.truncated++;
        this.stats.rxTooBig++;
        continue;
      }
      if (w !== slot) into.swap(w, slot);
      into.len[w] = len;
      into.flags[w] = 0;
      this.stats.rxFrames++;
      this.stats.rxBytes += len;
      w++;
    }
    into.count = w;
    return w - start;
  }

  transmit(frames: FrameBatch, start = 0): number {
    if (this.closed) return 0;
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
      let sent: number;
      try {
        sent = n === 0 || area === null ? 0 : this.dev.writeBatch(area, this.offsets, this.lengths, n);
      } catch (err) {
        // The device is down or gone (EIO, ENETDOWN...): like a wire with nobody on it, the frames are
        // dropped and counted; the driver carries on (bad conditions never crash a server).
        const written = Number((err as { framesWritten?: number }).framesWritten ?? 0);
        for (let k = 0; k < written; k++) {
          this.stats.txFrames++;
          this.stats.txBytes += this.lengths[k];
        }
        this.txDropped += n - written;
        this.lastTxError = String((err as { code?: string }).code ?? err);
        i = j;
        continue;
      }
      for (let k = 0; k < sent; k++) {
        this.stats.txFrames++;
        this.stats.txBytes += this.lengths[k];
      }
      if (sent < n) {
        this.stats.txBackpressure++;
        return this.index[sent] - start;
      }
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
