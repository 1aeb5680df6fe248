/**
 * TCP between two keepnet stacks on the shared-memory wire (no root): node:http unchanged on both
 * ends (server on A through stack.net.createServer, client on B through http.request's
 * createConnection), transfers verified by SHA-256, through the driver's seeded fault layer, and with
 * the tcp servers of both stacks killed mid-transfer.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { Stack, type StackOptions } from '../../kernel-shim/stack.js';
import { createStackPair } from '../../kernel-shim/stack-pair.js';
import { startTcpService, type NetLike } from '../../bin/services/tcp-services.js';
import { seededBytes } from '../helpers/prng.js';
import { httpGet, httpPostSha256 } from '../helpers/http-client.js';

const MB = 1 << 20;

async function pair(a: Partial<StackOptions> = {}, b: Partial<StackOptions> = {}): Promise<[Stack, Stack]> {
  const [A, B] = await createStackPair({ mtu: 1500 }, { address: '10.91.0.1/24', ...a }, { address: '10.91.0.2/24', ...b });
  await startTcpService(A.net as unknown as NetLike, 'http');
  await startTcpService(A.net as unknown as NetLike, 'echo');
  return [A, B];
}

const get = (client: Stack, path: string): ReturnType<typeof httpGet> => httpGet(client, '10.91.0.1', path);
const post = (client: Stack, body: Buffer): Promise<string> => httpPostSha256(client, '10.91.0.1', body);

t.test('node:http over keepnet on both ends: download and upload byte-exact', async (t) => {
  const [A, B] = await pair();
  try {
    const r = await get(B, `/bytes/${8 * MB}`);
    t.same(r, { ok: true, bytes: 8 * MB, status: 200 });
    const up = seededBytes(4 * MB, 5);
    t.equal(await post(B, up), createHash('sha256').update(up).digest('hex'));
    const many = await Promise.all(Array.from({ length: 20 }, () => get(B, '/bytes/100000')));
    t.ok(many.every((m) => m.ok && m.bytes === 100000), '20 concurrent requests');
  } finally {
    await Promise.all([A.close(), B.close()]);
  }
});

t.test('through loss, duplication, reordering and corruption (driver fault layer)', async (t) => {
  const spec = { loss: 0.03, duplicate: 0.02, corrupt: 0.01, corruptMinOffset: 34, delayUs: 300, jitterUs: 300, reorder: 0.03, reorderGapUs: 1000 };
  const [A, B] = await pair({ faults: { seed: 21, tx: spec, rx: spec } });
  try {
    const r = await get(B, `/bytes/${MB}`);
    t.same(r, { ok: true, bytes: MB, status: 200 });
    const up = seededBytes(MB, 9);
    t.equal(await post(B, up), createHash('sha256').update(up).digest('hex'));
  } finally {
    await Promise.all([A.close(), B.close()]);
  }
});

t.test('tcp servers of both stacks killed mid-transfer: byte-exact, no error', async (t) => {
  const [A, B] = await pair();
  try {
    const down = get(B, `/bytes/${24 * MB}`);
    const up = seededBytes(8 * MB, 3);
    const upDone = post(B, up);
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 60));
      const s = i % 2 === 0 ? A : B;
      const before = s.supervisor.incarnation('tcp');
      s.inject('tcp', i % 3 === 2 ? 'exit' : 'crash');
      while (s.supervisor.incarnation('tcp') === before) await new Promise((r) => setTimeout(r, 2));
      await s.supervisor.whenServing('tcp');
    }
    t.same(await down, { ok: true, bytes: 24 * MB, status: 200 });
    t.equal(await upDone, createHash('sha256').update(up).digest('hex'));
    t.ok(A.stats().servers.tcp.restarts.total >= 4 && B.stats().servers.tcp.restarts.total >= 4);
  } finally {
    await Promise.all([A.close(), B.close()]);
  }
});
