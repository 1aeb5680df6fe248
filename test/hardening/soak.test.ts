/**
 * Soak, short variant (the long ones: `node dist/bench/soak.js --held 10000 --hold-s 600` and
 * `--churn 1000000`): connections opened, echoed and closed over loopback, then connections held
 * with traffic; no restart, every connection works, the pool back to its baseline, the table bounded.
 */
import t from 'tap';
import { createStack } from '../../kernel-shim/stack.js';
import { runSoak } from '../helpers/soak.js';

t.test('500 connections churned, 100 held with traffic for 3 s', async (t) => {
  const stack = await createStack({ tcp: { maxConnections: 1024, bufferBytes: 16384 } });
  try {
    const r = await runSoak(stack, { churn: 500, parallel: 20, held: 100, holdMs: 3000, log: (l) => t.comment(l) });
    t.comment(JSON.stringify(r));
    t.equal(r.churnFailed, 0, 'every churned connection echoed and closed');
    t.equal(r.heldFailed, 0, 'every held connection opened');
    t.ok(r.heldEchoes >= 100, `held connections carried traffic (${r.heldEchoes} echoes)`);
    t.same(r.restarts, { driver: 0, ip: 0, tcp: 0, udp: 0 }, 'no restart');
    t.ok(r.pool.after <= r.pool.baseline, `pool back to its baseline (${r.pool.baseline} -> ${r.pool.after})`);
    t.ok(r.table.peak <= 1024, `the table stayed within its bound (peak ${r.table.peak})`);
  } finally {
    await stack.close();
  }
});
