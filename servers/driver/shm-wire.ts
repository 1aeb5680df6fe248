/**
 * servers/driver/shm-wire: a shared-memory Ethernet wire between two keepnet stacks in one process (no
 * root, no TAP). Side 'a' and side 'b' each get a Link.
 *
 * ## Layout (one SharedArrayBuffer)
 *   [0, 256)            control header, Int32 words (W_* below): magic 'KNSW', version, mtu, flags
 *                       (bit 0: checksum offload), ring capacity, wire id, byte offsets of the two rings,
 *                       and per side (own 64-byte line) the attached generation and a closed flag.
 *   [abOff, ...)        ring A->B (shared-rings/ring.ts): side a produces, side b consumes.
 *   [baOff, ...)        ring B->A: side b produces, side a consumes.
 *
 * ## Frames and copies
 *   A ring record IS the frame: payload = `pad` bytes (0..7, unspecified) then the Ethernet frame bytes
 *   (14 .. mtu + 14); tag = its FRAME_* flags | pad << TAG_PAD_SHIFT. Each stack has its own PacketPool,
 *   so a frame is copied exactly twice:
 *     1. transmit: sender's pool buffer -> the ring record (reserve + copy + commit);
 *     2. receive:  the ring record -> a buffer of the receiver's pool (the slot the driver offered).
 *   No pool is ever shared between the stacks, so a crashing or misbehaving stack can corrupt at most the
 *   frames in flight on the wire, never the other stack's buffers. Zero copies would need a shared pool.
 *   The pad keeps every frame at the same address modulo 8 in the sender's buffer, the ring and the
 *   receiver's buffer: V8 copies between SharedArrayBuffers with a relaxed-atomic memcpy that moves
 *   words only when source and destination are equally aligned modulo 8, and bytes one at a time
 *   otherwise (measured on this project's machines: 16 GB/s co-aligned, 2-3 GB/s not, for 64 KiB).
 *   The tcp server places segment payloads by the same rule (stream offset modulo 8), so with the pad
 *   every copy of a bulk transfer's bytes is a word copy.
 *
 * ## Batching
 *   transmit() writes all the frames it can and publishes them with ONE flush (one Atomics.store, one
 *   doorbell ring at most). receive() consumes as many records as there are slots and publishes the read
 *   position ONCE at the end. A receiver that dies in the middle of a batch sees the unpublished records
 *   again after restart: the wire may duplicate frames then, which every protocol above tolerates.
 *
 * ## Full ring: backpressure, not drops
 *   When the ring has no room for the next frame, transmit() stops there and returns how many it took;
 *   the rest stay with the caller (counted once per call in stats.txBackpressure). The wire itself never
 *   drops a valid frame. The driver decides: hold the frames (and the upstream ring records) and retry on
 *   its next loop iteration, or drop and count. Frames of a wrong size (< 14 or > maxFrame) are dropped
 *   and counted (txInvalid) and count as taken, so a bad frame cannot wedge the caller.
 *
 * ## Checksum offload
 *   Decided at create() for both ends. With offload, the tag carries FRAME_CSUM_OFFLOADED from the sender
 *   to the receiver unchanged: a flagged frame was sent without computing checksums and is delivered with
 *   the flag, so the receiver does not verify them (virtio style). Without offload the flag is cleared on
 *   transmit and never delivered.
 *
 * ## Waiting
 *   Link.wait is the doorbell of the side's receive ring: by default the ring's own data doorbell, or a
 *   doorbell given at create() (`rxDoorbell`), e.g. the one doorbell a driver parks on for all its input
 *   rings. The peer's transmit rings it on flush (only when the receiver has announced it parks).
 *
 * ## MAC addresses
 *   Deterministic and locally administered, unicast: 02:6b:6e:II:II:0S with II:II the wire id (16 bits)
 *   and S = 1 for side a, 2 for side b ("kn" = 6b:6e). Wire ids default to a per-thread counter starting
 *   at 1: pass `id` when wires are created in several threads and must not collide.
 */
