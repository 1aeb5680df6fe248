/**
 * A fault campaign against a live stack: traffic runs all the time (probes through every server, each
 * carrying a pool buffer that is verified when it comes back) while faults are injected into the
 * servers in turn. The result says how fast faults were detected and repaired, and whether anything
 * in flight was lost or corrupted.
 */
import { Stack, type StackOptions } from './stack.js';
import { FAULT_KINDS, type FaultKind } from '../servers/runtime/supervisor.js';
import type { LatencySummary } from '../servers/runtime/stats.js';
import { SERVER_NAMES, type ServerName } from '../servers/runtime/topology.js';

export interface CampaignOptions {
  count: number;
  servers?: ServerName[];
  kinds?: FaultKind[];
  /** Probes kept in flight per server. */
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
  stack?: StackOptions;
  onEvent?: (line: string) => void;
}

export interface CampaignResult {
  injected: number;
  recovered: number;
  detectionMs: Pick<LatencySummary, 'p50' | 'p99' | 'max'>;
  recoveryMs: Pick<LatencySummary, 'p50' | 'p99' | 'max'>;
  falseSuspicions: number;
  poisonDropped: number;
  probes: { sent: number; returned: number; lost: number; corrupted: number; duplicates: number };
  pool: { inUseAtEnd: number };
  byServer: Record<string, { injected: number; recovered: number; restarts: Record<string, number>; detectionMs: LatencySummary; recoveryMs: LatencySummary }>;
}

const pick = (s: LatencySummary) => ({ p50: round(s.p50), p99: round(s.p99), max: round(s.max) });
const round = (x: number): number => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : 0);

function validate(opts: CampaignOptions): void {
  if (!Number.isInteger(opts.count) || opts.count < 0) {
    throw Object.assign(new RangeError(`count must be a non-negative integer, got ${opts.count}`), { code: 'ERR_OUT_OF_RANGE' });
  }
  for (const s of opts.servers ?? []) {
    if (!(SERVER_NAMES as readonly string[]).includes(s)) {
      throw Object.assign(new TypeError(`unknown server '${s}' (servers: ${SERVER_NAMES.join(', ')})`), { code: 'ERR_INVALID_ARG_VALUE' });
    }
  }
  for (const k of opts.kinds ?? []) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) {
      throw Object.assign(new TypeError(`unknown fault kind '${k}' (kinds: ${FAULT_KINDS.join(', ')})`), { code: 'ERR_INVALID_ARG_VALUE' });
    }
  }
}

export async function runFaultCampaign(opts: CampaignOptions): Promise<CampaignResult> {
  validate(opts);
  const servers = opts.servers?.length ? opts.servers : [...SERVER_NAMES];
  const kinds = opts.kinds?.length ? opts.kinds : [...FAULT_KINDS];
  const inFlight = opts.inFlight ?? 4;
  const payload = opts.payload ?? 1024;
  const settleMs = opts.settleMs ?? 20;
  const faultTimeoutMs = opts.faultTimeoutMs ?? 10_000;
  const log = opts.onEvent ?? (() => {});

  const stack = new Stack(opts.stack);
  await stack.start();

  // What the supervisor says, tied to the fault being injected at the moment.
  let current: { server: ServerName; kind: FaultKind } | null = null;
  let falseSuspicions = 0;
  let deathSeen = false;
  let poisonSeen = false;
  stack.on('hang', (e: { servers: ServerName[] }) => {
    if (!current || current.kind !== 'hang' || !e.servers.includes(current.server)) falseSuspicions++;
    log(`hang verdict: ${e.servers.join('+')}`);
  });
  stack.on('death', (e: { server: ServerName; cause: string; reason: string }) => {
    if (current && e.server === current.server) deathSeen = true;
    log(`death: ${e.server} (${e.cause}: ${e.reason})`);
  });
  stack.on('poison', (e: { server: string }) => {
    if (current && e.server.split('+').includes(current.server)) poisonSeen = true;
    log(`poison dropped: ${e.server}`);
  });
  stack.on('recovered', (e: { server: string; incarnation: number; recoveryMs: number }) =>
    log(`recovered: ${e.server} incarnation ${e.incarnation} in ${e.recoveryMs.toFixed(2)} ms`),
  );

  // Traffic: `inFlight` probes per server, each resent as soon as it returns.
  let running = true;
  let lost = 0;
  const loops = servers.flatMap((server) =>
    Array.from({ length: inFlight }, async () => {
      while (running) {
        try {
          await stack.probe(server, payload, faultTimeoutMs);
        } catch (err) {
          if ((err as { code?: string }).code === 'ETIMEDOUT') lost++;
          else await new Promise((r) => setTimeout(r, 1)); // ring or pool momentarily full
        }
      }
    }),
  );

  const byServer: CampaignResult['byServer'] = {};
  const injectedBy = new Map<ServerName, number>();
  const recoveredBy = new Map<ServerName, number>();
  let recovered = 0;
  for (let i = 0; i < opts.count; i++) {
    const server = servers[i % servers.length];
    const kind = kinds[Math.floor(i / servers.length) % kinds.length];
    current = { server, kind };
    deathSeen = false;
    poisonSeen = false;
    injectedBy.set(server, (injectedBy.get(server) ?? 0) + 1);
    log(`inject ${kind} into ${server}`);
    stack.inject(server, kind);
    const deadline = Date.now() + faultTimeoutMs;
    while (Date.now() < deadline && !(kind === 'poison' ? poisonSeen : deathSeen)) await new Promise((r) => setTimeout(r, 1));
    const ok = await Promise.race([
      stack.supervisor.whenServing(server).then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), Math.max(0, deadline - Date.now()))),
    ]);
    if (ok && (kind === 'poison' ? poisonSeen : deathSeen)) {
      recovered++;
      recoveredBy.set(server, (recoveredBy.get(server) ?? 0) + 1);
    }
    current = null;
    if (opts.rearm ?? true) await stack.supervisor.whenArmed(faultTimeoutMs).catch(() => log('standbys not re-armed in time'));
    await new Promise((r) => setTimeout(r, settleMs));
  }
  running = false;
  await Promise.all(loops);

  const stats = stack.stats();
  for (const name of servers) {
    const s = stats.servers[name];
    byServer[name] = {
      injected: injectedBy.get(name) ?? 0,
      recovered: recoveredBy.get(name) ?? 0,
      restarts: s.restarts,
      detectionMs: s.detectionMs,
      recoveryMs: s.recoveryMs,
    };
  }
  const lat = stack.supervisor.latencies();
  await stack.close();
  return {
    injected: opts.count,
    recovered,
    detectionMs: pick(lat.detectionMs),
    recoveryMs: pick(lat.recoveryMs),
    falseSuspicions,
    poisonDropped: stats.poisonDropped,
    probes: {
      sent: stats.probes.sent,
      returned: stats.probes.returned,
      lost,
      corrupted: stats.probes.corrupted,
      duplicates: stats.probes.duplicates,
    },
    pool: { inUseAtEnd: stack.memory.pools.stats().inUse },
    byServer,
  };
}
