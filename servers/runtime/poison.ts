/**
 * Poison-message tracking: a record that crashes a server every time it is handled must be
 * dropped, or the server crash-loops on it forever (the restarted server replays its input ring
 * from the last committed position and meets the same record again).
 *
 * Pure bookkeeping: no I/O, no clock. The runtime tells the tracker, per server:
 *   - `onCrash(serverId, inFlightKey, reason?)` when the server died; `inFlightKey` names the input
 *     record it was handling (see `recordKey`), or null if it was not handling one (timer, idle).
 *     Answer: 'retry' (restart and deliver the record again) or 'drop' (restart and skip it).
 *   - `onProgress(serverId)` when the server committed past its in-flight record: the record was
 *     innocent, the count starts over.
 *
 * Rule: the same key crashing the server `maxAttempts` times with no progress in between gives
 * 'drop' on the last of those crashes. A crash with a different key replaces the suspect (the old
 * record is no longer in flight, so it was committed). A crash with key null neither counts nor
 * clears the suspect: it is no evidence either way. After a 'drop' the server's entry is cleared, and
 * a report is kept: `dropped` holds the latest `maxReports` reports (fixed memory), `droppedTotal`
 * counts all of them.
 */

export type ServerId = string | number;
export type PoisonVerdict = 'retry' | 'drop';

/** Canonical key of input record `seq` on ring `ringId`. */
export function recordKey(ringId: number, seq: number): string {
  return `${ringId}:${seq}`;
}

export interface PoisonReport {
  serverId: ServerId;
  key: string;
  /** Crashes attributed to the record (= maxAttempts). */
  attempts: number;
  /** The crash reasons given for each attempt, oldest first ('' when none was given). */
  reasons: string[];
  /** 1-based ordinal of this drop over the tracker's life. */
  ordinal: number;
}

export interface PoisonTrackerOptions {
  /** Crashes on the same record before it is dropped. Default 3. */
  maxAttempts?: number;
  /** Reports kept in `dropped` (oldest discarded first). Default 100. */
  maxReports?: number;
}

interface Suspect {
  key: string;
  attempts: number;
  reasons: string[];
}

export class PoisonTracker {
  readonly maxAttempts: number;
  readonly maxReports: number;
  private readonly suspects = new Map<ServerId, Suspect>();
  private readonly reports: PoisonReport[] = [];
  private total = 0;

  constructor(options: PoisonTrackerOptions = {}) {
    const { maxAttempts = 3, maxReports = 100 } = options;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
      throw new RangeError(`maxAttempts must be an integer >= 1, got ${maxAttempts}`);
    }
    if (!Number.isInteger(maxReports) || maxReports < 0) {
      throw new RangeError(`maxReports must be an integer >= 0, got ${maxReports}`);
    }
    this.maxAttempts = maxAttempts;
    this.maxReports = maxReports;
  }

  onCrash(serverId: ServerId, inFlightKey: string | null, reason = ''): PoisonVerdict {
    if (inFlightKey === null) return 'retry';
    let s = this.suspects.get(serverId);
    if (s === undefined || s.key !== inFlightKey) {
      s = { key: inFlightKey, attempts: 0, reasons: [] };
      this.suspects.set(serverId, s);
    }
    s.attempts++;
    s.reasons.push(reason);
    if (s.attempts < this.maxAttempts) return 'retry';
    this.suspects.delete(serverId);
    this.total++;
    if (this.maxReports > 0) {
      if (this.reports.length === this.maxReports) this.reports.shift();
      this.reports.push({ serverId, key: s.key, attempts: s.attempts, reasons: s.reasons, ordinal: this.total });
    }
    return 'drop';
  }

  /** The server committed past its in-flight record: forget the suspicion. */
  onProgress(serverId: ServerId): void {
    this.suspects.delete(serverId);
  }

  /** Crashes counted against the server's current suspect record (0 if none). */
  attempts(serverId: ServerId): number {
    return this.suspects.get(serverId)?.attempts ?? 0;
  }

  /** The record currently suspected for the server, or null. */
  suspectKey(serverId: ServerId): string | null {
    return this.suspects.get(serverId)?.key ?? null;
  }

  /** Latest drop reports, oldest first (at most maxReports). */
  get dropped(): readonly PoisonReport[] {
    return this.reports;
  }

  /** Records dropped over the tracker's life. */
  get droppedTotal(): number {
    return this.total;
  }

  /** Forget a server entirely (it was removed). Reports are kept. */
  forget(serverId: ServerId): void {
    this.suspects.delete(serverId);
  }

  /** Forget everything, reports included. */
  reset(): void {
    this.suspects.clear();
    this.reports.length = 0;
    this.total = 0;
  }
}
