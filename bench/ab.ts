/**
 * In-process A/B of keepnet builds: `keepnet bench ab --builds DIR,DIR[,...] [--test rr|bulk]`.
 *
 * Each DIR is a checkout of keepnet built with `npm run build` (its dist/ is loaded). Every build gets a
 * co-hosted pair of stacks on the shared-memory wire in THIS process, and the builds take turns running
 * the test in short slices (`sliceMs`, 100 ms by default), round after round, the order reversed every
 * other round. Each build's figure is the median of its slices; each build's ratio to the first is the
 * median of the per-round ratios (its slice over the first build's slice in the same round), with the
 * quartiles of those ratios.
 *
 * Why not `keepnet bench` run once per build: on this project's virtual machines separate processes
 * measure up to 30% apart from one minute to the next (another tenant slows the whole machine for
 * seconds at a time), far more than most changes are worth. Slices a few hundred milliseconds apart in
 * one process see the same machine, and paired ratios cancel what is common to a round: an A/A run (the
 * same build twice) gives a median ratio within 1-3% of 1 and quartiles 5-8% either side.
 *
 *  - rr: one connection, 64-byte request / 64-byte response, one in flight (transactions/s).
 *  - bulk: one connection, 256 KiB writes as fast as the send buffer takes them (MB/s of 10^6 bytes).
 *
 * An idle build's pair stays up while the others run (its thread parks): every build pays the same
 * process-wide costs (the garbage collector's heap, the event loop's other handles).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { echo64, MSG } from './echo.js';

export const AB_TESTS = ['rr', 'bulk'] as const;
export type AbTest = (typeof AB_TESTS)[number];

export interface AbOptions {
  /** Build directories (each with dist/kernel-shim/stack-pair.js); the first is the reference. */
  builds: readonly string[];
  test?: AbTest;
  /** Milliseconds each build runs per round (default 100). */
  sliceMs?: number;
  /** Rounds (default 40). */
  rounds?: number;
  /** Seconds each build runs the test, unmeasured, before the rounds (default 2). */
  warmupS?: number;
  onProgress?: (msg: string) => void;
}

export interface AbBuildResult {
  dir: string;
  /** Median over the slices: transactions/s (rr) or MB/s (bulk). */
  median: number;
  /** Median of this build's per-round ratio to the first build (1 for the first). */
  ratio: number;
  ratioQ1: number;
  ratioQ3: number;
  /** Every slice's figure, in round order. */
  slices: number[];
}

export interface AbResult {
  test: AbTest;
  unit: 'tps' | 'MB/s';
  sliceMs: number;
  rounds: number;
  warmupS: number;
  builds: AbBuildResult[];
}

/** One build's pair, ready to run slices. */
interface Contender {
  dir: string;
  slice(ms: number): Promise<number>;
  close(): Promise<void>;
}

interface PairModule {
  createStackPair(wire: object, a: object, b: object, opts: object): Promise<[PairStack, PairStack]>;
}
/** What this benchmark uses of a build's Stack (any build since stack pairs exist has it). */
interface PairStack {
  net: {
    createServer(onConn: (s: BenchSocket) => void): { listen(port: number, host: string, cb: () => void): void };
    connect(port: number, host: string): BenchSocket;
  };
  close(): Promise<void>;
}
interface BenchSocket {
  on(ev: string, fn: (...a: never[]) => void): void;
  once(ev: string, fn: () => void): void;
  write(b: Buffer): boolean;
  end(b: Buffer): void;
  setNoDelay(on: boolean): void;
  destroy(): void;
}

const PORT = 7000;
const BULK_CHUNK = 256 * 1024;
/** Bulk: how long a slice runs before it starts measuring (the window opening again after a pause). */
const BULK_RAMP_MS = 30;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function argError(message: string): Error {
  return Object.assign(new TypeError(message), { code: 'ERR_INVALID_ARG_VALUE' });
}

async function loadBuild(dir: string): Promise<PairModule> {
  const file = resolve(dir, 'dist', 'kernel-shim', 'stack-pair.js');
  if (!existsSync(file)) throw argError(`${dir} is not a built keepnet checkout: no ${file} (run npm run build there)`);
  return (await import(pathToFileURL(file).href)) as PairModule;
}

