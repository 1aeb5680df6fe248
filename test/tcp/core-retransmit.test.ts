/**
 * TCP core: retransmission. RTO expiry (RFC 6298 backoff, loss window, go-back-N), Karn's algorithm
 * with and without timestamps, giving up (retries, user timeout), zero-window retransmissions, NewReno
 * fast retransmit / fast recovery without SACK (RFC 5681, RFC 6582, RFC 3042 limited transmit).
 */
import t from 'tap';
import * as core from '../../servers/tcp/core/core.js';
import { CLOSED, ESTABLISHED, ETIMEDOUT, N_ERROR } from '../../servers/tcp/core/core.js';
import { echo, established, feed, flagsOf, ISS, PEER_ISS, PEER_TS, pattern, TCP_ACK } from './core-harness.js';

const P = PEER_ISS + 1;
const S = ISS + 1;

t.test('RTO: head retransmitted, backoff doubles, cwnd 1 MSS, ssthresh halved once, go-back-N', async (t) => {
  const { h, t: c } = established({ peerMss: 1000 });
  h.conn(c).write(pattern(10000));
  core.appSend(c, h);
  t.equal(h.take().length, 10);
  const rto = c.rtt.rtoUs;
  const t0 = h.nowUs;
  h.toDeadline(c);
  t.equal(h.nowUs - t0, rto);
  let segs = h.take();
  t.same(segs.map((s) => [s.seq - S, s.dataLen]), [[0, 1000]], 'only the head (cwnd = 1 MSS)');
  t.equal(c.cc.cwnd, 1000);
  t.equal(c.cc.ssthresh, 5000, 'max(FlightSize/2, 2 SMSS)');
  t.equal(c.rtt.backoff, 1);
  t.equal(c.tRtx, h.nowUs + 2 * rto);
  h.toDeadline(c);
  h.take();
  t.equal(c.rtt.backoff, 2);
  t.equal(c.cc.ssthresh, 5000, 'held on a repeated timeout');
  t.equal(c.rtoExpiries, 2);
  // The head is acknowledged: slow start from 1 MSS through the old data (go-back-N).
  const srtt = c.rtt.srttUs;
  h.advance(10_000);
  feed(h, c, { seq: P, ack: S + 1000, flags: TCP_ACK });
  t.equal(c.rtt.backoff, 0, 'new data acked: backoff reset');
  t.equal(c.rtt.srttUs, srtt, 'Karn: no sample from a retransmitted segment');
  t.equal(c.cc.cwnd, 2000);
  segs = h.take();
  t.same(segs.map((s) => s.seq - S), [1000, 2000], 'resends from SND.UNA');
  t.equal(c.retransSegs, 4);
  // An ACK beyond SND.NXT (the original copies arrived after all).
  feed(h, c, { seq: P, ack: S + 8000, flags: TCP_ACK });
  t.equal(c.sndNxt, S + 8000 + 0 + (c.sndNxt - (S + 8000)));
  t.ok(c.sndNxt - S >= 8000);
});

t.test('RTTM: with timestamps a retransmitted segment still gives an RTT sample', async (t) => {
  const { h, t: c } = established({ ts: true, peerMss: 1012 });
  h.conn(c).write(pattern(1000));
  core.appSend(c, h);
  const [first] = h.take();
  h.toDeadline(c);
  const [again] = h.take();
  t.not(again.tsVal, first.tsVal);
  const srtt = c.rtt.srttUs;
  h.advance(30_000);
  feed(h, c, { seq: P, ack: S + 1000, flags: TCP_ACK, ts: [PEER_TS + 1, again.tsVal] });
  t.not(c.rtt.srttUs, srtt, 'sampled');
  t.equal(c.rtt.backoff, 0);
});

t.test('give up after 15 retransmissions: reset, ETIMEDOUT', async (t) => {
  const { h, t: c } = established();
  h.conn(c).write(pattern(100));
  core.appSend(c, h);
  h.take();
  let n = 0;
  while (c.state === ESTABLISHED && n < 100) {
    h.toDeadline(c);
    n++;
  }
  t.equal(c.state, CLOSED);
  t.equal(c.err, ETIMEDOUT);
  t.ok(h.conn(c).bits() & N_ERROR);
  const segs = h.take();
  t.equal(segs.filter((s) => s.dataLen > 0).length, 15);
  t.equal(flagsOf(segs[segs.length - 1]), 'R.');
});

