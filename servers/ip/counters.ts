/**
 * Named event/drop counters for the IP protocol cores.
 *
 * Each core declares its closed set of counter names as a `const` tuple (drops are spelled
 * "drop:REASON", informational events plain), builds the name -> slot table once with
 * `counterSlots`, and bumps `values[SLOT.name]` on its paths: one typed-array increment, no
 * allocation, no string work. `snapshot()` (allocating, for stats and tests) turns them back into a
 * record. Values are float64, so they never wrap in practice.
 *
 * The IP server can copy a snapshot into the runtime's shared counters, or read `values` by slot.
 */
export class ReasonCounters<N extends string> {
  readonly names: readonly N[];
  /** The counts (replaced by rebase(): read it at use, do not keep it). */
  values: Float64Array;
  private readonly slots: Readonly<Record<N, number>>;

  /**
   * `backing`: where the values live, e.g. a Float64Array over a server's shared state, so counts
   * survive the server's restarts and the main thread can read them (one writer: the server).
   */
  constructor(names: readonly N[], backing?: Float64Array) {
    this.names = names;
    if (backing && backing.length < names.length) throw new RangeError('counter backing store too small');
    this.values = backing ?? new Float64Array(names.length);
    this.slots = counterSlots(names);
  }

  /** Slot of a name (for callers that cache it). */
  slot(name: N): number {
    return this.slots[name];
  }

  get(name: N): number {
    return this.values[this.slots[name]];
  }

  /** Sum of every "drop:*" counter. */
  drops(): number {
    let s = 0;
    for (let i = 0; i < this.names.length; i++) if (this.names[i].startsWith('drop:')) s += this.values[i];
    return s;
  }

  /** Every counter by name (allocates; for stats and tests). */
  snapshot(): Record<N, number> {
    const out = {} as Record<N, number>;
    for (let i = 0; i < this.names.length; i++) out[this.names[i]] = this.values[i];
    return out;
  }

  /** Only the counters that are not zero (allocates; handy in test assertions and logs). */
  nonZero(): Partial<Record<N, number>> {
    const out: Partial<Record<N, number>> = {};
    for (let i = 0; i < this.names.length; i++) if (this.values[i] !== 0) out[this.names[i]] = this.values[i];
    return out;
  }

  reset(): void {
    this.values.fill(0);
  }

  /**
   * Count into `backing` from now on: what was counted so far is added to what it holds (a
   * predecessor's totals, for a restarted server), then every count lands there directly.
   */
  rebase(backing: Float64Array): void {
    if (backing.length < this.names.length) throw new RangeError('counter backing store too small');
    for (let i = 0; i < this.names.length; i++) backing[i] += this.values[i];
    this.values = backing;
  }
}

/** Frozen name -> slot table for a counter name tuple. */
export function counterSlots<N extends string>(names: readonly N[]): Readonly<Record<N, number>> {
  const out = {} as Record<N, number>;
  names.forEach((n, i) => (out[n] = i));
  return Object.freeze(out);
}
