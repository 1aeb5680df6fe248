/**
 * The driver server: moves Ethernet frames between the stack's link (the shared-memory wire, a TAP
 * device, optionally through the fault injector and a pcap capture) and the IP server.
 *
 * Call order, per host loop iteration:
 *   handle(FRAME from ip)  claim the buffer, transmit it (the link copies), free it; a full link refuses
 *                          the record (backpressure) and it is offered again;
 *   poll(now)              tell the link the time (fault injection releases delayed frames), publish the
 *                          frames received earlier that did not fit in the ring to IP, then receive more
 *                          into empty pool buffers and publish them as FRAME records (by descriptor: the
 *                          buffer stays this incarnation's until IP claims it).
 * Received buffers are owned by this incarnation from allocation on; if it dies, the supervisor moves
 * those referenced by published FRAME records to the driver's transit owner and frees the others.
 *
 * The shared-memory wire rings this server's host doorbell when frames arrive (it is the doorbell the
 * host parks on); a TAP device cannot, so with TAP poll() asks to be called again after a short,
 * adaptive interval (50 us after traffic, backing off to 2 ms when idle).
 */
import { D, DATA_MSG, FRAME_CSUM_OK, FRAME_GSO as MSG_FRAME_GSO, HDR_DST_GEN, HDR_SRC_GEN, rd32, wr32 } from '../runtime/messages.js';
import type { ServerContext, ServerModule } from '../runtime/server.js';
import type { Endpoint } from '../runtime/topology.js';
import { FaultLink } from './fault-link.js';
import { FRAME_CSUM_OFFLOADED, FRAME_GSO, FrameBatch, type Link } from './link.js';
import { PcapLink, PcapWriter } from './pcap.js';
import { ShmWire, ShmWireLink } from './shm-wire.js';
import { TapLink } from './tap-link.js';
import { DriverCounters } from './counters.js';

const RX_BATCH = 32;
const RX_ROUNDS = 4;
const TAP_POLL_MIN_US = 50;
const TAP_POLL_MAX_US = 2000;
const PCAP_FLUSH_US = 100_000;

interface DriverState {
  link: Link | null;
  rx: FrameBatch;
  tx: FrameBatch;
  counters: DriverCounters;
  /** Current TAP poll interval (adaptive). */
  tapPollUs: number;
  isTap: boolean;
  /** The capture, flushed every PCAP_FLUSH_US so a crash loses little of it. */
  pcap: PcapWriter | null;
  pcapFlushedUs: number;
  /**
   * A receive slot may be empty: frames were received or handed over since the last complete refill
   * (or it ran out of buffers). Otherwise poll() skips the scan of every slot: an idle driver is polled
   * on every turn of its host's loop.
   */
  rxHoles: boolean;
}

const states = new WeakMap<ServerContext, DriverState>();

function openLink(ctx: ServerContext, counters: DriverCounters): { link: Link | null; isTap: boolean; pcap: PcapWriter | null } {
  const cfg = ctx.config;
  let link: Link | null = null;
  let isTap = false;
  switch (cfg.link.kind) {
    case 'none':
      return { link: null, isTap, pcap: null };
    case 'shm':
      link = ShmWire.attach(cfg.link.wire, cfg.link.side, { generation: ctx.generation });
      break;
    case 'tap': {
      const mac = new Uint8Array(6);
      const m = cfg.iface?.mac ?? 0;
      for (let i = 0; i < 6; i++) mac[i] = Math.floor(m / 2 ** (8 * (5 - i))) & 0xff;
      link = new TapLink({
        fd: cfg.link.fd,
        name: cfg.link.name,
        mtu: cfg.iface?.mtu ?? 1500,
        mac,
        vnetHdrSize: cfg.link.vnetHdrSize ?? 0,
        gso: cfg.link.gso ?? false,
        counters,
      });
      isTap = true;
      break;
    }
  }
  if (cfg.faults) link = new FaultLink(link, cfg.faults);
  // A restarted driver appends to the capture its predecessor started.
  let pcap: PcapWriter | null = null;
  if (cfg.pcap) {
    pcap = PcapWriter.open(cfg.pcap, { append: ctx.generation > 1 });
    link = new PcapLink(link, pcap, { clock: ctx.clock });
  }
  return { link, isTap, pcap };
}

