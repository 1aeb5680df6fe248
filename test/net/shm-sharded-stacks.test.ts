/**
 * Flow-sharded TCP (createStack({ tcpInstances: 2 })) between two keepnet stacks on the shared-memory
 * wire: connections both ways spread over both instances of each stack, listeners installed (and
 * closed) on every instance accept from both, every byte echoed back intact; then one instance crashed
 * and made to exit mid-transfer while the other carries on, and every connection on both finishes with
 * all its data. Payloads come from a seeded PRNG.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { Stack, type StackOptions } from '../../kernel-shim/stack.js';
import { createStackPair } from '../../kernel-shim/stack-pair.js';
import { seededBytes } from '../helpers/prng.js';

const ADDR_A = '10.94.0.1';
const ADDR_B = '10.94.0.2';

async function pair(opts: Partial<StackOptions> = {}): Promise<[Stack, Stack]> {
  return createStackPair({ mtu: 1500 }, { address: `${ADDR_A}/24`, tcpInstances: 2, ...opts }, { address: `${ADDR_B}/24`, tcpInstances: 2, ...opts });
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function echoServer(s: Stack, port: number): Promise<{ close(): Promise<void> }> {
  const server = s.net.createServer((sock) => {
    sock.on('error', () => {});
    sock.pipe(sock);
  });
  return new Promise((resolve) =>
    server.listen(port, () => resolve({ close: () => new Promise<void>((r) => server.close(() => r())) })),
  );
}

/** Send `data` through an echo connection; resolves with the SHA-256 of what came back. */
function echo(client: Stack, host: string, port: number, data: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let n = 0;
    const c = client.net.connect(port, host, () => c.end(data));
    c.on('data', (d: Buffer) => {
      h.update(d);
      n += d.length;
    });
    c.on('end', () => (n === data.length ? resolve(h.digest('hex')) : reject(new Error(`echoed ${n} of ${data.length} bytes`))));
    c.on('error', reject);
  });
}

function refused(client: Stack, host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = client.net.connect(port, host, () => resolve('connected'));
    c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

const accepted = (s: Stack, name: 'tcp' | 'tcp1'): number => s.stats().servers[name].protocol.accepted ?? 0;

t.test('two tcp instances per stack: connections both ways over both, listeners on both, data intact', async (t) => {
  const [A, B] = await pair();
  try {
    t.same(Object.keys(A.stats().servers), ['driver', 'ip', 'tcp', 'udp', 'tcp1']);
    t.not(A.stats().servers.tcp.threadId, A.stats().servers.tcp1.threadId, 'each instance on its own thread');
    const sa = await echoServer(A, 7000);
    const sb = await echoServer(B, 7000);
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 16; i++) {
      for (const [client, host] of [[B, ADDR_A], [A, ADDR_B]] as const) {
        const data = seededBytes(32 * 1024 + i * 997, 100 + i);
        jobs.push(echo(client, host, 7000, data).then((got) => void t.equal(got, sha(data), `connection ${i}`)));
      }
    }
    await Promise.all(jobs);
    for (const s of [A, B]) {
      t.ok(s.shardedTcp!.connectsBy.every((n) => n > 0), `active opens on both instances: ${s.shardedTcp!.connectsBy.join(' ')}`);
      t.ok(accepted(s, 'tcp') > 0 && accepted(s, 'tcp1') > 0, `accepted on both instances: ${accepted(s, 'tcp')} ${accepted(s, 'tcp1')}`);
      t.equal(accepted(s, 'tcp') + accepted(s, 'tcp1'), 16);
    }
    // Closing the server closes its listener on every instance: every SYN is refused, whichever
    // instance it lands on.
    await sa.close();
    // A probe through each instance travels the shim's ring behind the UNLISTEN: when it is back, the
    // instance has handled the close.
    await Promise.all([A.probe('tcp'), A.probe('tcp1')]);
    const codes = await Promise.all(Array.from({ length: 12 }, () => refused(B, ADDR_A, 7000)));
    t.same([...new Set(codes)], ['ECONNREFUSED'], 'refused on both instances after close');
    // An explicit local port goes to the instance its tuple hashes to, and connects.
    const data = seededBytes(5000, 3);
    const got = await new Promise<string>((resolve, reject) => {
      const h = createHash('sha256');
      const c = A.net.connect({ port: 7000, host: ADDR_B, localPort: 40001 }, () => c.end(data));
      c.on('data', (d: Buffer) => h.update(d));
      c.on('end', () => resolve(h.digest('hex')));
      c.on('error', reject);
    });
    t.equal(got, sha(data), 'explicit local port');
    await sb.close();
  } finally {
    await Promise.all([A.close(), B.close()]);
  }
});

