/**
 * The TCP services against node:net on loopback (the same code runs on keepnet: test/net/tcp-kernel).
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { deterministicBytes, deterministicSha256, startTcpService } from '../../bin/services/tcp-services.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

t.test('deterministic bytes: stable, the advertised hash matches', async (t) => {
  for (const n of [0, 1, 65535, 65536, 65537, 300_000]) {
    const all = Buffer.concat([...deterministicBytes(n)]);
    t.equal(all.length, n);
    t.equal(sha(all), deterministicSha256(n));
  }
  t.not(deterministicSha256(1000), deterministicSha256(1001));
});

async function get(port: number, path: string, method = 'GET', body?: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

t.test('http: GET /bytes/N, POST /sha256, 404, bad N', async (t) => {
  const server = await startTcpService(net, 'http', 0, '127.0.0.1');
  const port = (server.address() as net.AddressInfo).port;
  const r = await get(port, '/bytes/1000000');
  t.equal(r.status, 200);
  t.equal(r.body.length, 1_000_000);
  t.equal(r.headers['x-content-sha256'], sha(r.body));
  const body = Buffer.from('hello keepnet');
  const p = await get(port, '/sha256', 'POST', body);
  t.equal(p.body.toString().trim(), sha(body));
  t.equal((await get(port, '/nope')).status, 404);
  t.equal((await get(port, '/bytes/99999999999999999999')).status, 400);
  await new Promise((r) => server.close(r));
});

t.test('echo and discard', async (t) => {
  const echo = await startTcpService(net, 'echo', 0, '127.0.0.1');
  const discard = await startTcpService(net, 'discard', 0, '127.0.0.1');
  const data = Buffer.concat([...deterministicBytes(200_000)]);
  const got = await new Promise<Buffer>((resolve, reject) => {
    const c = net.connect((echo.address() as net.AddressInfo).port, '127.0.0.1');
    const parts: Buffer[] = [];
    c.on('data', (d: Buffer) => parts.push(d));
    c.on('end', () => resolve(Buffer.concat(parts)));
    c.on('error', reject);
    c.end(data);
  });
  t.equal(sha(got), sha(data));
  await new Promise<void>((resolve, reject) => {
    const c = net.connect((discard.address() as net.AddressInfo).port, '127.0.0.1');
    let n = 0;
    c.on('data', (d: Buffer) => (n += d.length));
    c.on('close', () => {
      t.equal(n, 0, 'discard answers nothing');
      resolve();
    });
    c.on('error', reject);
    c.end(data, () => setTimeout(() => c.destroy(), 50));
  });
  await new Promise((r) => echo.close(r));
  await new Promise((r) => discard.close(r));
});
