/**
 * `keepnet bench bulk|rr|crr|all`: keepnet stack to stack over the shared-memory wire, side by side with
 * Node's own `net` over loopback (the kernel's TCP), in one run, on one machine. Both ends of a system live
 * in one Node process (a process per system), and the very same client and server code runs on both (it only
 * sees a `net`-style module), so the comparison is like for like.
 *
 *   bulk  one connection, the client writes 256 KiB chunks as fast as the socket takes them; the server
 *         counts what it receives. MB/s (10^6 bytes), CPU seconds, MB per CPU second.
 *   rr    64-byte request, 64-byte response, one connection, one transaction in flight (no Nagle).
 *         Transactions/s, mean and p99 round trip.
 *   crr   connect, one 64-byte request/response, close (the server closes first), one at a time.
 *         Connections/s.
 *
 * CPU is process.cpuUsage() (user + system) around each measured window: it covers every thread of the
 * process that measures (each system's own forked process), so keepnet's server
 * workers and the kernel's work done on behalf of the process's syscalls (loopback's softirq time is
 * mostly charged to the sending thread) are both counted. Each test first runs unmeasured on every
 * system for `warmup` seconds (JIT), and each measurement has a short warm-up of its own (connection
 * set-up) before its window.
 *
 * The systems are measured in alternating rounds (kernel, each placement, and again), each row being
 * the round with the median figure, so that the machine's drift hits every system alike. Each system
 * and placement measures in a forked process of its own (bench/system-child.ts says why), both ends in
 * that one process, with its own CPU accounting; keepnet's stacks stay up in theirs between rounds.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as nodeNet from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Stack } from '../kernel-shim/stack.js';
import { createStackPair } from '../kernel-shim/stack-pair.js';
import { fmt, textTable } from './table.js';
import { warmupSeconds } from './warmup.js';
import { readCpuTimes, stealPct, stealWarning } from './steal.js';
import { echo64, MSG } from './echo.js';
import { validateBusyPollUs } from '../servers/runtime/stack-memory.js';

export const NET_TESTS = ['bulk', 'rr', 'crr'] as const;
export type NetTest = (typeof NET_TESTS)[number];
/**
 * keepnet's placements: a thread per server ('dedicated'), a thread per stack ('shared'), and both stacks
 * of the pair on one thread ('cohosted': createStackPair's cohost option).
 */
export const PLACEMENTS = ['dedicated', 'shared', 'cohosted'] as const;
export type BenchPlacement = (typeof PLACEMENTS)[number];

export interface NetBenchRow {
  test: NetTest;
  system: 'keepnet' | 'kernel';
  /** keepnet's server placement; 'n/a' for the kernel. */
  placement: BenchPlacement | 'n/a';
  /** bulk: MB/s (10^6 bytes) received by the server; null for the other tests. */
  mbps: number | null;
  /** rr: transactions per second; null for the other tests. */
  tps: number | null;
  /** crr: connections per second; null for the other tests. */
  cps: number | null;
  /** rr: mean round trip (µs); crr: mean connect + request/response + close (µs); null for bulk. */
  rttUs: number | null;
  /** rr: 99th percentile round trip (µs); crr: of the whole connection; null for bulk. */
  rttP99Us: number | null;
  /** CPU seconds (user + system, every thread of the process) used during the measured window. */
  cpuS: number;
  /** bulk: MB per CPU second; rr: transactions per CPU second; crr: connections per CPU second. */
  perCpuSecond: number;
  /** Length of the measured window (s). */
  seconds: number;
  /** keepnet: its stacks' busy poll budget (stack option busyPollUs, µs; 0: threads park at once); kernel: null. */
  busyPollUs: number | null;
  /** Share of the machine's CPU time the hypervisor stole during the window, % (bench/steal.ts); null off Linux. */
  stealPct: number | null;
}

