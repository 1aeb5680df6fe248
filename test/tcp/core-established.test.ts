/**
 * TCP core, ESTABLISHED: sending (segment sizes, PSH, initial window, Nagle), receiving (delayed ACK,
 * out of order + SACK blocks, reassembly, duplicates, overlaps, trimming), windows (scaling, zero window,
 * persist probes, receiver SWS avoidance, window updates), RFC 5961 (RST, SYN, ACK checks) and PAWS.
 */
import t from 'tap';
import * as core from '../../servers/tcp/core/core.js';
import { CLOSED, ECONNRESET, ESTABLISHED, N_READABLE, N_WRITABLE } from '../../servers/tcp/core/core.js';
import {
  DROP_ACK_TOO_OLD,
  DROP_ACK_UNSENT,
  DROP_OUT_OF_WINDOW,
  DROP_PAWS,
  DROP_RST_CHALLENGE,
  DROP_RST_IGNORED,
  DROP_SYN_CHALLENGE,
  SEG_OK,
  SEG_RESET,
} from '../../servers/tcp/core/verdicts.js';
import { echo, established, feed, flagsOf, ISS, PEER_ISS, PEER_TS, pattern, TCP_ACK, TCP_PSH, TCP_RST, TCP_SYN } from './core-harness.js';

const P = PEER_ISS + 1; // the peer's first data sequence number
const S = ISS + 1; // ours

t.test('send: full segments, PSH on the last, initial window of 10 segments, ACKs open cwnd', async (t) => {
  const { h, t: c } = established({ peerMss: 1000 });
  t.equal(c.cc.cwnd, 10000);
  h.conn(c).write(pattern(25000));
  core.appSend(c, h);
  const segs = h.take();
  t.equal(segs.length, 10, 'cwnd limits to IW');
  t.ok(segs.every((s) => s.dataLen === 1000 && flagsOf(s) === '.'), 'no PSH: the queue is not empty');
  t.same([...segs[3].data.slice(0, 4)], [...pattern(4, 3000)]);
  t.equal(c.tRtx, h.nowUs + 200_000, 'RTO armed: 10 ms handshake RTT -> the 200 ms floor');
  h.advance(50_000);
  t.equal(feed(h, c, { seq: P, ack: S + 2000, flags: TCP_ACK }), SEG_OK);
  t.ok(h.conn(c).bits() & N_WRITABLE);
  t.equal(c.cc.cwnd, 12000, 'slow start: + min(acked, 2 SMSS)');
  t.equal(c.rtt.srttUs, (7 / 8) * 10_000 + 50_000 / 8, 'RTT sampled from the timed first segment');
  t.same(h.take().map((s) => s.dataLen), [1000, 1000, 1000, 1000]);
  // Everything acked progressively: the last segment has PSH.
  let acked = 2000;
  for (let i = 0; i < 40 && acked < 25000; i++) {
    acked = Math.min(25000, acked + 2000);
    feed(h, c, { seq: P, ack: S + acked, flags: TCP_ACK });
  }
  const rest = h.take();
  t.equal(rest[rest.length - 1].flags & TCP_PSH, TCP_PSH, 'PSH empties the queue');
  t.equal(rest[rest.length - 1].seq + rest[rest.length - 1].dataLen, S + 25000);
  t.equal(c.tRtx, Infinity, 'all acked: RTO off (RFC 6298 §5.2)');
});

t.test('Nagle: a small segment waits while data is unacknowledged; noDelay sends it', async (t) => {
  const { h, t: c } = established();
  h.conn(c).write([1, 2, 3]);
  core.appSend(c, h);
  t.equal(h.take().length, 1, 'nothing outstanding: the first small segment goes');
  h.conn(c).write([4, 5]);
  core.appSend(c, h);
  t.equal(h.take().length, 0, 'held by Nagle');
  feed(h, c, { seq: P, ack: S + 3, flags: TCP_ACK });
  const [s] = h.take();
  t.same([...s.data], [4, 5], 'released by the ACK');
  c.noDelay = 1;
  h.conn(c).write([6]);
  core.appSend(c, h);
  h.conn(c).write([7]);
  core.appSend(c, h);
  t.same(h.take().map((x) => [...x.data]), [[6], [7]], 'noDelay');
});

