/**
 * TCP core: opening connections. Active open (SYN options, SYN-ACK handling, option negotiation and its
 * absence), passive open through listenInput, simultaneous open, SYN_SENT reset and ACK rules, SYN
 * retransmission and SYN retries giving up, the CLOSED reset rules (resetFor).
 */
import t from 'tap';
import * as core from '../../servers/tcp/core/core.js';
import {
  CLOSED,
  ECONNREFUSED,
  ESTABLISHED,
  ETIMEDOUT,
  LISTEN,
  N_ACCEPTABLE,
  N_CLOSED,
  N_CONNECTED,
  N_ERROR,
  SYN_RECEIVED,
  SYN_SENT,
  Tcb,
} from '../../servers/tcp/core/core.js';
import {
  DROP_BAD_ACK,
  DROP_NO_SYN,
  DROP_RST_IGNORED,
  SEG_OK,
  SEG_RESET,
  SEG_SYN_AGAIN,
} from '../../servers/tcp/core/verdicts.js';
import {
  established,
  feed,
  flagsOf,
  Host,
  ISS,
  LOCAL,
  LPORT,
  newTcb,
  PEER_ISS,
  REMOTE,
  RPORT,
  seg,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
} from './core-harness.js';

t.test('active open: the SYN carries MSS, window scale, SACK-permitted and timestamps', async (t) => {
  const h = new Host();
  h.nowUs = 5_000_000;
  const c = newTcb({ ws: true, sack: true, ts: true, rcvBuf: 1 << 20 });
  core.openActive(c, h);
  t.equal(c.state, SYN_SENT);
  const [syn] = h.take();
  t.equal(flagsOf(syn), 'S');
  t.equal(syn.seq, ISS);
  t.equal(syn.mss, 1460);
  t.equal(syn.wscale, 5, '65535 << 5 covers 1 MiB');
  t.equal(syn.sackPermitted, true);
  t.equal(syn.tsPresent, true);
  t.equal(syn.tsVal, (5000 + 0x12345678) >>> 0, 'ms clock + random offset');
  t.equal(syn.tsEcr, 0);
  t.equal(syn.window, 65535, 'a SYN window is never scaled');
  t.same([syn.srcAddr, syn.dstAddr, syn.srcPort, syn.dstPort], [LOCAL, REMOTE, LPORT, RPORT]);
  t.ok(core.nextDeadline(c) === 5_000_000 + 1_000_000, 'RTO 1 s armed');
});

t.test('active open: SYN-ACK with every option -> ESTABLISHED, options negotiated', async (t) => {
  const h = new Host();
  const c = newTcb({ ws: true, sack: true, ts: true, rcvBuf: 1 << 20 });
  core.openActive(c, h);
  const syn = h.take()[0];
  h.nowUs = 30_000;
  const v = feed(h, c, { seq: PEER_ISS, ack: ISS + 1, flags: TCP_SYN | TCP_ACK, win: 29200, mss: 1400, ws: 7, sackOk: true, ts: [900, syn.tsVal] });
  t.equal(v, SEG_OK);
  t.equal(c.state, ESTABLISHED);
  t.same([c.wsOk, c.sndWscale, c.rcvWscale, c.sackOk, c.tsOk], [1, 7, 5, 1, 1]);
  t.equal(c.sndMss, 1400);
  t.equal(c.sndWnd, 29200, 'the SYN-ACK window is not scaled');
  t.equal(c.tsRecent, 900);
  t.equal(c.rcvNxt, PEER_ISS + 1);
  t.equal(c.sndUna, ISS + 1);
  t.equal(c.rtt.hasSample, 1, 'handshake RTT from the timestamp echo');
  t.equal(c.rtt.srttUs, 30_000);
  t.equal(c.cc.cwnd, 10 * (1400 - 12), 'initial window: 10 segments of MSS - timestamps');
  t.ok(h.conn(c).bits() & N_CONNECTED);
  const [ack] = h.take();
  t.equal(flagsOf(ack), '.');
  t.same([ack.seq, ack.ack], [ISS + 1, PEER_ISS + 1]);
  t.equal(ack.tsEcr, 900);
  t.equal(ack.window, (1 << 20) >> 5, 'scaled window once negotiated');
  t.equal(c.tRtx, Infinity, 'nothing outstanding');
});