t.test('user timeout: give up once data waits longer than TCP_USER_TIMEOUT', async (t) => {
  const { h, t: c } = established();
  c.userTimeoutUs = 5_000_000;
  h.conn(c).write(pattern(100));
  const t0 = h.nowUs;
  core.appSend(c, h);
  while (c.state === ESTABLISHED) h.toDeadline(c);
  t.equal(c.err, ETIMEDOUT);
  t.ok(h.nowUs - t0 >= 5_000_000 && h.nowUs - t0 < 12_000_000);
});

t.test('a zero window with data in flight: retransmissions probe and do not time out while the peer answers', async (t) => {
  const { h, t: c } = established({ peerMss: 1000 });
  h.conn(c).write(pattern(2000));
  core.appSend(c, h);
  h.take();
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, win: 0 });
  for (let i = 0; i < 20; i++) {
    h.toDeadline(c);
    feed(h, c, { seq: P, ack: S, flags: TCP_ACK, win: 0 });
  }
  t.equal(c.state, ESTABLISHED);
});

function lossSetup(): ReturnType<typeof established> {
  const x = established({ peerMss: 1000 });
  x.h.conn(x.t).write(pattern(30000));
  core.appSend(x.t, x.h);
  x.h.take();
  return x;
}

t.test('NewReno: limited transmit, fast retransmit on the 3rd duplicate ACK, inflation', async (t) => {
  const { h, t: c } = lossSetup();
  // Segment 0 lost: duplicate ACKs of S.
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK });
  t.same(h.take().map((s) => s.seq - S), [10000], 'RFC 3042: one new segment per early duplicate ACK');
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK });
  t.same(h.take().map((s) => s.seq - S), [11000]);
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK });
  const [fr] = h.take();
  t.same([fr.seq - S, fr.dataLen], [0, 1000], 'fast retransmit of SND.UNA');
  t.equal(c.inRecovery, 1);
  t.equal(c.recover, S + 12000);
  t.equal(c.cc.ssthresh, 6000);
  t.equal(c.cc.cwnd, 9000, 'ssthresh + 3 SMSS');
  t.equal(c.fastRetrans, 1);
  for (let i = 0; i < 3; i++) feed(h, c, { seq: P, ack: S, flags: TCP_ACK });
  t.equal(c.cc.cwnd, 12000, 'inflated by one SMSS per further duplicate');
  t.equal(h.take().length, 0, 'flight 12000 = cwnd');
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK });
  t.same(h.take().map((s) => s.seq - S), [12000], 'new data once cwnd exceeds the flight');
});

t.test('NewReno: partial ACK retransmits the next hole and deflates; full ACK ends recovery', async (t) => {
  const { h, t: c } = lossSetup();
  for (let i = 0; i < 3; i++) feed(h, c, { seq: P, ack: S, flags: TCP_ACK });
  h.take();
  const cw = c.cc.cwnd;
  // Segments 0..2 arrive (the retransmission filled 0); 3 was lost too: partial ACK.
  feed(h, c, { seq: P, ack: S + 3000, flags: TCP_ACK });
  const segs = h.take();
  t.same([segs[0].seq - S, segs[0].dataLen], [3000, 1000], 'next hole retransmitted');
  t.equal(c.cc.cwnd, cw - 3000 + 1000, 'deflate by the acked amount, add back one SMSS');
  t.equal(c.inRecovery, 1);
  feed(h, c, { seq: P, ack: S + 12000, flags: TCP_ACK });
  t.equal(c.inRecovery, 0, 'full ACK');
  t.ok(c.cc.cwnd <= c.cc.ssthresh);
  t.equal(c.dupAcks, 0);
});

t.test('NewReno: no new fast retransmit for duplicate ACKs below `recover` after an RTO', async (t) => {
  const { h, t: c } = lossSetup();
  h.toDeadline(c);
  h.take();
  t.equal(c.recover, S + 10000);
  feed(h, c, { seq: P, ack: S + 1000, flags: TCP_ACK });
  h.take();
  for (let i = 0; i < 5; i++) feed(h, c, { seq: P, ack: S + 1000, flags: TCP_ACK });
  t.equal(c.inRecovery, 0);
  t.equal(c.fastRetrans, 0);
});

t.test('duplicate ACK definition: data, a window change or nothing outstanding do not count', async (t) => {
  const { h, t: c } = lossSetup();
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: [1] });
  feed(h, c, { seq: P + 1, ack: S, flags: TCP_ACK, win: 1000 });
  t.equal(c.dupAcks, 0);
  const { h: h2, t: c2 } = established();
  feed(h2, c2, { seq: P, ack: S, flags: TCP_ACK });
  t.equal(c2.dupAcks, 0);
  void echo;
});
