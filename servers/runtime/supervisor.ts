/**
 * The supervisor: keepnet's reincarnation server. It runs on the application's main thread, is never on
 * the data path, and watches every host (a worker thread running one or more servers):
 *
 *   - a crash (a handler threw, an unhandled rejection, process.exit) ends the host's piscina task; the
 *     rejection arrives at once and is the verdict;
 *   - a hang is found by sampling each host's heartbeat counter and state word in shared memory every
 *     `sampleMs` and feeding them to a phi-accrual HangMonitor (failure-detector.ts) that compensates for
 *     the supervisor's own scheduling lag; the verdict aborts the task, which terminates the thread.
 *
 * Then it reclaims the pool buffers the dead incarnation held, decides whether the record it died on is
 * poison (PoisonTracker: dropped after N crashes on the same record), applies the restart policy
 * (RestartPolicy: exponential backoff for a server that keeps crashing without progress), and starts the
 * next incarnation with a new generation on the same rings, pool, clock and state.
 *
 * Why piscina: each host is a piscina pool of exactly two threads. One runs the host task; the other is
 * an idle, already loaded thread (piscina preloads the task module), so a restart is a task dispatch to
 * a warm standby, not a 25 ms worker start; and piscina replaces a dead thread by itself, in the
 * background, which becomes the next standby. (The pool replaces the thread, not the task: re-running
 * the task is the supervisor's job, which is what it wants to decide anyway.)
 */
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { makeOwner } from '../../shared-rings/pool.js';
import { RingProducer, scanRing } from '../../shared-rings/ring.js';
import { C, CRASH, EXIT_CRASH, FAULT, HostState, SLOT, SlotState, type ControlBlock } from './control.js';
import { HangMonitor, type HangMonitorOptions } from './failure-detector.js';
import { ThreadStats } from './thread-stats.js';
import type { HostTask } from './host.js';
import { CARRIES_BUFFER, DESC_BUF, DESC_EPOCH, MSG, POISON_BYTES } from './messages.js';
import { PoisonTracker, recordKey } from './poison.js';
import { RestartPolicy, type RestartPolicyOptions } from './backoff.js';
import { Histogram, seededRandom, type LatencySummary } from './stats.js';
import type { StackMemory } from './stack-memory.js';
import { ENDPOINT_ID, type ServerName } from './topology.js';

export type FaultKind = 'crash' | 'exit' | 'hang' | 'poison';
export const FAULT_KINDS: readonly FaultKind[] = ['crash', 'exit', 'hang', 'poison'];
export type DeathCause = 'crash' | 'rejection' | 'exit' | 'hang';

export interface SupervisorOptions {
  /** Heartbeat sampling period (ms). */
  sampleMs?: number;
  hang?: HangMonitorOptions;
  /** Crashes on the same input record before it is dropped as poison. */
  poisonAttempts?: number;
  restart?: RestartPolicyOptions;
  /** Seed for the restart jitter. */
  seed?: number;
}

export interface CrashInfo {
  cause: DeathCause;
  reason: string;
  stack: string;
  incarnation: number;
  atUs: number;
}

export interface ServerStats {
  thread: number;
  threadId: number;
  incarnation: number;
  state: 'starting' | 'serving' | 'recovering' | 'backoff' | 'stopped';
  restarts: Record<DeathCause, number> & { total: number };
  lastCrash: CrashInfo | null;
  recoveryMs: LatencySummary;
  detectionMs: LatencySummary;
  crashLooping: boolean;
  counters: Record<string, number>;
}

interface Slot {
  index: number;
  /** A standby task is submitted or running in this slot. */
  busy: boolean;
  /** The generation this slot's task was activated as (0: standby). */
  gen: number;
  abort: AbortController | null;
  /** Resolves when the slot's thread has exited (set when it is killed for hanging). */
  exiting: Promise<void> | null;
}

/** One stack's servers on a host (a host runs one part, or two for a co-hosted pair). */
interface Part {
  mem: StackMemory;
  /** The host's index in that stack's memory. */
  index: number;
  names: ServerName[];
}

