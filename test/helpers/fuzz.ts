/**
 * The frame fuzzer: random and mutated Ethernet frames written into a running stack through the
 * shared-memory wire (a RawPeer on side 'b'), then checks that
 *   - no server restarted (stats().servers.X.restarts.total === 0),
 *   - every frame written is accounted for, layer by layer (see `account()`),
 *   - the packet pool is back to its baseline once the load ends,
 *   - the stack still works (a probe through every server, a TCP exchange over loopback).
 * Used by test/hardening/fuzz.test.ts (short) and bench/fuzz.ts (`--frames 1000000`).
 *
 * Seeds: pcaps of real traffic in test/corpus/ (recordSeedCapture() makes one: two stacks on a wire
 * with id FUZZ_WIRE_ID, addresses FUZZ_TARGET (side a, captured) and FUZZ_PEER (side b)), so captured
 * frames from the peer are valid input for a fuzz target on the same wire id and address. Frames the
 * target sent are turned around (MACs, addresses and ports swapped) before use.
 *
 * Mutations (seeded, replayable): bit flips, byte writes near the headers, truncation, extension,
 * length-field lies (IP total length, IHL, TCP data offset, UDP length), option garbage (IPv4 and
 * TCP options of random bytes), fragment fields (MF, offset, overlapping and tiny fragments cut from a
 * real datagram), flags, then the checksums recomputed most of the time so the mutation reaches the
 * parser behind the checksum. Plus purely random frames and random well-formed IPv4 headers over
 * random payloads.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Stack } from '../../kernel-shim/stack.js';
import { ShmWire } from '../../servers/driver/shm-wire.js';
import { PcapReader, PcapWriter } from '../../servers/driver/pcap.js';
import { IP_COUNTERS } from '../../servers/ip/engine.js';
import { INPUT_COUNTERS } from '../../servers/ip/input.js';
import { SERVER_NAMES } from '../../servers/runtime/topology.js';
import { C, HostState } from '../../servers/runtime/control.js';
import { G, TcpViews } from '../../servers/tcp/layout.js';
import { mulberry32, randInt } from './prng.js';
import { RawPeer } from './raw-peer.js';
import { be16, be32, ETH_LEN, ETHERTYPE_IPV4, fixChecksums, ip4, ipv4, rd16 } from './frames.js';

export const FUZZ_WIRE_ID = 0x4b4e;
export const FUZZ_TARGET = '10.99.0.1';
export const FUZZ_PEER = '10.99.0.2';
/** Ports the seed capture uses on the target: a TCP echo server, a UDP echo socket. */
export const FUZZ_TCP_PORT = 7000;
export const FUZZ_UDP_PORT = 7;

type Rand = () => number;

// ---- seeds ---------------------------------------------------------------------------------------------

/** Frames of every pcap in `dir` (and its subdirectories one level down), in file order. */
export function loadCorpus(dir: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  const files: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isFile() && e.name.endsWith('.pcap')) files.push(join(dir, e.name));
    else if (e.isDirectory()) {
      for (const f of readdirSync(join(dir, e.name))) if (f.endsWith('.pcap')) files.push(join(dir, e.name, f));
    }
  }
  for (const f of files.sort()) for (const r of PcapReader.open(f).readAll()) out.push(Uint8Array.from(r.data));
  return out;
}

/** Write frames to a pcap file (for the corpus of interesting inputs). */
export function savePcap(file: string, frames: readonly Uint8Array[]): void {
  const w = PcapWriter.open(file);
  let ts = 0;
  for (const f of frames) w.write(f, 0, f.length, (ts += 1000));
  w.close();
}

/** Turn a frame the target sent into one addressed to it (MACs, IPv4 addresses and ports swapped). */
export function turnAround(f: Uint8Array, targetMac: Uint8Array): Uint8Array {
  const g = Uint8Array.from(f);
  if (g.length < ETH_LEN) return g;
  g.set(g.subarray(0, 6), 6);
  g.set(targetMac, 0);
  if (rd16(g, 12) !== ETHERTYPE_IPV4 || g.length < ETH_LEN + 20) return g;
  const ip = ETH_LEN;
  const src = g.slice(ip + 12, ip + 16);
  g.copyWithin(ip + 12, ip + 16, ip + 20);
  g.set(src, ip + 16);
  const hl = (g[ip] & 15) * 4;
  const l4 = ip + hl;
  if ((g[ip + 9] === 6 || g[ip + 9] === 17) && (rd16(g, ip + 6) & 0x1fff) === 0 && l4 + 4 <= g.length) {
    const sp = rd16(g, l4);
    be16(g, l4, rd16(g, l4 + 2));
    be16(g, l4 + 2, sp);
  }
  return g;
}

