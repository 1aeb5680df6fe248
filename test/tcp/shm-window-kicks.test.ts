/**
 * The shim asks the tcp server for a window update after a read only when the peer may need one
 * (tcp-shm-channel.ts read(): within half a buffer of the advertised edge, or an ACK owed to this read).
 * Between two stacks on the shared-memory wire: a bulk transfer arrives intact although most reads
 * wake nobody, and a Nagle-held second write is still released by the ACK the first read owes, not by
 * the delayed-ACK timer.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { createStackPair } from '../../kernel-shim/stack-pair.js';
import type { Stack } from '../../kernel-shim/stack.js';
import { seededBytes } from '../helpers/prng.js';

const counter = (s: Stack, name: string): number => s.stats().servers.tcp.protocol[name] ?? 0;

t.test('bulk: the data arrives intact, and most reads wake nobody', async (t) => {
  const [A, B] = await createStackPair({ mtu: 65535, checksumOffload: true }, { address: '10.93.0.1/24' }, { address: '10.93.0.2/24' });
  t.teardown(async () => {
    await Promise.allSettled([A.close(), B.close()]);
  });
  const data = seededBytes(24 << 20, 7);
  let reads = 0;
  const h = createHash('sha256');
  let got = 0;
  await new Promise<void>((resolve, reject) => {
    const server = A.net.createServer((s) => {
      s.on('data', (d: Buffer) => {
        reads++;
        h.update(d);
        got += d.length;
      });
      s.on('end', () => resolve());
      s.on('error', reject);
    });
    server.listen(9100, '10.93.0.1', () => {
      const c = B.net.connect(9100, '10.93.0.1') as unknown as Socket;
      c.on('error', reject);
      c.end(data);
    });
  });
  t.equal(got, data.length, 'every byte arrived');
  t.equal(h.digest('hex'), createHash('sha256').update(data).digest('hex'), 'intact');
  const { windowKicks, windowKicksSkipped } = A.tcpChannel.stats;
  t.ok(reads > 50, `the receiver read in many pieces (${reads})`);
  t.equal(counter(B, 'tx-failed'), 0, 'the sender always had a buffer for its segments (4 MiB windows need many)');
  t.ok(windowKicksSkipped > windowKicks, `reads that asked for a window update: ${windowKicks}, that did not: ${windowKicksSkipped}`);
});

t.test('Nagle: the ACK a read owes is sent at the read, not on the delayed-ACK timer', async (t) => {
  const [A, B] = await createStackPair({ mtu: 1500 }, { address: '10.93.1.1/24' }, { address: '10.93.1.2/24' });
  t.teardown(async () => {
    await Promise.allSettled([A.close(), B.close()]);
  });
  const FIRST = 3000;
  const ROUNDS = 12;
  const server = A.net.createServer((s) => {
    s.on('error', () => {});
    // One byte back for the first FIRST bytes, then for every 20-byte request.
    let have = 0;
    let need = FIRST;
    s.on('data', (d: Buffer) => {
      have += d.length;
      while (have >= need) {
        have -= need;
        need = 20;
        s.write('k');
      }
    });
  });
  await new Promise<void>((r) => server.listen(9101, '10.93.1.1', () => r()));
  const c = B.net.connect(9101, '10.93.1.1') as unknown as Socket;
  c.on('error', () => {});
  await once(c, 'connect');
  // Full-sized segments first, so the receiver knows the sender's segment size and takes a 10-byte one
  // for a short (pushed) segment.
  c.write(Buffer.alloc(FIRST, 0));
  await once(c, 'data');
  const timers0 = counter(A, 'timers');
  for (let i = 0; i < ROUNDS; i++) {
    // Nagle stays on: once the first half has left, the second waits for its ACK.
    const tx0 = counter(B, 'tx');
    c.write(Buffer.alloc(10, 1));
    for (let spin = 0; counter(B, 'tx') === tx0 && spin < 1e6; spin++) await new Promise((r) => setImmediate(r));
    c.write(Buffer.alloc(10, 2));
    await once(c, 'data');
  }
  const timers = counter(A, 'timers') - timers0;
  t.ok(timers < ROUNDS / 2, `the receiver's timers fired ${timers} times in ${ROUNDS} exchanges`);
  c.destroy();
});
