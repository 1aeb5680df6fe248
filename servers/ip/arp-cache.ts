/**
 * ARP cache for one Ethernet interface (RFC 826, with RFC 1122 §2.3.2 timeouts and queueing, and
 * Linux-like entry states). Pure: no I/O, no clock reads, no timers; time comes in as `nowUs`.
 *
 * Call order (lwIP style):
 *   1. `setLocal(mac, ips)` once (and again when addresses change).
 *   2. Output: for each IPv4 packet, after routing, `query(nextHop, handle, nowUs)`:
 *        'resolved' -> send now to `resolvedMac`; the cache did not keep `handle`.
 *        'queued'   -> the cache holds `handle` until the address resolves or fails.
 *        'dropped'  -> refused (reason counted); the caller still owns `handle` and frees it.
 *      Handles are opaque non-negative numbers (pool buffer indices); `ARP_NO_HANDLE` asks for
 *      resolution without queueing anything.
 *   3. Input: for each received ARP packet (already parsed into an `ArpRepr`), `input(repr, nowUs)`.
 *      The returned `ArpInputResult` (one instance, reused) says:
 *        `replyReady`   -> emit `reply` (an ArpRepr) to Ethernet dst `replyEthDst`;
 *        `releasedCount`-> send handles `released[0..n)` to `releasedMac` (in queueing order).
 *   4. Timers: `poll(nowUs)` after every batch of work and whenever `nextDeadlineUs` passes. The
 *      returned `ArpPollResult` (one instance, reused) lists ARP requests to send (target IP and
 *      Ethernet destination: broadcast, or the known MAC for a unicast re-probe), handles whose
 *      resolution failed (the caller answers ICMP host unreachable for them or just frees them),
 *      and `nextDeadlineUs` (Infinity when nothing is pending). A new entry asks for its first
 *      request at once, so call `poll` after `query` batches.
 *   5. `flush()` on interface down / reconfiguration: every dynamic entry goes, every held handle is
 *      returned as failed.
 *
 * Entry states:
 *   INCOMPLETE  resolving; holds queued handles. A request at creation and every `retransUs`
 *               (1 s); after `maxRequests` (3) unanswered requests it fails: handles -> failed.
 *   REACHABLE   MAC known and confirmed within `reachableUs` (30 s); then STALE.
 *   STALE       MAC known, unconfirmed: still used. Unused for `staleUs` (60 s): removed. Used: PROBE.
 *   PROBE       in use while unconfirmed: after `probeDelayUs` (5 s) unicast requests every
 *               `retransUs`, up to `maxRequests`; unanswered: removed. `confirm()` (upper-layer
 *               proof, e.g. a TCP ACK) or any ARP from the host makes it REACHABLE again.
 *   STATIC      added by `addStatic`, never expires, never overwritten by the wire.
 *
 * Input rules (RFC 826 merge, lwIP-like refresh): any valid ARP packet from a host that has an entry
 * updates its MAC and makes it REACHABLE (this covers gratuitous ARP: sender IP == target IP). A
 * host with no entry is learnt only when the packet targets one of our addresses (it is about to talk
 * to us). Requests for our addresses are answered, including RFC 5227 probes (sender IP 0, which are
 * never learnt). Bad sender addresses, our own packets looped back and claims on our addresses are
 * dropped and counted.
 *
 * Limits: `capacity` entries; when full, a new entry evicts the least recently used STALE entry,
 * else the least recently used REACHABLE/PROBE one; INCOMPLETE and STATIC entries are never evicted
 * (the new query is refused: 'drop:table-full'). Queued handles: at most `maxQueuePerEntry` per entry
 * and `maxQueued` in all; beyond that the new handle is refused (tail drop).
 *
 * Memory is fixed at construction: typed arrays per entry and per queue slot; the result objects are
 * reused. Iteration order (slot order) and tie-breaks (lowest slot) make every output deterministic.
 */
import { ArpRepr, ARP_OP_REPLY, ARP_OP_REQUEST, ARP_LEN } from '../wire/arp.js';
import {
  ETH_HEADER_LEN,
  ETH_MIN_FRAME_LEN,
  ETHERTYPE_ARP,
  MAC_BROADCAST,
  MAC_ZERO,
  macIsMulticast,
  writeMac,
} from '../wire/ethernet.js';
import { writeU16 } from '../wire/bytes.js';
import { IPV4_BROADCAST, ipv4IsMulticast } from '../wire/ipv4.js';
import { ReasonCounters, counterSlots } from './counters.js';

