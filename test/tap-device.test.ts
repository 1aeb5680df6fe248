/**
 * TAP device addon against a real peer: the Linux kernel in namespace K, reached through the
 * wire namespace W (see test/helpers/netns.ts and shared/notes/real-peers.md).
 * Needs root; skips elsewhere, but fails under CI (where it must really run).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import {
  TUN_F,
  TapDevice,
  ifIndex,
  loadTapAddon,
  tapAddonAvailable,
} from '../servers/driver/tap-device.js';
import { createWire, netnsUnavailableReason, parseMac, which, type Wire } from './helpers/netns.js';

const TAP_MODULE_URL = new URL('../servers/driver/tap-device.js', import.meta.url).href;
const STACK_MAC = parseMac('02:6b:6e:00:00:02');
const BCAST = parseMac('ff:ff:ff:ff:ff:ff');
const NODE = process.execPath;

// ---------------------------------------------------------------------------------------------
// Hand-built frames

function ip4(a: string): Uint8Array {
  return Uint8Array.from(a.split('.').map(Number));
}

function eq(a: Uint8Array, aoff: number, b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (a[aoff + i] !== b[i]) return false;
  return true;
}

function u16(b: Uint8Array, off: number): number {
  return ((b[off] ?? 0) << 8) | (b[off + 1] ?? 0);
}

function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 8) & 0xff;
  b[off + 1] = v & 0xff;
}

/** Internet checksum (one's complement sum) of b[off..off+len), plus an initial partial sum. */
function csum(b: Uint8Array, off: number, len: number, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < len; i += 2) s += u16(b, off + i);
  if (len & 1) s += (b[off + len - 1] ?? 0) << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

function pseudoSum(src: Uint8Array, dst: Uint8Array, proto: number, len: number): number {
  return u16(src, 0) + u16(src, 2) + u16(dst, 0) + u16(dst, 2) + proto + len;
}

function ethHeader(f: Uint8Array, dst: Uint8Array, src: Uint8Array, type: number): void {
  f.set(dst, 0);
  f.set(src, 6);
  put16(f, 12, type);
}

function arpReply(ourMac: Uint8Array, ourIp: string, theirMac: Uint8Array, theirIp: string): Uint8Array {
  const f = new Uint8Array(60); // padded to the Ethernet minimum
  ethHeader(f, theirMac, ourMac, 0x0806);
  put16(f, 14, 1); // htype Ethernet
  put16(f, 16, 0x0800); // ptype IPv4
  f[18] = 6;
  f[19] = 4;
  put16(f, 20, 2); // reply
  f.set(ourMac, 22);
  f.set(ip4(ourIp), 28);
  f.set(theirMac, 32);
  f.set(ip4(theirIp), 38);
  return f;
}

/** Writes an Ethernet+IPv4+UDP frame into out at off; returns its length. */
function writeUdp(
  out: Uint8Array,
  off: number,
  p: { srcMac: Uint8Array; dstMac: Uint8Array; src: string; dst: string; sport: number; dport: number; payload: Uint8Array },
): number {
  const ulen = 8 + p.payload.length;
  const tlen = 20 + ulen;
  const f = out.subarray(off, off + 14 + tlen);
  f.fill(0);
  ethHeader(f, p.dstMac, p.srcMac, 0x0800);
  const ip = 14;
  f[ip] = 0x45;
  put16(f, ip + 2, tlen);
  put16(f, ip + 4, 0x1234);
  put16(f, ip + 6, 0x4000); // DF
  f[ip + 8] = 64;
  f[ip + 9] = 17;
  const src = ip4(p.src);
  const dst = ip4(p.dst);
  f.set(src, ip + 12);
  f.set(dst, ip + 16);
  put16(f, ip + 10, csum(f, ip, 20));
  const u = ip + 20;
  put16(f, u, p.sport);
  put16(f, u + 2, p.dport);
  put16(f, u + 4, ulen);
  f.set(p.payload, u + 8);
  const c = csum(f, u, ulen, pseudoSum(src, dst, 17, ulen));
  put16(f, u + 6, c === 0 ? 0xffff : c);
  return 14 + tlen;
}

