/**
 * A TCP peer that runs inside the kernel's namespace (`ip netns exec K node tcp-peer.js ...`), using
 * the kernel's TCP through node:net / node:http. Prints one JSON line with what it saw.
 *
 *   get URL CONCURRENCY COUNT     COUNT GETs, CONCURRENCY at a time; each body's SHA-256 must equal its
 *                                 x-content-sha256 header
 *   post URL BYTES SEED           POST BYTES seeded bytes to URL (/sha256): the answer must be their hash
 *   echo HOST PORT BYTES SEED     send BYTES seeded bytes to an echo service, read them back, compare
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { mulberry32 } from './prng.js';

function seeded(n: number, seed: number): Buffer {
  const r = mulberry32(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i += 4) {
    const x = (r() * 4294967296) >>> 0;
    b[i] = x;
    if (i + 1 < n) b[i + 1] = x >>> 8;
    if (i + 2 < n) b[i + 2] = x >>> 16;
    if (i + 3 < n) b[i + 3] = x >>> 24;
  }
  return b;
}

const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

function getOne(url: string): Promise<{ ok: boolean; bytes: number; error?: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent }, (res) => {
      const h = createHash('sha256');
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        h.update(d);
        bytes += d.length;
      });
      res.on('end', () => resolve({ ok: h.digest('hex') === res.headers['x-content-sha256'], bytes }));
      res.on('error', (e) => resolve({ ok: false, bytes, error: String((e as NodeJS.ErrnoException).code ?? e) }));
    });
    req.on('error', (e) => resolve({ ok: false, bytes: 0, error: String((e as NodeJS.ErrnoException).code ?? e) }));
  });
}

async function get(url: string, concurrency: number, count: number): Promise<void> {
  const t0 = Date.now();
  let next = 0;
  let ok = 0;
  let bad = 0;
  let bytes = 0;
  const errors: Record<string, number> = {};
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        const r = await getOne(url);
        bytes += r.bytes;
        if (r.ok) ok++;
        else {
          bad++;
          if (r.error) errors[r.error] = (errors[r.error] ?? 0) + 1;
        }
      }
    }),
  );
  console.log(JSON.stringify({ ok, bad, bytes, errors, ms: Date.now() - t0 }));
}

async function post(url: string, n: number, seed: number): Promise<void> {
  const body = seeded(n, seed);
  const want = createHash('sha256').update(body).digest('hex');
  const t0 = Date.now();
  const got = await new Promise<string>((resolve) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-length': String(n) } }, (res) => {
      let s = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (s += d));
      res.on('end', () => resolve(s.trim()));
    });
    req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
    req.end(body);
  });
  console.log(JSON.stringify({ ok: got === want, got, want, ms: Date.now() - t0 }));
}

async function echo(host: string, port: number, n: number, seed: number): Promise<void> {
  const data = seeded(n, seed);
  const t0 = Date.now();
  const r = await new Promise<{ ok: boolean; received: number; error?: string }>((resolve) => {
    const s = net.connect(port, host);
    const h = createHash('sha256');
    let received = 0;
    s.on('data', (d: Buffer) => {
      h.update(d);
      received += d.length;
      if (received >= n) s.end();
    });
    s.on('close', () => resolve({ ok: received === n && h.digest('hex') === createHash('sha256').update(data).digest('hex'), received }));
    s.on('error', (e) => resolve({ ok: false, received, error: String((e as NodeJS.ErrnoException).code) }));
    s.write(data);
  });
  console.log(JSON.stringify({ ...r, ms: Date.now() - t0 }));
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'get') await get(args[0], Number(args[1]), Number(args[2]));
else if (mode === 'post') await post(args[0], Number(args[1]), Number(args[2]));
else if (mode === 'echo') await echo(args[0], Number(args[1]), Number(args[2]), Number(args[3]));
else {
  console.error('usage: tcp-peer get URL CONC COUNT | post URL BYTES SEED | echo HOST PORT BYTES SEED');
  process.exit(2);
}