interface Host {
  index: number;
  /** The stacks' servers it runs: one part, or two for a co-hosted pair. */
  parts: Part[];
  pool: Piscina;
  cb: ControlBlock;
  gen: number;
  slots: Slot[];
  slotWords: Int32Array;
  active: Slot | null;
  state: ServerStats['state'];
  monitor: HangMonitor;
  policy: RestartPolicy;
  hangVerdict: boolean;
  /** Scheduler stats of the host thread when it was last seen beating (see starvedNotHung). */
  sched: { atUs: number; runNs: number; waitNs: number } | null;
  /** What the last hang judgement saw of the thread (scheduler figures), for the death record. */
  hangDetail: string;
  /** The heartbeat count at the last sample. */
  lastBeat: number;
  injectedAtUs: number | null;
  verdictAtUs: number;
  /** The last incarnation a verdict was given on. */
  deadGen: number;
  /** A launch is waiting for a standby to park. */
  launching: boolean;
  startedAtUs: number;
  progressAtStart: number;
  restarts: Record<DeathCause, number> & { total: number };
  lastCrash: CrashInfo | null;
  recovery: Histogram;
  detection: Histogram;
  crashLooping: boolean;
  threadId: number;
  restartTimer: NodeJS.Timeout | null;
  servingWaiters: (() => void)[];
  /** Faults injected while the host was not serving, applied when it serves again. */
  pendingFaults: { server: ServerName; kind: FaultKind; of: StackMemory }[];
}

/** CPU a thread may use without beating before its silence is a hang, whatever the load (ns). */
const HUNG_RUN_NS = 25_000_000;
/** Longest silence excused as starvation in a row (us). */
const STARVE_MAX_US = 2_000_000;
/** Longest silence excused for a busy thread asleep in the runtime (us): see starvedNotHung. */
const BLOCKED_MAX_US = 1_000_000;

/**
 * Threads per host: the running one and two warm standbys. A poison message crashes a server several
 * times in quick succession, faster than piscina can start a replacement thread (~25 ms), so one
 * standby would leave the second retry waiting for a cold start.
 */
const THREADS_PER_HOST = 3;

/** An incarnation not serving this long after activation is declared hung. */
const START_TIMEOUT_US = 2_000_000;

/** An incarnation that served this long before dying was not crash looping. */
const HEALTHY_UPTIME_US = 100_000;

const hostFile = fileURLToPath(new URL('./host.js', import.meta.url));

export class Supervisor extends EventEmitter {
  readonly mem: StackMemory;
  private readonly hosts: Host[];
  private readonly sampleMs: number;
  private readonly poison: PoisonTracker;
  private readonly hangOpts: HangMonitorOptions | undefined;
  /** The control ring to each server, per stack (a co-hosted pair's supervisor has two stacks). */
  private readonly supRings = new Map<StackMemory, Map<ServerName, RingProducer>>();
  /** Stacks that have not stopped yet (see stop()). */
  private readonly open = new Set<StackMemory>();
  private starting: Promise<void> | null = null;
  private sampler: NodeJS.Timeout | null = null;
  private lastSampleUs = 0;
  private stopping = false;
  /** Records dropped as poison (all time), per stack. */
  private readonly poisonDroppedIn = new Map<StackMemory, number>();

  constructor(mem: StackMemory, opts: SupervisorOptions = {}) {
    super();
    this.mem = mem;
    this.sampleMs = opts.sampleMs ?? 5;
    this.hangOpts = opts.hang;
    this.poison = new PoisonTracker({ maxAttempts: opts.poisonAttempts ?? 3 });
    const random = seededRandom(opts.seed ?? 0x6b65);
    this.hosts = mem.hosts.map((names, index) => ({
      index,
      parts: [{ mem, index, names }],
      // The running host task and warm standbys (see the file header and THREADS_PER_HOST).
      pool: new Piscina({
        filename: hostFile,
        minThreads: THREADS_PER_HOST,
        maxThreads: THREADS_PER_HOST,
        idleTimeout: Infinity,
        concurrentTasksPerWorker: 1,
        // Servers need none of the application's loader hooks or flags (a test runner's, say), and
        // inheriting them makes every worker start an order of magnitude slower. (Profiling a server
        // thread: KEEPNET_CPU_PROF, in host.ts.)
        execArgv: [],
      }),
      cb: mem.control(index),
      gen: 0,
      slots: Array.from({ length: THREADS_PER_HOST }, (_, i) => ({ index: i, busy: false, gen: 0, abort: null, exiting: null })),
      slotWords: mem.slots(index),
      active: null,
      state: 'starting',
      monitor: new HangMonitor(opts.hang),
      policy: new RestartPolicy({ ...opts.restart, random }),
      hangVerdict: false,
      sched: null,
      hangDetail: '',
      lastBeat: -1,
      injectedAtUs: null,
      verdictAtUs: 0,
      deadGen: 0,
      launching: false,
      startedAtUs: 0,
      progressAtStart: 0,
      restarts: { total: 0, crash: 0, rejection: 0, exit: 0, hang: 0 },
      lastCrash: null,
      recovery: new Histogram(),
      detection: new Histogram(),
      crashLooping: false,
      threadId: -1,
      restartTimer: null,
      servingWaiters: [],
      pendingFaults: [],
    }));
    for (const h of this.hosts) {
      // A pool 'error' would otherwise kill the process; deaths are handled through task rejections.
      h.pool.on('error', (err: unknown) => this.emit('warning', err));
      h.cb.set(C.SKIP_RING, -1);
    }
    this.addRings(mem);
  }

