/**
 * Worker side of the clock tests (test/clock.test.ts).
 *   manual-read: answer each message with the page's nowUs() (postMessage; no timing involved).
 *   torn:        read a manual page while the test writes it; check every value is a multiple of
 *                `step` (a torn read would not be) and that values never go back.
 *   bracket:     two workers A (side 0) and B (side 1) on a real page: A reads a1, wakes B, B reads b,
 *                wakes A, A reads a2. Reports, per round, the slack of b inside [a1, a2].
 *   ticker:      read a real page in a loop, storing each reading in a Float64 slot, until terminated
 *                (a server that dies; the test then attaches a "restarted" one).
 *   first-read:  attach and report the very first reading, plus calibration.
 * When run by tap as a plain file (no parentPort) it does nothing, so tap reports it as skipped.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Clock } from '../../shared-rings/clock.js';

export interface ClockWorkerData {
  mode: 'manual-read' | 'torn' | 'bracket' | 'ticker' | 'first-read';
  page: SharedArrayBuffer;
  ctl?: SharedArrayBuffer;
  side?: 0 | 1;
  rounds?: number;
  step?: number;
}

export interface BracketResult {
  /** min over rounds of b - a1 (us); negative would mean B read earlier than A's earlier reading. */
  minLow: number;
  /** min over rounds of a2 - b (us). */
  minHigh: number;
  /** Rounds where b < a1 or b > a2. */
  outside: number;
  rounds: number;
  errorUs: number;
}

// bracket ctl: Int32 [0] turn counter; Float64 at byte 8: B's reading.
function bracket(d: ClockWorkerData): void {
  const clock = Clock.attach(d.page);
  const turn = new Int32Array(d.ctl!, 0, 2);
  const val = new Float64Array(d.ctl!, 8, 1);
  const rounds = d.rounds!;
  if (d.side === 0) {
    let minLow = Infinity, minHigh = Infinity, outside = 0;
    for (let i = 0; i < rounds; i++) {
      const a1 = clock.nowUs();
      Atomics.store(turn, 0, 2 * i + 1);
      Atomics.notify(turn, 0);
      while (Atomics.load(turn, 0) !== 2 * i + 2) Atomics.wait(turn, 0, 2 * i + 1, 100);
      const a2 = clock.nowUs();
      const b = val[0]!;
      minLow = Math.min(minLow, b - a1);
      minHigh = Math.min(minHigh, a2 - b);
      if (b < a1 || b > a2) outside++;
    }
    const r: BracketResult = { minLow, minHigh, outside, rounds, errorUs: clock.calibration.errorUs };
    parentPort!.postMessage(r);
  } else {
    for (let i = 0; i < rounds; i++) {
      while (Atomics.load(turn, 0) !== 2 * i + 1) Atomics.wait(turn, 0, 2 * i, 100);
      val[0] = clock.nowUs();
      Atomics.store(turn, 0, 2 * i + 2);
      Atomics.notify(turn, 0);
    }
    parentPort!.postMessage({ errorUs: clock.calibration.errorUs });
  }
}

function run(d: ClockWorkerData): void {
  if (d.mode === 'first-read') {
    const clock = Clock.attach(d.page);
    const first = clock.nowUs();
    parentPort!.postMessage({ first, errorUs: clock.calibration.errorUs });
  } else if (d.mode === 'manual-read') {
    const clock = Clock.attach(d.page);
    parentPort!.on('message', (m) => {
      if (m === 'close') parentPort!.close();
      else parentPort!.postMessage(clock.nowUs());
    });
  } else if (d.mode === 'torn') {
    // ctl Int32: [0] distinct values seen (for the writer), [1] the writer is done.
    const clock = Clock.attach(d.page);
    const ctl = new Int32Array(d.ctl!, 0, 2);
    let last = -1, bad = 0, back = 0, reads = 0, distinct = 0;
    parentPort!.postMessage('ready');
    for (let done = false; !done;) {
      done = Atomics.load(ctl, 1) === 1; // read once more after the writer finished
      const t = clock.nowUs();
      reads++;
      if (t % d.step! !== 0) bad++;
      if (t < last) back++;
      if (t !== last) Atomics.store(ctl, 0, ++distinct);
      last = t;
    }
    parentPort!.postMessage({ bad, back, reads, distinct, last });
  } else if (d.mode === 'ticker') {
    const clock = Clock.attach(d.page);
    const slot = new Float64Array(d.ctl!, 8, 1);
    for (let i = 0; ; i++) {
      slot[0] = clock.nowUs();
      if (i === 1000) parentPort!.postMessage('ticking');
    }
  } else {
    bracket(d);
  }
}

if (parentPort !== null) run(workerData as ClockWorkerData);
