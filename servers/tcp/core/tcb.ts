/**
 * The transmission control block (RFC 9293 §3.3.1): every piece of state one TCP connection has, and
 * nothing else. The server keeps Tcbs in shared memory (a restarted tcp server resumes its connections),
 * so a Tcb follows one rule:
 *
 *   Its own enumerable properties, in a fixed order set by the constructor, are only numbers, fixed-length
 *   number arrays, or nested plain objects (cc, rtt, sb) that follow the same rule. No booleans (0/1
 *   numbers), no strings, no references to anything else.
 *
 * `tcbSave` / `tcbLoad` copy that layout (a schema computed once from a fresh Tcb, compiled to straight-line
 * code) into / out of TCB_WORDS float64 words; `tcbCopy` copies one Tcb onto another. Float64 holds every uint32 sequence number exactly
 * and Infinity (the "timer off" value).
 *
 * Conventions:
 * - Sequence numbers are uint32 numbers, compared only through servers/wire/seq.ts.
 * - Times are microseconds on the stack's central clock (the caller's io.nowUs).
 * - Timers are ABSOLUTE deadlines in microseconds; Infinity = off (TIMER_OFF).
 * - The send buffer holds stream byte k at sequence number iss + 1 + k; our FIN (once the application
 *   closed) sits at finSeq, just past the last data byte.
 */
import { newCcVars } from './cc.js';
import type { CcVars, RttVars, SbVars } from './contracts.js';
import { newRttVars } from './rto.js';
import { newSbVars } from './scoreboard.js';

// ---- states (RFC 9293 §3.3.2) ------------------------------------------------------------------------
export const CLOSED = 0;
export const LISTEN = 1;
export const SYN_SENT = 2;
export const SYN_RECEIVED = 3;
export const ESTABLISHED = 4;
export const FIN_WAIT_1 = 5;
export const FIN_WAIT_2 = 6;
export const CLOSE_WAIT = 7;
export const CLOSING = 8;
export const LAST_ACK = 9;
export const TIME_WAIT = 10;
export type TcpState = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10;
export const STATE_NAMES = [
  'CLOSED',
  'LISTEN',
  'SYN_SENT',
  'SYN_RECEIVED',
  'ESTABLISHED',
  'FIN_WAIT_1',
  'FIN_WAIT_2',
  'CLOSE_WAIT',
  'CLOSING',
  'LAST_ACK',
  'TIME_WAIT',
] as const;

// ---- errors (t.err, t.softErr) -------------------------------------------------------------------------
export const E_NONE = 0;
/** The peer reset a synchronized connection. */
export const ECONNRESET = 1;
/** RST (or ICMP port/protocol unreachable) answering our SYN. */
export const ECONNREFUSED = 2;
/** Retransmissions, SYN retries, keepalive probes or the user timeout ran out. */
export const ETIMEDOUT = 3;
/** Writing after shutdown (the application side's error; the core never sets it). */
export const EPIPE = 4;
/** The connection was aborted locally (e.g. data arrived for a closed, orphaned socket). */
export const ECONNABORTED = 5;
/** ICMP host unreachable (soft error: reported instead of ETIMEDOUT when the connection times out). */
export const EHOSTUNREACH = 6;
/** ICMP net unreachable (soft error, as EHOSTUNREACH). */
export const ENETUNREACH = 7;
export const ERR_NAMES = ['', 'ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH'] as const;

// ---- notify bits (io.notify) --------------------------------------------------------------------------
/** An actively opened connection reached ESTABLISHED. */
export const N_CONNECTED = 1;
/** New in-order data, or the peer's FIN (t.finReceived). */
export const N_READABLE = 2;
/** Send-buffer space freed (SND.UNA advanced over data). */
export const N_WRITABLE = 4;
/** t.err was set. */
export const N_ERROR = 8;
/** The connection reached CLOSED: the TCB may be released once the application has closed it. */
export const N_CLOSED = 16;
/** A passively opened connection reached ESTABLISHED: it goes to its listener's accept queue. */
export const N_ACCEPTABLE = 32;