export interface NetBenchResult {
  /** The keepnet wire used: the shared-memory wire's MTU and whether checksums are offloaded. */
  wire: { kind: 'shm'; mtu: number; checksumOffload: boolean };
  /** The kernel side: Node's net over 127.0.0.1. */
  kernel: { kind: 'loopback'; address: string };
  durationS: number;
  /** Rounds each system and placement was measured in, alternating; each row is the median round. */
  rounds: number;
  /** Unmeasured seconds of each test run by each system and placement before its first round. */
  warmupS: number;
  results: NetBenchRow[];
  /** keepnet's best placement divided by the kernel, per test (bulk: MB/s, rr: tps, crr: cps). */
  ratios: Partial<Record<NetTest, number>>;
}

export interface NetBenchOptions {
  /** Seconds measured per test per system and placement (default 3), split into `rounds`. */
  duration?: number;
  /**
   * Rounds per test (default 3): kernel, then each placement, repeated; each round measures
   * duration / rounds seconds after a warm-up of 15% of that, and each row is the median round.
   */
  rounds?: number;
  /**
   * Seconds each system and placement runs each test, unmeasured, before the rounds (default 2; 0: none).
   * keepnet's servers are JavaScript in worker threads: V8 compiles their hot paths while they run, on
   * background threads that compete for this machine's two cores with the stacks themselves, and a fresh
   * stack's bulk rate climbs for 2-4 s (measured: 270-320 MB/s in the first 0.3 s of a first connection,
   * about 1500 by a third). A long-running service is past that; a measurement should be too. The kernel
   * gets the same warm-up, in its own process.
   */
  warmup?: number;
  tests?: readonly NetTest[];
  placements?: readonly BenchPlacement[];
  /** keepnet's shm wire MTU (default 65535) and checksum offload (default true). */
  mtu?: number;
  checksumOffload?: boolean;
  /** Flow-sharded tcp instances per stack (default 1). */
  tcpInstances?: number;
  /** The stacks' busy poll budget, microseconds (stack option busyPollUs; default: the stack's default for the placement). */
  busyPollUs?: number;
  onProgress?: (what: string) => void;
}

/** What the measurements need of a net module: node:net and keepnet's stack.net both fit. */
interface NetLike {
  createServer(listener: (s: nodeNet.Socket) => void): nodeNet.Server;
  connect(port: number, host: string, cb?: () => void): nodeNet.Socket;
}

const CHUNK = 256 * 1024;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const cpuSeconds = (d: NodeJS.CpuUsage): number => (d.user + d.system) / 1e6;

function listen(net: NetLike, onConn: (s: nodeNet.Socket) => void, host: string): Promise<{ server: nodeNet.Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = net.createServer(onConn);
    server.once('error', reject);
    server.listen(0, host, () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      resolve({ server, port });
    });
  });
}

function closeServer(server: nodeNet.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function connect(net: NetLike, port: number, host: string): Promise<nodeNet.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

interface Window {
  seconds: number;
  cpuS: number;
  stealPct: number | null;
}

/** Run `warm` then open a measured window of `durationS`: returns its wall and CPU time. */
async function measure(warmS: number, durationS: number, onStart: () => void, onStop: () => void): Promise<Window> {
  await sleep(warmS * 1000);
  onStart();
  const cpu0 = process.cpuUsage();
  const ticks0 = readCpuTimes();
  const t0 = performance.now();
  await sleep(durationS * 1000);
  onStop();
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, cpuS: cpuSeconds(process.cpuUsage(cpu0)), stealPct: stealPct(ticks0, readCpuTimes()) };
}

function p99(samples: number[]): number {
  if (samples.length === 0) return NaN;
  const s = Float64Array.from(samples).sort();
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))];
}

/** A row as one measuring process reports it (the parent adds test, system and placement). */
type Row = Omit<NetBenchRow, 'test' | 'system' | 'placement'>;
/** What a measurement itself yields (measureOn adds the stacks' busy poll budget). */
type Measured = Omit<Row, 'busyPollUs'>;

