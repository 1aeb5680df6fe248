/**
 * `keepnet bench ab`: the in-process A/B of builds, run as a child process on this checkout against
 * itself (an A/A): the JSON shape, one slice per round per build, every figure finite (the medians > 0), the
 * first build's ratio exactly 1 and the others' median between their quartiles; and its usage errors
 * (no builds, a directory that is not a built checkout, a wrong test). No speed is asserted.
 */
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { runCli } from '../helpers/cli.js';

/** This checkout: dist/test/cli/ is three levels below it. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

for (const test of ['rr', 'bulk']) {
  t.test(`keepnet bench ab --builds ROOT,ROOT --test ${test} --json`, async (t) => {
    // Slices of 100 ms (the default): a 20 ms slice of bulk once moved nothing in CI, where tap runs
    // test files side by side on two cores and a pair can stall for that long.
    const r = await runCli(['bench', 'ab', '--builds', `${ROOT},${ROOT}`, '--test', test, '--slice', '100', '--rounds', '4', '--warmup', '0.2', '--json']);
    t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(-2000)})`);
    const j = JSON.parse(r.stdout.trim());
    t.equal(j.test, test);
    t.equal(j.unit, test === 'rr' ? 'tps' : 'MB/s');
    t.equal(j.rounds, 4);
    t.equal(j.sliceMs, 100);
    t.equal(j.builds.length, 2, 'two builds');
    for (const b of j.builds) {
      t.equal(b.slices.length, 4, 'a slice per round');
      // A slice may see nothing complete when the machine is oversubscribed (tap runs test files side by
      // side on two cores: an rr slice of 100 ms once had no transaction finish, its neighbours ~20 tx/s),
      // so each slice must be a finite measurement and the median must show data moving.
      t.ok(b.slices.every((v: number) => Number.isFinite(v) && v >= 0), `every slice a measurement: ${b.slices}`);
      t.ok(Number.isFinite(b.median) && b.median > 0, `data moved: median ${b.median}`);
      t.ok(b.ratioQ1 <= b.ratio && b.ratio <= b.ratioQ3, `quartiles around the ratio: ${b.ratioQ1} ${b.ratio} ${b.ratioQ3}`);
    }
    t.equal(j.builds[0].ratio, 1, 'the first build is the reference');
    t.ok(j.builds[1].ratio > 0 && Number.isFinite(j.builds[1].ratio), `ratio ${j.builds[1].ratio}`);
  });
}

t.test('keepnet bench ab: usage errors exit 2 with a message', async (t) => {
  const none = await runCli(['bench', 'ab']);
  t.equal(none.code, 2);
  t.match(none.stderr, /--builds DIR,DIR is required/);
  const notBuilt = await runCli(['bench', 'ab', '--builds', `${ROOT},${tmpdir()}`]);
  t.equal(notBuilt.code, 2);
  t.match(notBuilt.stderr, /is not a built keepnet checkout/);
  const badTest = await runCli(['bench', 'ab', '--builds', ROOT, '--test', 'crr']);
  t.equal(badTest.code, 2);
  t.match(badTest.stderr, /--test must be rr or bulk/);
  const badSlice = await runCli(['bench', 'ab', '--builds', ROOT, '--slice', '1']);
  t.equal(badSlice.code, 2);
  t.match(badSlice.stderr, /--slice must be milliseconds/);
});
