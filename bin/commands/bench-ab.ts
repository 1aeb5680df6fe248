/**
 * `keepnet bench ab --builds DIR,DIR[,...] [--test rr|bulk] [--slice MS] [--rounds N] [--warmup S] [--json]`:
 * keepnet builds side by side in one process, in alternating slices (bench/ab.ts says why).
 */
import { AB_TESTS, benchAb, formatAbBench, type AbTest } from '../../bench/ab.js';
import { benchProgress, integerOption, parseOrFail, warmupOption, type Fail } from './options.js';

export async function benchAbCommand(args: string[], fail: Fail): Promise<void> {
  const { values } = parseOrFail(
    args,
    {
      json: { type: 'boolean' },
      builds: { type: 'string' },
      test: { type: 'string' },
      slice: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
    },
    fail,
  );
  if (values.builds === undefined || values.builds.trim() === '') fail('--builds DIR,DIR is required (built keepnet checkouts)');
  const builds = values.builds.split(',').map((d) => d.trim());
  if (builds.some((d) => d === '') || builds.length > 8) fail(`--builds must be one to eight directories, got '${values.builds}'`);
  const test = (values.test ?? 'rr') as AbTest;
  if (!(AB_TESTS as readonly string[]).includes(test)) fail(`--test must be rr or bulk, got '${values.test}'`);
  const sliceMs = values.slice === undefined ? 100 : Number(values.slice);
  if (!Number.isFinite(sliceMs) || sliceMs < 10 || sliceMs > 10_000) fail(`--slice must be milliseconds in [10, 10000], got '${values.slice}'`);
  const rounds = integerOption('rounds', values.rounds, fail, 1, 10_000, 40);
  const warmupS = warmupOption(values.warmup, fail);
  const progress = benchProgress(values.json);
  let r;
  try {
    r = await benchAb({ builds, test, sliceMs, rounds, warmupS, onProgress: progress.onProgress });
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_INVALID_ARG_VALUE') fail((e as Error).message);
    throw e;
  }
  progress.done();
  process.stdout.write(values.json ? JSON.stringify(r) + '\n' : formatAbBench(r) + '\n');
}
