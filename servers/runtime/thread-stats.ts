/**
 * What Linux says of a thread of this process, from /proc/self/task/TID: its time on the CPU and waiting
 * on a run queue (schedstat), and its scheduler state letter (stat). The supervisor reads a host's
 * schedstat at every sample (every 5 ms) in which the host beat (supervisor.ts starvedNotHung): with two
 * stacks under traffic, 400 reads a second on the application's main thread, in the middle of its event
 * loop, and 1,600 with a thread per server. Opening the
 * file for each read (readFileSync) timed 10.9 µs a read on this project's VM; a pread at offset 0 of a
 * descriptor kept open, 2.2 µs (the file is generated afresh on every read from offset 0).
 *
 * A descriptor belongs to the task it was opened for: once that thread has exited, reads fail (ESRCH)
 * even if a new thread is given the same id, and the reader then opens the path again.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

export interface SchedStat {
  /** Time spent on a CPU (ns). */
  runNs: number;
  /** Time spent runnable, waiting on a run queue (ns). */
  waitNs: number;
}

/** Parse a schedstat line ("run_ns wait_ns timeslices"); null if it is not one. */
export function parseSchedstat(text: string): SchedStat | null {
  const [run, wait] = text.split(' ');
  if (run === undefined || wait === undefined || run === '' || wait === '') return null;
  const runNs = Number(run);
  const waitNs = Number(wait);
  return Number.isFinite(runNs) && Number.isFinite(waitNs) && runNs >= 0 && waitNs >= 0 ? { runNs, waitNs } : null;
}

/**
 * Reads schedstat through a descriptor kept open per watched thread. The caller names each thread it
 * watches by a key of its own (the supervisor: a host's index) and passes the key's current thread id:
 * when a host's thread is replaced, the dead one's descriptor is closed at the next read, so a fault
 * campaign's thousands of restarts hold no more descriptors than there are hosts.
 */
export class ThreadStats {
  private readonly held = new Map<number, { tid: number; fd: number }>();
  private readonly buf = Buffer.alloc(128);
  private readonly root: string;

  /** `root`: where the tasks' directories are (tests point it elsewhere). */
  constructor(root = '/proc/self/task') {
    this.root = root;
  }

  /** The schedstat of thread `tid`, watched as `key`; null if it cannot be read (no such thread, not Linux). */
  schedstat(key: number, tid: number): SchedStat | null {
    if (!(tid > 0) || !Number.isInteger(tid)) return null;
    const had = this.held.get(key);
    if (had !== undefined && had.tid !== tid) this.forget(key);
    // The kept descriptor first; if the read fails (its thread is gone), once more on a fresh one.
    for (let attempt = 0; attempt < 2; attempt++) {
      let h = this.held.get(key);
      if (h === undefined) {
        let fd: number;
        try {
          fd = openSync(`${this.root}/${tid}/schedstat`, 'r');
        } catch {
          return null;
        }
        h = { tid, fd };
        this.held.set(key, h);
      }
      try {
        const n = readSync(h.fd, this.buf, 0, this.buf.length, 0);
        return parseSchedstat(this.buf.toString('latin1', 0, n));
      } catch {
        this.forget(key);
      }
    }
    return null;
  }

  /** The state letter of thread `tid` (R running or runnable, S sleeping, D uninterruptible...), or ''. Rare: not kept open. */
  state(tid: number): string {
    if (!(tid > 0) || !Number.isInteger(tid)) return '';
    try {
      const stat = readFileSync(`${this.root}/${tid}/stat`, 'utf8');
      return stat.charAt(stat.lastIndexOf(')') + 2);
    } catch {
      return '';
    }
  }

  /** Close the descriptor kept for `key`, if any. */
  forget(key: number): void {
    const h = this.held.get(key);
    if (h === undefined) return;
    this.held.delete(key);
    try {
      closeSync(h.fd);
    } catch {
      // Already closed: nothing to release.
    }
  }

  /** Close every descriptor. */
  close(): void {
    for (const key of [...this.held.keys()]) this.forget(key);
  }

  /** Descriptors held (for tests and leak checks). */
  get open(): number {
    return this.held.size;
  }
}
