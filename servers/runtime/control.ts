/**
 * Control blocks: one per worker thread ("host") in a SharedArrayBuffer, written by the host and read
 * by the supervisor (and a few words the other way). Everything the supervisor needs to judge a host
 * lives here, so judging never needs a message from a thread that may be dead or hung.
 *
 * Words (Int32, Atomics):
 *   GEN         incarnation of the host's servers (host writes at start)
 *   STATE       ServerRunState: IDLE 0 / BUSY 1 / PARKED 2; STOPPED 3 (host writes)
 *   BEAT        heartbeat counter, bumped every loop iteration and every few records (host)
 *   PROGRESS    records handled and committed, all time (host)
 *   INFL_RING   input ring index of the record being handled, -1 when none (host)
 *   INFL_POS    that record's ring position (host)
 *   STOP        1 = stop at the next loop iteration (supervisor)
 *   INJECT      a fault to inject: FAULT_* (supervisor writes, host clears)
 *   SKIP_RING / SKIP_POS  a poison record to skip instead of handling (supervisor, before restart)
 *   CRASH_KIND  why the host is about to die: CRASH_* (host)
 *   CRASH_LEN   bytes of UTF-8 crash text (message + stack) in the text area (host)
 *   BELL, BELL+1  the host's doorbell: every ring into this host's servers rings it
 *   THREAD_ID   the worker's threadId (host)
 *   OS_TID      the worker's OS thread id (host; Linux), for /proc/self/task/TID/schedstat
 *   CRASH_GEN   the incarnation that wrote the crash record (so a dying predecessor's late words are
 *               never taken for its successor's)
 *   SERVING     Float64 at word SERVING (8-aligned): central-clock us when this incarnation began serving
 *   CRASH_SEQ   bumped (and notified) after every crash record: the supervisor waits on it
 * Then a text area of TEXT_BYTES for the crash reason and stack.
 */
export const C = Object.freeze({
  GEN: 0,
  STATE: 1,
  BEAT: 2,
  PROGRESS: 3,
  INFL_RING: 4,
  INFL_POS: 5,
  STOP: 6,
  INJECT: 7,
  SKIP_RING: 8,
  SKIP_POS: 9,
  CRASH_KIND: 10,
  CRASH_LEN: 11,
  THREAD_ID: 14,
  CRASH_GEN: 15,
  SERVING: 16,
  CRASH_SEQ: 18,
  /** The host thread's OS thread id (Linux), 0 if unknown: the supervisor reads its scheduler stats. */
  OS_TID: 20,
  /**
   * The host's doorbell, in the second cache line of the block: every producer's flush loads its
   * waiters word, and the first line has BEAT and PROGRESS, which the host writes on every turn.
   */
  BELL: 24,
});
export const HostState = Object.freeze({ IDLE: 0, BUSY: 1, PARKED: 2, STOPPED: 3 });
export const FAULT = Object.freeze({ NONE: 0, CRASH: 1, EXIT: 2, HANG: 3 });
export const CRASH = Object.freeze({ NONE: 0, THROW: 1, REJECTION: 2, EXIT: 3 });
/** Exit code of a host thread that ends because a server crashed (after recording why). */
export const EXIT_CRASH = 70;

const WORDS = 32;
const TEXT_BYTES = 4096;
export const CONTROL_BYTES = WORDS * 4 + TEXT_BYTES;

/**
 * Standby slots: one per thread of a host's pool. A standby task attaches to the stack memory, then
 * parks on its slot's STATE word; the supervisor activates it by writing the generation (and the record
 * to replay) and setting STATE to ACTIVATED. Recovery is then a wake-up, not a task dispatch.
 *   [0] STATE  EMPTY 0 (no standby task running) / WAITING 1 / ACTIVATED 2 / CANCELLED 3
 *   [1] GEN    generation to run as
 */
export const SLOT = Object.freeze({ STATE: 0, GEN: 1, WORDS: 4 });
export const SlotState = Object.freeze({ EMPTY: 0, WAITING: 1, ACTIVATED: 2, CANCELLED: 3 });
export const MAX_SLOTS = 4;
export const SLOTS_BYTES = MAX_SLOTS * SLOT.WORDS * 4;

export class ControlBlock {
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  private readonly text: Uint8Array;

  constructor(sab: SharedArrayBuffer, index: number) {
    const base = index * CONTROL_BYTES;
    this.i32 = new Int32Array(sab, base, WORDS);
    this.f64 = new Float64Array(sab, base, WORDS / 2);
    this.text = new Uint8Array(sab, base + WORDS * 4, TEXT_BYTES);
  }

  static allocate(hosts: number): SharedArrayBuffer {
    return new SharedArrayBuffer(hosts * (CONTROL_BYTES + SLOTS_BYTES));
  }

  /** The standby slots of host `index` (after all control blocks). */
  static slots(sab: SharedArrayBuffer, hosts: number, index: number): Int32Array {
    return new Int32Array(sab, hosts * CONTROL_BYTES + index * SLOTS_BYTES, MAX_SLOTS * SLOT.WORDS);
  }

  get(word: number): number {
    return Atomics.load(this.i32, word);
  }
  set(word: number, v: number): void {
    Atomics.store(this.i32, word, v);
  }

  /** Record why the host is dying (host side; called just before it exits). */
  writeCrash(kind: number, text: string, gen: number): void {
    Atomics.store(this.i32, C.CRASH_GEN, gen);
    const enc = new TextEncoder().encodeInto(text, this.text);
    Atomics.store(this.i32, C.CRASH_LEN, enc.written ?? 0);
    Atomics.store(this.i32, C.CRASH_KIND, kind);
    Atomics.add(this.i32, C.CRASH_SEQ, 1);
    Atomics.notify(this.i32, C.CRASH_SEQ);
  }

  readCrash(): { kind: number; text: string; gen: number } {
    const kind = Atomics.load(this.i32, C.CRASH_KIND);
    const gen = Atomics.load(this.i32, C.CRASH_GEN);
    const len = Atomics.load(this.i32, C.CRASH_LEN);
    // Copy out of shared memory: TextDecoder does not accept shared views.
    return { kind, gen, text: new TextDecoder().decode(this.text.slice(0, len)) };
  }

  /** Reset per-incarnation words before a new incarnation starts (supervisor side). */
  resetForIncarnation(gen: number): void {
    this.set(C.GEN, gen);
    this.set(C.STATE, HostState.IDLE);
    this.set(C.INFL_RING, -1);
    this.set(C.INFL_POS, 0);
    this.set(C.STOP, 0);
    this.set(C.INJECT, FAULT.NONE);
    this.set(C.CRASH_KIND, CRASH.NONE);
    this.set(C.CRASH_LEN, 0);
    this.set(C.CRASH_GEN, 0);
    this.f64[C.SERVING / 2] = 0;
  }

  set servingSinceUs(us: number) {
    this.f64[C.SERVING / 2] = us;
  }
  get servingSinceUs(): number {
    return this.f64[C.SERVING / 2];
  }
}