import { Ring, RingConsumer, RingProducer, RECORD_HEADER_BYTES, RING_DATA_BELL_WORD } from '../../shared-rings/ring.js';
import { Doorbell } from '../../shared-rings/doorbell.js';
import {
  ETH_HEADER_BYTES,
  FRAME_CSUM_OFFLOADED,
  copyBytes,
  maxFrameFor,
  newLinkStats,
  type FrameBatch,
  type Link,
  type LinkStats,
  type LinkWait,
} from './link.js';

const MAGIC = 0x4b4e5357; // 'KNSW'
/** 2: records carry a pad of 0..7 bytes before the frame (its length in the tag), see the header. */
const VERSION = 2;
const CONTROL_BYTES = 256;
const W_MAGIC = 0;
const W_VERSION = 1;
const W_MTU = 2;
const W_FLAGS = 3;
const W_CAPACITY = 4;
const W_ID = 5;
const W_AB_OFF = 6;
const W_BA_OFF = 7;
/** Side words: a at 16 (line 1), b at 32 (line 2). */
const W_SIDE_A = 16;
const W_SIDE_B = 32;
const S_GEN = 0;
const S_ATTACHED = 1;
const S_CLOSED = 2;

const F_CSUM_OFFLOAD = 1;

/** The pad (bytes before the frame in a record, 0..7) sits in these bits of the record's tag. */
const TAG_PAD_SHIFT = 8;

export const SHM_WIRE_MAX_MTU = 65535;
export const SHM_WIRE_MIN_MTU = 68;

export type WireSide = 'a' | 'b';

/** A doorbell's location, structured-clone safe (a Doorbell instance also has this shape). */
export interface DoorbellRef {
  readonly i32: Int32Array;
  readonly index: number;
}

export interface ShmWireOptions {
  /** IP MTU, 68..65535; frames are up to mtu + 14 bytes. Default 1500. */
  mtu?: number;
  /** Ring data bytes per direction: a power of two >= minCapacity(mtu). Default: room for >= 16 max frames, >= 256 KiB. */
  capacity?: number;
  /** Both ends skip checksums on flagged frames (see the header). Default false. */
  checksumOffload?: boolean;
  /** 16-bit wire id, used in the MAC addresses. Default: a per-thread counter from 1. */
  id?: number;
  /** Doorbells the receive side of a / b parks on (default: the ring's own data doorbell). */
  rxDoorbell?: { a?: DoorbellRef; b?: DoorbellRef };
}

/** What create() returns: plain data, send it to the threads of both stacks (postMessage / workerData). */
export interface ShmWireInit {
  readonly sab: SharedArrayBuffer;
  readonly mtu: number;
  readonly checksumOffload: boolean;
  readonly id: number;
  readonly rxDoorbell?: { a?: DoorbellRef; b?: DoorbellRef };
}

export interface ShmWireAttachOptions {
  /** The attaching incarnation's generation, written into the rings and the control header. */
  generation?: number;
  /** A name for logs (default `shm<id><side>`). */
  name?: string;
}

function codeError<E extends Error>(err: E, code: string): E {
  return Object.assign(err, { code });
}

const align8 = (n: number): number => (n + 7) & ~7;
const nextPow2 = (n: number): number => 2 ** Math.ceil(Math.log2(n));

let nextId = 1;

function sideBase(side: WireSide): number {
  return side === 'a' ? W_SIDE_A : W_SIDE_B;
}

