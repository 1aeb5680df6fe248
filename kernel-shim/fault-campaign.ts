/**
 * A fault campaign under real traffic. Two stacks on a shared-memory wire (demo-traffic.ts): A serves
 * http, TCP echo and UDP echo; B is the client. Traffic runs all the time (HTTP downloads and uploads
 * verified by SHA-256, long-lived bulk echo connections verified byte by byte, UDP echoes, and probes
 * through every server of the stacks under fault, each carrying a pool buffer that is verified when it
 * comes back) while faults are injected into the servers in turn.
 *
 * Where the faults go: `targets: 'a'` (the default) injects into stack A, the server side; 'both'
 * alternates between A and B (fault i goes to A when i is even, to B when it is odd). Server and kind
 * cycle as before: fault i (per target) hits servers[i % S] with kinds[floor(i / S) % K].
 *
 * Pacing (unchanged): after each fault the campaign waits for the supervisor's verdict and for the new
 * incarnation to serve, then (unless `rearm: false`, `--back-to-back`) until every host of the stack has
 * its warm standbys parked again, so each fault meets the stack in its steady state.
 *
 * The result says how fast faults were detected and repaired, whether anything in flight was lost or
 * corrupted, and what the traffic saw: connections lost, requests ok and failed, bytes verified.
 * The demo (`keepnet demo`) runs the same campaign for a duration instead of a count, and lets a person
 * inject faults by hand (`injectNow`) while it runs.
 */
import { Stack, type StackOptions } from './stack.js';
import { createDemoPair, DemoTraffic, type DemoPair, type TrafficFailure, type TrafficOptions } from './demo-traffic.js';
import { FAULT_KINDS, type FaultKind } from '../servers/runtime/supervisor.js';
import type { LatencySummary } from '../servers/runtime/stats.js';
import { serverNames, validateTcpInstances, type ServerName } from '../servers/runtime/topology.js';

export type StackSide = 'a' | 'b';

export interface CampaignOptions {
  /** Faults to inject (Infinity: until `durationMs` or `signal`). */
  count: number;
  servers?: ServerName[];
  kinds?: FaultKind[];
  /** Which stacks get the faults: 'a' (the server side, default) or 'both' (alternating). */
  targets?: 'a' | 'both';
  /** Probes kept in flight per server of each target stack. */
  inFlight?: number;
  /** Payload bytes per probe. */
  payload?: number;
  /** Pause after each recovery before the next fault (ms). */
  settleMs?: number;
  /**
   * Wait, after each recovery, until every host has its warm standbys parked again before the next
   * fault (default true): each fault then meets the stack in its steady state, as a real fault would.
   * false injects back to back, which measures what happens when standbys run out (a replaced thread
   * takes a worker start, about 25 ms here, to become a standby again).
   */
  rearm?: boolean;
  /** Longest wait for a fault to be repaired (ms) before it counts as not recovered. */
  faultTimeoutMs?: number;
  /** Stop injecting after this long (ms) (the demo's --duration). */
  durationMs?: number;
  /** Stop injecting when aborted (Ctrl-C, the demo's q). */
  signal?: AbortSignal;
  /** Inject faults on a schedule (default true); false: only those asked for with injectNow. */
  automatic?: boolean;
  /** The HTTP, bulk and UDP traffic (false: probes only, on a single stack, as before). */
  traffic?: TrafficOptions | false;
  stack?: StackOptions;
  onEvent?: (line: string) => void;
}

export interface FaultRecord {
  /** Milliseconds since the campaign started. */
  atMs: number;
  stack: StackSide;
  server: ServerName;
  kind: FaultKind;
  manual: boolean;
  recovered: boolean;
  detectionMs: number | null;
  /** The supervisor's recovery times for the deaths this fault caused (a poison crashes it 3 times). */
  recoveryMs: number[];
}

type Pct = Pick<LatencySummary, 'p50' | 'p99' | 'max'>;

export interface CampaignResult {
  injected: number;
  recovered: number;
  detectionMs: Pct;
  recoveryMs: Pct;
  falseSuspicions: number;
  poisonDropped: number;
  probes: { sent: number; returned: number; lost: number; corrupted: number; duplicates: number };
  pool: { inUseAtEnd: number };
  byServer: Record<string, { injected: number; recovered: number; restarts: Record<string, number>; detectionMs: LatencySummary; recoveryMs: LatencySummary }>;
  /** TCP connections that ended with an error, on either stack. */
  connectionsLost: number;
  requests: { ok: number; failed: number };
  bytesVerified: number;
  udp: { sent: number; echoed: number; lost: number };
  /** Faults after which the warm standbys were not all parked again within faultTimeoutMs. */
  rearmTimeouts: number;
  /** How long the campaign waited, after each repair, for the standbys to be parked again (ms). */
  rearmMs: Pct;
  /** Where the faults went. */
  targets: StackSide[];
  durationS: number;
  /** Every traffic failure, with its error and the fault in progress (empty when all went well). */
  failures: TrafficFailure[];
}