/**
 * Record a seed capture of real traffic on the target's side: UDP echoes (small and fragmented), TCP
 * connections with data both ways and closes, a TCP connection refused (RST), a UDP datagram to a
 * closed port (ICMP port unreachable) both ways, ARP.
 */
export async function recordSeedCapture(file: string): Promise<number> {
  const wire = ShmWire.create({ mtu: 1500, id: FUZZ_WIRE_ID });
  const A = new Stack({ address: `${FUZZ_TARGET}/24`, link: { kind: 'shm', wire, side: 'a' }, pcap: file });
  const B = new Stack({ address: `${FUZZ_PEER}/24`, link: { kind: 'shm', wire, side: 'b' } });
  await Promise.all([A.start(), B.start()]);
  try {
    const echo = A.dgram.createSocket('udp4');
    echo.on('message', (m: Buffer, r: { port: number; address: string }) => echo.send(m, r.port, r.address));
    await new Promise<void>((r) => echo.bind(FUZZ_UDP_PORT, () => r()));
    const server = A.net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => server.listen(FUZZ_TCP_PORT, () => r()));
    const c = B.dgram.createSocket('udp4');
    let got = 0;
    c.on('message', () => got++);
    await new Promise<void>((r) => c.bind(0, () => r()));
    for (const n of [1, 60, 500, 1400, 3000, 9000]) c.send(Buffer.alloc(n, n & 255), FUZZ_UDP_PORT, FUZZ_TARGET);
    c.send(Buffer.from('nobody'), 9, FUZZ_TARGET); // port unreachable from the target
    const a2 = A.dgram.createSocket('udp4');
    await new Promise<void>((r) => a2.bind(0, () => r()));
    a2.send(Buffer.from('nobody'), 9, FUZZ_PEER); // port unreachable from the peer
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        const s = B.net.connect(FUZZ_TCP_PORT, FUZZ_TARGET, () => s.end(Buffer.alloc(3000 * (i + 1), 0x41 + i)));
        s.on('data', () => {});
        s.on('end', () => resolve());
        s.on('error', reject);
      });
    }
    await new Promise<void>((resolve) => {
      const s = B.net.connect(7001, FUZZ_TARGET);
      s.on('error', () => resolve());
      s.on('connect', () => (s.destroy(), resolve()));
    });
    const end = Date.now() + 3000;
    while (got < 6 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    for (const s of [echo, c, a2]) s.close();
    server.close();
  } finally {
    await A.close();
    await B.close();
  }
  return PcapReader.open(file).readAll().length;
}

// ---- mutations -----------------------------------------------------------------------------------------

export type MutationName =
  | 'bitflip'
  | 'bytes'
  | 'truncate'
  | 'extend'
  | 'ip-length'
  | 'ihl'
  | 'tcp-offset'
  | 'udp-length'
  | 'ip-options'
  | 'tcp-options'
  | 'fragment-fields'
  | 'fragments'
  | 'tcp-flags'
  | 'random'
  | 'random-ipv4';

export const MUTATIONS: readonly MutationName[] = [
  'bitflip', 'bytes', 'truncate', 'extend', 'ip-length', 'ihl', 'tcp-offset', 'udp-length', 'ip-options', 'tcp-options',
  'fragment-fields', 'fragments', 'tcp-flags', 'random', 'random-ipv4',
];

function randomBytes(rand: Rand, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const x = (rand() * 4294967296) >>> 0;
    b[i] = x;
    if (i + 1 < n) b[i + 1] = x >>> 8;
    if (i + 2 < n) b[i + 2] = x >>> 16;
    if (i + 3 < n) b[i + 3] = x >>> 24;
  }
  return b;
}