export const ARP_NO_HANDLE = -1;

export const ARP_STATE_FREE = 0;
export const ARP_STATE_INCOMPLETE = 1;
export const ARP_STATE_REACHABLE = 2;
export const ARP_STATE_STALE = 3;
export const ARP_STATE_PROBE = 4;
export const ARP_STATE_STATIC = 5;
const STATE_NAMES = ['free', 'incomplete', 'reachable', 'stale', 'probe', 'static'] as const;
export type ArpStateName = (typeof STATE_NAMES)[number];

export const ARP_COUNTERS = [
  'rx-request',
  'rx-reply',
  'rx-gratuitous',
  'rx-probe',
  'tx-request',
  'tx-probe',
  'tx-reply',
  'learned',
  'refreshed',
  'mac-changed',
  'resolved',
  'query-hit',
  'query-miss',
  'queued',
  'released',
  'confirmed',
  'failed',
  'waiters-failed',
  'probe-failed',
  'stale',
  'expired',
  'evicted',
  'flushed',
  'ignored:not-for-us',
  'ignored:static',
  'drop:bad-sender-mac',
  'drop:bad-sender-ip',
  'drop:own-packet',
  'drop:address-conflict',
  'drop:learn-table-full',
  'drop:bad-target',
  'drop:table-full',
  'drop:queue-full',
  'drop:pool-full',
] as const;
export type ArpCounter = (typeof ARP_COUNTERS)[number];
const C = counterSlots(ARP_COUNTERS);

export type ArpQuery = 'resolved' | 'queued' | 'dropped';

export interface ArpCacheOptions {
  /** Entries. Default 64. */
  capacity?: number;
  /** Handles queued per INCOMPLETE entry. Default 4. */
  maxQueuePerEntry?: number;
  /** Handles queued in all. Default 64. */
  maxQueued?: number;
  /** Requests (or unicast probes) before giving up. Default 3. */
  maxRequests?: number;
  /** Interval between requests. Default 1 s. */
  retransUs?: number;
  /** REACHABLE lifetime. Default 30 s. */
  reachableUs?: number;
  /** Unused STALE lifetime. Default 60 s. */
  staleUs?: number;
  /** Delay before the first unicast probe of a used STALE entry. Default 5 s. */
  probeDelayUs?: number;
}

/** What `input` produced (reused between calls). */
export class ArpInputResult {
  /** `reply` holds a reply to emit to `replyEthDst`. */
  replyReady = false;
  readonly reply = new ArpRepr();
  replyEthDst = 0;
  /** Handles released by this packet (they were waiting for `releasedMac`). */
  releasedCount = 0;
  releasedMac = 0;
  readonly released: Float64Array;

  constructor(maxPerEntry: number) {
    this.released = new Float64Array(maxPerEntry);
  }
}

/** What `poll` produced (reused between calls). */
export class ArpPollResult {
  /** Requests to send: target IP and Ethernet destination (broadcast, or unicast for a probe). */
  requestCount = 0;
  readonly requestIps: Uint32Array;
  readonly requestEthDsts: Float64Array;
  /** Handles whose resolution failed (host unreachable), with the address each was waiting for. */
  failedCount = 0;
  readonly failed: Float64Array;
  readonly failedIps: Uint32Array;
  /** When to poll next (Infinity: nothing pending). */
  nextDeadlineUs = Infinity;
  /** Entries whose deadline this poll ran (each changed a counter): 0 means the counters did not move. */
  fired = 0;

  constructor(capacity: number, maxQueued: number) {
    this.requestIps = new Uint32Array(capacity);
    this.requestEthDsts = new Float64Array(capacity);
    this.failed = new Float64Array(maxQueued);
    this.failedIps = new Uint32Array(maxQueued);
  }
}

/** One entry, for inspection (allocating; tests and stats). */
export interface ArpEntryInfo {
  ip: number;
  mac: number;
  state: ArpStateName;
  deadlineUs: number;
  lastUsedUs: number;
  queued: number;
  sent: number;
}

