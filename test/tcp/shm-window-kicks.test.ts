/**
 * The shim asks the tcp server for a window update after a read only when the peer may need one
 * (tcp-shm-channel.ts read(): within half a buffer of the advertised edge, or an ACK owed to this read).
 * Between two stacks on the shared-memory wire: a bulk transfer arrives intact although most reads
 * wake nobody; a window closed by a busy application reopens through a read that kicks; and a
 * Nagle-held second write is still released by the ACK the first read owes, not by the delayed-ACK
 * timer.
 */
import t from 'tap';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { createStackPair } from '../../kernel-shim/stack-pair.js';
import type { Stack } from '../../kernel-shim/stack.js';
import { seededBytes } from '../helpers/prng.js';
import { sendAndCollect } from '../helpers/transfer.js';

const counter = (s: Stack, name: string): number => s.stats().servers.tcp.protocol[name] ?? 0;

t.test('bulk: the data arrives intact, and most reads wake nobody', async (t) => {
  const [A, B] = await createStackPair({ mtu: 65535, checksumOffload: true }, { address: '10.93.0.1/24' }, { address: '10.93.0.2/24' });
  t.teardown(async () => {
    await Promise.allSettled([A.close(), B.close()]);
  });
  const data = seededBytes(8 << 20, 7);
  const chunks = await sendAndCollect(A, B, '10.93.0.1', 9100, data);
  t.ok(Buffer.concat(chunks).equals(data), 'every byte arrived, in order');
  const { windowKicks, windowKicksSkipped } = A.tcpChannel.stats;
  t.ok(chunks.length > 50, `the receiver read in many pieces (${chunks.length})`);
  t.equal(counter(B, 'tx-failed'), 0, 'the sender always had a buffer for its segments (4 MiB windows need many)');
  t.ok(windowKicksSkipped > windowKicks, `reads that asked for a window update: ${windowKicks}, that did not: ${windowKicksSkipped}`);
});

t.test('a full window reopens when the application reads again, through a read that kicks', async (t) => {
  const [A, B] = await createStackPair({ mtu: 65535, checksumOffload: true }, { address: '10.93.2.1/24' }, { address: '10.93.2.2/24' });
  t.teardown(async () => {
    await Promise.allSettled([A.close(), B.close()]);
  });
  // More than the receiver's 4 MiB buffer and the sender's 4 MiB buffer together.
  const data = seededBytes(9 << 20, 8);
  const chunks: Buffer[] = [];
  let reader: Socket | null = null;
  const ended = new Promise<void>((resolve, reject) => {
    const server = A.net.createServer((s) => {
      reader = s as unknown as Socket;
      s.pause(); // the application is busy: nothing is read until the window has closed
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => resolve());
      s.on('error', reject);
    });
    server.listen(9102, '10.93.2.1', () => {
      const c = B.net.connect(9102, '10.93.2.1') as unknown as Socket;
      c.on('error', reject);
      c.end(data);
    });
  });
  // Wait until the receive buffer is full (less than a segment of room): the window is closed.
  const BUF = 4 << 20;
  const unread = (): number => {
    const conns = (A.tcpChannel as unknown as { conns: Map<number, { readable: number }> }).conns;
    let n = 0;
    for (const c of conns.values()) n = Math.max(n, c.readable);
    return n;
  };
  for (let i = 0; i < 1e6 && unread() < BUF - 65535; i++) await new Promise((r) => setImmediate(r));
  t.ok(unread() >= BUF - 65535, `the window closed: ${unread()} bytes unread`);
  const kicks0 = A.tcpChannel.stats.windowKicks;
  (reader as unknown as Socket).resume();
  await ended;
  t.ok(Buffer.concat(chunks).equals(data), 'every byte arrived, in order');
  t.ok(A.tcpChannel.stats.windowKicks > kicks0, `reads near the closed window's edge asked for an update (${A.tcpChannel.stats.windowKicks - kicks0})`);
});

t.test('Nagle: the ACK a read owes is sent at the read, not on the delayed-ACK timer', async (t) => {
  const [A, B] = await createStackPair({ mtu: 1500 }, { address: '10.93.1.1/24' }, { address: '10.93.1.2/24' });
  t.teardown(async () => {
    await Promise.allSettled([A.close(), B.close()]);
  });
  const FIRST = 3000;
  const ROUNDS = 12;
  let firstHalf: (() => void) | null = null;
  const server = A.net.createServer((s) => {
    s.on('error', () => {});
    // One byte back for the first FIRST bytes, then for every 20-byte request.
    let have = 0;
    let need = FIRST;
    s.on('data', (d: Buffer) => {
      have += d.length;
      if (need === 20 && have === 10) firstHalf?.();
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
    // Nagle stays on: once the first half has arrived (and been read), the second waits for its ACK.
    const arrived = new Promise<void>((r) => (firstHalf = r));
    c.write(Buffer.alloc(10, 1));
    await arrived;
    c.write(Buffer.alloc(10, 2));
    await once(c, 'data');
  }
  const timers = counter(A, 'timers') - timers0;
  t.ok(timers < ROUNDS / 2, `the receiver's timers fired ${timers} times in ${ROUNDS} exchanges`);
  c.destroy();
});
