/**
 * `keepnet bench scale`: how throughput scales with flow-sharded tcp instances
 * (createStack({ tcpInstances: N }), servers/runtime/flow-shard.ts). For each instance count, two
 * keepnet stacks on the shared-memory wire, dedicated placement (a thread per server, so N tcp
 * instances are N tcp threads per stack), both sharded alike; K connections from B to A at once:
 *
 *   bulk  each connection writes 256 KiB chunks as fast as it is allowed; MB/s (10^6 bytes) received
 *         by A's server over all connections.
 *   rr    each connection runs 64-byte request/response, one transaction in flight; transactions/s
 *         over all connections, mean round trip.
 *
 * Every instance count is measured in the same run and process, one after another, each a --duration
 * window after a 15% warm-up; CPU is process.cpuUsage() over the window (every thread). The ratio is to
 * the one-instance figure of the same run. `perInstance` says how many of the K connections each of
 * A's instances accepted (the flow hash's spread).
 */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { C } from '../servers/runtime/control.js';
import type * as nodeNet from 'node:net';
import { Stack } from '../kernel-shim/stack.js';
import { createStackPair } from '../kernel-shim/stack-pair.js';
import { fmt, textTable } from './table.js';
import { warmupSeconds } from './warmup.js';
import { echo64, MSG } from './echo.js';

export const SCALE_TESTS = ['bulk', 'rr'] as const;
export type ScaleTest = (typeof SCALE_TESTS)[number];

export interface ScaleRow {
  test: ScaleTest;
  instances: number;
  connections: number;
  /** bulk: MB/s; null for rr. */
  mbps: number | null;
  /** rr: transactions/s over all connections; null for bulk. */
  tps: number | null;
  /** rr: mean round trip (µs); null for bulk. */
  rttUs: number | null;
  cpuS: number;
  /** MB or transactions per CPU second. */
  perCpuSecond: number;
  /** Connections accepted by each of A's tcp instances. */
  perInstance: number[];
  /** Threads of the two stacks (servers of both; the application's main thread not counted). */
  serverThreads: number;
  /**
   * Share of a core each thread used during the window (CPU seconds / wall seconds, from the kernel's
   * per-thread schedstat; Linux only, else empty): 'app' is the main thread (the application and both
   * shims), 'A.ip' stack A's ip server, 'B.tcp1' stack B's tcp instance 1...
   */
  coreShare: Record<string, number>;
  seconds: number;
  /** This figure divided by the one-instance figure of the same test in this run (null without one). */
  ratio: number | null;
}

export interface ScaleResult {
  cores: number;
  placement: 'dedicated';
  wire: { kind: 'shm'; mtu: number; checksumOffload: boolean };
  durationS: number;
  /** Unmeasured seconds each test ran on each pair before its measurement (JIT; see bench/net.ts). */
  warmupS: number;
  connections: number;
  results: ScaleRow[];
}

export interface ScaleOptions {
  instances?: readonly number[];
  connections?: number;
  duration?: number;
  /** Seconds each test runs unmeasured on each pair first (default 2; 0: none): a new pair's threads start cold. */
  warmup?: number;
  tests?: readonly ScaleTest[];
  mtu?: number;
  onProgress?: (what: string) => void;
}

const CHUNK = 256 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function pair(instances: number, mtu: number): Promise<[Stack, Stack]> {
  const opts = { placement: 'dedicated' as const, ...(instances > 1 ? { tcpInstances: instances } : {}) };
  return createStackPair({ mtu, checksumOffload: true }, { address: '10.96.0.1/24', ...opts }, { address: '10.96.0.2/24', ...opts });
}

function connect(B: Stack, port: number): Promise<nodeNet.Socket> {
  return new Promise((resolve, reject) => {
    const s = B.net.connect(port, '10.96.0.1', () => {
      s.off('error', reject);
      resolve(s as unknown as nodeNet.Socket);
    }) as unknown as nodeNet.Socket;
    s.once('error', reject);
  });
}

