/**
 * `keepnet bench rings`: throughput and latency of the shared-memory rings and the packet pool, with
 * postMessage measured side by side in the same run (absolute figures drift 20-40% between runs on
 * this kind of machine; the ratio is what to compare).
 */
import { Worker, MessageChannel } from 'node:worker_threads';
import { Ring, type RingRegion } from '../shared-rings/ring.js';
import { PacketPool } from '../shared-rings/pool.js';
import type { BenchRole } from './ring-bench-worker.js';

const workerUrl = new URL('./ring-bench-worker.js', import.meta.url);

export interface RingBenchResult {
  'ring.msgsPerSec64': number;
  'ring.bytesPerSec1500': number;
  'ring.rttUs': number;
  'ring.chain4MsgsPerSec64': number;
  'ring.postMessageMsgsPerSec64': number;
  'ring.vsPostMessage': number;
  'pool.descriptorsPerSec': number;
}

type Role = Omit<BenchRole, 'control'>;

/** Start the roles, release them together, and return each role's report. */
async function runRoles(roles: Role[]): Promise<any[]> {
  const control = new SharedArrayBuffer(8);
  const workers = roles.map((r) => {
    const transfer = r.port ? [r.port] : [];
    return new Worker(workerUrl, { workerData: { ...r, control }, transferList: transfer as any });
  });
  const reports: Promise<any>[] = [];
  const ready: Promise<void>[] = [];
  for (const w of workers) {
    let gotReady: () => void;
    ready.push(new Promise<void>((r) => (gotReady = r)));
    reports.push(
      new Promise((resolve, reject) => {
        w.on('message', (m) => (m.ready ? gotReady() : resolve(m)));
        w.once('error', reject);
      }),
    );
  }
  await Promise.all(ready);
  const c = new Int32Array(control);
  Atomics.store(c, 0, 1);
  Atomics.notify(c, 0);
  const out = await Promise.all(reports);
  await Promise.all(workers.map((w) => w.terminate()));
  return out;
}

const ring = (capacity = 1 << 18): RingRegion => Ring.create({ capacity });
const elapsed = (reports: any[]): number => Math.max(...reports.map((r) => r.ms)) / 1000;

export interface RingBenchOptions {
  /** Multiplies every message count (default 1: about 10 s in all on this machine). */
  scale?: number;
  onProgress?: (name: string) => void;
}

export async function benchRings(opts: RingBenchOptions = {}): Promise<RingBenchResult> {
  const scale = opts.scale ?? 1;
  const n = (x: number): number => Math.max(1000, Math.round(x * scale));
  const progress = opts.onProgress ?? (() => {});

  progress('two threads, 64-byte records');
  const n64 = n(8_000_000);
  let a = ring();
  const r64 = await runRoles([
    { role: 'src', outRing: a, count: n64, size: 64, batch: 64 },
    { role: 'sink', inRing: a, count: n64, size: 64, batch: 64 },
  ]);

  progress('two threads, 1500-byte records');
  const n1500 = n(1_500_000);
  a = ring(1 << 20);
  const r1500 = await runRoles([
    { role: 'src', outRing: a, count: n1500, size: 1500, batch: 32 },
    { role: 'sink', inRing: a, count: n1500, size: 1500, batch: 32 },
  ]);

  progress('ping-pong round trip, 64 bytes, parked');
  const nrtt = n(100_000);
  a = ring(1 << 16);
  const b = ring(1 << 16);
  const rrtt = await runRoles([
    { role: 'ping', outRing: a, inRing: b, count: nrtt, size: 64, batch: 1 },
    { role: 'pong', outRing: b, inRing: a, count: nrtt, size: 64, batch: 1 },
  ]);

  progress('four threads in a chain, 64-byte records');
  const nchain = n(3_000_000);
  const [ab, bc, cd] = [ring(), ring(), ring()];
  const rchain = await runRoles([
    { role: 'src', outRing: ab, count: nchain, size: 64, batch: 64 },
    { role: 'fwd', inRing: ab, outRing: bc, count: nchain, size: 64, batch: 64 },
    { role: 'fwd', inRing: bc, outRing: cd, count: nchain, size: 64, batch: 64 },
    { role: 'sink', inRing: cd, count: nchain, size: 64, batch: 64 },
  ]);

  progress('postMessage, 64-byte messages');
  const npm = n(400_000);
  const ch = new MessageChannel();
  const rpm = await runRoles([
    { role: 'pm-src', port: ch.port1, count: npm, size: 64, batch: 1 },
    { role: 'pm-sink', port: ch.port2, count: npm, size: 64, batch: 1 },
  ]);

  progress('pool descriptors: allocate, pass through a ring, free');
  const npool = n(8_000_000);
  const pool = PacketPool.create({ buffers: 16384, bufferSize: 2048 });
  a = ring();
  const rpool = await runRoles([
    { role: 'pool-src', outRing: a, pool: pool.sab, count: npool, size: 64, batch: 64 },
    { role: 'pool-sink', inRing: a, pool: pool.sab, count: npool, size: 64, batch: 64 },
  ]);
  if (rpool[1].bad !== 0) throw new Error(`pool benchmark saw ${rpool[1].bad} bad descriptors`);
  if (process.env.KEEPNET_BENCH_DEBUG) console.error('pool exhausted waits', rpool[0].exhausted);

  const msgs64 = n64 / elapsed(r64);
  const pm = npm / elapsed(rpm);
  return {
    'ring.msgsPerSec64': Math.round(msgs64),
    'ring.bytesPerSec1500': Math.round((n1500 * 1500) / elapsed(r1500)),
    'ring.rttUs': +((elapsed(rrtt) * 1e6) / nrtt).toFixed(2),
    'ring.chain4MsgsPerSec64': Math.round(nchain / elapsed(rchain)),
    'ring.postMessageMsgsPerSec64': Math.round(pm),
    'ring.vsPostMessage': +(msgs64 / pm).toFixed(1),
    'pool.descriptorsPerSec': Math.round(npool / elapsed(rpool)),
  };
}

export function formatRingBench(r: RingBenchResult): string {
  const m = (x: number): string => (x / 1e6).toFixed(2) + ' M/s';
  const rows: [string, string, string][] = [
    ['ring, 64 B records, 2 threads', m(r['ring.msgsPerSec64']), 'target >= 8 M/s'],
    ['ring, 1500 B records, 2 threads', (r['ring.bytesPerSec1500'] / 1e9).toFixed(2) + ' GB/s', ''],
    ['ring, 64 B round trip, parked', r['ring.rttUs'] + ' us', 'target <= 15 us'],
    ['ring, 4-thread chain, 64 B', m(r['ring.chain4MsgsPerSec64']), 'target >= 2 M/s'],
    ['postMessage, 64 B, 2 threads', m(r['ring.postMessageMsgsPerSec64']), ''],
    ['ring vs postMessage', r['ring.vsPostMessage'] + 'x', 'target >= 15x'],
    ['pool descriptors via ring', m(r['pool.descriptorsPerSec']), ''],
  ];
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  return rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`).join('\n');
}