/** What the report and the live view draw. */
export interface CampaignTimeline {
  bucketMs: number;
  /** Bytes verified per bucket. */
  throughput: number[];
  faults: FaultRecord[];
  /** Every recovery time the supervisors reported (ms). */
  recoveries: number[];
}

export interface ServerView {
  thread: number;
  threadId: number;
  incarnation: number;
  state: string;
  restarts: number;
  lastRecoveryMs: number | null;
}

export interface CampaignSnapshot {
  elapsedMs: number;
  stacks: Record<StackSide, Record<ServerName, ServerView>>;
  targets: StackSide[];
  traffic: DemoTraffic['counters'] | null;
  faults: number;
  recovered: number;
  poisonDropped: number;
  current: string | null;
  throughput: number[];
  bucketMs: number;
}

const round = (x: number): number => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : 0);
const pick = (s: LatencySummary): Pct => ({ p50: round(s.p50), p99: round(s.p99), max: round(s.max) });

/** Exact percentiles of a list (nearest rank). */
export function percentiles(xs: readonly number[]): Pct {
  if (xs.length === 0) return { p50: 0, p99: 0, max: 0 };
  const s = [...xs].sort((p, q) => p - q);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
  return { p50: round(at(0.5)), p99: round(at(0.99)), max: round(s[s.length - 1]) };
}

function validate(opts: CampaignOptions): void {
  if (!(Number.isInteger(opts.count) || opts.count === Infinity) || opts.count < 0) {
    throw Object.assign(new RangeError(`count must be a non-negative integer, got ${opts.count}`), { code: 'ERR_OUT_OF_RANGE' });
  }
  const names = serverNames(validateTcpInstances(opts.stack?.tcpInstances));
  for (const s of opts.servers ?? []) {
    if (!(names as readonly string[]).includes(s)) {
      throw Object.assign(new TypeError(`unknown server '${s}' (servers: ${names.join(', ')})`), { code: 'ERR_INVALID_ARG_VALUE' });
    }
  }
  for (const k of opts.kinds ?? []) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) {
      throw Object.assign(new TypeError(`unknown fault kind '${k}' (kinds: ${FAULT_KINDS.join(', ')})`), { code: 'ERR_INVALID_ARG_VALUE' });
    }
  }
  if (opts.targets !== undefined && opts.targets !== 'a' && opts.targets !== 'both') {
    throw Object.assign(new TypeError(`targets must be 'a' or 'both', got '${String(opts.targets)}'`), { code: 'ERR_INVALID_ARG_VALUE' });
  }
}

interface Current {
  rec: FaultRecord;
  side: StackSide;
  injectedUs: number;
  deathSeen: boolean;
  poisonSeen: boolean;
}

export class FaultCampaign {
  private readonly servers: ServerName[];
  private readonly kinds: FaultKind[];
  private readonly log: (line: string) => void;
  private pair: DemoPair | null = null;
  private single: Stack | null = null;
  private traffic: DemoTraffic | null = null;
  private readonly stacks = new Map<StackSide, Stack>();
  private readonly targets: StackSide[];
  private readonly faults: FaultRecord[] = [];
  private readonly recoveries: number[] = [];
  private readonly detections: number[] = [];
  private readonly lastRecovery = new Map<string, number>();
  private readonly manual: { side: StackSide; server: ServerName; kind: FaultKind }[] = [];
  private manualWake: (() => void) | null = null;
  private current: Current | null = null;
  private falseSuspicions = 0;
  private recovered = 0;
  private probeLost = 0;
  private rearmTimeouts = 0;
  private readonly rearmWaits: number[] = [];
  private t0 = 0;
  private stopped = false;
  private readonly bucketMs: number;

  constructor(private readonly opts: CampaignOptions) {
    validate(opts);
    this.servers = opts.servers?.length ? opts.servers : serverNames(opts.stack?.tcpInstances ?? 1);
    this.kinds = opts.kinds?.length ? opts.kinds : [...FAULT_KINDS];
    this.log = opts.onEvent ?? (() => {});
    this.targets = opts.traffic === false || opts.targets !== 'both' ? ['a'] : ['a', 'b'];
    this.bucketMs = (opts.traffic !== false && opts.traffic?.bucketMs) || 250;
  }