interface Udp {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: string;
  ipCsumOk: boolean;
  udpCsum: number;
  udpCsumOk: boolean;
}

function parseUdp(f: Uint8Array): Udp | undefined {
  if (f.length < 42 || u16(f, 12) !== 0x0800 || ((f[14] ?? 0) >> 4) !== 4 || f[23] !== 17) return undefined;
  const ihl = ((f[14] ?? 0) & 0x0f) * 4;
  const u = 14 + ihl;
  const ulen = u16(f, u + 4);
  const srcB = f.subarray(26, 30);
  const dstB = f.subarray(30, 34);
  const udpCsum = u16(f, u + 6);
  return {
    src: [...srcB].join('.'),
    dst: [...dstB].join('.'),
    sport: u16(f, u),
    dport: u16(f, u + 2),
    payload: Buffer.from(f.subarray(u + 8, u + ulen)).toString(),
    ipCsumOk: csum(f, 14, ihl) === 0,
    udpCsum,
    udpCsumOk: udpCsum !== 0 && csum(f, u, ulen, pseudoSum(srcB, dstB, 17, ulen)) === 0,
  };
}

function isArpRequestFor(f: Uint8Array, ip: string): boolean {
  return f.length >= 42 && u16(f, 12) === 0x0806 && u16(f, 20) === 1 && eq(f, 38, ip4(ip));
}

function icmpEchoReply(req: Uint8Array): Uint8Array {
  const f = Uint8Array.from(req);
  f.set(req.subarray(6, 12), 0);
  f.set(req.subarray(0, 6), 6);
  f.set(req.subarray(30, 34), 26);
  f.set(req.subarray(26, 30), 30);
  const ihl = ((f[14] ?? 0) & 0x0f) * 4;
  put16(f, 24, 0);
  put16(f, 24, csum(f, 14, ihl));
  const icmp = 14 + ihl;
  const len = u16(f, 16) - ihl;
  f[icmp] = 0; // echo reply
  put16(f, icmp + 2, 0);
  put16(f, icmp + 2, csum(f, icmp, len));
  return f;
}

// ---------------------------------------------------------------------------------------------
// Reading helpers

const RX_SLOTS = 8;
const SLOT = 2048;

/** Reads frames (in short polls, yielding to the event loop) until one matches; returns a copy. */
async function readUntil(
  tap: TapDevice,
  match: (f: Uint8Array) => boolean,
  timeoutMs = 5000,
  seen: Uint8Array[] = [],
): Promise<Uint8Array | undefined> {
  const buf = new Uint8Array(new SharedArrayBuffer(RX_SLOTS * SLOT));
  const offs = new Int32Array(RX_SLOTS);
  const lens = new Int32Array(RX_SLOTS);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (let i = 0; i < RX_SLOTS; i++) {
      offs[i] = i * SLOT;
      lens[i] = SLOT;
    }
    const n = tap.readBatch(buf, offs, lens, RX_SLOTS, 50);
    for (let i = 0; i < n; i++) {
      const f = buf.slice(offs[i]!, offs[i]! + Math.min(lens[i]!, SLOT));
      if (match(f)) return f;
      seen.push(f);
    }
    await sleep(0);
  }
  return undefined;
}

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await sleep(10);
  }
  return cond();
}

function threadNetns(): string {
  return readlinkSync('/proc/thread-self/ns/net');
}

function describe(frames: Uint8Array[]): string {
  return frames.map((f) => Buffer.from(f.subarray(0, 42)).toString('hex')).join('\n');
}

// ---------------------------------------------------------------------------------------------
// Tests that need only the addon