export class ArpCache {
  readonly counters = new ReasonCounters(ARP_COUNTERS);
  readonly capacity: number;
  readonly maxQueuePerEntry: number;
  readonly maxQueued: number;
  readonly maxRequests: number;
  readonly retransUs: number;
  readonly reachableUs: number;
  readonly staleUs: number;
  readonly probeDelayUs: number;

  /** MAC answered by the last 'resolved' query. */
  resolvedMac = 0;
  /**
   * The earliest deadline of any entry, kept by poll()'s scan and by setDeadline() (-Infinity: unknown,
   * the next poll() scans). poll() before it has nothing to do and skips the scan.
   */
  private nextDue = Infinity;

  private mac = 0;
  private ips: number[] = [];

  // Entries.
  private readonly eIp: Uint32Array;
  private readonly eMac: Float64Array;
  private readonly eState: Uint8Array;
  private readonly eDeadline: Float64Array;
  private readonly eUsed: Float64Array;
  private readonly eSent: Uint8Array;
  private readonly eHead: Int32Array;
  private readonly eTail: Int32Array;
  private readonly eQLen: Int32Array;
  private readonly index = new Map<number, number>();
  private readonly freeSlots: Int32Array;
  private freeTop: number;

  // Queue slots: a linked list per entry over one pool.
  private readonly qHandle: Float64Array;
  private readonly qNext: Int32Array;
  private readonly qFree: Int32Array;
  private qFreeTop: number;

  private readonly inResult: ArpInputResult;
  private readonly pollResult: ArpPollResult;

  constructor(options: ArpCacheOptions = {}) {
    const cap = (this.capacity = Math.max(1, options.capacity ?? 64));
    this.maxQueuePerEntry = Math.max(0, options.maxQueuePerEntry ?? 4);
    const mq = (this.maxQueued = Math.max(0, options.maxQueued ?? 64));
    this.maxRequests = Math.max(1, options.maxRequests ?? 3);
    this.retransUs = options.retransUs ?? 1_000_000;
    this.reachableUs = options.reachableUs ?? 30_000_000;
    this.staleUs = options.staleUs ?? 60_000_000;
    this.probeDelayUs = options.probeDelayUs ?? 5_000_000;
    this.eIp = new Uint32Array(cap);
    this.eMac = new Float64Array(cap);
    this.eState = new Uint8Array(cap);
    this.eDeadline = new Float64Array(cap);
    this.eUsed = new Float64Array(cap);
    this.eSent = new Uint8Array(cap);
    this.eHead = new Int32Array(cap).fill(-1);
    this.eTail = new Int32Array(cap).fill(-1);
    this.eQLen = new Int32Array(cap);
    this.freeSlots = new Int32Array(cap);
    for (let i = 0; i < cap; i++) this.freeSlots[i] = cap - 1 - i; // pop gives slot 0 first
    this.freeTop = cap;
    this.qHandle = new Float64Array(mq);
    this.qNext = new Int32Array(mq).fill(-1);
    this.qFree = new Int32Array(mq);
    for (let i = 0; i < mq; i++) this.qFree[i] = mq - 1 - i;
    this.qFreeTop = mq;
    this.inResult = new ArpInputResult(this.maxQueuePerEntry);
    this.pollResult = new ArpPollResult(cap, mq);
  }

  /** Our MAC and the IPv4 addresses we answer for (the first is the sender of our requests). */
  setLocal(mac: number, ips: readonly number[]): void {
    this.mac = mac;
    this.ips = ips.map((x) => x >>> 0);
  }

  get localMac(): number {
    return this.mac;
  }

  /** Entries in use. */
  get size(): number {
    return this.capacity - this.freeTop;
  }

  /** Handles held in all queues. */
  get queued(): number {
    return this.maxQueued - this.qFreeTop;
  }