/** Timer value meaning "off". */
export const TIMER_OFF = Infinity;

/** Out-of-order receive ranges remembered (each becomes a SACK block). */
export const OOO_MAX = 8;

/** Defaults (Linux's where Linux has one). */
export const DEFAULT_MSS = 536; // RFC 9293 §3.7.1: peer sent no MSS option
export const DEFAULT_RCV_BUF = 256 * 1024;
export const DELACK_US = 40_000; // Linux's TCP_DELACK_MIN (RFC 5681 §4.2 allows up to 500 ms)
export const MSL_US = 30_000_000;
export const TIME_WAIT_US = 2 * MSL_US; // 60 s like Linux's TCP_TIMEWAIT_LEN
export const KEEPIDLE_US = 7200_000_000; // tcp_keepalive_time
export const KEEPINTVL_US = 75_000_000; // tcp_keepalive_intvl
export const KEEPCNT = 9; // tcp_keepalive_probes
export const MAX_RETRIES = 15; // tcp_retries2
export const SYN_RETRIES = 6; // tcp_syn_retries
export const SYNACK_RETRIES = 5; // tcp_synack_retries
export const FIN_WAIT_2_US = 60_000_000; // tcp_fin_timeout (orphaned sockets only)
/**
 * RFC 8985 §7.2 TLP.max_ack_delay (the draft's WCDelAckT), added to the probe timeout when one segment is
 * in flight, since the peer may then hold its ACK for its delayed-ACK time. 50 ms: keepnet delays an ACK
 * at most DELACK_US (40 ms); Linux starts at TCP_ATO_MIN (40 ms) and caps its delayed ACK at
 * max(TCP_DELACK_MIN = 40 ms, its own SRTT) (tcp_send_delayed_ack), and the PTO's 2*SRTT already covers
 * the SRTT term; 10 ms more for a HZ=100 peer's timer granularity. The RFC's conservative value (and
 * Linux's sender, which adds TCP_RTO_MIN) is 200 ms, which on a path whose RTO sits at the 200 ms floor
 * puts a one-segment flight's probe at the RTO deadline: no faster repair, only no backoff. A peer that
 * delays longer (Windows: 200 ms) gets a needless probe of its one outstanding segment (one segment, and
 * without D-SACK one cwnd reduction, tlp.ts); a server may set tlpDelAckUs = 200_000 for such peers.
 */
export const TLP_DELACK_US = 50_000;

export class Tcb {
  // ---- identity -----------------------------------------------------------------------------------
  state: number = CLOSED;
  localAddr = 0;
  localPort = 0;
  remoteAddr = 0;
  remotePort = 0;
  /** 1: created by listenInput (a SYN_RECEIVED reset returns it to nothing, not ECONNREFUSED). */
  passive = 0;

  // ---- send sequence space (RFC 9293 §3.3.1) --------------------------------------------------------
  iss = 0;
  sndUna = 0;
  sndNxt = 0;
  /** Highest sequence number sent + 1 (SND.NXT goes back to SND.UNA after an RTO; this does not). */
  sndMax = 0;
  /** Peer's window (bytes, scaled). */
  sndWnd = 0;
  /** Largest window the peer ever offered (RFC 5961 §5.2 MAX.SND.WND; sender SWS avoidance). */
  maxSndWnd = 0;
  sndWl1 = 0;
  sndWl2 = 0;

  // ---- receive sequence space -----------------------------------------------------------------------
  irs = 0;
  rcvNxt = 0;
  /** Right edge of the window we advertised last (RCV.NXT + RCV.WND as the peer sees it); never shrinks. */
  rcvAdv = 0;
  /** Receive buffer capacity (bytes): window scale choice and receiver SWS avoidance. Caller sets it. */
  rcvBuf = DEFAULT_RCV_BUF;

