/**
 * The tcp server's own counters: per-reason drops and protocol events, in the tcp state's counter
 * region (layout.ts), so they survive restarts and the main thread reads them without a message.
 * Only the tcp server writes them. A record replayed after a crash may count twice: diagnostics, not
 * accounting.
 */
import { COUNTER_WORDS, TcpLayout } from './layout.js';

export const TCP_COUNTERS = [
  'rx', // segments handled
  'tx', // segments sent to ip
  'tx-failed', // segments not sent: ring to ip full or pool exhausted (TCP treats them as lost)
  'rst-sent', // resets for segments with no connection
  'accepted', // connections completed by a listener
  'connects', // active opens
  'listens',
  'closed', // connections released
  'tw-recycled', // TIME_WAIT connections that gave their slot to a new one (the table was full)
  'timers', // timer expiries handled
  'tx-recovered', // transactions undone after a restart
  'notify-retried', // NOTIFY records that waited for room in the ring to the shim
  'kicks', // KICK requests from the shim (the application wrote, or read near the window's edge)
  'drop:truncated',
  'drop:bad-checksum',
  'drop:bad-option',
  'drop:bad-descriptor',
  'drop:no-listener-slot', // a SYN for a listener while the table is full
  'drop:backlog', // a SYN for a listener whose backlog is full
  'drop:segment', // a segment the state machine rejected (unacceptable, PAWS, ...): by reason below
  'drop:seg-closed',
  'drop:seg-bad-ack',
  'drop:seg-no-syn',
  'drop:seg-rst-ignored',
  'drop:seg-paws',
  'drop:seg-out-of-window',
  'drop:seg-rst-challenge',
  'drop:seg-syn-challenge',
  'drop:seg-no-ack',
  'drop:seg-ack-unsent',
  'drop:seg-ack-too-old',
  'drop:seg-data-after-close',
  'drop:bad-request', // a shim request too short or malformed
  'drop:stale-conn', // a request for a connection that no longer exists
  'drop:unknown',
  'icmp',
  'syncookies-sent', // SYN-ACKs with a SYN cookie, sent instead of dropping a SYN (the backlog was full)
  'syncookies-ok', // connections made from a valid cookie in the handshake's last ACK
  'syn-evicted', // embryonic (SYN_RECEIVED) children evicted to make room for a cookie connection
] as const;
export type TcpCounterName = (typeof TCP_COUNTERS)[number];
export const TC = Object.freeze(Object.fromEntries(TCP_COUNTERS.map((n, i) => [n, i])) as Record<TcpCounterName, number>);
if (TCP_COUNTERS.length > COUNTER_WORDS) throw new Error('too many tcp counters');

/** The counters of a tcp state SAB (zeros if it holds no tcp state). */
export function tcpCounters(state: SharedArrayBuffer): Record<string, number> {
  const l = TcpLayout.of(state);
  const out: Record<string, number> = {};
  if (!l) return out;
  const c = new Float64Array(state, l.countersOff, COUNTER_WORDS);
  TCP_COUNTERS.forEach((n, i) => {
    if (c[i] !== 0) out[n] = c[i];
  });
  return out;
}