  private addRings(mem: StackMemory): void {
    const rings = new Map<ServerName, RingProducer>();
    for (const name of mem.servers) rings.set(name, new RingProducer(mem.ring('sup', name), { wake: mem.doorbellOf(name) }));
    this.supRings.set(mem, rings);
    this.open.add(mem);
  }

  /**
   * Co-host `guest`'s servers on this stack's thread (a pair of stacks on one thread: stack-pair.ts).
   * Both stacks must have one host (placement 'shared') and the same hostBell; call before start().
   * From then on this supervisor watches both: a death of the thread is a death of both stacks' servers,
   * and every incarnation runs both.
   */
  cohost(guest: StackMemory): void {
    const h = this.hosts[0];
    if (this.starting || this.hosts.length !== 1 || guest.hosts.length !== 1 || h.parts.length !== 1) {
      throw Object.assign(new Error('co-hosting needs two unstarted stacks of one host each'), { code: 'ERR_INVALID_STATE' });
    }
    if (!guest.init.hostBell || guest.init.hostBell !== this.mem.init.hostBell) {
      throw Object.assign(new Error('co-hosted stacks must share one hostBell'), { code: 'ERR_INVALID_STATE' });
    }
    h.parts.push({ mem: guest, index: 0, names: guest.hosts[0] });
    this.addRings(guest);
  }

  /**
   * Emit an event about stack `part` of host `h`. With a co-hosted pair it carries `memory`, the stack
   * it is about (the Stack objects forward only their own), as each stack has its own 'tcp', 'ip'...
   */
  private emitAbout(h: Host, part: Part, ev: string, payload: object): void {
    this.emit(ev, h.parts.length > 1 ? { ...payload, memory: part.mem } : payload);
  }

  /** Emit a host's event once per stack it runs servers of; `make` builds it from that stack's names. */
  private emitFor(h: Host, ev: string, make: (names: ServerName[]) => object): void {
    for (const part of h.parts) this.emitAbout(h, part, ev, make(part.names));
  }

  /** The part of `h` whose input ring has index `ring` in the host loop's order (see host.ts). */
  private partOfInput(h: Host, ring: number): Part {
    let first = 0;
    for (const part of h.parts) {
      for (const name of part.names) first += part.mem.inputsOf(name).length;
      if (ring < first) return part;
    }
    return h.parts[0];
  }

  /** Start every host and resolve when all are serving (once, however many stacks share this supervisor). */
  start(): Promise<void> {
    this.starting ??= this.startHosts();
    return this.starting;
  }

  private async startHosts(): Promise<void> {
    for (const h of this.hosts) {
      this.refill(h);
      this.launch(h);
    }
    this.lastSampleUs = this.mem.clock.nowUs();
    this.sampler = setInterval(() => this.sample(), this.sampleMs);
    await Promise.all(this.hosts.map((h) => this.whenHostServing(h)));
    await this.whenArmed();
  }

