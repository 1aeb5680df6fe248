/**
 * TCP core: TSO (io.gsoMaxBytes). Segments larger than the MSS only when the interface has TSO, never
 * more than gsoMaxBytes with their header, a whole number of MSS unless they carry the end of the queued
 * data, within cwnd and the peer's window; Nagle judges the short tail; retransmissions and everything in
 * SACK recovery stay one MSS.
 */
import t from 'tap';
import * as core from '../../servers/tcp/core/core.js';
import { established, feed, ISS, PEER_ISS, pattern, TCP_ACK, type Opts } from './core-harness.js';

const P = PEER_ISS + 1;
const S = ISS + 1;
const MSS = 1000;

function tso(gso: number, o: Opts = {}): ReturnType<typeof established> {
  const x = established({ peerMss: MSS, ...o });
  x.h.gsoMaxBytes = gso;
  return x;
}

t.test('TSO off: no segment exceeds the MSS', async (t) => {
  const { h, t: c } = tso(0);
  h.conn(c).write(pattern(10000));
  core.appSend(c, h);
  const segs = h.take();
  t.equal(segs.length, 10);
  t.ok(segs.every((s) => s.dataLen === MSS && s.gsoSize === 0));
});

t.test('TSO on: the initial window goes as one segment of whole MSS, gsoSize = MSS', async (t) => {
  const { h, t: c } = tso(65535);
  h.conn(c).write(pattern(100000));
  core.appSend(c, h);
  const segs = h.take();
  t.same(segs.map((s) => [s.seq - S, s.dataLen, s.gsoSize]), [[0, 10000, MSS]], 'cwnd (10 MSS) in one TSO segment');
});

t.test('TSO on: never more than gsoMaxBytes, cwnd and the peer window respected, the tail judged by Nagle', async (t) => {
  const { h, t: c } = tso(16384, { ws: true, peerWs: 7 });
  c.cc.cwnd = 200_000;
  c.cc.ssthresh = 1 << 30;
  h.conn(c).write(pattern(100_000));
  core.appSend(c, h);
  let segs = h.take();
  const room = 16384 - 20;
  t.ok(segs.length > 1);
  for (const s of segs) {
    t.ok(s.dataLen + 20 <= 16384, `segment of ${s.dataLen} fits gsoMaxBytes`);
    t.equal(s.dataLen % MSS, 0, 'a whole number of MSS (more data is queued)');
    t.equal(s.gsoSize, s.dataLen > MSS ? MSS : 0);
  }
  t.equal(segs[0]!.dataLen, Math.floor(room / MSS) * MSS, 'as large as gsoMaxBytes allows');
  const inFlight = segs.reduce((a, s) => a + s.dataLen, 0);
  t.ok(inFlight <= 65535 * 128, 'within the peer window');
  t.equal(inFlight, c.sndNxt - S);
  // The peer's window closes to 5.5 MSS: the next segment is cut to 5 MSS, not 5.5 (the half MSS would
  // be a short segment in mid-stream).
  feed(h, c, { seq: P, ack: c.sndNxt, flags: TCP_ACK, win: Math.ceil(5500 / 128) });
  segs = h.take();
  t.ok(segs.length >= 1);
  t.equal(segs[0]!.dataLen, 5000, 'cut by the window to whole MSS');
  t.ok(c.sndNxt - c.sndUna <= 5500 + 128, 'nothing beyond the window');
});

t.test('TSO on: cwnd limits the burst; the short tail of the queue goes only when Nagle allows', async (t) => {
  const { h, t: c } = tso(65535);
  h.conn(c).write(pattern(2500));
  core.appSend(c, h);
  let segs = h.take();
  t.same(segs.map((s) => [s.dataLen, s.gsoSize]), [[2500, MSS]], 'all queued data: 1000 + 1000 + 500 on the wire');
  h.conn(c).write(pattern(500, 2500));
  core.appSend(c, h);
  t.equal(h.take().length, 0, 'Nagle: a short segment waits while data is unacknowledged');
  h.advance(10_000);
  feed(h, c, { seq: P, ack: S + 2500, flags: TCP_ACK });
  segs = h.take();
  t.same(segs.map((s) => [s.seq - S, s.dataLen, s.gsoSize]), [[2500, 500, 0]]);
  // cwnd: after 3000 bytes acked, a 30 kB write goes out as at most cwnd.
  h.advance(10_000);
  feed(h, c, { seq: P, ack: S + 3000, flags: TCP_ACK });
  h.conn(c).write(pattern(30000, 3000));
  core.appSend(c, h);
  segs = h.take();
  const sent = segs.reduce((a, s) => a + s.dataLen, 0);
  t.ok(sent <= c.cc.cwnd, `sent ${sent} within cwnd ${c.cc.cwnd}`);
  t.ok(segs.every((s) => s.dataLen % MSS === 0));
});

t.test('TSO on: the RTO retransmits one MSS; go-back-N grows with cwnd again', async (t) => {
  const { h, t: c } = tso(65535);
  h.conn(c).write(pattern(20000));
  core.appSend(c, h);
  t.same(h.take().map((s) => s.dataLen), [10000]);
  h.toDeadline(c);
  let segs = h.take();
  t.same(segs.map((s) => [s.seq - S, s.dataLen, s.gsoSize]), [[0, MSS, 0]], 'only the head, one MSS');
  h.advance(10_000);
  feed(h, c, { seq: P, ack: S + MSS, flags: TCP_ACK });
  segs = h.take();
  t.same(segs.map((s) => [s.seq - S, s.dataLen]), [[MSS, 2 * MSS]], 'cwnd 2 MSS: one TSO segment of the old data');
  t.equal(c.retransSegs, 2);
});

t.test('TSO on: SACK recovery sends one MSS at a time; TSO resumes after it', async (t) => {
  const { h, t: c } = tso(65535, { sack: true });
  h.conn(c).write(pattern(40000));
  core.appSend(c, h);
  t.same(h.take().map((s) => s.dataLen), [10000]);
  const K = (n: number): number => S + n * MSS;
  feed(h, c, { seq: P, ack: K(0), flags: TCP_ACK, sack: [[K(1), K(2)]] });
  feed(h, c, { seq: P, ack: K(0), flags: TCP_ACK, sack: [[K(1), K(3)]] });
  feed(h, c, { seq: P, ack: K(0), flags: TCP_ACK, sack: [[K(1), K(4)]] });
  t.equal(c.inRecovery, 2);
  const segs = h.take();
  t.ok(segs.length > 0);
  t.ok(segs.every((s) => s.dataLen <= MSS && s.gsoSize === 0), 'one MSS each in recovery');
  t.same([segs.find((s) => s.seq === K(0))?.dataLen], [MSS], 'the hole retransmitted');
  feed(h, c, { seq: P, ack: c.sndMax, flags: TCP_ACK });
  t.equal(c.inRecovery, 0);
  // Out of recovery, TSO again.
  const more = h.take();
  t.ok(more.some((s) => s.dataLen > MSS), 'TSO resumes after recovery');
});