t.test('one instance crashed and exited mid-transfer: connections on both instances keep all their data', async (t) => {
  const [A, B] = await pair();
  try {
    await echoServer(A, 7000);
    const MB = 1 << 20;
    // Open transfers until each of A's instances holds at least two (the flow key is random: with 8
    // connections all would land on one instance about once in 128 runs).
    const payloads: Buffer[] = [];
    const transfers: Promise<string>[] = [];
    while (payloads.length < 8 || ((accepted(A, 'tcp') < 2 || accepted(A, 'tcp1') < 2) && payloads.length < 40)) {
      const i = payloads.length;
      payloads.push(seededBytes(2 * MB + i * 4099, 500 + i));
      transfers.push(echo(B, ADDR_A, 7000, payloads[i]));
      while (accepted(A, 'tcp') + accepted(A, 'tcp1') < payloads.length) await new Promise((r) => setTimeout(r, 5));
    }
    const settle = Promise.allSettled(transfers);
    t.ok(accepted(A, 'tcp') >= 2 && accepted(A, 'tcp1') >= 2, `connections on both instances: ${accepted(A, 'tcp')} ${accepted(A, 'tcp1')}`);
    const faults: [Stack, 'tcp1', 'crash' | 'exit'][] = [
      [A, 'tcp1', 'crash'],
      [A, 'tcp1', 'exit'],
      [B, 'tcp1', 'crash'],
      [A, 'tcp1', 'crash'],
    ];
    for (const [s, server, kind] of faults) {
      await new Promise((r) => setTimeout(r, 40));
      const before = s.supervisor.incarnation(server);
      s.inject(server, kind);
      while (s.supervisor.incarnation(server) === before) await new Promise((r) => setTimeout(r, 2));
      await s.supervisor.whenServing(server);
    }
    const results = await settle;
    results.forEach((r, i) => {
      t.equal(r.status === 'fulfilled' ? r.value : String((r as PromiseRejectedResult).reason), sha(payloads[i]), `connection ${i}`);
    });
    const st = A.stats().servers;
    t.ok(st.tcp1.restarts.total >= 3, `tcp1 of A restarted ${st.tcp1.restarts.total} times`);
    t.equal(st.tcp.restarts.total, 0, 'instance 0 untouched');
    t.equal(B.stats().servers.tcp.restarts.total, 0);
    // The restarted instance kept its listener: new connections land on both instances again.
    const before = [accepted(A, 'tcp'), accepted(A, 'tcp1')];
    const more: Buffer[] = [];
    const got: string[] = [];
    // Batches of 12 until both instances took some (one batch but once in 2,000 runs).
    while (more.length < 48 && (more.length === 0 || accepted(A, 'tcp1') === before[1] || accepted(A, 'tcp') === before[0])) {
      const batch = Array.from({ length: 12 }, (_, i) => seededBytes(1000 + more.length + i, 900 + more.length + i));
      more.push(...batch);
      got.push(...(await Promise.all(batch.map((p) => echo(B, ADDR_A, 7000, p)))));
    }
    t.same(got, more.map(sha), 'new connections after the restarts');
    t.ok(accepted(A, 'tcp1') > before[1], 'the restarted instance accepts again');
    t.ok(accepted(A, 'tcp') > before[0], 'instance 0 accepts');
  } finally {
    await Promise.all([A.close(), B.close()]);
  }
});

t.test('fault injection and probes name instances; unknown ones are refused', async (t) => {
  const [A, B] = await pair();
  try {
    const r = await A.probe('tcp1');
    t.equal(r.intact, true, 'a probe through tcp1');
    t.throws(() => A.inject('tcp2', 'crash'), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(A.probe('tcp2'), { code: 'ERR_INVALID_ARG_VALUE' });
  } finally {
    await Promise.all([A.close(), B.close()]);
  }
});

t.test('within one stack (loopback and its own address), connections over both instances', async (t) => {
  const [A, B] = await pair();
  try {
    const srv = await echoServer(A, 7100);
    const jobs: Promise<string>[] = [];
    const datas: Buffer[] = [];
    for (let i = 0; i < 16; i++) {
      const data = seededBytes(20000 + i, 700 + i);
      datas.push(data);
      jobs.push(echo(A, i % 2 === 0 ? '127.0.0.1' : ADDR_A, 7100, data));
    }
    t.same(await Promise.all(jobs), datas.map(sha), 'all echoed intact');
    t.ok(A.shardedTcp!.connectsBy.every((n) => n > 0), `active opens on both: ${A.shardedTcp!.connectsBy.join(' ')}`);
    t.ok(accepted(A, 'tcp') > 0 && accepted(A, 'tcp1') > 0, `accepted on both: ${accepted(A, 'tcp')} ${accepted(A, 'tcp1')}`);
    await srv.close();
  } finally {
    await Promise.all([A.close(), B.close()]);
  }
});
