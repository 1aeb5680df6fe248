/**
 * TCP services for `keepnet tap --serve`: echo (RFC 862, port 7), discard (RFC 863, port 9) and http
 * (port 80). They are ordinary applications written against Node's `net` API, so the same code runs on
 * keepnet (`stack.net`) and on the kernel (`node:net`), which is how the tests compare the two.
 *
 * http runs node:http unchanged on top of the given `net`: each accepted socket is handed to an
 * http.Server with `emit('connection', socket)`, the way Node itself feeds a server.
 *   GET /bytes/N     N deterministic bytes (deterministicBytes), header x-content-sha256: <hex>
 *   POST /sha256     the hex SHA-256 of the request body
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { Server, Socket } from 'node:net';

export const TCP_SERVICES = ['echo', 'discard', 'http'] as const;
export type TcpService = (typeof TCP_SERVICES)[number];
export const SERVICE_PORTS: Readonly<Record<TcpService, number>> = { echo: 7, discard: 9, http: 80 };

/** The part of Node's `net` module the services need (node:net and stack.net both have it). */
export interface NetLike {
  createServer(listener?: (socket: Socket) => void): Server;
}

const CHUNK = 1 << 16;
const PATTERN = (() => {
  // A fixed pseudo-random block (xorshift32 from a fixed seed).
  const b = Buffer.alloc(CHUNK);
  let x = 0x2545f491;
  for (let i = 0; i < CHUNK; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 255;
  }
  return b;
})();

/** Chunk k (64 KiB) of the deterministic stream: the pattern XOR k's low byte (reused buffer: copy it). */
function chunk(k: number, out: Buffer): Buffer {
  const key = (k * 167 + 13) & 255;
  for (let i = 0; i < CHUNK; i++) out[i] = PATTERN[i] ^ key;
  return out;
}

/** The first n bytes of the deterministic stream, chunk by chunk. */
export function* deterministicBytes(n: number): Generator<Buffer> {
  const buf = Buffer.allocUnsafe(CHUNK);
  for (let k = 0, left = n; left > 0; k++, left -= CHUNK) {
    const c = chunk(k, buf);
    yield left >= CHUNK ? Buffer.from(c) : Buffer.from(c.subarray(0, left));
  }
}

const shaCache = new Map<number, string>();
/** SHA-256 (hex) of the first n deterministic bytes. */
export function deterministicSha256(n: number): string {
  const hit = shaCache.get(n);
  if (hit) return hit;
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(CHUNK);
  for (let k = 0, left = n; left > 0; k++, left -= CHUNK) {
    const c = chunk(k, buf);
    h.update(left >= CHUNK ? c : c.subarray(0, left));
  }
  const hex = h.digest('hex');
  if (shaCache.size > 64) shaCache.clear();
  shaCache.set(n, hex);
  return hex;
}

/** Largest body GET /bytes/N serves (16 GiB). */
export const MAX_BYTES = 16 * 2 ** 30;

export function httpHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = req.url ?? '/';
  const m = /^\/bytes\/(\d+)$/.exec(url);
  if (req.method === 'GET' && m) {
    const n = Number(m[1]);
    if (!Number.isSafeInteger(n) || n > MAX_BYTES) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`N must be at most ${MAX_BYTES}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n), 'x-content-sha256': deterministicSha256(n) });
    const it = deterministicBytes(n);
    const pump = (): void => {
      for (;;) {
        const next = it.next();
        if (next.done) return void res.end();
        if (!res.write(next.value)) return void res.once('drain', pump);
      }
    };
    pump();
    return;
  }
  if (req.method === 'POST' && url === '/sha256') {
    const h = createHash('sha256');
    req.on('data', (d: Buffer) => h.update(d));
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(h.digest('hex') + '\n'));
    req.on('error', () => res.destroy());
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /bytes/N or POST /sha256\n');
}

/** Start one service on `net` at `port` (default: its well-known port); resolves once listening. */
export function startTcpService(net: NetLike, service: TcpService, port = SERVICE_PORTS[service], host = '0.0.0.0'): Promise<Server> {
  let server: Server;
  switch (service) {
    case 'echo':
      server = net.createServer((s) => {
        s.on('error', () => {});
        s.pipe(s);
      });
      break;
    case 'discard':
      server = net.createServer((s) => {
        s.on('error', () => {});
        s.resume();
      });
      break;
    case 'http': {
      const h = http.createServer(httpHandler);
      h.keepAliveTimeout = 5000;
      server = net.createServer((s) => {
        s.on('error', () => {});
        h.emit('connection', s);
      });
      server.on('close', () => h.close());
      break;
    }
  }
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
