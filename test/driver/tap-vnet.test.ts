/**
 * The TAP link with IFF_VNET_HDR, over a fake device (crafted frames in, captured frames out): what
 * the virtio_net_hdr of a received frame makes of it (checksum trusted, GSO, or a counted drop for a
 * malformed header, never a crash), and the header written in front of a transmitted frame (NEEDS_CSUM
 * with the pseudo-header sum in the checksum field; GSO fields for a TSO frame).
 */
import t from 'tap';
import { TapLink } from '../../servers/driver/tap-link.js';
import { FRAME_CSUM_OFFLOADED, FRAME_GSO, FrameBatch } from '../../servers/driver/link.js';
import { DriverCounters } from '../../servers/driver/counters.js';
import { Pools } from '../../shared-rings/pools.js';
import { makeOwner } from '../../shared-rings/pool.js';
import { checksum, pseudoHeaderSumV4 } from '../../servers/wire/checksum.js';
import { VirtioNetHdrView } from '../../servers/wire/virtio-net.js';

const OWNER = makeOwner(1, 1);
const H = 12;
const SRC = 0x0a4f0001;
const DST = 0x0a4f0002;

/** Ethernet + IPv4 + TCP (20-byte header) + payload: `len` bytes in all; checksums left 0. */
function tcpFrame(len: number, proto = 6): Uint8Array {
  const f = new Uint8Array(len);
  f[12] = 0x08;
  f[14] = 0x45;
  f[16] = (len - 14) >> 8;
  f[17] = (len - 14) & 255;
  f[20] = 0x40; // DF
  f[22] = 64;
  f[23] = proto;
  for (let i = 0; i < 4; i++) {
    f[26 + i] = (SRC >>> (24 - 8 * i)) & 255;
    f[30 + i] = (DST >>> (24 - 8 * i)) & 255;
  }
  f[34 + 12] = 5 << 4;
  for (let i = 54; i < len; i++) f[i] = i & 255;
  return f;
}

function vnet(fields: Partial<Record<'flags' | 'gsoType' | 'hdrLen' | 'gsoSize' | 'csumStart' | 'csumOffset', number>>): Uint8Array {
  const b = new Uint8Array(H);
  const v = new VirtioNetHdrView().bind(b, 0, H);
  Object.assign(v, fields);
  return b;
}

class FakeDevice {
  queue: Uint8Array[] = [];
  written: Uint8Array[] = [];
  readBatch(buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, max: number): number {
    let n = 0;
    while (n < max && this.queue.length > 0) {
      const f = this.queue.shift()!;
      const len = Math.min(f.length, lengths[n]!);
      buf.set(f.subarray(0, len), offsets[n]!);
      lengths[n] = len;
      n++;
    }
    return n;
  }
  writeBatch(buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number {
    for (let i = 0; i < count; i++) this.written.push(buf.slice(offsets[i]!, offsets[i]! + lengths[i]!));
    return count;
  }
}

function setup(gso = true): { link: TapLink; dev: FakeDevice; pools: Pools; counters: DriverCounters; rx: FrameBatch } {
  const pools = new Pools(Pools.create({ smallBuffers: 64, smallSize: 2048, bigBuffers: 16, bigSize: 65536 + 1024 }));
  const counters = DriverCounters.attach(new SharedArrayBuffer(4096));
  const dev = new FakeDevice();
  const link = new TapLink({ fd: 999, name: 'fake', mtu: 1500, mac: new Uint8Array(6), vnetHdrSize: H, gso, counters, device: dev });
  const rx = new FrameBatch(pools, 8);
  for (let i = 0; i < 8; i++) rx.set(i, pools.alloc(link.rxSlotBytes, OWNER), 0, 0, 0);
  return { link, dev, pools, counters, rx };
}

const cat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const r = new Uint8Array(a.length + b.length);
  r.set(a);
  r.set(b, a.length);
  return r;
};

t.test('receive: the header decides the flags; the frame starts after it', async (t) => {
  const { link, dev, rx, counters } = setup();
  t.equal(link.checksumOffload, true);
  t.equal(link.gsoMaxBytes, 65535);
  const big = tcpFrame(30000);
  dev.queue.push(
    cat(vnet({}), tcpFrame(100)),
    cat(vnet({ flags: 1, csumStart: 34, csumOffset: 16 }), tcpFrame(1514)),
    cat(vnet({ flags: 2 }), tcpFrame(200)),
    cat(vnet({ flags: 1, gsoType: 1, gsoSize: 1448, hdrLen: 54, csumStart: 34, csumOffset: 16 }), big),
  );
  t.equal(link.receive(rx), 4);
  t.same(Array.from(rx.flags.subarray(0, 4)), [0, FRAME_CSUM_OFFLOADED, FRAME_CSUM_OFFLOADED, FRAME_CSUM_OFFLOADED | FRAME_GSO]);
  t.same(Array.from(rx.len.subarray(0, 4)), [100, 1514, 200, 30000]);
  t.same(rx.frame(3), big, 'the GSO frame, byte for byte, after the header');
  t.equal(counters.c.get('rxGsoFrames'), 1);
  t.equal(counters.c.get('rxCsumTrusted'), 3);
});

