/**
 * TCP core: RFC 6675 SACK loss recovery. Entering recovery on DupThresh duplicate ACKs or IsLost,
 * retransmitting several holes via NextSeg under the pipe, new data when no hole is left, exit on the
 * RecoveryPoint, the scoreboard discarded on RTO.
 */
import t from 'tap';
import * as core from '../../servers/tcp/core/core.js';
import { established, feed, ISS, PEER_ISS, pattern, TCP_ACK } from './core-harness.js';

const P = PEER_ISS + 1;
const S = ISS + 1;
const K = (n: number): number => S + n * 1000;

function setup(): ReturnType<typeof established> {
  const x = established({ sack: true, peerMss: 1000 });
  x.h.conn(x.t).write(pattern(40000));
  core.appSend(x.t, x.h);
  x.h.take();
  return x;
}

t.test('SACK: one lost segment, recovery by IsLost after three SACKed segments', async (t) => {
  const { h, t: c } = setup();
  t.equal(c.sackOk, 1);
  feed(h, c, { seq: P, ack: K(0), flags: TCP_ACK, sack: [[K(1), K(2)]] });
  feed(h, c, { seq: P, ack: K(0), flags: TCP_ACK, sack: [[K(1), K(3)]] });
  t.equal(c.inRecovery, 0);
  const lt = h.take();
  t.same(lt.map((s) => s.seq - S), [10000, 11000], 'limited transmit');
  feed(h, c, { seq: P, ack: K(0), flags: TCP_ACK, sack: [[K(1), K(4)]] });
  t.equal(c.inRecovery, 2);
  t.equal(c.recover, K(12));
  const segs = h.take();
  t.same([segs[0].seq - S, segs[0].dataLen], [0, 1000], 'the first hole');
  t.equal(c.cc.cwnd, 6000);
  // Everything up to the retransmission's cover arrives: full ACK.
  feed(h, c, { seq: P, ack: K(12), flags: TCP_ACK });
  t.equal(c.inRecovery, 0);
  t.equal(c.sb.n, 0);
});

t.test('SACK: several holes are retransmitted in order under the pipe, then new data', async (t) => {
  const { h, t: c } = setup();
  // Lost: 0, 3, 6. SACKed: 1-2, 4-5, 7-9.
  const blocks: [number, number][] = [
    [K(7), K(10)],
    [K(4), K(6)],
    [K(1), K(3)],
  ];
  feed(h, c, { seq: P, ack: K(0), flags: TCP_ACK, sack: blocks });
  t.equal(c.inRecovery, 2, 'IsLost(SND.UNA): 7 segments SACKed above it');
  const rx = h.take().map((s) => (s.seq - S) / 1000);
  t.same(rx.slice(0, 3), [0, 3, 6], 'each hole once, lowest first');
  t.equal(c.sb.highRxt, K(7));
  // pipe = 0 (3 holes lost, retransmitted: 3000) + nothing else outstanding... new data while cwnd - pipe >= MSS.
  t.ok(rx.length > 3 && rx.slice(3).every((k, i) => k === 10 + i), 'then new data (NextSeg rule 2)');
  // Partial ACK covering holes 0: nothing special, the rest is already resent.
  feed(h, c, { seq: P, ack: K(3), flags: TCP_ACK, sack: [[K(7), K(10)], [K(4), K(6)]] });
  t.equal(c.inRecovery, 2);
  t.same(h.take().filter((s) => s.seq - S < 10000).length, 0, 'no hole resent twice');
  feed(h, c, { seq: P, ack: K(10), flags: TCP_ACK });
  t.equal(c.inRecovery, 0, 'RecoveryPoint covered');
});

t.test('SACK: RTO during recovery discards the scoreboard and ends recovery', async (t) => {
  const { h, t: c } = setup();
  feed(h, c, { seq: P, ack: K(0), flags: TCP_ACK, sack: [[K(1), K(6)]] });
  t.equal(c.inRecovery, 2);
  h.take();
  h.toDeadline(c);
  t.equal(c.inRecovery, 0);
  t.equal(c.sb.n, 0);
  t.equal(c.recover, c.sndMax);
  const [r] = h.take();
  t.equal(r.seq, K(0));
  t.equal(c.cc.cwnd, 1000);
});

t.test('SACK: bogus blocks (beyond SND.MAX, below SND.UNA) are ignored', async (t) => {
  const { h, t: c } = setup();
  feed(h, c, { seq: P, ack: K(0), flags: TCP_ACK, sack: [[K(20), K(30)]] });
  t.equal(c.sb.n, 0);
  feed(h, c, { seq: P, ack: K(2), flags: TCP_ACK, sack: [[K(0), K(1)]] });
  t.equal(c.sb.n, 0, 'a D-SACK below SND.UNA');
  t.equal(c.inRecovery, 0);
});

t.test('SACK blocks we report shrink the data of our segments: header + data never exceed the MSS', async (t) => {
  // A regression found over a lossy link: data segments sent while we held out-of-order data carried
  // SACK options on top of a full MSS of data, so IP dropped every one of them (DF, too big), forever.
  const x = established({ sack: true, peerMss: 1000 });
  const { h, t: c } = x;
  // The peer's data arrives with holes: we hold two out-of-order ranges.
  feed(h, c, { seq: P + 100, ack: S, flags: TCP_ACK, data: pattern(50) });
  feed(h, c, { seq: P + 300, ack: S, flags: TCP_ACK, data: pattern(50) });
  t.equal(c.oooN, 2);
  h.take();
  h.conn(c).write(pattern(20000));
  core.appSend(c, h);
  const segs = h.take().filter((s) => s.dataLen > 0);
  t.ok(segs.length > 0);
  for (const s of segs) {
    t.equal(s.sack.length, 2, 'the segment reports both ranges');
    t.ok(s.dataLen + 4 + 8 * s.sack.length <= 1000, `data ${s.dataLen} + SACK option fit in the peer's MSS`);
  }
});
