/**
 * `keepnet bench all --duration 0.3 --json --svg FILE` as a child process: the JSON shape (a row per
 * test, system and placement; the ratios; the rounds) and that every figure is a finite number > 0,
 * and that the SVG is written. No speed is asserted.
 */
import t from 'tap';
import { runCli } from '../helpers/cli.js';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultBusyPollUs } from '../../servers/runtime/stack-memory.js';

const run = runCli;

const FIGURES: Record<string, string[]> = {
  bulk: ['mbps', 'cpuS', 'perCpuSecond'],
  rr: ['tps', 'rttUs', 'rttP99Us', 'cpuS', 'perCpuSecond'],
  crr: ['cps', 'rttUs', 'cpuS', 'perCpuSecond'],
};

t.test('keepnet bench all --duration 0.3 --warmup 0.2 --json --svg', async (t) => {
  const svg = join(tmpdir(), `keepnet-bench-net-${process.pid}.svg`);
  t.teardown(() => rmSync(svg, { force: true }));
  const r = await run(['bench', 'all', '--duration', '0.3', '--warmup', '0.2', '--json', '--svg', svg]);
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(-2000)})`);
  const lines = r.stdout.trim().split('\n');
  t.equal(lines.length, 1, 'one line of JSON');
  const j = JSON.parse(lines[0]);
  t.ok(Array.isArray(j.results), 'results');
  t.equal(j.results.length, 12, 'three tests x (kernel + three placements)');
  for (const test of ['bulk', 'rr', 'crr']) {
    for (const [system, placement] of [['kernel', 'n/a'], ['keepnet', 'dedicated'], ['keepnet', 'shared'], ['keepnet', 'cohosted']]) {
      const row = j.results.find((x: any) => x.test === test && x.system === system && x.placement === placement);
      t.ok(row, `${test} ${system} ${placement}`);
      if (!row) continue;
      for (const k of ['mbps', 'tps', 'cps', 'rttUs', 'cpuS', 'perCpuSecond']) t.ok(k in row, `${test} ${system} ${placement}: has ${k}`);
      for (const k of FIGURES[test]) t.ok(typeof row[k] === 'number' && Number.isFinite(row[k]) && row[k] > 0, `${test} ${system} ${placement}: ${k} = ${row[k]}`);
      // Every number present anywhere in the row is finite and > 0 (not-applicable figures are null),
      // but the busy poll budget, which is 0 where the stack does not poll.
      for (const [k, v] of Object.entries(row)) if (typeof v === 'number' && k !== 'busyPollUs' && k !== 'stealPct') t.ok(Number.isFinite(v) && v > 0, `${test} ${system} ${placement}: ${k} = ${v}`);
      // Steal: a percentage on Linux (this machine), 0 when the hypervisor took nothing.
      t.ok(typeof row.stealPct === 'number' && row.stealPct >= 0 && row.stealPct <= 100, `${test} ${system} ${placement}: stealPct = ${row.stealPct}`);
      const poll = system === 'kernel' ? null : defaultBusyPollUs(placement === 'dedicated' ? 4 : 1);
      t.equal(row.busyPollUs, poll, `${test} ${system} ${placement}: the stacks' default busy poll budget (${poll})`);
    }
  }
  for (const k of ['bulk', 'rr', 'crr']) t.ok(typeof j.ratios?.[k] === 'number' && Number.isFinite(j.ratios[k]) && j.ratios[k] > 0, `ratios.${k} = ${j.ratios?.[k]}`);
  t.type(j.wire?.mtu, 'number', 'the wire is reported');
  t.equal(j.rounds, 3, 'three alternating rounds by default');
  t.equal(j.warmupS, 0.2, 'the warm-up asked for');
  const s = readFileSync(svg, 'utf8');
  t.match(s, /^<svg /, 'an SVG');
  t.match(s, /<\/svg>\s*$/, 'complete');
  t.equal((s.match(/<rect /g) ?? []).length, 1 + 2 * 12, 'a background and two bars per row');
});

t.test('keepnet bench rr --placement shared --duration 0.2 --json: one test, one placement', async (t) => {
  // Options before the benchmark's name: their values are not taken for the name.
  const r = await run(['bench', '--rounds', '1', '--warmup', '0', '--busy-poll', '0', 'rr', '--placement', 'shared', '--duration', '0.2', '--json']);
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(-2000)})`);
  const j = JSON.parse(r.stdout.trim());
  t.same(j.results.map((x: any) => `${x.test}/${x.system}/${x.placement}`), ['rr/kernel/n/a', 'rr/keepnet/shared']);
  t.same(Object.keys(j.ratios), ['rr']);
  t.equal(j.rounds, 1);
  t.equal(j.warmupS, 0, 'no warm-up');
  t.equal(j.results[1].busyPollUs, 0, '--busy-poll before the name too');
});

t.test('keepnet bench rr --busy-poll US: the budget reaches the stacks; bad values are refused', async (t) => {
  const r = await run(['bench', 'rr', '--placement', 'dedicated,shared', '--busy-poll', '35', '--rounds', '1', '--warmup', '0', '--duration', '0.2', '--json']);
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(-2000)})`);
  const j = JSON.parse(r.stdout.trim());
  t.same(j.results.map((x: any) => x.busyPollUs), [null, 35, 35], 'kernel: none; both placements: 35 µs');
  for (const bad of ['-1', 'x', '', '1001']) {
    const b = await run(['bench', 'rr', `--busy-poll=${bad}`, '--duration', '0.2']);
    t.equal(b.code, 2, `--busy-poll '${bad}': usage error`);
    t.match(b.stderr, /--busy-poll must be/);
  }
});