async function contender(dir: string, k: number, test: AbTest): Promise<Contender> {
  const mod = await loadBuild(dir);
  const net = `10.${200 + k}.0`;
  const [A, B] = await mod.createStackPair(
    { mtu: 65535, checksumOffload: true },
    { address: `${net}.1/24`, placement: 'shared' },
    { address: `${net}.2/24`, placement: 'shared' },
    { cohost: true },
  );
  let run = false;
  let count = 0;
  const server = A.net.createServer((s) => {
    s.on('error', () => {});
    if (test === 'bulk') {
      s.on('data', (d: Buffer) => void (count += d.length));
      return;
    }
    echo64(s, false);
  });
  await new Promise<void>((r) => server.listen(PORT, `${net}.1`, r));
  const c = B.net.connect(PORT, `${net}.1`);
  c.on('error', () => {});
  await new Promise<void>((r) => c.once('connect', r));
  let slice: (ms: number) => Promise<number>;
  if (test === 'rr') {
    c.setNoDelay(true);
    const req = Buffer.alloc(MSG, 2);
    let got = 0;
    c.on('data', (d: Buffer) => {
      got += d.length;
      for (; got >= MSG; got -= MSG) {
        count++;
        if (run) c.write(req);
      }
    });
    slice = async (ms) => {
      run = true;
      got = 0;
      const n0 = count;
      const t0 = performance.now();
      c.write(req);
      await sleep(ms);
      run = false;
      const tps = ((count - n0) * 1000) / (performance.now() - t0);
      await sleep(5); // the transaction in flight finishes before the next build's slice
      return tps;
    };
  } else {
    const chunk = Buffer.alloc(BULK_CHUNK, 3);
    const pump = (): void => {
      while (run && c.write(chunk));
    };
    c.on('drain', pump);
    slice = async (ms) => {
      run = true;
      pump();
      await sleep(BULK_RAMP_MS);
      const b0 = count;
      const t0 = performance.now();
      await sleep(ms);
      const mbps = (count - b0) / (performance.now() - t0) / 1000;
      run = false;
      await sleep(20); // the send buffer drains before the next build's slice
      return mbps;
    };
  }
  return {
    dir,
    slice,
    async close() {
      c.destroy();
      await Promise.allSettled([A.close(), B.close()]);
    },
  };
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export async function benchAb(opts: AbOptions): Promise<AbResult> {
  const test = opts.test ?? 'rr';
  const sliceMs = opts.sliceMs ?? 100;
  const rounds = opts.rounds ?? 40;
  const warmupS = opts.warmupS ?? 2;
  if (!Array.isArray(opts.builds) || opts.builds.length < 1 || opts.builds.some((d) => typeof d !== 'string' || d === '')) {
    throw argError('builds must be a list of one or more build directories');
  }
  if (opts.builds.length > 8) throw argError(`at most 8 builds, got ${opts.builds.length}`);
  if (!(AB_TESTS as readonly string[]).includes(test)) throw argError(`test must be rr or bulk, got ${String(test)}`);
  if (!Number.isFinite(sliceMs) || sliceMs < 10 || sliceMs > 10_000) throw argError(`sliceMs must be in [10, 10000], got ${sliceMs}`);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 10_000) throw argError(`rounds must be an integer in [1, 10000], got ${rounds}`);
  if (!Number.isFinite(warmupS) || warmupS < 0 || warmupS > 600) throw argError(`warmupS must be in [0, 600], got ${warmupS}`);
  const progress = opts.onProgress ?? (() => {});
  // Loaded before any pair starts, so a wrong directory fails before anything runs.
  for (const dir of opts.builds) await loadBuild(dir);
  const all: Contender[] = [];
  try {
    for (let k = 0; k < opts.builds.length; k++) {
      progress(`starting a co-hosted pair of ${opts.builds[k]}`);
      all.push(await contender(opts.builds[k]!, k, test));
    }
    for (const c of all) {
      progress(`warming up ${c.dir}`);
      if (warmupS > 0) await c.slice(warmupS * 1000);
    }
    const slices: number[][] = all.map(() => []);
    for (let r = 0; r < rounds; r++) {
      if (r % 10 === 0) progress(`${test}: round ${r + 1} of ${rounds}`);
      const order = all.map((_, k) => k);
      if (r % 2 === 1) order.reverse();
      for (const k of order) slices[k]!.push(await all[k]!.slice(sliceMs));
    }
    const builds = all.map((c, k) => {
      const mine = slices[k]!;
      const ratios = mine.map((v, i) => v / slices[0]![i]!).filter(Number.isFinite).sort((x, y) => x - y);
      const sorted = [...mine].sort((x, y) => x - y);
      return {
        dir: c.dir,
        median: quantile(sorted, 0.5),
        ratio: ratios.length > 0 ? quantile(ratios, 0.5) : NaN,
        ratioQ1: ratios.length > 0 ? quantile(ratios, 0.25) : NaN,
        ratioQ3: ratios.length > 0 ? quantile(ratios, 0.75) : NaN,
        slices: mine,
      };
    });
    return { test, unit: test === 'rr' ? 'tps' : 'MB/s', sliceMs, rounds, warmupS, builds };
  } finally {
    await Promise.allSettled(all.map((c) => c.close()));
  }
}

export function formatAbBench(r: AbResult): string {
  const lines = [
    `in-process A/B, ${r.test}: ${r.rounds} rounds of ${r.sliceMs} ms per build, co-hosted pairs on the shm wire`,
    '',
    ['build', r.unit === 'tps' ? 'median tx/s' : 'median MB/s', 'ratio to first (paired median)', 'quartiles'].join('  |  '),
  ];
  for (const b of r.builds) {
    const fig = r.unit === 'tps' ? Math.round(b.median).toLocaleString('en-US') : b.median.toFixed(0);
    lines.push([b.dir, fig, b.ratio.toFixed(3), `${b.ratioQ1.toFixed(3)} - ${b.ratioQ3.toFixed(3)}`].join('  |  '));
  }
  return lines.join('\n');
}
