/**
 * TCP core: two cores back to back over a seeded lossy link that drops, duplicates and reorders
 * segments (every segment goes through the real wire codec: TcpRepr.emit -> bytes -> TcpRepr.parse).
 * Each side sends 1 MB to the other through a bounded send buffer, reads as data arrives, then closes;
 * the bytes must arrive exactly, and both ends must finish in CLOSED or TIME_WAIT without error.
 * Grid: congestion control (newreno, cubic) x options (all / none) x loss; fixed seeds, simulated time.
 */
import t from 'tap';
import * as core from '../../servers/tcp/core/core.js';
import { CLOSED, N_CLOSED, OutSeg, Tcb, TIME_WAIT } from '../../servers/tcp/core/core.js';
import { seqDiff } from '../../servers/wire/seq.js';
import type { TcpRepr } from '../../servers/wire/tcp.js';
import { mulberry32 } from '../helpers/prng.js';
import { Host, LOCAL, LPORT, pattern, REMOTE, RPORT, TCP_FIN, TCP_PSH, wireRoundTrip } from './core-harness.js';

interface Pkt {
  at: number;
  id: number;
  toB: boolean;
  r: TcpRepr;
  data: Uint8Array;
}

interface Cfg {
  seed: number;
  cc: number;
  opts: boolean;
  loss: number;
  dup: number;
  jitterUs: number;
  bytes: number;
  sndBuf: number;
  rcvBuf: number;
  /** One-way link delay (us), 5 ms unless set. */
  delayUs?: number;
  /** RFC 8985 tail loss probes (optTlp), on unless false. */
  tlp?: boolean;
  /** TSO on both ends (io.gsoMaxBytes): the link cuts each TSO segment into MSS segments, lost one by one. */
  gso?: number;
  /**
   * Application-limited request/response instead of bulk: A writes request k (req bytes) once it has
   * read k responses, B writes response k (resp bytes) once it has read k + 1 requests; `bytes` is then
   * ignored (A sends rounds * req, B rounds * resp). Both ends set TCP_NODELAY, as Node's http server
   * does (with Nagle, a response's short last segment waits for the receiver's 40 ms delayed ACK).
   */
  rr?: { req: number; resp: number; rounds: number };
}

interface Result {
  ok: boolean;
  why: string;
  simUs: number;
  aState: number;
  bState: number;
  retrans: number;
  segs: number;
  rtoExpiries: number;
  tlpProbes: number;
  /** TSO segments the link cut. */
  tsoSegs: number;
  /** When both applications had read everything the other wrote (us). */
  doneUs: number;
}