t.test('addon argument and error handling (no namespace needed)', { skip: !tapAddonAvailable() && 'addon not built' }, async (t) => {
  const addon = loadTapAddon();
  t.equal(addon.constants['TUN_F_CSUM'], TUN_F.CSUM);
  t.equal(addon.constants['TUN_F_TSO4'], TUN_F.TSO4);
  const before = threadNetns();
  t.throws(
    () => TapDevice.open('kx0', { netns: `/run/netns/keepnet-missing-${process.pid}` }),
    { code: 'ENOENT', syscall: 'open', message: /network namespace/ },
    'missing netns -> ENOENT',
  );
  t.throws(
    () => TapDevice.open('this-name-is-too-long'),
    { code: 'EINVAL', message: /too long/ },
    'name over 15 bytes -> EINVAL',
  );
  t.equal(threadNetns(), before, 'thread still in its own namespace after failures');
  t.throws(() => addon.readBatch(999_999, new Uint8Array(64), new Int32Array(1), Int32Array.of(64), 1, 0), { code: 'EBADF' });
  t.throws(() => addon.close(999_999), { code: 'EBADF' });
  t.throws(() => addon.readBatch(0, new Uint8Array(64), Int32Array.of(32), Int32Array.of(64), 1, 0), RangeError, 'slot outside buf');
  t.throws(() => addon.readBatch(0, new Uint8Array(64), new Int32Array(1), Int32Array.of(64), 1, -1), RangeError, 'negative timeout');
  t.throws(() => addon.writeBatch(0, new Uint8Array(64), new Int32Array(1), Int32Array.of(64), 2), RangeError, 'count > slots');
  t.throws(() => addon.readBatch(0, new Uint16Array(8) as unknown as Uint8Array, new Int32Array(1), Int32Array.of(8), 1, 0), TypeError);
});

// ---------------------------------------------------------------------------------------------
// Real-peer tests

