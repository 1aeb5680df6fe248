/**
 * Fuzzing a running stack (CI variant; the 1,000,000-frame run is `node dist/bench/fuzz.js`):
 * random frames and frames mutated from a real capture (test/corpus/seed.pcap), written into the
 * stack through the shared-memory wire. No server may restart, every frame must be accounted for by
 * the drop/receive counters layer by layer, the pool must return to its baseline and the stack must
 * still work. Then every saved input of the corpus (test/corpus/found/, inputs that once restarted a
 * server, and test/corpus/interesting/) is replayed as is.
 */
import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack } from '../../kernel-shim/stack.js';
import { ShmWire } from '../../servers/driver/shm-wire.js';
import { account, FUZZ_TARGET, FUZZ_WIRE_ID, loadCorpus, recordSeedCapture, restarts, runFuzz, snapshot } from '../helpers/fuzz.js';
import { RawPeer } from '../helpers/raw-peer.js';

const corpusDir = fileURLToPath(new URL('../../../test/corpus/', import.meta.url));
const FRAMES = Number(process.env.KEEPNET_FUZZ_FRAMES ?? 50_000);

t.test('the seed capture is real traffic and still records', async (t) => {
  t.ok(existsSync(join(corpusDir, 'seed.pcap')), 'test/corpus/seed.pcap is there');
  const dir = mkdtempSync(join(tmpdir(), 'keepnet-seed-'));
  try {
    const n = await recordSeedCapture(join(dir, 'seed.pcap'));
    t.ok(n >= 60, `a fresh capture holds ${n} frames (UDP, fragments, TCP, ICMP, ARP)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

t.test(`${FRAMES} random and mutated frames: no restart, every frame accounted for, no leak`, async (t) => {
  const report = await runFuzz({
    frames: FRAMES,
    seed: Number(process.env.KEEPNET_FUZZ_SEED ?? 20240),
    corpusDir,
    foundDir: join(tmpdir(), `keepnet-fuzz-found-${process.pid}`),
    timeLimitMs: 60_000,
    log: (l) => t.comment(l),
  });
  t.comment(`${report.generated} frames in ${report.seconds.toFixed(1)} s (${report.framesPerSec}/s), by mutation ${JSON.stringify(report.byMutation)}`);
  t.ok(report.generated >= Math.min(FRAMES, 20_000), `at least 20000 frames fuzzed (${report.generated})`);
  t.same(report.restarts, { driver: 0, ip: 0, tcp: 0, udp: 0 }, 'no server restarted');
  t.same(report.deaths, [], 'no server died');
  for (const [k, [a, b]] of Object.entries(report.accounting.identities)) t.equal(a, b, k);
  t.ok(report.pool.after <= report.pool.baseline, `pool back to its baseline (${report.pool.baseline}; ${report.pool.after} after ${report.pool.settledMs} ms)`);
  t.ok(report.alive.probe, 'a probe still goes through every server');
  t.ok(report.alive.loopbackTcp, 'TCP over loopback still works');
  t.comment(`outcomes ${JSON.stringify(report.accounting.outcomes)}`);
});

t.test('the corpus of interesting inputs replays without a restart', async (t) => {
  const dirs = ['found', 'interesting'].map((d) => join(corpusDir, d)).filter((d) => existsSync(d) && readdirSync(d).some((f) => f.endsWith('.pcap')));
  if (dirs.length === 0) {
    t.pass('no saved inputs');
    return;
  }
  const wire = ShmWire.create({ mtu: 1500, id: FUZZ_WIRE_ID });
  const stack = new Stack({ address: `${FUZZ_TARGET}/24`, link: { kind: 'shm', wire, side: 'a' } });
  await stack.start();
  const peer = new RawPeer(wire, { answerArp: true });
  try {
    const base = snapshot(stack);
    let frames = 0;
    for (const d of dirs) {
      const fs = loadCorpus(d);
      frames += fs.length;
      await peer.write(fs);
    }
    await peer.until(() => stack.stats().servers.driver.protocol['rxFrames'] === peer.written, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    t.ok(frames > 0, `${frames} saved frames replayed`);
    t.same(restarts(stack), { driver: 0, ip: 0, tcp: 0, udp: 0 }, 'no server restarted');
    const acc = account(stack, peer.written, base);
    for (const [k, [a, b]] of Object.entries(acc.identities)) t.equal(a, b, k);
  } finally {
    peer.close();
    await stack.close();
  }
});
