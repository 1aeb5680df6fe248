/**
 * TCP core: timers and the Tcb's shared-memory form. Keepalive (probes, answer, ETIMEDOUT), the persist
 * timer giving up on a silent peer, nextDeadline, restart after idle, and tcbSave / tcbLoad / tcbCopy
 * round trips (a restored Tcb behaves exactly like the original).
 */
import t from 'tap';
import * as core from '../../servers/tcp/core/core.js';
import { CLOSED, ESTABLISHED, ETIMEDOUT, N_ERROR, Tcb, TCB_WORDS, tcbCopy, tcbLoad, tcbReset, tcbSave } from '../../servers/tcp/core/core.js';
import { tcbFieldNames } from '../../servers/tcp/core/tcb.js';
import { established, feed, flagsOf, ISS, PEER_ISS, pattern, TCP_ACK } from './core-harness.js';

const P = PEER_ISS + 1;
const S = ISS + 1;

t.test('keepalive: probes after the idle time, every interval, ETIMEDOUT after the count', async (t) => {
  const { h, t: c } = established();
  c.keepAlive = 1;
  c.keepIdleUs = 10_000_000;
  c.keepIntvlUs = 1_000_000;
  c.keepCnt = 3;
  core.appSend(c, h); // arms keepalive for an established connection
  t.equal(core.nextDeadline(c), h.nowUs + 10_000_000);
  const t0 = h.nowUs;
  h.toDeadline(c);
  const [p] = h.take();
  t.same([flagsOf(p), p.seq, p.dataLen], ['.', S - 1, 0], 'probe: SND.NXT - 1, no data');
  // Answered: the idle time starts again.
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK });
  t.equal(c.keepProbes, 0);
  t.equal(core.nextDeadline(c), h.nowUs + 10_000_000);
  const times: number[] = [];
  while (c.state === ESTABLISHED) {
    h.toDeadline(c);
    for (let n = h.take().length; n > 0; n--) times.push((h.nowUs - t0) / 1e6);
  }
  t.same(times, [20, 21, 22], 'three unanswered probes');
  t.equal((h.nowUs - t0) / 1e6, 23);
  t.equal(c.state, CLOSED);
  t.equal(c.err, ETIMEDOUT);
  t.ok(h.conn(c).bits() & N_ERROR);
});

t.test('keepalive: no probes while data is in flight (the retransmission timer watches)', async (t) => {
  const { h, t: c } = established();
  c.keepAlive = 1;
  c.keepIdleUs = 100_000;
  core.appSend(c, h);
  h.conn(c).write(pattern(10));
  core.appSend(c, h);
  h.take();
  h.advance(100_000, c);
  const segs = h.take();
  t.ok(segs.every((s) => s.dataLen > 0), 'retransmissions only');
});

t.test('persist: a silent peer is given up after maxRetries unanswered probes', async (t) => {
  const { h, t: c } = established({ peerMss: 1000 });
  c.maxRetries = 4;
  h.conn(c).write(pattern(1000));
  core.appSend(c, h);
  feed(h, c, { seq: P, ack: S + 1000, flags: TCP_ACK, win: 0 });
  h.conn(c).write(pattern(10));
  core.appSend(c, h);
  h.take();
  let probes = 0;
  while (c.state === ESTABLISHED) {
    h.toDeadline(c);
    probes += h.take().filter((s) => s.dataLen === 0 && s.seq === S + 999).length;
  }
  t.equal(probes, 4);
  t.equal(c.err, ETIMEDOUT);
});

t.test('nextDeadline is the earliest armed timer; Infinity when none', async (t) => {
  const { h, t: c } = established();
  t.equal(core.nextDeadline(c), Infinity);
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: [1] });
  t.equal(core.nextDeadline(c), h.nowUs + 40_000, 'delayed ACK');
  h.conn(c).write([1]);
  core.appSend(c, h);
  t.equal(core.nextDeadline(c), c.tRtx, 'the ACK went with the data; RTO left');
});

t.test('restart after idle: cwnd back to the initial window (RFC 5681 §4.1)', async (t) => {
  const { h, t: c } = established({ peerMss: 1000 });
  h.conn(c).write(pattern(30000));
  core.appSend(c, h);
  for (let k = 1; k <= 30; k++) feed(h, c, { seq: P, ack: S + k * 1000, flags: TCP_ACK });
  t.ok(c.cc.cwnd > 10000);
  h.take();
  h.advance(5_000_000);
  h.conn(c).write(pattern(30000));
  core.appSend(c, h);
  t.equal(h.take().length, 10);
});

t.test('Tcb layout: numbers and fixed arrays only; TCB_WORDS covers every leaf', async (t) => {
  const names = tcbFieldNames();
  t.equal(names.length, TCB_WORDS);
  t.ok(names.includes('cc.v[7]') && names.includes('sb.r[31]') && names.includes('ooo[15]') && names.includes('rtt.srttUs'));
  t.equal(new Set(names).size, names.length);
});

t.test('tcbSave / tcbLoad round trip: the restored connection continues identically', async (t) => {
  const { h, t: c } = established({ sack: true, ts: true, ws: true, peerWs: 3, peerMss: 1000 });
  h.conn(c).write(pattern(20000));
  core.appSend(c, h);
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, sack: [[S + 988, S + 2 * 988]], ts: [1000, 1] });
  feed(h, c, { seq: P + 100, ack: S, flags: TCP_ACK, data: [1, 2, 3] });
  h.take();
  const f64 = new Float64Array(TCB_WORDS + 10);
  tcbSave(c, f64, 5);
  const r = new Tcb();
  tcbLoad(r, f64, 5);
  t.same(r, c, 'every field restored');
  t.equal(r.tRtx, c.tRtx);
  t.equal(r.lastOowAckUs, -Infinity);
  // Both continue the same way.
  h.conn(r).out = h.conn(c).out;
  h.conn(r).written = h.conn(c).written;
  feed(h, c, { seq: P, ack: S + 3000, flags: TCP_ACK, ts: [1001, 1] });
  const a = h.take().map((s) => [s.seq, s.ack, s.dataLen, s.flags, s.window]);
  feed(h, r, { seq: P, ack: S + 3000, flags: TCP_ACK, ts: [1001, 1] });
  const b = h.take().map((s) => [s.seq, s.ack, s.dataLen, s.flags, s.window]);
  t.same(b, a);
  t.throws(() => tcbSave(c, new Float64Array(TCB_WORDS - 1), 0), RangeError);
});

t.test('tcbCopy copies (no shared arrays); tcbReset gives a fresh Tcb', async (t) => {
  const { t: c } = established({ sack: true });
  c.ooo[3] = 42;
  c.sb.r[0] = 7;
  const d = new Tcb();
  tcbCopy(d, c);
  t.same(d, c);
  t.not(d.ooo, c.ooo);
  t.not(d.cc.v, c.cc.v);
  c.ooo[3] = 1;
  t.equal(d.ooo[3], 42);
  tcbReset(d);
  t.same(d, new Tcb());
});
