/**
 * Differential scenarios for Node's net API: each one is a script run against a `net`-like module
 * (node:net over the host's loopback, keepnet over the fake channel, or a real keepnet stack) that
 * records what the application sees ('connect', 'data:hello', 'end', 'close:false'...). The same
 * script on two systems must record the same thing. Used by net-api.test.ts (fake channel) and
 * net-differential.test.ts (a real stack).
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import { ipv4Parse } from '../../servers/wire/ipv4.js';
export type AnySocket = any;
export type AnyServer = any;
export type NetLike = { createServer: (...a: any[]) => AnyServer; connect: (...a: any[]) => AnySocket; Socket: new (o?: any) => AnySocket };

export interface NetEnv {
  name: string;
  net: NetLike;
  /** The address servers listen on and clients connect to (127.0.0.1 on loopback). */
  host: string;
}

export type Logs = Record<string, string[]>;
export type Scenario = (env: NetEnv) => Promise<Logs>;

export const ip = (s: string): number => ipv4Parse(s) as number;

// ---- recording --------------------------------------------------------------------------------------

/** An error as the application sees it; ports (which differ between runs) masked. */
export function describeError(e: any): string {
  if (!(e instanceof Error)) return `not an error: ${String(e)}`;
  const x = e as Error & Record<string, unknown>;
  const msg = x.message.replace(/:\d{2,5}\b/g, ':PORT');
  const parts = [x.code ?? x.name, msg];
  if (x.syscall !== undefined) parts.push(`syscall=${String(x.syscall)}`);
  if (x.errno !== undefined) parts.push(`errno=${String(x.errno)}`);
  if (x.address !== undefined) parts.push(`address=${String(x.address)}`);
  if (x.port !== undefined) parts.push('port=PORT');
  return parts.join('|');
}

/** Append the socket's events to `log`; consecutive 'data' chunks are merged (TCP keeps no boundaries). */
export function record(s: AnySocket, log: string[], opts: { data?: boolean } = {}): void {
  const push = (e: string): void => void log.push(e);
  s.on('lookup', (err: any, address: any, family: any, host: any) => push(`lookup:${err ? err.code : address}/${family}/${host}`));
  s.on('connectionAttempt', (address: string, _port: number, family: number) => push(`attempt:${address}/${family}`));
  s.on('connectionAttemptFailed', (address: string, _port: number, family: number, err: any) => push(`attemptFailed:${address}/${family}/${err.code}`));
  s.on('connect', () => push('connect'));
  s.on('ready', () => push('ready'));
  if (opts.data !== false) {
    s.on('data', (d: Buffer) => {
      const last = log[log.length - 1];
      if (last !== undefined && last.startsWith('data:')) log[log.length - 1] = last + d.toString();
      else push(`data:${d.toString()}`);
    });
  }
  s.on('end', () => push('end'));
  s.on('finish', () => push('finish'));
  s.on('drain', () => push('drain'));
  s.on('timeout', () => push('timeout'));
  s.on('error', (e: Error) => push(`error:${describeError(e)}`));
  s.on('close', (hadError: unknown) => push(`close:${String(hadError)}`));
}