t.test('active open: peer without options -> nothing negotiated, MSS 536 default', async (t) => {
  const h = new Host();
  const c = newTcb({ ws: true, sack: true, ts: true });
  core.openActive(c, h);
  h.take();
  feed(h, c, { seq: PEER_ISS, ack: ISS + 1, flags: TCP_SYN | TCP_ACK, win: 8192 });
  t.equal(c.state, ESTABLISHED);
  t.same([c.wsOk, c.sndWscale, c.rcvWscale, c.sackOk, c.tsOk], [0, 0, 0, 0, 0]);
  t.equal(c.sndMss, 536);
  const [ack] = h.take();
  t.equal(ack.tsPresent, false, 'no timestamps when the peer sent none');
  t.equal(ack.window, 65535, 'an unscaled window is capped at 65535');
});

t.test('active open: options we did not offer are not used even if the peer sends them', async (t) => {
  const h = new Host();
  const c = newTcb({});
  core.openActive(c, h);
  const [syn] = h.take();
  t.same([syn.wscale, syn.sackPermitted, syn.tsPresent], [-1, false, false]);
  feed(h, c, { seq: PEER_ISS, ack: ISS + 1, flags: TCP_SYN | TCP_ACK, ws: 7, sackOk: true, ts: [1, 2] });
  t.same([c.wsOk, c.sackOk, c.tsOk], [0, 0, 0]);
});

t.test('SYN_SENT: an unacceptable ACK gets <SEQ=SEG.ACK><CTL=RST>; RST without ACK is ignored', async (t) => {
  const h = new Host();
  const c = newTcb();
  core.openActive(c, h);
  h.take();
  t.equal(feed(h, c, { seq: 1, ack: ISS + 7, flags: TCP_ACK }), DROP_BAD_ACK);
  const [rst] = h.take();
  t.equal(flagsOf(rst), 'R');
  t.equal(rst.seq, ISS + 7);
  t.equal(feed(h, c, { seq: 1, ack: ISS, flags: TCP_SYN | TCP_ACK }), DROP_BAD_ACK, 'SEG.ACK =< ISS');
  t.equal(h.take().length, 1);
  t.equal(feed(h, c, { seq: 1, ack: ISS + 7, flags: TCP_RST | TCP_ACK }), DROP_BAD_ACK, 'a RST with a bad ACK is dropped');
  t.equal(h.take().length, 0, 'never a reset for a reset');
  t.equal(feed(h, c, { seq: 1, flags: TCP_RST }), DROP_RST_IGNORED, 'RFC 5961: RST must ACK our SYN');
  t.equal(feed(h, c, { seq: 1, ack: ISS + 1, flags: TCP_ACK }), DROP_NO_SYN);
  t.equal(c.state, SYN_SENT);
});

t.test('SYN_SENT: RST acknowledging our SYN -> ECONNREFUSED, CLOSED', async (t) => {
  const h = new Host();
  const c = newTcb();
  core.openActive(c, h);
  h.take();
  t.equal(feed(h, c, { seq: 0, ack: ISS + 1, flags: TCP_RST | TCP_ACK }), SEG_RESET);
  t.equal(c.state, CLOSED);
  t.equal(c.err, ECONNREFUSED);
  t.ok(h.conn(c).bits() & N_ERROR && h.conn(c).bits() & N_CLOSED);
  t.equal(core.nextDeadline(c), Infinity, 'all timers off');
  t.equal(h.take().length, 0);
});

t.test('SYN retransmission with backoff, then ETIMEDOUT after 6 retries (127 s)', async (t) => {
  const h = new Host();
  const c = newTcb();
  core.openActive(c, h);
  h.take();
  const times: number[] = [];
  while (c.state === SYN_SENT) {
    h.toDeadline(c);
    for (const s of h.take()) {
      t.equal(flagsOf(s), 'S');
      t.equal(s.seq, ISS);
      times.push(h.nowUs / 1e6);
    }
  }
  t.same(times, [1, 3, 7, 15, 31, 63], 'RTO 1 s doubled per retry');
  t.equal(h.nowUs, 127e6);
  t.equal(c.state, CLOSED);
  t.equal(c.err, ETIMEDOUT);
});