t.test('receive: delayed ACK after 40 ms, immediate ACK every second full segment', async (t) => {
  const { h, t: c } = established();
  t.equal(feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: pattern(1000) }), SEG_OK);
  t.ok(h.conn(c).bits() & N_READABLE);
  t.equal(h.take().length, 0, 'ACK delayed');
  t.equal(core.nextDeadline(c), h.nowUs + 40_000);
  h.advance(39_999, c);
  t.equal(h.take().length, 0);
  h.advance(1, c);
  const [a] = h.take();
  t.same([flagsOf(a), a.ack], ['.', P + 1000]);
  feed(h, c, { seq: P + 1000, ack: S, flags: TCP_ACK, data: pattern(1000, 1000) });
  t.equal(h.take().length, 0);
  feed(h, c, { seq: P + 2000, ack: S, flags: TCP_ACK, data: pattern(1000, 2000) });
  const [b] = h.take();
  t.equal(b.ack, P + 3000, 'second full-sized segment: ACK now');
  t.equal(c.tDelack, Infinity);
  t.same([...h.read(c)], [...pattern(3000)]);
});

t.test('receive with ackAtBatchEnd: a burst of full segments gets one ACK, when the batch is done', async (t) => {
  const { h, t: c } = established();
  h.ackAtBatchEnd = true;
  for (let i = 0; i < 6; i++) feed(h, c, { seq: P + i * 1000, ack: S, flags: TCP_ACK, data: pattern(1000, i * 1000) });
  t.equal(h.take().length, 0, 'no ACK while the batch is being handled');
  t.equal(c.tDelack, h.nowUs, 'the ACK is due now');
  t.equal(core.nextDeadline(c), h.nowUs, 'so the shell fires it at the end of the pass');
  h.advance(0, c);
  const acks = h.take();
  t.same(acks.map((a) => [flagsOf(a), a.ack]), [['.', P + 6000]], 'one ACK for all six segments');
  t.equal(c.tDelack, Infinity);
  // What is still acknowledged at once: a segment out of order (a duplicate ACK with SACK).
  feed(h, c, { seq: P + 7000, ack: S, flags: TCP_ACK, data: pattern(1000, 7000) });
  const [dup] = h.take();
  t.same([flagsOf(dup), dup.ack], ['.', P + 6000], 'out of order: duplicate ACK at once');
  // ...and the segment that fills the gap.
  feed(h, c, { seq: P + 6000, ack: S, flags: TCP_ACK, data: pattern(1000, 6000) });
  const [fill] = h.take();
  t.equal(fill.ack, P + 8000, 'gap filled: ACK at once');
  t.same([...h.read(c)], [...pattern(8000)]);
});

t.test('receive: data piggybacks the ACK', async (t) => {
  const { h, t: c } = established();
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: [1] });
  h.conn(c).write([2]);
  core.appSend(c, h);
  const [s] = h.take();
  t.same([s.ack, s.dataLen], [P + 1, 1]);
  t.equal(c.tDelack, Infinity, 'the delayed ACK went with the data');
});