/** A frame length biased to small sizes, up to `max`. */
function randLen(rand: Rand, max: number): number {
  const r = rand();
  if (r < 0.5) return randInt(rand, 0, 80);
  if (r < 0.85) return randInt(rand, 60, 600);
  return randInt(rand, 14, max);
}

function isIpv4(f: Uint8Array): boolean {
  return f.length >= ETH_LEN + 20 && rd16(f, 12) === ETHERTYPE_IPV4 && f[ETH_LEN] >> 4 === 4;
}

function l4Of(f: Uint8Array): number {
  return ETH_LEN + (f[ETH_LEN] & 15) * 4;
}

export interface FuzzEnv {
  targetMac: Uint8Array;
  peerMac: Uint8Array;
  target: number;
  peer: number;
  maxFrame: number;
}

/**
 * Fragments cut from one captured IPv4 datagram: overlapping, tiny, duplicated, out of order,
 * sometimes with conflicting bytes in the overlap.
 */
function fragmentsOf(rand: Rand, f: Uint8Array, env: FuzzEnv): Uint8Array[] {
  const ip = ETH_LEN;
  const hl = (f[ip] & 15) * 4;
  const payload = f.subarray(ip + hl, Math.min(f.length, ip + rd16(f, ip + 2)));
  if (payload.length < 16) return [f];
  const id = randInt(rand, 0, 0xffff);
  const out: Uint8Array[] = [];
  const pieces = randInt(rand, 2, 8);
  for (let k = 0; k < pieces; k++) {
    const last = k === pieces - 1;
    let off = last ? 8 * Math.floor(randInt(rand, 0, payload.length - 1) / 8) : 8 * Math.floor(randInt(rand, 0, payload.length - 1) / 8);
    if (k === 0) off = 0;
    const end = last ? payload.length : Math.min(payload.length, off + 8 * randInt(rand, 1, Math.max(1, payload.length >> 3)));
    let piece: Uint8Array = payload.slice(off, end);
    if (rand() < 0.2) piece = randomBytes(rand, piece.length); // conflicting overlap
    if (rand() < 0.1) off = randInt(rand, 0, 0x1fff) * 8; // far beyond 64 KiB
    const mf = !(last || end >= payload.length) || rand() < 0.1;
    const p = ipv4({ src: env.peer, dst: env.target, proto: f[ip + 9], id, fragOff: Math.min(off, 0xfff8), mf }, piece);
    const fr = new Uint8Array(ETH_LEN + p.length);
    fr.set(f.subarray(0, ETH_LEN), 0);
    fr.set(p, ETH_LEN);
    out.push(fr);
    if (rand() < 0.15) out.push(fr); // duplicate
  }
  // Shuffle a little.
  for (let i = out.length - 1; i > 0; i--) {
    if (rand() < 0.3) {
      const j = randInt(rand, 0, i);
      [out[i], out[j]] = [out[j], out[i]];
    }
  }
  return out;
}