/** CPU nanoseconds a thread of this process has run (Linux schedstat), NaN when unknown. */
function threadCpuNs(tid: number): number {
  try {
    return Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}

/** The OS thread of every server host of both stacks, and the main thread, by label. */
function threads(A: Stack, B: Stack): Map<string, number> {
  const out = new Map<string, number>([['app', process.pid]]);
  for (const [tag, s] of [['A', A], ['B', B]] as const) {
    s.memory.hosts.forEach((names, h) => out.set(`${tag}.${names.join('+')}`, s.memory.control(h).get(C.OS_TID)));
  }
  return out;
}

async function window(durationS: number, A: Stack, B: Stack, start: () => void, stop: () => void): Promise<{ seconds: number; cpuS: number; coreShare: Record<string, number> }> {
  await sleep(durationS * 150);
  start();
  const tids = threads(A, B);
  const before = new Map([...tids].map(([k, tid]) => [k, threadCpuNs(tid)]));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(durationS * 1000);
  stop();
  const cpu = process.cpuUsage(cpu0);
  const seconds = (performance.now() - t0) / 1000;
  const coreShare: Record<string, number> = {};
  for (const [k, tid] of tids) {
    const d = threadCpuNs(tid) - before.get(k)!;
    if (Number.isFinite(d)) coreShare[k] = Math.round((d / 1e9 / seconds) * 100) / 100;
  }
  return { seconds, cpuS: (cpu.user + cpu.system) / 1e6, coreShare };
}

async function run(test: ScaleTest, A: Stack, B: Stack, k: number, durationS: number): Promise<Omit<ScaleRow, 'test' | 'instances' | 'connections' | 'perInstance' | 'serverThreads' | 'ratio'>> {
  let counting = false;
  let running = true;
  let received = 0;
  let transactions = 0;
  let rttSum = 0;
  const accepted: nodeNet.Socket[] = [];
  const server = A.net.createServer(((s: nodeNet.Socket) => {
    accepted.push(s);
    s.on('error', () => {});
    if (test === 'bulk') {
      s.on('data', (d: Buffer) => {
        if (counting) received += d.length;
      });
    } else {
      echo64(s, false);
    }
  }) as never) as unknown as nodeNet.Server;
  const port = await new Promise<number>((resolve) => server.listen(0, () => resolve((server.address() as nodeNet.AddressInfo).port)));
  const clients = await Promise.all(Array.from({ length: k }, () => connect(B, port)));
  let failure: Error | null = null;
  for (const c of clients) {
    c.on('error', (e) => (failure ??= e));
    if (test === 'bulk') {
      const chunk = Buffer.alloc(CHUNK, 0x5a);
      const pump = (): void => {
        while (running && c.write(chunk));
      };
      c.on('drain', pump);
      pump();
    } else {
      c.setNoDelay(true);
      const req = Buffer.alloc(MSG, 0x71);
      let got = 0;
      let sentAt = performance.now();
      c.on('data', (d: Buffer) => {
        got += d.length;
        if (got < MSG) return;
        got -= MSG;
        if (counting) {
          transactions++;
          rttSum += performance.now() - sentAt;
        }
        if (running) {
          sentAt = performance.now();
          c.write(req);
        }
      });
      c.write(req);
    }
  }
  const w = await window(durationS, A, B, () => (counting = true), () => {
    counting = false;
    running = false;
  });
  for (const c of clients) c.destroy();
  for (const s of accepted) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  if (failure) throw failure;
  if (test === 'bulk') {
    const mb = received / 1e6;
    return { mbps: mb / w.seconds, tps: null, rttUs: null, cpuS: w.cpuS, perCpuSecond: mb / w.cpuS, seconds: w.seconds, coreShare: w.coreShare };
  }
  return {
    mbps: null,
    tps: transactions / w.seconds,
    rttUs: transactions > 0 ? (rttSum / transactions) * 1000 : null,
    cpuS: w.cpuS,
    perCpuSecond: transactions / w.cpuS,
    seconds: w.seconds,
    coreShare: w.coreShare,
  };
}

export async function benchScale(opts: ScaleOptions = {}): Promise<ScaleResult> {
  const instances = opts.instances ?? [1, 2];
  const k = opts.connections ?? 8;
  const durationS = opts.duration ?? 3;
  const tests = opts.tests ?? SCALE_TESTS;
  const mtu = opts.mtu ?? 65535;
  const warmupS = warmupSeconds(opts.warmup);
  const progress = opts.onProgress ?? (() => {});
  const results: ScaleRow[] = [];
  for (const n of instances) {
    progress(`starting two keepnet stacks with ${n} tcp instance${n > 1 ? 's' : ''} each`);
    const [A, B] = await pair(n, mtu);
    try {
      await sleep(200); // let the standbys park before measuring
      for (const test of tests) {
        if (warmupS > 0) {
          progress(`${test}: warming up ${n} tcp instance${n > 1 ? 's' : ''} (${warmupS} s, not measured)`);
          await run(test, A, B, k, warmupS);
        }
        progress(`${test}: ${k} connections, ${n} tcp instance${n > 1 ? 's' : ''}`);
        const before = A.memory.tcpInstances.map((name) => A.stats().servers[name].protocol.accepted ?? 0);
        const r = await run(test, A, B, k, durationS);
        const after = A.memory.tcpInstances.map((name) => A.stats().servers[name].protocol.accepted ?? 0);
        results.push({
          test,
          instances: n,
          connections: k,
          ...r,
          perInstance: after.map((x, i) => x - before[i]),
          serverThreads: A.memory.hosts.length + B.memory.hosts.length,
          ratio: null,
        });
      }
    } finally {
      await Promise.allSettled([A.close(), B.close()]);
    }
  }
  const value = (r: ScaleRow): number => (r.test === 'bulk' ? r.mbps : r.tps) ?? NaN;
  for (const r of results) {
    const one = results.find((x) => x.test === r.test && x.instances === 1);
    r.ratio = one ? value(r) / value(one) : null;
  }
  return { cores: availableParallelism(), placement: 'dedicated', wire: { kind: 'shm', mtu, checksumOffload: true }, durationS, warmupS, connections: k, results };
}

/** The table printed on a terminal. */
export function formatScaleBench(r: ScaleResult): string {
  const head = ['test', 'instances', 'threads', 'MB/s', 'tx/s', 'mean µs', 'x 1 inst.', 'CPU s', 'per CPU s', 'conns per instance'];
  const rows = r.results.map((x) => [
    x.test,
    String(x.instances),
    String(x.serverThreads),
    fmt(x.mbps, 1),
    fmt(x.tps),
    fmt(x.rttUs, 1),
    x.ratio === null ? '-' : x.ratio.toFixed(2),
    fmt(x.cpuS, 2),
    fmt(x.perCpuSecond, 1),
    x.perInstance.join('/'),
  ]);
  return [
    `keepnet flow-sharded tcp: two stacks on the shared-memory wire (mtu ${r.wire.mtu}), dedicated placement, ${r.connections} connections, ${r.durationS} s per figure, ${r.cores} cores`,
    '',
    ...textTable(head, rows, 1),
    '',
    'threads: server threads of both stacks (plus the application thread). x 1 inst.: this figure over the one-instance figure of this run.',
    '',
    'share of a core per thread (CPU s / wall s in the window):',
    ...r.results.map(
      (x) =>
        `  ${x.test} x${x.instances}: ` +
        Object.entries(x.coreShare)
          .map(([k, v]) => `${k} ${v.toFixed(2)}`)
          .join(', '),
    ),
  ].join('\n');
}