t.test('receive: out of order -> immediate duplicate ACK with SACK blocks, most recent first; hole filled -> jump', async (t) => {
  const { h, t: c } = established({ sack: true, ts: true });
  const ts = (): [number, number] => [PEER_TS + 1, echo(h, c)];
  feed(h, c, { seq: P + 1000, ack: S, flags: TCP_ACK, data: pattern(500, 1000), ts: ts() });
  let [a] = h.take();
  t.same([a.ack, a.sack], [P, [[P + 1000, P + 1500]]]);
  feed(h, c, { seq: P + 3000, ack: S, flags: TCP_ACK, data: pattern(500, 3000), ts: ts() });
  [a] = h.take();
  t.same(a.sack, [
    [P + 3000, P + 3500],
    [P + 1000, P + 1500],
  ]);
  feed(h, c, { seq: P + 2000, ack: S, flags: TCP_ACK, data: pattern(500, 2000), ts: ts() });
  feed(h, c, { seq: P + 5000, ack: S, flags: TCP_ACK, data: pattern(500, 5000), ts: ts() });
  feed(h, c, { seq: P + 1500, ack: S, flags: TCP_ACK, data: pattern(500, 1500), ts: ts() });
  const acks = h.take();
  t.same(acks[2].sack, [
    [P + 1000, P + 2500],
    [P + 5000, P + 5500],
    [P + 3000, P + 3500],
  ], 'merged range first; at most 3 blocks with timestamps');
  t.equal(c.rcvNxt, P, 'still a hole at the front');
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: pattern(1000), ts: ts() });
  [a] = h.take();
  t.equal(c.rcvNxt, P + 2500, 'the hole filled: RCV.NXT jumps over the stored range');
  t.same([a.ack, a.sack], [P + 2500, [[P + 5000, P + 5500], [P + 3000, P + 3500]]], 'filling a hole: ACK at once');
  feed(h, c, { seq: P + 2500, ack: S, flags: TCP_ACK, data: pattern(500, 2500), ts: ts() });
  feed(h, c, { seq: P + 3500, ack: S, flags: TCP_ACK, data: pattern(1500, 3500), ts: ts() });
  t.equal(c.rcvNxt, P + 5500);
  t.equal(c.oooN, 0);
  t.same([...h.read(c)], [...pattern(5500)], 'the bytes, in order');
  t.equal(h.conn(c).overflow, 0);
});

t.test('receive: 4 SACK blocks without timestamps; none without SACK', async (t) => {
  let { h, t: c } = established({ sack: true });
  for (const k of [1, 3, 5, 7, 9]) feed(h, c, { seq: P + k * 100, ack: S, flags: TCP_ACK, data: pattern(50) });
  const last = h.take().pop()!;
  t.equal(last.sack.length, 4);
  t.same(last.sack[0], [P + 900, P + 950]);
  ({ h, t: c } = established({}));
  feed(h, c, { seq: P + 100, ack: S, flags: TCP_ACK, data: pattern(50) });
  t.same(h.take()[0].sack, []);
});

t.test('receive: duplicates and overlaps', async (t) => {
  const { h, t: c } = established();
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: pattern(100) });
  h.take();
  // An entire duplicate: not acceptable, ACKed at once (it carries data).
  t.equal(feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: pattern(100) }), DROP_OUT_OF_WINDOW);
  t.equal(h.take()[0].ack, P + 100);
  // Overlapping: only the new part counts.
  feed(h, c, { seq: P + 50, ack: S, flags: TCP_ACK, data: pattern(100, 50) });
  t.equal(c.rcvNxt, P + 150);
  t.same([...h.read(c)], [...pattern(150)]);
  // Overlapping out-of-order ranges merge.
  feed(h, c, { seq: P + 300, ack: S, flags: TCP_ACK, data: pattern(100, 300) });
  feed(h, c, { seq: P + 350, ack: S, flags: TCP_ACK, data: pattern(100, 350) });
  feed(h, c, { seq: P + 250, ack: S, flags: TCP_ACK, data: pattern(60, 250) });
  t.equal(c.oooN, 1);
  t.same([c.ooo[0], c.ooo[1]], [P + 250, P + 450]);
  feed(h, c, { seq: P + 150, ack: S, flags: TCP_ACK, data: pattern(100, 150) });
  t.equal(c.rcvNxt, P + 450);
  t.same([...h.read(c)], [...pattern(300, 150)]);
});