/** Resolves on the event (and never rejects on 'error', unlike events.once). */
export function next(em: AnySocket, ev: string): Promise<unknown[]> {
  return new Promise((resolve) => em.once(ev, (...args: unknown[]) => resolve(args)));
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function listening(net: NetLike, host: string, opts: object = {}, onConnection?: (s: AnySocket) => void): Promise<{ server: AnyServer; port: number }> {
  const server = net.createServer(opts, onConnection);
  server.listen(0, host);
  await next(server, 'listening');
  return { server, port: server.address().port };
}

export async function closeServer(server: AnyServer): Promise<void> {
  await new Promise<void>((r) => server.close(() => r()));
}

/** A port where nothing listens (listened on, then closed). */
export async function closedPort(net: NetLike, host: string): Promise<number> {
  const { server, port } = await listening(net, host);
  await closeServer(server);
  return port;
}

/** Run a scenario with a deadline, so that a hang reports which scenario and environment. */
export async function runScenario(scenario: Scenario, env: NetEnv, ms = 10000): Promise<Logs> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<Logs>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`scenario timed out on ${env.name}`)), ms);
  });
  try {
    return await Promise.race([scenario(env), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- the scenarios ----------------------------------------------------------------------------------

export const SCENARIOS: Record<string, Scenario> = {
  async 'server writes and ends; the client ends after the FIN (allowHalfOpen false)'({ net, host }) {
    const server: string[] = [];
    const done: Promise<unknown>[] = [];
    const l = await listening(net, host, {}, (s) => {
      record(s, server);
      done.push(next(s, 'close'));
      s.end('hello');
    });
    const client: string[] = [];
    const c = net.connect(l.port, host);
    record(c, client);
    await next(c, 'close');
    await Promise.all(done);
    await closeServer(l.server);
    return { client, server };
  },

  async 'client writes and ends; a half-open server answers after the FIN'({ net, host }) {
    const server: string[] = [];
    let serverClosed: Promise<unknown> = Promise.resolve();
    const l = await listening(net, host, { allowHalfOpen: true }, (s) => {
      let got = '';
      record(s, server);
      serverClosed = next(s, 'close');
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('end', () => {
        server.push(`writable:${s.writable}`);
        s.end(`pong:${got}`);
      });
    });
    const client: string[] = [];
    const c = net.connect({ port: l.port, host }, () => {
      c.write('ping');
      c.end();
    });
    record(c, client);
    await next(c, 'close');
    await serverClosed;
    client.push(`bytesRead=${c.bytesRead} bytesWritten=${c.bytesWritten}`);
    await closeServer(l.server);
    return { client, server };
  },

  async 'client ends first: the server (allowHalfOpen false) ends after the FIN'({ net, host }) {
    const server: string[] = [];
    let serverClosed: Promise<unknown> = Promise.resolve();
    const l = await listening(net, host, {}, (s) => {
      record(s, server);
      serverClosed = next(s, 'close');
    });
    const client: string[] = [];
    const c = net.connect(l.port, host);
    record(c, client);
    c.on('connect', () => c.end());
    await next(c, 'close');
    await serverClosed;
    await closeServer(l.server);
    return { client, server };
  },

  async 'a half-open client keeps writing after the peer ended'({ net, host }) {
    const server: string[] = [];
    let serverClosed: Promise<unknown> = Promise.resolve();
    const l = await listening(net, host, {}, (s) => {
      record(s, server);
      serverClosed = next(s, 'close');
      s.end('bye');
    });
    const client: string[] = [];
    const c = net.connect({ port: l.port, host, allowHalfOpen: true });
    record(c, client);
    c.on('end', () => {
      client.push(`readyState:${c.readyState}`);
      c.end('after');
    });
    await next(c, 'close');
    await serverClosed;
    await closeServer(l.server);
    return { client, server };
  },

  async 'connection refused'({ net, host }) {
    const port = await closedPort(net, host);
    const client: string[] = [];
    const c = net.connect(port, host);
    record(c, client);
    client.push(`pending:${c.pending} connecting:${c.connecting} readyState:${c.readyState}`);
    await next(c, 'close');
    client.push(`destroyed:${c.destroyed} readyState:${c.readyState} remoteAddress:${c.remoteAddress}`);
    return { client };
  },

  async "'localhost' is looked up ('lookup' event), an IP literal is not"({ net }) {
    const l = await listening(net, '127.0.0.1', {}, (s) => s.end());
    const byName: string[] = [];
    const a = net.connect(l.port, 'localhost');
    record(a, byName);
    await next(a, 'close');
    const byLiteral: string[] = [];
    const b = net.connect({ port: l.port, host: '127.0.0.1' });
    record(b, byLiteral);
    await next(b, 'close');
    await closeServer(l.server);
    return { byName, byLiteral };
  },

  async 'the peer resets (resetAndDestroy): read ECONNRESET'({ net, host }) {
    const server: string[] = [];
    let serverClosed: Promise<unknown> = Promise.resolve();
    const l = await listening(net, host, {}, (s) => {
      record(s, server);
      serverClosed = next(s, 'close');
      s.once('data', () => s.resetAndDestroy());
    });
    const client: string[] = [];
    const c = net.connect(l.port, host, () => c.write('x'));
    record(c, client);
    await next(c, 'close');
    await serverClosed;
    await closeServer(l.server);
    return { client, server };
  },

  async 'destroy() and destroy(err)'({ net, host }) {
    const server: string[] = [];
    // The server may accept the second connection after its client has already closed (the
    // accept is asynchronous on either stack): wait for both server sides, however late.
    let bothClosed!: () => void;
    const closed = new Promise<void>((resolve) => (bothClosed = resolve));
    const l = await listening(net, host, {}, (s) => {
      const log: string[] = [];
      record(s, log);
      void next(s, 'close').then(() => {
        if (server.push(log.join(',')) === 2) bothClosed();
      });
    });
    const plain: string[] = [];
    const a = net.connect(l.port, host, () => a.destroy());
    record(a, plain);
    await next(a, 'close');
    const withError: string[] = [];
    const b = net.connect(l.port, host, () => b.destroy(new Error('boom')));
    record(b, withError);
    await next(b, 'close');
    await closed;
    await closeServer(l.server);
    server.sort();
    return { plain, withError, server };
  },

  async 'writes and end() before the connection is up are queued'({ net, host }) {
    const server: string[] = [];
    let serverClosed: Promise<unknown> = Promise.resolve();
    const l = await listening(net, host, {}, (s) => {
      record(s, server);
      serverClosed = next(s, 'close');
    });
    const client: string[] = [];
    const c = net.connect(l.port, host);
    record(c, client);
    client.push(`write:${c.write('early')}`);
    client.push(`bytesWritten:${c.bytesWritten}`);
    c.end('!');
    await next(c, 'close');
    await serverClosed;
    client.push(`bytesWritten:${c.bytesWritten}`);
    await closeServer(l.server);
    return { client, server };
  },

  async "setTimeout: 'timeout' after idleness, nothing else"({ net, host }) {
    const l = await listening(net, host, {}, () => {});
    const client: string[] = [];
    const c = net.connect(l.port, host);
    record(c, client);
    client.push(`returned this:${c.setTimeout(30) === c} timeout:${c.timeout}`);
    await next(c, 'timeout');
    client.push(`destroyed:${c.destroyed}`);
    c.setTimeout(0);
    c.destroy();
    await next(c, 'close');
    await closeServer(l.server);
    return { client };
  },

  async "server.close(): stops listening; 'close' once every connection closed"({ net, host }) {
    const log: string[] = [];
    let sock: AnySocket;
    const l = await listening(net, host, {}, (s) => {
      sock = s;
      log.push('connection');
    });
    l.server.on('close', () => log.push('server close'));
    const c = net.connect(l.port, host);
    await next(l.server, 'connection');
    l.server.getConnections((err: unknown, n: number) => log.push(`connections:${String(err)}/${n}`));
    const closed = new Promise<void>((r) =>
      l.server.close((err: unknown) => {
        log.push(`close cb:${String(err)}`);
        r();
      }),
    );
    log.push(`listening:${l.server.listening} address:${l.server.address()}`);
    await delay(5);
    log.push('client ends');
    sock.on('close', () => {
      log.push('socket close');
      l.server.getConnections((err: unknown, n: number) => log.push(`connections:${String(err)}/${n}`));
    });
    c.end();
    await closed;
    await new Promise((r) => setImmediate(r));
    const refused: string[] = [];
    const d = net.connect(l.port, host);
    record(d, refused);
    await next(d, 'close');
    return { log, refused };
  },

  async 'close() on a server that is not listening'({ net }) {
    const log: string[] = [];
    const s = net.createServer();
    s.on('close', () => log.push('close'));
    s.close((err: Error) => log.push(`cb:${describeError(err)}`));
    await next(s, 'close');
    await new Promise((r) => setImmediate(r));
    log.push(`address:${s.address()} listening:${s.listening}`);
    return { log };
  },

  async 'listen EADDRINUSE'({ net, host }) {
    const l = await listening(net, host);
    const log: string[] = [];
    const s = net.createServer();
    s.on('listening', () => log.push('listening'));
    s.listen(l.port, host);
    const [err] = await next(s, 'error');
    log.push(`error:${describeError(err)}`);
    log.push(`listening:${s.listening} address:${s.address()}`);
    s.close((e: Error) => log.push(`close cb:${e && (e as any).code}`));
    await next(s, 'close');
    await closeServer(l.server);
    return { log };
  },

  async 'listen and close at once: no listening, one close'({ net, host }) {
    const log: string[] = [];
    const s = net.createServer();
    s.on('listening', () => log.push('listening'));
    s.on('close', () => log.push('close'));
    s.listen(0, host);
    s.close();
    await delay(20);
    log.push(`listening:${s.listening}`);
    return { log };
  },

  async "pauseOnConnect: no 'data' until resume()"({ net, host }) {
    const server: string[] = [];
    let sock: AnySocket;
    const l = await listening(net, host, { pauseOnConnect: true }, (s) => {
      sock = s;
      record(s, server);
    });
    const c = net.connect(l.port, host);
    await next(c, 'connect');
    await new Promise((r) => c.write('abc', r));
    await delay(20);
    server.push(`paused:${sock.isPaused()}`);
    sock.resume();
    await next(sock, 'data');
    c.end();
    await next(sock, 'close');
    await closeServer(l.server);
    return { server };
  },

  async "end(): 'finish' comes before the peer's 'end', connection after connection"({ net, host }) {
    // libuv sends the FIN as the shutdown request completes, so the peer (on the same event loop) can
    // never see it first. keepnet once sent the FIN at end() and completed the request a turn later,
    // and on a busy-polling stack lost that race in 16 connections of 40 (203 of 300 in a longer run).
    const order: string[] = [];
    const l = await listening(net, host, { allowHalfOpen: true }, (s) => {
      s.resume();
      s.on('end', () => {
        order.push('peer end');
        s.end();
      });
    });
    let finishFirst = 0;
    const rounds = 40;
    for (let i = 0; i < rounds; i++) {
      order.length = 0;
      const c = net.connect(l.port, host);
      await next(c, 'connect');
      c.on('finish', () => order.push('finish'));
      c.resume();
      c.end(Buffer.alloc(100, 1));
      await next(c, 'close');
      if (order.join() === 'finish,peer end') finishFirst++;
    }
    await closeServer(l.server);
    return { client: [`finish before the peer's end: ${finishFirst} of ${rounds}`] };
  },

  async "backpressure: write() false while the peer does not read, 'drain' once it does"({ net, host }) {
    const total = 48 * 1024 * 1024;
    let received = 0;
    let sock: AnySocket;
    const l = await listening(net, host, { pauseOnConnect: true }, (s) => {
      sock = s;
      s.on('data', (d: Buffer) => (received += d.length));
    });
    const client: string[] = [];
    const c = net.connect(l.port, host);
    record(c, client, { data: false });
    await next(c, 'connect');
    const drained = next(c, 'drain');
    client.push(`write:${c.write(Buffer.alloc(total, 1))}`);
    let early = false;
    void drained.then(() => (early = true));
    await delay(50);
    client.push(`drained while paused:${early}`);
    sock.resume();
    await drained;
    c.end();
    await next(sock, 'end');
    client.push(`received all:${received === total}`);
    await next(c, 'close');
    await closeServer(l.server);
    return { client };
  },

  async 'socket state and addresses along the way'({ net, host }) {
    const log: string[] = [];
    const state = (s: AnySocket, at: string): void =>
      void log.push(`${at}: readyState=${s.readyState} pending=${s.pending} connecting=${s.connecting} destroyed=${s.destroyed}`);
    const l = await listening(net, host, {}, (s) => s.resume());
    const fresh = new net.Socket();
    state(fresh, 'new Socket');
    log.push(`new Socket: address=${JSON.stringify(fresh.address())} remote=${fresh.remoteAddress} bytes=${fresh.bytesRead}/${fresh.bytesWritten}`);
    fresh.destroy();
    const [hadError] = await next(fresh, 'close');
    log.push(`fresh close:${String(hadError)}`);
    const c = net.connect(l.port, host);
    state(c, 'connect()');
    log.push(`connect(): address=${JSON.stringify(c.address())} remote=${c.remoteAddress}`);
    await next(c, 'connect');
    state(c, 'connect');
    const a = c.address();
    log.push(`address: ${a.address === host} ${a.family} ${a.port === c.localPort} ${typeof a.port}`);
    log.push(`remote: ${c.remoteAddress === host} ${c.remotePort === l.port} ${c.remoteFamily} local: ${c.localAddress === host} ${c.localFamily}`);
    log.push(`setNoDelay:${c.setNoDelay() === c} setKeepAlive:${c.setKeepAlive(true, 1000) === c} ref:${c.ref() === c} unref:${c.unref() === c}`);
    c.end();
    state(c, 'end()');
    await next(c, 'close');
    state(c, 'closed');
    log.push(`closed: remote=${c.remoteAddress === host} local=${c.localAddress} address=${JSON.stringify(c.address())}`);
    await closeServer(l.server);
    return { log };
  },

  async 'maxConnections: the connection over the limit is dropped'({ net, host }) {
    const log: string[] = [];
    const l = await listening(net, host, {}, () => log.push('connection'));
    l.server.maxConnections = 1;
    l.server.on('drop', (d: any) => log.push(`drop: ${d.localPort === l.port} ${d.remoteFamily} ${d.localFamily} ${d.remoteAddress === host}`));
    const first = net.connect(l.port, host);
    await next(l.server, 'connection');
    const second: string[] = [];
    const c = net.connect(l.port, host);
    record(c, second);
    await next(c, 'close');
    first.destroy();
    await closeServer(l.server);
    return { log, second };
  },

  async 'destroy() with a write pending: its callback, the queued one fails, bytesWritten'({ net, host }) {
    const total = 48 * 1024 * 1024;
    let sock: AnySocket;
    const l = await listening(net, host, { pauseOnConnect: true }, (s) => (sock = s));
    const client: string[] = [];
    const accepted = next(l.server, 'connection');
    const c = net.connect(l.port, host);
    record(c, client, { data: false });
    await next(c, 'connect');
    await accepted;
    c.write(Buffer.alloc(total), (e: Error | null) => client.push(`cb:${e ? describeError(e) : String(e)}`));
    c.write('more', (e: Error | null) => client.push(`cb2:${e ? describeError(e) : String(e)}`));
    client.push(`bytesWritten:${c.bytesWritten - total}`);
    await delay(20);
    c.destroy();
    await next(c, 'close');
    await delay(5);
    client.push(`bytesWritten:${c.bytesWritten - total}`);
    sock.destroy();
    await closeServer(l.server);
    return { client };
  },

  async 'write after end(): ERR_STREAM_WRITE_AFTER_END'({ net, host }) {
    const l = await listening(net, host, {}, (s) => s.resume());
    const client: string[] = [];
    const c = net.connect(l.port, host);
    record(c, client);
    await next(c, 'connect');
    c.end();
    c.write('x', (err: Error) => client.push(`write cb:${describeError(err)}`));
    await next(c, 'close');
    await closeServer(l.server);
    return { client };
  },
};