  /**
   * Resolve `ip` for sending the packet `handle` (see the header for the three answers). Broadcast
   * and multicast addresses resolve at once to their mapped MACs; 0.0.0.0 is refused.
   */
  query(ip: number, handle: number, nowUs: number): ArpQuery {
    ip >>>= 0;
    const v = this.counters.values;
    if (ip === IPV4_BROADCAST) {
      this.resolvedMac = MAC_BROADCAST;
      return 'resolved';
    }
    if (ipv4IsMulticast(ip)) {
      this.resolvedMac = multicastMac(ip);
      return 'resolved';
    }
    if (ip === 0) {
      v[C['drop:bad-target']]++;
      return 'dropped';
    }
    let s = this.index.get(ip);
    if (s !== undefined) {
      const st = this.eState[s];
      if (st !== ARP_STATE_INCOMPLETE) {
        v[C['query-hit']]++;
        this.eUsed[s] = nowUs;
        if (st === ARP_STATE_STALE) {
          // In use but unconfirmed: keep using it, re-probe unless confirmed meanwhile (RFC 4861 DELAY).
          this.eState[s] = ARP_STATE_PROBE;
          this.eSent[s] = 0;
          this.setDeadline(s, nowUs + this.probeDelayUs);
        }
        this.resolvedMac = this.eMac[s];
        return 'resolved';
      }
      v[C['query-miss']]++;
      return this.enqueue(s, handle);
    }
    v[C['query-miss']]++;
    if (handle !== ARP_NO_HANDLE && this.qFreeTop === 0) {
      v[C['drop:pool-full']]++;
      return 'dropped';
    }
    if (handle !== ARP_NO_HANDLE && this.maxQueuePerEntry === 0) {
      v[C['drop:queue-full']]++;
      return 'dropped';
    }
    s = this.allocate(ip, nowUs);
    if (s < 0) {
      v[C['drop:table-full']]++;
      return 'dropped';
    }
    this.eState[s] = ARP_STATE_INCOMPLETE;
    this.setDeadline(s, nowUs); // first request at the next poll
    return this.enqueue(s, handle);
  }

  /** Upper-layer proof that `ip` is reachable (e.g. new data ACKed): REACHABLE again. */
  confirm(ip: number, nowUs: number): void {
    const s = this.index.get(ip >>> 0);
    if (s === undefined) return;
    const st = this.eState[s];
    if (st === ARP_STATE_REACHABLE || st === ARP_STATE_STALE || st === ARP_STATE_PROBE) {
      this.counters.values[C.confirmed]++;
      this.eState[s] = ARP_STATE_REACHABLE;
      this.eSent[s] = 0;
      this.setDeadline(s, nowUs + this.reachableUs);
    }
  }

  /** Process a received ARP packet (see the header). */
  input(arp: ArpRepr, nowUs: number): ArpInputResult {
    const res = this.inResult;
    res.replyReady = false;
    res.releasedCount = 0;
    const v = this.counters.values;
    const op = arp.operation;
    const sip = arp.senderIp >>> 0;
    const sha = arp.senderMac;
    const tip = arp.targetIp >>> 0;
    v[op === ARP_OP_REQUEST ? C['rx-request'] : C['rx-reply']]++;

    if (sha === MAC_ZERO || macIsMulticast(sha)) {
      v[C['drop:bad-sender-mac']]++;
      return res;
    }
    if (sha === this.mac) {
      v[C['drop:own-packet']]++;
      return res;
    }
    const targetIsUs = this.isOurs(tip);
    if (sip === 0) {
      // RFC 5227 probe: someone checks whether an address is free. Never learnt; if it is ours,
      // answer so the prober backs off (Linux does the same).
      v[C['rx-probe']]++;
      if (op === ARP_OP_REQUEST && targetIsUs) this.makeReply(res, tip, sha, 0);
      else v[C['ignored:not-for-us']]++;
      return res;
    }
    if (sip === IPV4_BROADCAST || ipv4IsMulticast(sip) || sip >>> 24 === 127 || sip >>> 24 === 0) {
      v[C['drop:bad-sender-ip']]++;
      return res;
    }
    if (this.isOurs(sip)) {
      // Another host claims our address (RFC 5227 §2.4 conflict); never learn it.
      v[C['drop:address-conflict']]++;
      return res;
    }
    if (sip === tip) v[C['rx-gratuitous']]++;

    const s = this.index.get(sip);
    if (s !== undefined) {
      this.merge(s, sha, nowUs, res);
    } else if (targetIsUs) {
      const n = this.allocate(sip, nowUs);
      if (n < 0) {
        v[C['drop:learn-table-full']]++;
      } else {
        v[C.learned]++;
        this.eState[n] = ARP_STATE_REACHABLE;
        this.eMac[n] = sha;
        this.setDeadline(n, nowUs + this.reachableUs);
      }
    } else {
      v[C['ignored:not-for-us']]++;
    }

    if (op === ARP_OP_REQUEST && targetIsUs) this.makeReply(res, tip, sha, sip);
    return res;
  }

