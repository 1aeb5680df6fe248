/**
 * Resource limits over loopback on one stack (no root needed):
 *   - the per-connection buffer bound (tcp.bufferBytes 4096): a writer of 1 MB to a paused reader gets
 *     backpressure (write() false, 'drain'), no more than the two shared buffers' worth is taken in
 *     while the reader is paused, and the data arrives exact;
 *   - the total: many connections with full buffers, filled and drained round after round, keep the
 *     pool and the table bounded and back at their baselines, and the process memory flat after a
 *     warm-up (the tcp state is one fixed SharedArrayBuffer);
 *   - pool exhaustion with a tiny pool (poolBuffers 64) under a TCP bulk transfer plus UDP floods:
 *     counted drops (the pool's `exhausted`, tcp `tx-failed`), no restart, the bulk data exact, the
 *     pool back at its baseline after.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Socket } from 'node:net';
import { createStack, type Stack } from '../../kernel-shim/stack.js';
import { restarts, tcpUsed } from '../helpers/fuzz.js';

const NONE = { driver: 0, ip: 0, tcp: 0, udp: 0 };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function watchDeaths(stack: Stack): string[] {
  const deaths: string[] = [];
  stack.on('death', (d: { server: string; cause: string; reason?: unknown }) => deaths.push(`${d.server} ${d.cause} ${String(d.reason)}`));
  stack.on('hang', (h: { servers: string[] }) => deaths.push(`hang ${h.servers.join(',')}`));
  return deaths;
}

async function listen(stack: Stack, onConn: (s: Socket) => void, opts: { pauseOnConnect?: boolean } = {}): Promise<{ port: number; close: () => Promise<void> }> {
  const server = stack.net.createServer(opts, (s) => {
    s.on('error', () => {});
    onConn(s as unknown as Socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', 1024, () => r()));
  return { port: (server.address() as { port: number }).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function connect(stack: Stack, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const c = stack.net.connect(port, '127.0.0.1', () => resolve(c as unknown as Socket));
    c.once('error', reject);
  });
}

/** Writes `data` in `chunk`-sized writes, honouring backpressure; counts write() === false and 'drain'. */
async function writeAll(s: Socket, data: Buffer, chunk: number): Promise<{ falses: number; drains: number; maxQueued: number }> {
  let falses = 0;
  let drains = 0;
  let maxQueued = 0;
  s.on('drain', () => drains++);
  for (let off = 0; off < data.length; off += chunk) {
    const ok = s.write(data.subarray(off, off + chunk));
    maxQueued = Math.max(maxQueued, s.writableLength);
    if (!ok) {
      falses++;
      await new Promise<void>((r) => s.once('drain', () => r()));
    }
  }
  return { falses, drains, maxQueued };
}

t.test('per-connection buffer limit: backpressure, bounded intake, exact data', async (t) => {
  const BUF = 4096;
  const stack = await createStack({ tcp: { maxConnections: 16, bufferBytes: BUF } });
  const deaths = watchDeaths(stack);
  try {
    const data = randomBytes(1 << 20);
    const got: Buffer[] = [];
    let onAccept!: (s: Socket) => void;
    const accepted = new Promise<Socket>((r) => (onAccept = r));
    const srv = await listen(stack, (s) => onAccept(s), { pauseOnConnect: true });
    const c = await connect(stack, srv.port);
    const server = await accepted;
    const writing = writeAll(c, data, 1024);
    // The reader stays paused: the writer may fill its send buffer and the reader's receive buffer, no more.
    await sleep(500);
    const intake = c.bytesWritten - c.writableLength;
    t.comment(`reader paused 500 ms: the writer got ${intake} bytes into the stack (buffers ${BUF} each way), ${c.writableLength} queued in its stream`);
    t.ok(intake <= 2 * BUF, `intake while paused bounded by the two buffers (${intake} <= ${2 * BUF})`);
    t.ok(intake > 0, 'some data was taken in');
    const tcpBefore = stack.stats().servers.tcp.protocol;
    server.on('data', (d: Buffer) => got.push(d));
    server.resume();
    const w = await writing;
    c.end();
    await new Promise<void>((r) => server.once('end', () => r()));
    const all = Buffer.concat(got);
    t.comment(`1 MB in 1 KiB writes: write() false ${w.falses} times, ${w.drains} drains, at most ${w.maxQueued} bytes queued in the stream; tcp ${JSON.stringify(stack.stats().servers.tcp.protocol)}`);
    t.ok(w.falses > 0, 'write() returned false (backpressure)');
    t.ok(w.drains >= w.falses, "each false was followed by 'drain'");
    t.equal(all.length, data.length, '1 MB arrived');
    t.equal(createHash('sha256').update(all).digest('hex'), createHash('sha256').update(data).digest('hex'), 'byte-exact');
    t.ok((stack.stats().servers.tcp.protocol['tx'] ?? 0) > (tcpBefore['tx'] ?? 0), 'segments flowed after resume');
    server.destroy();
    c.destroy();
    await srv.close();
    t.same(deaths, [], 'no server died');
    t.same(restarts(stack), NONE, 'no restart');
  } finally {
    await stack.close();
  }
});