  /** Resolves when every host has all its standbys parked and ready (the stack is fully armed). */
  async whenArmed(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const waiting = (h: Host): number =>
      h.slots.filter((s) => Atomics.load(h.slotWords, s.index * SLOT.WORDS + SLOT.STATE) === SlotState.WAITING).length;
    while (this.hosts.some((h) => waiting(h) < h.slots.length - 1)) {
      if (Date.now() > deadline) throw Object.assign(new Error('standby threads did not start in time'), { code: 'ETIMEDOUT' });
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private hostOf(server: ServerName, of: StackMemory = this.mem): Host {
    const h = this.hosts.find((x) => x.parts.some((p) => p.mem === of && p.names.includes(server)));
    if (!h) {
      throw Object.assign(new TypeError(`unknown server '${server}'`), { code: 'ERR_INVALID_ARG_VALUE' });
    }
    return h;
  }

  private whenHostServing(h: Host): Promise<void> {
    if (h.state === 'serving') return Promise.resolve();
    return new Promise((resolve) => h.servingWaiters.push(resolve));
  }

  /** Resolves when `server` (of stack `of`) is serving (immediately if it is). */
  whenServing(server: ServerName, of: StackMemory = this.mem): Promise<void> {
    return this.whenHostServing(this.hostOf(server, of));
  }

  /** Submit a standby task for every empty slot; it lands on an idle (or the replacement) thread. */
  private refill(h: Host): void {
    if (this.stopping) return;
    for (const slot of h.slots) {
      if (slot.busy) continue;
      slot.busy = true;
      slot.gen = 0;
      slot.abort = new AbortController();
      Atomics.store(h.slotWords, slot.index * SLOT.WORDS + SLOT.STATE, SlotState.EMPTY);
      const task: HostTask = { memory: h.parts[0].mem.init, host: h.parts[0].index, slot: slot.index };
      if (h.parts.length > 1) task.guests = h.parts.slice(1).map((p) => ({ memory: p.mem.init, host: p.index }));
      h.pool.run(task, { signal: slot.abort.signal }).then(
        () => this.onSlotEnd(h, slot, null),
        (err: unknown) => this.onSlotEnd(h, slot, err ?? new Error('host task failed')),
      );
    }
  }

  /** A standby task ended: if it was the running incarnation, that is a death; either way, refill. */
  private onSlotEnd(h: Host, slot: Slot, err: unknown): void {
    const gen = slot.gen;
    const finish = (): void => {
      slot.busy = false;
      slot.gen = 0;
      if (gen !== 0 && gen === h.gen) {
        if (err === null) h.state = 'stopped';
        else this.onDeath(h, gen, err);
      }
      this.refill(h);
    };
    // A thread killed for hanging: piscina rejects the task before the thread has actually stopped. The
    // next incarnation must not start while the old one might still touch the rings (a false alarm),
    // so wait for the thread's exit (terminate() takes a few ms).
    const exiting = slot.exiting;
    slot.exiting = null;
    if (exiting) void exiting.then(finish);
    else finish();
  }

  /**
   * Start the next incarnation: activate a warm standby (a shared-memory wake-up). If none is waiting
   * yet (several deaths in a row outran thread replacement), wait for the first one to park.
   */
  private launch(h: Host): void {
    if (this.stopping || h.launching) return;
    const words = h.slotWords;
    if (process.env.KEEPNET_DEBUG_SLOTS) console.error('launch', h.index, h.slots.map((s) => `${s.index}:${s.busy ? 'b' : '-'}${Atomics.load(words, s.index * SLOT.WORDS)}g${s.gen}`).join(' '));
    const waiting = (s: Slot): boolean => s.busy && Atomics.load(words, s.index * SLOT.WORDS + SLOT.STATE) === SlotState.WAITING;
    // After a thrown error the thread that ran the dead incarnation is back on standby and still on a
    // core: re-activating it skips a thread wake-up (and its cold caches).
    const slot = h.active && waiting(h.active) ? h.active : h.slots.find(waiting);
    if (!slot) {
      h.launching = true;
      const pending = h.slots.filter((s) => s.busy);
      if (pending.length === 0) this.refill(h);
      // Wake when a queued standby task parks (its slot leaves EMPTY), or after a short timer: never
      // spin through microtasks, which would starve the events that bring replacement threads.
      const waits: Promise<unknown>[] = [new Promise((r) => setTimeout(r, 5))];
      for (const s of pending) {
        const w = Atomics.waitAsync(words, s.index * SLOT.WORDS + SLOT.STATE, SlotState.EMPTY, 50);
        if (w.async) waits.push(w.value);
      }
      void Promise.race(waits).then(() => {
        h.launching = false;
        this.launch(h);
      });
      return;
    }
    h.gen = (h.gen + 1) & 0x7fffffff || 1;
    const gen = h.gen;
    h.cb.resetForIncarnation(gen);
    h.hangVerdict = false;
    h.monitor = new HangMonitor(this.hangOpts);
    h.progressAtStart = h.cb.get(C.PROGRESS);
    h.active = slot;
    slot.gen = gen;
    h.startedAtUs = this.mem.clock.nowUs();
    h.policy.onStart(h.startedAtUs);
    this.watchForDeath(h, gen);
    const base = slot.index * SLOT.WORDS;
    Atomics.store(words, base + SLOT.GEN, gen);
    Atomics.store(words, base + SLOT.STATE, SlotState.ACTIVATED);
    Atomics.notify(words, base + SLOT.STATE);
  }

  /**
   * A dying host writes why into its control block and bumps CRASH_SEQ before it exits; waiting on
   * that word gives the verdict at once, without waiting for the thread's teardown and exit event
   * (the task's rejection, which comes later, then finds the generation moved on and is ignored).
   * Deaths that write nothing (a thread killed from outside) still arrive through the rejection.
   */
  private watchForDeath(h: Host, gen: number, seq = h.cb.get(C.CRASH_SEQ)): void {
    const w = Atomics.waitAsync(h.cb.i32, C.CRASH_SEQ, seq);
    const check = (): void => {
      if (h.gen !== gen || this.stopping) return;
      const now = h.cb.get(C.CRASH_SEQ);
      if (h.cb.get(C.CRASH_KIND) !== CRASH.NONE && h.cb.get(C.CRASH_GEN) === gen) this.onDeath(h, gen, null);
      // A late record from a predecessor (not ours): wait for the next one, never re-enter at once.
      else this.watchForDeath(h, gen, now);
    };
    if (w.async) void w.value.then(check);
    else setImmediate(check);
  }

  /** The verdict on a dead incarnation: record why, reclaim, decide about poison, restart. */
  private onDeath(h: Host, gen: number, err: unknown): void {
    // One verdict per incarnation: the crash record and the task's rejection both report the same death.
    if (h.gen !== gen || this.stopping || h.deadGen === gen) return;
    this.noteServing(h, gen); // it may have begun serving between two samples
    h.deadGen = gen;
    // The slot that ran it is a standby again (after a thrown error its thread parks for reuse) or
    // its task is ending (the thread exited); either way it no longer runs this generation.
    if (h.active && h.active.gen === gen) h.active.gen = 0;
    const now = this.mem.clock.nowUs();
    h.verdictAtUs = now;
    const rec = h.cb.readCrash();
    const crash = rec.gen === gen ? rec : { kind: CRASH.NONE, text: '', gen };
    let cause: DeathCause;
    if (h.hangVerdict) cause = 'hang';
    else if (crash.kind === CRASH.THROW) cause = 'crash';
    else if (crash.kind === CRASH.REJECTION) cause = 'rejection';
    else cause = 'exit';
    const [reason, ...stackLines] = crash.text
      ? crash.text.split('\n')
      : [cause === 'hang' ? `hung: heartbeat stopped while busy${h.hangDetail ? ` (${h.hangDetail})` : ''}` : String((err as Error)?.message ?? err)];
    const info: CrashInfo = { cause, reason, stack: stackLines.join('\n'), incarnation: gen, atUs: now };
    h.lastCrash = info;
    h.restarts[cause]++;
    h.restarts.total++;
    if (h.injectedAtUs !== null) {
      h.detection.record((now - h.injectedAtUs) / 1000);
      h.injectedAtUs = null;
    }

    const inflRing = h.cb.get(C.INFL_RING);
    const inflPos = h.cb.get(C.INFL_POS);
    const reclaimed = this.reclaimBuffers(h, gen);

    // The record it died on: poison after repeated crashes on it.
    const key = inflRing >= 0 ? recordKey(inflRing, inflPos) : null;
    const progressed = h.cb.get(C.PROGRESS) !== h.progressAtStart;
    // (Progress on other records does not clear a suspect: the tracker compares record keys.)
    const verdict = this.poison.onCrash(h.index, key, reason);
    // Progress: it handled input, or it served long enough that this is no crash loop (a server killed
    // now and then by faults that are not its own doing, on an idle stack, is not crash looping).
    const uptimeUs = now - h.startedAtUs;
    const decision = h.policy.onCrash(now, progressed || verdict === 'drop' || uptimeUs >= HEALTHY_UPTIME_US);
    h.crashLooping = decision.crashLooping;
    for (const part of h.parts) {
      for (const name of part.names) this.emitAbout(h, part, 'death', { server: name, ...info, reclaimed });
    }
    if (verdict === 'drop' && key !== null) {
      h.cb.set(C.SKIP_POS, inflPos);
      h.cb.set(C.SKIP_RING, inflRing);
      this.poison.forget(h.index);
      const part = this.partOfInput(h, inflRing);
      this.poisonDroppedIn.set(part.mem, (this.poisonDroppedIn.get(part.mem) ?? 0) + 1);
      const at = { ring: inflRing, position: inflPos, attempts: this.poison.maxAttempts, reason };
      this.emitAbout(h, part, 'poison', { server: part.names.join('+'), ...at });
    }

    if (decision.crashLooping) this.emitFor(h, 'crash-loop', (servers) => ({ servers, streak: decision.streak, delayUs: decision.delayUs }));

    if (decision.delayUs > 0) {
      h.state = 'backoff';
      h.restartTimer = setTimeout(() => {
        h.restartTimer = null;
        if (!this.stopping) {
          h.state = 'recovering';
          this.launch(h);
        }
      }, decision.delayUs / 1000);
    } else {
      h.state = 'recovering';
      this.launch(h);
    }
  }

  /** If incarnation `gen` has begun serving and that was not noted yet, note it (and its recovery time). */
  private noteServing(h: Host, gen: number): void {
    if (h.state !== 'starting' && h.state !== 'recovering') return;
    const serving = h.cb.servingSinceUs;
    if (!(serving > 0) || h.cb.get(C.GEN) !== gen || gen !== h.gen) return;
    if (h.state === 'recovering') {
      const ms = Math.max(0, serving - h.verdictAtUs) / 1000;
      h.recovery.record(ms);
      for (const part of h.parts) {
        for (const name of part.names) this.emitAbout(h, part, 'recovered', { server: name, incarnation: gen, recoveryMs: ms });
      }
    }
    h.state = 'serving';
    h.threadId = h.cb.get(C.THREAD_ID);
    h.sched = null; // a new thread (or a new incarnation on it): its scheduler stats start afresh
    for (const w of h.servingWaiters.splice(0)) w();
    const pending = h.pendingFaults.shift();
    if (pending) this.applyFault(h, pending.server, pending.kind, pending.of);
  }

  /**
   * The buffers a dead incarnation owned: those still referenced by records it published (in its output
   * rings, not yet claimed by their receivers) and by the head records of its input rings (to be
   * handled again) move to the server's transit owner, where the receiver or the next incarnation claims them; all the
   * others (its private queues, its empty receive buffers) are freed. Nothing leaks, nothing in a ring
   * is lost, nothing is freed twice (every move is a CAS from the dead owner).
   */
  private reclaimBuffers(h: Host, gen: number): number {
    let reclaimed = 0;
    for (const part of h.parts) reclaimed += this.reclaimPart(part, gen);
    return reclaimed;
  }

  private reclaimPart(part: Part, gen: number): number {
    const { mem, names } = part;
    const pools = mem.pools;
    for (const name of names) {
      const id = ENDPOINT_ID[name];
      const dead = makeOwner(id, gen & 0xffff || 1);
      const transit = makeOwner(id, 0);
      const keep = (tag: number, bytes: Uint8Array, off: number, len: number): void => {
        if ((tag & CARRIES_BUFFER) === 0 || len < DESC_EPOCH + 4) return;
        const dv = new DataView(bytes.buffer, bytes.byteOffset + off, len);
        const buf = dv.getInt32(DESC_BUF, true);
        if (buf >= 0 && pools.epochOf(buf) === dv.getInt32(DESC_EPOCH, true) >>> 0) pools.transfer(buf, dead, transit);
      };
      for (const to of mem.outputsOf(name)) scanRing(mem.ring(name, to), keep);
      // The head record of every input ring: the only ones it (or a predecessor) may have claimed a
      // buffer for without committing the record; the next incarnation handles them again.
      for (const from of mem.inputsOf(name)) scanRing(mem.ring(from, name), keep, undefined, 1);
    }
    let reclaimed = 0;
    for (const name of names) reclaimed += pools.reclaim(makeOwner(ENDPOINT_ID[name], gen & 0xffff || 1));
    return reclaimed;
  }

  /**
   * A silent, busy thread is hung only if it had the CPU and did not beat, or could not run for a
   * reason of its own (blocked). On 2 cores with more runnable threads than cores, a thread can wait
   * on the run queue for longer than the detector's threshold: that is starvation, not a hang (the
   * issue: no false suspicion under 2-core contention). The kernel's per-thread scheduler stats tell
   * them apart: since the thread was last seen beating, a hung loop has run (it burns its share of
   * the CPU without beating), a starved thread has waited on the run queue without running, and a
   * blocked thread has done neither. Starvation is excused for at most STARVE_MAX_US of silence,
   * a block for at most BLOCKED_MAX_US.
   */
  private starvedNotHung(h: Host, now: number): boolean {
    const before = h.sched;
    h.hangDetail = '';
    if (!before) return false;
    const tid = h.cb.get(C.OS_TID);
    const st = this.threadStats.schedstat(h.index, tid);
    if (!st) return false;
    const silenceUs = now - before.atUs;
    const elapsedNs = silenceUs * 1000;
    const ranNs = st.runNs - before.runNs;
    const waitedNs = st.waitNs - before.waitNs;
    const state = this.threadStats.state(tid);
    // What the verdict was based on, for the death record: a false verdict must be diagnosable.
    h.hangDetail =
      `ran ${(ranNs / 1e6).toFixed(1)} ms and waited for a CPU ${(waitedNs / 1e6).toFixed(1)} ms of ` +
      `${(elapsedNs / 1e6).toFixed(1)} ms without a beat; thread state ${state || '?'}`;
    // It had the CPU and did not beat: a hung loop, whatever else is going on.
    if (ranNs >= HUNG_RUN_NS) return false;
    // Runnable (R) but not running enough to beat: starved, either on the run queue or, in a virtual
    // machine, by the hypervisor taking the vCPU (steal time counts neither as run nor as wait).
    // Asleep (S/D) while claiming to be busy: blocked inside the runtime, not in our code, which only
    // ever sleeps parked. Seen in a 10,000-connection soak: the tcp thread slept 106 ms with 0 ms run
    // (V8 waits for its platform's shared helper threads, e.g. parallel GC, which the main thread's
    // big heap keeps busy). A deadlock never ends; such a wait does: excused for a bounded time.
    const runnable = state === 'R' || waitedNs >= elapsedNs / 2;
    if (silenceUs >= (runnable ? STARVE_MAX_US : BLOCKED_MAX_US)) return false;
    this.starvationExcused++;
    return true;
  }

  /** Hang verdicts withheld because the silent thread was starved of CPU, not hung (all time). */
  starvationExcused = 0;

  /** The host threads' scheduler figures from /proc (descriptors kept open: thread-stats.ts). */
  private readonly threadStats = new ThreadStats();

  /** The verdict "hung": terminate the thread (via its task's abort signal), and note when it is gone. */
  private killHung(h: Host, s: { phi: number; silenceUs: number }): void {
    h.hangVerdict = true;
    this.emitFor(h, 'hang', (servers) => ({ servers, phi: s.phi, silenceMs: s.silenceUs / 1000, detail: h.hangDetail }));
    const slot = h.active;
    if (!slot) return;
    const tid = h.cb.get(C.THREAD_ID);
    const worker = h.pool.threads.find((w) => w.threadId === tid);
    if (worker) {
      slot.exiting = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        worker.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    slot.abort?.abort();
  }

  /** Sample every host: notice new incarnations serving, and judge hangs. */
  private sample(): void {
    const now = this.mem.clock.nowUs();
    const lagUs = Math.max(0, now - this.lastSampleUs - this.sampleMs * 1000);
    this.lastSampleUs = now;
    for (const h of this.hosts) {
      const state = h.cb.get(C.STATE);
      if (h.state === 'starting' || h.state === 'recovering') {
        if (h.gen !== h.deadGen) this.noteServing(h, h.gen);
        // An incarnation that never begins serving (a start() that hangs) is a hang too.
        if ((h.state as string) !== 'serving' && h.active && h.active.gen === h.gen && h.gen !== h.deadGen && !h.hangVerdict && now - h.startedAtUs > START_TIMEOUT_US) {
          h.hangDetail = `not serving ${((now - h.startedAtUs) / 1000).toFixed(0)} ms after its start`;
          this.killHung(h, { phi: Infinity, silenceUs: now - h.startedAtUs });
        }
        continue;
      }
      if (h.state !== 'serving' || h.hangVerdict) continue;
      if (h.crashLooping && h.policy.onHealthy(now)) h.crashLooping = false;
      const beat = h.cb.get(C.BEAT);
      const s = h.monitor.sample(now, beat, state, lagUs);
      if (beat !== h.lastBeat) {
        // Seen beating: remember how much CPU the thread had had by now (see starvedNotHung).
        h.lastBeat = beat;
        const st = this.threadStats.schedstat(h.index, h.cb.get(C.OS_TID));
        h.sched = st ? { atUs: now, runNs: st.runNs, waitNs: st.waitNs } : null;
      }
      if (s.verdict === 'ok') {
      } else if (s.verdict === 'hung' && this.starvedNotHung(h, now)) {
        h.monitor.rearm(now);
        this.emitFor(h, 'suspect', (servers) => ({ servers, phi: s.phi, silenceMs: s.silenceUs / 1000, starved: true }));
      } else if (s.verdict === 'hung') {
        this.killHung(h, s);
      } else if (s.verdict === 'suspect') {
        this.emitFor(h, 'suspect', (servers) => ({ servers, phi: s.phi, silenceMs: s.silenceUs / 1000 }));
      }
    }
  }

  /**
   * Inject a fault into a server of stack `of` (a feature: crash-recovery demos and fault campaigns).
   * All but poison hit the server's thread, and so every server on it.
   */
  inject(server: ServerName, kind: FaultKind, of: StackMemory = this.mem): void {
    if (!(FAULT_KINDS as readonly string[]).includes(kind)) {
      throw Object.assign(new TypeError(`fault kind must be one of ${FAULT_KINDS.join(', ')}, got '${kind}'`), {
        code: 'ERR_INVALID_ARG_VALUE',
      });
    }
    const h = this.hostOf(server, of);
    if (h.state !== 'serving') {
      // Starting, recovering or backing off: the fault is applied when the next incarnation serves
      // (injecting into the control block now would be wiped by its reset).
      h.pendingFaults.push({ server, kind, of });
      return;
    }
    this.applyFault(h, server, kind, of);
  }

  private applyFault(h: Host, server: ServerName, kind: FaultKind, of: StackMemory): void {
    if (h.injectedAtUs === null) h.injectedAtUs = this.mem.clock.nowUs();
    if (kind === 'poison') {
      this.postControl(server, MSG.POISON, 0, of);
      return;
    }
    h.cb.set(C.INJECT, kind === 'crash' ? FAULT.CRASH : kind === 'exit' ? FAULT.EXIT : FAULT.HANG);
    of.doorbellOf(server).ring();
  }

  /**
   * Send a control message (no payload beyond the header) to `server` through the supervisor's control
   * ring, addressed to incarnation `dstGen` (0: whichever runs). A message addressed to an incarnation
   * that has died is dropped by the receiver as stale.
   */
  postControl(server: ServerName, type: number, dstGen: number, of: StackMemory = this.mem): void {
    const ring = this.supRings.get(of)?.get(server);
    if (!ring) throw Object.assign(new TypeError(`unknown server '${server}'`), { code: 'ERR_INVALID_ARG_VALUE' });
    const off = ring.reserve(POISON_BYTES, type);
    if (off < 0) throw Object.assign(new Error(`control ring to ${server} is full`), { code: 'ENOBUFS' });
    ring.bytes.fill(0, off, off + POISON_BYTES);
    new DataView(ring.bytes.buffer, ring.bytes.byteOffset + off, POISON_BYTES).setInt32(0, dstGen, true);
    ring.commit();
    ring.flush();
  }

  /** The running incarnation of a server (of stack `of`). */
  incarnation(server: ServerName, of: StackMemory = this.mem): number {
    return this.hostOf(server, of).gen;
  }

  /** Per-server statistics of stack `of`. */
  stats(of: StackMemory = this.mem): Record<ServerName, ServerStats> {
    const out = {} as Record<ServerName, ServerStats>;
    for (const h of this.hosts) {
      for (const part of h.parts) {
        if (part.mem !== of) continue;
        for (const name of part.names) {
          out[name] = {
            thread: h.index,
            threadId: h.threadId,
            incarnation: h.gen,
            state: h.state,
            restarts: { ...h.restarts },
            lastCrash: h.lastCrash,
            recoveryMs: h.recovery.summary(),
            detectionMs: h.detection.summary(),
            crashLooping: h.crashLooping,
            counters: of.counters(name).snapshot(),
          };
        }
      }
    }
    return out;
  }

  /** Records dropped as poison (all time), from every stack's rings. */
  get poisonDropped(): number {
    let n = 0;
    for (const v of this.poisonDroppedIn.values()) n += v;
    return n;
  }

  /** Records dropped as poison from the rings of stack `of`. */
  poisonDroppedOf(of: StackMemory = this.mem): number {
    return this.poisonDroppedIn.get(of) ?? 0;
  }

  /** All hosts' recovery and detection times merged. */
  latencies(): { recoveryMs: LatencySummary; detectionMs: LatencySummary } {
    const r = new Histogram();
    const d = new Histogram();
    for (const h of this.hosts) {
      r.merge(h.recovery);
      d.merge(h.detection);
    }
    return { recoveryMs: r.summary(), detectionMs: d.summary() };
  }

  /**
   * Stop every host (they finish the record in hand and flush), then the thread pools. With a co-hosted
   * pair, each stack stops its part (`of`): the thread stops when the last of them has, as the other's
   * servers are still serving on it.
   */
  async stop(of: StackMemory = this.mem): Promise<void> {
    this.open.delete(of);
    if (this.stopping || this.open.size > 0) return;
    this.stopping = true;
    if (this.sampler) clearInterval(this.sampler);
    this.threadStats.close();
    for (const h of this.hosts) {
      if (h.restartTimer) clearTimeout(h.restartTimer);
      h.cb.set(C.STOP, 1);
      for (const slot of h.slots) {
        if (slot !== h.active) {
          Atomics.store(h.slotWords, slot.index * SLOT.WORDS + SLOT.STATE, SlotState.CANCELLED);
          Atomics.notify(h.slotWords, slot.index * SLOT.WORDS + SLOT.STATE);
        }
      }
      h.parts[0].mem.doorbellOf(h.parts[0].names[0]).ring();
    }
    // Give each host a moment to finish its record and flush, then tear the thread pools down.
    const deadline = Date.now() + 500;
    while (Date.now() < deadline && this.hosts.some((h) => h.state === 'serving' && h.cb.get(C.STATE) !== HostState.STOPPED)) {
      await new Promise((r) => setTimeout(r, 2));
    }
    await Promise.all(this.hosts.map((h) => h.pool.destroy()));
  }
}

export { EXIT_CRASH, FAULT };