  /** Run timers (see the header). */
  poll(nowUs: number): ArpPollResult {
    const res = this.pollResult;
    res.requestCount = 0;
    res.failedCount = 0;
    res.fired = 0;
    // Nothing is due before the earliest deadline: no scan (the host loop polls before every park).
    if (nowUs < this.nextDue) {
      res.nextDeadlineUs = this.nextDue;
      return res;
    }
    const v = this.counters.values;
    let next = Infinity;
    for (let s = 0; s < this.capacity; s++) {
      const st = this.eState[s];
      if (st === ARP_STATE_FREE || st === ARP_STATE_STATIC) continue;
      if (this.eDeadline[s] <= nowUs) {
        res.fired++;
        switch (st) {
          case ARP_STATE_INCOMPLETE:
            if (this.eSent[s] < this.maxRequests) {
              this.request(res, s, MAC_BROADCAST);
              v[C['tx-request']]++;
              this.eDeadline[s] = nowUs + this.retransUs;
            } else {
              // RFC 1122 §2.3.2.1: give up after a bounded number of requests; queued packets fail.
              v[C.failed]++;
              this.failQueue(s, res);
              this.release(s);
              continue;
            }
            break;
          case ARP_STATE_PROBE:
            if (this.eSent[s] < this.maxRequests) {
              this.request(res, s, this.eMac[s]);
              v[C['tx-probe']]++;
              this.eDeadline[s] = nowUs + this.retransUs;
            } else {
              v[C['probe-failed']]++;
              this.release(s);
              continue;
            }
            break;
          case ARP_STATE_REACHABLE:
            v[C.stale]++;
            this.eState[s] = ARP_STATE_STALE;
            this.eDeadline[s] = nowUs + this.staleUs;
            break;
          case ARP_STATE_STALE:
            v[C.expired]++;
            this.release(s);
            continue;
        }
      }
      if (this.eDeadline[s] < next) next = this.eDeadline[s];
    }
    res.nextDeadlineUs = next;
    this.nextDue = next;
    return res;
  }

  /**
   * Set entry `s`'s deadline outside poll()'s scan, keeping `nextDue` the earliest deadline: exact when
   * lowered; a later deadline for the entry that may have held the earliest one forces the next poll()
   * to scan (ARP traffic only: no data packet moves a deadline).
   */
  private setDeadline(s: number, atUs: number): void {
    const old = this.eDeadline[s];
    this.eDeadline[s] = atUs;
    if (atUs < this.nextDue) this.nextDue = atUs;
    else if (atUs > old && old <= this.nextDue) this.nextDue = -Infinity;
  }

  /** Earliest deadline without running anything (Infinity when none). */
  nextDeadline(): number {
    let next = Infinity;
    for (let s = 0; s < this.capacity; s++) {
      const st = this.eState[s];
      if (st !== ARP_STATE_FREE && st !== ARP_STATE_STATIC && this.eDeadline[s] < next) next = this.eDeadline[s];
    }
    return next;
  }

  /**
   * Add or replace a permanent entry. Handles that were waiting on it are released: they are in the
   * returned input result (`releasedCount`, `released`, `releasedMac`). 'drop:table-full' when no
   * entry could be made (every entry INCOMPLETE or STATIC).
   */
  addStatic(ip: number, mac: number): ArpInputResult | 'drop:table-full' {
    ip >>>= 0;
    const res = this.inResult;
    res.replyReady = false;
    res.releasedCount = 0;
    let s = this.index.get(ip);
    if (s === undefined) {
      s = this.allocate(ip, 0);
      if (s < 0) return 'drop:table-full';
    } else {
      this.releaseQueue(s, mac, res);
    }
    this.eState[s] = ARP_STATE_STATIC;
    this.eMac[s] = mac;
    this.setDeadline(s, Infinity);
    return res;
  }