  /** Milliseconds since the campaign started. */
  now(): number {
    return performance.now() - this.t0;
  }

  /** Ask for a fault now (the demo's keys): injected between two scheduled faults, as soon as possible. */
  injectNow(side: StackSide, server: ServerName, kind: FaultKind): void {
    this.manual.push({ side, server, kind });
    this.manualWake?.();
  }

  /** Stop injecting (the campaign then finishes the fault in hand and the traffic, and returns). */
  stop(): void {
    this.stopped = true;
    this.manualWake?.();
  }

  private describeCurrent(): string {
    const c = this.current;
    const last = this.faults[this.faults.length - 1];
    if (c) return `during ${c.rec.kind} of ${c.side.toUpperCase()}.${c.rec.server} (fault #${this.faults.length}, injected at ${c.rec.atMs} ms)`;
    if (last) return `after ${last.kind} of ${last.stack.toUpperCase()}.${last.server} (fault #${this.faults.length}, injected at ${last.atMs} ms)`;
    return 'before any fault';
  }

  private watch(side: StackSide, stack: Stack): void {
    const tag = this.targets.length > 1 || this.opts.traffic !== false ? `${side.toUpperCase()}.` : '';
    stack.on('hang', (e: { servers: ServerName[] }) => {
      const c = this.current;
      if (!c || c.side !== side || c.rec.kind !== 'hang' || !e.servers.includes(c.rec.server)) this.falseSuspicions++;
      this.noteDetection(side, e.servers);
      this.log(`hang verdict: ${e.servers.map((s) => tag + s).join('+')}`);
    });
    stack.on('death', (e: { server: ServerName; cause: string; reason: string }) => {
      this.noteDetection(side, [e.server]);
      const c = this.current;
      if (c && c.side === side && e.server === c.rec.server) c.deathSeen = true;
      this.log(`death: ${tag}${e.server} (${e.cause}: ${e.reason})`);
    });
    stack.on('poison', (e: { server: string }) => {
      const c = this.current;
      if (c && c.side === side && e.server.split('+').includes(c.rec.server)) c.poisonSeen = true;
      this.log(`poison dropped: ${tag}${e.server}`);
    });
    stack.on('recovered', (e: { server: ServerName; incarnation: number; recoveryMs: number }) => {
      this.recoveries.push(e.recoveryMs);
      this.lastRecovery.set(`${side}.${e.server}`, e.recoveryMs);
      const c = this.current;
      if (c && c.side === side && c.rec.server === e.server) c.rec.recoveryMs.push(round(e.recoveryMs));
      this.log(`recovered: ${tag}${e.server} incarnation ${e.incarnation} in ${e.recoveryMs.toFixed(2)} ms`);
    });
    stack.on('crash-loop', (e: { servers: ServerName[]; streak: number; delayUs: number }) =>
      this.log(`crash loop: ${e.servers.map((s) => tag + s).join('+')} (streak ${e.streak}, backing off ${(e.delayUs / 1000).toFixed(0)} ms)`),
    );
  }

  private noteDetection(side: StackSide, servers: ServerName[]): void {
    const c = this.current;
    if (!c || c.side !== side || c.rec.detectionMs !== null || !servers.includes(c.rec.server)) return;
    const stack = this.stacks.get(side)!;
    c.rec.detectionMs = round((stack.clock.nowUs() - c.injectedUs) / 1000);
    this.detections.push(c.rec.detectionMs);
  }

