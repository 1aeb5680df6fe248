/**
 * TCP core: closing. Active close (FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT and its expiry), passive close
 * (CLOSE_WAIT, LAST_ACK), simultaneous close (CLOSING), FIN piggybacking, out-of-order FIN, half-close,
 * RST in every closing state, orphans, ABORT, SYN in TIME_WAIT.
 */
import t from 'tap';
import * as core from '../../servers/tcp/core/core.js';
import {
  CLOSE_WAIT,
  CLOSED,
  CLOSING,
  ECONNABORTED,
  ECONNRESET,
  ESTABLISHED,
  FIN_WAIT_1,
  FIN_WAIT_2,
  LAST_ACK,
  N_CLOSED,
  N_ERROR,
  N_READABLE,
  TIME_WAIT,
} from '../../servers/tcp/core/core.js';
import { DROP_DATA_AFTER_CLOSE, DROP_OUT_OF_WINDOW, DROP_SYN_CHALLENGE, SEG_REOPEN, SEG_RESET } from '../../servers/tcp/core/verdicts.js';
import { established, feed, flagsOf, Host, ISS, PEER_ISS, pattern, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from './core-harness.js';
import type { Tcb } from '../../servers/tcp/core/tcb.js';

const P = PEER_ISS + 1;
const S = ISS + 1;

/** FIN_WAIT_1 with our FIN (after `n` data bytes) sent and unacknowledged. */
function finWait1(n = 0): { h: Host; t: Tcb } {
  const x = established();
  if (n > 0) x.h.conn(x.t).write(pattern(n));
  core.appClose(x.t, x.h);
  return x;
}

t.test('active close: FIN_WAIT_1 -> FIN_WAIT_2 -> TIME_WAIT -> CLOSED after 2 MSL', async (t) => {
  const { h, t: c } = finWait1(10);
  t.equal(c.state, FIN_WAIT_1);
  const [f] = h.take();
  t.same([flagsOf(f), f.seq, f.dataLen], ['FP.', S, 10], 'FIN piggybacked on the last data, PSH');
  t.equal(c.sndMax, S + 11);
  feed(h, c, { seq: P, ack: S + 10, flags: TCP_ACK });
  t.equal(c.state, FIN_WAIT_1, 'data acked, FIN not yet');
  feed(h, c, { seq: P, ack: S + 11, flags: TCP_ACK });
  t.equal(c.state, FIN_WAIT_2);
  t.equal(c.tRtx, Infinity);
  t.equal(core.nextDeadline(c), Infinity, 'not an orphan: FIN_WAIT_2 waits as long as it takes');
  // Half-close: we still receive.
  feed(h, c, { seq: P, ack: S + 11, flags: TCP_ACK, data: [1, 2, 3] });
  t.same([...h.read(c)], [1, 2, 3]);
  h.take();
  h.nowUs = 1_000_000;
  feed(h, c, { seq: P + 3, ack: S + 11, flags: TCP_FIN | TCP_ACK });
  t.equal(c.state, TIME_WAIT);
  t.equal(c.finReceived, 1);
  const [a] = h.take();
  t.same([flagsOf(a), a.seq, a.ack], ['.', S + 11, P + 4]);
  t.equal(core.nextDeadline(c), 61_000_000, '2 MSL = 60 s');
  // A retransmitted FIN restarts the 2 MSL timer and is acknowledged.
  h.nowUs = 30_000_000;
  t.equal(feed(h, c, { seq: P + 3, ack: S + 11, flags: TCP_FIN | TCP_ACK }), DROP_OUT_OF_WINDOW);
  t.equal(h.take()[0].ack, P + 4);
  t.equal(core.nextDeadline(c), 90_000_000);
  h.toDeadline(c);
  t.equal(c.state, CLOSED);
  t.ok(h.conn(c).bits() & N_CLOSED);
  t.notOk(h.conn(c).bits() & N_ERROR);
});

t.test('FIN_WAIT_1: FIN+ACK of our FIN together -> TIME_WAIT', async (t) => {
  const { h, t: c } = finWait1();
  h.take();
  feed(h, c, { seq: P, ack: S + 1, flags: TCP_FIN | TCP_ACK });
  t.equal(c.state, TIME_WAIT);
});

t.test('simultaneous close: FIN_WAIT_1 + FIN -> CLOSING -> TIME_WAIT', async (t) => {
  const { h, t: c } = finWait1();
  h.take();
  feed(h, c, { seq: P, ack: S, flags: TCP_FIN | TCP_ACK });
  t.equal(c.state, CLOSING);
  const [a] = h.take();
  t.same([a.ack, a.seq], [P + 1, S + 1]);
  feed(h, c, { seq: P + 1, ack: S + 1, flags: TCP_ACK });
  t.equal(c.state, TIME_WAIT);
});

t.test('passive close: FIN -> CLOSE_WAIT; we may still send; close -> LAST_ACK -> CLOSED', async (t) => {
  const { h, t: c } = established();
  feed(h, c, { seq: P, ack: S, flags: TCP_FIN | TCP_ACK, data: [7] });
  t.equal(c.state, CLOSE_WAIT);
  t.ok(h.conn(c).bits() & N_READABLE);
  t.equal(c.finReceived, 1);
  t.same([...h.read(c)], [7]);
  t.equal(h.take()[0].ack, P + 2, 'FIN acknowledged at once');
  h.conn(c).write([1, 2]);
  core.appSend(c, h);
  t.equal(h.take()[0].dataLen, 2);
  core.appClose(c, h);
  t.equal(c.state, LAST_ACK);
  const [f] = h.take();
  t.same([flagsOf(f), f.seq], ['F.', S + 2], 'the FIN goes at once (Nagle never holds a FIN)');
  feed(h, c, { seq: P + 2, ack: S + 2, flags: TCP_ACK });
  t.equal(c.state, LAST_ACK);
  feed(h, c, { seq: P + 2, ack: S + 3, flags: TCP_ACK });
  t.equal(c.state, CLOSED);
  t.equal(c.err, 0);
});

t.test('FIN retransmitted by the RTO', async (t) => {
  const { h, t: c } = finWait1();
  h.take();
  h.toDeadline(c);
  const [f] = h.take();
  t.same([flagsOf(f), f.seq], ['F.', S]);
  t.equal(c.state, FIN_WAIT_1);
});

t.test('an out-of-order FIN is remembered and processed when the hole fills', async (t) => {
  const { h, t: c } = established();
  feed(h, c, { seq: P + 5, ack: S, flags: TCP_FIN | TCP_ACK, data: [6, 7] });
  t.equal(c.state, ESTABLISHED);
  t.equal(c.rcvFinPending, 1);
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: [1, 2, 3, 4, 5] });
  t.equal(c.state, CLOSE_WAIT);
  t.equal(c.rcvNxt, P + 8);
  t.same([...h.read(c)], [1, 2, 3, 4, 5, 6, 7]);
});

