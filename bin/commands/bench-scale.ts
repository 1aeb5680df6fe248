/**
 * `keepnet bench scale [--instances 1,2] [--connections K] [--tests bulk,rr] [--duration S] [--mtu N]
 * [--json]`: throughput with 1, 2 (or the given) flow-sharded tcp instances per stack, side by side in
 * one run (bench/scale.ts).
 */
import { parseArgs } from 'node:util';
import { benchScale, formatScaleBench, SCALE_TESTS, type ScaleTest } from '../../bench/scale.js';
import { MAX_TCP_INSTANCES } from '../../servers/runtime/topology.js';

export const BENCH_SCALE_USAGE = `keepnet bench scale [--instances 1,2] [--connections K] [--tests bulk,rr] [--duration S] [--mtu N] [--json]`;

export async function benchScaleCommand(args: string[], fail: (msg: string) => never): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        json: { type: 'boolean' },
        duration: { type: 'string' },
        instances: { type: 'string' },
        connections: { type: 'string' },
        tests: { type: 'string' },
        mtu: { type: 'string' },
      },
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const { values } = parsed;
  const duration = values.duration === undefined ? 3 : Number(values.duration);
  if (!Number.isFinite(duration) || duration <= 0) fail(`--duration must be a positive number, got '${values.duration}'`);
  const instances = (values.instances ?? '1,2').split(',').map(Number);
  if (!instances.every((n) => Number.isInteger(n) && n >= 1 && n <= MAX_TCP_INSTANCES)) {
    fail(`--instances must be a list of integers in [1, ${MAX_TCP_INSTANCES}], got '${values.instances}'`);
  }
  const connections = values.connections === undefined ? 8 : Number(values.connections);
  if (!Number.isInteger(connections) || connections < 1 || connections > 1024) fail(`--connections must be an integer in [1, 1024], got '${values.connections}'`);
  const tests = (values.tests ?? SCALE_TESTS.join(',')).split(',') as ScaleTest[];
  if (!tests.every((t) => (SCALE_TESTS as readonly string[]).includes(t))) fail(`--tests must be bulk, rr or both, got '${values.tests}'`);
  const mtu = values.mtu === undefined ? 65535 : Number(values.mtu);
  if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) fail(`--mtu must be an integer in [576, 65535], got '${values.mtu}'`);
  const tty = !values.json && process.stderr.isTTY;
  const r = await benchScale({
    instances,
    connections,
    duration,
    tests,
    mtu,
    onProgress: (name) => {
      if (!values.json) process.stderr.write(tty ? `\r\x1b[K  measuring: ${name}` : `measuring: ${name}\n`);
    },
  });
  if (tty) process.stderr.write('\r\x1b[K');
  process.stdout.write(values.json ? JSON.stringify(r) + '\n' : formatScaleBench(r) + '\n');
}