/** One mutated (or random) frame, or several (fragments); `kind` says which mutation. */
export function mutate(rand: Rand, seeds: readonly Uint8Array[], env: FuzzEnv, kind: MutationName): Uint8Array[] {
  if (kind === 'random') {
    const f = randomBytes(rand, randLen(rand, env.maxFrame));
    // Mostly addressed to the target, often with a plausible ethertype, so it reaches IP.
    if (f.length >= 14 && rand() < 0.8) f.set(rand() < 0.9 ? env.targetMac : Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 0);
    if (f.length >= 14 && rand() < 0.7) be16(f, 12, rand() < 0.85 ? ETHERTYPE_IPV4 : 0x0806);
    return [f];
  }
  if (kind === 'random-ipv4') {
    const proto = [1, 6, 17, 2, 47, randInt(rand, 0, 255)][randInt(rand, 0, 5)];
    const payload = randomBytes(rand, randInt(rand, 0, 200));
    const dst = rand() < 0.85 ? env.target : rand() < 0.5 ? (env.target | 0xff) >>> 0 : (rand() * 4294967296) >>> 0;
    const src = rand() < 0.7 ? env.peer : (rand() * 4294967296) >>> 0;
    const p = ipv4({ src, dst, proto, ttl: randInt(rand, 0, 255), id: randInt(rand, 0, 0xffff), fragOff: rand() < 0.2 ? 8 * randInt(rand, 0, 100) : 0, mf: rand() < 0.2 }, payload);
    const f = new Uint8Array(ETH_LEN + p.length);
    f.set(env.targetMac, 0);
    f.set(env.peerMac, 6);
    be16(f, 12, ETHERTYPE_IPV4);
    f.set(p, ETH_LEN);
    if (rand() < 0.8) fixChecksums(f);
    return [f];
  }
  const seed = seeds[randInt(rand, 0, seeds.length - 1)];
  if (kind === 'fragments') return isIpv4(seed) ? fragmentsOf(rand, seed, env) : [Uint8Array.from(seed)];
  let f = Uint8Array.from(seed);
  let fix = rand() < 0.7;
  const ip = ETH_LEN;
  switch (kind) {
    case 'bitflip': {
      const n = randInt(rand, 1, 8);
      for (let i = 0; i < n; i++) {
        const at = rand() < 0.8 ? randInt(rand, 0, Math.min(f.length, 80) - 1) : randInt(rand, 0, f.length - 1);
        f[at] ^= 1 << randInt(rand, 0, 7);
      }
      break;
    }
    case 'bytes': {
      const n = randInt(rand, 1, 6);
      for (let i = 0; i < n; i++) {
        const at = randInt(rand, 0, Math.min(f.length, 80) - 1);
        f[at] = [0, 0xff, 0x7f, 0x80, randInt(rand, 0, 255)][randInt(rand, 0, 4)];
      }
      break;
    }
    case 'truncate':
      f = f.slice(0, randInt(rand, 0, f.length - 1));
      fix = false;
      break;
    case 'extend': {
      const g = new Uint8Array(Math.min(env.maxFrame, f.length + randInt(rand, 1, 400)));
      g.set(f);
      g.set(randomBytes(rand, g.length - f.length), f.length);
      f = g;
      break;
    }
    case 'ip-length':
      if (isIpv4(f)) {
        const r = rand();
        be16(f, ip + 2, r < 0.3 ? randInt(rand, 0, 0xffff) : r < 0.6 ? Math.max(0, rd16(f, ip + 2) + randInt(rand, -40, 40)) : randInt(rand, 0, 40));
      }
      break;
    case 'ihl':
      if (isIpv4(f)) f[ip] = (f[ip] & 0xf0) | randInt(rand, 0, 15);
      if (rand() < 0.2 && f.length > ip) f[ip] = (randInt(rand, 0, 15) << 4) | (f[ip] & 15);
      break;
    case 'tcp-offset':
      if (isIpv4(f) && f[ip + 9] === 6 && l4Of(f) + 13 < f.length) f[l4Of(f) + 12] = (randInt(rand, 0, 15) << 4) | (f[l4Of(f) + 12] & 15);
      break;
    case 'udp-length':
      if (isIpv4(f) && f[ip + 9] === 17 && l4Of(f) + 6 <= f.length) be16(f, l4Of(f) + 4, rand() < 0.5 ? randInt(rand, 0, 0xffff) : randInt(rand, 0, 16));
      break;
    case 'ip-options':
      if (isIpv4(f)) {
        const hl = (f[ip] & 15) * 4;
        const optLen = 4 * randInt(rand, 1, 10);
        const g = new Uint8Array(Math.min(env.maxFrame, f.length + optLen));
        g.set(f.subarray(0, ip + hl));
        const opts = randomBytes(rand, optLen);
        // Plausible option types now and then: EOL, NOP, RR, timestamp, LSRR, SSRR, router alert.
        if (rand() < 0.6) opts[0] = [0, 1, 7, 68, 131, 137, 148][randInt(rand, 0, 6)];
        if (rand() < 0.5) opts[1] = randInt(rand, 0, optLen + 2);
        g.set(opts, ip + hl);
        g.set(f.subarray(ip + hl, g.length - optLen), ip + hl + optLen);
        g[ip] = 0x40 | Math.min(15, (hl + optLen) >> 2);
        be16(g, ip + 2, Math.min(0xffff, rd16(f, ip + 2) + optLen));
        f = g;
      }
      break;
    case 'tcp-options':
      if (isIpv4(f) && f[ip + 9] === 6 && l4Of(f) + 20 <= f.length) {
        const l4 = l4Of(f);
        const thl = (f[l4 + 12] >> 4) * 4;
        if (thl < 20 || l4 + thl > f.length) break;
        const optLen = 4 * randInt(rand, 1, 10);
        const g = new Uint8Array(Math.min(env.maxFrame, f.length - (thl - 20) + optLen));
        g.set(f.subarray(0, l4 + 20));
        const opts = randomBytes(rand, optLen);
        for (let i = 0; i < optLen; i += randInt(rand, 1, 10)) {
          if (rand() < 0.6) opts[i] = [0, 1, 2, 3, 4, 5, 8, 30, 34][randInt(rand, 0, 8)];
          if (i + 1 < optLen && rand() < 0.5) opts[i + 1] = [0, 1, 2, 3, 4, 10, 18, 34, 40, 255][randInt(rand, 0, 9)];
        }
        g.set(opts, l4 + 20);
        const rest = f.subarray(l4 + thl, Math.min(f.length, l4 + thl + g.length - (l4 + 20 + optLen)));
        g.set(rest, l4 + 20 + optLen);
        g[l4 + 12] = (Math.min(15, (20 + optLen) >> 2) << 4) | (g[l4 + 12] & 15);
        be16(g, ip + 2, g.length - ETH_LEN);
        f = g;
      }
      break;
    case 'fragment-fields':
      if (isIpv4(f)) {
        const r = rand();
        const v = r < 0.3 ? 0x2000 | randInt(rand, 0, 0x1fff) : r < 0.6 ? randInt(rand, 0, 0x1fff) : randInt(rand, 0, 0xffff);
        be16(f, ip + 6, v);
      }
      break;
    case 'tcp-flags':
      if (isIpv4(f) && f[ip + 9] === 6 && l4Of(f) + 14 <= f.length) {
        const l4 = l4Of(f);
        f[l4 + 13] = randInt(rand, 0, 255);
        if (rand() < 0.5) be32(f, l4 + 4, (rand() * 4294967296) >>> 0);
        if (rand() < 0.5) be32(f, l4 + 8, (rand() * 4294967296) >>> 0);
        if (rand() < 0.3) be16(f, l4 + 14, randInt(rand, 0, 0xffff));
      }
      break;
  }
  if (fix) fixChecksums(f);
  return [f];
}

