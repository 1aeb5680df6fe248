/**
 * Doorbell: an event count in shared memory that lets one thread park until another has news.
 *
 * Two Int32 words at `index` and `index + 1` of a shared Int32Array:
 *   [index]     seq      bumped by a ringer before it notifies; the waiter parks on it
 *   [index + 1] waiters  how many threads have announced they are about to park (0 or 1 here)
 *
 * The no-lost-wake-up argument (all JS Atomics are sequentially consistent):
 *   waiter:  waiters++ ; key = seq ; re-check the condition ; if still nothing: wait(seq, key)
 *   ringer:  publish the news (an Atomics.store) ; if (waiters > 0) { seq++ ; notify(seq) }
 * Either the ringer's load of `waiters` sees the waiter's increment, and then it bumps `seq` (so the
 * waiter's wait returns at once with "not-equal", or is woken by notify); or it does not, and then the
 * waiter's increment came later in the total order, so its re-check sees the published news and it does
 * not park. The ringer pays one Atomics.load per publication while nobody is parked: notify is called
 * only when the parked side has announced itself.
 *
 * A waiter that dies while parked leaves `waiters` above zero: ringers then notify needlessly (a cost,
 * never a lost wake-up). The next incarnation of the same consumer calls `reset()` when it attaches.
 * Several producers may ring the same doorbell (a server's one doorbell for all its input rings);
 * exactly one thread waits on it.
 */
export class Doorbell {
  readonly i32: Int32Array;
  readonly index: number;
  /** Wake-ups this handle has sent (notify calls): a counter for stats, local to the ringer. */
  notifies = 0;

  constructor(i32: Int32Array, index: number) {
    if (!(i32.buffer instanceof SharedArrayBuffer)) {
      throw Object.assign(new TypeError('Doorbell needs an Int32Array over a SharedArrayBuffer'), {
        code: 'ERR_INVALID_ARG_TYPE',
      });
    }
    if (!Number.isInteger(index) || index < 0 || index + 1 >= i32.length) {
      throw Object.assign(new RangeError(`Doorbell index ${index} out of range`), { code: 'ERR_OUT_OF_RANGE' });
    }
    this.i32 = i32;
    this.index = index;
  }

  /** A doorbell in a SharedArrayBuffer of its own. */
  static create(): Doorbell {
    return new Doorbell(new Int32Array(new SharedArrayBuffer(8)), 0);
  }

  /** Announce that this thread is about to park; returns the key to pass to wait(). Re-check after it. */
  prepare(): number {
    Atomics.add(this.i32, this.index + 1, 1);
    return Atomics.load(this.i32, this.index);
  }

  /** Withdraw an announcement made by prepare() when the re-check found news. */
  cancel(): void {
    Atomics.sub(this.i32, this.index + 1, 1);
  }

  /** Park until rung or timeout (ms; Infinity for none). Not usable on the main thread: see waitAsync. */
  wait(key: number, timeoutMs: number): 'ok' | 'not-equal' | 'timed-out' {
    const r = Atomics.wait(this.i32, this.index, key, timeoutMs);
    Atomics.sub(this.i32, this.index + 1, 1);
    return r;
  }

  /** Park without blocking the event loop (for a consumer on the main thread). */
  async waitAsync(key: number, timeoutMs: number): Promise<'ok' | 'not-equal' | 'timed-out'> {
    const r = Atomics.waitAsync(this.i32, this.index, key, timeoutMs);
    // A pending Atomics.waitAsync does not keep Node's event loop alive: a finite wait holds a timer
    // until it resolves (an interval, not a one-shot timer of the same length, which can fire first and
    // let the process exit while V8's own timeout is still pending).
    const keep = r.async && Number.isFinite(timeoutMs) ? setInterval(() => {}, 1000) : null;
    try {
      return r.async ? await r.value : r.value;
    } finally {
      if (keep) clearInterval(keep);
      Atomics.sub(this.i32, this.index + 1, 1);
    }
  }

  /** Wake the parked side if it has announced itself. Call after publishing. Cheap when nobody waits. */
  ring(): void {
    if (Atomics.load(this.i32, this.index + 1) !== 0) {
      Atomics.add(this.i32, this.index, 1);
      Atomics.notify(this.i32, this.index);
      this.notifies++;
    }
  }

  /** Forget waiters left by a dead predecessor. Only the (single) waiting side calls this, at attach. */
  reset(): void {
    Atomics.store(this.i32, this.index + 1, 0);
  }

  /** Whether the waiting side has announced it is parked (or about to park). */
  get parked(): boolean {
    return Atomics.load(this.i32, this.index + 1) !== 0;
  }
}