function run(cfg: Cfg): Result {
  const rand = mulberry32(cfg.seed);
  const ha = new Host();
  const hb = new Host();
  ha.isnValue = 0xfffff000; // wraps during the transfer
  hb.isnValue = 0x7ffffff0;
  ha.rand = 0x1111;
  hb.rand = 0xfffffff0;
  const mk = (local: number, lport: number, remote: number, rport: number): Tcb => {
    const x = new Tcb();
    x.localAddr = local;
    x.localPort = lport;
    x.remoteAddr = remote;
    x.remotePort = rport;
    x.rcvMss = 1460;
    x.rcvBuf = cfg.rcvBuf;
    x.ccAlgo = cfg.cc;
    x.optWscale = x.optSack = x.optTs = cfg.opts ? 1 : 0;
    x.optTlp = cfg.tlp === false ? 0 : 1;
    if (cfg.rr) x.noDelay = 1;
    return x;
  };
  const a = mk(LOCAL, LPORT, REMOTE, RPORT);
  const l = mk(REMOTE, RPORT, 0, 0);
  const b = mk(REMOTE, RPORT, LOCAL, LPORT);
  let bStarted = false;
  core.listen(l, hb);
  const q: Pkt[] = [];
  let nextId = 0;
  let now = 0;
  let segs = 0;
  let tsoSegs = 0;
  const trace = process.env.NETSIM_TRACE === '1';
  const link = (toB: boolean) => (t: Tcb, s: OutSeg, payload: Uint8Array): void => {
    if (s.gsoSize > 0) {
      tsoSegs++;
      // The link cuts a TSO segment (as Linux's tcp_gso_segment: PSH and FIN on the last piece only).
      const { seq, dataLen, flags, gsoSize } = s;
      s.gsoSize = 0;
      for (let off = 0; off < dataLen; off += gsoSize) {
        const n = Math.min(gsoSize, dataLen - off);
        s.seq = (seq + off) >>> 0;
        s.dataLen = n;
        s.flags = off + n < dataLen ? flags & ~(TCP_PSH | TCP_FIN) : flags;
        link(toB)(t, s, payload.subarray(off, off + n));
      }
      Object.assign(s, { seq, dataLen, flags, gsoSize });
      return;
    }
    segs++;
    if (trace) console.log(now, toB ? 'A>B' : 'B>A', s.flags.toString(16), s.seq, s.ack, s.window, s.dataLen, s.sackCount);
    if (rand() < cfg.loss) return;
    const copies = rand() < cfg.dup ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const { r, data } = wireRoundTrip(s, payload);
      q.push({ at: now + (cfg.delayUs ?? 5_000) + Math.floor(rand() * cfg.jitterUs), id: nextId++, toB, r, data });
    }
  };
  ha.onEmit = link(true);
  hb.onEmit = link(false);
  ha.gsoMaxBytes = hb.gsoMaxBytes = cfg.gso ?? 0;
  const rr = cfg.rr;
  const srcA = pattern(rr ? rr.req * rr.rounds : cfg.bytes, 1);
  const srcB = pattern(rr ? rr.resp * rr.rounds : cfg.bytes, 99);
  // What the application has produced so far (request/response: gated on what it read).
  const limit = (side: 'a' | 'b', c: { consumed: number }, src: Uint8Array): number => {
    if (!rr) return src.length;
    if (side === 'a') return Math.min(src.length, (Math.floor(c.consumed / rr.resp) + 1) * rr.req);
    return Math.min(src.length, Math.floor(c.consumed / rr.req) * rr.resp);
  };
  const closed = { a: false, b: false };
  let doneUs = -1;
  const app = (h: Host, x: Tcb, src: Uint8Array, side: 'a' | 'b'): void => {
    if (x.state === CLOSED || (x === b && !bStarted)) return;
    const c = h.conn(x);
    if (x.state >= 4 /* ESTABLISHED */) {
      // Write what the bounded send buffer takes.
      const write = (): void => {
        const acked = Math.max(0, seqDiff(x.sndUna, x.iss) - 1);
        const room = cfg.sndBuf - (c.written - Math.min(acked, c.written));
        const n = Math.min(room, limit(side, c, src) - c.written);
        if (n > 0 && !x.appClosed) {
          c.write(src.subarray(c.written, c.written + n));
          core.appSend(x, h);
        }
      };
      write();
      // Read everything.
      const before = c.consumed;
      h.read(x);
      if (c.consumed !== before) core.appRecv(x, h);
      if (rr && c.consumed !== before) write(); // a request or response completed: answer it now
      if (c.written === src.length && !closed[side]) {
        closed[side] = true;
        core.appClose(x, h);
      }
    }
  };
  const deliver = (p: Pkt): void => {
    if (p.toB) {
      hb.nowUs = now;
      if (!bStarted) {
        if (core.isPlainSyn(p.r)) {
          bStarted = core.listenInput(l, b, p.r, p.data, hb);
        }
        return;
      }
      core.segmentArrives(b, p.r, p.data, hb);
    } else {
      ha.nowUs = now;
      core.segmentArrives(a, p.r, p.data, ha);
    }
  };
  ha.nowUs = hb.nowUs = 0;
  core.openActive(a, ha);
  const LIMIT = 3_000e6;
  let steps = 0;
  for (; steps < 2_000_000; steps++) {
    let next = Infinity;
    let pi = -1;
    for (let i = 0; i < q.length; i++) {
      if (q[i].at < next || (q[i].at === next && pi >= 0 && q[i].id < q[pi].id)) {
        next = q[i].at;
        pi = i;
      }
    }
    const da = core.nextDeadline(a);
    const db = bStarted ? core.nextDeadline(b) : Infinity;
    const tnext = Math.min(next, da, db);
    if (tnext === Infinity || tnext > LIMIT) break;
    now = Math.max(now, tnext);
    ha.nowUs = hb.nowUs = now;
    if (pi >= 0 && next === tnext) {
      const p = q.splice(pi, 1)[0];
      deliver(p);
    } else {
      const x = da === tnext ? a : b;
      const snap = !process.env.NETSIM_TRACE_RTO ? '' : `${x === a ? 'A' : 'B'} st ${x.state} flight ${seqDiff(x.sndMax, x.sndUna)} nxt-una ${seqDiff(x.sndNxt, x.sndUna)} rec ${x.inRecovery} una<recover ${seqDiff(x.recover, x.sndUna)} rtx ${x.rtxCount} tlpA ${x.tlpActive} end-una ${seqDiff(x.tlpEnd, x.sndUna)} sb ${x.sb.n} dup ${x.dupAcks} tTlp ${x.tTlp} wnd ${x.sndWnd} srtt ${x.rtt.srttUs}`;
      const before = x.rtoExpiries;
      core.onTimers(x, x === a ? ha : hb);
      if (process.env.NETSIM_TRACE_RTO && x.rtoExpiries > before) console.log(`RTO at ${now}: ${snap}`);
    }
    ha.nowUs = hb.nowUs = now;
    app(ha, a, srcA, 'a');
    app(hb, b, srcB, 'b');
    if (doneUs < 0 && ha.conn(a).consumed === srcB.length && bStarted && hb.conn(b).consumed === srcA.length) doneUs = now;
  }
  const ca = ha.conn(a);
  const cb = hb.conn(b);
  const res: Result = {
    ok: true,
    why: '',
    simUs: now,
    aState: a.state,
    bState: b.state,
    retrans: a.retransSegs + b.retransSegs,
    segs,
    rtoExpiries: a.rtoExpiries + b.rtoExpiries,
    tlpProbes: a.tlpProbes + b.tlpProbes,
    tsoSegs,
    doneUs,
  };
  const fail = (w: string): Result => ({ ...res, ok: false, why: w });
  if (a.err !== 0 || b.err !== 0) return fail(`errors a=${a.err} b=${b.err}`);
  if (ca.overflow || cb.overflow) return fail('receive buffer overflow');
  const gotB = cb.inb.subarray(0, cb.consumed);
  const gotA = ca.inb.subarray(0, ca.consumed);
  if (gotB.length !== srcA.length) return fail(`b received ${gotB.length}`);
  if (gotA.length !== srcB.length) return fail(`a received ${gotA.length}`);
  for (let i = 0; i < srcA.length; i++) if (gotB[i] !== srcA[i]) return fail(`a->b byte ${i} differs`);
  for (let i = 0; i < srcB.length; i++) if (gotA[i] !== srcB[i]) return fail(`b->a byte ${i} differs`);
  const end = (s: number): boolean => s === CLOSED || s === TIME_WAIT;
  if (!end(a.state) || !end(b.state)) return fail(`end states a=${a.state} b=${b.state}`);
  if (!a.finReceived || !b.finReceived) return fail('FIN missing');
  if (a.state === CLOSED && !(ca.bits() & N_CLOSED)) return fail('a: no N_CLOSED');
  return res;
}

