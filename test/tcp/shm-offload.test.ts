/**
 * Two stacks on the shared-memory wire with checksum offload and a 64 KiB MTU (the `bench` setup):
 * the first connection's SYN goes out while ARP resolves the peer, and must keep its offload flag
 * (it was once sent without it, so the peer checked a checksum nobody had computed, dropped the SYN,
 * and every first connection waited for a 1 s SYN retransmission); a bulk transfer at odd offsets
 * arrives intact through the alignment-preserving copies (tcp emit, wire pad, receive).
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { Stack } from '../../kernel-shim/stack.js';
import { ShmWire } from '../../servers/driver/shm-wire.js';

t.test('offload + 64 KiB MTU: no checksum drops, bulk bytes intact', async (t) => {
  const wire = ShmWire.create({ mtu: 65535, checksumOffload: true });
  const A = new Stack({ address: '10.93.0.1/24', link: { kind: 'shm', wire, side: 'a' }, placement: 'shared' });
  const B = new Stack({ address: '10.93.0.2/24', link: { kind: 'shm', wire, side: 'b' }, placement: 'shared' });
  await Promise.all([A.start(), B.start()]);
  t.teardown(() => Promise.allSettled([A.close(), B.close()]).then(() => {}));
  const data = Buffer.alloc(3 * (1 << 20) + 12345);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >>> 11)) & 255;
  const want = createHash('sha256').update(data).digest('hex');
  const got = await new Promise<string>((resolve, reject) => {
    const server = A.net.createServer((s) => {
      const h = createHash('sha256');
      s.on('data', (d: Buffer) => h.update(d));
      s.on('end', () => {
        resolve(h.digest('hex'));
        s.end();
        server.close();
      });
      s.on('error', reject);
    });
    server.listen(7300, '10.93.0.1', () => {
      const c = B.net.connect(7300, '10.93.0.1', () => {
        // Odd-sized writes, so segments start at every alignment.
        let off = 0;
        for (const n of [1, 7, 4093, 65537, 333333]) {
          c.write(data.subarray(off, off + n));
          off += n;
        }
        c.end(data.subarray(off));
      });
      c.on('error', reject);
    });
  });
  t.equal(got, want, 'every byte arrived, in order');
  for (const [name, s] of [['A', A], ['B', B]] as const) {
    const tcp = s.stats().servers.tcp.protocol;
    t.equal(tcp['drop:bad-checksum'] ?? 0, 0, `${name}: no segment dropped for a bad checksum`);
  }
});