  /**
   * Drop every dynamic entry (static ones stay). Every queued handle is returned in the poll result's
   * `failed` list; no requests; `nextDeadlineUs` is Infinity (static entries have no deadline).
   */
  flush(): ArpPollResult {
    const res = this.pollResult;
    res.requestCount = 0;
    res.failedCount = 0;
    for (let s = 0; s < this.capacity; s++) {
      const st = this.eState[s];
      if (st === ARP_STATE_FREE || st === ARP_STATE_STATIC) continue;
      this.counters.values[C.flushed]++;
      this.failQueue(s, res);
      this.release(s);
    }
    res.nextDeadlineUs = Infinity;
    return res;
  }

  /** The entry for `ip`, or null (allocates). */
  entry(ip: number): ArpEntryInfo | null {
    const s = this.index.get(ip >>> 0);
    return s === undefined ? null : this.info(s);
  }

  /** Every entry in slot order (allocates). */
  entries(): ArpEntryInfo[] {
    const out: ArpEntryInfo[] = [];
    for (let s = 0; s < this.capacity; s++) if (this.eState[s] !== ARP_STATE_FREE) out.push(this.info(s));
    return out;
  }

  /** Fill `out` with our request for `targetIp` (sender: our MAC and first address). */
  makeRequest(targetIp: number, out: ArpRepr): ArpRepr {
    out.operation = ARP_OP_REQUEST;
    out.senderMac = this.mac;
    out.senderIp = this.ips.length > 0 ? this.ips[0] : 0;
    out.targetMac = MAC_ZERO;
    out.targetIp = targetIp >>> 0;
    return out;
  }

  // --- internals -------------------------------------------------------------------------------

  private isOurs(ip: number): boolean {
    const a = this.ips;
    for (let i = 0; i < a.length; i++) if (a[i] === ip) return true;
    return false;
  }

  private makeReply(res: ArpInputResult, ourIp: number, toMac: number, toIp: number): void {
    const r = res.reply;
    r.operation = ARP_OP_REPLY;
    r.senderMac = this.mac;
    r.senderIp = ourIp;
    r.targetMac = toMac;
    r.targetIp = toIp;
    res.replyEthDst = toMac;
    res.replyReady = true;
    this.counters.values[C['tx-reply']]++;
  }

  /** Any ARP from the host of entry s: new MAC, REACHABLE, release waiters. */
  private merge(s: number, sha: number, nowUs: number, res: ArpInputResult): void {
    const v = this.counters.values;
    const st = this.eState[s];
    if (st === ARP_STATE_STATIC) {
      v[C['ignored:static']]++;
      return;
    }
    if (st === ARP_STATE_INCOMPLETE) {
      v[C.resolved]++;
      this.releaseQueue(s, sha, res);
    } else {
      v[C.refreshed]++;
      if (this.eMac[s] !== sha) v[C['mac-changed']]++;
    }
    this.eMac[s] = sha;
    this.eState[s] = ARP_STATE_REACHABLE;
    this.eSent[s] = 0;
    this.setDeadline(s, nowUs + this.reachableUs);
  }

  private request(res: ArpPollResult, s: number, ethDst: number): void {
    const i = res.requestCount++;
    res.requestIps[i] = this.eIp[s];
    res.requestEthDsts[i] = ethDst;
    this.eSent[s]++;
  }

  private enqueue(s: number, handle: number): ArpQuery {
    if (handle === ARP_NO_HANDLE) return 'queued';
    const v = this.counters.values;
    if (this.eQLen[s] >= this.maxQueuePerEntry) {
      v[C['drop:queue-full']]++;
      return 'dropped';
    }
    if (this.qFreeTop === 0) {
      v[C['drop:pool-full']]++;
      return 'dropped';
    }
    const q = this.qFree[--this.qFreeTop];
    this.qHandle[q] = handle;
    this.qNext[q] = -1;
    if (this.eTail[s] < 0) this.eHead[s] = q;
    else this.qNext[this.eTail[s]] = q;
    this.eTail[s] = q;
    this.eQLen[s]++;
    v[C.queued]++;
    return 'queued';
  }

