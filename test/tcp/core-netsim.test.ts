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
import { Host, LOCAL, LPORT, pattern, REMOTE, RPORT, wireRoundTrip } from './core-harness.js';

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
}

interface Result {
  ok: boolean;
  why: string;
  simUs: number;
  aState: number;
  bState: number;
  retrans: number;
  segs: number;
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
  const trace = process.env.NETSIM_TRACE === '1';
  const link = (toB: boolean) => (_t: Tcb, s: OutSeg, payload: Uint8Array): void => {
    segs++;
    if (trace) console.log(now, toB ? 'A>B' : 'B>A', s.flags.toString(16), s.seq, s.ack, s.window, s.dataLen, s.sackCount);
    if (rand() < cfg.loss) return;
    const copies = rand() < cfg.dup ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const { r, data } = wireRoundTrip(s, payload);
      q.push({ at: now + 5_000 + Math.floor(rand() * cfg.jitterUs), id: nextId++, toB, r, data });
    }
  };
  ha.onEmit = link(true);
  hb.onEmit = link(false);
  const srcA = pattern(cfg.bytes, 1);
  const srcB = pattern(cfg.bytes, 99);
  const closed = { a: false, b: false };
  const app = (h: Host, x: Tcb, src: Uint8Array, side: 'a' | 'b'): void => {
    if (x.state === CLOSED || (x === b && !bStarted)) return;
    const c = h.conn(x);
    if (x.state >= 4 /* ESTABLISHED */) {
      // Write what the bounded send buffer takes.
      const acked = Math.max(0, seqDiff(x.sndUna, x.iss) - 1);
      const room = cfg.sndBuf - (c.written - Math.min(acked, c.written));
      const n = Math.min(room, src.length - c.written);
      if (n > 0 && !x.appClosed) {
        c.write(src.subarray(c.written, c.written + n));
        core.appSend(x, h);
      }
      // Read everything.
      const before = c.consumed;
      h.read(x);
      if (c.consumed !== before) core.appRecv(x, h);
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
    } else if (da === tnext) {
      core.onTimers(a, ha);
    } else {
      core.onTimers(b, hb);
    }
    ha.nowUs = hb.nowUs = now;
    app(ha, a, srcA, 'a');
    app(hb, b, srcB, 'b');
  }
  const ca = ha.conn(a);
  const cb = hb.conn(b);
  const res: Result = { ok: true, why: '', simUs: now, aState: a.state, bState: b.state, retrans: a.retransSegs + b.retransSegs, segs };
  const fail = (w: string): Result => ({ ...res, ok: false, why: w });
  if (a.err !== 0 || b.err !== 0) return fail(`errors a=${a.err} b=${b.err}`);
  if (ca.overflow || cb.overflow) return fail('receive buffer overflow');
  const gotB = cb.inb.subarray(0, cb.consumed);
  const gotA = ca.inb.subarray(0, ca.consumed);
  if (gotB.length !== cfg.bytes) return fail(`b received ${gotB.length}`);
  if (gotA.length !== cfg.bytes) return fail(`a received ${gotA.length}`);
  for (let i = 0; i < cfg.bytes; i++) {
    if (gotB[i] !== srcA[i]) return fail(`a->b byte ${i} differs`);
    if (gotA[i] !== srcB[i]) return fail(`b->a byte ${i} differs`);
  }
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

t.test('netsim: heavy loss (15%) and small buffers still deliver exactly', async (t) => {
  for (const seed of process.env.NETSIM_SEED ? [Number(process.env.NETSIM_SEED)] : [7, 8, 9]) {
    const r = run({ seed, cc: seed % 2, opts: seed !== 8, loss: 0.15, dup: 0.05, jitterUs: 20_000, bytes: 200_000, sndBuf: 8192, rcvBuf: 6000 });
    t.ok(r.ok, `seed ${seed}: ${r.why} (sim ${(r.simUs / 1e6).toFixed(1)} s, ${r.retrans} retransmitted)`);
  }
});

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