  // ---- options --------------------------------------------------------------------------------------
  /** Our MSS (interface MTU - 40), advertised in the MSS option. Caller sets it. */
  rcvMss = 1460;
  /** Largest payload we send (peer's MSS option capped by rcvMss and PMTU), before TCP options. */
  sndMss = DEFAULT_MSS;
  /** Window scale shifts (0 when not negotiated). */
  sndWscale = 0;
  rcvWscale = 0;
  wsOk = 0;
  sackOk = 0;
  tsOk = 0;
  /** Added to the ms clock to form TSval (RFC 7323 §5.4: random per connection). */
  tsOffset = 0;
  tsRecent = 0;
  /** When tsRecent was set (us) (RFC 7323 §5.5: invalid after 24 days idle). */
  tsRecentAgeUs = 0;
  /** RCV.NXT in the last ACK we sent (RFC 7323 §4.3 Last.ACK.sent). */
  lastAckSent = 0;

  // ---- socket options (copied from a listener into its children) -------------------------------------
  /** Offer window scaling / SACK / timestamps on our SYN (1) or not (0). */
  optWscale = 1;
  optSack = 1;
  optTs = 1;
  noDelay = 0;
  keepAlive = 0;
  keepIdleUs = KEEPIDLE_US;
  keepIntvlUs = KEEPINTVL_US;
  keepCnt = KEEPCNT;
  /** Congestion control id (cc.ts: 0 newreno, 1 cubic). */
  ccAlgo = 0;
  /** TCP_USER_TIMEOUT (us): give up when data stays unacknowledged this long; 0 = use maxRetries. */
  userTimeoutUs = 0;
  maxRetries = MAX_RETRIES;
  synRetries = SYN_RETRIES;
  synAckRetries = SYNACK_RETRIES;
  timeWaitUs = TIME_WAIT_US;
  finWait2Us = FIN_WAIT_2_US;
  /** RFC 8985 §7 tail loss probes (1) or not (0); only used when SACK was negotiated (timers.ts). */
  optTlp = 1;
  /** TLP.max_ack_delay (us): the peer's worst-case delayed ACK, added to a one-segment flight's PTO. */
  tlpDelAckUs = TLP_DELACK_US;

  // ---- application side -------------------------------------------------------------------------------
  /** Shutdown requested: FIN after the data queued up to finSeq. */
  appClosed = 0;
  finSeq = 0;
  /** The application closed the socket entirely (no reader): FIN_WAIT_2 times out, new data is reset. */
  orphan = 0;
  err = E_NONE;
  /** Last soft error (ICMP), reported instead of ETIMEDOUT. */
  softErr = E_NONE;
  /** The peer's FIN was received in order (EOF after the data before it). */
  finReceived = 0;
  /** An out-of-order FIN is waiting at rcvFinSeq. */
  rcvFinPending = 0;
  rcvFinSeq = 0;

  // ---- timers (absolute us; Infinity = off) -------------------------------------------------------------
  tRtx = TIMER_OFF;
  tDelack = TIMER_OFF;
  tPersist = TIMER_OFF;
  tKeepalive = TIMER_OFF;
  /** TIME_WAIT expiry, or the orphaned FIN_WAIT_2 timeout. */
  tClose = TIMER_OFF;
  /** RFC 8985 §7 tail loss probe timeout (PTO); never later than tRtx while both are armed. */
  tTlp = TIMER_OFF;

  // ---- retransmission -----------------------------------------------------------------------------------
  /** Consecutive timeouts of the same head segment (SYN retries included). */
  rtxCount = 0;
  /** When the oldest unacknowledged data started waiting (user timeout). */
  rtxStartUs = 0;
  persistBackoff = 0;
  /** Persist probes not answered by any ACK. */
  persistProbes = 0;
  keepProbes = 0;
  /** Karn: one timed segment (without timestamps): 1 while timing, end sequence and send time. */
  rttTiming = 0;
  rttSeq = 0;
  rttStartUs = 0;
  /** A SYN or SYN-ACK was retransmitted (RFC 6298 §5.7; RFC 5681 §3.1 loss window IW = 1 MSS). */
  synRetransmitted = 0;
  /** The last output was limited by cwnd (RFC 7661: grow cwnd only when it was used). */
  cwndLimited = 0;