export const ShmWire = {
  /** Smallest ring capacity that can carry a frame of the largest size for this MTU. */
  minCapacity(mtu: number): number {
    return Math.max(1024, nextPow2(2 * (RECORD_HEADER_BYTES + align8(maxFrameFor(mtu) + 7))));
  },

  defaultCapacity(mtu: number): number {
    return Math.max(256 * 1024, nextPow2(16 * (RECORD_HEADER_BYTES + align8(maxFrameFor(mtu) + 7))));
  },

  /** The MAC address of one side of wire `id`. */
  /**
   * The doorbell side `side` parks on to receive (the data doorbell of its receive ring, unless the
   * wire was created with rxDoorbell). A stack makes it its driver's host doorbell, so frames arriving
   * on the wire wake the driver like any ring into it.
   */
  rxDoorbell(init: ShmWireInit, side: WireSide): Doorbell {
    const ref = init.rxDoorbell?.[side];
    if (ref) return new Doorbell(ref.i32, ref.index);
    const w = new Int32Array(init.sab, 0, CONTROL_BYTES / 4);
    const rxOff = side === 'a' ? w[W_BA_OFF]! : w[W_AB_OFF]!;
    return new RingConsumerBell({ sab: init.sab, byteOffset: rxOff }).bell;
  },

  mac(id: number, side: WireSide): Uint8Array {
    return Uint8Array.of(0x02, 0x6b, 0x6e, (id >>> 8) & 0xff, id & 0xff, side === 'a' ? 1 : 2);
  },

  create(opts: ShmWireOptions = {}): ShmWireInit {
    const mtu = opts.mtu ?? 1500;
    if (!Number.isInteger(mtu) || mtu < SHM_WIRE_MIN_MTU || mtu > SHM_WIRE_MAX_MTU) {
      throw codeError(new RangeError(`wire mtu must be an integer in [${SHM_WIRE_MIN_MTU}, ${SHM_WIRE_MAX_MTU}], got ${mtu}`), 'ERR_OUT_OF_RANGE');
    }
    const min = ShmWire.minCapacity(mtu);
    const capacity = opts.capacity ?? ShmWire.defaultCapacity(mtu);
    if (!Number.isInteger(capacity) || capacity < min || capacity > 2 ** 30 || (capacity & (capacity - 1)) !== 0) {
      throw codeError(new RangeError(`wire capacity must be a power of two in [${min}, 2^30] for mtu ${mtu}, got ${capacity}`), 'ERR_OUT_OF_RANGE');
    }
    const id = opts.id ?? nextId++;
    if (!Number.isInteger(id) || id < 0 || id > 0xffff) {
      throw codeError(new RangeError(`wire id must be in [0, 65535], got ${id}`), 'ERR_OUT_OF_RANGE');
    }
    const ringBytes = Ring.byteLength(capacity); // a multiple of 64: capacity >= 1024
    const abOff = CONTROL_BYTES;
    const baOff = abOff + ringBytes;
    const sab = new SharedArrayBuffer(baOff + ringBytes);
    const maxRecord = maxFrameFor(mtu) + 7; // up to 7 bytes of pad before the frame (see the header)
    Ring.create({ capacity, maxRecord }, { sab, byteOffset: abOff });
    Ring.create({ capacity, maxRecord }, { sab, byteOffset: baOff });
    const w = new Int32Array(sab, 0, CONTROL_BYTES / 4);
    w[W_VERSION] = VERSION;
    w[W_MTU] = mtu;
    w[W_FLAGS] = opts.checksumOffload ? F_CSUM_OFFLOAD : 0;
    w[W_CAPACITY] = capacity;
    w[W_ID] = id;
    w[W_AB_OFF] = abOff;
    w[W_BA_OFF] = baOff;
    Atomics.store(w, W_MAGIC, MAGIC); // last: publishes the header
    const init: ShmWireInit = { sab, mtu, checksumOffload: !!opts.checksumOffload, id };
    if (opts.rxDoorbell) {
      const ref = (d: DoorbellRef | undefined): DoorbellRef | undefined => (d ? { i32: d.i32, index: d.index } : undefined);
      const a = ref(opts.rxDoorbell.a);
      const b = ref(opts.rxDoorbell.b);
      return { ...init, rxDoorbell: { ...(a ? { a } : {}), ...(b ? { b } : {}) } };
    }
    return init;
  },

  /** Attach one side: returns its Link. Throws ERR_SHM_WIRE_BAD_HEADER for a foreign buffer. */
  attach(init: ShmWireInit, side: WireSide, opts: ShmWireAttachOptions = {}): ShmWireLink {
    if (side !== 'a' && side !== 'b') {
      throw codeError(new TypeError(`wire side must be 'a' or 'b', got ${String(side)}`), 'ERR_INVALID_ARG_VALUE');
    }
    return new ShmWireLink(init, side, opts);
  },
};

