/**
 * `keepnet bench tap`: bulk TCP between keepnet and the Linux kernel over a TAP device, each way, with
 * IFF_VNET_HDR offload (checksum offload, TSO/GRO: 64 KiB frames) off and on, side by side in one run.
 *
 *   keepnet->kernel  keepnet's net API writes 256 KiB chunks for --duration seconds to a node:net sink
 *                    in the kernel's namespace; MB/s = bytes / (first to last byte) at the sink.
 *   kernel->keepnet  a node:net source in the namespace writes for --duration seconds; keepnet's server
 *                    counts; MB/s from its first to its last byte.
 *
 * One namespace per configuration (bench/tap-peer.ts: the kernel's address on the TAP), named with this
 * process's PID and deleted afterwards. Root is needed. MB are 10^6 bytes. Data is not verified here
 * (test/net/tap-offload.test.ts does that), and the kernel's peer neither hashes nor generates data
 * (tap-bulk-peer.js raw): it would be the bottleneck; the byte counts of both ends must agree.
 */
import { fileURLToPath } from 'node:url';
import { Stack } from '../kernel-shim/stack.js';
import { KernelPeer, tapNamespace } from './tap-peer.js';
import { readCpuTimes, stealPct, stealWarning } from './steal.js';
import { warmupSeconds } from './warmup.js';

export interface TapBenchRow {
  direction: 'keepnet->kernel' | 'kernel->keepnet';
  offload: boolean;
  mbps: number;
  bytes: number;
  /** Driver counters of the run: GSO frames each way (0 without offload). */
  rxGsoFrames: number;
  txGsoFrames: number;
  /** Share of the machine's CPU time the hypervisor stole during the measurement, % (bench/steal.ts); null off Linux. */
  stealPct: number | null;
}

export interface TapBenchResult {
  durationS: number;
  warmupS: number;
  placement: 'dedicated' | 'shared';
  results: TapBenchRow[];
  /** offload on / off, per direction, from this run. */
  ratios: { 'keepnet->kernel': number | null; 'kernel->keepnet': number | null };
}

export interface TapBenchOptions {
  duration: number;
  placement: 'dedicated' | 'shared';
  /** Seconds each direction runs unmeasured before its measurement (default 2; 0: none). */
  warmup?: number;
  /** Which configurations (default both: off, then on). */
  offloads?: boolean[];
  onProgress?: (what: string) => void;
}

const CHUNK = 256 * 1024;
const peerScript = fileURLToPath(new URL('./tap-bulk-peer.js', import.meta.url));

/** keepnet sends 256 KiB chunks for `seconds` to a sink in the namespace: what the sink counted. */
async function send(stack: Stack, peer: KernelPeer, kernelAddr: string, seconds: number): Promise<{ bytes: number; ms?: number }> {
  const sink = peer.sink(5001, 1, true);
  await sink.listening;
  await new Promise<void>((resolve, reject) => {
    const chunk = Buffer.alloc(CHUNK, 0x5a);
    const sock = stack.net.connect(5001, kernelAddr, () => {
      const end = performance.now() + seconds * 1000;
      const pump = (): void => {
        while (performance.now() < end) {
          if (!sock.write(chunk)) {
            sock.once('drain', pump);
            return;
          }
        }
        sock.end();
      };
      pump();
    });
    sock.on('error', reject);
    sock.on('close', () => resolve());
    sock.resume();
  });
  return sink.result;
}

/** A source in the namespace sends for `seconds` to keepnet's server: what keepnet counted, checked against the source. */
async function receive(stack: Stack, peer: KernelPeer, stackAddr: string, seconds: number): Promise<{ bytes: number; ms: number }> {
  let listening: () => void = () => {};
  const ready = new Promise<void>((r) => (listening = r));
  const got = new Promise<{ bytes: number; ms: number }>((resolve, reject) => {
    const server = stack.net.createServer((s) => {
      let bytes = 0;
      let t0 = 0;
      s.on('data', (d: Buffer) => {
        if (bytes === 0) t0 = performance.now();
        bytes += d.length;
      });
      s.on('end', () => {
        const ms = performance.now() - t0;
        s.end();
        server.close();
        resolve({ bytes, ms });
      });
      s.on('error', reject);
    });
    server.on('error', reject);
    server.listen(5002, listening);
  });
  // The source connects only once the server listens (else its SYN could meet a reset).
  await Promise.race([ready, got]);
  const src = await peer.source(stackAddr, 5002, Number.MAX_SAFE_INTEGER, seconds, true).result;
  const rx = await got;
  if (src.bytes !== rx.bytes) throw new Error(`kernel sent ${src.bytes} bytes, keepnet received ${rx.bytes}`);
  return rx;
}

