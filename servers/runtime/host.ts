/**
 * The host loop: what runs on a server's worker thread. It is a piscina task (see supervisor.ts for
 * why piscina) that never returns while the stack runs. It runs the servers of one stack's host, or
 * those of both stacks of a co-hosted pair (HostTask.guests: kernel-shim/stack-pair.ts).
 *
 * Call order, per incarnation:
 *   1. attach to the stack memory (clock, pool, rings, control block): nothing is created here, so a new
 *      incarnation finds every ring, buffer and counter exactly as its predecessor left them;
 *   2. start() each server of this host, publish the generation and the time serving began;
 *   3. loop until told to stop:
 *        - a pending fault injection (crash / exit / hang) is carried out;
 *        - every input ring is drained in turn: peek, record the in-flight record in the control block,
 *          handle, flush the handling server's outputs, commit (so a crash leaves exactly that record to
 *          be seen again), beat every few records; a record the supervisor marked as poison is
 *          committed without being handled; passes over the rings repeat (a few at most) while they
 *          bring records, as one server's output is often the next one's input on this thread, and
 *          frames that reached a link meanwhile (a co-hosted wire's) are received between passes;
 *        - timers: poll() each server;
 *        - flush every output ring once (batched publication); a turn that did work is followed by
 *          another at once if there is news, else by the busy poll below;
 *        - nothing to do: busy poll for news from other threads a little while (up to the stack's
 *          busyPollUs, adaptive, yielding the core between checks; never past the next timer), then
 *          publish PARKED and park on the host's doorbell (every ring into this host rings it) until
 *          news or the next timer.
 * A handler that throws ends the incarnation: the crash reason and stack are written to the control
 * block, then the thread exits so the next incarnation gets a fresh isolate (the supervisor re-runs the
 * task on the warm standby thread).
 */
import { readlinkSync, writeFileSync } from 'node:fs';
import inspector from 'node:inspector';
import { isMainThread, threadId } from 'node:worker_threads';
import { makeOwner } from '../../shared-rings/pool.js';
import { RingConsumer, RingProducer } from '../../shared-rings/ring.js';
import { checksum } from '../wire/checksum.js';
import { C, CRASH, EXIT_CRASH, FAULT, HostState, SLOT, SlotState, type ControlBlock } from './control.js';
import { busyPollerFor } from './busy-poll.js';
import { K, type Counters } from './counters.js';
import { CARRIES_BUFFER, DESC_BUF, DESC_EPOCH, HDR_DST_GEN, HDR_SRC_GEN, MSG, PROBE, rd32, wr32 } from './messages.js';
import type { ServerContext, ServerModule } from './server.js';
import { createStackMemory, StackMemory, type StackMemoryInit } from './stack-memory.js';
import { ENDPOINT_BY_ID, ENDPOINT_ID, linkName, type Endpoint, type ServerName } from './topology.js';
import { serverModule } from '../registry.js';

/** The piscina task: a standby for host `host` in standby slot `slot` (see control.ts). */
export interface HostTask {
  memory: StackMemoryInit;
  host: number;
  slot: number;
  /**
   * Hosts of other stacks that run on this thread too (a co-hosted pair: kernel-shim/stack-pair.ts).
   * Their servers join this loop on their own stack memories; the thread's control block, slots and
   * doorbell are the first host's (every stack of the thread has the same doorbell: hostBell).
   */
  guests?: { memory: StackMemoryInit; host: number }[];
}

/** One stack's host among those a thread runs. */
interface Part {
  mem: StackMemory;
  host: number;
}

export type HostResult = { stopped: true } | { cancelled: true };