const MB = 1 << 20;

for (const cc of process.env.NETSIM_SEED ? [] : [0, 1]) {
  for (const opts of [true, false]) {
    for (const [loss, dup, jitter] of [
      [0, 0, 0],
      [0.01, 0.01, 2_000],
      [0.05, 0.02, 10_000],
    ]) {
      t.test(`netsim: ${cc ? 'cubic' : 'newreno'} ${opts ? 'ws+sack+ts' : 'no options'} loss ${loss} dup ${dup} jitter ${jitter / 1000} ms`, async (t) => {
        for (const seed of [1, 2]) {
          const r = run({ seed, cc, opts, loss, dup, jitterUs: jitter, bytes: MB, sndBuf: 64 * 1024, rcvBuf: 64 * 1024 });
          t.ok(r.ok, `seed ${seed}: ${r.why} (sim ${(r.simUs / 1e6).toFixed(1)} s, ${r.segs} segments, ${r.retrans} retransmitted)`);
        }
      });
    }
  }
}

t.test('netsim: TSO (segments up to 64 KiB cut by the link) delivers exactly under loss, duplication and reordering', async (t) => {
  for (const [loss, dup, jitter] of [
    [0, 0, 0],
    [0.01, 0.01, 2_000],
    [0.05, 0.02, 10_000],
  ] as const) {
    for (const seed of [1, 2]) {
      const r = run({ seed, cc: seed % 2, opts: true, loss, dup, jitterUs: jitter, bytes: MB, sndBuf: 256 * 1024, rcvBuf: 256 * 1024, gso: 65535 });
      t.ok(r.ok, `loss ${loss} seed ${seed}: ${r.why} (sim ${(r.simUs / 1e6).toFixed(1)} s, ${r.segs} segments, ${r.retrans} retransmitted)`);
      t.ok(r.tsoSegs > 0, `${r.tsoSegs} TSO segments`);
    }
  }
});

