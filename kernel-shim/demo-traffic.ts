/**
 * Real traffic for the demo and the fault campaign: two keepnet stacks joined by the shared-memory
 * wire (no root), A the server side and B the client side, every byte verified.
 *
 *   - HTTP (node:http unchanged on both ends, over keepnet): `httpClients` concurrent clients on B, each
 *     doing GET /bytes/N (N from a seeded PRNG, log-uniform in [minBody, maxBody]) verified against the
 *     x-content-sha256 header and its length, and one request in four a POST /sha256 upload whose
 *     answer must be the SHA-256 of what was sent. Half the clients keep their connection alive
 *     (an http.Agent with keepAlive), the other half open a fresh connection for every request, so
 *     both connection set-up/tear-down and long keep-alive connections meet the faults.
 *   - Bulk echo: `bulkConnections` long-lived TCP connections to A's echo service (port 7) that stream
 *     a deterministic pattern and verify every echoed byte in order; they stay open for the whole run,
 *     so each spans many faults.
 *   - UDP: `udpInFlight` datagrams kept in flight from B to A's UDP echo socket, each carrying a
 *     sequence number and a pattern that is checked when it comes back. UDP is unreliable: a datagram
 *     that does not come back within `udpTimeoutMs` (a driver or ip fault may drop it) is counted lost
 *     and the slot sends the next one; that is no failure.
 *
 * What counts as a failure (and is recorded with its error, its time and the faults around it, never
 * retried away): an HTTP request that errors, answers a status other than 200, a wrong length or a wrong
 * digest, or does not complete within `stallMs`; a bulk echo whose bytes differ. `connectionsLost`
 * counts TCP connections that ended with an error on either stack (client sockets on B, server sockets
 * on A).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { Server, Socket } from 'node:net';
import { Stack, type StackOptions } from './stack.js';
import { createStackPair } from './stack-pair.js';
import type { Socket as DgramSocket } from './dgram.js';
import { seededRandom } from '../servers/runtime/stats.js';
import { httpHandler } from '../bin/services/tcp-services.js';

export const DEMO_ADDR_A = '10.93.0.1';
export const DEMO_ADDR_B = '10.93.0.2';
const HTTP_PORT = 80;
const ECHO_PORT = 7;
const UDP_ECHO_PORT = 7;

export interface DemoPair {
  /** The server side: http (port 80), TCP echo (7), UDP echo (7). */
  a: Stack;
  /** The client side. */
  b: Stack;
  close(): Promise<void>;
}

/** Two stacks on one shared-memory wire (MTU 1500), started; the pair is closed if either fails. */
export async function createDemoPair(stack: Omit<StackOptions, 'link'> = {}): Promise<DemoPair> {
  const [a, b] = await createStackPair({ mtu: 1500 }, { ...stack, address: `${DEMO_ADDR_A}/24` }, { ...stack, address: `${DEMO_ADDR_B}/24` });
  const close = async (): Promise<void> => {
    await Promise.allSettled([a.close(), b.close()]);
  };
  return { a, b, close };
}

/**
 * A deterministic byte stream that repeats with a prime period (so a lost, duplicated or shifted run
 * of bytes never lines up with the pattern again), doubled at its end so that any slice of up to
 * MAX_SLICE bytes is one contiguous subarray: sending and checking cost no copy and no per-byte work.
 */
const PERIOD = 1_048_573;
const MAX_SLICE = 1 << 16;
const PATTERN = (() => {
  const b = Buffer.allocUnsafe(PERIOD + MAX_SLICE);
  const rand = seededRandom(0x6b6e6574);
  for (let i = 0; i < PERIOD; i += 4) {
    const x = (rand() * 2 ** 32) >>> 0;
    b[i] = x;
    if (i + 1 < PERIOD) b[i + 1] = x >>> 8;
    if (i + 2 < PERIOD) b[i + 2] = x >>> 16;
    if (i + 3 < PERIOD) b[i + 3] = x >>> 24;
  }
  b.copy(b, PERIOD, 0, MAX_SLICE);
  return b;
})();

/** `n` (<= MAX_SLICE) bytes of the pattern from stream position `pos`. */
function slice(pos: number, n: number): Buffer {
  const at = pos % PERIOD;
  return PATTERN.subarray(at, at + n);
}