  // ---- loss recovery ---------------------------------------------------------------------------------------
  dupAcks = 0;
  /** 0: none; 1: NewReno fast recovery (RFC 6582); 2: SACK recovery (RFC 6675). */
  inRecovery = 0;
  /** RFC 6582 recover / RFC 6675 RecoveryPoint, exclusive (SND.MAX when recovery began). */
  recover = 0;
  /** RFC 8985 §7.1 TLP episode: 1 while a probe is unresolved (TLP.end_seq set; seq 0 is legal). */
  tlpActive = 0;
  /** TLP.end_seq: SND.MAX just after the probe was sent (exclusive). */
  tlpEnd = 0;
  /** TLP.is_retrans: the probe retransmitted old data (1) or carried new data (0). */
  tlpRetrans = 0;

  // ---- receive-side bookkeeping ------------------------------------------------------------------------------
  /** Bytes received in order since the last ACK we sent (delayed ACK: ACK every second full segment). */
  rcvUnacked = 0;
  /** Largest payload received (the peer's segment size, for the delayed ACK rule). */
  rcvSegMax = 0;
  /**
   * A segment shorter than the peer's full size arrived in order and its ACK is being delayed (Linux's
   * ICSK_ACK_PUSHED): if the application then drains the receive buffer, the ACK goes at once.
   */
  rcvPushed = 0;
  /** An ACK must go out at the end of the current call (cleared by any segment carrying an ACK). */
  ackNow = 0;
  lastRcvUs = 0;
  /** Last time data was sent (restart after idle, RFC 5681 §4.1). */
  lastSendUs = 0;
  /** Last out-of-window / challenge ACK (RFC 5961 §7 rate limit, 500 ms per connection like Linux). */
  lastOowAckUs = -Infinity;
  /** Out-of-order ranges above RCV.NXT: oooN of them, range i = [ooo[2i], ooo[2i+1]), most recent first. */
  oooN = 0;
  readonly ooo: number[] = new Array<number>(2 * OOO_MAX).fill(0);

  // ---- counters (stats; never reset by the core) ----------------------------------------------------------------
  segsIn = 0;
  segsOut = 0;
  retransSegs = 0;
  retransBytes = 0;
  fastRetrans = 0;
  rtoExpiries = 0;
  /** Tail loss probes sent (RFC 8985 §7.3). */
  tlpProbes = 0;
  /** TLP episodes that ended showing the probe repaired a loss (RFC 8985 §7.4, cwnd reduced). */
  tlpRecoveries = 0;
  dupAcksIn = 0;
  oooSegsIn = 0;
  challengeAcks = 0;
  persistProbesSent = 0;
  keepProbesSent = 0;
  drops = 0;
  /** The last drop reason (core.ts DROP_*), 0 when the last segment was accepted. */
  lastDrop = 0;

  // ---- nested module state (contracts.ts) ------------------------------------------------------------
  readonly cc: CcVars = newCcVars();
  readonly rtt: RttVars = newRttVars();
  readonly sb: SbVars = newSbVars();
}

/** RFC 9293 §3.3.2: the states after the handshake's SYNs were exchanged both ways. */
export function isSynchronized(state: number): boolean {
  return state >= SYN_RECEIVED;
}

// ---- serialization -------------------------------------------------------------------------------------

/** One step of the layout walk: a number, a fixed array of `len` numbers, or a nested object. */
interface Field {
  key: string;
  kind: 0 | 1 | 2;
  len: number;
  sub: Field[];
}

function schemaOf(o: object): Field[] {
  const fields: Field[] = [];
  for (const key of Object.keys(o)) {
    const v = (o as Record<string, unknown>)[key];
    if (typeof v === 'number') fields.push({ key, kind: 0, len: 1, sub: [] });
    else if (Array.isArray(v)) fields.push({ key, kind: 1, len: v.length, sub: [] });
    else if (v !== null && typeof v === 'object') fields.push({ key, kind: 2, len: 0, sub: schemaOf(v) });
    else throw new TypeError(`Tcb field ${key} breaks the property rule (${typeof v})`);
  }
  return fields;
}