t.test('netsim: heavy loss (15%) and small buffers still deliver exactly', async (t) => {
  for (const seed of process.env.NETSIM_SEED ? [Number(process.env.NETSIM_SEED)] : [7, 8, 9]) {
    const r = run({ seed, cc: seed % 2, opts: seed !== 8, loss: 0.15, dup: 0.05, jitterUs: 20_000, bytes: 200_000, sndBuf: 8192, rcvBuf: 6000 });
    t.ok(r.ok, `seed ${seed}: ${r.why} (sim ${(r.simUs / 1e6).toFixed(1)} s, ${r.retrans} retransmitted)`);
  }
});

/**
 * RFC 8985 tail loss probes against the same seeded loss pattern: application-limited request/response
 * (the tail of every response is a tail loss candidate) and a 1 MB echo each way, over 3% loss and a
 * 1 ms RTT, each run with and without TLP. Asserts only relative outcomes, deterministic under the seeds
 * (simulated time, never the wall clock): fewer RTO expiries and less simulated time with TLP.
 */
t.test('netsim: tail loss probes cut RTOs and time for app-limited traffic over 3% loss (1 ms RTT)', async (t) => {
  const fmt = (r: Result): string =>
    `done at ${(r.doneUs / 1e6).toFixed(3)} s simulated, ${r.rtoExpiries} RTO expiries, ${r.tlpProbes} probes, ${r.retrans} retransmitted`;
  // [name, config, assert]: bulk echo has few tails (only its last flight), so it is only reported.
  const cases: [string, Partial<Cfg>, boolean][] = [
    ['request/response 200 x (200 B -> 6000 B)', { rr: { req: 200, resp: 6000, rounds: 200 } }, true],
    ['request/response 300 x (100 B -> 1000 B)', { rr: { req: 100, resp: 1000, rounds: 300 } }, true],
    ['echo 1 MB each way', { bytes: MB }, false],
  ];
  for (const [name, extra, check] of cases) {
    const sum = { on: { rto: 0, sim: 0, probes: 0 }, off: { rto: 0, sim: 0, probes: 0 } };
    for (const seed of [21, 22, 23]) {
      for (const cc of [0, 1]) {
        const cfg: Cfg = { seed, cc, opts: true, loss: 0.03, dup: 0, jitterUs: 0, delayUs: 500, bytes: 0, sndBuf: 64 * 1024, rcvBuf: 64 * 1024, ...extra };
        const on = run({ ...cfg, tlp: true });
        const off = run({ ...cfg, tlp: false });
        t.ok(on.ok, `${name} seed ${seed} cc ${cc} TLP on: ${on.why} (${fmt(on)})`);
        t.ok(off.ok, `${name} seed ${seed} cc ${cc} TLP off: ${off.why} (${fmt(off)})`);
        t.equal(off.tlpProbes, 0);
        sum.on.rto += on.rtoExpiries;
        sum.on.sim += on.doneUs;
        sum.on.probes += on.tlpProbes;
        sum.off.rto += off.rtoExpiries;
        sum.off.sim += off.doneUs;
      }
    }
    t.comment(`${name}: TLP on ${sum.on.rto} RTOs ${(sum.on.sim / 1e6).toFixed(3)} s (${sum.on.probes} probes); off ${sum.off.rto} RTOs ${(sum.off.sim / 1e6).toFixed(3)} s`);
    if (!check) continue;
    t.ok(sum.on.probes > 0, `${name}: probes were sent`);
    t.ok(sum.on.rto < sum.off.rto, `${name}: fewer RTO expiries with TLP (${sum.on.rto} < ${sum.off.rto})`);
    t.ok(sum.on.sim < sum.off.sim, `${name}: done sooner (simulated) with TLP`);
  }
});