async function bulk(net: NetLike, host: string, durationS: number): Promise<Measured> {
  let received = 0;
  let counting = false;
  const sockets: nodeNet.Socket[] = [];
  const { server, port } = await listen(
    net,
    (s) => {
      sockets.push(s);
      s.on('data', (d: Buffer) => {
        if (counting) received += d.length;
      });
      s.on('error', () => {});
    },
    host,
  );
  const c = await connect(net, port, host);
  const chunk = Buffer.alloc(CHUNK, 0x5a);
  let running = true;
  let clientError: Error | null = null;
  c.on('error', (e) => (clientError = e));
  const pump = (): void => {
    while (running && c.write(chunk));
  };
  c.on('drain', pump);
  pump();
  const w = await measure(durationS * 0.15, durationS, () => (counting = true), () => {
    counting = false;
    running = false;
  });
  const bytes = received;
  c.destroy();
  for (const s of sockets) s.destroy();
  await closeServer(server);
  if (clientError) throw clientError;
  const mb = bytes / 1e6;
  return { mbps: mb / w.seconds, tps: null, cps: null, rttUs: null, rttP99Us: null, cpuS: w.cpuS, perCpuSecond: mb / w.cpuS, seconds: w.seconds, stealPct: w.stealPct };
}

/** The server side of rr and crr: answer every 64 bytes with 64 bytes; with `closeAfter`, then end. */
async function rr(net: NetLike, host: string, durationS: number): Promise<Measured> {
  const sockets: nodeNet.Socket[] = [];
  const { server, port } = await listen(
    net,
    (s) => {
      sockets.push(s);
      echo64(s, false);
    },
    host,
  );
  const c = await connect(net, port, host);
  c.setNoDelay(true);
  const req = Buffer.alloc(MSG, 0x71);
  let running = true;
  let counting = false;
  const rtts: number[] = [];
  let got = 0;
  let sentAt = 0;
  let clientError: Error | null = null;
  c.on('error', (e) => (clientError = e));
  const send = (): void => {
    sentAt = performance.now();
    c.write(req);
  };
  c.on('data', (d: Buffer) => {
    got += d.length;
    if (got < MSG) return;
    got -= MSG;
    if (counting) rtts.push((performance.now() - sentAt) * 1000);
    if (running) send();
  });
  send();
  const w = await measure(durationS * 0.15, durationS, () => (counting = true), () => {
    counting = false;
    running = false;
  });
  c.destroy();
  for (const s of sockets) s.destroy();
  await closeServer(server);
  if (clientError) throw clientError;
  const n = rtts.length;
  const mean = rtts.reduce((a, b) => a + b, 0) / n;
  return { mbps: null, tps: n / w.seconds, cps: null, rttUs: mean, rttP99Us: p99(rtts), cpuS: w.cpuS, perCpuSecond: n / w.cpuS, seconds: w.seconds, stealPct: w.stealPct };
}

async function crr(net: NetLike, host: string, durationS: number): Promise<Measured> {
  const { server, port } = await listen(net, (s) => echo64(s, true), host);
  const req = Buffer.alloc(MSG, 0x71);
  let running = true;
  let counting = false;
  const times: number[] = [];
  let failure: Error | null = null;
  /** One connection: connect, request, response, the server's FIN, close. */
  const once = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      let got = 0;
      const s = net.connect(port, host, () => {
        s.setNoDelay(true);
        s.write(req);
      });
      s.on('data', (d: Buffer) => (got += d.length));
      s.on('end', () => s.end());
      s.on('error', reject);
      s.on('close', () => {
        if (got !== MSG) return reject(new Error(`crr: got ${got} bytes, expected ${MSG}`));
        if (counting) times.push((performance.now() - t0) * 1000);
        resolve();
      });
    });
  const loop = (async () => {
    try {
      while (running) await once();
    } catch (e) {
      failure = e as Error;
    }
  })();
  const w = await measure(durationS * 0.15, durationS, () => (counting = true), () => {
    counting = false;
    running = false;
  });
  await loop;
  await closeServer(server);
  if (failure) throw failure;
  const n = times.length;
  const mean = times.reduce((a, b) => a + b, 0) / n;
  return { mbps: null, tps: null, cps: n / w.seconds, rttUs: mean, rttP99Us: p99(times), cpuS: w.cpuS, perCpuSecond: n / w.cpuS, seconds: w.seconds, stealPct: w.stealPct };
}

