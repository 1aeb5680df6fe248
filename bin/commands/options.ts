/**
 * What every command's options have in common: parsing with node:util's parseArgs (an unknown option
 * is a usage error, not a stack trace), the checks of the options several commands share, and the
 * progress line of the benchmarks. A failed check calls `fail` (usage and exit 2, bin/keepnet.ts).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
/** What parseArgs returns for these options (positionals allowed). */
export type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: O }>>;
import { MAX_TCP_INSTANCES } from '../../servers/runtime/topology.js';
import { WARMUP_DEFAULT_S } from '../../bench/warmup.js';
import { MAX_BUSY_POLL_US, validateBusyPollUs } from '../../servers/runtime/stack-memory.js';

export type Fail = (msg: string) => never;

/** parseArgs with positionals allowed; its errors (unknown option, missing value) go to `fail`. */
export function parseOrFail<O extends Options>(args: string[], options: O, fail: Fail): Parsed<O> {
  try {
    return parseArgs({ args, allowPositionals: true, options });
  } catch (e) {
    return fail((e as Error).message);
  }
}

/** A positive number of seconds (default `dflt`). */
export function durationOption(v: string | undefined, fail: Fail, dflt = 3): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isFinite(x) || x <= 0) fail(`--duration must be a positive number, got '${v}'`);
  return x;
}

/** Unmeasured warm-up seconds before a benchmark's rounds, 0..600 (default 2: bench/warmup.ts). */
export function warmupOption(v: string | undefined, fail: Fail): number {
  if (v === undefined) return WARMUP_DEFAULT_S;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || x < 0 || x > 600) fail(`--warmup must be a number of seconds in [0, 600], got '${v}'`);
  return x;
}

/** An integer option `--NAME` in [lo, hi] (default `dflt`); anything else fails with usage. */
export function integerOption(name: string, v: string | undefined, fail: Fail, lo: number, hi: number, dflt: number): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isInteger(x) || x < lo || x > hi) fail(`--${name} must be an integer in [${lo}, ${hi}], got '${v}'`);
  return x;
}

/** Alternating rounds of a benchmark, 1..100 (default 3). */
export function roundsOption(v: string | undefined, fail: Fail): number {
  return integerOption('rounds', v, fail, 1, 100, 3);
}

/** An MTU in [576, 65535] (default `dflt`). */
export function mtuOption(v: string | undefined, fail: Fail, dflt: number): number {
  return integerOption('mtu', v, fail, 576, 65535, dflt);
}

/** The number of flow-sharded tcp instances, 1..MAX_TCP_INSTANCES (default 1). */
export function tcpInstancesOption(v: string | undefined, fail: Fail): number {
  return integerOption('tcp-instances', v, fail, 1, MAX_TCP_INSTANCES, 1);
}

/** --busy-poll US: the stacks' busy poll budget in microseconds (undefined: the stack's own default). */
export function busyPollOption(v: string | undefined, fail: Fail): number | undefined {
  if (v === undefined) return undefined;
  try {
    // The stack's own check decides the range (an empty string would be Number('') = 0).
    return validateBusyPollUs(v.trim() === '' ? NaN : Number(v), 0);
  } catch {
    return fail(`--busy-poll must be a number of microseconds in [0, ${MAX_BUSY_POLL_US}], got '${v}'`);
  }
}

/**
 * The benchmarks' progress on stderr: one rewritten line on a terminal, a line per step otherwise,
 * nothing with --json. `done()` clears the terminal line before the result is printed.
 */
export function benchProgress(json: boolean | undefined): { onProgress: (name: string) => void; done: () => void } {
  const tty = !json && process.stderr.isTTY;
  return {
    onProgress: (name) => {
      if (!json) process.stderr.write(tty ? `\r\x1b[K  measuring: ${name}` : `measuring: ${name}\n`);
    },
    done: () => {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}
