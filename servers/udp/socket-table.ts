/**
 * The UDP socket table, kept in the udp server's shared state (ctx.state) so that a restarted
 * incarnation finds every socket, binding and connection exactly as its predecessor left them. Only
 * the udp server writes it (one thread); the main thread may read the counters region.
 *
 * LAYOUT (Int32 words from the start of the SAB)
 *   0    header: [0] magic 'KUDP'  [1] layout version  [2] slot count  [3] words per slot
 *        [4] first slot word  [5] first counter word  [6] counter words  [7] journal word
 *        [8] ephemeral PRNG state (u32)  [9] bind sequence (u32, orders bindings)  [10] the seed
 *        [11] attaches (incarnations that found the table)
 *   16   journal (see CRASHES): [0] valid  [1] slot  [2] PRNG state  [3] bind sequence  [4..19] image
 *   48   counters: COUNTER_WORDS words, UDP_COUNTERS order (counters.ts), Atomics.add
 *   128  slots, SLOT_WORDS words each:
 *          [0] state (0 free, 1 bound)  [1] sockId (u32, allocated by the shim)
 *          [2] bound address (as requested; 0 = any)  [3] local address (the bound one, or after
 *          connect() on a wildcard socket the source address chosen for the peer; used for demux)
 *          [4] local port  [5] remote address  [6] remote port  [7] flags (F_*)  [8] TTL (0: default)
 *          [9] bind sequence number (later bindings win ties, as Linux's hash chains do)
 * The 256 KiB state holds 4088 slots; `maxSockets` lowers that (tests).
 *
 * CRASHES (the thread may die at any instruction)
 *   A slot changes through one journaled write: the new slot image and the new header words go to the
 *   journal, `valid` is set (the commit point), the image is copied into the slot, `valid` is cleared.
 *   attach() redoes a valid journal, so a slot is never seen half-written. The heap indexes (by sockId,
 *   by port, free slots) are caches, rebuilt from the slots at every attach.
 *
 * SEMANTICS (Linux's, for IPv4 UDP)
 *   - bind: the address must be 0.0.0.0, one of ours (127/8, the interface address), a broadcast or a
 *     multicast address (else EADDRNOTAVAIL). Port 0 picks an ephemeral port in 49152..65535 from a
 *     seeded sequence stored here (deterministic across restarts), never shared with another socket.
 *     Two bindings of one port conflict (EADDRINUSE) unless both set SO_REUSEADDR, or their local
 *     addresses are both specific and differ.
 *   - Idempotent per sockId: a BIND, CONNECT or CLOSE replayed after a crash, with the same sockId and
 *     arguments, returns the same result instead of failing against its own earlier effect.
 *   - demux (unicast): among the sockets on the destination port whose local address is 0.0.0.0 or the
 *     destination, and that are unconnected or connected to exactly the source, the best scores: a
 *     connected match first, then a specific local address, then the wildcard; ties go to the latest
 *     binding. Broadcast/multicast: every such socket.
 */
import { IPV4_BROADCAST, ipv4IsLoopback, ipv4IsMulticast, ipv4Mask } from '../wire/ipv4.js';
import { BINDF_EXCLUSIVE, BINDF_REUSEADDR, OPT_BROADCAST, OPT_TTL, UERR } from './api.js';
import { UDP_COUNTERS, type UdpCounterName } from './counters.js';

const MAGIC = 0x4b554450; // 'KUDP'
const VERSION = 1;

const H_MAGIC = 0;
const H_VERSION = 1;
const H_SLOTS = 2;
const H_SLOT_WORDS = 3;
const H_SLOTS_OFF = 4;
const H_COUNTERS_OFF = 5;
const H_COUNTERS = 6;
const H_JOURNAL_OFF = 7;
const H_RNG = 8;
const H_BIND_SEQ = 9;
const H_SEED = 10;
const H_ATTACHES = 11;

const JOURNAL_OFF = 16;
const J_VALID = 0;
const J_SLOT = 1;
const J_RNG = 2;
const J_BIND_SEQ = 3;
const J_IMAGE = 4;

const COUNTERS_OFF = 48;
const COUNTER_WORDS = 32;
const SLOTS_OFF = 128;
export const SLOT_WORDS = 16;

