/**
 * `keepnet bench scale [--instances 1,2] [--connections K] [--tests bulk,rr] [--duration S] [--warmup S] [--mtu N]
 * [--json]`: throughput with 1, 2 (or the given) flow-sharded tcp instances per stack, side by side in
 * one run (bench/scale.ts).
 */
import { benchScale, formatScaleBench, SCALE_TESTS, type ScaleTest } from '../../bench/scale.js';
import { MAX_TCP_INSTANCES } from '../../servers/runtime/topology.js';
import { benchProgress, durationOption, integerOption, mtuOption, parseOrFail, warmupOption, type Fail } from './options.js';

export async function benchScaleCommand(args: string[], fail: Fail): Promise<void> {
  const { values } = parseOrFail(
    args,
    {
      json: { type: 'boolean' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      instances: { type: 'string' },
      connections: { type: 'string' },
      tests: { type: 'string' },
      mtu: { type: 'string' },
    },
    fail,
  );
  const duration = durationOption(values.duration, fail);
  const warmup = warmupOption(values.warmup, fail);
  const instances = (values.instances ?? '1,2').split(',').map(Number);
  if (!instances.every((n) => Number.isInteger(n) && n >= 1 && n <= MAX_TCP_INSTANCES)) {
    fail(`--instances must be a list of integers in [1, ${MAX_TCP_INSTANCES}], got '${values.instances}'`);
  }
  const connections = integerOption('connections', values.connections, fail, 1, 1024, 8);
  const tests = (values.tests ?? SCALE_TESTS.join(',')).split(',') as ScaleTest[];
  if (!tests.every((t) => (SCALE_TESTS as readonly string[]).includes(t))) fail(`--tests must be bulk, rr or both, got '${values.tests}'`);
  const mtu = mtuOption(values.mtu, fail, 65535);
  const progress = benchProgress(values.json);
  const r = await benchScale({ instances, connections, duration, warmup, tests, mtu, onProgress: progress.onProgress });
  progress.done();
  process.stdout.write(values.json ? JSON.stringify(r) + '\n' : formatScaleBench(r) + '\n');
}