t.test('after a SYN retransmission the handshake RTO is 3 s and the initial window 1 MSS (RFC 6298 §5.7)', async (t) => {
  const h = new Host();
  const c = newTcb();
  core.openActive(c, h);
  h.take();
  h.toDeadline(c);
  h.take();
  feed(h, c, { seq: PEER_ISS, ack: ISS + 1, flags: TCP_SYN | TCP_ACK, mss: 1000 });
  t.equal(c.state, ESTABLISHED);
  t.equal(c.rtt.hasSample, 0, 'Karn: no sample from a retransmitted SYN');
  t.equal(c.rtt.rtoUs, 3_000_000);
  t.equal(c.rtt.backoff, 0);
  t.equal(c.cc.cwnd, 1000);
});

t.test('SYN-ACK carrying data and FIN: the data is delivered and the FIN processed', async (t) => {
  const h = new Host();
  const c = newTcb();
  core.openActive(c, h);
  h.take();
  feed(h, c, { seq: PEER_ISS, ack: ISS + 1, flags: TCP_SYN | TCP_ACK | TCP_FIN, data: [1, 2, 3] });
  t.equal(c.state, 7 /* CLOSE_WAIT */);
  t.same([...h.read(c)], [1, 2, 3]);
  const [ack] = h.take();
  t.equal(ack.ack, PEER_ISS + 5);
});

t.test('simultaneous open: SYN in SYN_SENT -> SYN_RECEIVED with a SYN-ACK; the peer SYN-ACK completes it', async (t) => {
  const h = new Host();
  const c = newTcb({ ws: true, ts: true });
  core.openActive(c, h);
  const syn = h.take()[0];
  feed(h, c, { seq: PEER_ISS, flags: TCP_SYN, ws: 2, ts: [50, 0], mss: 1200 });
  t.equal(c.state, SYN_RECEIVED);
  const [sa] = h.take();
  t.equal(flagsOf(sa), 'S.');
  t.same([sa.seq, sa.ack], [ISS, PEER_ISS + 1]);
  t.equal(sa.wscale, syn.wscale);
  t.equal(sa.tsEcr, 50);
  // The peer's SYN-ACK repeats its SYN and acknowledges ours.
  t.equal(feed(h, c, { seq: PEER_ISS, ack: ISS + 1, flags: TCP_SYN | TCP_ACK, ws: 2, ts: [51, sa.tsVal] }), SEG_OK);
  t.equal(c.state, ESTABLISHED);
  t.ok(h.conn(c).bits() & N_CONNECTED, 'an active open reports N_CONNECTED');
  t.equal(c.sndWscale, 2);
});

t.test('simultaneous open: a plain ACK in SYN_RECEIVED also completes it', async (t) => {
  const h = new Host();
  const c = newTcb();
  core.openActive(c, h);
  h.take();
  feed(h, c, { seq: PEER_ISS, flags: TCP_SYN });
  h.take();
  feed(h, c, { seq: PEER_ISS + 1, ack: ISS + 1, flags: TCP_ACK });
  t.equal(c.state, ESTABLISHED);
});

t.test('simultaneous open: RST in SYN_RECEIVED (active) -> ECONNREFUSED', async (t) => {
  const h = new Host();
  const c = newTcb();
  core.openActive(c, h);
  feed(h, c, { seq: PEER_ISS, flags: TCP_SYN });
  h.take();
  t.equal(feed(h, c, { seq: PEER_ISS + 1, flags: TCP_RST }), SEG_RESET);
  t.equal(c.err, ECONNREFUSED);
  t.equal(c.state, CLOSED);
});

function listener(o: Parameters<typeof newTcb>[0] = {}): { h: Host; l: Tcb } {
  const h = new Host();
  const l = newTcb(o);
  l.remoteAddr = 0;
  l.remotePort = 0;
  core.listen(l, h);
  return { h, l };
}