const S_STATE = 0;
const S_SOCK_ID = 1;
const S_BIND_ADDR = 2;
const S_LOCAL_ADDR = 3;
const S_LOCAL_PORT = 4;
const S_REMOTE_ADDR = 5;
const S_REMOTE_PORT = 6;
const S_FLAGS = 7;
const S_TTL = 8;
const S_BIND_SEQ = 9;

const ST_BOUND = 1;

export const F_REUSEADDR = 1;
export const F_EXCLUSIVE = 2;
export const F_BROADCAST = 4;
export const F_CONNECTED = 8;

export const EPHEMERAL_LOW = 49152;
export const EPHEMERAL_HIGH = 65535;
const EPHEMERAL_COUNT = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1;
const LOOPBACK = 0x7f000001;
const DEFAULT_SEED = 0x5eed_0d9a;

/** What the table needs to know of the interface (for bind addresses and source selection). */
export interface TableEnv {
  /** The interface address, 0 when the stack has no interface (loopback only). */
  ifAddr: number;
  /** Its prefix length. */
  prefix: number;
}

export interface SocketTableOptions {
  /** Seed of the ephemeral port sequence; used only when the table is created (not on re-attach). */
  seed?: number;
  /** Fewer slots than the SAB holds; used only when the table is created. */
  maxSockets?: number;
}

export interface BindResult {
  code: number;
  addr: number;
  port: number;
}

/** Test hook: called at the named points of a slot write; throwing from it simulates a crash there. */
export type FailPoint = (where: 'journaled' | 'half-applied') => void;

/** 255.255.255.255 or the interface's directed broadcast address. */
export function isBroadcast(a: number, env: TableEnv): boolean {
  if (a === IPV4_BROADCAST) return true;
  if (env.ifAddr === 0 || env.prefix > 30) return false;
  return a === ((env.ifAddr | ~ipv4Mask(env.prefix)) >>> 0);
}

/** An address a socket may bind to: any, ours, a broadcast or a multicast address. */
export function isBindable(a: number, env: TableEnv): boolean {
  return a === 0 || ipv4IsLoopback(a) || (env.ifAddr !== 0 && a === env.ifAddr) || isBroadcast(a, env) || ipv4IsMulticast(a);
}

/** The source address for datagrams to `dst` (this stack has one interface): 0 when unreachable. */
export function sourceFor(dst: number, env: TableEnv): number {
  if (ipv4IsLoopback(dst)) return LOOPBACK;
  return env.ifAddr;
}

/** A unicast address usable as a source (not 0, broadcast or multicast). */
export function isUnicastLocal(a: number, env: TableEnv): boolean {
  return a !== 0 && !isBroadcast(a, env) && !ipv4IsMulticast(a);
}

/** The table's counters read straight from a state SAB (zeros if no table was ever created in it). */
export function udpCounters(sab: SharedArrayBuffer): Record<UdpCounterName, number> {
  const w = new Int32Array(sab);
  const out = {} as Record<UdpCounterName, number>;
  const ok = w.length > SLOTS_OFF && Atomics.load(w, H_MAGIC) === MAGIC && w[H_VERSION] === VERSION;
  const base = ok ? w[H_COUNTERS_OFF] : 0;
  UDP_COUNTERS.forEach((n, i) => (out[n] = ok ? Atomics.load(w, base + i) >>> 0 : 0));
  return out;
}

export class SocketTable {
  readonly words: Int32Array;
  readonly capacity: number;
  /** True if attach() found no valid table and created an empty one. */
  readonly formatted: boolean;
  /** True if attach() completed a slot write a crash had interrupted. */
  readonly redone: boolean;
  failPoint: FailPoint | null = null;

  private readonly slotsOff: number;
  private readonly countersOff: number;
  private readonly bySock = new Map<number, number>();
  private readonly byPort = new Map<number, number[]>();
  private readonly free: number[] = [];
  private readonly image = new Int32Array(SLOT_WORDS);

  private constructor(words: Int32Array, formatted: boolean) {
    this.words = words;
    this.formatted = formatted;
    this.capacity = words[H_SLOTS];
    this.slotsOff = words[H_SLOTS_OFF];
    this.countersOff = words[H_COUNTERS_OFF];
    this.redone = this.redoJournal();
    Atomics.add(words, H_ATTACHES, 1);
    this.rebuild();
  }