/** Does `data` equal the pattern from stream position `pos`? */
function matches(data: Buffer, pos: number): boolean {
  for (let off = 0; off < data.length; off += MAX_SLICE) {
    const n = Math.min(MAX_SLICE, data.length - off);
    if (data.compare(slice(pos + off, n), 0, n, off, off + n) !== 0) return false;
  }
  return true;
}

export interface TrafficOptions {
  /** Concurrent HTTP clients (default 4). */
  httpClients?: number;
  /** Long-lived bulk echo connections (default 2). */
  bulkConnections?: number;
  /** Bytes a bulk connection keeps unacknowledged by its echo (default 256 KiB). */
  bulkWindow?: number;
  /** UDP datagrams kept in flight (default 2). */
  udpInFlight?: number;
  /** A UDP datagram not back after this long is counted lost (default 1000 ms). */
  udpTimeoutMs?: number;
  /** Body sizes for GET and POST: log-uniform in [minBody, maxBody] (default 1 KiB .. 1 MiB). */
  minBody?: number;
  maxBody?: number;
  /** An HTTP request not complete after this long is a failure ('stalled') (default 60 s). */
  stallMs?: number;
  /** Throughput bucket (default 250 ms). */
  bucketMs?: number;
  seed?: number;
  /** What the fault campaign is doing now, recorded with each failure. */
  context?: () => string;
  onFailure?: (f: TrafficFailure) => void;
}

export interface TrafficFailure {
  atMs: number;
  what: string;
  error: string;
  code?: string;
  context: string;
}

export interface TrafficCounters {
  requests: { ok: number; failed: number; get: number; post: number };
  bytesVerified: number;
  connections: { opened: number; open: number; lost: number };
  bulk: { connections: number; bytesVerified: number; corrupted: number };
  udp: { sent: number; echoed: number; lost: number; corrupted: number; late: number };
}

interface Tracked {
  socket: Socket;
  side: 'a' | 'b';
}

export class DemoTraffic {
  readonly counters: TrafficCounters = {
    requests: { ok: 0, failed: 0, get: 0, post: 0 },
    bytesVerified: 0,
    connections: { opened: 0, open: 0, lost: 0 },
    bulk: { connections: 0, bytesVerified: 0, corrupted: 0 },
    udp: { sent: 0, echoed: 0, lost: 0, corrupted: 0, late: 0 },
  };
  /** Bytes verified per bucket of `bucketMs`, from start(). */
  readonly throughput: number[] = [];
  readonly failures: TrafficFailure[] = [];
  readonly bucketMs: number;
  private readonly o: Required<Omit<TrafficOptions, 'context' | 'onFailure' | 'seed'>>;
  private readonly rand: () => number;
  private t0 = 0;
  private running = false;
  /** Set once the counters are final: errors of the teardown are not the traffic's. */
  private frozen = false;
  private readonly loops: Promise<void>[] = [];
  private readonly sockets = new Set<Tracked>();
  private readonly servers: Server[] = [];
  private readonly agents: http.Agent[] = [];
  private readonly bulk: { socket: Socket; done: Promise<void> }[] = [];
  private udpA: DgramSocket | null = null;
  private udpB: DgramSocket | null = null;
  private httpServer: http.Server | null = null;

  constructor(
    private readonly pair: DemoPair,
    private readonly opts: TrafficOptions = {},
  ) {
    this.o = {
      httpClients: opts.httpClients ?? 4,
      bulkConnections: opts.bulkConnections ?? 2,
      bulkWindow: opts.bulkWindow ?? 256 * 1024,
      udpInFlight: opts.udpInFlight ?? 2,
      udpTimeoutMs: opts.udpTimeoutMs ?? 1000,
      minBody: opts.minBody ?? 1024,
      maxBody: opts.maxBody ?? 1 << 20,
      stallMs: opts.stallMs ?? 60_000,
      bucketMs: opts.bucketMs ?? 250,
    };
    this.bucketMs = this.o.bucketMs;
    this.rand = seededRandom(opts.seed ?? 1);
  }

  /** Milliseconds since start(). */
  now(): number {
    return performance.now() - this.t0;
  }

  private credit(bytes: number): void {
    if (this.frozen) return;
    this.counters.bytesVerified += bytes;
    const i = Math.floor(this.now() / this.o.bucketMs);
    while (this.throughput.length <= i) this.throughput.push(0);
    this.throughput[i] += bytes;
  }