t.test('RST in FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT -> ECONNRESET; in CLOSING, LAST_ACK, TIME_WAIT -> CLOSED', async (t) => {
  const mk = (s: number): { h: Host; t: Tcb } => {
    const x = finWait1();
    const { h, t: c } = x;
    if (s === FIN_WAIT_2) feed(h, c, { seq: P, ack: S + 1, flags: TCP_ACK });
    if (s === CLOSING) feed(h, c, { seq: P, ack: S, flags: TCP_FIN | TCP_ACK });
    if (s === TIME_WAIT) feed(h, c, { seq: P, ack: S + 1, flags: TCP_FIN | TCP_ACK });
    h.take();
    return x;
  };
  for (const [s, err, rcv] of [
    [FIN_WAIT_1, ECONNRESET, P],
    [FIN_WAIT_2, ECONNRESET, P],
    [CLOSING, 0, P + 1],
    [TIME_WAIT, 0, P + 1],
  ] as const) {
    const { h, t: c } = mk(s);
    t.equal(c.state, s);
    t.equal(feed(h, c, { seq: rcv, flags: TCP_RST }), SEG_RESET, `state ${s}`);
    t.same([c.state, c.err], [CLOSED, err]);
  }
  let { h, t: c } = established();
  feed(h, c, { seq: P, ack: S, flags: TCP_FIN | TCP_ACK });
  t.equal(c.state, CLOSE_WAIT);
  feed(h, c, { seq: P + 1, flags: TCP_RST });
  t.same([c.state, c.err], [CLOSED, ECONNRESET]);
  ({ h, t: c } = established());
  feed(h, c, { seq: P, ack: S, flags: TCP_FIN | TCP_ACK });
  core.appClose(c, h);
  t.equal(c.state, LAST_ACK);
  feed(h, c, { seq: P + 1, flags: TCP_RST });
  t.same([c.state, c.err], [CLOSED, 0]);
});

