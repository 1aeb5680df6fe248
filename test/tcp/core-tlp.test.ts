/**
 * TCP core: RFC 8985 §7 tail loss probes (tlp.ts). Literal segments and the fake clock; the handshake's
 * 10 ms RTT gives SRTT = 10 ms and RTO = 200 ms (the floor), so a PTO is 2*SRTT + 2 ms = 22 ms for a
 * flight of several segments and 2*SRTT + 50 ms (TLP.max_ack_delay) = 70 ms for one segment.
 */
import t from 'tap';
import * as core from '../../servers/tcp/core/core.js';
import { established, feed, ISS, PEER_ISS, pattern, TCP_ACK, type Opts } from './core-harness.js';

const P = PEER_ISS + 1;
const S = ISS + 1;
const K = (n: number): number => S + n * 1000;

/** ESTABLISHED with SACK, MSS 1000; `bytes` written and sent (none acknowledged yet). */
function setup(bytes: number, o: Opts = {}): ReturnType<typeof established> {
  const x = established({ sack: true, peerMss: 1000, ...o });
  x.h.conn(x.t).write(pattern(bytes));
  core.appSend(x.t, x.h);
  return x;
}

/** setup(bytes), the flight taken, and 10 ms later an ACK of its first 2 segments (the rest lost). */
function afterAckOfTwo(bytes: number): ReturnType<typeof established> {
  const x = setup(bytes);
  x.h.take();
  x.h.advance(10_000);
  feed(x.h, x.t, { seq: P, ack: K(2), flags: TCP_ACK });
  return x;
}

t.test('PTO: armed after new data, 2*SRTT + 2 ms for a multi-segment flight, before the RTO', async (t) => {
  const { h, t: c } = setup(4000);
  t.equal(h.take().length, 4);
  t.equal(c.rtt.srttUs, 10_000);
  t.equal(c.tTlp, h.nowUs + 22_000);
  t.equal(c.tRtx, h.nowUs + 200_000);
  t.equal(core.nextDeadline(c), c.tTlp, 'nextDeadline includes the PTO');
  // An ACK of new data restarts it.
  h.advance(10_000);
  feed(h, c, { seq: P, ack: K(2), flags: TCP_ACK });
  t.equal(c.tTlp, h.nowUs + 22_000);
  // All acknowledged: both off.
  feed(h, c, { seq: P, ack: K(4), flags: TCP_ACK });
  t.equal(c.tTlp, Infinity);
  t.equal(c.tRtx, Infinity);
});

t.test('tail segments lost: the probe goes at the PTO (not the RTO) and retransmits the last segment', async (t) => {
  const { h, t: c } = afterAckOfTwo(4000); // 2 and 3 lost
  const t0 = h.nowUs;
  const cwnd = c.cc.cwnd;
  h.toDeadline(c);
  t.equal(h.nowUs - t0, 22_000, 'at the PTO, 178 ms before the RTO would fire');
  const segs = h.take();
  t.same(segs.map((s) => [s.seq - S, s.dataLen]), [[3000, 1000]], 'the highest segment');
  t.equal(c.tlpProbes, 1);
  t.equal(c.tlpActive, 1);
  t.equal(c.tlpRetrans, 1);
  t.equal(c.tlpEnd, K(4));
  t.equal(c.rtoExpiries, 0);
  t.equal(c.rtt.backoff, 0, 'no backoff');
  t.equal(c.cc.cwnd, cwnd, 'no loss window');
  t.equal(c.tRtx, h.nowUs + 200_000, 'the RTO re-armed after the probe');
  t.equal(c.tTlp, Infinity, 'one probe per episode');
});

t.test("the probe's SACK reveals the hole: fast retransmit at once (no DupThresh, no RTO)", async (t) => {
  const { h, t: c } = afterAckOfTwo(4000);
  h.toDeadline(c);
  h.take();
  h.advance(10_000);
  feed(h, c, { seq: P, ack: K(2), flags: TCP_ACK, sack: [[K(3), K(4)]] });
  t.equal(c.inRecovery, 2, 'SACK recovery');
  t.equal(c.fastRetrans, 1);
  t.equal(c.tlpActive, 0, 'the recovery ended the TLP episode');
  const segs = h.take();
  t.same([segs[0].seq - S, segs[0].dataLen], [2000, 1000], 'the hole retransmitted');
  feed(h, c, { seq: P, ack: K(4), flags: TCP_ACK });
  t.equal(c.inRecovery, 0);
  t.equal(c.rtoExpiries, 0);
});