const RUN: Record<NetTest, typeof bulk> = { bulk, rr, crr };

/** What one measuring process runs: the kernel's TCP, or two keepnet stacks in one placement. */
export type SystemSpec =
  | { system: 'kernel' }
  | { system: 'keepnet'; placement: BenchPlacement; mtu: number; checksumOffload: boolean; tcpInstances: number; busyPollUs?: number };

/** A system open in this process: a net module and the host its servers listen on. */
export interface OpenSystem {
  net: NetLike;
  host: string;
  stacks: Stack[];
}

/** Open a system in this process (bench/system-child.ts does, once per process). */
export async function openSystem(spec: SystemSpec): Promise<OpenSystem> {
  if (spec.system !== 'kernel' && spec.system !== 'keepnet') throw new TypeError(`unknown system ${JSON.stringify(spec)}`);
  if (spec.system === 'kernel') return { net: nodeNet as unknown as NetLike, host: '127.0.0.1', stacks: [] };
  const shards = spec.tcpInstances > 1 ? { tcpInstances: spec.tcpInstances } : {};
  const cohost = spec.placement === 'cohosted';
  const placement = spec.placement === 'cohosted' ? 'shared' : spec.placement;
  const [A, B] = await createStackPair(
    { mtu: spec.mtu, checksumOffload: spec.checksumOffload },
    { address: '10.95.0.1/24', placement, busyPollUs: spec.busyPollUs, ...shards },
    { address: '10.95.0.2/24', placement, busyPollUs: spec.busyPollUs, ...shards },
    { cohost },
  );
  await sleep(200); // let the standbys park before measuring
  return { net: splitNet(A, B), host: '10.95.0.1', stacks: [A, B] };
}

/** One measurement on an open system. */
export async function measureOn(sys: OpenSystem, test: NetTest, seconds: number): Promise<Row> {
  const row = await RUN[test](sys.net, sys.host, seconds);
  return { ...row, busyPollUs: sys.stacks[0]?.memory.init.busyPollUs ?? null };
}

export async function closeSystem(sys: OpenSystem): Promise<void> {
  await Promise.allSettled(sys.stacks.map((s) => s.close()));
}

/**
 * A forked measuring process (bench/system-child.ts) for one system: one measurement at a time.
 * `ready` settles once the child has opened its system (its stacks started), so that no measurement
 * of another system runs while this one is still starting up. Every request has a deadline (a wedged
 * child is killed, not waited for), and close() returns even if the child never started.
 */
class SystemProcess {
  private readonly child: ChildProcess;
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (r: Row) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private exited: Error | null = null;
  private readonly closed: Promise<void>;
  readonly ready: Promise<void>;

  constructor(readonly name: string, spec: SystemSpec) {
    this.child = fork(fileURLToPath(new URL('./system-child.js', import.meta.url)), [JSON.stringify(spec)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    let onReady: (err: Error | null) => void = () => {};
    this.ready = new Promise((resolve, reject) => (onReady = (err) => (err ? reject(err) : resolve())));
    this.ready.catch(() => {}); // reported to whoever awaits it; never unhandled
    this.child.on('message', (msg: unknown) => {
      const m = msg as { id?: number; ready?: boolean; row?: Row; error?: string };
      if (m?.ready !== undefined) return onReady(m.ready ? null : new Error(`${this.name} did not start: ${m.error}`));
      if (typeof m?.id !== 'number') return;
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      clearTimeout(w.timer);
      if (m.row) w.resolve(m.row);
      else w.reject(new Error(`${this.name} measurement failed: ${m.error}`));
    });
    // 'exit' may never come after a failed spawn ('error'): either one ends the process's life here.
    this.closed = new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.once('error', () => resolve());
    });
    const gone = (err: Error): void => {
      onReady(err);
      this.fail(err);
    };
    this.child.on('exit', (code, signal) => gone(new Error(`the ${this.name} measurement process exited (${signal ?? code})`)));
    this.child.on('error', (err) => gone(new Error(`the ${this.name} measurement process failed: ${err.message}`)));
  }

