/**
 * Seeded UDP echo traffic, checked: what the echo tests run, on keepnet's dgram (shm-wire-stacks) or on
 * the kernel's (udp-echo-client, inside a peer namespace). Datagram i carries its index and bytes from
 * a seeded generator; every echo must come back byte-exact. A datagram with no echo after `retryMs` is
 * sent again (counted as a retry). Once every datagram has its echo, the run waits up to 10 s for the
 * echoes of resends and of slow originals (unless `awaitLate` is false: a link that drops on purpose),
 * and `lost` counts the sends that never got one: unlike retries, it does not depend on how loaded the
 * machine is. A resend is only a slow echo; a lost datagram is a send without its echo.
 */
import { mulberry32, randInt } from './prng.js';

/** What a run needs of a UDP socket: node:dgram's and keepnet's both fit. */
export interface EchoSocket {
  send(msg: Buffer, port: number, address: string): unknown;
  on(event: 'message', listener: (msg: Buffer) => void): unknown;
  bind(port: number, cb: () => void): unknown;
  close(): unknown;
}

export interface EchoResult {
  sent: number;
  ok: number;
  retries: number;
  lost: number;
  mismatched: number;
  ms: number;
}

export interface EchoOptions {
  count: number;
  seed: number;
  /** Largest datagram (bytes); each is 4..maxSize. */
  maxSize: number;
  /** Datagrams outstanding at once. */
  window: number;
  retryMs: number;
  awaitLate?: boolean;
}

export function seededPayloads(count: number, seed: number, maxSize: number): Buffer[] {
  const rand = mulberry32(seed);
  return Array.from({ length: count }, (_, i) => {
    const b = Buffer.alloc(randInt(rand, 4, maxSize));
    b.writeUInt32BE(i, 0);
    for (let k = 4; k < b.length; k++) b[k] = randInt(rand, 0, 255);
    return b;
  });
}

/** Send the datagrams from `sock` (not yet bound) to host:port and take their echoes; closes `sock`. */
export function runEchoes(sock: EchoSocket, host: string, port: number, o: EchoOptions): Promise<EchoResult> {
  const payloads = seededPayloads(o.count, o.seed, o.maxSize);
  const count = o.count;
  const awaitLate = o.awaitLate ?? true;
  const timers = new Map<number, NodeJS.Timeout>();
  const done = new Uint8Array(count);
  let next = 0;
  let ok = 0;
  let retries = 0;
  let mismatched = 0;
  let sent = 0;
  let received = 0;
  let finishing = false;
  const t0 = Date.now();
  return new Promise<EchoResult>((resolve) => {
    const finish = (): void => {
      if (finishing) return;
      finishing = true;
      for (const t of timers.values()) clearTimeout(t);
      const ms = Date.now() - t0;
      const end = Date.now() + 10_000;
      const check = (): void => {
        if (awaitLate && received < sent && Date.now() < end) return void setTimeout(check, 20);
        sock.close();
        resolve({ sent, ok, retries, lost: Math.max(0, sent - received), mismatched, ms });
      };
      check();
    };
    const send = (i: number): void => {
      sent++;
      sock.send(payloads[i], port, host);
      timers.set(
        i,
        setTimeout(() => {
          if (done[i]) return;
          retries++;
          send(i);
        }, o.retryMs),
      );
    };
    const pump = (): void => {
      while (next < count && timers.size < o.window) send(next++);
      if (ok === count) finish();
    };
    sock.on('message', (msg: Buffer) => {
      if (msg.length < 4) return void mismatched++;
      const i = msg.readUInt32BE(0);
      if (i >= count) return;
      if (!msg.equals(payloads[i])) return void mismatched++;
      received++;
      if (done[i]) return;
      done[i] = 1;
      ok++;
      clearTimeout(timers.get(i));
      timers.delete(i);
      pump();
    });
    sock.bind(0, pump);
  });
}
