#!/usr/bin/env node
/**
 * The keepnet command line. Argument parsing is Node's own util.parseArgs (no dependency needed).
 *   keepnet bench rings [--json] [--scale X]
 *   keepnet bench bulk|rr|crr|all [--duration S] [--json] [--svg FILE]
 *   keepnet bench ab --builds DIR,DIR [--test rr|bulk] [--json]
 *   keepnet bench tap [--duration S] [--placement P] [--offload on|off|both] [--json]
 *   keepnet faults --count N [--servers ...] [--kinds ...] [--json]
 */
import { parseArgs } from 'node:util';
import { benchProgress } from './commands/options.js';
import { BENCH_AB_USAGE, BENCH_NET_USAGE, BENCH_SCALE_USAGE, BENCH_TAP_USAGE, DEMO_USAGE, FAULTS_USAGE, TAP_USAGE } from './commands/usage.js';

// Each command's module is loaded only when that command runs. Besides start-up time, this keeps the
// benchmarks' main thread free of code they do not use: with the fault campaign's and the report's
// modules (node:http, d3) loaded too, V8's heuristics ran ~115 main-thread mark-compacts during a 3 s
// TAP receive instead of a handful, and `bench tap` measured 0.83-0.9 GB/s receiving where the same
// benchmark without them measured 1.2-1.4.

const USAGE = `usage: keepnet <command> [options]

commands:
  demo ...                           the live crash-recovery demo (what npm start runs):
    ${DEMO_USAGE}
  bench rings [--json] [--scale X]   ring, postMessage and packet-pool throughput and latency
  bench bulk|rr|crr|all ...          keepnet (shm wire) against the kernel's TCP (node:net, loopback):
    ${BENCH_NET_USAGE}
  bench scale ...                    throughput with 1, 2... flow-sharded tcp instances per stack:
    ${BENCH_SCALE_USAGE}
  bench ab ...                       keepnet builds side by side in one process, alternating slices (A/B of a change):
    ${BENCH_AB_USAGE}
  bench tap ...                      keepnet against the Linux kernel over a TAP, bulk each way, offload off and on (root):
    ${BENCH_TAP_USAGE}
  tap --dev NAME --address A/P ...   attach a stack to a TAP device and serve until SIGINT/SIGTERM:
    ${TAP_USAGE}
  faults --count N ...               a fault campaign against a live stack under traffic:
    ${FAULTS_USAGE}
`;

function fail(msg: string): never {
  process.stderr.write(`keepnet: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

function num(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isFinite(x) || x <= 0) fail(`--${name} must be a positive number, got '${v}'`);
  return x;
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  switch (cmd) {
    case 'bench': {
      // The benchmark's name: the first argument that is neither an option nor an option's value.
      const withValue = new Set(['--scale', '--duration', '--rounds', '--warmup', '--svg', '--placement', '--mtu', '--tcp-instances', '--busy-poll', '--instances', '--connections', '--tests', '--offload', '--builds', '--test', '--slice']);
      const at = rest.findIndex((a, i) => !a.startsWith('-') && !(i > 0 && withValue.has(rest[i - 1])));
      const sub = at < 0 ? undefined : rest[at];
      if (sub === 'scale') {
        const { benchScaleCommand } = await import('./commands/bench-scale.js');
        await benchScaleCommand(rest.filter((_, i) => i !== at), fail);
        return;
      }
      if (sub === 'ab') {
        const { benchAbCommand } = await import('./commands/bench-ab.js');
        await benchAbCommand(rest.filter((_, i) => i !== at), fail);
        return;
      }
      if (sub === 'tap') {
        const { benchTapCommand } = await import('./commands/bench-tap.js');
        await benchTapCommand(rest.filter((_, i) => i !== at), fail);
        return;
      }
      if (sub !== undefined && sub !== 'rings') {
        const { benchNetCommand } = await import('./commands/bench-net.js');
        await benchNetCommand(sub, rest.filter((_, i) => i !== at), fail);
        return;
      }
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { json: { type: 'boolean' }, scale: { type: 'string' } },
      });
      const what = positionals[0] ?? 'rings';
      if (what !== 'rings') fail(`unknown benchmark '${what}'`);
      const scale = num(values.scale, 'scale', 1);
      const progress = benchProgress(values.json);
      const { benchRings, formatRingBench } = await import('../bench/rings.js');
      const r = await benchRings({ scale, onProgress: progress.onProgress });
      progress.done();
      process.stdout.write(values.json ? JSON.stringify(r) + '\n' : formatRingBench(r) + '\n');
      return;
    }
    case 'demo':
      await (await import('./commands/demo.js')).demoCommand(rest, fail);
      return;
    case 'tap':
      await (await import('./commands/tap.js')).tapCommand(rest, fail);
      return;
    case 'faults':
      await (await import('./commands/faults.js')).faultsCommand(rest, fail);
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      fail(`unknown command '${cmd}'`);
  }
}

main(process.argv.slice(2)).catch((err) => {
  // A wrong option is the user's mistake, not a crash: say what was wrong and show the usage.
  if (typeof err?.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS')) fail(err.message);
  process.stderr.write(`keepnet: ${err?.stack ?? err}\n`);
  process.exit(1);
});