t.test('receive: data beyond the window is trimmed; the window fills to zero and reopens with reads', async (t) => {
  const { h, t: c } = established({ rcvBuf: 4000 });
  // Our SYN advertised 4000.
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: pattern(3000) });
  feed(h, c, { seq: P + 3000, ack: S, flags: TCP_ACK, data: pattern(1500, 3000) });
  t.equal(c.rcvNxt, P + 4000, 'trimmed at the right edge');
  const a = h.take().pop()!;
  t.same([a.ack, a.window], [P + 4000, 0], 'zero window');
  t.equal(h.conn(c).overflow, 0);
  // A zero-window probe with one byte: not acceptable -> ACK (window still 0).
  t.equal(feed(h, c, { seq: P + 4000, ack: S, flags: TCP_ACK, data: [1] }), SEG_OK, 'RCV.WND = 0: accepted for its ACK, data trimmed');
  t.same(h.take().map((s) => [s.ack, s.window]), [[P + 4000, 0]]);
  // Receiver SWS avoidance: reading 1000 of 4000 (< min(MSS, buf/2) = 1460... here min(1460, 2000)) keeps the window shut.
  const c2 = h.conn(c);
  c2.consumed += 1000;
  core.appRecv(c, h);
  t.equal(h.take().length, 0, 'opening by 1000 < 1460: no update');
  c2.consumed += 1000;
  core.appRecv(c, h);
  const [u] = h.take();
  t.same([u.ack, u.window], [P + 4000, 2000], 'window update once it opens by >= min(MSS, buffer/2)');
});

t.test('receive: the right edge never moves left (scaled window rounded up)', async (t) => {
  const { h, t: c } = established({ ws: true, peerWs: 0, rcvBuf: 1 << 16 });
  t.equal(c.rcvWscale, 1);
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: pattern(1001) });
  h.advance(40_000, c);
  const [a] = h.take();
  t.equal(a.window, Math.ceil((c.rcvAdv - c.rcvNxt) / 2));
  t.ok(P + 1001 + a.window * 2 >= P + 65535, 'right edge kept');
});

t.test('send: window scaling applies to the peer window; a zero window starts persist probes', async (t) => {
  const { h, t: c } = established({ ws: true, peerWs: 4, peerMss: 1000 });
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, win: 100 });
  t.equal(c.sndWnd, 1600);
  h.conn(c).write(pattern(5000));
  core.appSend(c, h);
  t.same(h.take().map((s) => s.dataLen), [1000], 'the 600 left is under half the largest window seen (SWS)');
  feed(h, c, { seq: P, ack: S + 1000, flags: TCP_ACK, win: 0 });
  t.equal(c.sndWnd, 0);
  t.equal(h.take().length, 0);
  t.equal(c.tRtx, Infinity);
  const rto = c.rtt.rtoUs;
  t.equal(c.tPersist, h.nowUs + rto, 'persist armed at the RTO');
  const at: number[] = [];
  const t0 = h.nowUs;
  for (let i = 0; i < 3; i++) {
    h.toDeadline(c);
    const [p] = h.take();
    t.same([flagsOf(p), p.seq, p.dataLen], ['.', S + 1000 - 1, 0], 'window probe: SND.UNA - 1, no data');
    at.push(h.nowUs - t0);
    feed(h, c, { seq: P, ack: S + 1000, flags: TCP_ACK, win: 0 });
  }
  t.same(at, [rto, 3 * rto, 7 * rto], 'persist backoff doubles');
  t.equal(c.state, ESTABLISHED, 'answered probes never time out');
  feed(h, c, { seq: P, ack: S + 1000, flags: TCP_ACK, win: 1000 });
  t.same(h.take().map((s) => s.dataLen), [1000, 1000, 1000, 1000], 'window update (1000 << 4) resumes sending');
  t.equal(c.tPersist, Infinity);
  t.equal(c.persistBackoff, 0);
});