/**
 * Receive buffers: a maximal frame plus 7 bytes, so the shared-memory wire can always place a frame at
 * its ring alignment modulo 8 (shm-wire.ts: co-aligned copies are word copies), unless the pool's
 * largest buffer has no room for the slack (then frames are merely copied more slowly).
 */
function rxBufferSize(ctx: ServerContext, link: Link): number {
  if (link.rxSlotBytes !== undefined) return link.rxSlotBytes;
  return Math.max(link.maxFrame + 1, Math.min(link.maxFrame + 8, ctx.pools.maxSize));
}

/**
 * Give every empty receive slot from `from` on a fresh buffer owned by this incarnation; false if the
 * pool ran out first.
 */
function refill(ctx: ServerContext, rx: FrameBatch, from: number, size: number, counters: DriverCounters): boolean {
  for (let i = from; i < rx.capacity; i++) {
    if (rx.buf[i] >= 0) continue;
    const h = ctx.pools.alloc(size, ctx.owner);
    if (h < 0) {
      counters.rxNoBuffer++;
      return false;
    }
    rx.set(i, h, 0, 0, 0);
  }
  return true;
}

/** Publish received frames [0, rx.count) to IP; returns how many went (the rest stay, compacted). */
function publish(ctx: ServerContext, st: DriverState): number {
  const out = ctx.out.get('ip')!;
  const rx = st.rx;
  const pools = ctx.pools;
  let n = 0;
  for (; n < rx.count; n++) {
    const o = out.reserve(D.FRAME_BYTES, DATA_MSG.FRAME);
    if (o < 0) break;
    const b = out.bytes;
    const buf = rx.buf[n];
    wr32(b, o + HDR_DST_GEN, 0);
    wr32(b, o + HDR_SRC_GEN, ctx.generation);
    wr32(b, o + D.BUF, buf);
    wr32(b, o + D.EPOCH, pools.epochOf(buf));
    wr32(b, o + D.OFF, rx.off[n]);
    wr32(b, o + D.LEN, rx.len[n]);
    const f = rx.flags[n];
    wr32(b, o + D.FLAGS, (f & FRAME_CSUM_OFFLOADED ? FRAME_CSUM_OK : 0) | (f & FRAME_GSO ? MSG_FRAME_GSO : 0));
    wr32(b, o + D.IFINDEX, 0);
    out.commit();
    rx.buf[n] = -1; // handed over: the slot needs a new buffer
    st.rxHoles = true;
  }
  // Keep unpublished frames at the front, empty slots after them.
  if (n > 0) {
    let w = 0;
    for (let i = n; i < rx.count; i++) rx.swap(w++, i);
    rx.count -= n;
  }
  st.counters.rxPublished += n;
  return n;
}



