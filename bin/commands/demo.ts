/**
 * `keepnet demo` (what `npm start` runs): a live stack with traffic flowing through every server while
 * each server is, in turn, crashed, made to exit, hung and fed a poison message. One line per event,
 * then a summary. (The full live terminal view arrives with the demo issue; this is its core.)
 */
import { parseArgs } from 'node:util';
import { runFaultCampaign } from '../../kernel-shim/fault-campaign.js';

export async function demoCommand(args: string[], fail: (msg: string) => never): Promise<void> {
  const { values } = parseArgs({ args, options: { rounds: { type: 'string' }, json: { type: 'boolean' } } });
  const rounds = Number(values.rounds ?? '1');
  if (!Number.isInteger(rounds) || rounds < 1) fail(`--rounds must be a positive integer, got '${values.rounds}'`);
  const t0 = performance.now();
  const stamp = (): string => `[${((performance.now() - t0) / 1000).toFixed(3).padStart(7)}s]`;
  if (!values.json) {
    process.stdout.write(
      'keepnet crash-recovery demo: driver, IP, TCP and UDP servers on their own worker threads, with probe\n' +
        'traffic (each probe carries a 1 KiB pool buffer by descriptor) flowing through every server while\n' +
        'each is crashed, made to exit, hung and poisoned in turn.\n\n',
    );
  }
  const r = await runFaultCampaign({
    count: 16 * rounds,
    onEvent: values.json ? undefined : (line) => process.stdout.write(`${stamp()} ${line}\n`),
  });
  if (values.json) {
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const p = r.probes;
  process.stdout.write(
    `\nsummary\n` +
      `  faults injected        ${r.injected}, repaired ${r.recovered}\n` +
      `  detection (ms)         p50 ${r.detectionMs.p50}  p99 ${r.detectionMs.p99}  max ${r.detectionMs.max}\n` +
      `  recovery (ms)          p50 ${r.recoveryMs.p50}  p99 ${r.recoveryMs.p99}  max ${r.recoveryMs.max}\n` +
      `  poison messages dropped ${r.poisonDropped}\n` +
      `  false suspicions       ${r.falseSuspicions}\n` +
      `  probes                 ${p.sent} sent, ${p.returned} returned, ${p.lost} lost, ${p.corrupted} corrupted, ${p.duplicates} duplicated\n` +
      `  pool buffers in use    ${r.pool.inUseAtEnd} at the end\n`,
  );
}