t.test('send: the persist timer overrides sender SWS avoidance for a small window', async (t) => {
  const { h, t: c } = established({ peerMss: 1000, peerWin: 8000 });
  h.conn(c).write(pattern(3000));
  core.appSend(c, h);
  h.take();
  feed(h, c, { seq: P, ack: S + 3000, flags: TCP_ACK, win: 500 });
  h.conn(c).write(pattern(3000, 3000));
  core.appSend(c, h);
  t.equal(h.take().length, 0, '500 < 8000/2: wait');
  h.toDeadline(c);
  t.same(h.take().map((s) => s.dataLen), [500], 'override: send what fits');
});

t.test('RFC 5961 §3.2: RST exact -> ECONNRESET; in window -> challenge ACK; outside -> ignored', async (t) => {
  let { h, t: c } = established();
  t.equal(feed(h, c, { seq: P + 10, flags: TCP_RST }), DROP_RST_CHALLENGE);
  const [ch] = h.take();
  t.same([flagsOf(ch), ch.seq, ch.ack], ['.', S, P]);
  t.equal(feed(h, c, { seq: P + 100000, flags: TCP_RST }), DROP_RST_IGNORED);
  t.equal(h.take().length, 0);
  t.equal(feed(h, c, { seq: P, flags: TCP_RST }), SEG_RESET);
  t.same([c.state, c.err], [CLOSED, ECONNRESET]);
  ({ h, t: c } = established());
  t.equal(feed(h, c, { seq: P, ack: S, flags: TCP_RST | TCP_ACK }), SEG_RESET, 'RST with ACK');
});

t.test('RFC 5961 §4.2: SYN in ESTABLISHED -> challenge ACK, rate-limited to one per 500 ms', async (t) => {
  const { h, t: c } = established();
  t.equal(feed(h, c, { seq: P, flags: TCP_SYN }), DROP_SYN_CHALLENGE);
  t.equal(h.take().length, 1);
  t.equal(feed(h, c, { seq: P + 5, flags: TCP_SYN }), DROP_SYN_CHALLENGE);
  t.equal(h.take().length, 0, 'rate limit');
  h.advance(500_000);
  t.equal(feed(h, c, { seq: 123, flags: TCP_SYN }), DROP_OUT_OF_WINDOW, 'out of window SYN');
  t.equal(h.take().length, 1, 'challenge ACK again');
  t.equal(c.state, ESTABLISHED);
  t.equal(c.challengeAcks, 2);
});

t.test('RFC 5961 §5.2: ACK of unsent data or too old -> challenge ACK, dropped', async (t) => {
  const { h, t: c } = established();
  t.equal(feed(h, c, { seq: P, ack: S + 10, flags: TCP_ACK, data: [1] }), DROP_ACK_UNSENT);
  t.equal(c.rcvNxt, P, 'the data was not taken');
  t.equal(h.take().length, 1);
  h.advance(600_000);
  t.equal(feed(h, c, { seq: P, ack: S - 70000, flags: TCP_ACK }), DROP_ACK_TOO_OLD);
  t.equal(h.take().length, 1);
  t.equal(feed(h, c, { seq: P, ack: S - 100, flags: TCP_ACK, data: [1] }), SEG_OK, 'old but within MAX.SND.WND: data taken');
});

t.test('out-of-window pure ACKs are answered at most once per 500 ms; data always', async (t) => {
  const { h, t: c } = established();
  feed(h, c, { seq: P + 1_000_000, ack: S, flags: TCP_ACK });
  feed(h, c, { seq: P + 1_000_000, ack: S, flags: TCP_ACK });
  t.equal(h.take().length, 1);
  feed(h, c, { seq: P - 10, ack: S, flags: TCP_ACK, data: [1, 2] });
  feed(h, c, { seq: P - 10, ack: S, flags: TCP_ACK, data: [1, 2] });
  t.equal(h.take().length, 2);
});