// ---- accounting ----------------------------------------------------------------------------------------

function group(state: SharedArrayBuffer, names: readonly string[], startSlot: number): Record<string, number> {
  const f = new Float64Array(state, startSlot * 8, names.length);
  const out: Record<string, number> = {};
  names.forEach((n, i) => (out[n] = f[i]));
  return out;
}

/** The IP engine's own counters and its input classifier's, read separately (readIpCounters merges them). */
export function ipGroups(stack: Stack): { engine: Record<string, number>; input: Record<string, number> } {
  const st = stack.memory.init.state.ip;
  return { engine: group(st, IP_COUNTERS, 0), input: group(st, INPUT_COUNTERS, IP_COUNTERS.length) };
}

export interface Accounting {
  ok: boolean;
  /** Each identity: [left, right] must be equal. */
  identities: Record<string, [number, number]>;
  /** Where the frames ended (input classifier outcomes and transport drops), non-zero only. */
  outcomes: Record<string, number>;
}

const sum = (r: Record<string, number>, pred: (k: string) => boolean): number =>
  Object.entries(r).reduce((s, [k, v]) => (pred(k) ? s + v : s), 0);

/**
 * Every frame written, layer by layer (counters read at quiescence, with no loopback traffic since
 * the baseline `base`):
 *   wire:      written                      == driver rxFrames
 *   driver:    rxFrames                     == rxPublished (nothing left behind: no rx-no-buffer)
 *   ip:        rxPublished                  == frames-in + drop:replay == input rx-frames
 *   input:     rx-frames == every terminal outcome (drop:*, ARP accepted, delivered-*, echo replies,
 *              protocol unreachable, fragment held), one per frame
 *   transport: delivered-udp + delivered-tcp == udp rx + udp drop:bad-descriptor + tcp rx + tcp
 *              pre-parse drops (truncated, bad checksum, bad option, bad descriptor) + ip
 *              drop:ring-full + ip drop:deliver-no-buffer (a reassembled datagram with no pool buffer; the
 *              other no-buffer drops, of ICMP errors, ARP requests or fragments we would have sent, are
 *              counted apart: counting them here made the identity fail whenever the pool ran dry)
 */