  private releaseQueue(s: number, mac: number, res: ArpInputResult): void {
    res.releasedMac = mac;
    for (let q = this.eHead[s]; q >= 0; ) {
      const next = this.qNext[q];
      res.released[res.releasedCount++] = this.qHandle[q];
      this.qFree[this.qFreeTop++] = q;
      q = next;
    }
    this.counters.values[C.released] += this.eQLen[s];
    this.eHead[s] = this.eTail[s] = -1;
    this.eQLen[s] = 0;
  }

  private failQueue(s: number, res: ArpPollResult): void {
    const ip = this.eIp[s];
    for (let q = this.eHead[s]; q >= 0; ) {
      const next = this.qNext[q];
      const i = res.failedCount++;
      res.failed[i] = this.qHandle[q];
      res.failedIps[i] = ip;
      this.qFree[this.qFreeTop++] = q;
      q = next;
    }
    this.counters.values[C['waiters-failed']] += this.eQLen[s];
    this.eHead[s] = this.eTail[s] = -1;
    this.eQLen[s] = 0;
  }

  /** A fresh slot for ip (state FREE, caller sets it), evicting if full; -1 if impossible. */
  private allocate(ip: number, nowUs: number): number {
    let s: number;
    if (this.freeTop > 0) {
      s = this.freeSlots[--this.freeTop];
    } else {
      s = this.victim();
      if (s < 0) return -1;
      this.counters.values[C.evicted]++;
      this.index.delete(this.eIp[s]);
    }
    this.eIp[s] = ip;
    this.eMac[s] = 0;
    this.eState[s] = ARP_STATE_FREE;
    this.eSent[s] = 0;
    this.eUsed[s] = nowUs;
    this.setDeadline(s, Infinity);
    this.eHead[s] = this.eTail[s] = -1;
    this.eQLen[s] = 0;
    this.index.set(ip, s);
    return s;
  }

  /** LRU STALE entry, else LRU REACHABLE/PROBE entry; -1 if only INCOMPLETE/STATIC remain. */
  private victim(): number {
    let best = -1;
    let bestStale = false;
    for (let s = 0; s < this.capacity; s++) {
      const st = this.eState[s];
      if (st !== ARP_STATE_STALE && st !== ARP_STATE_REACHABLE && st !== ARP_STATE_PROBE) continue;
      const stale = st === ARP_STATE_STALE;
      if (best < 0 || (stale && !bestStale) || (stale === bestStale && this.eUsed[s] < this.eUsed[best])) {
        best = s;
        bestStale = stale;
      }
    }
    return best;
  }

  /** Free slot s (its queue must be empty). */
  private release(s: number): void {
    this.index.delete(this.eIp[s]);
    this.eState[s] = ARP_STATE_FREE;
    this.setDeadline(s, Infinity);
    this.freeSlots[this.freeTop++] = s;
  }

  private info(s: number): ArpEntryInfo {
    return {
      ip: this.eIp[s],
      mac: this.eMac[s],
      state: STATE_NAMES[this.eState[s]],
      deadlineUs: this.eDeadline[s],
      lastUsedUs: this.eUsed[s],
      queued: this.eQLen[s],
      sent: this.eSent[s],
    };
  }
}

/** RFC 1112 §6.4: 01:00:5e plus the low 23 bits of the group address. */
export function multicastMac(ip: number): number {
  return 0x01005e000000 + (ip & 0x7fffff);
}

/**
 * Write an Ethernet + ARP frame (padded with zeros to the 60-byte minimum) at `off`; returns its
 * length (60). Ethernet source is `arp.senderMac`.
 */
export function emitArpFrame(bytes: Uint8Array, off: number, ethDst: number, arp: ArpRepr): number {
  if (off < 0 || off + ETH_MIN_FRAME_LEN > bytes.length) {
    throw new RangeError(`arp frame: need ${ETH_MIN_FRAME_LEN} bytes at ${off}, buffer has ${bytes.length}`);
  }
  writeMac(bytes, off, ethDst);
  writeMac(bytes, off + 6, arp.senderMac);
  writeU16(bytes, off + 12, ETHERTYPE_ARP);
  arp.emit(bytes, off + ETH_HEADER_LEN);
  bytes.fill(0, off + ETH_HEADER_LEN + ARP_LEN, off + ETH_MIN_FRAME_LEN);
  return ETH_MIN_FRAME_LEN;
}
