/**
 * A raw peer on side 'b' of a shared-memory wire: the test writes arbitrary Ethernet frames into the
 * stack on side 'a' (fuzzing, hostile segments) and reads whatever the stack sends back. No root.
 *
 *   const wire = ShmWire.create({ mtu: 1500, id: 0x4b4e });
 *   const stack = await createStack({ address: '10.99.0.1/24', link: { kind: 'shm', wire, side: 'a' } });
 *   const peer = new RawPeer(wire, { answerArp: true });
 *   await peer.write([frame, ...]);       // backpressure: waits (draining what the stack sends)
 *   peer.drain();                          // read what the stack sent: onFrame(frame) for each
 *   peer.close();
 *
 * Frames shorter than an Ethernet header or longer than the wire's largest frame cannot be carried by
 * a wire at all: write() skips them and counts them in `unsendable` (they never reach the stack).
 * With answerArp, ARP requests from the stack are answered with this peer's MAC for any address, so the
 * stack's answers to the frames it is fed (RST, ICMP errors, SYN-ACKs) go out instead of waiting.
 */
import { PacketPool, makeOwner } from '../../shared-rings/pool.js';
import { FrameBatch } from '../../servers/driver/link.js';
import { ShmWire, type ShmWireInit, type ShmWireLink } from '../../servers/driver/shm-wire.js';
import { arp, eth, ETHERTYPE_ARP, rd16, rd32 } from './frames.js';

const OWNER = makeOwner(3, 1);
const BATCH = 32;

export interface RawPeerOptions {
  answerArp?: boolean;
  /** Called with every frame the stack sent (a copy). */
  onFrame?: (f: Uint8Array) => void;
  /** Keep every frame the stack sent in `received` (hostile tests). */
  keep?: boolean;
}

export class RawPeer {
  readonly link: ShmWireLink;
  readonly mac: Uint8Array;
  readonly stackMac: Uint8Array;
  readonly maxFrame: number;
  private readonly pool: PacketPool;
  private readonly tx: FrameBatch;
  private readonly rx: FrameBatch;
  private readonly opts: RawPeerOptions;
  readonly received: Uint8Array[] = [];
  /** Frames handed to the wire / refused as unsendable / received from the stack / ARP answered. */
  written = 0;
  unsendable = 0;
  receivedCount = 0;
  arpAnswered = 0;
  backpressured = 0;

  constructor(wire: ShmWireInit, opts: RawPeerOptions = {}) {
    this.opts = opts;
    this.link = ShmWire.attach(wire, 'b', { name: 'raw-peer' });
    this.mac = this.link.mac;
    this.stackMac = this.link.peerMac;
    this.maxFrame = this.link.maxFrame;
    this.pool = PacketPool.create({ buffers: 2 * BATCH, bufferSize: this.maxFrame + 64 });
    this.tx = new FrameBatch(this.pool, BATCH);
    this.rx = new FrameBatch(this.pool, BATCH);
    for (const b of [this.tx, this.rx]) {
      for (let i = 0; i < BATCH; i++) b.set(i, this.pool.alloc(OWNER), 0, 0, 0);
    }
  }

  /** Read everything the stack has sent; returns how many frames. */
  drain(): number {
    let total = 0;
    for (;;) {
      const rx = this.rx;
      rx.count = 0;
      const n = this.link.receive(rx);
      if (n === 0) break;
      total += n;
      for (let i = 0; i < n; i++) {
        const f = rx.bytesAt(i).slice(rx.pos(i), rx.pos(i) + rx.len[i]!);
        this.receivedCount++;
        if (this.opts.keep) this.received.push(f);
        this.opts.onFrame?.(f);
        if (this.opts.answerArp && f.length >= 42 && rd16(f, 12) === ETHERTYPE_ARP && rd16(f, 20) === 1) {
          const spa = rd32(f, 28);
          const tpa = rd32(f, 38);
          if (tpa === spa) continue; // a gratuitous ARP: the address is the stack's own
          const reply = eth(f.subarray(6, 12), this.mac, ETHERTYPE_ARP, arp(2, this.mac, tpa, f.subarray(6, 12), spa));
          this.pending.push(reply);
          this.arpAnswered++;
        }
      }
    }
    return total;
  }

  private readonly pending: Uint8Array[] = [];

  /** Try to put frames [from, ...) on the wire without waiting; returns how many were taken. */
  private push(frames: readonly Uint8Array[], from: number): number {
    const tx = this.tx;
    tx.count = 0;
    let i = from;
    for (; i < frames.length && tx.count < BATCH; i++) {
      const f = frames[i];
      if (f.length < 14 || f.length > this.maxFrame) {
        this.unsendable++;
        continue;
      }
      const k = tx.count++;
      tx.bytesAt(k).set(f, tx.pos(k));
      tx.len[k] = f.length;
      tx.flags[k] = 0;
    }
    if (tx.count === 0) return i - from;
    const sent = this.link.transmit(tx, 0);
    this.written += sent;
    if (sent === tx.count) return i - from;
    this.backpressured++;
    // Count what went: frames from `from` up to the sent-th sendable one.
    let taken = 0;
    let j = from;
    for (; j < i && taken < sent; j++) if (frames[j].length >= 14 && frames[j].length <= this.maxFrame) taken++;
    // Unsendable frames before j were counted already; those after j will be counted again: undo.
    for (let k = j; k < i; k++) if (frames[k].length < 14 || frames[k].length > this.maxFrame) this.unsendable--;
    return j - from;
  }

  /** Write frames, waiting (and draining the stack's output) while the wire is full. */
  async write(frames: readonly Uint8Array[]): Promise<void> {
    let at = 0;
    let stalls = 0;
    while (at < frames.length || this.pending.length > 0) {
      this.drain();
      if (this.pending.length > 0) {
        const p = this.pending.splice(0);
        const n = this.push(p, 0);
        if (n < p.length) this.pending.unshift(...p.slice(n));
      }
      if (at >= frames.length) {
        if (this.pending.length > 0) await new Promise((r) => setTimeout(r, 1));
        continue;
      }
      const n = this.push(frames, at);
      at += n;
      if (at < frames.length) {
        // The wire is full: let the stack catch up.
        stalls++;
        await new Promise((r) => (stalls % 8 === 0 ? setTimeout(r, 1) : setImmediate(r)));
      }
    }
  }

  /** Wait until `pred()` holds, draining the stack's output meanwhile; false on timeout. */
  async until(pred: () => boolean, timeoutMs = 5000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      this.drain();
      if (this.pending.length > 0) await this.write([]);
      if (pred()) return true;
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  close(): void {
    this.link.close();
  }
}