export function account(stack: Stack, written: number, base: Snapshot): Accounting {
  const now = snapshot(stack);
  const d = (a: Record<string, number>, b: Record<string, number>): Record<string, number> => {
    const o: Record<string, number> = {};
    for (const k of Object.keys(a)) o[k] = (a[k] ?? 0) - (b[k] ?? 0);
    return o;
  };
  const drv = d(now.driver, base.driver);
  const eng = d(now.engine, base.engine);
  const inp = d(now.input, base.input);
  const udp = d(now.udp, base.udp);
  const tcp = d(now.tcp, base.tcp);
  const arpOk = inp['rx-arp'] - sum(inp, (k) => k.startsWith('drop:arp-'));
  const terminal =
    sum(inp, (k) => k.startsWith('drop:')) + arpOk + inp['delivered-udp'] + inp['delivered-tcp'] + inp['delivered-icmp'] +
    inp['delivered-icmp-error'] + inp['echo-replies'] + inp['proto-unreach'] + inp['held:fragment'];
  const transportIn = (udp['rx'] ?? 0) + (udp['drop:bad-descriptor'] ?? 0) + (tcp['rx'] ?? 0) + (tcp['drop:truncated'] ?? 0) +
    (tcp['drop:bad-checksum'] ?? 0) + (tcp['drop:bad-option'] ?? 0) + (tcp['drop:bad-descriptor'] ?? 0);
  const identities: Record<string, [number, number]> = {
    'written == driver.rxFrames': [written, drv['rxFrames']],
    'driver.rxFrames == driver.rxPublished': [drv['rxFrames'], drv['rxPublished']],
    'driver.rxPublished == ip.frames-in + ip.drop:replay': [drv['rxPublished'], eng['frames-in'] + eng['drop:replay']],
    'ip.frames-in == input.rx-frames': [eng['frames-in'], inp['rx-frames']],
    'input.rx-frames == sum of terminal outcomes': [inp['rx-frames'], terminal],
    'delivered udp+tcp == transport input + ip ring-full/deliver-no-buffer drops': [
      inp['delivered-udp'] + inp['delivered-tcp'],
      transportIn + eng['drop:ring-full'] + eng['drop:deliver-no-buffer'],
    ],
  };
  const outcomes: Record<string, number> = {};
  for (const [k, v] of Object.entries(inp)) if (v && k !== 'rx-frames') outcomes[`ip:${k}`] = v;
  for (const [k, v] of Object.entries(udp)) if (v && k.startsWith('drop:')) outcomes[`udp:${k}`] = v;
  for (const [k, v] of Object.entries(tcp)) if (v && (k.startsWith('drop:') || k === 'rst-sent' || k === 'rx')) outcomes[`tcp:${k}`] = v;
  const ok = Object.values(identities).every(([a, b]) => a === b);
  return { ok, identities, outcomes };
}

export interface Snapshot {
  driver: Record<string, number>;
  engine: Record<string, number>;
  input: Record<string, number>;
  udp: Record<string, number>;
  tcp: Record<string, number>;
}

export function snapshot(stack: Stack): Snapshot {
  const s = stack.stats().servers;
  const { engine, input } = ipGroups(stack);
  return { driver: { rxFrames: 0, rxPublished: 0, ...s.driver.protocol }, engine, input, udp: { ...s.udp.protocol }, tcp: { ...s.tcp.protocol } };
}

export function restarts(stack: Stack): Record<string, number> {
  const s = stack.stats().servers;
  return Object.fromEntries(SERVER_NAMES.map((n) => [n, s[n].restarts.total]));
}

// ---- the run -------------------------------------------------------------------------------------------

