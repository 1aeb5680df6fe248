/**
 * Long soak runs (outside CI), over loopback on one stack:
 *   node dist/bench/soak.js --held 10000 --hold-s 600        10,000 connections held 10 minutes with traffic
 *   node dist/bench/soak.js --churn 1000000 --parallel 64     1,000,000 connections opened and closed
 * Prints a JSON report; exits 1 on a restart, a failed connection or a pool that did not return.
 */
import { createStack } from '../kernel-shim/stack.js';
import { runSoak } from '../test/helpers/soak.js';
import { tcpUsed } from '../test/helpers/fuzz.js';

const USAGE = `usage: node dist/bench/soak.js [--churn N] [--parallel P] [--held N] [--hold-s S]
                             [--max-conns N] [--buffer BYTES] [--pool N] [--settle-s S]
  --churn N      open, echo through and close N connections over loopback, P at a time (default 0)
  --parallel P   churn concurrency (default 64)
  --held N       then hold N connections open with an echo round on each every ~50 ms (default 0)
  --hold-s S     how long to hold them (default 10)
  --max-conns N  tcp.maxConnections (default max(1024, 2*held + 2*parallel + 16), at most 65535)
  --buffer B     tcp.bufferBytes per direction per connection (power of two, 4096.., default 16384)
  --pool N       packet pool buffers (default 8192)
  --settle-s S   after the run, wait up to S seconds for the table to return to its baseline
                 (TIME_WAIT lasts 60 s; default 0: report the table as the run left it)
Prints progress on stderr and one JSON report on stdout; exits 1 on a restart, a failed connection
or a pool that did not return to its baseline.`;

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
const known = new Set(['churn', 'parallel', 'held', 'hold-s', 'max-conns', 'buffer', 'pool', 'settle-s']);
for (let i = 0; i < args.length; i += 2) {
  const name = args[i].replace(/^--/, '');
  if (!args[i].startsWith('--') || !known.has(name) || !Number.isFinite(Number(args[i + 1]))) {
    console.error(`soak: bad argument ${args[i]} ${args[i + 1] ?? ''}\n${USAGE}`);
    process.exit(2);
  }
}
const num = (name: string, d: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const held = num('held', 0);
const churn = num('churn', 0);
const parallel = num('parallel', 64);
const maxConnections = Math.min(65535, num('max-conns', Math.max(1024, 2 * held + 2 * parallel + 16)));
const stack = await createStack({
  tcp: { maxConnections, bufferBytes: num('buffer', 16384) },
  poolBuffers: num('pool', 8192),
});
// Every server death, as it happens (the report has the counts by cause and the last crash).
const deaths: string[] = [];
stack.on('death', (d: { server: string; cause: string; reason?: unknown }) => {
  const line = `${new Date().toISOString()} death: ${d.server} ${d.cause} ${String(d.reason).slice(0, 300)}`;
  if (deaths.length < 20) console.error(line);
  deaths.push(line);
});
stack.on('hang', (h: { servers: string[]; detail?: string }) => {
  const line = `${new Date().toISOString()} hang: ${h.servers.join(',')} ${h.detail ?? ''}`;
  if (deaths.length < 20) console.error(line);
  deaths.push(line);
});
const t0 = Date.now();
// No held connections: no hold phase (runSoak would idle through hold-s with nothing to echo).
const report = await runSoak(stack, { churn, parallel, held, holdMs: held > 0 ? num('hold-s', 10) * 1000 : 0, log: (l) => console.error(l) });
const settleS = num('settle-s', 0);
const settle = { waitedS: 0, table: tcpUsed(stack) };
if (settleS > 0) {
  const s0 = Date.now();
  while (tcpUsed(stack) > report.table.baseline - 1 && Date.now() - s0 < settleS * 1000) await new Promise((r) => setTimeout(r, 500));
  settle.waitedS = (Date.now() - s0) / 1000;
  settle.table = tcpUsed(stack);
}
const stats = stack.stats();
const extra = {
  maxConnections,
  totalSeconds: (Date.now() - t0) / 1000,
  churnPerSec: report.churnSeconds > 0 ? Math.round(report.churned / report.churnSeconds) : 0,
  settle,
  tcp: stats.servers.tcp.protocol,
  poolStats: { inUse: stats.pool.inUse, exhausted: stats.pool.small.exhausted + stats.pool.big.exhausted },
  rssMB: Math.round(process.memoryUsage().rss / 2 ** 20),
  restartCauses: Object.fromEntries(
    Object.entries(stats.servers)
      .filter(([, v]) => v.restarts.total > 0)
      .map(([k, v]) => [k, { ...v.restarts, lastCrash: v.lastCrash }]),
  ),
  deaths: deaths.length,
};
await stack.close();
const ok = report.churnFailed === 0 && report.heldFailed === 0 && Object.values(report.restarts).every((n) => n === 0) && report.pool.after <= report.pool.baseline;
console.log(JSON.stringify({ ok, ...report, ...extra }));
process.exit(ok ? 0 : 1);
