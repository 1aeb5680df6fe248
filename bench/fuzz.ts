/**
 * The long fuzz run (outside CI): `node dist/bench/fuzz.js --frames 1000000 [--seed N] [--json]`.
 * `--record` re-records the seed capture test/corpus/seed.pcap from real traffic first.
 * Exits 1 if a server restarted, a frame is unaccounted for, the pool did not return to its baseline
 * or the stack stopped working. Batches that restarted a server are saved under test/corpus/found/.
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { recordSeedCapture, runFuzz } from '../test/helpers/fuzz.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const root = fileURLToPath(new URL('../../', import.meta.url));
const corpusDir = flag('corpus') ?? join(root, 'test', 'corpus');
const json = args.includes('--json');

if (args.includes('--record')) {
  const n = await recordSeedCapture(join(corpusDir, 'seed.pcap'));
  console.error(`recorded ${n} frames into ${join(corpusDir, 'seed.pcap')}`);
}
const frames = Number(flag('frames') ?? 1_000_000);
const seed = Number(flag('seed') ?? 1);
const report = await runFuzz({ frames, seed, corpusDir, log: (l) => console.error(l) });
const ok =
  Object.values(report.restarts).every((n) => n === 0) &&
  report.accounting.ok &&
  report.pool.after <= report.pool.baseline &&
  report.alive.probe &&
  report.alive.loopbackTcp;
if (json) console.log(JSON.stringify({ ok, ...report }));
else {
  console.log(`${report.generated} frames (${report.written} written, ${report.unsendable} unsendable) in ${report.seconds.toFixed(1)} s: ${report.framesPerSec}/s`);
  console.log(`restarts ${JSON.stringify(report.restarts)}; accounting ${report.accounting.ok ? 'exact' : 'BROKEN'}`);
  for (const [k, [a, b]] of Object.entries(report.accounting.identities)) console.log(`  ${a === b ? 'ok ' : 'BAD'} ${k}: ${a} vs ${b}`);
  console.log(`pool in use: baseline ${report.pool.baseline}, after ${report.pool.after} (settled in ${report.pool.settledMs} ms)`);
  console.log(`alive: probe ${report.alive.probe}, loopback TCP ${report.alive.loopbackTcp}; tcp table ${report.tcpTable.before} -> ${report.tcpTable.after}`);
  console.log(`outcomes ${JSON.stringify(report.accounting.outcomes)}`);
  console.log(ok ? 'PASS' : 'FAIL');
}
process.exit(ok ? 0 : 1);