const reason = netnsUnavailableReason();
if (reason) {
  if (process.env['CI']) t.fail(`real-peer TAP tests must run in CI but cannot: ${reason}`);
  else t.comment(`skipping real-peer TAP tests: ${reason}`);
} else {
  const wires: Wire[] = [];
  const newWire = (): Wire => {
    const w = createWire();
    wires.push(w);
    return w;
  };
  t.teardown(() => {
    for (const w of wires) w.destroy();
  });

  t.test('ARP and a UDP round trip with the kernel through the TAP', async (t) => {
    const w = newWire();
    t.teardown(() => w.destroy());
    const code = `
      const s = require('dgram').createSocket('udp4');
      s.bind(0, ${JSON.stringify(w.kernelAddr)}, () => {
        const send = () => s.send('keepnet-hello', 7777, ${JSON.stringify(w.stackAddr)});
        send();
        const iv = setInterval(send, 250);
        s.on('message', (m, r) => { console.log('reply:' + m + ':' + r.address + ':' + r.port); clearInterval(iv); s.close(); });
      });
      setTimeout(() => { console.log('timeout'); process.exit(3); }, 8000).unref();`;
    const child = w.spawn('K', [NODE, '-e', code], { timeoutMs: 15_000 });

    const seen: Uint8Array[] = [];
    const arp = await readUntil(w.tap, (f) => isArpRequestFor(f, w.stackAddr), 5000, seen);
    if (!arp) {
      t.fail(`no ARP request for ${w.stackAddr}; saw:\n${describe(seen)}\nchild: ${child.stderr()}`);
      return;
    }
    t.ok(eq(arp, 0, BCAST), 'ARP request is broadcast');
    t.ok(eq(arp, 6, w.kernelMacBytes), 'from the kernel MAC');
    t.ok(eq(arp, 22, w.kernelMacBytes) && eq(arp, 28, ip4(w.kernelAddr)), 'sender is the kernel (MAC, IP)');

    t.ok(w.tap.writeFrame(arpReply(STACK_MAC, w.stackAddr, w.kernelMacBytes, w.kernelAddr)), 'ARP reply written');

    const frame = await readUntil(w.tap, (f) => eq(f, 0, STACK_MAC) && parseUdp(f)?.dport === 7777, 5000, seen);
    if (!frame) {
      t.fail(`no UDP datagram to our MAC; saw:\n${describe(seen)}`);
      return;
    }
    t.ok(eq(frame, 6, w.kernelMacBytes), 'UDP frame from the kernel MAC');
    const udp = parseUdp(frame)!;
    t.equal(udp.src, w.kernelAddr);
    t.equal(udp.dst, w.stackAddr);
    t.equal(udp.payload, 'keepnet-hello');
    t.ok(udp.ipCsumOk, 'IPv4 header checksum is valid');
    t.ok(udp.udpCsumOk, `UDP checksum is real and valid (0x${udp.udpCsum.toString(16)}): tx offload is off on k0`);

    const out = new Uint8Array(2048);
    const len = writeUdp(out, 0, {
      srcMac: STACK_MAC,
      dstMac: w.kernelMacBytes,
      src: w.stackAddr,
      dst: w.kernelAddr,
      sport: 7777,
      dport: udp.sport,
      payload: Buffer.from('keepnet-reply'),
    });
    t.ok(w.tap.writeFrame(out.subarray(0, len)), 'UDP reply written');
    const r = await child.exited;
    t.equal(r.code, 0, `kernel-side socket got our reply (stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)})`);
    t.match(r.stdout, `reply:keepnet-reply:${w.stackAddr}:7777`);
  });

  t.test('writeBatch of several frames; readBatch returns several frames in one call (SharedArrayBuffer)', async (t) => {
    const w = newWire();
    t.teardown(() => w.destroy());
    w.setStackNeighbor('02:6b:6e:00:00:02');
    const code = `
      const s = require('dgram').createSocket('udp4');
      let n = 0;
      s.on('message', (m, r) => { s.send(m, r.port, r.address, () => { if (++n === 3) { console.log('done'); s.close(); } }); });
      s.bind(9999, ${JSON.stringify(w.kernelAddr)}, () => console.log('ready'));
      setTimeout(() => { console.log('timeout ' + n); process.exit(3); }, 8000).unref();`;
    const child = w.spawn('K', [NODE, '-e', code], { timeoutMs: 15_000 });
    t.ok(await waitFor(() => child.stdout().includes('ready')), 'kernel-side UDP echo server is up');

    const sab = new SharedArrayBuffer(8 * SLOT);
    const buf = new Uint8Array(sab);
    const offs = new Int32Array(8);
    const lens = new Int32Array(8);
    for (let i = 0; i < 3; i++) {
      offs[i] = i * SLOT + 3 * i; // odd offsets on purpose
      lens[i] = writeUdp(buf, offs[i]!, {
        srcMac: STACK_MAC,
        dstMac: w.kernelMacBytes,
        src: w.stackAddr,
        dst: w.kernelAddr,
        sport: 5000 + i,
        dport: 9999,
        payload: Buffer.from(`frame-${i}`),
      });
    }
    t.equal(w.tap.writeBatch(buf, offs, lens, 3), 3, 'writeBatch wrote 3 frames');
    const r = await child.exited;
    t.equal(r.code, 0, `kernel received and echoed all 3 (${r.stdout.trim()})`);

    // All three echoes are queued on the TAP by now: one call should return them all.
    // Slot 0 is deliberately too small: the kernel truncates silently, so the length equals the capacity.
    buf.fill(0);
    for (let i = 0; i < 8; i++) {
      offs[i] = i * SLOT;
      lens[i] = SLOT;
    }
    lens[0] = 20;
    const n = w.tap.readBatch(buf, offs, lens, 8, 1000);
    t.equal(n, 3, 'one readBatch returned the 3 echoed frames');
    t.equal(lens[0], 20, 'an oversized frame is silently truncated to its slot: length == capacity');
    t.equal(buf[20], 0, 'nothing written past the slot capacity');
    t.ok(eq(buf, 0, STACK_MAC) && eq(buf, 6, w.kernelMacBytes), 'truncated frame still has its header');
    const got = [];
    for (let i = 1; i < n; i++) got.push(parseUdp(buf.subarray(offs[i]!, offs[i]! + lens[i]!)));
    t.same(
      got.map((u) => u && { payload: u.payload, dport: u.dport, sport: u.sport, dst: u.dst, ok: u.udpCsumOk }),
      [1, 2].map((i) => ({ payload: `frame-${i}`, dport: 5000 + i, sport: 9999, dst: w.stackAddr, ok: true })),
    );
    t.equal(lens[3], SLOT, 'unused slots keep their capacity');
    t.equal(w.tap.readBatch(buf, offs, lens, 0, 0), 0, 'maxFrames 0 reads nothing');
  });

  t.test('wire faults: an nft drop rule stops frames, clearFaults restores them', async (t) => {
    const w = newWire();
    t.teardown(() => w.destroy());
    w.addFault('toStack', 'meta protocol arp drop');
    t.match(w.exec('W', ['nft', 'list', 'chain', 'netdev', 'keepnet_wire', 'to_stack']), /arp drop[\s\S]*fwd to "ktap0"/, 'fault sits before the fwd rule');
    const code = `
      const s = require('dgram').createSocket('udp4');
      const iv = setInterval(() => s.send('x', 7777, ${JSON.stringify(w.stackAddr)}), 200);
      setTimeout(() => { clearInterval(iv); s.close(); }, 6000);`;
    w.spawn('K', [NODE, '-e', code], { timeoutMs: 10_000 });
    const dropped = await readUntil(w.tap, (f) => isArpRequestFor(f, w.stackAddr), 1200);
    t.notOk(dropped, 'no ARP request reaches the TAP while the fault is on');
    w.clearFaults();
    const arp = await readUntil(w.tap, (f) => isArpRequestFor(f, w.stackAddr), 4000);
    t.ok(arp, 'ARP requests arrive again after clearFaults()');
  });

  t.test('readBatch with a timeout returns 0 promptly when nothing arrives', async (t) => {
    const w = newWire();
    t.teardown(() => w.destroy());
    const buf = new Uint8Array(4 * SLOT);
    const offs = Int32Array.from([0, 1, 2, 3], (i) => i * SLOT);
    const lens = new Int32Array(4).fill(SLOT);
    let t0 = performance.now();
    t.equal(w.tap.readBatch(buf, offs, lens, 4, 0), 0, 'timeout 0: nothing');
    t.ok(performance.now() - t0 < 50, 'timeout 0 does not wait');
    t0 = performance.now();
    t.equal(w.tap.readBatch(buf, offs, lens, 4, 150), 0, 'timeout 150: nothing');
    const dt = performance.now() - t0;
    t.ok(dt >= 140 && dt < 1000, `waited about the timeout (${dt.toFixed(1)} ms)`);
    t.same([...lens], [SLOT, SLOT, SLOT, SLOT], 'lengths untouched when nothing was read');
  });

  t.test('ICMP echo from the kernel (ping) answered by hand-built frames', { skip: !which('ping') && 'ping not installed (apt iputils-ping)' }, async (t) => {
    const w = newWire();
    t.teardown(() => w.destroy());
    const ping = w.spawn('K', ['ping', '-c', '1', '-W', '3', w.stackAddr], { timeoutMs: 10_000 });
    const seen: Uint8Array[] = [];
    const arp = await readUntil(w.tap, (f) => isArpRequestFor(f, w.stackAddr), 5000, seen);
    t.ok(arp, 'ARP request for the stack address');
    if (!arp) return;
    w.tap.writeFrame(arpReply(STACK_MAC, w.stackAddr, w.kernelMacBytes, w.kernelAddr));
    const req = await readUntil(w.tap, (f) => eq(f, 0, STACK_MAC) && u16(f, 12) === 0x0800 && f[23] === 1 && f[34] === 8, 5000, seen);
    t.ok(req, 'ICMP echo request to our MAC');
    if (!req) return;
    t.ok(eq(req, 6, w.kernelMacBytes), 'from the kernel MAC');
    t.ok(w.tap.writeFrame(icmpEchoReply(req)), 'echo reply written');
    const r = await ping.exited;
    t.equal(r.code, 0, `ping succeeded: ${r.stdout.split('\n').find((l) => /received/.test(l)) ?? r.stdout}`);
  });

  t.test('open errors carry errno codes; the thread namespace is always restored', async (t) => {
    const w = newWire();
    t.teardown(() => w.destroy());
    const before = threadNetns();
    t.throws(() => TapDevice.open(w.tapName, { netns: w.W }), { code: 'EBUSY', syscall: 'ioctl(TUNSETIFF)' }, 'same name twice -> EBUSY');
    t.throws(() => TapDevice.open('bad/name', { netns: w.W }), { code: 'EINVAL' }, "'/' in name -> EINVAL");
    t.throws(() => TapDevice.open('kx0', { netns: '/etc/hostname' }), { code: 'EINVAL', syscall: 'setns' }, 'not a netns -> EINVAL from setns');
    t.equal(threadNetns(), before, 'thread back in its namespace after failures');

    const extra = TapDevice.open('', { netns: w.W });
    t.match(extra.name, /^tap\d+$/, `kernel-chosen name ${extra.name}`);
    t.equal(threadNetns(), before, 'thread back in its namespace after success');
    t.ok(ifIndex(extra.name, w.W) > 0, 'ifIndex in W');
    t.throws(() => ifIndex('nope0', w.W), { code: 'ENODEV' });
    extra.close();
    extra.close(); // idempotent
    t.throws(() => ifIndex(extra.name, w.W), { code: 'ENODEV' }, 'a closed TAP is gone');
    t.throws(() => extra.readBatch(new Uint8Array(64), new Int32Array(1), Int32Array.of(64)), { code: 'EBADF' });

    const vnet = TapDevice.open('kvnet0', { netns: w.W, vnetHdr: true });
    t.doesNotThrow(() => vnet.setVnetHdrSize(12));
    t.doesNotThrow(() => vnet.setOffload(TUN_F.CSUM | TUN_F.TSO4 | TUN_F.TSO6));
    t.equal(vnet.vnetHdrSize, 10, 'the kernel\'s default header size when none is asked for');
    vnet.close();

    // The vnet header mode as keepnet opens it: header size and offloads in one call, reported back.
    const off = TapDevice.open('kvnet1', { netns: w.W, vnetHdr: true, vnetHdrSize: 12, offload: TUN_F.CSUM | TUN_F.TSO4 });
    t.equal(off.vnetHdrSize, 12);
    t.equal(off.offload, TUN_F.CSUM | TUN_F.TSO4, 'checksum offload and TSO4 granted');
    t.equal(off.offloadError, undefined);
    off.close();
    // An offload the kernel refuses (a flag it does not know): falls back to checksum offload alone,
    // and says why.
    const fb = TapDevice.open('kvnet2', { netns: w.W, vnetHdr: true, offload: TUN_F.CSUM | TUN_F.TSO4 | 0x4000 });
    t.equal(fb.offload, TUN_F.CSUM, 'fell back to checksum offload');
    t.equal(fb.offloadError, 'EINVAL');
    fb.close();
    t.throws(() => TapDevice.open('kvnet3', { netns: w.W, vnetHdr: true, vnetHdrSize: 11 }), { code: 'ERR_OUT_OF_RANGE' });

    // A too-short frame fails the whole write with framesWritten telling how many went before it.
    const buf = new Uint8Array(128);
    buf.set(arpReply(STACK_MAC, w.stackAddr, w.kernelMacBytes, w.kernelAddr), 0);
    t.throws(
      () => w.tap.writeBatch(buf, Int32Array.of(0, 64), Int32Array.of(60, 5), 2),
      { code: 'EINVAL', framesWritten: 1 },
      'short frame -> EINVAL with framesWritten',
    );
  });

  t.test('worker.terminate() of a worker looping on readBatch(50) completes quickly', async (t) => {
    const w = newWire();
    t.teardown(() => w.destroy());
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      import(workerData.url).then(({ TapDevice }) => {
        const tap = TapDevice.fromFd(workerData.fd, workerData.name);
        const buf = new Uint8Array(4 * 2048), offs = new Int32Array(4), lens = new Int32Array(4);
        parentPort.postMessage('ready');
        let loops = 0;
        for (;;) {
          for (let i = 0; i < 4; i++) { offs[i] = i * 2048; lens[i] = 2048; }
          tap.readBatch(buf, offs, lens, 4, 50);
          if (++loops === 2) parentPort.postMessage('looping');
        }
      });`;
    const worker = new Worker(code, { eval: true, workerData: { url: TAP_MODULE_URL, fd: w.tap.fd, name: w.tapName } });
    const errors: unknown[] = [];
    worker.on('error', (e) => errors.push(e));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('worker never started looping')), 10_000);
      worker.on('message', (m) => {
        if (m === 'looping') {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await sleep(120);
    const t0 = performance.now();
    await worker.terminate();
    const dt = performance.now() - t0;
    t.ok(dt < 1000, `terminate() took ${dt.toFixed(1)} ms`);
    t.same(errors, [], 'no worker errors');
    // The fd belongs to the process: still usable after the worker is gone.
    t.equal(w.tap.readBatch(new Uint8Array(2048), new Int32Array(1), Int32Array.of(2048), 1, 0), 0, 'fd still valid');
  });

  t.test('a process holding a TAP exits promptly (close + natural exit, and process.exit)', async (t) => {
    const w = newWire();
    t.teardown(() => w.destroy());
    const runChild = async (body: string): Promise<{ code: number | null; ms: number; out: string }> => {
      const src = `import { TapDevice } from ${JSON.stringify(TAP_MODULE_URL)};\n${body}`;
      const t0 = performance.now();
      const child = spawn(NODE, ['--input-type=module', '-e', src], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      clearTimeout(killer);
      return { code, ms: performance.now() - t0, out };
    };
    const loop = `
      const buf = new Uint8Array(2048), offs = new Int32Array(1), lens = new Int32Array(1);
      const iv = setInterval(() => { lens[0] = 2048; tap.readBatch(buf, offs, lens, 1, 50); }, 0);`;

    const a = await runChild(`
      const tap = TapDevice.open('kexit0', { netns: ${JSON.stringify(w.W)} });
      ${loop}
      setTimeout(() => { clearInterval(iv); tap.close(); console.log('closed'); }, 300);`);
    t.equal(a.code, 0, `close + natural exit: code 0 (${a.out.trim()})`);
    t.ok(a.ms < 5000, `exited in ${a.ms.toFixed(0)} ms`);

    const b = await runChild(`
      const tap = TapDevice.open('kexit1', { netns: ${JSON.stringify(w.W)} });
      ${loop}
      setTimeout(() => process.exit(0), 300);`);
    t.equal(b.code, 0, `process.exit with an open TAP: code 0 (${b.out.trim()})`);
    t.ok(b.ms < 5000, `exited in ${b.ms.toFixed(0)} ms`);

    for (const name of ['kexit0', 'kexit1'])
      t.throws(() => ifIndex(name, w.W), { code: 'ENODEV' }, `${name} is gone with its process`);
  });
}