  private fail(what: string, err: unknown): void {
    if (this.frozen) return;
    const e = err as { message?: string; code?: string };
    const f: TrafficFailure = {
      atMs: Math.round(this.now()),
      what,
      error: e?.message ?? String(err),
      ...(e?.code ? { code: e.code } : {}),
      context: this.opts.context?.() ?? '',
    };
    this.failures.push(f);
    this.opts.onFailure?.(f);
  }

  /** Count a TCP connection of either stack: opened, open, and lost when it ends with an error. */
  private track(socket: Socket, side: 'a' | 'b', what: string): void {
    const t: Tracked = { socket, side };
    this.sockets.add(t);
    this.counters.connections.opened++;
    this.counters.connections.open++;
    let errored = false;
    socket.on('error', (err) => {
      if (errored || this.frozen) return;
      errored = true;
      this.counters.connections.lost++;
      this.fail(`${what} connection (${side === 'a' ? 'server side, stack A' : 'client side, stack B'})`, err);
    });
    socket.once('close', () => {
      this.sockets.delete(t);
      this.counters.connections.open--;
    });
  }

  /** Start the services on A and the traffic from B. */
  async start(): Promise<void> {
    const { a, b } = this.pair;
    this.t0 = performance.now();
    this.running = true;

    // Services on A: node:http (the same handler as `keepnet tap --serve http`), TCP echo, UDP echo.
    const h = http.createServer(httpHandler);
    h.keepAliveTimeout = 30_000;
    this.httpServer = h;
    const listen = (srv: Server, port: number): Promise<void> =>
      new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(port, '0.0.0.0', () => {
          srv.off('error', reject);
          resolve();
        });
      });
    const httpSrv = a.net.createServer((s) => {
      this.track(s as unknown as Socket, 'a', 'http');
      h.emit('connection', s);
    }) as unknown as Server;
    const echoSrv = a.net.createServer((s) => {
      this.track(s as unknown as Socket, 'a', 'echo');
      s.pipe(s);
    }) as unknown as Server;
    this.servers.push(httpSrv, echoSrv);
    await Promise.all([listen(httpSrv, HTTP_PORT), listen(echoSrv, ECHO_PORT)]);
    const ua = a.dgram.createSocket('udp4');
    ua.on('message', (msg, rinfo) => ua.send(msg, rinfo.port, rinfo.address));
    ua.on('error', () => {}); // a send that fails during a fault is a lost datagram, counted by B
    await new Promise<void>((r) => ua.bind(UDP_ECHO_PORT, () => r()));
    this.udpA = ua;

    for (let i = 0; i < this.o.httpClients; i++) this.loops.push(this.httpLoop(i, i % 2 === 0));
    for (let i = 0; i < this.o.bulkConnections; i++) this.startBulk(i);
    await this.startUdp(b);
  }

  // ---- HTTP -----------------------------------------------------------------------------------------

  private connectB(what: string): Socket {
    const s = this.pair.b.net.connect(HTTP_PORT, DEMO_ADDR_A) as unknown as Socket;
    this.track(s, 'b', what);
    return s;
  }

  private size(): number {
    const lo = Math.log(this.o.minBody);
    const hi = Math.log(this.o.maxBody);
    return Math.round(Math.exp(lo + this.rand() * (hi - lo)));
  }

  private async httpLoop(index: number, keepAlive: boolean): Promise<void> {
    let agent: http.Agent | undefined;
    if (keepAlive) {
      agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      // Agent.createConnection is the documented hook for a custom transport.
      (agent as unknown as { createConnection: () => Socket }).createConnection = () => this.connectB('http keep-alive');
      this.agents.push(agent);
    }
    let n = 0;
    while (this.running) {
      const post = (n++ + index) % 4 === 3;
      const size = this.size();
      const what = post ? `POST /sha256 (${size} bytes)` : `GET /bytes/${size}`;
      try {
        if (post) {
          this.counters.requests.post++;
          await this.post(size, agent);
        } else {
          this.counters.requests.get++;
          await this.get(size, agent);
        }
        if (!this.frozen) this.counters.requests.ok++;
        this.credit(size);
      } catch (err) {
        if (!this.frozen) this.counters.requests.failed++;
        this.fail(`http client ${index}${keepAlive ? ' (keep-alive)' : ''}: ${what}`, err);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private request(opts: http.RequestOptions, agent: http.Agent | undefined, body: Buffer | null, onRes: (res: http.IncomingMessage, done: (err: Error | null) => void) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const done = (err: Error | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(stall);
        if (err) reject(err);
        else resolve();
      };
      const req = http.request(
        {
          host: DEMO_ADDR_A,
          port: HTTP_PORT,
          ...opts,
          ...(agent ? { agent } : { createConnection: () => this.connectB('http') }),
        },
        (res) => {
          res.on('error', done);
          res.on('aborted', () => done(Object.assign(new Error('response aborted'), { code: 'ECONNRESET' })));
          onRes(res, done);
        },
      );
      const stall = setTimeout(() => {
        const err = Object.assign(new Error(`request not complete after ${this.o.stallMs} ms (stalled)`), { code: 'ESTALLED' });
        done(err);
        req.destroy(err);
      }, this.o.stallMs);
      req.on('error', done);
      req.end(body ?? undefined);
    });
  }

  private get(size: number, agent: http.Agent | undefined): Promise<void> {
    return this.request({ path: `/bytes/${size}` }, agent, null, (res, done) => {
      const h = createHash('sha256');
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        h.update(d);
        bytes += d.length;
      });
      res.on('end', () => {
        const digest = h.digest('hex');
        if (res.statusCode !== 200) done(new Error(`status ${res.statusCode}`));
        else if (bytes !== size) done(Object.assign(new Error(`${bytes} bytes received, ${size} expected`), { code: 'ESHORT' }));
        else if (digest !== res.headers['x-content-sha256']) done(Object.assign(new Error(`SHA-256 mismatch: got ${digest}, header ${res.headers['x-content-sha256']}`), { code: 'EDIGEST' }));
        else done(null);
      });
    });
  }

  private post(size: number, agent: http.Agent | undefined): Promise<void> {
    // The body: `size` bytes of the pattern from a seeded position (copied: it is sent as one buffer).
    const body = Buffer.allocUnsafe(size);
    const start = Math.floor(this.rand() * PERIOD);
    for (let off = 0; off < size; off += MAX_SLICE) slice(start + off, Math.min(MAX_SLICE, size - off)).copy(body, off);
    const want = createHash('sha256').update(body).digest('hex');
    return this.request({ path: '/sha256', method: 'POST', headers: { 'content-length': String(size) } }, agent, body, (res, done) => {
      let s = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (s += d));
      res.on('end', () => {
        if (res.statusCode !== 200) done(new Error(`status ${res.statusCode}`));
        else if (s.trim() !== want) done(Object.assign(new Error(`SHA-256 of the upload: server says ${s.trim()}, sent ${want}`), { code: 'EDIGEST' }));
        else done(null);
      });
    });
  }

  // ---- bulk echo ------------------------------------------------------------------------------------

  private startBulk(index: number): void {
    const s = this.pair.b.net.connect(ECHO_PORT, DEMO_ADDR_A) as unknown as Socket;
    this.track(s, 'b', 'bulk echo');
    this.counters.bulk.connections++;
    const base = Math.floor(this.rand() * PERIOD);
    let sent = 0;
    let verified = 0;
    let blocked = false;
    const pump = (): void => {
      while (this.running && !s.destroyed && sent - verified < this.o.bulkWindow) {
        const n = Math.min(MAX_SLICE, this.o.bulkWindow - (sent - verified));
        const ok = s.write(slice(base + sent, n));
        sent += n;
        if (!ok) {
          blocked = true;
          s.once('drain', () => {
            blocked = false;
            pump();
          });
          return;
        }
      }
      if (!this.running && s.writable) s.end();
    };
    s.on('data', (d: Buffer) => {
      if (!matches(d, base + verified)) {
        if (!this.frozen) this.counters.bulk.corrupted++;
        this.fail(`bulk echo ${index}`, Object.assign(new Error(`echoed bytes differ from what was sent at stream offset ${verified} (${d.length} bytes)`), { code: 'ECORRUPT' }));
        s.destroy();
        return;
      }
      verified += d.length;
      if (!this.frozen) this.counters.bulk.bytesVerified += d.length;
      this.credit(d.length);
      if (!blocked) pump();
    });
    const done = new Promise<void>((resolve) => {
      s.once('close', () => {
        if (this.running) this.fail(`bulk echo ${index}`, Object.assign(new Error('the connection closed while traffic was running'), { code: 'ECLOSED' }));
        resolve();
      });
    });
    s.on('end', () => {
      if (verified !== sent && this.running) this.fail(`bulk echo ${index}`, new Error(`echo ended after ${verified} of ${sent} bytes`));
    });
    s.once('connect', pump);
    this.bulk.push({ socket: s, done });
  }

  // ---- UDP ------------------------------------------------------------------------------------------

  private async startUdp(b: Stack): Promise<void> {
    const u = b.dgram.createSocket('udp4');
    this.udpB = u;
    u.on('error', () => {});
    await new Promise<void>((r) => u.bind(0, () => r()));
    const pending = new Map<number, { slot: number; timer: NodeJS.Timeout; pos: number; len: number }>();
    let seq = 1;
    const send = (slot: number): void => {
      if (!this.running) return;
      const id = seq++ >>> 0;
      const len = 32 + Math.floor(this.rand() * 1200);
      const pos = Math.floor(this.rand() * PERIOD);
      const msg = Buffer.allocUnsafe(4 + len);
      msg.writeUInt32LE(id, 0);
      slice(pos, len).copy(msg, 4);
      const timer = setTimeout(() => {
        pending.delete(id);
        if (!this.frozen) this.counters.udp.lost++;
        send(slot); // UDP is unreliable: count it lost and carry on with the next datagram
      }, this.o.udpTimeoutMs);
      pending.set(id, { slot, timer, pos, len });
      if (!this.frozen) this.counters.udp.sent++;
      u.send(msg, UDP_ECHO_PORT, DEMO_ADDR_A, (err) => {
        if (err && pending.delete(id)) {
          clearTimeout(timer);
          if (!this.frozen) this.counters.udp.lost++;
          setTimeout(() => send(slot), 10);
        }
      });
    };
    u.on('message', (msg: Buffer) => {
      if (msg.length < 4) return;
      const id = msg.readUInt32LE(0);
      const p = pending.get(id);
      if (!p) {
        if (!this.frozen) this.counters.udp.late++;
        return;
      }
      pending.delete(id);
      clearTimeout(p.timer);
      if (this.frozen) return;
      const body = msg.subarray(4);
      if (body.length === p.len && matches(body, p.pos)) {
        this.counters.udp.echoed++;
        this.credit(body.length);
      } else {
        this.counters.udp.corrupted++;
        this.fail('udp echo', Object.assign(new Error(`datagram ${id} came back altered`), { code: 'ECORRUPT' }));
      }
      setTimeout(() => send(p.slot), 2);
    });
    this.stopUdp = () => {
      for (const p of pending.values()) clearTimeout(p.timer);
      // Still in flight at the end: neither echoed nor lost; drop them from `sent`.
      this.counters.udp.sent -= pending.size;
      pending.clear();
    };
    for (let i = 0; i < this.o.udpInFlight; i++) send(i);
  }

  private stopUdp: () => void = () => {};

  // ---- stopping -------------------------------------------------------------------------------------

  /**
   * Stop sending: the HTTP clients finish the request in hand, the bulk connections end (their echo
   * drains and closes), the keep-alive connections close; then the counters are final. Resolves when
   * every traffic connection is closed (or after `graceMs`).
   */
  async stop(graceMs = 30_000): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.stopUdp();
    const deadline = performance.now() + graceMs;
    const within = async <T>(p: Promise<T>): Promise<void> => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([p, new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - performance.now()))))]);
      clearTimeout(timer);
    };
    await within(Promise.all(this.loops));
    for (const bk of this.bulk) if (bk.socket.writable) bk.socket.end();
    await within(Promise.all(this.bulk.map((bk) => bk.done)));
    for (const ag of this.agents) ag.destroy();
    while (this.sockets.size > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    this.frozen = true;
    this.counters.connections.open = this.sockets.size;
    for (const t of this.sockets) t.socket.destroy();
    for (const srv of this.servers) srv.close();
    this.httpServer?.close();
    this.udpA?.close();
    this.udpB?.close();
  }

  snapshot(): TrafficCounters {
    return structuredClone(this.counters);
  }
}
