/**
 * `keepnet bench scale --duration 0.3 --json` as a child process: one row per test and instance count,
 * every figure finite and > 0, the ratio of one instance exactly 1, connections spread over instances;
 * bad --instances / --tcp-instances values fail with usage. No speed is asserted.
 */
import t from 'tap';
import { runCli } from '../helpers/cli.js';

t.test('keepnet bench scale --instances 1,2 --connections 4 --duration 0.3 --warmup 0.1 --json', async (t) => {
  const r = await runCli(['bench', 'scale', '--instances', '1,2', '--connections', '4', '--duration', '0.3', '--warmup', '0.1', '--json']);
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(-2000)})`);
  const lines = r.stdout.trim().split('\n');
  t.equal(lines.length, 1, 'one line of JSON');
  const j = JSON.parse(lines[0]);
  t.equal(j.placement, 'dedicated');
  t.equal(j.connections, 4);
  t.equal(j.warmupS, 0.1, 'the warm-up asked for');
  t.type(j.cores, 'number');
  t.same(j.results.map((x: any) => `${x.test}/${x.instances}`), ['bulk/1', 'rr/1', 'bulk/2', 'rr/2']);
  for (const row of j.results) {
    const fig = row.test === 'bulk' ? row.mbps : row.tps;
    t.ok(Number.isFinite(fig) && fig > 0, `${row.test}/${row.instances}: ${fig}`);
    t.ok(Number.isFinite(row.ratio) && row.ratio > 0, `ratio ${row.ratio}`);
    if (row.instances === 1) t.equal(row.ratio, 1);
    t.equal(row.perInstance.length, row.instances, 'a count per instance');
    t.equal(row.perInstance.reduce((a: number, b: number) => a + b, 0), 4, 'every connection accepted by one instance');
    t.equal(row.serverThreads, 2 * (3 + row.instances), 'dedicated: a thread per server of both stacks');
    if (process.platform === 'linux') {
      t.ok('app' in row.coreShare && 'A.ip' in row.coreShare && (row.instances < 2 || 'B.tcp1' in row.coreShare), 'a core share per thread');
    }
  }
});

t.test('bad instance counts fail with usage', async (t) => {
  for (const args of [
    ['bench', 'scale', '--instances', '0'],
    ['bench', 'scale', '--instances', '1,x'],
    ['bench', 'bulk', '--tcp-instances', '17'],
    ['faults', '--tcp-instances', '1.5'],
    ['tap', '--dev', 'x', '--address', '10.0.0.1/24', '--tcp-instances', '0'],
  ]) {
    const r = await runCli(args);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.match(r.stderr, /--(tcp-)?instances must be/, `${args.join(' ')}: says why`);
  }
});
