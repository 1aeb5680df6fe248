/**
 * `keepnet bench tap [--duration S] [--placement dedicated|shared] [--offload on|off|both] [--json]`:
 * bulk TCP each way between keepnet and the Linux kernel over a TAP, offload off and on side by side
 * (bench/tap.ts). Needs root (network namespaces, TAP).
 */
import { parseArgs } from 'node:util';
import { benchTap, formatTapBench } from '../../bench/tap.js';

export const BENCH_TAP_USAGE = `keepnet bench tap [--duration S] [--placement dedicated|shared] [--offload on|off|both] [--json]`;

export async function benchTapCommand(args: string[], fail: (msg: string) => never): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        json: { type: 'boolean' },
        duration: { type: 'string' },
        placement: { type: 'string' },
        offload: { type: 'string' },
      },
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const { values } = parsed;
  const duration = values.duration === undefined ? 3 : Number(values.duration);
  if (!Number.isFinite(duration) || duration <= 0) fail(`--duration must be a positive number, got '${values.duration}'`);
  const placement = (values.placement ?? 'shared') as 'dedicated' | 'shared';
  if (placement !== 'dedicated' && placement !== 'shared') fail(`--placement must be dedicated or shared, got '${values.placement}'`);
  const off = values.offload ?? 'both';
  if (off !== 'on' && off !== 'off' && off !== 'both') fail(`--offload must be on, off or both, got '${values.offload}'`);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) fail('bench tap needs root (network namespaces and a TAP device)');
  const tty = !values.json && process.stderr.isTTY;
  const r = await benchTap({
    duration,
    placement,
    offloads: off === 'both' ? [false, true] : [off === 'on'],
    onProgress: (name) => {
      if (!values.json) process.stderr.write(tty ? `\r\x1b[K  measuring: ${name}` : `measuring: ${name}\n`);
    },
  });
  if (tty) process.stderr.write('\r\x1b[K');
  process.stdout.write(values.json ? JSON.stringify(r) + '\n' : formatTapBench(r) + '\n');
}