export interface FuzzOptions {
  frames: number;
  seed?: number;
  corpusDir: string;
  /** Where to save batches that restarted a server (default: corpusDir/found). */
  foundDir?: string;
  /** Frames per written batch (a restart is pinned to the batch it happened in). */
  batch?: number;
  log?: (line: string) => void;
  /** Stop after this many ms of writing (the frames not written are not counted). */
  timeLimitMs?: number;
}

export interface FuzzReport {
  generated: number;
  written: number;
  unsendable: number;
  seconds: number;
  framesPerSec: number;
  byMutation: Record<string, number>;
  restarts: Record<string, number>;
  deaths: { server: string; cause: string; reason: string }[];
  savedBatches: string[];
  accounting: Accounting;
  pool: { baseline: number; after: number; settledMs: number };
  tcpTable: { before: number; after: number };
  alive: { probe: boolean; loopbackTcp: boolean };
  peer: { received: number; arpAnswered: number };
}

/** Whether every host of the stack is parked (it has polled its servers since it last handled a record). */
function allParked(stack: Stack): boolean {
  return stack.memory.hosts.every((_, h) => stack.memory.control(h).get(C.STATE) === HostState.PARKED);
}

/** Until every host is parked and two snapshots 20 ms apart agree (at most 10 s). */
async function quiesce(stack: Stack, peer: RawPeer): Promise<void> {
  let prev = '';
  await settle(() => {
    const s = JSON.stringify(snapshot(stack));
    const same = s === prev && allParked(stack);
    prev = s;
    return same;
  }, 10_000, peer);
}

