/**
 * Differential: every scenario of net-scenarios.ts against node:net over the kernel's loopback and
 * against a real keepnet stack (its own loopback, through the tcp and ip servers), comparing what
 * the application sees, the order of events included.
 */
import nodeNet from 'node:net';
import t from 'tap';
import { Stack } from '../../kernel-shim/stack.js';
import { runScenario, SCENARIOS, type NetEnv, type NetLike } from './net-scenarios.js';

const nodeEnv: NetEnv = { name: 'node:net', net: nodeNet as unknown as NetLike, host: '127.0.0.1' };

// Both placements: a thread per server (the servers park between records), and a thread for the
// stack, where the servers and the application's pump busy poll and so answer within microseconds
// (event-order races that parked threads hide show up there).
for (const placement of ['dedicated', 'shared'] as const) {
  t.test(`the same event sequences as node:net, on a real stack (${placement})`, async (t) => {
    const stack = new Stack({ address: '10.93.0.1/24', placement });
    await stack.start();
    t.teardown(() => stack.close());
    const keepnetEnv: NetEnv = { name: 'keepnet', net: stack.net as unknown as NetLike, host: '127.0.0.1' };
    for (const [name, scenario] of Object.entries(SCENARIOS)) {
      await t.test(name, async (t) => {
        const expected = await runScenario(scenario, nodeEnv, 60_000);
        const got = await runScenario(scenario, keepnetEnv, 60_000);
        t.same(got, expected, 'keepnet = node:net');
        t.ok(Object.values(expected).some((l) => l.length > 0), 'the scenario recorded something');
      });
    }
    t.equal(stack.stats().servers.tcp.restarts.total, 0, 'no tcp restart');
  });
}