t.test('the probe carries new data when cwnd held it back, and its SACK starts recovery for a 2-segment hole', async (t) => {
  const { h, t: c } = setup(40000);
  t.equal(h.take().length, 10, 'the initial window');
  h.advance(10_000);
  feed(h, c, { seq: P, ack: K(8), flags: TCP_ACK }); // 8 and 9 lost; cwnd grows, new data goes
  const sent = h.take().map((s) => (s.seq - S) / 1000);
  t.ok(sent.length > 0 && sent[0] === 10);
  const top = (c.sndMax - S) / 1000;
  // Everything after the ACK is lost too; the PTO sends one more new segment despite cwnd.
  t.ok(c.cc.cwnd <= c.sndMax - c.sndUna, 'cwnd-limited');
  h.toDeadline(c);
  const [probe] = h.take();
  t.same([probe.seq - S, probe.dataLen], [top * 1000, 1000], 'a new segment');
  t.equal(c.tlpRetrans, 0);
  t.equal(c.tlpEnd, K(top + 1));
  // Its SACK: one segment above a hole of several; DupThresh stays 3 (more data is waiting).
  h.advance(10_000);
  feed(h, c, { seq: P, ack: K(8), flags: TCP_ACK, sack: [[K(top), K(top + 1)]] });
  t.equal(c.inRecovery, 2, 'recovery from the probe alone');
  const [rx] = h.take();
  t.same([rx.seq - S, rx.dataLen], [8000, 1000]);
});

t.test('RFC 5827 with SACK: an ACK that advances SND.UNA and SACKs the segment above a one-segment hole starts recovery', async (t) => {
  const { h, t: c } = setup(4000);
  h.take();
  h.advance(10_000);
  feed(h, c, { seq: P, ack: K(2), flags: TCP_ACK, sack: [[K(3), K(4)]] });
  t.equal(c.inRecovery, 2, 'two segments outstanding: the threshold is one SACKed segment');
  const [rx] = h.take();
  t.same([rx.seq - S, rx.dataLen], [2000, 1000]);
  t.equal(c.tTlp, Infinity);
});

t.test('an undecided episode (probe ACKed exactly to its end) does not block the next probe; it counts as repaired', async (t) => {
  const { h, t: c } = afterAckOfTwo(3000);
  h.toDeadline(c);
  h.take();
  feed(h, c, { seq: P, ack: K(3), flags: TCP_ACK });
  t.equal(c.tlpActive, 1, 'undecided');
  h.conn(c).write(pattern(500));
  core.appSend(c, h);
  h.take();
  t.ok(c.tTlp < c.tRtx, 'a PTO for the new flight');
  h.toDeadline(c);
  t.equal(c.tlpProbes, 2);
  t.equal(c.tlpRecoveries, 1, 'the old episode decided as case 3');
  t.equal(c.tlpActive, 1);
  t.equal(c.tlpEnd, K(3) + 500);
});

t.test('a new-data probe acknowledged ends the episode without a congestion response', async (t) => {
  const { h, t: c } = setup(20000);
  h.take();
  h.toDeadline(c); // the whole flight (or its ACKs) lost: probe at 22 ms with segment 10
  const [probe] = h.take();
  t.equal(probe.seq - S, 10000);
  const cwnd = c.cc.cwnd;
  h.advance(10_000);
  feed(h, c, { seq: P, ack: K(11), flags: TCP_ACK });
  t.equal(c.tlpActive, 0);
  t.equal(c.tlpRecoveries, 0);
  t.ok(c.cc.cwnd >= cwnd);
});

t.test('§7.4: a retransmitted probe that repaired a loss reduces cwnd once; a D-SACKed one does not', async (t) => {
  {
    const { h, t: c } = afterAckOfTwo(3000); // segment 2 lost
    h.toDeadline(c);
    h.take();
    t.equal(c.tlpRetrans, 1);
    feed(h, c, { seq: P, ack: K(3), flags: TCP_ACK });
    t.equal(c.tlpActive, 1, 'ACK == TLP.end_seq: undecided (RFC 8985 §7.4.2)');
    const ss = c.cc.ssthresh;
    h.conn(c).write(pattern(1000));
    core.appSend(c, h);
    h.take();
    feed(h, c, { seq: P, ack: K(4), flags: TCP_ACK });
    t.equal(c.tlpActive, 0);
    t.equal(c.tlpRecoveries, 1, 'case 3: the probe repaired a loss');
    t.ok(c.cc.ssthresh < ss, 'congestion response');
  }
  {
    const { h, t: c } = afterAckOfTwo(3000);
    h.toDeadline(c);
    h.take();
    feed(h, c, { seq: P, ack: K(3), flags: TCP_ACK, sack: [[K(2), K(3)]] });
    t.equal(c.tlpActive, 0, 'case 1: D-SACK of the probe');
    t.equal(c.tlpRecoveries, 0);
  }
});

