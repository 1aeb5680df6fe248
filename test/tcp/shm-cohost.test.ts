/**
 * A co-hosted pair (createStackPair's cohost option): two stacks on the shared-memory wire whose eight
 * servers run on one worker thread under one supervisor. node:http on both ends, byte-exact; faults of
 * every kind injected into either stack's servers mid-transfer (the thread's death is both stacks'
 * servers' death: both recover, no connection breaks, no buffer leaks); each stack sees its own events
 * and counters; closing one leaves the other serving; bad options are refused.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import type { Stack } from '../../kernel-shim/stack.js';
import { createStackPair, type PairOptions } from '../../kernel-shim/stack-pair.js';
import { startTcpService, type NetLike } from '../../bin/services/tcp-services.js';
import { SERVER_NAMES } from '../../servers/runtime/topology.js';
import type { FaultKind } from '../../servers/runtime/supervisor.js';
import { seededBytes } from '../helpers/prng.js';
import { httpGet, httpPostSha256 } from '../helpers/http-client.js';

const MB = 1 << 20;

async function cohosted(): Promise<[Stack, Stack]> {
  const [A, B] = await createStackPair({ mtu: 9000, checksumOffload: true }, { address: '10.93.0.1/24' }, { address: '10.93.0.2/24' }, { cohost: true });
  await startTcpService(A.net as unknown as NetLike, 'http');
  return [A, B];
}

const get = (client: Stack, path: string): ReturnType<typeof httpGet> => httpGet(client, '10.93.0.1', path);
const post = (client: Stack, body: Buffer): Promise<string> => httpPostSha256(client, '10.93.0.1', body);

t.test('one thread runs both stacks: http both ways byte-exact, each stack with its own counters', async (t) => {
  const [A, B] = await cohosted();
  try {
    const r = await get(B, `/bytes/${8 * MB}`);
    t.same(r, { ok: true, bytes: 8 * MB, status: 200 });
    const up = seededBytes(4 * MB, 5);
    t.equal(await post(B, up), createHash('sha256').update(up).digest('hex'));
    const sa = A.stats().servers;
    const sb = B.stats().servers;
    const threads = new Set([...SERVER_NAMES.map((n) => sa[n].threadId), ...SERVER_NAMES.map((n) => sb[n].threadId)]);
    t.equal(threads.size, 1, 'all eight servers on one thread');
    t.ok(sa.driver.protocol.txFrames > 100 && sb.driver.protocol.rxFrames > 100, 'frames crossed the wire, counted by each side');
    t.not(sa.tcp.counters.handled, sb.tcp.counters.handled, "each stack's tcp has its own counters");
    t.equal(A.stats().pool.inUse > 0, true, 'A has its own pool');
  } finally {
    await Promise.all([A.close(), B.close()]);
  }
});

t.test('faults in either stack mid-transfer: both stacks restart together, nothing breaks or leaks', async (t) => {
  const [A, B] = await cohosted();
  const deaths = { A: [] as string[], B: [] as string[] };
  A.on('death', (e: { server: string }) => deaths.A.push(e.server));
  B.on('death', (e: { server: string }) => deaths.B.push(e.server));
  const poison = { A: 0, B: 0 };
  A.on('poison', () => poison.A++);
  B.on('poison', () => poison.B++);
  const idle = { A: A.stats().pool.inUse, B: B.stats().pool.inUse };
  try {
    const down = get(B, `/bytes/${16 * MB}`);
    const up = seededBytes(6 * MB, 3);
    const upDone = post(B, up);
    const faults: [Stack, string, FaultKind][] = [
      [A, 'tcp', 'crash'],
      [B, 'tcp', 'exit'],
      [B, 'driver', 'crash'],
      [A, 'ip', 'hang'],
      [B, 'udp', 'crash'],
    ];
    for (const [s, server, kind] of faults) {
      await new Promise((r) => setTimeout(r, 40));
      const before = s.supervisor.incarnation('tcp', s.memory);
      s.inject(server as 'tcp', kind);
      while (s.supervisor.incarnation('tcp', s.memory) === before) await new Promise((r) => setTimeout(r, 2));
      await s.supervisor.whenServing('tcp', s.memory);
    }
    t.same(await down, { ok: true, bytes: 16 * MB, status: 200 }, 'download byte-exact');
    t.equal(await upDone, createHash('sha256').update(up).digest('hex'), 'upload byte-exact');
    // A poison record in B's tcp: B's alone, dropped after its retries; A hears nothing of it.
    B.inject('tcp', 'poison');
    const until = Date.now() + 10_000;
    while (poison.B === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    t.same(poison, { A: 0, B: 1 }, 'the poison event reaches the stack whose ring held the record');
    t.equal(B.stats().poisonDropped, 1);
    t.equal(A.stats().poisonDropped, 0);
    await B.supervisor.whenServing('tcp', B.memory);
    t.same(await get(B, '/bytes/100000'), { ok: true, bytes: 100000, status: 200 }, 'serving after the poison');
    const ra = A.stats().servers.tcp.restarts.total;
    const rb = B.stats().servers.tcp.restarts.total;
    t.equal(ra, rb, 'one thread: every death is both stacks');
    t.ok(ra >= 5, `restarted at least once per fault (${ra})`);
    // Each death is reported once per server to each stack: its own four servers, not the other's.
    t.equal(deaths.A.length, deaths.B.length);
    t.equal(deaths.A.length, 4 * ra, "each stack hears of its own four servers' deaths");
    // Buffers: back to what an idle pair holds (receive slots), give or take frames still in flight.
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline && (A.stats().pool.inUse > idle.A || B.stats().pool.inUse > idle.B)) await new Promise((r) => setTimeout(r, 10));
    t.ok(A.stats().pool.inUse <= idle.A && B.stats().pool.inUse <= idle.B, `no buffer leaked (A ${A.stats().pool.inUse}/${idle.A}, B ${B.stats().pool.inUse}/${idle.B})`);
  } finally {
    await Promise.all([A.close(), B.close()]);
  }
});

t.test('closing one stack of the pair leaves the other serving until it closes too', async (t) => {
  const [A, B] = await cohosted();
  await A.close();
  const p = await B.probe('tcp');
  t.equal(p.intact, true, "B's servers still run on the thread after A closed");
  const d = await B.probe('driver');
  t.equal(d.intact, true);
  await B.close();
  t.pass('both closed (a thread left running would keep this test process alive)');
});

t.test('bad options are refused before anything starts', async (t) => {
  const wire = { mtu: 1500 };
  await t.rejects(
    createStackPair(wire, { address: '10.93.1.1/24', placement: 'dedicated' }, { address: '10.93.1.2/24' }, { cohost: true }),
    { code: 'ERR_INVALID_ARG_VALUE' },
  );
  await t.rejects(
    createStackPair(wire, { address: '10.93.1.1/24' }, { address: '10.93.1.2/24' }, { cohost: 'yes' } as unknown as PairOptions),
    { code: 'ERR_INVALID_ARG_TYPE' },
  );
  await t.rejects(createStackPair(wire, { address: '10.93.1.1/24' }, { address: '10.93.1.2/24' }, null as unknown as PairOptions), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
});