t.test('passive open: listenInput -> SYN_RECEIVED, SYN-ACK mirrors the offered options, ACK -> ESTABLISHED', async (t) => {
  const { h, l } = listener({ ws: true, sack: true, ts: true, rcvBuf: 1 << 18 });
  t.equal(l.state, LISTEN);
  l.noDelay = 1;
  l.ccAlgo = 1;
  const child = newTcb();
  h.isnValue = 9000;
  h.nowUs = 1_000_000;
  const { r, data } = seg({ seq: PEER_ISS, flags: TCP_SYN, win: 64240, mss: 1460, ws: 7, sackOk: true, ts: [4000, 0] });
  t.equal(core.isPlainSyn(r), true);
  t.equal(core.listenInput(l, child, r, data, h), true);
  t.equal(child.state, SYN_RECEIVED);
  t.same([child.noDelay, child.ccAlgo, child.rcvBuf], [1, 1, 1 << 18], 'listener options inherited');
  const [sa] = h.take();
  t.equal(flagsOf(sa), 'S.');
  t.same([sa.seq, sa.ack, sa.mss, sa.wscale, sa.sackPermitted, sa.tsPresent, sa.tsEcr], [9000, PEER_ISS + 1, 1460, 3, true, true, 4000]);
  h.nowUs = 1_020_000;
  t.equal(feed(h, child, { seq: PEER_ISS + 1, ack: 9001, flags: TCP_ACK, win: 500, ts: [4010, sa.tsVal] }), SEG_OK);
  t.equal(child.state, ESTABLISHED);
  t.equal(child.sndWnd, 500 << 7, 'the ACK window is scaled');
  t.ok(h.conn(child).bits() & N_ACCEPTABLE);
  t.notOk(h.conn(child).bits() & N_CONNECTED);
  t.equal(child.rtt.srttUs, 20_000);
  t.equal(h.take().length, 0, 'nothing to send');
});

t.test('passive open: options the peer did not offer are not answered', async (t) => {
  const { h, l } = listener({ ws: true, sack: true, ts: true });
  const child = newTcb();
  const { r, data } = seg({ seq: PEER_ISS, flags: TCP_SYN, mss: 536 });
  core.listenInput(l, child, r, data, h);
  const [sa] = h.take();
  t.same([sa.wscale, sa.sackPermitted, sa.tsPresent, sa.mss], [-1, false, false, 1460]);
  t.equal(child.sndMss, 536);
});

t.test('passive open: a retransmitted SYN gets the SYN-ACK again; SYN-ACK retries give up', async (t) => {
  const { h, l } = listener();
  const child = newTcb();
  const { r, data } = seg({ seq: PEER_ISS, flags: TCP_SYN });
  core.listenInput(l, child, r, data, h);
  h.take();
  t.equal(feed(h, child, { seq: PEER_ISS, flags: TCP_SYN }), SEG_SYN_AGAIN);
  t.equal(flagsOf(h.take()[0]), 'S.');
  let n = 0;
  while (child.state === SYN_RECEIVED) {
    h.toDeadline(child);
    n += h.take().length;
  }
  t.equal(n, 5, 'tcp_synack_retries');
  t.equal(child.state, CLOSED);
  t.ok(h.conn(child).bits() & N_CLOSED);
});

t.test('passive open: bad final ACK gets a reset; RST returns the child to nothing', async (t) => {
  const { h, l } = listener();
  const child = newTcb();
  const { r, data } = seg({ seq: PEER_ISS, flags: TCP_SYN });
  core.listenInput(l, child, r, data, h);
  h.take();
  t.equal(feed(h, child, { seq: PEER_ISS + 1, ack: ISS + 50, flags: TCP_ACK }), DROP_BAD_ACK);
  const [rst] = h.take();
  t.equal(flagsOf(rst), 'R');
  t.equal(rst.seq, ISS + 50);
  t.equal(child.state, SYN_RECEIVED);
  t.equal(feed(h, child, { seq: PEER_ISS + 1, flags: TCP_RST }), SEG_RESET);
  t.equal(child.state, CLOSED);
  t.equal(child.err, 0, 'no error: the application never saw it');
});

t.test('passive open: the final ACK may carry data', async (t) => {
  const { h, l } = listener();
  const child = newTcb();
  const { r, data } = seg({ seq: PEER_ISS, flags: TCP_SYN });
  core.listenInput(l, child, r, data, h);
  h.take();
  feed(h, child, { seq: PEER_ISS + 1, ack: ISS + 1, flags: TCP_ACK, data: [9, 8, 7] });
  t.equal(child.state, ESTABLISHED);
  t.same([...h.read(child)], [9, 8, 7]);
});