t.test('PAWS: an old timestamp is dropped with an ACK; TS.Recent follows newer segments', async (t) => {
  const { h, t: c } = established({ ts: true });
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: [1], ts: [PEER_TS + 10, echo(h, c)] });
  t.equal(c.tsRecent, PEER_TS + 10);
  h.take();
  t.equal(feed(h, c, { seq: P + 1, ack: S, flags: TCP_ACK, data: [2], ts: [PEER_TS + 5, echo(h, c)] }), DROP_PAWS);
  t.equal(c.rcvNxt, P + 1);
  const [a] = h.take();
  t.equal(a.tsEcr, PEER_TS + 10);
  t.equal(feed(h, c, { seq: P + 1, flags: TCP_RST, ts: [PEER_TS + 1, 0] }), SEG_RESET, 'PAWS does not apply to RST');
});

t.test('PAWS: timestamps wrap; TS.Recent older than 24 days is not trusted', async (t) => {
  const { h, t: c } = established({ ts: true });
  c.tsRecent = 0xfffffff0;
  t.equal(feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: [1], ts: [5, 0] }), SEG_OK, 'wrapped but newer');
  t.equal(c.tsRecent, 5);
  h.advance(25 * 86400e6);
  t.equal(feed(h, c, { seq: P + 1, ack: S, flags: TCP_ACK, data: [2], ts: [1, 0] }), SEG_OK);
});

t.test('window update rule: an older segment does not change SND.WND (SND.WL1/WL2)', async (t) => {
  const { h, t: c } = established();
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: [1], win: 3000 });
  t.equal(c.sndWnd, 3000);
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, win: 100 });
  t.equal(c.sndWnd, 3000, 'SEG.SEQ < SND.WL1');
  feed(h, c, { seq: P + 1, ack: S, flags: TCP_ACK, win: 100 });
  t.equal(c.sndWnd, 100);
});

t.test('URG is ignored safely: urgent data stays in the stream', async (t) => {
  const { h, t: c } = established();
  const { r, data } = (await import('./core-harness.js')).seg({ seq: P, ack: S, flags: TCP_ACK | 0x20, data: [5, 6] });
  r.urgent = 1;
  core.segmentArrives(c, r, data, h);
  t.same([...h.read(c)], [5, 6]);
});

t.test('emit failures (ring full) are losses: timers recover', async (t) => {
  const { h, t: c } = established({ peerMss: 1000 });
  h.emitFails = true;
  h.conn(c).write(pattern(1000));
  core.appSend(c, h);
  t.equal(c.sndNxt, S + 1000, 'counted as sent');
  h.emitFails = false;
  h.toDeadline(c);
  const [r] = h.take();
  t.same([r.seq, r.dataLen], [S, 1000], 'retransmitted at the RTO');
});

t.test('receive: a short segment whose ACK is delayed is acknowledged as soon as the application drains the buffer', async (t) => {
  // Linux's tcp_cleanup_rbuf rule. Without it, a peer running Nagle waits a whole delayed-ACK timeout
  // (40 ms) for the ACK of its last short segment before it may send the next one.
  const { h, t: c } = established();
  feed(h, c, { seq: P, ack: S, flags: TCP_ACK, data: pattern(1000) });
  feed(h, c, { seq: P + 1000, ack: S, flags: TCP_ACK | TCP_PSH, data: pattern(100, 1000) });
  h.take();
  feed(h, c, { seq: P + 1100, ack: S, flags: TCP_ACK | TCP_PSH, data: pattern(100, 1100) });
  t.equal(h.take().length, 0, 'the short segment alone: ACK delayed');
  t.equal(c.rcvPushed, 1);
  t.not(c.tDelack, Infinity);
  h.read(c);
  core.appRecv(c, h);
  const [a] = h.take();
  t.same([flagsOf(a), a.ack], ['.', P + 1200], 'ACK at once when the application read everything');
  t.equal(c.tDelack, Infinity);
  // Full-sized data (bulk) does not arm the rule: its ACKs follow the every-second-segment rhythm.
  feed(h, c, { seq: P + 1200, ack: S, flags: TCP_ACK, data: pattern(1000, 1200) });
  t.equal(c.rcvPushed, 0, 'a full segment is not a pushed short one');
});
