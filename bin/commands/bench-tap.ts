/**
 * `keepnet bench tap [--duration S] [--warmup S] [--placement dedicated|shared] [--offload on|off|both] [--json]`:
 * bulk TCP each way between keepnet and the Linux kernel over a TAP, offload off and on side by side
 * (bench/tap.ts). Needs root (network namespaces, TAP).
 */
import { benchTap, formatTapBench } from '../../bench/tap.js';
import { benchProgress, durationOption, parseOrFail, warmupOption, type Fail } from './options.js';


export async function benchTapCommand(args: string[], fail: Fail): Promise<void> {
  const { values } = parseOrFail(
    args,
    {
      json: { type: 'boolean' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      placement: { type: 'string' },
      offload: { type: 'string' },
    },
    fail,
  );
  const duration = durationOption(values.duration, fail);
  const warmup = warmupOption(values.warmup, fail);
  const placement = (values.placement ?? 'shared') as 'dedicated' | 'shared';
  if (placement !== 'dedicated' && placement !== 'shared') fail(`--placement must be dedicated or shared, got '${values.placement}'`);
  const off = values.offload ?? 'both';
  if (off !== 'on' && off !== 'off' && off !== 'both') fail(`--offload must be on, off or both, got '${values.offload}'`);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) fail('bench tap needs root (network namespaces and a TAP device)');
  const progress = benchProgress(values.json);
  const r = await benchTap({ duration, warmup, placement, offloads: off === 'both' ? [false, true] : [off === 'on'], onProgress: progress.onProgress });
  progress.done();
  process.stdout.write(values.json ? JSON.stringify(r) + '\n' : formatTapBench(r) + '\n');
}