t.test('many connections with full buffers: pool, table and memory stay bounded', async (t) => {
  const CONNS = 200;
  const BUF = 16384;
  const FILL = 4 * BUF; // more than both buffers: each writer ends up blocked
  const ROUNDS = 6;
  const MAX = 512; // 2 x CONNS slots a round: from the second round on, TIME_WAIT slots are recycled
  const stack = await createStack({ tcp: { maxConnections: MAX, bufferBytes: BUF } });
  const deaths = watchDeaths(stack);
  try {
    const accepted: Socket[] = [];
    const l = await listen(stack, (s) => accepted.push(s), { pauseOnConnect: true });
    const poolBase = stack.stats().pool.inUse;
    const tableBase = tcpUsed(stack);
    const stateBytes = stack.memory.init.state.tcp.byteLength;
    const mem: { round: number; taken: number; rss: number; heap: number; external: number; table: number; pool: number }[] = [];
    let peakTable = tableBase;
    let peakPool = poolBase;
    for (let round = 0; round < ROUNDS; round++) {
      accepted.length = 0;
      const clients = await Promise.all(Array.from({ length: CONNS }, () => connect(stack, l.port)));
      while (accepted.length < CONNS) await sleep(5);
      const payload = Buffer.alloc(FILL, round);
      // In 1 KiB writes, so bytesWritten - writableLength tells what the stack took in.
      for (const c of clients) for (let off = 0; off < FILL; off += 1024) c.write(payload.subarray(off, off + 1024));
      // Wait until every connection's two buffers are full (the last 1 KiB write may not fit).
      const target = CONNS * (2 * BUF - 1024);
      let last = 0;
      for (const end = Date.now() + 15_000; Date.now() < end; ) {
        last = clients.reduce((n, c) => n + (c.bytesWritten - c.writableLength), 0);
        if (last >= target) break;
        await sleep(50);
      }
      await sleep(200);
      last = clients.reduce((n, c) => n + (c.bytesWritten - c.writableLength), 0);
      gc();
      const m = process.memoryUsage();
      peakTable = Math.max(peakTable, tcpUsed(stack));
      peakPool = Math.max(peakPool, stack.stats().pool.inUse);
      mem.push({ round, taken: last, rss: m.rss, heap: m.heapUsed, external: m.external, table: tcpUsed(stack), pool: stack.stats().pool.inUse });
      t.comment(`round ${round}: ${CONNS} connections full (${last} bytes taken in, ${clients.reduce((n, c) => n + c.writableLength, 0)} queued in streams), rss ${(m.rss / 2 ** 20).toFixed(1)} MB, heap ${(m.heapUsed / 2 ** 20).toFixed(1)} MB, table ${tcpUsed(stack)}, pool ${stack.stats().pool.inUse}`);
      // Drain: read everything, then close both ends.
      const drained = accepted.map(
        (s) =>
          new Promise<number>((r) => {
            let n = 0;
            s.on('data', (d: Buffer) => (n += d.length));
            s.on('end', () => r(n));
            s.resume();
          }),
      );
      for (const c of clients) c.end();
      const counts = await Promise.all(drained);
      if (counts.some((n) => n !== FILL)) t.fail(`round ${round}: a connection delivered ${counts.find((n) => n !== FILL)} bytes, not ${FILL}`);
      for (const s of accepted) s.end();
      await Promise.all(clients.map((c) => new Promise<void>((r) => (c.destroyed ? r() : c.once('close', () => r())))));
    }
    const t1 = Date.now();
    while (stack.stats().pool.inUse > poolBase && Date.now() - t1 < 10_000) await sleep(50);
    const s = stack.stats();
    t.comment(`tcp ${JSON.stringify(s.servers.tcp.protocol)}; pool peak ${peakPool}, table peak ${peakTable}`);
    t.equal(stack.memory.init.state.tcp.byteLength, stateBytes, 'the tcp state is one fixed buffer');
    t.ok(peakTable <= MAX, `table within its bound (peak ${peakTable} of ${MAX})`);
    t.ok(s.pool.inUse <= poolBase, `pool back to its baseline (${poolBase} -> ${s.pool.inUse})`);
    // What stays in the table is TIME_WAIT, recycled when the table is full.
    t.ok((s.servers.tcp.protocol['tw-recycled'] ?? 0) > 0, `TIME_WAIT slots were recycled when the table was full (${s.servers.tcp.protocol['tw-recycled']})`);
    t.ok(mem.every((m) => m.taken >= CONNS * (2 * BUF - 1024) && m.taken <= CONNS * 2 * BUF), `each round every connection took in its two buffers' worth, no more (${mem.map((m) => m.taken).join(', ')} bytes of at most ${CONNS * 2 * BUF})`);
    // Memory: from the third full round on (the first two touch the whole table), flat.
    const warm = mem.slice(2);
    const rssSpread = Math.max(...warm.map((m) => m.rss)) - Math.min(...warm.map((m) => m.rss));
    const heapSpread = Math.max(...warm.map((m) => m.heap)) - Math.min(...warm.map((m) => m.heap));
    t.ok(heapSpread < 16 * 2 ** 20, `heap flat across rounds 2..${ROUNDS - 1} (spread ${(heapSpread / 2 ** 20).toFixed(1)} MB)`);
    t.ok(rssSpread < 24 * 2 ** 20, `rss flat across rounds 2..${ROUNDS - 1} (spread ${(rssSpread / 2 ** 20).toFixed(1)} MB)`);
    await l.close();
    t.same(deaths, [], 'no server died');
    t.same(restarts(stack), NONE, 'no restart');
  } finally {
    await stack.close();
  }
});