async function settle(pred: () => boolean, timeoutMs: number, peer?: RawPeer): Promise<number> {
  const t0 = Date.now();
  while (!pred() && Date.now() - t0 < timeoutMs) {
    peer?.drain();
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}

export async function loopbackEcho(stack: Stack, bytes = 100_000): Promise<boolean> {
  const server = stack.net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise<boolean>((resolve) => {
      const data = Buffer.alloc(bytes, 0x5a);
      const parts: Buffer[] = [];
      const timer = setTimeout(() => resolve(false), 10_000);
      const c = stack.net.connect(port, '127.0.0.1', () => c.end(data));
      c.on('data', (d: Buffer) => parts.push(d));
      c.on('end', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(parts).equals(data));
      });
      c.on('error', () => (clearTimeout(timer), resolve(false)));
    });
  } finally {
    server.close();
  }
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const rand = mulberry32(opts.seed ?? 1);
  const log = opts.log ?? (() => {});
  const batchSize = opts.batch ?? 512;
  const raw = loadCorpus(opts.corpusDir);
  if (raw.length === 0) throw new Error(`no seed frames in ${opts.corpusDir}`);
  const wire = ShmWire.create({ mtu: 1500, id: FUZZ_WIRE_ID });
  const stack = new Stack({ address: `${FUZZ_TARGET}/24`, link: { kind: 'shm', wire, side: 'a' } });
  const deaths: FuzzReport['deaths'] = [];
  stack.on('death', (e: { server: string; cause: string; reason?: string }) => deaths.push({ server: e.server, cause: e.cause, reason: String(e.reason ?? '') }));
  await stack.start();
  const peer = new RawPeer(wire, { answerArp: true });
  const env: FuzzEnv = { targetMac: peer.stackMac, peerMac: peer.mac, target: ip4(FUZZ_TARGET), peer: ip4(FUZZ_PEER), maxFrame: peer.maxFrame };
  // Seeds: frames to the target as they are, frames from the target turned around.
  const seeds = raw.map((f) => (f.length >= 12 && f[6] === env.targetMac[0] && f.subarray(6, 12).every((b, i) => b === env.targetMac[i]) ? turnAround(f, env.targetMac) : f));
  const savedBatches: string[] = [];
  try {
    // The services the seed capture talks to, so captured segments reach live sockets.
    const echo = stack.dgram.createSocket('udp4');
    echo.on('error', () => {}); // answers to forged sources may be unroutable
    echo.on('message', (m: Buffer, r: { port: number; address: string }) => echo.send(m, r.port, r.address));
    await new Promise<void>((r) => echo.bind(FUZZ_UDP_PORT, () => r()));
    const server = stack.net.createServer((s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => server.listen(FUZZ_TCP_PORT, () => r()));
    // Replay the seeds once, untouched: the baseline traffic.
    await peer.write(seeds);
    await settle(() => stack.stats().servers.driver.protocol['rxFrames'] === peer.written, 5000, peer);
    // The baseline needs the same quiescence as the final count (below): a layer's counters taken
    // while the next layer still had a pass to publish would skew every identity by that pass.
    await quiesce(stack, peer);
    peer.drain();
    const base = snapshot(stack);
    const writtenBase = peer.written;
    const unsendableBase = peer.unsendable;
    const poolBase = stack.stats().pool.inUse;
    const tableBefore = stack.tcpChannel ? tcpUsed(stack) : 0;
    const byMutation: Record<string, number> = {};
    const t0 = Date.now();
    let generated = 0;
    let lastLog = t0;
    let lastRestarts = 0;
    while (generated < opts.frames) {
      if (opts.timeLimitMs && Date.now() - t0 > opts.timeLimitMs) break;
      const batch: Uint8Array[] = [];
      while (batch.length < batchSize && generated + batch.length < opts.frames) {
        const kind = MUTATIONS[randInt(rand, 0, MUTATIONS.length - 1)];
        const fs = mutate(rand, seeds, env, kind);
        byMutation[kind] = (byMutation[kind] ?? 0) + fs.length;
        batch.push(...fs);
      }
      generated += batch.length;
      await peer.write(batch);
      const r = Object.values(restarts(stack)).reduce((a, b) => a + b, 0);
      if (r !== lastRestarts) {
        lastRestarts = r;
        const dir = opts.foundDir ?? join(opts.corpusDir, 'found');
        mkdirSync(dir, { recursive: true });
        const file = join(dir, `restart-seed${opts.seed ?? 1}-at${generated}.pcap`);
        savePcap(file, batch);
        savedBatches.push(file);
        log(`a server restarted in the batch ending at frame ${generated}: saved ${file}`);
      }
      if (Date.now() - lastLog > 5000) {
        lastLog = Date.now();
        log(`${generated} frames, ${Math.round(generated / ((Date.now() - t0) / 1000))}/s, restarts ${JSON.stringify(restarts(stack))}`);
      }
    }
    const written = peer.written - writtenBase;
    // Quiescence: every frame received and classified, every host parked, counters stable. A host
    // parks only after its servers' poll(), where ip publishes its counters: a snapshot taken while
    // ip's thread had forwarded a pass to tcp but not yet polled counted in tcp what ip had not shown
    // (seen once under the load of a CI run: delivered 12757 against 12759 handled).
    await settle(() => stack.stats().servers.driver.protocol['rxFrames'] - base.driver['rxFrames'] >= written, 20_000, peer);
    await quiesce(stack, peer);
    const seconds = (Date.now() - t0) / 1000;
    const accounting = account(stack, written, base);
    // Buffers held for ARP or in flight come back.
    const settledMs = await settle(() => stack.stats().pool.inUse <= poolBase, 15_000, peer);
    const poolAfter = stack.stats().pool.inUse;
    const probe = await stack.probe('driver', 512, 5000).then((r) => r.intact, () => false);
    const loopbackTcp = await loopbackEcho(stack);
    echo.close();
    server.close();
    return {
      generated,
      written,
      unsendable: peer.unsendable - unsendableBase,
      seconds,
      framesPerSec: Math.round(generated / seconds),
      byMutation,
      restarts: restarts(stack),
      deaths,
      savedBatches,
      accounting,
      pool: { baseline: poolBase, after: poolAfter, settledMs },
      tcpTable: { before: tableBefore, after: tcpUsed(stack) },
      alive: { probe, loopbackTcp },
      peer: { received: peer.receivedCount, arpAnswered: peer.arpAnswered },
    };
  } finally {
    peer.close();
    await stack.close();
  }
}

/** Slots in use in the tcp connection table (listeners included). */
export function tcpUsed(stack: Stack): number {
  return tcpTableUsed(stack.memory.init.state.tcp);
}

export function tcpTableUsed(state: SharedArrayBuffer): number {
  const v = new TcpViews(state);
  return v.tx[v.layout.globalsWord + G.USED];
}

export function writeJson(file: string, o: unknown): void {
  writeFileSync(file, JSON.stringify(o, null, 2) + '\n');
}
