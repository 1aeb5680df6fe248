/**
 * No false suspicion under load: 10 s of heavy allocation on both cores (two threads churning garbage
 * and growing old-generation heaps, which forces major GCs), with probe traffic through every server,
 * must not get a single healthy server suspected, let alone restarted. This test measures real
 * scheduling on this machine, so it runs in real time.
 */
import t from 'tap';
import { Worker } from 'node:worker_threads';
import { Stack } from '../../kernel-shim/stack.js';
import { SERVER_NAMES } from '../../servers/runtime/topology.js';

const ALLOCATOR = `
const { workerData, parentPort } = require('node:worker_threads');
const end = Date.now() + workerData.ms;
let keep = [];
let n = 0;
while (Date.now() < end) {
  const junk = [];
  for (let i = 0; i < 2000; i++) junk.push({ i, s: 'x'.repeat(i & 63), a: new Array(i & 15).fill(i) });
  keep.push(junk);
  if (keep.length > 200) keep = keep.slice(100);
  n++;
}
parentPort.postMessage(n);
`;

t.test('10 s of heavy allocation on both cores: no false suspicion', async (t) => {
  const s = new Stack();
  await s.start();
  let suspects = 0;
  let hangs = 0;
  let deaths = 0;
  s.on('suspect', () => suspects++);
  s.on('hang', () => hangs++);
  s.on('death', () => deaths++);
  const ms = 10_000;
  const allocators = [0, 1].map(() => new Worker(ALLOCATOR, { eval: true, workerData: { ms } }));
  const done = allocators.map((w) => new Promise<number>((r) => w.once('message', r)));
  let running = true;
  let probes = 0;
  const loops = SERVER_NAMES.map(async (server) => {
    while (running) {
      const r = await s.probe(server, 512, 30_000);
      if (r.intact) probes++;
    }
  });
  const rounds = await Promise.all(done);
  running = false;
  await Promise.all(loops);
  await Promise.all(allocators.map((w) => w.terminate()));
  t.comment(`allocation rounds ${rounds.join(', ')}; probes ${probes}; suspicions ${suspects}`);
  t.ok(probes > 0, 'traffic flowed throughout');
  t.equal(hangs, 0, 'no server was declared hung');
  t.equal(deaths, 0, 'no server was restarted');
  t.equal(suspects, 0, 'no server was even suspected');
  await s.close();
});