function countWords(fields: Field[]): number {
  let n = 0;
  for (const f of fields) n += f.kind === 2 ? countWords(f.sub) : f.len;
  return n;
}

const SCHEMA = schemaOf(new Tcb());

/** Float64 words one Tcb occupies in shared memory. */
export const TCB_WORDS = countWords(SCHEMA);

/** Every leaf field path, in storage order (diagnostics, tests): 'state', 'ooo[3]', 'cc.v[0]', ... */
export function tcbFieldNames(): string[] {
  const out: string[] = [];
  const walk = (fields: Field[], prefix: string): void => {
    for (const f of fields) {
      if (f.kind === 0) out.push(prefix + f.key);
      else if (f.kind === 1) for (let i = 0; i < f.len; i++) out.push(`${prefix}${f.key}[${i}]`);
      else walk(f.sub, `${prefix}${f.key}.`);
    }
  };
  walk(SCHEMA, '');
  return out;
}

/**
 * save / load / copy are generated once from SCHEMA as straight-line code (`new Function`): the tcp server
 * runs load + save on every message it handles, and the generic walk over the schema (keyed property
 * access with a different key at each step, megamorphic) cost ~35 us per rr transaction per host in CPU
 * profiles of `bench rr` (tcb.js save + load: 312 ms of 1.7 s busy). The generated code reads and writes
 * named properties, which V8 compiles to monomorphic loads and stores. Keys are checked to be identifiers
 * before they are pasted into source text.
 */
type SaveFn = (o: Tcb, f64: Float64Array, off: number) => void;
type CopyFn = (dst: Tcb, src: Tcb) => void;

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Leaf accessors in storage order: 'o.state', 'o.ooo[3]', 'o.cc.v[0]', ... */
function leafPaths(fields: Field[], prefix: string, out: string[]): string[] {
  for (const f of fields) {
    if (!IDENT.test(f.key)) throw new TypeError(`Tcb field '${f.key}' is not an identifier`);
    if (f.kind === 0) out.push(`${prefix}.${f.key}`);
    else if (f.kind === 1) for (let i = 0; i < f.len; i++) out.push(`${prefix}.${f.key}[${i}]`);
    else leafPaths(f.sub, `${prefix}.${f.key}`, out);
  }
  return out;
}

const LEAVES = leafPaths(SCHEMA, 'o', []);
const saveGen = new Function('o', 'f', 'off', LEAVES.map((p, i) => `f[off + ${i}] = ${p};`).join('\n')) as SaveFn;
const loadGen = new Function('o', 'f', 'off', LEAVES.map((p, i) => `${p} = f[off + ${i}];`).join('\n')) as SaveFn;
const copyGen = new Function('d', 'o', LEAVES.map((p) => `d${p.slice(1)} = ${p};`).join('\n')) as CopyFn;

/** Writes t into f64[off .. off + TCB_WORDS). */
export function tcbSave(t: Tcb, f64: Float64Array, off: number): void {
  if (off < 0 || off + TCB_WORDS > f64.length) throw new RangeError(`tcbSave: ${off}+${TCB_WORDS} outside ${f64.length}`);
  saveGen(t, f64, off);
}

/** Reads f64[off .. off + TCB_WORDS) into t (every field is overwritten). */
export function tcbLoad(t: Tcb, f64: Float64Array, off: number): void {
  if (off < 0 || off + TCB_WORDS > f64.length) throw new RangeError(`tcbLoad: ${off}+${TCB_WORDS} outside ${f64.length}`);
  loadGen(t, f64, off);
}

/** dst := src, field by field (arrays and nested objects are copied, never shared). */
export function tcbCopy(dst: Tcb, src: Tcb): void {
  copyGen(dst, src);
}

/** Resets t to a fresh Tcb's values (a pooled Tcb reused for a new connection). */
export function tcbReset(t: Tcb): void {
  tcbCopy(t, FRESH);
}
const FRESH = new Tcb();