t.test('receive: malformed headers and oversize frames are counted drops, never a crash', async (t) => {
  const { link, dev, rx, counters } = setup();
  const ok = cat(vnet({}), tcpFrame(100));
  dev.queue.push(
    cat(vnet({ flags: 0x40 }), tcpFrame(100)),
    cat(vnet({ gsoType: 3, flags: 1, gsoSize: 1000, csumStart: 34, csumOffset: 6 }), tcpFrame(3000, 17)),
    cat(vnet({ flags: 1, csumStart: 34, csumOffset: 5000 }), tcpFrame(100)),
    cat(vnet({ flags: 1, csumStart: 9000, csumOffset: 16 }), tcpFrame(100)),
    cat(vnet({ hdrLen: 400 }), tcpFrame(100)),
    cat(vnet({ flags: 1, gsoType: 1, gsoSize: 1000, csumStart: 34, csumOffset: 16 }), tcpFrame(3000, 17)),
    cat(vnet({ flags: 1, gsoType: 1, gsoSize: 0, csumStart: 34, csumOffset: 16 }), tcpFrame(3000)),
    cat(vnet({}), tcpFrame(3000)),
    new Uint8Array(H + 5),
    ok,
  );
  let got = 0;
  for (let i = 0; i < 4 && dev.queue.length > 0; i++) got += link.receive(rx);
  t.equal(got, 1, 'only the well-formed frame');
  t.same(rx.frame(0), ok.subarray(H));
  t.equal(counters.c.get('drop:vnet-bad-flags'), 1);
  t.equal(counters.c.get('drop:vnet-bad-gso-type'), 1);
  t.equal(counters.c.get('drop:vnet-bad-offsets'), 3);
  t.equal(counters.c.get('drop:vnet-bad-gso'), 2);
  t.equal(counters.c.get('drop:rx-oversize'), 1);
});

t.test('receive without TSO granted: slots for MTU frames only', async (t) => {
  const { link } = setup(false);
  t.equal(link.rxSlotBytes, H + 1514 + 1);
});

function txBatch(pools: Pools, frame: Uint8Array, off: number, flags: number): FrameBatch {
  const b = new FrameBatch(pools, 1);
  const h = pools.alloc(off + frame.length, OWNER);
  pools.bytesOf(h).set(frame, pools.offsetOf(h) + off);
  b.set(0, h, off, frame.length, flags);
  b.count = 1;
  return b;
}

t.test('transmit: NEEDS_CSUM with the pseudo-header sum; completing it gives the right checksum', async (t) => {
  const { link, dev, pools, counters } = setup();
  const f = tcpFrame(1000);
  t.equal(link.transmit(txBatch(pools, f, 64, FRAME_CSUM_OFFLOADED)), 1);
  const w = dev.written[0]!;
  t.equal(w.length, H + 1000);
  const v = new VirtioNetHdrView().bind(w, 0, H);
  t.same([v.flags, v.gsoType, v.csumStart, v.csumOffset, v.gsoSize], [1, 0, 34, 16, 0]);
  const l4 = H + 34;
  const field = (w[l4 + 16]! << 8) | w[l4 + 17]!;
  t.equal(field, pseudoHeaderSumV4(SRC, DST, 6, 1000 - 34), 'the folded pseudo-header sum, not complemented');
  // What the kernel does with NEEDS_CSUM: checksum from csum_start over the rest, stored at csum_offset.
  const c = checksum(w, l4, 1000 - 34);
  w[l4 + 16] = c >> 8;
  w[l4 + 17] = c & 255;
  t.equal(checksum(w, l4, 1000 - 34, pseudoHeaderSumV4(SRC, DST, 6, 1000 - 34)), 0, 'a valid TCP checksum');
  t.equal(counters.c.get('txCsumOffloaded'), 1);
});

t.test('transmit: a TSO frame gets gso_type TCPV4, gso_size and hdr_len; invalid GSO requests are dropped', async (t) => {
  const { link, dev, pools, counters } = setup();
  t.equal(link.transmit(txBatch(pools, tcpFrame(40000), 64, FRAME_CSUM_OFFLOADED | FRAME_GSO | (1448 << 16))), 1);
  const v = new VirtioNetHdrView().bind(dev.written[0]!, 0, H);
  t.same([v.flags, v.gsoType, v.hdrLen, v.gsoSize, v.csumStart, v.csumOffset], [1, 1, 54, 1448, 34, 16]);
  t.equal(counters.c.get('txGsoFrames'), 1);
  // GSO on UDP, an oversize frame without GSO: dropped, counted, taken.
  t.equal(link.transmit(txBatch(pools, tcpFrame(3000, 17), 64, FRAME_CSUM_OFFLOADED | FRAME_GSO | (1000 << 16))), 1);
  t.equal(link.transmit(txBatch(pools, tcpFrame(3000), 64, FRAME_CSUM_OFFLOADED)), 1);
  t.equal(dev.written.length, 1);
  t.equal(counters.c.get('drop:tx-oversize'), 2);
});

t.test('transmit: a frame with no headroom goes through the scratch copy with a plain header', async (t) => {
  const { link, dev, pools } = setup();
  const arp = new Uint8Array(42).fill(7);
  t.equal(link.transmit(txBatch(pools, arp, 0, 0)), 1);
  t.equal(dev.written[0]!.length, H + 42);
  t.same(dev.written[0]!.subarray(0, H), new Uint8Array(H));
  t.same(dev.written[0]!.subarray(H), arp);
});