export async function benchTap(o: TapBenchOptions): Promise<TapBenchResult> {
  const warmupS = warmupSeconds(o.warmup);
  const results: TapBenchRow[] = [];
  for (const offload of o.offloads ?? [false, true]) {
    const ns = tapNamespace(`knb-${process.pid}-${offload ? 1 : 0}`, { subnet: 81 });
    const stack = new Stack({
      address: `${ns.stackAddr}/24`,
      placement: o.placement,
      link: { kind: 'tap', name: ns.tapName, netns: ns.name, offload },
    });
    try {
      await stack.start();
      ns.up();
      const peer = new KernelPeer(ns.name, peerScript);

      // Each direction first runs unmeasured for `warmup` seconds: V8 compiles the stack's servers
      // while they run, and a fresh stack's rate climbs for 2-4 s (see bench/net.ts).
      if (warmupS > 0) {
        o.onProgress?.(`keepnet->kernel, offload ${offload ? 'on' : 'off'}: warming up (${warmupS} s)`);
        await send(stack, peer, ns.kernelAddr, warmupS);
      }
      o.onProgress?.(`keepnet->kernel, offload ${offload ? 'on' : 'off'}`);
      const before = driverCounts(stack);
      const ticks0 = readCpuTimes();
      const tx = await send(stack, peer, ns.kernelAddr, o.duration);
      const mid = driverCounts(stack);
      results.push(row('keepnet->kernel', offload, tx, before, mid, stealPct(ticks0, readCpuTimes())));

      if (warmupS > 0) {
        o.onProgress?.(`kernel->keepnet, offload ${offload ? 'on' : 'off'}: warming up (${warmupS} s)`);
        await receive(stack, peer, ns.stackAddr, warmupS);
      }
      o.onProgress?.(`kernel->keepnet, offload ${offload ? 'on' : 'off'}`);
      const mid2 = driverCounts(stack);
      const ticks1 = readCpuTimes();
      const rx = await receive(stack, peer, ns.stackAddr, o.duration);
      const after = driverCounts(stack);
      results.push(row('kernel->keepnet', offload, rx, mid2, after, stealPct(ticks1, readCpuTimes())));
    } finally {
      await stack.close();
      ns.destroy();
    }
  }
  const ratio = (dir: TapBenchRow['direction']): number | null => {
    const on = results.find((r) => r.direction === dir && r.offload);
    const off = results.find((r) => r.direction === dir && !r.offload);
    return on && off && off.mbps > 0 ? on.mbps / off.mbps : null;
  };
  return {
    durationS: o.duration,
    warmupS,
    placement: o.placement,
    results,
    ratios: { 'keepnet->kernel': ratio('keepnet->kernel'), 'kernel->keepnet': ratio('kernel->keepnet') },
  };
}

/** One direction's row: MB/s over the receiver's first-to-last byte, GSO frames between two counts. */
function row(
  direction: TapBenchRow['direction'],
  offload: boolean,
  moved: { bytes: number; ms?: number },
  from: { rx: number; tx: number },
  to: { rx: number; tx: number },
  steal: number | null,
): TapBenchRow {
  return { direction, offload, bytes: moved.bytes, mbps: moved.ms ? moved.bytes / 1e3 / moved.ms : 0, rxGsoFrames: to.rx - from.rx, txGsoFrames: to.tx - from.tx, stealPct: steal };
}

function driverCounts(stack: Stack): { rx: number; tx: number } {
  const d = stack.stats().servers.driver.protocol;
  return { rx: d['rxGsoFrames'] ?? 0, tx: d['txGsoFrames'] ?? 0 };
}

export function formatTapBench(r: TapBenchResult): string {
  const lines = [`keepnet <-> Linux kernel over TAP, bulk TCP, ${r.durationS} s each after ${r.warmupS} s of warm-up, placement ${r.placement} (MB = 10^6 bytes)`, ''];
  lines.push('direction          offload      MB/s   steal %   GSO frames rx/tx');
  for (const x of r.results) {
    const steal = x.stealPct === null ? 'n/a' : x.stealPct.toFixed(1);
    lines.push(
      `${x.direction.padEnd(18)} ${(x.offload ? 'on' : 'off').padEnd(8)} ${x.mbps.toFixed(1).padStart(9)}   ${steal.padStart(7)}   ${x.rxGsoFrames}/${x.txGsoFrames}`,
    );
  }
  lines.push('');
  const f = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(2)}x`);
  lines.push(`offload on / off: keepnet->kernel ${f(r.ratios['keepnet->kernel'])}, kernel->keepnet ${f(r.ratios['kernel->keepnet'])}`);
  lines.push("steal %: the machine's CPU time the hypervisor gave to other guests during the measurement (/proc/stat).");
  const warning = stealWarning(r.results.map((x) => x.stealPct));
  if (warning !== null) lines.push(warning);
  return lines.join('\n');
}