export class ShmWireLink implements Link {
  readonly name: string;
  readonly side: WireSide;
  readonly id: number;
  readonly mtu: number;
  readonly maxFrame: number;
  readonly checksumOffload: boolean;
  readonly mac: Uint8Array;
  /** The other side's MAC (handy for tests and static ARP). */
  readonly peerMac: Uint8Array;
  readonly wait: LinkWait;
  readonly stats: LinkStats = newLinkStats();
  readonly generation: number;
  private readonly control: Int32Array;
  private readonly producer: RingProducer;
  private readonly consumer: RingConsumer;
  private readonly flagMask: number;
  private closed = false;

  constructor(init: ShmWireInit, side: WireSide, opts: ShmWireAttachOptions) {
    const sab = init?.sab;
    if (!(sab instanceof SharedArrayBuffer) || sab.byteLength < CONTROL_BYTES) {
      throw codeError(new TypeError('not a shm wire: init.sab must be its SharedArrayBuffer'), 'ERR_INVALID_ARG_TYPE');
    }
    const w = new Int32Array(sab, 0, CONTROL_BYTES / 4);
    if (Atomics.load(w, W_MAGIC) !== MAGIC || w[W_VERSION] !== VERSION) {
      throw codeError(new Error('not a keepnet shm wire (bad magic or version)'), 'ERR_SHM_WIRE_BAD_HEADER');
    }
    this.control = w;
    this.side = side;
    this.id = w[W_ID]!;
    this.mtu = w[W_MTU]!;
    this.maxFrame = maxFrameFor(this.mtu);
    this.checksumOffload = (w[W_FLAGS]! & F_CSUM_OFFLOAD) !== 0;
    this.flagMask = this.checksumOffload ? FRAME_CSUM_OFFLOADED : 0;
    this.mac = ShmWire.mac(this.id, side);
    this.peerMac = ShmWire.mac(this.id, side === 'a' ? 'b' : 'a');
    this.name = opts.name ?? `shm${this.id}${side}`;
    this.generation = opts.generation ?? 0;
    const txOff = side === 'a' ? w[W_AB_OFF]! : w[W_BA_OFF]!;
    const rxOff = side === 'a' ? w[W_BA_OFF]! : w[W_AB_OFF]!;
    const peer: WireSide = side === 'a' ? 'b' : 'a';
    const myBellRef = init.rxDoorbell?.[side];
    const peerBellRef = init.rxDoorbell?.[peer];
    const myBell = myBellRef ? new Doorbell(myBellRef.i32, myBellRef.index) : undefined;
    const peerBell = peerBellRef ? new Doorbell(peerBellRef.i32, peerBellRef.index) : undefined;
    this.producer = new RingProducer(
      { sab, byteOffset: txOff },
      peerBell ? { generation: this.generation, wake: peerBell } : { generation: this.generation },
    );
    this.consumer = new RingConsumer(
      { sab, byteOffset: rxOff },
      myBell ? { generation: this.generation, doorbell: myBell } : { generation: this.generation },
    );
    this.wait = { kind: 'doorbell', doorbell: this.consumer.doorbell };
    const base = sideBase(side);
    Atomics.store(w, base + S_GEN, this.generation);
    Atomics.store(w, base + S_CLOSED, 0);
    Atomics.add(w, base + S_ATTACHED, 1);
  }

  /** Times this side has been attached (restarts included). */
  get attachments(): number {
    return Atomics.load(this.control, sideBase(this.side) + S_ATTACHED);
  }