t.test('no probe in recovery, after an RTO, without SACK, or with optTlp off', async (t) => {
  {
    const { h, t: c } = setup(10000);
    h.take();
    feed(h, c, { seq: P, ack: K(0), flags: TCP_ACK, sack: [[K(1), K(4)]] });
    t.equal(c.inRecovery, 2);
    t.equal(c.tTlp, Infinity, 'in recovery');
    h.take();
    h.toDeadline(c);
    t.equal(c.rtoExpiries, 1, 'the RTO, not a probe');
    t.equal(c.tlpProbes, 0);
    t.equal(c.tTlp, Infinity, 'RTO recovery');
    h.take();
    h.advance(10_000);
    feed(h, c, { seq: P, ack: K(1), flags: TCP_ACK });
    t.equal(c.tTlp, Infinity, 'SND.UNA below the RTO recovery point');
  }
  {
    const { h, t: c } = setup(4000, { sack: false });
    h.take();
    t.equal(c.tTlp, Infinity, 'SACK not negotiated');
    h.toDeadline(c);
    t.equal(c.rtoExpiries, 1);
  }
  {
    const x = established({ sack: true, peerMss: 1000 });
    x.t.optTlp = 0;
    x.h.conn(x.t).write(pattern(4000));
    core.appSend(x.t, x.h);
    t.equal(x.t.tTlp, Infinity, 'optTlp = 0');
  }
});

t.test('one-segment flight: 2*SRTT + max_ack_delay; never later than the RTO (200 ms delay, large SRTT)', async (t) => {
  {
    const { h, t: c } = setup(500);
    h.take();
    t.equal(c.tTlp, h.nowUs + 70_000, '2*SRTT + TLP.max_ack_delay (50 ms)');
  }
  {
    const x = established({ sack: true, peerMss: 1000 });
    const { h, t: c } = x;
    c.tlpDelAckUs = 200_000; // RFC 8985's conservative value
    h.conn(c).write(pattern(500));
    core.appSend(c, h);
    h.take();
    t.equal(c.tTlp, c.tRtx, '2*SRTT + 200 ms capped at the RTO deadline');
    const t0 = h.nowUs;
    h.toDeadline(c);
    t.equal(h.nowUs - t0, 200_000);
    t.equal(c.tlpProbes, 1, 'the probe replaces the timeout');
    t.equal(c.rtoExpiries, 0);
    t.equal(c.rtt.backoff, 0);
    t.same(h.take().map((s) => [s.seq - S, s.dataLen]), [[0, 500]]);
    // The probe is lost too: now the RTO, not doubled.
    const t1 = h.nowUs;
    h.toDeadline(c);
    t.equal(h.nowUs - t1, 200_000);
    t.equal(c.rtoExpiries, 1);
  }
  {
    const x = established({ sack: true, peerMss: 1000 });
    const { h, t: c } = x;
    c.rtt.srttUs = 150_000;
    c.rtt.rttvarUs = 1_000;
    c.rtt.rtoUs = 250_000;
    h.conn(c).write(pattern(3000));
    core.appSend(c, h);
    t.equal(c.tRtx, h.nowUs + 250_000);
    t.equal(c.tTlp, c.tRtx, '2*SRTT + 2 ms = 302 ms capped at 250 ms');
    // A late ACK of some data restarts both; the cap holds again.
    h.advance(100_000);
    feed(h, c, { seq: P, ack: K(1), flags: TCP_ACK });
    t.ok(c.tTlp <= c.tRtx);
  }
});

t.test('a lost FIN at the tail is probed too (FIN_WAIT_1)', async (t) => {
  const { h, t: c } = setup(2000);
  core.appClose(c, h);
  const segs = h.take();
  t.ok(segs.some((s) => s.flags & 1), 'FIN sent');
  h.advance(10_000);
  feed(h, c, { seq: P, ack: K(2), flags: TCP_ACK }); // the FIN lost
  t.equal(c.tTlp, h.nowUs + 70_000, 'a one-segment flight');
  h.toDeadline(c);
  t.equal(c.tlpProbes, 1);
  t.equal(c.rtoExpiries, 0);
  const [probe] = h.take();
  t.equal(probe.seq, K(2));
  t.ok(probe.flags & 1, 'the FIN again');
  feed(h, c, { seq: P, ack: K(2) + 1, flags: TCP_ACK });
  t.equal(c.sndUna, c.sndMax);
});