  /** Attach to the table in `sab`, creating it if there is none (or it is not a valid table). */
  static attach(sab: SharedArrayBuffer, opts: SocketTableOptions = {}): SocketTable {
    const words = new Int32Array(sab);
    const room = Math.floor((words.length - SLOTS_OFF) / SLOT_WORDS);
    if (room < 1 || UDP_COUNTERS.length > COUNTER_WORDS) {
      throw Object.assign(new RangeError(`udp socket table: state of ${sab.byteLength} bytes holds no slot`), { code: 'ERR_OUT_OF_RANGE' });
    }
    const valid =
      Atomics.load(words, H_MAGIC) === MAGIC &&
      words[H_VERSION] === VERSION &&
      words[H_SLOT_WORDS] === SLOT_WORDS &&
      words[H_SLOTS_OFF] === SLOTS_OFF &&
      words[H_COUNTERS_OFF] === COUNTERS_OFF &&
      words[H_JOURNAL_OFF] === JOURNAL_OFF &&
      words[H_SLOTS] >= 1 &&
      words[H_SLOTS] <= room;
    if (!valid) {
      const slots = Math.max(1, Math.min(room, opts.maxSockets ?? room));
      const seed = (opts.seed ?? DEFAULT_SEED) >>> 0;
      words.fill(0);
      words[H_VERSION] = VERSION;
      words[H_SLOTS] = slots;
      words[H_SLOT_WORDS] = SLOT_WORDS;
      words[H_SLOTS_OFF] = SLOTS_OFF;
      words[H_COUNTERS_OFF] = COUNTERS_OFF;
      words[H_COUNTERS] = COUNTER_WORDS;
      words[H_JOURNAL_OFF] = JOURNAL_OFF;
      words[H_RNG] = seed | 0;
      words[H_SEED] = seed | 0;
      Atomics.store(words, H_MAGIC, MAGIC); // last: publishes the formatted header
    }
    return new SocketTable(words, !valid);
  }

  // ---- counters -------------------------------------------------------------------------------

  count(slot: number, n = 1): void {
    Atomics.add(this.words, this.countersOff + slot, n);
  }

  counter(name: UdpCounterName): number {
    return Atomics.load(this.words, this.countersOff + UDP_COUNTERS.indexOf(name)) >>> 0;
  }

  /** Every counter by name (allocates). */
  counters(): Record<UdpCounterName, number> {
    const out = {} as Record<UdpCounterName, number>;
    UDP_COUNTERS.forEach((n, i) => (out[n] = Atomics.load(this.words, this.countersOff + i) >>> 0));
    return out;
  }

  // ---- slot accessors (slot: an index from lookup()/slotOf()) -----------------------------------

  get size(): number {
    return this.bySock.size;
  }
  get attaches(): number {
    return Atomics.load(this.words, H_ATTACHES);
  }
  slotOf(sockId: number): number {
    return this.bySock.get(sockId >>> 0) ?? -1;
  }
  sockIdOf(slot: number): number {
    return this.w(slot, S_SOCK_ID) >>> 0;
  }
  bindAddrOf(slot: number): number {
    return this.w(slot, S_BIND_ADDR) >>> 0;
  }
  localAddrOf(slot: number): number {
    return this.w(slot, S_LOCAL_ADDR) >>> 0;
  }
  localPortOf(slot: number): number {
    return this.w(slot, S_LOCAL_PORT);
  }
  remoteAddrOf(slot: number): number {
    return this.w(slot, S_REMOTE_ADDR) >>> 0;
  }
  remotePortOf(slot: number): number {
    return this.w(slot, S_REMOTE_PORT);
  }
  flagsOf(slot: number): number {
    return this.w(slot, S_FLAGS);
  }
  ttlOf(slot: number): number {
    return this.w(slot, S_TTL);
  }
  isConnected(slot: number): boolean {
    return (this.w(slot, S_FLAGS) & F_CONNECTED) !== 0;
  }

  /** Every live socket (allocates; for tests and diagnostics). */
  list(): { sockId: number; bindAddr: number; localAddr: number; localPort: number; remoteAddr: number; remotePort: number; flags: number; ttl: number }[] {
    const out = [];
    for (const slot of this.bySock.values()) {
      out.push({
        sockId: this.sockIdOf(slot),
        bindAddr: this.bindAddrOf(slot),
        localAddr: this.localAddrOf(slot),
        localPort: this.localPortOf(slot),
        remoteAddr: this.remoteAddrOf(slot),
        remotePort: this.remotePortOf(slot),
        flags: this.flagsOf(slot),
        ttl: this.ttlOf(slot),
      });
    }
    return out.sort((a, b) => a.sockId - b.sockId);
  }