t.test('pool exhaustion (64 buffers) under TCP bulk and UDP floods: counted drops, exact data, pool back', async (t) => {
  const stack = await createStack({ poolBuffers: 64, tcp: { maxConnections: 64, bufferBytes: 1 << 16 } });
  const deaths = watchDeaths(stack);
  try {
    const poolBase = stack.stats().pool.inUse;
    const exhaustedBase = stack.stats().pool.small.exhausted;
    // TCP bulk: 2 connections, 4 MB each to a hashing sink.
    let received = 0;
    const sums: Promise<string>[] = [];
    const l = await listen(stack, (s) => {
      sums.push(
        new Promise((r) => {
          const h = createHash('sha256');
          s.on('data', (d: Buffer) => {
            received += d.length;
            h.update(d);
          });
          s.on('end', () => {
            r(h.digest('hex'));
            s.end();
          });
        }),
      );
    });
    // UDP: a sink, and floods of 1400-byte datagrams while the bulk runs.
    const rx = stack.dgram.createSocket('udp4');
    let udpGot = 0;
    rx.on('message', () => udpGot++);
    await new Promise<void>((r) => rx.bind(0, '127.0.0.1', () => r()));
    const udpPort = rx.address().port;
    const tx = stack.dgram.createSocket('udp4');
    const udpErrors: Record<string, number> = {};
    tx.on('error', (e: NodeJS.ErrnoException) => (udpErrors[e.code ?? 'error'] = (udpErrors[e.code ?? 'error'] ?? 0) + 1));
    let udpSent = 0;
    const FLOOD_MS = 3000;
    const floodEnd = Date.now() + FLOOD_MS;
    let tcpDuringFlood = 0;
    const flood = (async () => {
      while (Date.now() < floodEnd) {
        for (let i = 0; i < 500; i++) {
          udpSent++;
          tx.send(Buffer.alloc(1400, i & 255), udpPort, '127.0.0.1', (e) => {
            if (e) udpErrors[(e as NodeJS.ErrnoException).code ?? 'error'] = (udpErrors[(e as NodeJS.ErrnoException).code ?? 'error'] ?? 0) + 1;
          });
        }
        await sleep(5);
      }
      tcpDuringFlood = received;
    })();
    const datas = [randomBytes(4 << 20), randomBytes(4 << 20)];
    const t0 = Date.now();
    await Promise.all(
      datas.map(async (data) => {
        const c = await connect(stack, l.port);
        await writeAll(c, data, 64 * 1024);
        c.end();
        await new Promise<void>((r) => c.once('close', () => r()));
      }),
    );
    const bulkMs = Date.now() - t0;
    await flood;
    const got = await Promise.all(sums);
    const want = datas.map((d) => createHash('sha256').update(d).digest('hex'));
    await sleep(300);
    const t1 = Date.now();
    while (stack.stats().pool.inUse > poolBase && Date.now() - t1 < 10_000) await sleep(50);
    const s = stack.stats();
    const exhausted = s.pool.small.exhausted - exhaustedBase;
    const drops = (o: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(o).filter(([k]) => /drop|fail|exhaust|nobuf/i.test(k)));
    t.comment(`2 x 4 MB TCP in ${bulkMs} ms (${tcpDuringFlood} bytes during the ${FLOOD_MS} ms UDP flood) with ${udpSent} datagrams flooding (${udpGot} received, send errors ${JSON.stringify(udpErrors)}); pool exhausted ${exhausted} times`);
    t.comment(`drops: tcp ${JSON.stringify(drops(s.servers.tcp.protocol))} ip ${JSON.stringify(drops(s.servers.ip.protocol))} udp ${JSON.stringify(drops(s.servers.udp.protocol))} driver ${JSON.stringify(drops(s.servers.driver.protocol))}`);
    t.same([...got].sort(), [...want].sort(), 'both bulk transfers byte-exact');
    t.ok(exhausted > 0, `the pool ran out and it was counted (exhausted ${exhausted})`);
    const counted =
      (s.servers.tcp.protocol['tx-failed'] ?? 0) +
      Object.values(drops(s.servers.ip.protocol)).reduce((a, b) => a + b, 0) +
      Object.values(drops(s.servers.udp.protocol)).reduce((a, b) => a + b, 0) +
      Object.values(udpErrors).reduce((a, b) => a + b, 0);
    t.ok(counted > 0, `the losses were counted (tcp tx-failed ${s.servers.tcp.protocol['tx-failed'] ?? 0}, udp/ip drops and ENOBUFS)`);
    t.ok((s.servers.tcp.protocol['tx-failed'] ?? 0) > 0, `segments tcp could not send were counted (tx-failed ${s.servers.tcp.protocol['tx-failed']})`);
    t.ok(udpGot > 0, 'datagrams still flowed');
    t.ok(s.pool.inUse <= poolBase, `pool back to its baseline (${poolBase} -> ${s.pool.inUse})`);
    t.same(deaths, [], 'no server died');
    t.same(restarts(stack), NONE, 'no restart');
    rx.close();
    tx.close();
    await l.close();
  } finally {
    await stack.close();
  }
});
