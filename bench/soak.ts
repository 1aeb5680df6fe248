/**
 * Long soak runs (outside CI), over loopback on one stack:
 *   node dist/bench/soak.js --held 10000 --hold-s 600        10,000 connections held 10 minutes with traffic
 *   node dist/bench/soak.js --churn 1000000 --parallel 64     1,000,000 connections opened and closed
 * Prints a JSON report; exits 1 on a restart, a failed connection or a pool that did not return.
 */
import { createStack } from '../kernel-shim/stack.js';
import { runSoak } from '../test/helpers/soak.js';

const args = process.argv.slice(2);
const num = (name: string, d: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const held = num('held', 0);
const churn = num('churn', 0);
const stack = await createStack({
  tcp: { maxConnections: Math.max(1024, 2 * held + 2 * num('parallel', 64) + 16), bufferBytes: num('buffer', 16384) },
  poolBuffers: num('pool', 8192),
});
const report = await runSoak(stack, { churn, parallel: num('parallel', 64), held, holdMs: num('hold-s', 10) * 1000, log: (l) => console.error(l) });
await stack.close();
const ok = report.churnFailed === 0 && report.heldFailed === 0 && Object.values(report.restarts).every((n) => n === 0) && report.pool.after <= report.pool.baseline;
console.log(JSON.stringify({ ok, ...report }));
process.exit(ok ? 0 : 1);
