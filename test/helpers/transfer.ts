/**
 * One connection from stack B to a server on stack A: B writes `data` and ends; resolves with the
 * chunks A's server read, as they came (a cheap reader: no hashing while reading, so that it keeps up
 * as an application does).
 */
import type { Socket } from 'node:net';
import type { Stack } from '../../kernel-shim/stack.js';

export function sendAndCollect(A: Stack, B: Stack, address: string, port: number, data: Buffer): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  return new Promise<Buffer[]>((resolve, reject) => {
    const server = A.net.createServer((s) => {
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => {
        server.close();
        resolve(chunks);
      });
      s.on('error', reject);
    });
    server.listen(port, address, () => {
      const c = B.net.connect(port, address) as unknown as Socket;
      c.on('error', reject);
      c.end(data);
    });
  });
}