  // ---- operations (each returns a UERR code) ----------------------------------------------------

  bind(sockId: number, addr: number, port: number, bindFlags: number, env: TableEnv): BindResult {
    sockId >>>= 0;
    addr >>>= 0;
    const have = this.bySock.get(sockId);
    if (have !== undefined) {
      // A replay (or a repeated request): the same binding is success, anything else is EINVAL, as
      // bind() on a bound socket.
      const same = this.bindAddrOf(have) === addr && (port === 0 || port === this.localPortOf(have));
      return { code: same ? UERR.OK : UERR.EINVAL, addr: this.localAddrOf(have), port: this.localPortOf(have) };
    }
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) return { code: UERR.EINVAL, addr, port: 0 };
    if (!isBindable(addr, env)) return { code: UERR.EADDRNOTAVAIL, addr, port };
    if (this.free.length === 0) return { code: UERR.EMFILE, addr, port };
    const reuse = (bindFlags & BINDF_REUSEADDR) !== 0;
    let rng = this.words[H_RNG] >>> 0;
    if (port === 0) {
      rng = (rng + 0x6d2b79f5) >>> 0;
      port = this.pickEphemeral(mix(rng));
      if (port === 0) return { code: UERR.EADDRINUSE, addr, port: 0 };
    } else if (this.conflicts(addr, port, reuse)) {
      return { code: UERR.EADDRINUSE, addr, port };
    }
    const seq = (this.words[H_BIND_SEQ] + 1) >>> 0;
    const img = this.image;
    img.fill(0);
    img[S_STATE] = ST_BOUND;
    img[S_SOCK_ID] = sockId | 0;
    img[S_BIND_ADDR] = addr | 0;
    img[S_LOCAL_ADDR] = addr | 0;
    img[S_LOCAL_PORT] = port;
    img[S_FLAGS] = (reuse ? F_REUSEADDR : 0) | (bindFlags & BINDF_EXCLUSIVE ? F_EXCLUSIVE : 0);
    img[S_BIND_SEQ] = seq | 0;
    const slot = this.free[this.free.length - 1];
    this.write(slot, rng, seq);
    return { code: UERR.OK, addr, port };
  }

  connect(sockId: number, addr: number, port: number, env: TableEnv): BindResult {
    sockId >>>= 0;
    addr >>>= 0;
    if (!Number.isInteger(port) || port < 1 || port > 0xffff) return { code: UERR.EINVAL, addr: 0, port: 0 };
    // connect() to 0.0.0.0 means this host (Linux routes it to the loopback).
    if (addr === 0) addr = LOOPBACK;
    let slot = this.bySock.get(sockId);
    if (slot === undefined) {
      const b = this.bind(sockId, 0, 0, 0, env);
      if (b.code !== UERR.OK) return b;
      slot = this.bySock.get(sockId)!;
    }
    const laddr = this.localAddrOf(slot);
    const lport = this.localPortOf(slot);
    const flags = this.flagsOf(slot);
    if (flags & F_CONNECTED) {
      const same = this.remoteAddrOf(slot) === addr && this.remotePortOf(slot) === port;
      return { code: same ? UERR.OK : UERR.EISCONN, addr: laddr, port: lport };
    }
    if (isBroadcast(addr, env) && !(flags & F_BROADCAST)) return { code: UERR.EACCES, addr: laddr, port: lport };
    let local = laddr;
    if (local === 0) {
      local = sourceFor(addr, env);
      if (local === 0) return { code: UERR.ENETUNREACH, addr: laddr, port: lport };
    }
    this.loadImage(slot);
    this.image[S_LOCAL_ADDR] = local | 0;
    this.image[S_REMOTE_ADDR] = addr | 0;
    this.image[S_REMOTE_PORT] = port;
    this.image[S_FLAGS] = flags | F_CONNECTED;
    this.write(slot, this.words[H_RNG], this.words[H_BIND_SEQ]);
    return { code: UERR.OK, addr: local, port: lport };
  }

  disconnect(sockId: number): BindResult {
    const slot = this.bySock.get(sockId >>> 0);
    if (slot === undefined) return { code: UERR.EBADF, addr: 0, port: 0 };
    if (!this.isConnected(slot)) return { code: UERR.ENOTCONN, addr: this.localAddrOf(slot), port: this.localPortOf(slot) };
    this.loadImage(slot);
    // Back to the bound address (a wildcard socket forgets the source address chosen for the peer).
    this.image[S_LOCAL_ADDR] = this.image[S_BIND_ADDR];
    this.image[S_REMOTE_ADDR] = 0;
    this.image[S_REMOTE_PORT] = 0;
    this.image[S_FLAGS] &= ~F_CONNECTED;
    this.write(slot, this.words[H_RNG], this.words[H_BIND_SEQ]);
    return { code: UERR.OK, addr: this.localAddrOf(slot), port: this.localPortOf(slot) };
  }

  /** Free the socket (OK also when unknown: closing is idempotent). */
  close(sockId: number): number {
    const slot = this.bySock.get(sockId >>> 0);
    if (slot === undefined) return UERR.OK;
    this.image.fill(0);
    this.write(slot, this.words[H_RNG], this.words[H_BIND_SEQ]);
    return UERR.OK;
  }

  setOpt(sockId: number, opt: number, value: number): number {
    const slot = this.bySock.get(sockId >>> 0);
    if (slot === undefined) return UERR.EBADF;
    this.loadImage(slot);
    switch (opt) {
      case OPT_BROADCAST:
        this.image[S_FLAGS] = value ? this.image[S_FLAGS] | F_BROADCAST : this.image[S_FLAGS] & ~F_BROADCAST;
        break;
      case OPT_TTL:
        if (!Number.isInteger(value) || value < 1 || value > 255) return UERR.EINVAL;
        this.image[S_TTL] = value;
        break;
      default:
        return UERR.EINVAL;
    }
    this.write(slot, this.words[H_RNG], this.words[H_BIND_SEQ]);
    return UERR.OK;
  }

  // ---- demux ------------------------------------------------------------------------------------

  /** The socket a unicast datagram src:sport -> dst:dport is for, or -1. Allocates nothing. */
  lookup(dst: number, dport: number, src: number, sport: number): number {
    const list = this.byPort.get(dport);
    if (list === undefined) return -1;
    let best = -1;
    let bestScore = -1;
    let bestSeq = 0;
    for (let i = 0; i < list.length; i++) {
      const s = list[i];
      const score = this.score(s, dst, src, sport);
      if (score < 0) continue;
      const seq = this.w(s, S_BIND_SEQ) >>> 0;
      if (score > bestScore || (score === bestScore && seq > bestSeq)) {
        best = s;
        bestScore = score;
        bestSeq = seq;
      }
    }
    return best;
  }

  /**
   * Every socket a broadcast/multicast datagram is for, into `out` (in binding order); returns how
   * many (at most out.length).
   */
  lookupAll(dst: number, dport: number, src: number, sport: number, out: Int32Array): number {
    const list = this.byPort.get(dport);
    if (list === undefined) return 0;
    let n = 0;
    for (let i = 0; i < list.length && n < out.length; i++) {
      if (this.score(list[i], dst, src, sport) >= 0) out[n++] = list[i];
    }
    return n;
  }

  /**
   * The connected socket that sent lsrc:lport -> rdst:rport (the datagram an ICMP error quotes), or -1
   * (Linux reports ICMP errors to connected sockets only). A socket whose local address is lsrc wins
   * over a wildcard one.
   */
  lookupSender(lsrc: number, lport: number, rdst: number, rport: number): number {
    const list = this.byPort.get(lport);
    if (list === undefined) return -1;
    let any = -1;
    for (let i = 0; i < list.length; i++) {
      const s = list[i];
      if (!this.isConnected(s) || this.remoteAddrOf(s) !== rdst || this.remotePortOf(s) !== rport) continue;
      if (this.localAddrOf(s) === lsrc) return s;
      any = s;
    }
    return any;
  }

  /** -1: not for this socket; else 4 (connected match) + 2 (specific local address). */
  private score(s: number, dst: number, src: number, sport: number): number {
    const la = this.localAddrOf(s);
    if (la !== 0 && la !== dst) return -1;
    let score = la !== 0 ? 2 : 0;
    if (this.w(s, S_FLAGS) & F_CONNECTED) {
      if (this.remoteAddrOf(s) !== src || this.remotePortOf(s) !== sport) return -1;
      score += 4;
    }
    return score;
  }

  // ---- internals --------------------------------------------------------------------------------

  private w(slot: number, field: number): number {
    return this.words[this.slotsOff + slot * SLOT_WORDS + field];
  }

  private loadImage(slot: number): void {
    const base = this.slotsOff + slot * SLOT_WORDS;
    this.image.set(this.words.subarray(base, base + SLOT_WORDS));
  }

  private conflicts(addr: number, port: number, reuse: boolean): boolean {
    const list = this.byPort.get(port);
    if (list === undefined) return false;
    for (let i = 0; i < list.length; i++) {
      const s = list[i];
      if (reuse && this.w(s, S_FLAGS) & F_REUSEADDR) continue;
      const la = this.localAddrOf(s);
      if (addr === 0 || la === 0 || la === addr) return true;
    }
    return false;
  }

  /** A port no socket uses, scanning the ephemeral range from a point the sequence chose; 0 if none. */
  private pickEphemeral(r: number): number {
    const start = r % EPHEMERAL_COUNT;
    for (let i = 0; i < EPHEMERAL_COUNT; i++) {
      const p = EPHEMERAL_LOW + ((start + i) % EPHEMERAL_COUNT);
      if (!this.byPort.has(p)) return p;
    }
    return 0;
  }

  /** Journaled write of `this.image` into `slot` with the header words rng/bindSeq; updates the indexes. */
  private write(slot: number, rng: number, bindSeq: number): void {
    const w = this.words;
    const j = JOURNAL_OFF;
    w[j + J_SLOT] = slot;
    w[j + J_RNG] = rng | 0;
    w[j + J_BIND_SEQ] = bindSeq | 0;
    w.set(this.image, j + J_IMAGE);
    Atomics.store(w, j + J_VALID, 1); // commit point
    this.failPoint?.('journaled');
    this.unindex(slot);
    this.apply();
    Atomics.store(w, j + J_VALID, 0);
    this.index(slot);
  }

  /** Copy the journal into its slot and the header (idempotent: redo after a crash). */
  private apply(): void {
    const w = this.words;
    const j = JOURNAL_OFF;
    const slot = w[j + J_SLOT];
    const base = this.slotsOff + slot * SLOT_WORDS;
    for (let i = 0; i < SLOT_WORDS; i++) {
      w[base + i] = w[j + J_IMAGE + i];
      if (i === S_LOCAL_ADDR) this.failPoint?.('half-applied');
    }
    w[H_RNG] = w[j + J_RNG];
    w[H_BIND_SEQ] = w[j + J_BIND_SEQ];
  }

  private redoJournal(): boolean {
    const w = this.words;
    if (Atomics.load(w, JOURNAL_OFF + J_VALID) !== 1) return false;
    const slot = w[JOURNAL_OFF + J_SLOT];
    if (slot >= 0 && slot < this.capacity) this.apply();
    Atomics.store(w, JOURNAL_OFF + J_VALID, 0);
    return true;
  }

  private rebuild(): void {
    this.bySock.clear();
    this.byPort.clear();
    this.free.length = 0;
    for (let s = this.capacity - 1; s >= 0; s--) {
      if (this.w(s, S_STATE) === ST_BOUND) this.index(s);
      else this.free.push(s);
    }
  }

  private index(slot: number): void {
    if (this.w(slot, S_STATE) !== ST_BOUND) {
      if (!this.free.includes(slot)) this.free.push(slot);
      return;
    }
    const fi = this.free.lastIndexOf(slot);
    if (fi >= 0) this.free.splice(fi, 1);
    this.bySock.set(this.sockIdOf(slot), slot);
    const port = this.localPortOf(slot);
    const list = this.byPort.get(port);
    if (list === undefined) this.byPort.set(port, [slot]);
    else if (!list.includes(slot)) list.push(slot);
  }

  private unindex(slot: number): void {
    if (this.w(slot, S_STATE) !== ST_BOUND) return;
    this.bySock.delete(this.sockIdOf(slot));
    const port = this.localPortOf(slot);
    const list = this.byPort.get(port);
    if (list === undefined) return;
    const i = list.indexOf(slot);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byPort.delete(port);
  }
}

/** mulberry32's output function over a state word: spreads consecutive states over the range. */
function mix(state: number): number {
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
}