// Exploration (not part of the suite): NETSIM_TRACE_RTO=1 prints each RTO with the sender's state;
// NETSIM_RR='req,resp,rounds,loss[,delayUs]' prints one case with and without TLP.
if (process.env.NETSIM_RR) {
  const [req, resp, rounds, loss, delay] = process.env.NETSIM_RR.split(',').map(Number);
  t.test('netsim: NETSIM_RR exploration', async (t) => {
    for (const seed of [21, 22, 23]) {
      for (const tlp of [true, false]) {
        const r = run({ seed, cc: 0, opts: true, loss, dup: 0, jitterUs: 0, delayUs: delay || 500, bytes: 0, sndBuf: 64 * 1024, rcvBuf: 64 * 1024, rr: { req, resp, rounds }, tlp });
        t.comment(`seed ${seed} tlp ${tlp}: ok ${r.ok} ${r.why} done ${(r.doneUs / 1e3).toFixed(1)} ms, ${r.rtoExpiries} RTOs, ${r.tlpProbes} probes, ${r.retrans} rtx, ${r.segs} segs`);
      }
    }
  });
}

// Exploration (not part of the suite): NETSIM_SWEEP=N runs N randomized configurations.
const SWEEP = Number(process.env.NETSIM_SWEEP ?? 0);
if (SWEEP > 0) {
  t.test(`netsim sweep of ${SWEEP} random configurations`, async (t) => {
    const pick = mulberry32(4242);
    for (let i = 0; i < SWEEP; i++) {
      const cfg: Cfg = {
        seed: 1000 + i,
        cc: pick() < 0.5 ? 0 : 1,
        opts: pick() < 0.6,
        loss: pick() * 0.2,
        dup: pick() * 0.05,
        jitterUs: Math.floor(pick() * 30_000),
        bytes: 50_000 + Math.floor(pick() * 300_000),
        sndBuf: 2048 + Math.floor(pick() * 100_000),
        rcvBuf: 1024 + Math.floor(pick() * 200_000),
      };
      const r = run(cfg);
      if (!r.ok) t.fail(`${JSON.stringify(cfg)}: ${r.why} (sim ${(r.simUs / 1e6).toFixed(1)} s)`);
    }
    t.pass('sweep done');
  });
}