  /** Whether the other side has closed its end (it may attach again later). */
  get peerClosed(): boolean {
    return Atomics.load(this.control, sideBase(this.side === 'a' ? 'b' : 'a') + S_CLOSED) !== 0;
  }

  get rxReady(): boolean {
    return !this.closed && this.consumer.peek() >= 0;
  }

  /** Ring flushes (publications) done by transmit: one per call that sent something. */
  get txFlushes(): number {
    return this.producer.flushes;
  }

  /** Bytes queued towards the peer and not yet received by it (a snapshot). */
  get txQueuedBytes(): number {
    return this.producer.usedBytes;
  }

  receive(into: FrameBatch): number {
    if (this.closed) return 0;
    const c = this.consumer;
    const ring = c.bytes;
    const st = this.stats;
    const first = into.count;
    let i = first;
    const cap = into.capacity;
    while (i < cap) {
      const rlen = c.peek();
      if (rlen < 0) break;
      const pad = (c.tag >>> TAG_PAD_SHIFT) & 7;
      const len = rlen - pad;
      if (len < 0) {
        st.rxTooBig++; // a record shorter than its own pad: malformed, dropped
        c.consume();
        continue;
      }
      if (!into.fit(i, len)) {
        if (!into.hasBuffer(i)) break; // only holes left: the frame waits in the ring
        st.rxTooBig++;
        c.consume();
        continue;
      }
      // When the receiver allows it (FrameBatch.realign), move the frame forward by up to 7 bytes to the
      // ring's alignment modulo 8, room permitting (see the header: a co-aligned copy is a word copy).
      const dst = into.bytesAt(i);
      if (into.realign) {
        const shift = (ring.byteOffset + c.offset + pad - dst.byteOffset - into.pos(i)) & 7;
        if (into.room(i) - shift >= len) into.off[i] += shift;
      }
      copyBytes(ring, c.offset + pad, dst, into.pos(i), len);
      into.len[i] = len;
      into.flags[i] = c.tag & this.flagMask;
      st.rxBytes += len;
      i++;
      c.consume();
    }
    c.publish();
    const n = i - first;
    into.count = i;
    st.rxFrames += n;
    return n;
  }

  transmit(frames: FrameBatch, start = 0): number {
    if (this.closed) return 0;
    const p = this.producer;
    const ring = p.bytes;
    const st = this.stats;
    const max = this.maxFrame;
    const end = frames.count;
    let i = start;
    for (; i < end; i++) {
      const len = frames.len[i]!;
      if (len < ETH_HEADER_BYTES || len > max) {
        st.txInvalid++;
        continue;
      }
      // Record payloads start 8-aligned in the ring: pad so the frame keeps its alignment modulo 8.
      const src = frames.bytesAt(i);
      const pos = frames.pos(i);
      const pad = (src.byteOffset + pos - ring.byteOffset) & 7;
      const off = p.reserve(len + pad, (frames.flags[i]! & this.flagMask) | (pad << TAG_PAD_SHIFT));
      if (off < 0) {
        st.txBackpressure++;
        break;
      }
      copyBytes(src, pos, ring, off + pad, len);
      p.commit();
      st.txFrames++;
      st.txBytes += len;
    }
    p.flush();
    return i - start;
  }

  poll(_nowUs: number): number {
    return Infinity;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.producer.flush();
    this.consumer.publish();
    Atomics.store(this.control, sideBase(this.side) + S_CLOSED, 1);
  }
}

/** The data doorbell of a ring, located without attaching an endpoint (which would write to it). */
class RingConsumerBell {
  readonly bell: Doorbell;
  constructor(region: { sab: SharedArrayBuffer; byteOffset: number }) {
    // The ring header's data doorbell words (see shared-rings/ring.ts: H_DATA_BELL = 34).
    this.bell = new Doorbell(new Int32Array(region.sab, region.byteOffset, 64), RING_DATA_BELL_WORD);
  }
}