  private fail(err: Error): void {
    this.exited ??= err;
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiting.clear();
  }

  run(test: NetTest, seconds: number): Promise<Row> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      // The measurement takes `seconds` and a 15% pre-window; a child that has not answered long
      // after that is wedged (a connection that never closes, a stack that never answers).
      const timer = setTimeout(() => {
        this.fail(new Error(`${this.name}: no answer to ${test} within ${Math.round(seconds * 2 + 30)} s`));
        this.child.kill('SIGKILL');
      }, (seconds * 2 + 30) * 1000);
      this.waiting.set(id, { resolve, reject, timer });
      this.child.send({ id, test, seconds }, (err) => {
        if (err) this.fail(new Error(`the ${this.name} measurement process is gone: ${err.message}`));
      });
    });
  }

  /** Disconnect: the child closes its stacks and exits. Resolves once it has (killed after 10 s). */
  async close(): Promise<void> {
    if (this.child.pid === undefined || this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.closed;
    clearTimeout(timer);
  }
}

/** A net module whose servers listen on stack A and whose clients connect from stack B. */
function splitNet(A: Stack, B: Stack): NetLike {
  return {
    createServer: (l) => A.net.createServer(l as any) as unknown as nodeNet.Server,
    connect: (port, host, cb) => B.net.connect(port, host, cb) as unknown as nodeNet.Socket,
  };
}

const metric = (r: NetBenchRow): number => (r.test === 'bulk' ? r.mbps : r.test === 'rr' ? r.tps : r.cps) ?? NaN;

export async function benchNet(opts: NetBenchOptions = {}): Promise<NetBenchResult> {
  const durationS = opts.duration ?? 3;
  const rounds = opts.rounds ?? 3;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100) {
    throw Object.assign(new RangeError(`rounds must be an integer in [1, 100], got ${rounds}`), { code: 'ERR_OUT_OF_RANGE' });
  }
  const warmupS = warmupSeconds(opts.warmup);
  const tests = opts.tests ?? NET_TESTS;
  const placements = opts.placements ?? PLACEMENTS;
  const mtu = opts.mtu ?? 65535;
  const checksumOffload = opts.checksumOffload ?? true;
  const busyPollUs = opts.busyPollUs === undefined ? undefined : validateBusyPollUs(opts.busyPollUs, 0);
  const progress = opts.onProgress ?? (() => {});
  const results: NetBenchRow[] = [];

  // Every system and placement measures in a process of its own (bench/system-child.ts says why).
  const procs: SystemProcess[] = [];
  const keepnet: [BenchPlacement, SystemProcess][] = [];
  try {
    const kernel = new SystemProcess('kernel', { system: 'kernel' });
    procs.push(kernel);
    for (const placement of placements) {
      progress(`starting two keepnet stacks (${placement})`);
      const p = new SystemProcess(`keepnet ${placement}`, { system: 'keepnet', placement, mtu, checksumOffload, tcpInstances: opts.tcpInstances ?? 1, busyPollUs });
      procs.push(p);
      keepnet.push([placement, p]);
    }
    // Nothing is measured while a system is still starting (its stacks' threads would compete).
    await Promise.all(procs.map((p) => p.ready));
    // Rounds alternate the systems (kernel, then each placement, again and again), and each row is the
    // round with the median figure: this machine's speed drifts by 2x within a minute (other tenants of
    // the host), and a drift that lands on one system's whole run would decide the ratio.
    const perRound = durationS / rounds;
    for (const test of tests) {
      const rows = new Map<string, NetBenchRow[]>();
      const add = (r: NetBenchRow): void => {
        const k = `${r.system}/${r.placement}`;
        const list = rows.get(k);
        if (list) list.push(r);
        else rows.set(k, [r]);
      };
      if (warmupS > 0) {
        progress(`${test}: warming up (${warmupS} s each, not measured)`);
        await kernel.run(test, warmupS);
        for (const [, p] of keepnet) await p.run(test, warmupS);
      }
      for (let round = 1; round <= rounds; round++) {
        const of = rounds > 1 ? ` round ${round}/${rounds}` : '';
        progress(`${test}: kernel (node:net over loopback)${of}`);
        add({ test, system: 'kernel', placement: 'n/a', ...(await kernel.run(test, perRound)) });
        for (const [placement, p] of keepnet) {
          progress(`${test}: keepnet ${placement} (shm wire, mtu ${mtu})${of}`);
          add({ test, system: 'keepnet', placement, ...(await p.run(test, perRound)) });
        }
      }
      for (const list of rows.values()) results.push(medianRow(list));
    }
  } finally {
    await Promise.allSettled(procs.map((p) => p.close()));
  }
  const ratios: Partial<Record<NetTest, number>> = {};
  for (const test of tests) {
    const k = results.find((r) => r.test === test && r.system === 'kernel');
    const best = Math.max(...results.filter((r) => r.test === test && r.system === 'keepnet').map(metric));
    if (k) ratios[test] = best / metric(k);
  }
  return { wire: { kind: 'shm', mtu, checksumOffload }, kernel: { kind: 'loopback', address: '127.0.0.1' }, durationS, rounds, warmupS, results, ratios };
}

