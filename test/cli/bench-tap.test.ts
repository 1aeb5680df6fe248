/**
 * `keepnet bench tap --duration 0.5 --warmup 0.2 --json` as a child process (root: it creates a namespace and a
 * TAP; skipped otherwise): the JSON shape, a row per direction and offload setting with bytes moved,
 * GSO frames only with offload on, and the ratios. No speed is asserted. Usage errors exit 2.
 */
import t from 'tap';
import { runCli } from '../helpers/cli.js';
import { canRunNetns, netnsUnavailableReason } from '../helpers/netns.js';

t.test('keepnet bench tap: bad options fail with usage', async (t) => {
  for (const [args, msg] of [
    [['bench', 'tap', '--offload', 'maybe'], /--offload must be on, off or both/],
    [['bench', 'tap', '--duration', '0'], /--duration must be a positive number/],
    [['bench', 'tap', '--placement', 'nowhere'], /--placement must be dedicated or shared/],
    [['bench', 'tap', '--warmup=-2'], /--warmup must be a number of seconds in \[0, 600\]/],
  ] as const) {
    const r = await runCli([...args]);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.match(r.stderr, msg);
  }
});

t.test('keepnet bench tap --duration 0.5 --warmup 0.2 --json', { skip: canRunNetns() ? false : `needs root and iproute2: ${netnsUnavailableReason()}` }, async (t) => {
  const r = await runCli(['bench', 'tap', '--duration', '0.5', '--warmup', '0.2', '--json']);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    durationS: number;
    warmupS: number;
    placement: string;
    results: { direction: string; offload: boolean; mbps: number; bytes: number; rxGsoFrames: number; txGsoFrames: number; stealPct: number | null }[];
    ratios: Record<string, number | null>;
  };
  t.equal(j.durationS, 0.5);
  t.equal(j.warmupS, 0.2);
  t.equal(j.placement, 'shared');
  t.same(
    j.results.map((x) => [x.direction, x.offload]),
    [
      ['keepnet->kernel', false],
      ['kernel->keepnet', false],
      ['keepnet->kernel', true],
      ['kernel->keepnet', true],
    ],
  );
  for (const x of j.results) {
    t.ok(x.bytes > 0 && Number.isFinite(x.mbps) && x.mbps > 0, `${x.direction} offload ${x.offload}: data moved`);
    t.ok(typeof x.stealPct === 'number' && x.stealPct >= 0 && x.stealPct <= 100, `${x.direction} offload ${x.offload}: stealPct = ${x.stealPct}`);
    const gso = x.direction === 'keepnet->kernel' ? x.txGsoFrames : x.rxGsoFrames;
    if (x.offload) t.ok(gso > 0, 'GSO frames with offload');
    else t.equal(gso, 0, 'no GSO frames without offload');
  }
  t.ok(Number.isFinite(j.ratios['keepnet->kernel']) && Number.isFinite(j.ratios['kernel->keepnet']));
});

t.test('formatTapBench: a row per measurement with its steal, and the warning above 5%', async (t) => {
  const { formatTapBench } = await import('../../bench/tap.js');
  const row = (direction: 'keepnet->kernel' | 'kernel->keepnet', mbps: number, stealPct: number | null) => ({ direction, offload: true, mbps, bytes: mbps * 1e6, rxGsoFrames: direction === 'kernel->keepnet' ? 9 : 0, txGsoFrames: direction === 'keepnet->kernel' ? 7 : 0, stealPct });
  const r = { durationS: 3, warmupS: 1, placement: 'shared' as const, results: [row('keepnet->kernel', 1500, 0.4), row('kernel->keepnet', 1200, null)], ratios: { 'keepnet->kernel': null, 'kernel->keepnet': null } };
  const text = formatTapBench(r);
  t.match(text, /keepnet->kernel\s+on\s+1500\.0\s+0\.4\s+0\/7/);
  t.match(text, /kernel->keepnet\s+on\s+1200\.0\s+n\/a\s+9\/0/);
  t.notMatch(text, /warning/);
  r.results[1]!.stealPct = 12;
  t.match(formatTapBench(r), /warning: the hypervisor took over 5% of the CPU during 1 row\(s\)/);
});