t.test('a system that cannot start fails the run with its reason (and its process is gone: the test ends)', async (t) => {
  const { benchNet } = await import('../../bench/net.js');
  await t.rejects(
    benchNet({ tests: ['rr'], placements: ['shared'], tcpInstances: 17, duration: 0.1, rounds: 1, warmup: 0 }),
    /keepnet shared did not start: .*tcpInstances/,
  );
});

t.test('medianRow: the row of the median round, whole', async (t) => {
  const { medianRow } = await import('../../bench/net.js');
  const row = (mbps: number, cpuS: number) => ({ test: 'bulk' as const, system: 'kernel' as const, placement: 'n/a' as const, mbps, tps: null, cps: null, rttUs: null, rttP99Us: null, cpuS, perCpuSecond: mbps / cpuS, seconds: 1, busyPollUs: null, stealPct: null });
  t.same(medianRow([row(300, 1), row(100, 2), row(200, 3)]), row(200, 3), 'odd count: the middle one, with its own CPU figures');
  t.same(medianRow([row(400, 1), row(100, 2), row(200, 3), row(300, 4)]), row(200, 3), 'even count: the lower middle');
  t.same(medianRow([row(5, 1)]), row(5, 1));
  t.throws(() => medianRow([]), RangeError);
});

t.test('steal: parsed from /proc/stat, as a share of the CPU time between two readings', async (t) => {
  const { parseCpuTimes, stealPct } = await import('../../bench/steal.js');
  const a = parseCpuTimes('cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 50 0 25 400 5 0 2 18 0 0\n');
  t.same(a, { steal: 35, total: 1000 });
  const b = parseCpuTimes('cpu  200 0 100 1550 10 0 10 130 0 0\n');
  t.same(b, { steal: 130, total: 2000 });
  t.equal(stealPct(a, b), 9.5, '95 of 1000 ticks');
  t.equal(stealPct(a, a), null, 'no time passed');
  t.equal(stealPct(null, b), null);
  t.equal(parseCpuTimes('intr 1 2 3\n'), null, 'no cpu line');
  t.equal(parseCpuTimes('cpu  1 2 x 4 5 6 7 8\n'), null, 'a malformed line');
});

t.test('stealWarning: only above the threshold, counting the rows', async (t) => {
  const { stealWarning, STEAL_WARN_PCT } = await import('../../bench/steal.js');
  t.equal(stealWarning([]), null);
  t.equal(stealWarning([null, 0, STEAL_WARN_PCT]), null, 'at the threshold: no warning');
  t.match(stealWarning([null, STEAL_WARN_PCT + 0.1, 2, 40])!, /took over 5% of the CPU during 2 row\(s\)/);
});

t.test('keepnet bench with a bad name or option fails with usage', async (t) => {
  const r = await run(['bench', 'nope']);
  t.equal(r.code, 2);
  t.match(r.stderr, /unknown benchmark 'nope'/);
  const d = await run(['bench', 'bulk', '--duration', '0']);
  t.equal(d.code, 2);
  t.match(d.stderr, /--duration must be a positive number/);
  const rounds = await run(['bench', 'bulk', '--rounds', '0']);
  t.equal(rounds.code, 2);
  t.match(rounds.stderr, /--rounds must be an integer in \[1, 100\]/);
  for (const w of ['-1', 'soon', '601', '']) {
    const warm = await run(['bench', 'rr', `--warmup=${w}`]);
    t.equal(warm.code, 2, `--warmup '${w}': exit 2`);
    t.match(warm.stderr, /--warmup must be a number of seconds in \[0, 600\]/);
  }
  for (const args of [['bench', '--bogus'], ['bench', 'rings', '--bogus'], ['demo', '--bogus']]) {
    const u = await run(args);
    t.equal(u.code, 2, `${args.join(' ')}: exit code 2`);
    t.match(u.stderr, /^keepnet: .*Unknown option '--bogus'/m, `${args.join(' ')}: says which option`);
    t.notMatch(u.stderr, /\n\s+at /, `${args.join(' ')}: no stack trace`);
  }
  const h = await run(['bench', '--help']);
  t.equal(h.code, 0, '--help after a command: exit 0');
  t.match(h.stdout, /^usage: keepnet/, '--help prints the usage');
});