export const driverServer: ServerModule = {
  name: 'driver',

  start(ctx: ServerContext): void {
    const counters = DriverCounters.attach(ctx.state);
    const { link, isTap, pcap } = openLink(ctx, counters);
    const rx = new FrameBatch(ctx.pools, RX_BATCH);
    rx.buf.fill(-1);
    rx.realign = true; // slots are offered at off 0 with 7 bytes of slack (rxBufferSize)
    const tx = new FrameBatch(ctx.pools, 1);
    const st: DriverState = { link, rx, tx, counters, tapPollUs: TAP_POLL_MIN_US, isTap, pcap, pcapFlushedUs: 0, rxHoles: true };
    if (link) st.rxHoles = !refill(ctx, rx, 0, rxBufferSize(ctx, link), counters);
    states.set(ctx, st);
  },

  handle(ctx: ServerContext, from: Endpoint, type: number, bytes: Uint8Array, off: number, len: number): boolean {
    const st = states.get(ctx)!;
    if (type !== DATA_MSG.FRAME || from !== 'ip' || len < D.FRAME_BYTES) {
      st.counters.drop('bad-message');
      return true;
    }
    const buf = rd32(bytes, off + D.BUF);
    if (!ctx.claim(buf, rd32(bytes, off + D.EPOCH))) {
      st.counters.drop('replay');
      return true;
    }
    const link = st.link;
    if (!link) {
      st.counters.drop('no-link');
      ctx.pools.free(buf, ctx.owner);
      return true;
    }
    const tx = st.tx;
    const mf = rd32(bytes, off + D.FLAGS);
    let flags = mf & FRAME_CSUM_OK && link.checksumOffload ? FRAME_CSUM_OFFLOADED : 0;
    // A GSO frame keeps its segment size (bits 16-31) for a link that cuts (else the link drops it).
    if (mf & MSG_FRAME_GSO && link.gsoMaxBytes) flags |= FRAME_GSO | (mf & 0xffff0000);
    tx.set(0, buf, rd32(bytes, off + D.OFF), rd32(bytes, off + D.LEN), flags);
    tx.count = 1;
    if (link.transmit(tx, 0) === 0) {
      st.counters.txBackpressure++;
      return false; // the link is full: offered again later, the buffer stays ours
    }
    st.counters.txFrames++;
    ctx.pools.free(buf, ctx.owner);
    return true;
  },

  // Frames that reached the link after poll() received: the link rings our doorbell only when we have
  // announced a park, so the host re-checks here after announcing. Without this, a frame that landed in
  // that window waited for the next timer or message: in `bench crr` (dedicated) connections stalled
  // for 40 ms .. 1 s (the next delayed-ACK, retransmission or 1 s idle park), a large part of the mean
  // (side by side on this machine: 61-92 connections/s before, 152-190 after).
  // Frames still held for a full ring to IP are not news: poll() already asked to be called again soon.
  pending(ctx: ServerContext): boolean {
    const st = states.get(ctx);
    return st !== undefined && st.link !== null && st.rx.count === 0 && st.link.rxReady;
  },

  poll(ctx: ServerContext, nowUs: number): number {
    const st = states.get(ctx);
    if (!st || !st.link) return Infinity;
    const link = st.link;
    let deadline = link.poll(nowUs);
    const rx = st.rx;
    let got = 0;
    for (let round = 0; round < RX_ROUNDS; round++) {
      if (rx.count > 0 && publish(ctx, st) === 0) return nowUs + 100; // IP's ring is full: soon again
      if (st.rxHoles) st.rxHoles = !refill(ctx, rx, rx.count, rxBufferSize(ctx, link), st.counters);
      const n = link.receive(rx);
      if (n === 0) break;
      st.rxHoles = true; // (a link may swap buffers in its slots: rescan after any receive)
      got += n;
      st.counters.rxFrames += n;
    }
    if (rx.count > 0) publish(ctx, st);
    if (rx.count > 0 || got >= RX_BATCH) deadline = nowUs; // more may be waiting: come straight back
    if (st.pcap && nowUs - st.pcapFlushedUs >= PCAP_FLUSH_US) {
      st.pcap.flush();
      st.pcapFlushedUs = nowUs;
    }
    if (st.pcap) deadline = Math.min(deadline, st.pcapFlushedUs + PCAP_FLUSH_US);
    if (st.isTap) {
      st.tapPollUs = got > 0 ? TAP_POLL_MIN_US : Math.min(TAP_POLL_MAX_US, st.tapPollUs * 2);
      deadline = Math.min(deadline, nowUs + st.tapPollUs);
    }
    return deadline;
  },
};

// (stop) a clean shutdown closes the link: a capture is flushed and closed, a wire end detaches.
driverServer.stop = (ctx: ServerContext): void => {
  const st = states.get(ctx);
  if (!st) return;
  for (let i = 0; i < st.rx.capacity; i++) if (st.rx.buf[i] >= 0) ctx.pools.free(st.rx.buf[i], ctx.owner);
  st.link?.close();
  states.delete(ctx);
};

export { ShmWireLink };
