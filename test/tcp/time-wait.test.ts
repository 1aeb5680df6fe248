/**
 * TIME_WAIT does not starve a small connection table: when it is full, the TIME_WAIT connection
 * closest to its end gives its slot to the new one (Linux bounds TIME_WAIT with tcp_max_tw_buckets).
 */
import t from 'tap';
import { Stack } from '../../kernel-shim/stack.js';

t.test('40 sequential connections through a table of 8 slots', async (t) => {
  const stack = new Stack({ address: '10.94.0.1/24', tcp: { maxConnections: 8, bufferBytes: 8192 } });
  await stack.start();
  try {
    const server = stack.net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => server.listen(7, () => r()));
    let ok = 0;
    for (let i = 0; i < 40; i++) {
      const got = await new Promise<string>((resolve, reject) => {
        const c = stack.net.connect(7, '127.0.0.1');
        let s = '';
        c.setEncoding('utf8');
        c.on('data', (d: string) => {
          s += d;
          if (s.length >= 6) c.end();
        });
        c.on('close', () => resolve(s));
        c.on('error', reject);
        c.write(`ping${String(i).padStart(2, '0')}`);
      });
      if (got === `ping${String(i).padStart(2, '0')}`) ok++;
    }
    t.equal(ok, 40, 'every connection echoed');
    const tcp = stack.stats().servers.tcp.protocol;
    t.ok((tcp['tw-recycled'] ?? 0) > 0, `TIME_WAIT slots were recycled (${tcp['tw-recycled']})`);
    t.equal(stack.stats().servers.tcp.restarts.total, 0);
    await new Promise((r) => server.close(r));
  } finally {
    await stack.close();
  }
});
