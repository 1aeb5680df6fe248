/**
 * The server side of the request/response benchmarks (`bench rr|crr`, `bench scale`, `bench ab`): a
 * 64-byte reply to every 64-byte request, the same code on keepnet and on node:net.
 */

/** Bytes of a request and of its reply. */
export const MSG = 64;

/** What echo64 uses of a socket (node:net's, or any keepnet build's). */
export interface EchoSocket {
  setNoDelay(noDelay?: boolean): unknown;
  on(event: 'data', listener: (d: Buffer) => void): unknown;
  on(event: 'error', listener: (e: Error) => void): unknown;
  write(b: Buffer): unknown;
  end(b: Buffer): unknown;
}

/** Answer each MSG bytes received with MSG bytes; `closeAfter`: end the connection with the first reply (crr). */
export function echo64(s: EchoSocket, closeAfter: boolean): void {
  s.setNoDelay(true);
  let pending = 0;
  const reply = Buffer.alloc(MSG, 0x72);
  s.on('data', (d: Buffer) => {
    pending += d.length;
    while (pending >= MSG) {
      pending -= MSG;
      if (closeAfter) {
        s.end(reply);
        return;
      }
      s.write(reply);
    }
  });
  s.on('error', () => {});
}