t.test('orphan: FIN_WAIT_2 times out with a reset; new data is answered with a reset', async (t) => {
  let { h, t: c } = established();
  core.appClose(c, h, true);
  feed(h, c, { seq: P, ack: S + 1, flags: TCP_ACK });
  t.equal(c.state, FIN_WAIT_2);
  t.equal(core.nextDeadline(c), h.nowUs + 60_000_000);
  h.take();
  h.toDeadline(c);
  t.equal(c.state, CLOSED);
  t.equal(flagsOf(h.take()[0]), 'R.');
  ({ h, t: c } = established());
  core.appClose(c, h, true);
  h.take();
  t.equal(feed(h, c, { seq: P, ack: S + 1, flags: TCP_ACK, data: [1] }), DROP_DATA_AFTER_CLOSE);
  t.same([c.state, c.err], [CLOSED, ECONNABORTED]);
  t.equal(flagsOf(h.take()[0]), 'R.');
});

t.test('ABORT: reset when synchronized, then CLOSED', async (t) => {
  const { h, t: c } = established();
  h.conn(c).write(pattern(100));
  core.appSend(c, h);
  h.take();
  core.appAbort(c, h);
  const [r] = h.take();
  t.same([flagsOf(r), r.seq, r.ack], ['R.', S + 100, P]);
  t.equal(c.state, CLOSED);
  t.equal(core.nextDeadline(c), Infinity);
});

t.test('TIME_WAIT: a newer SYN may reopen; an old one gets a challenge ACK', async (t) => {
  const { h, t: c } = finWait1();
  feed(h, c, { seq: P, ack: S + 1, flags: TCP_FIN | TCP_ACK });
  t.equal(c.state, TIME_WAIT);
  h.take();
  t.equal(feed(h, c, { seq: P, flags: TCP_SYN }), DROP_OUT_OF_WINDOW, 'old SYN');
  t.equal(h.take().length, 1, 'challenge ACK');
  t.equal(c.state, TIME_WAIT);
  h.advance(1_000_000);
  t.equal(feed(h, c, { seq: P + 1, flags: TCP_SYN }), DROP_SYN_CHALLENGE, 'in-window SYN, not newer');
  t.equal(feed(h, c, { seq: P + 100000, flags: TCP_SYN }), SEG_REOPEN);
  t.equal(c.state, CLOSED);
});

t.test('FIN with a zero window waits for the window (then goes with the probe answer)', async (t) => {
  const { h, t: c } = established({ peerMss: 1000 });
  h.conn(c).write(pattern(1000));
  core.appSend(c, h);
  h.take();
  feed(h, c, { seq: P, ack: S + 1000, flags: TCP_ACK, win: 0 });
  core.appClose(c, h);
  t.equal(h.take().length, 0);
  t.ok(c.tPersist < Infinity, 'persist probes the window');
  feed(h, c, { seq: P, ack: S + 1000, flags: TCP_ACK, win: 10 });
  const [f] = h.take();
  t.same([flagsOf(f), f.seq], ['F.', S + 1000]);
});

t.test('data for an established peer after it half-closed keeps flowing our way', async (t) => {
  const { h, t: c } = established({ peerMss: 1000 });
  feed(h, c, { seq: P, ack: S, flags: TCP_FIN | TCP_ACK });
  h.conn(c).write(pattern(3000));
  core.appSend(c, h);
  t.same(h.take().map((s) => s.dataLen), [0, 1000, 1000, 1000], 'the ACK of the FIN, then data');
  t.equal(c.state, CLOSE_WAIT);
  t.not(c.state, ESTABLISHED);
});
