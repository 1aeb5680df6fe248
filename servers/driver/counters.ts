/**
 * The driver server's counters, kept in its shared state so they survive its restarts and the main
 * thread can read them for `stack.stats()` and `keepnet tap --json`.
 */
import { ReasonCounters } from '../ip/counters.js';

export const DRIVER_COUNTERS = [
  'rxFrames',
  'rxPublished',
  'txFrames',
  'txBackpressure',
  'drop:rx-no-buffer',
  'drop:bad-message',
  'drop:replay',
  'drop:no-link',
  // TAP with IFF_VNET_HDR (tap-link.ts): GSO frames each way, frames whose checksum the header vouched
  // for, and frames dropped for a malformed virtio_net_hdr or an oversize frame without GSO.
  'rxGsoFrames',
  'txGsoFrames',
  'rxCsumTrusted',
  'txCsumOffloaded',
  'drop:vnet-bad-flags',
  'drop:vnet-bad-gso-type',
  'drop:vnet-bad-offsets',
  'drop:vnet-bad-gso',
  'drop:rx-oversize',
  'drop:tx-oversize',
] as const;
export type DriverCounterName = (typeof DRIVER_COUNTERS)[number];
type DropOf<T> = T extends `drop:${infer R}` ? R : never;
type DropReason = DropOf<DriverCounterName>;

/** Byte offset of the counters in the driver's state SAB. */
const COUNTERS_OFFSET = 0;

export class DriverCounters {
  readonly c: ReasonCounters<DriverCounterName>;
  private constructor(c: ReasonCounters<DriverCounterName>) {
    this.c = c;
  }
  static attach(state: SharedArrayBuffer): DriverCounters {
    return new DriverCounters(new ReasonCounters(DRIVER_COUNTERS, new Float64Array(state, COUNTERS_OFFSET, DRIVER_COUNTERS.length)));
  }
  get rxFrames(): number {
    return this.c.values[0];
  }
  set rxFrames(v: number) {
    this.c.values[0] = v;
  }
  get rxPublished(): number {
    return this.c.values[1];
  }
  set rxPublished(v: number) {
    this.c.values[1] = v;
  }
  get txFrames(): number {
    return this.c.values[2];
  }
  set txFrames(v: number) {
    this.c.values[2] = v;
  }
  get txBackpressure(): number {
    return this.c.values[3];
  }
  set txBackpressure(v: number) {
    this.c.values[3] = v;
  }
  get rxNoBuffer(): number {
    return this.c.values[4];
  }
  set rxNoBuffer(v: number) {
    this.c.values[4] = v;
  }
  /** Add n to a counter by name (cold paths and per-batch totals). */
  add(name: DriverCounterName, n = 1): void {
    this.c.values[this.c.slot(name)] += n;
  }
  drop(reason: DropReason): void {
    this.c.values[this.c.slot(`drop:${reason}` as DriverCounterName)]++;
  }
}