interface Input {
  ring: RingConsumer;
  from: Endpoint;
  server: ServerModule;
  ctx: ServerContext;
  index: number;
  /**
   * The output rings of the server this ring feeds: all a record handled from it can write to (a server
   * writes only through its own context), so the only ones to mark, rewind and flush per record.
   */
  outs: RingProducer[];
  /** Their write positions before the record in hand (to rewind to if it is refused; one per server). */
  marks: Int32Array;
  /**
   * The ring's producer when it is a server on this thread (null: the shim or the supervisor, on
   * other threads), and its flush count when this ring was last peeked: a later pass over the rings
   * peeks this one again only if that producer has published since (see the drain in runHost).
   */
  local: RingProducer | null;
  seen: number;
  /** Position of a record offered before and refused for backpressure: offered again, it is a retry. */
  retryPos: number;
  /**
   * The ring's read position when this incarnation attached: only that record can have been partly
   * handled by a predecessor (any number of them, if several died in a row), so only it is a replay.
   */
  head: number;
}

/** Passes over the input rings per turn of the loop, at most (see the drain in runHost). */
const DRAIN_PASSES = 4;
/** Records between heartbeats while draining rings (a beat is one uncontended atomic add). */
const BEAT_EVERY = 4;

/** This thread's OS thread id (Linux: /proc/thread-self -> PID/task/TID), 0 elsewhere. */
const OS_TID = ((): number => {
  try {
    return Number(/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'))?.[1] ?? 0);
  } catch {
    return 0;
  }
})();
const MAX_PARK_MS = 1000;
/** Incarnations one thread may run (after thrown errors) before it exits for a fresh isolate. */
const SOFT_RESTARTS_PER_THREAD = 8;
const BACKPRESSURE_PARK_MS = 1;

let control: ControlBlock | undefined;
/** The running incarnation's drop helper (dispatch uses it for records it drops). */
let dropRecordBuffer: (input: Input) => void = () => {};
let myGen = 0;
let crashRecorded = false;

/** Record why this incarnation is ending (once), unless a successor already owns the control block. */
function recordCrash(kind: number, text: string): void {
  if (crashRecorded || !control) return;
  crashRecorded = true;
  if (control.get(C.GEN) !== myGen) return;
  control.writeCrash(kind, text, myGen);
}

/** First line: the reason; the rest: the stack frames. */
function crashText(err: unknown): string {
  return err instanceof Error ? `${err.message}\n${(err.stack ?? '').split('\n').slice(1).join('\n')}` : String(err);
}

function die(kind: number, err: unknown): never {
  recordCrash(kind, crashText(err));
  process.exit(EXIT_CRASH);
}

// Crashes outside the loop's try/catch (asynchronous code in a server) end the incarnation the same way.
// Only on a server's own thread: importing this module elsewhere must not touch the process's handlers.
if (!isMainThread) {
  process.on('uncaughtException', (err) => die(CRASH.THROW, err));
  process.on('unhandledRejection', (err) => die(CRASH.REJECTION, err));
  // process.exit() called by server code: record it (unless a crash was already recorded) so the
  // supervisor learns of it at once rather than when the thread's exit event arrives.
  process.on('exit', (code) => {
    if (control && control.get(C.STATE) !== HostState.STOPPED) recordCrash(CRASH.EXIT, `process.exit(${code}) in a server's worker`);
  });
}

class InjectedCrash extends Error {
  constructor() {
    super('injected crash: a handler threw');
    this.name = 'InjectedCrash';
  }
}

/**
 * The piscina task: attach to the stack memory ahead of time, park as a warm standby, and when the
 * supervisor activates this slot, become the host's running incarnation until told to stop.
 */
export default function hostTask(task: HostTask): HostResult {
  const mem = new StackMemory(task.memory);
  const parts: Part[] = [{ mem, host: task.host }, ...(task.guests ?? []).map((g) => ({ mem: new StackMemory(g.memory), host: g.host }))];
  rehearse(mem.hosts, task.host);
  const slots = mem.slots(task.host);
  const base = task.slot * SLOT.WORDS;
  for (let incarnations = 0; ; incarnations++) {
    Atomics.store(slots, base + SLOT.STATE, SlotState.WAITING);
    Atomics.notify(slots, base + SLOT.STATE);
    for (;;) {
      const st = Atomics.load(slots, base + SLOT.STATE);
      if (st === SlotState.ACTIVATED) break;
      if (st === SlotState.CANCELLED) return { cancelled: true };
      Atomics.wait(slots, base + SLOT.STATE, st, 1000);
    }
    const gen = Atomics.load(slots, base + SLOT.GEN);
    if (runHost(parts, gen) === 'stopped') return { stopped: true };
    // A handler threw. The servers' state lives in shared memory and the next incarnation gets fresh
    // server contexts, so this thread can serve again at once as a standby (a restart in ~0.1 ms
    // instead of a thread start). Every few soft restarts the thread exits anyway, so that nothing a
    // crashing server left on this isolate's heap can accumulate.
    if (incarnations + 1 >= SOFT_RESTARTS_PER_THREAD) process.exit(EXIT_CRASH);
  }
}

/**
 * Run the host loop once on a private, throwaway stack memory with the same placement, so that V8 has
 * compiled the whole start-up and loop path before this standby is activated: a standby's first
 * activation then costs a wake-up and ring attachment, not lazy compilation. Nothing shared is touched.
 */
/** Set while a standby rehearses (no profile of a rehearsal is written). */
let rehearsing = false;

function rehearse(hosts: ServerName[][], host: number): void {
  rehearsing = true;
  try {
    const mem = new StackMemory(createStackMemory({ placement: hosts, tcpInstances: hosts.flat().filter((n) => n.startsWith('tcp')).length, ringCapacity: 1024, poolBuffers: 8, poolBufferSize: 256, bigBuffers: 2, bigBufferSize: 4096, tcp: { maxConnections: 2, bufferBytes: 4096 } }));
    mem.control(host).set(C.STOP, 1);
    for (let i = 0; i < 3; i++) runHost([{ mem, host }], 1);
  } catch {
    // Best effort: a standby that could not rehearse is merely slower on its first activation.
  }
  rehearsing = false;
  control = undefined;
}

/**
 * Run the servers of `parts` (one stack's host, or the hosts of a co-hosted pair) as incarnation
 * `generation` until told to stop. The first part's control block is the thread's.
 */
function runHost(parts: Part[], generation: number): 'stopped' | 'crashed' {
  const cb = parts[0].mem.control(parts[0].host);
  control = cb;
  myGen = generation;
  crashRecorded = false;
  if (parts.length > 1 && !parts.every((p) => p.mem.init.hostBell)) throw new Error('co-hosted stacks need a shared hostBell');
  // Every server of the thread, in order (the first part's, then each guest's), with its part.
  const names: ServerName[] = [];
  const partOf: number[] = [];
  parts.forEach((p, k) => {
    for (const n of p.mem.hosts[p.host]) {
      names.push(n);
      partOf.push(k);
    }
  });
  // Resolved once: the loop below calls them on every iteration.
  const modules: ServerModule[] = names.map(serverModule);
  /** The servers with news outside the rings (a driver's link: ServerModule.pending), by index. */
  const linked: number[] = [];
  for (let i = 0; i < modules.length; i++) if (modules[i].pending) linked.push(i);
  /** Each server's output rings, by index. */
  const serverOuts: RingProducer[][] = [];
  const gen = generation;
  // Each stack has its own clock page: the loop keeps time on the first's, and polls every server on
  // its own stack's (skew: how far each part's clock is ahead of the first's, read every iteration).
  const clock = parts[0].mem.clock;
  const clocks = parts.map((p) => p.mem.clock);
  const skew = new Float64Array(parts.length);
  const doorbell = parts[0].mem.doorbellOf(names[0]);
  doorbell.reset();

  const contexts: ServerContext[] = [];
  const inputs: Input[] = [];
  const outputs: RingProducer[] = [];
  const counters: Counters[] = [];
  /** This thread's producers by part and link, to find each input ring's local producer. */
  const producers = new Map<string, RingProducer>();
  const inputKeys: string[] = [];
  for (let s = 0; s < names.length; s++) {
    const name = names[s];
    const mem = parts[partOf[s]].mem;
    const pools = mem.pools;
    const id = ENDPOINT_ID[name];
    const out = new Map<Endpoint, RingProducer>();
    const outs: RingProducer[] = [];
    for (const to of mem.outputsOf(name)) {
      const p = new RingProducer(mem.ring(name, to), { generation: gen, wake: mem.doorbellOf(to) });
      out.set(to, p);
      outputs.push(p);
      outs.push(p);
      producers.set(`${partOf[s]}:${linkName(name, to)}`, p);
    }
    const transitOwner = makeOwner(id, 0);
    const ctx: ServerContext = {
      name,
      id,
      generation: gen,
      owner: makeOwner(id, gen & 0xffff || 1),
      transitOwner,
      clock: mem.clock,
      pools,
      out,
      counters: mem.counters(name),
      config: mem.init.config,
      state: mem.init.state[name],
      claim(buf: number, epoch: number): boolean {
        const owner = makeOwner(id, gen & 0xffff || 1);
        // A record refused earlier for backpressure claimed its buffer then: ours already. Asked first,
        // so that the sender-side transfers below do not fail and count as pool anomalies (badTransfer:
        // 7779 in 2 s of bulk against a full wire before this check).
        if (replaying && pools.ownerOf(buf) === owner) return pools.epochOf(buf) === epoch >>> 0;
        if (pools.claimFrom(buf, epoch, ENDPOINT_ID[current.from], current.srcGen, owner)) return true;
        if (!replaying) return false;
        // Re-handling the record our predecessor died on: its claim was moved to our transit owner
        // (transit owners carry generation 0).
        if (pools.transfer(buf, transitOwner, owner)) {
          if (pools.epochOf(buf) === epoch >>> 0) return true;
          pools.transfer(buf, owner, transitOwner);
        }
        return false;
      },
      beat(): void {
        Atomics.add(cb.i32, C.BEAT, 1);
      },
    };
    contexts.push(ctx);
    serverOuts.push(outs);
    counters.push(ctx.counters);
    const server = modules[s];
    const marks = new Int32Array(outs.length);
    for (const from of mem.inputsOf(name)) {
      const ring = new RingConsumer(mem.ring(from, name), { generation: gen, doorbell });
      inputs.push({ ring, from, server, ctx, index: inputs.length, outs, marks, local: null, seen: 0, retryPos: NaN, head: ring.position });
      inputKeys.push(`${partOf[s]}:${linkName(from, name)}`);
    }
  }
  for (let i = 0; i < inputs.length; i++) inputs[i].local = producers.get(inputKeys[i]) ?? null;
  /** The rings other threads publish to (the shim's, the supervisor's), and those this thread does. */
  const remoteRings = inputs.filter((x) => x.local === null).map((x) => x.ring);
  const localRings = inputs.filter((x) => x.local !== null).map((x) => x.ring);

  cb.set(C.THREAD_ID, threadId);
  cb.set(C.OS_TID, OS_TID);
  cb.set(C.STATE, HostState.BUSY);
  Atomics.add(cb.i32, C.BEAT, 1);

  /** Free the buffer a record being dropped carries (so a drop never leaks one). */
  const dropBuffer = (input: Input): void => {
    const ring = input.ring;
    if ((ring.tag & CARRIES_BUFFER) === 0 || ring.length < DESC_EPOCH + 4) return;
    const buf = rd32(ring.bytes, ring.offset + DESC_BUF);
    if (buf >= 0 && input.ctx.claim(buf, rd32(ring.bytes, ring.offset + DESC_EPOCH))) input.ctx.pools.free(buf, input.ctx.owner);
  };
  dropRecordBuffer = dropBuffer;
  /**
   * Safety net after a handler accepted a record: a buffer it carries must have been claimed (and then
   * kept, forwarded or freed). One still held by the sender was ignored by the handler: claim and free
   * it, counted, rather than leak it.
   */
  const reapUnclaimed = (input: Input): void => {
    const ring = input.ring;
    if ((ring.tag & CARRIES_BUFFER) === 0 || ring.length < DESC_EPOCH + 4) return;
    const buf = rd32(ring.bytes, ring.offset + DESC_BUF);
    if (buf < 0) return;
    const pools = input.ctx.pools;
    const o = pools.ownerOf(buf);
    const sender = ENDPOINT_ID[current.from];
    if (o !== makeOwner(sender, current.srcGen & 0xffff || 1) && o !== makeOwner(sender, 0)) return;
    if (input.ctx.claim(buf, rd32(ring.bytes, ring.offset + DESC_EPOCH))) {
      pools.free(buf, input.ctx.owner);
      input.ctx.counters.add(K.unknownDropped);
    }
  };
  let inFlight: Input | null = null;
  /** The record being handled: who sent it, as which incarnation (claim() needs both). */
  const current = { from: 'sup' as Endpoint, srcGen: 0 };
  let replaying = false;
  const stopOrFault = (): boolean => Atomics.load(cb.i32, C.STOP) !== 0 || Atomics.load(cb.i32, C.INJECT) !== FAULT.NONE;
  /**
   * News from other threads: a stop, a fault to inject, a record from the shim or the supervisor, a
   * frame on a link. The busy poll checks only these: the other rings are this thread's own, and
   * nothing can reach them while it polls.
   */
  const remoteNews = (): boolean => {
    if (stopOrFault()) return true;
    for (let i = 0; i < remoteRings.length; i++) if (remoteRings[i].peek() >= 0) return true;
    // News outside the rings (the driver's link): its producer rings our doorbell only once we have
    // announced the park, so what arrived since poll() looked must be checked here, or it waits for
    // the next timer (see driver/server.ts pending()).
    for (let j = 0; j < linked.length; j++) if (modules[linked[j]].pending!(contexts[linked[j]])) return true;
    return false;
  };
  /** A record in a ring this thread publishes to (left by the drain's last pass, or by the polls). */
  const localNews = (): boolean => {
    for (let i = 0; i < localRings.length; i++) if (localRings[i].peek() >= 0) return true;
    return false;
  };
  /** Anything for the loop to do. */
  const hasNews = (): boolean => remoteNews() || localNews();
  // One poller for the thread: the largest budget any of its stacks asked for.
  const poller = busyPollerFor(Math.max(...parts.map((p) => p.mem.init.busyPollUs)));
  try {
    for (let i = 0; i < names.length; i++) modules[i].start(contexts[i]);
    // Serving from here on: every server of this incarnation has started.
    cb.servingSinceUs = clock.nowUs();
    const prof = startProfile(names);
    for (;;) {
      if (prof !== null && prof.due()) prof.stop();
      Atomics.add(cb.i32, C.BEAT, 1);
      if (Atomics.load(cb.i32, C.STOP) !== 0) {
        // A run shorter than KEEPNET_CPU_PROF_MS still leaves its profile (a stack closed cleanly).
        prof?.stop();
        break;
      }
      const fault = Atomics.load(cb.i32, C.INJECT);
      if (fault !== FAULT.NONE) injectFault(cb, fault);

      let did = 0;
      let blocked = false;
      // Drain the input rings, pass after pass while records keep coming (a record handled here is
      // often the next server's input on this thread: shim > tcp > ip > driver), before the timers and
      // the link are polled: with a co-hosted pair's eight servers those polls cost more than a pass.
      // A few passes at most, so the timers and the link are never held back for long.
      // The first pass peeks every ring; later ones only those a server of this thread has published to
      // since they were peeked (records from the shim and the supervisor wait for the next turn's first
      // pass, a few µs): a peek is an atomic load, and a co-hosted pair has 24 rings.
      for (let pass = 0; pass < DRAIN_PASSES; pass++) {
        const before = did;
        for (let i = 0; i < inputs.length; i++) {
          const input = inputs[i];
          const local = input.local;
          if (local !== null) {
            if (pass > 0 && local.flushes === input.seen) continue;
            input.seen = local.flushes;
          } else if (pass > 0) {
            continue;
          }
          const ring = input.ring;
          const outs = input.outs;
          const marks = input.marks;
          while (ring.peek() >= 0) {
            if (
              Atomics.load(cb.i32, C.SKIP_RING) === input.index &&
              Atomics.load(cb.i32, C.SKIP_POS) === ring.position
            ) {
              // The supervisor found this record crashes the server every time: drop it, once (commit
              // before forgetting the skip, so a death in between cannot bring it round again).
              current.from = input.from;
              current.srcGen = ring.length >= 8 ? rd32(ring.bytes, ring.offset + HDR_SRC_GEN) : 0;
              replaying = true;
              dropBuffer(input);
              replaying = false;
              input.ctx.counters.add(K.poisonDropped);
              ring.commit();
              Atomics.store(cb.i32, C.SKIP_RING, -1);
              continue;
            }
            Atomics.store(cb.i32, C.INFL_POS, ring.position);
            Atomics.store(cb.i32, C.INFL_RING, input.index);
            inFlight = input;
            current.from = input.from;
            current.srcGen = ring.length >= 8 ? rd32(ring.bytes, ring.offset + HDR_SRC_GEN) : 0;
            // Claims of buffers this server already holds are legitimate when re-handling the record our
            // predecessor died on, or a record we refused earlier for backpressure.
            replaying = ring.position === input.head || input.retryPos === ring.position;
            for (let o = 0; o < outs.length; o++) marks[o] = outs[o].mark();
            if (!dispatch(input, gen)) {
              // Refused: undo whatever it wrote to its outputs, or the retry would send it twice.
              for (let o = 0; o < outs.length; o++) outs[o].rewind(marks[o]);
              input.ctx.counters.add(K.backpressure);
              input.retryPos = ring.position;
              // Not in flight any more: it was not handled (a crash now must not count it against it).
              inFlight = null;
              Atomics.store(cb.i32, C.INFL_RING, -1);
              blocked = true;
              break;
            }
            input.retryPos = NaN;
            reapUnclaimed(input);
            // Publish this record's effects before letting go of it: a crash after this point leaves
            // nothing unpublished, a crash before it replays the record (see claim()).
            for (let o = 0; o < outs.length; o++) outs[o].flush();
            ring.commit();
            replaying = false;
            inFlight = null;
            Atomics.store(cb.i32, C.INFL_RING, -1);
            input.ctx.counters.add(K.handled);
            Atomics.add(cb.i32, C.PROGRESS, 1);
            if ((++did & (BEAT_EVERY - 1)) === 0) Atomics.add(cb.i32, C.BEAT, 1);
          }
          // (INFL_RING is -1 here: cleared after each record and on a refusal. Not stored again for each of
          // the thread's input rings on every turn: a sequentially consistent store is a locked
          // instruction, and with two co-hosted stacks' 24 rings it was a third of the loop's own time.)
        }
        // Frames that reached a link during the pass (from the other end of a co-hosted wire, whose
        // driver just sent them): received now, so the receiving stack's servers handle them in the next
        // pass rather than after this turn's polls, in the next turn.
        if (!blocked) {
          for (let j = 0; j < linked.length; j++) {
            const s = linked[j];
            if (!modules[s].pending!(contexts[s])) continue;
            modules[s].poll(contexts[s], clocks[partOf[s]].nowUs());
            // Work only if it published (a link it cannot take frames from yet, say with no buffer to
            // receive into, must not keep the passes going).
            const outs = serverOuts[s];
            let published = 0;
            for (let o = 0; o < outs.length; o++) {
              published += outs[o].pending;
              outs[o].flush();
            }
            if (published > 0) did++;
          }
        }
        if (did === before || blocked) break;
      }

      let deadline = Infinity;
      const now = clock.nowUs();
      for (let k = 1; k < parts.length; k++) skew[k] = clocks[k].nowUs() - now;
      for (let i = 0; i < names.length; i++) {
        const k = skew[partOf[i]];
        const d = modules[i].poll(contexts[i], now + k) - k;
        if (d < deadline) deadline = d;
      }
      for (let o = 0; o < outputs.length; o++) outputs[o].flush();
      // This turn did work: another turn at once only if there is news (records the polls, the shim or
      // the supervisor published meanwhile, frames on the link). A turn that merely finds nothing costs
      // every server's poll; the check below (the busy poll's first) costs a peek per ring. Records the
      // polls published to this thread's own rings are news too (a timer's segment), whatever `did`.
      if (did > 0 && (blocked || hasNews())) continue;
      if (!blocked && localNews()) continue;

      // Nothing to do. Unless held back by a full output, keep checking for a while first (busy poll,
      // up to the next timer): news that comes meanwhile costs its producer no wake-up and us no park.
      if (!blocked && poller.maxUs > 0 && poller.poll(remoteNews, deadline - clock.nowUs())) {
        counters[0].add(K.busyPollHits);
        continue;
      }
      // Park until a ring into this host is published to, or the next timer.
      let timeoutMs = blocked ? BACKPRESSURE_PARK_MS : MAX_PARK_MS;
      if (deadline !== Infinity) timeoutMs = Math.min(timeoutMs, Math.max(0, (deadline - clock.nowUs()) / 1000));
      const key = doorbell.prepare();
      const news = blocked ? stopOrFault() : hasNews();
      if (news || timeoutMs === 0) {
        doorbell.cancel();
        continue;
      }
      Atomics.store(cb.i32, C.STATE, HostState.PARKED);
      counters[0].add(K.parks);
      doorbell.wait(key, timeoutMs);
      Atomics.store(cb.i32, C.STATE, HostState.BUSY);
    }
  } catch (err) {
    // The incarnation ends here. Nothing it committed locally but did not flush is published: the
    // record in flight was not committed, so the next incarnation sees it again.
    void inFlight;
    recordCrash(CRASH.THROW, crashText(err));
    return 'crashed';
  }
  for (let o = 0; o < outputs.length; o++) outputs[o].flush();
  for (let i = 0; i < names.length; i++) {
    try {
      modules[i].stop?.(contexts[i]);
    } catch {
      // Stopping anyway: a server that fails to release something at shutdown loses only that.
    }
  }
  cb.set(C.STATE, HostState.STOPPED);
  return 'stopped';
}

/**
 * Development aid: with KEEPNET_CPU_PROF=DIR, the host loop of a serving incarnation profiles itself
 * (node:inspector, same thread: the calls complete synchronously) for KEEPNET_CPU_PROF_MS (default
 * 10000) with a sample every KEEPNET_CPU_PROF_US (default 1000), or until the stack stops it if that
 * comes first, and writes DIR/host-<servers>-<thread>.cpuprofile. (node --cpu-prof gets no profile out
 * of a worker that is terminated, which is how a host ends when its stop does not come in time.)
 */
function startProfile(names: ServerName[]): { due(): boolean; stop(): void } | null {
  const dir = process.env['KEEPNET_CPU_PROF'];
  if (!dir || isMainThread || rehearsing) return null;
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable');
  // KEEPNET_CPU_PROF_US: the sampling interval (µs; V8's default is 1000).
  session.post('Profiler.setSamplingInterval', { interval: Number(process.env['KEEPNET_CPU_PROF_US'] ?? 1000) });
  session.post('Profiler.start');
  const until = Date.now() + Number(process.env['KEEPNET_CPU_PROF_MS'] ?? 10_000);
  let done = false;
  let k = 0;
  return {
    due: () => !done && (++k & 1023) === 0 && Date.now() >= until,
    stop: () => {
      if (done) return;
      done = true;
      session.post('Profiler.stop', (err, r) => {
        try {
          if (!err) writeFileSync(`${dir}/host-${names.join('+')}-${threadId}.cpuprofile`, JSON.stringify(r.profile));
        } catch {
          // A development aid never takes the server down (a missing directory, a full disk).
        }
        session.disconnect();
      });
    },
  };
}

function injectFault(cb: ControlBlock, fault: number): void {
  Atomics.store(cb.i32, C.INJECT, FAULT.NONE);
  switch (fault) {
    case FAULT.CRASH:
      throw new InjectedCrash();
    case FAULT.EXIT:
      recordCrash(CRASH.EXIT, 'injected exit: process.exit(3) in the worker');
      process.exit(3);
    // falls through (process.exit does not return)
    case FAULT.HANG:
      // An infinite loop: the heartbeat stops while the state says BUSY. Only the supervisor's hang
      // detector can end this incarnation.
      for (;;) {
        /* hung */
      }
  }
}

/**
 * Handle the peeked record of `input`: runtime messages here, the rest by the server. Returns false
 * when the record must be offered again later (an output ring is full).
 */
function dispatch(input: Input, gen: number): boolean {
  const { ring, ctx } = input;
  const bytes = ring.bytes;
  const off = ring.offset;
  const len = ring.length;
  if (len >= 8) {
    const dstGen = rd32(bytes, off + HDR_DST_GEN);
    if (dstGen !== 0 && dstGen !== gen) {
      ctx.counters.add(K.staleDropped);
      dropRecordBuffer(input);
      return true;
    }
  }
  switch (ring.tag) {
    case MSG.PROBE:
      return forwardProbe(input, gen);
    case MSG.POISON:
      throw new Error(`poison message at ring ${input.from}>${ctx.name} position ${ring.position}`);
    default:
      return input.server.handle(ctx, input.from, ring.tag, bytes, off, len);
  }
}



/** Move a probe one hop along its route, with its buffer (if any) handed over by ownership transfer. */
function forwardProbe(input: Input, gen: number): boolean {
  const { ring, ctx } = input;
  const b = ring.bytes;
  const off = ring.offset;
  if (ring.length < PROBE.BYTES) {
    ctx.counters.add(K.unknownDropped);
    dropRecordBuffer(input);
    return true;
  }
  const hop = b[off + PROBE.HOP] + 1;
  const routeLen = b[off + PROBE.ROUTE_LEN];
  if (hop >= routeLen || routeLen > PROBE.MAX_ROUTE) {
    ctx.counters.add(K.unknownDropped);
    dropRecordBuffer(input);
    return true;
  }
  const next = ENDPOINT_BY_ID[b[off + PROBE.ROUTE + hop]];
  const out = next === undefined ? undefined : ctx.out.get(next);
  if (out === undefined) {
    ctx.counters.add(K.unknownDropped);
    dropRecordBuffer(input);
    return true;
  }
  const dst = out.reserve(PROBE.BYTES, MSG.PROBE);
  if (dst < 0) return false;
  const buf = rd32(b, off + PROBE.BUF);
  if (buf >= 0) {
    // A record replayed after a crash may already have been forwarded and claimed downstream: then the
    // claim fails, and forwarding it again would duplicate it, so the replay is dropped.
    if (!ctx.claim(buf, rd32(b, off + PROBE.EPOCH))) {
      out.abort();
      ctx.counters.add(K.replayDropped);
      return true;
    }
    // Read the payload in place, as a protocol server reads headers: it must still be intact.
    const len = rd32(b, off + PROBE.LEN);
    if (checksum(ctx.pools.bytesOf(buf), ctx.pools.offsetOf(buf), len) !== rd32(b, off + PROBE.SUM) >>> 0) {
      ctx.counters.add(K.unknownDropped);
    }
  }
  out.bytes.set(b.subarray(off, off + PROBE.BYTES), dst);
  wr32(out.bytes, dst + HDR_DST_GEN, 0);
  wr32(out.bytes, dst + HDR_SRC_GEN, gen);
  out.bytes[dst + PROBE.HOP] = hop;
  out.commit();
  ctx.counters.add(K.probesForwarded);
  return true;
}
