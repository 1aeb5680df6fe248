/**
 * node:http requests over a keepnet stack (http.request with createConnection on the stack's net), to
 * the http service of bin/services/tcp-services.ts on port 80: a download checked against the SHA-256
 * the server sends in a header, and an upload the server hashes.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Stack } from '../../kernel-shim/stack.js';

/** GET `path` from `host`:80 through `client`: whether the body matched its hash, its size, the status. */
export function httpGet(client: Stack, host: string, path: string): Promise<{ ok: boolean; bytes: number; status: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: 80, path, createConnection: () => client.net.connect(80, host) as unknown as Socket }, (res) => {
      const h = createHash('sha256');
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        h.update(d);
        bytes += d.length;
      });
      res.on('end', () => resolve({ ok: h.digest('hex') === res.headers['x-content-sha256'], bytes, status: res.statusCode ?? 0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** POST `body` to `host`:80/sha256 through `client`: the hex SHA-256 the server computed. */
export function httpPostSha256(client: Stack, host: string, body: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port: 80, path: '/sha256', method: 'POST', createConnection: () => client.net.connect(80, host) as unknown as Socket },
      (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (s += d));
        res.on('end', () => resolve(s.trim()));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