  /** Inject one fault and wait for it to be repaired (and, with rearm, for the standbys). */
  private async one(side: StackSide, server: ServerName, kind: FaultKind, manual: boolean): Promise<void> {
    const stack = this.stacks.get(side)!;
    const faultTimeoutMs = this.opts.faultTimeoutMs ?? 10_000;
    const rec: FaultRecord = { atMs: Math.round(this.now()), stack: side, server, kind, manual, recovered: false, detectionMs: null, recoveryMs: [] };
    this.faults.push(rec);
    const c: Current = { rec, side, injectedUs: stack.clock.nowUs(), deathSeen: false, poisonSeen: false };
    this.current = c;
    const tag = this.targets.length > 1 || this.opts.traffic !== false ? `${side.toUpperCase()}.` : '';
    this.log(`inject ${kind} into ${tag}${server}${manual ? ' (by hand)' : ''}`);
    stack.inject(server, kind);
    const seen = (): boolean => (kind === 'poison' ? c.poisonSeen : c.deathSeen);
    const deadline = Date.now() + faultTimeoutMs;
    while (Date.now() < deadline && !seen()) await new Promise((r) => setTimeout(r, 1));
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      stack.supervisor.whenServing(server, stack.memory).then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(0, deadline - Date.now())))),
    ]);
    clearTimeout(timer);
    if (ok && seen()) {
      rec.recovered = true;
      this.recovered++;
    } else {
      this.log(`NOT RECOVERED within ${faultTimeoutMs} ms: ${kind} of ${tag}${server}`);
    }
    this.current = null;
    const rearmT0 = performance.now();
    if (this.opts.rearm ?? true) {
      await stack.supervisor.whenArmed(faultTimeoutMs).catch(() => {
        this.rearmTimeouts++;
        this.log(`standbys not re-armed within ${faultTimeoutMs} ms after ${kind} of ${tag}${server}`);
      });
      this.rearmWaits.push(performance.now() - rearmT0);
    }
    await new Promise((r) => setTimeout(r, this.opts.settleMs ?? 20));
  }

  async run(): Promise<CampaignResult> {
    const count = this.opts.count;
    const inFlight = this.opts.inFlight ?? 4;
    const payload = this.opts.payload ?? 1024;
    const faultTimeoutMs = this.opts.faultTimeoutMs ?? 10_000;
    this.t0 = performance.now();

    if (this.opts.traffic === false) {
      this.single = new Stack(this.opts.stack);
      await this.single.start();
      this.stacks.set('a', this.single);
    } else {
      this.pair = await createDemoPair(this.opts.stack);
      this.stacks.set('a', this.pair.a);
      this.stacks.set('b', this.pair.b);
    }
    for (const [side, stack] of this.stacks) this.watch(side, stack);
    this.t0 = performance.now();

    try {
      if (this.pair && this.opts.traffic !== false) {
        this.traffic = new DemoTraffic(this.pair, {
          ...this.opts.traffic,
          bucketMs: this.bucketMs,
          context: () => this.describeCurrent(),
          onFailure: (f) => this.log(`FAILURE: ${f.what}: ${f.error}${f.code ? ` (${f.code})` : ''} ${f.context}`),
        });
        await this.traffic.start();
      }

      // Probes: `inFlight` per server of each target stack, each resent as soon as it returns.
      let probing = true;
      const loops = this.targets.flatMap((side) =>
        this.servers.flatMap((server) =>
          Array.from({ length: inFlight }, async () => {
            const stack = this.stacks.get(side)!;
            while (probing) {
              try {
                await stack.probe(server, payload, faultTimeoutMs);
              } catch (err) {
                if ((err as { code?: string }).code === 'ETIMEDOUT') this.probeLost++;
                else await new Promise((r) => setTimeout(r, 1)); // ring or pool momentarily full
              }
            }
          }),
        ),
      );

      const onAbort = (): void => this.stop();
      this.opts.signal?.addEventListener('abort', onAbort, { once: true });
      if (this.opts.signal?.aborted) this.stop();
      const endAt = this.opts.durationMs !== undefined ? performance.now() + this.opts.durationMs : Infinity;
      const timer = Number.isFinite(endAt) ? setTimeout(() => this.stop(), this.opts.durationMs) : null;
      const automatic = this.opts.automatic ?? true;
      const perTarget = new Map<StackSide, number>(this.targets.map((s) => [s, 0]));
      let scheduled = 0;
      while (!this.stopped) {
        const m = this.manual.shift();
        if (m) {
          await this.one(m.side, m.server, m.kind, true);
          continue;
        }
        if (automatic && scheduled < count) {
          const side = this.targets[scheduled % this.targets.length];
          const i = perTarget.get(side)!;
          perTarget.set(side, i + 1);
          scheduled++;
          const server = this.servers[i % this.servers.length];
          const kind = this.kinds[Math.floor(i / this.servers.length) % this.kinds.length];
          await this.one(side, server, kind, false);
          continue;
        }
        if (automatic && scheduled >= count) break; // the count is reached (Infinity: run until stopped)
        // Only faults by hand: wait for a key, the end of the duration or the signal.
        await new Promise<void>((r) => {
          this.manualWake = r;
          setTimeout(r, 200);
        });
        this.manualWake = null;
      }
      if (timer) clearTimeout(timer);
      this.opts.signal?.removeEventListener('abort', onAbort);

      probing = false;
      await Promise.all(loops);
      await this.traffic?.stop();
      return this.result();
    } finally {
      await this.pair?.close();
      await this.single?.close();
    }
  }

  private result(): CampaignResult {
    const byServer: CampaignResult['byServer'] = {};
    let poisonDropped = 0;
    const probes = { sent: 0, returned: 0, lost: this.probeLost, corrupted: 0, duplicates: 0 };
    let inUse = 0;
    for (const side of this.targets) {
      const stack = this.stacks.get(side)!;
      const stats = stack.stats();
      poisonDropped += stats.poisonDropped;
      probes.sent += stats.probes.sent;
      probes.returned += stats.probes.returned;
      probes.corrupted += stats.probes.corrupted;
      probes.duplicates += stats.probes.duplicates;
      for (const name of this.servers) {
        const s = stats.servers[name];
        const mine = this.faults.filter((f) => f.stack === side && f.server === name);
        const key = this.targets.length > 1 ? `${side}.${name}` : name;
        byServer[key] = {
          injected: mine.length,
          recovered: mine.filter((f) => f.recovered).length,
          restarts: s.restarts,
          detectionMs: s.detectionMs,
          recoveryMs: s.recoveryMs,
        };
      }
    }
    for (const stack of this.stacks.values()) inUse += stack.memory.pools.stats().inUse;
    const tr = this.traffic?.counters;
    // With one target and no traffic, the supervisor's own summaries (as before); else the events'.
    const lat = this.single ? this.single.supervisor.latencies() : null;
    return {
      injected: this.faults.length,
      recovered: this.recovered,
      detectionMs: lat ? pick(lat.detectionMs) : percentiles(this.detections),
      recoveryMs: lat ? pick(lat.recoveryMs) : percentiles(this.recoveries),
      falseSuspicions: this.falseSuspicions,
      poisonDropped,
      probes,
      pool: { inUseAtEnd: inUse },
      byServer,
      connectionsLost: tr?.connections.lost ?? 0,
      requests: { ok: tr?.requests.ok ?? 0, failed: tr?.requests.failed ?? 0 },
      bytesVerified: tr?.bytesVerified ?? 0,
      udp: { sent: tr?.udp.sent ?? 0, echoed: tr?.udp.echoed ?? 0, lost: tr?.udp.lost ?? 0 },
      rearmTimeouts: this.rearmTimeouts,
      rearmMs: percentiles(this.rearmWaits),
      targets: this.targets,
      durationS: round(this.now() / 1000),
      failures: this.traffic?.failures.slice(0, 100) ?? [],
    };
  }

  /** Throughput, faults and recovery times, for the report. */
  timeline(): CampaignTimeline {
    return {
      bucketMs: this.bucketMs,
      throughput: [...(this.traffic?.throughput ?? [])],
      faults: this.faults.map((f) => ({ ...f, recoveryMs: [...f.recoveryMs] })),
      recoveries: [...this.recoveries],
    };
  }

  /** The state of everything, for the live view. */
  snapshot(): CampaignSnapshot {
    const stacks = {} as CampaignSnapshot['stacks'];
    let poisonDropped = 0;
    for (const [side, stack] of this.stacks) {
      const st = stack.supervisor.stats(stack.memory);
      poisonDropped += stack.supervisor.poisonDroppedOf(stack.memory);
      stacks[side] = Object.fromEntries(
        stack.memory.servers.map((n) => [
          n,
          {
            thread: st[n].thread,
            threadId: st[n].threadId,
            incarnation: st[n].incarnation,
            state: st[n].state,
            restarts: st[n].restarts.total,
            lastRecoveryMs: this.lastRecovery.get(`${side}.${n}`) ?? null,
          },
        ]),
      ) as Record<ServerName, ServerView>;
    }
    return {
      elapsedMs: this.now(),
      stacks,
      targets: this.targets,
      traffic: this.traffic ? this.traffic.snapshot() : null,
      faults: this.faults.length,
      recovered: this.recovered,
      poisonDropped,
      current: this.current ? `${this.current.rec.kind} → ${this.current.side.toUpperCase()}.${this.current.rec.server}` : null,
      throughput: this.traffic ? this.traffic.throughput.slice(-120) : [],
      bucketMs: this.bucketMs,
    };
  }
}

/** Run a campaign to the end. */
export async function runFaultCampaign(opts: CampaignOptions): Promise<CampaignResult> {
  return new FaultCampaign(opts).run();
}