t.test('listener: what is not a plain SYN', async (t) => {
  for (const f of [TCP_SYN | TCP_ACK, TCP_ACK, TCP_RST, TCP_SYN | TCP_FIN, TCP_FIN]) {
    const { r } = seg({ seq: 1, flags: f });
    t.equal(core.isPlainSyn(r), false, `flags ${f}`);
  }
});

t.test('resetFor: RFC 9293 §3.10.7.1', async (t) => {
  const out = core.newOutSeg();
  let s = seg({ seq: 100, ack: 777, flags: TCP_ACK, data: [1, 2] });
  t.equal(core.resetFor(s.r, LOCAL, REMOTE, out), true);
  t.same([out.seq, out.flags, out.srcAddr, out.dstAddr, out.srcPort, out.dstPort], [777, TCP_RST, LOCAL, REMOTE, LPORT, RPORT]);
  s = seg({ seq: 100, flags: TCP_SYN, data: [1, 2] });
  t.equal(core.resetFor(s.r, LOCAL, REMOTE, out), true);
  t.same([out.seq, out.ack, out.flags], [0, 103, TCP_RST | TCP_ACK], 'ACK = SEG.SEQ + SEG.LEN (SYN counts)');
  s = seg({ seq: 100, flags: TCP_RST | TCP_ACK, ack: 5 });
  t.equal(core.resetFor(s.r, LOCAL, REMOTE, out), false, 'no reset for a reset');
});

t.test('CLOSED Tcb answers with a reset', async (t) => {
  const h = new Host();
  const c = newTcb();
  feed(h, c, { seq: 100, ack: 5, flags: TCP_ACK });
  const [rst] = h.take();
  t.same([flagsOf(rst), rst.seq], ['R', 5]);
});

t.test('ICMP port unreachable in SYN_SENT -> ECONNREFUSED; host unreachable is soft, reported at timeout', async (t) => {
  let h = new Host();
  let c = newTcb();
  core.openActive(c, h);
  t.equal(core.icmpError(c, 3, 3, 0, h, ISS), true);
  t.equal(c.state, CLOSED);
  t.equal(c.err, ECONNREFUSED);
  h = new Host();
  c = newTcb();
  core.openActive(c, h);
  t.equal(core.icmpError(c, 3, 1, 0, h, ISS + 5), false, 'RFC 5927: sequence number outside the flight');
  t.equal(core.icmpError(c, 3, 1, 0, h), true);
  t.equal(c.state, SYN_SENT);
  while (c.state !== CLOSED) h.toDeadline(c);
  t.equal(c.err, 6 /* EHOSTUNREACH */);
});

t.test('ICMP fragmentation needed lowers the send MSS and resends smaller', async (t) => {
  const { h, t: c } = established({ peerMss: 1460 });
  h.conn(c).write(new Uint8Array(3000));
  core.appSend(c, h);
  t.same(h.take().map((s) => s.dataLen), [1460, 1460], 'Nagle holds the 80-byte tail');
  t.equal(core.icmpError(c, 3, 4, 1000, h, ISS + 1), true);
  t.equal(c.sndMss, 960);
  const again = h.take();
  t.same(again.map((s) => [s.seq - ISS - 1, s.dataLen]), [[0, 960], [960, 960], [1920, 960]]);
});

t.test('appClose in SYN_SENT closes; in SYN_RECEIVED the FIN follows the handshake', async (t) => {
  const h = new Host();
  const c = newTcb();
  core.openActive(c, h);
  core.appClose(c, h);
  t.equal(c.state, CLOSED);
  const { h: h2, l } = listener();
  const child = new Tcb();
  Object.assign(child, { localAddr: LOCAL, localPort: LPORT, remoteAddr: REMOTE, remotePort: RPORT });
  const { r, data } = seg({ seq: PEER_ISS, flags: TCP_SYN });
  core.listenInput(l, child, r, data, h2);
  h2.take();
  core.appClose(child, h2);
  t.equal(child.state, SYN_RECEIVED);
  feed(h2, child, { seq: PEER_ISS + 1, ack: ISS + 1, flags: TCP_ACK });
  t.equal(child.state, 5 /* FIN_WAIT_1 */);
  const [fin] = h2.take();
  t.equal(flagsOf(fin), 'F.');
  t.equal(fin.seq, ISS + 1);
});