/** The row of the round with the median figure (the lower middle one of an even count). */
export function medianRow(rows: readonly NetBenchRow[]): NetBenchRow {
  if (rows.length === 0) throw new RangeError('medianRow needs at least one row');
  const sorted = [...rows].sort((a, b) => metric(a) - metric(b));
  return sorted[(sorted.length - 1) >> 1];
}

/** The table printed on a terminal. */
export function formatNetBench(r: NetBenchResult): string {
  const head = ['test', 'system', 'placement', 'MB/s', 'tx/s', 'conn/s', 'mean µs', 'p99 µs', 'CPU s', 'per CPU s', 'poll µs', 'steal %'];
  const rows = r.results.map((x) => [
    x.test,
    x.system,
    x.placement,
    fmt(x.mbps, 1),
    fmt(x.tps),
    fmt(x.cps),
    fmt(x.rttUs, 1),
    fmt(x.rttP99Us, 1),
    fmt(x.cpuS, 2),
    fmt(x.perCpuSecond, 1),
    fmt(x.busyPollUs),
    fmt(x.stealPct, 1),
  ]);
  const out = [
    `keepnet: two stacks on the shared-memory wire (mtu ${r.wire.mtu}, checksum offload ${r.wire.checksumOffload ? 'on' : 'off'}); kernel: node:net over ${r.kernel.address}; ${r.durationS} s per measurement in ${r.rounds} alternating rounds (each row: the median round) after ${r.warmupS} s of warm-up each; each system in a process of its own`,
    '',
    ...textTable(head, rows, 3),
    '',
    'keepnet (best placement) / kernel: ' +
      Object.entries(r.ratios)
        .map(([k, v]) => `${k} ${v.toFixed(2)}x`)
        .join(', '),
    'per CPU s: bulk MB, rr transactions, crr connections per CPU second (all threads, user + system).',
    "poll µs: the stacks' busy poll budget (busyPollUs; --busy-poll US sets it): CPU time spent polling counts in CPU s.",
    "steal %: the machine's CPU time the hypervisor gave to other guests during the row's window (/proc/stat).",
  ];
  const warning = stealWarning(r.results.map((x) => x.stealPct));
  if (warning !== null) out.push(warning);
  return out.join('\n');
}
