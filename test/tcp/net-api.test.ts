/**
 * The net API (kernel-shim/net.ts) over the in-memory channel (fake-channel.ts).
 *
 * Most tests are differential: one scenario script runs against node:net over the host's loopback and
 * against keepnet, and the application-visible event sequences ('connect', 'data:hello', 'end',
 * 'close:false'...) must be equal. A scenario is a function of a `net`-like module and the address
 * its servers listen on and its clients connect to (NetEnv), so the same scripts can later run
 * against a real keepnet stack: `await runScenario(SCENARIOS['...'], { name, net: stack.net, host })`.
 * Argument errors are compared the same way (class, name, code, message). Then keepnet-only tests:
 * what the channel sees (the window closing when the reader stops), errors Node cannot produce on
 * loopback (timeouts, unreachable, EADDRNOTAVAIL), and leak checks (every endpoint closed).
 */
import nodeNet from 'node:net';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import { createNet, type NetModule } from '../../kernel-shim/net.js';
import { FakeNetwork, type FakeConn } from './fake-channel.js';
import { closeServer, ip, listening, next, record, runScenario, SCENARIOS, type AnySocket, type NetEnv, type NetLike } from './net-scenarios.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
// ---- argument validation ----------------------------------------------------------------------------

function shape(e: unknown): Record<string, unknown> {
  if (!(e instanceof Error)) return { notAnError: String(e) };
  const x = e as Error & Record<string, unknown>;
  return { ctor: x.constructor.name, name: x.name, code: x.code, message: x.message };
}

function outcome(fn: () => unknown, cleanup: unknown[]): Record<string, unknown> {
  try {
    const r = fn();
    cleanup.push(r);
    return { returned: r === undefined ? 'undefined' : typeof r };
  } catch (e) {
    return { threw: shape(e) };
  }
}

const VALIDATION: Record<string, (net: NetLike) => unknown> = {
  'connect()': (n) => n.connect(),
  'connect({})': (n) => n.connect({}),
  'connect({ port: -1 })': (n) => n.connect({ port: -1 }),
  'connect({ port: 65536 })': (n) => n.connect({ port: 65536 }),
  'connect({ port: 1.5 })': (n) => n.connect({ port: 1.5 }),
  "connect({ port: 'abc' })": (n) => n.connect({ port: 'abc' }),
  "connect({ port: ' ' })": (n) => n.connect({ port: ' ' }),
  'connect({ port: null })': (n) => n.connect({ port: null }),
  'connect({ port: true })': (n) => n.connect({ port: true }),
  'connect({ port: {} })': (n) => n.connect({ port: {} }),
  'connect(-1)': (n) => n.connect(-1),
  'connect(70000)': (n) => n.connect(70000),
  'connect(NaN)': (n) => n.connect(NaN),
  'connect({ port: 80, host: 123 })': (n) => n.connect({ port: 80, host: 123 }),
  "connect({ port: 80, localAddress: 'x' })": (n) => n.connect({ port: 80, localAddress: 'x' }),
  "connect({ port: 80, localPort: 'x' })": (n) => n.connect({ port: 80, localPort: 'x' }),
  "connect({ port: 80, host: 'a.b', lookup: 5 })": (n) => n.connect({ port: 80, host: 'a.b', lookup: 5 }),
  "connect({ port: 80, host: 'a.b', family: 5 })": (n) => n.connect({ port: 80, host: 'a.b', family: 5 }),
  "connect({ port: 80, autoSelectFamily: 'yes' })": (n) => n.connect({ port: 80, autoSelectFamily: 'yes' }),
  "connect({ port: 80, timeout: 'x' })": (n) => n.connect({ port: 80, timeout: 'x' }),
  'connect({ port: 80, timeout: -5 })': (n) => n.connect({ port: 80, timeout: -5 }),
  'connect({ port: 80, objectMode: true })': (n) => n.connect({ port: 80, objectMode: true }),
  'new Socket({ objectMode: true })': (n) => new n.Socket({ objectMode: true }),
  'new Socket({ readableObjectMode: true })': (n) => new n.Socket({ readableObjectMode: true }),
  "new Socket({ keepAliveInitialDelay: 'x' })": (n) => new n.Socket({ keepAliveInitialDelay: 'x' }),
  "setTimeout('x')": (n) => new n.Socket().setTimeout('x'),
  'setTimeout(-1)': (n) => new n.Socket().setTimeout(-1),
  'setTimeout(Infinity)': (n) => new n.Socket().setTimeout(Infinity),
  "setTimeout(1, 'x')": (n) => new n.Socket().setTimeout(1, 'x'),
  "setTimeout(0, 'x')": (n) => new n.Socket().setTimeout(0, 'x'),
  'write(123) on a new Socket': (n) => new n.Socket().write(123),
  'write(null) on a new Socket': (n) => new n.Socket().write(null),
  'write({}) on a new Socket': (n) => new n.Socket().write({}),
  'createServer(5)': (n) => n.createServer(5),
  "createServer('x')": (n) => n.createServer('x'),
  "createServer({ highWaterMark: 'x' })": (n) => n.createServer({ highWaterMark: 'x' }),
  "createServer({ keepAliveInitialDelay: 'x' })": (n) => n.createServer({ keepAliveInitialDelay: 'x' }),
  'listen(-1)': (n) => n.createServer().listen(-1),
  'listen(65536)': (n) => n.createServer().listen(65536),
  'listen(1.5)': (n) => n.createServer().listen(1.5),
  'listen({ port: -1 })': (n) => n.createServer().listen({ port: -1 }),
  "listen({ port: 'abc' })": (n) => n.createServer().listen({ port: 'abc' }),
  'listen({})': (n) => n.createServer().listen({}),
  'listen({ port: true })': (n) => n.createServer().listen({ port: true }),
  'listen({ host: 1 })': (n) => n.createServer().listen({ host: 1 }),
  'listen({ port: 0, signal: 5 })': (n) => n.createServer().listen({ port: 0, signal: 5 }),
  'listen twice': (n) => {
    const s = n.createServer();
    s.listen(0);
    try {
      return s.listen(0);
    } finally {
      s.close();
    }
  },
};

// ---- environments -----------------------------------------------------------------------------------

const nodeEnv: NetEnv = { name: 'node:net', net: nodeNet as unknown as NetLike, host: '127.0.0.1' };

function keepnetEnv(opts: ConstructorParameters<typeof FakeNetwork>[0] = {}): { env: NetEnv; world: FakeNetwork; net: NetModule } {
  const world = new FakeNetwork(opts);
  const net = createNet(world.channel(ip('10.0.0.1')));
  return { env: { name: 'keepnet (fake channel)', net: net as unknown as NetLike, host: '127.0.0.1' }, world, net };
}

/** Every endpoint and listener released once the loop is quiet. */
async function noLeaks(t: Test, world: FakeNetwork): Promise<void> {
  await world.settle();
  t.equal(world.open, 0, 'every connection endpoint closed');
  t.equal(world.listeners, 0, 'every listener closed');
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;

if (isMain) {
  t.test('differential: the same event sequences as node:net', async (t) => {
    for (const [name, scenario] of Object.entries(SCENARIOS)) {
      await t.test(name, async (t) => {
        const expected = await runScenario(scenario, nodeEnv);
        const k = keepnetEnv();
        const got = await runScenario(scenario, k.env);
        t.same(got, expected, 'keepnet = node:net');
        t.ok(Object.values(expected).some((l) => l.length > 0), 'the scenario recorded something');
        await noLeaks(t, k.world);
      });
    }
  });

  t.test('argument and state errors: the same as node:net', async (t) => {
    const k = keepnetEnv();
    for (const [name, fn] of Object.entries(VALIDATION)) {
      const cleanup: unknown[] = [];
      const n = outcome(() => fn(nodeEnv.net), cleanup);
      const o = outcome(() => fn(k.env.net), cleanup);
      t.same(o, n, name);
      for (const x of cleanup) {
        const s = x as AnySocket;
        if (s && typeof s.destroy === 'function') {
          s.on('error', () => {});
          s.destroy();
        } else if (s && typeof s.close === 'function') s.close();
      }
    }
    t.throws(() => k.net.connect({ port: -1 }), { code: 'ERR_SOCKET_BAD_PORT', name: 'RangeError' });
    t.throws(() => nodeNet.connect({ port: -1 }), { code: 'ERR_SOCKET_BAD_PORT', name: 'RangeError' });
    await noLeaks(t, k.world);
  });

  // ---- keepnet only -------------------------------------------------------------------------------

  t.test('write backpressure: the send buffer fills, write() says false, drain follows', async (t) => {
    const k = keepnetEnv({ sendBufferSize: 4096, recvBufferSize: 4096 });
    let sock: AnySocket;
    const l = await listening(k.env.net, '127.0.0.1', { pauseOnConnect: true }, (s) => (sock = s));
    const accepted = next(l.server, 'connection');
    const c = k.net.connect(l.port, '127.0.0.1');
    await next(c, 'connect');
    await accepted;
    let drains = 0;
    c.on('drain', () => drains++);
    const chunk = Buffer.alloc(8192, 7);
    const results: boolean[] = [];
    for (let i = 0; i < 4; i++) results.push(c.write(chunk));
    t.same(results, [true, false, false, false], 'false once 16 KiB (highWaterMark) wait');
    await k.world.settle();
    const cConn = [...k.world.endpoints].find((e) => e.localPort === c.localPort) as FakeConn;
    const sConn = cConn.peer as FakeConn;
    t.equal(sConn.received, 4096, "the paused reader's receive buffer is full");
    t.equal(cConn.unacknowledged, 4096, "the writer's send buffer is full");
    t.equal(cConn.writableSpace, 0, 'no space left');
    t.equal(c.writableLength, 4 * 8192 - 8192, 'the rest waits in the stream');
    t.equal(drains, 0, 'no drain while the peer does not read');
    t.equal(sock.bytesRead, 0, 'nothing taken out of the receive buffer while paused');
    let got = 0;
    sock.on('data', (d: Buffer) => (got += d.length));
    sock.resume();
    await next(c, 'drain');
    t.equal(drains, 1, 'drain once everything is in the send buffer');
    c.end();
    await next(sock, 'end');
    t.equal(got, 4 * 8192, 'every byte arrived');
    t.equal(sock.bytesRead, 4 * 8192);
    t.equal(c.bytesWritten, 4 * 8192);
    await next(c, 'close');
    await closeServer(l.server);
    await noLeaks(t, k.world);
  });

  t.test('reading stops at the readable highWaterMark and while paused: the window closes', async (t) => {
    const k = keepnetEnv({ sendBufferSize: 8192, recvBufferSize: 8192 });
    let sock: AnySocket;
    const l = await listening(k.env.net, '127.0.0.1', { highWaterMark: 1024 }, (s) => (sock = s));
    const c = k.net.connect(l.port, '127.0.0.1');
    await next(c, 'connect');
    c.write(Buffer.alloc(20000, 1));
    await k.world.settle();
    const sConn = [...k.world.endpoints].find((e) => e.localPort === l.port) as FakeConn;
    t.ok(sock.readableLength >= 1024 && sock.readableLength < 1024 + 65536, `the stream holds about highWaterMark (${sock.readableLength})`);
    t.equal(sConn.received, 8192, 'the rest stays in the receive buffer');
    t.equal(sock.bytesRead, sock.readableLength, 'bytesRead counts what was taken');

    // Flowing, then paused: bytes stay in the receive buffer; an explicit read() takes some.
    let got = 0;
    sock.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= 4096 && !sock.isPaused()) sock.pause();
    });
    await k.world.settle();
    t.ok(sock.isPaused(), 'paused by the data handler');
    const held = sConn.received;
    t.ok(held > 0, `bytes held in the receive buffer while paused (${held})`);
    const before = sock.bytesRead;
    await k.world.settle();
    t.equal(sock.bytesRead, before, 'nothing more taken while paused');
    const r = sock.read();
    t.ok(r === null || Buffer.isBuffer(r), 'read() while paused');
    t.ok(sock.bytesRead > before, 'an explicit read() takes bytes again');
    sock.resume();
    c.end();
    await next(sock, 'end');
    t.equal(got, 20000, "every byte delivered once (read() emits 'data' too)");
    await next(sock, 'close');
    await closeServer(l.server);
    await noLeaks(t, k.world);
  });

  t.test("a 'readable' consumer reads even after pause()", async (t) => {
    const k = keepnetEnv();
    let sock: AnySocket;
    const l = await listening(k.env.net, '127.0.0.1', { pauseOnConnect: true }, (s) => (sock = s));
    const c = k.net.connect(l.port, '127.0.0.1');
    c.end('via readable');
    await next(l.server, 'connection');
    let text = '';
    sock.on('readable', () => {
      let d: Buffer | null;
      while ((d = sock.read()) !== null) text += d.toString();
    });
    await next(sock, 'end');
    t.equal(text, 'via readable');
    await next(sock, 'close');
    await closeServer(l.server);
    await noLeaks(t, k.world);
  });

  t.test('pipe() keeps backpressure through pause/resume', async (t) => {
    const k = keepnetEnv({ sendBufferSize: 2048, recvBufferSize: 2048 });
    const l = await listening(k.env.net, '127.0.0.1', {}, (s) => s.pipe(s));
    const c = k.net.connect(l.port, '127.0.0.1');
    const payload = Buffer.alloc(300000);
    for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
    const parts: Buffer[] = [];
    c.on('data', (d: Buffer) => parts.push(d));
    c.end(payload);
    await next(c, 'close');
    t.ok(Buffer.concat(parts).equals(payload), 'echoed intact through 2 KiB buffers');
    await closeServer(l.server);
    await noLeaks(t, k.world);
  });

  t.test('close() with unread bytes resets the peer (as Linux)', async (t) => {
    const k = keepnetEnv();
    let sock: AnySocket;
    const l = await listening(k.env.net, '127.0.0.1', { pauseOnConnect: true }, (s) => (sock = s));
    const client: string[] = [];
    const c = k.net.connect(l.port, '127.0.0.1');
    record(c, client);
    await next(c, 'connect');
    c.write('unread');
    await k.world.settle();
    const sConn = [...k.world.endpoints].find((e) => e.localPort === l.port) as FakeConn;
    t.equal(sConn.received, 6, 'the bytes wait in the receive buffer');
    sock.destroy();
    await next(c, 'close');
    t.same(client, ['attempt:127.0.0.1/4', 'connect', 'ready', 'error:ECONNRESET|read ECONNRESET|syscall=read|errno=-104', 'close:true']);
    t.ok(sConn.sentReset, 'a RST went out');
    await closeServer(l.server);
    await noLeaks(t, k.world);
  });

  t.test('a reset while paused is found by the next read, as libuv finds it', async (t) => {
    const k = keepnetEnv();
    let sock: AnySocket;
    const l = await listening(k.env.net, '127.0.0.1', { pauseOnConnect: true }, (s) => (sock = s));
    const accepted = next(l.server, 'connection');
    const c = k.net.connect(l.port, '127.0.0.1');
    await next(c, 'connect');
    await accepted;
    const log: string[] = [];
    record(sock, log);
    c.write('before the reset', () => c.resetAndDestroy());
    await next(c, 'close');
    await k.world.settle();
    t.same(log, [], 'nothing reported while paused');
    sock.resume();
    await next(sock, 'close');
    // Linux would still hand out the bytes that came before the RST; the channel releases a failed
    // connection's buffers at onClose (tcp-channel.ts), so a paused reader loses them.
    t.same(log, ['error:ECONNRESET|read ECONNRESET|syscall=read|errno=-104', 'close:true'], 'then the error');
    await closeServer(l.server);
    await noLeaks(t, k.world);
  });

  t.test('connect errors Node cannot show on loopback', async (t) => {
    const world = new FakeNetwork({ connectTimeoutMs: 10 });
    world.blackhole(ip('10.9.9.9'));
    const a = world.channel(ip('10.0.0.1'));
    const net = createNet(a);
    const run = async (args: unknown[]): Promise<string[]> => {
      const log: string[] = [];
      const s = (net.connect as (...x: unknown[]) => AnySocket)(...args);
      record(s, log);
      await next(s, 'close');
      return log;
    };
    t.same(await run([80, '10.9.9.9']), ['attempt:10.9.9.9/4', 'attemptFailed:10.9.9.9/4/ETIMEDOUT', 'error:ETIMEDOUT|connect ETIMEDOUT 10.9.9.9:PORT|syscall=connect|errno=-110|address=10.9.9.9|port=PORT', 'close:true'], 'timeout');
    t.same(await run([80, '10.8.8.8']), ['attempt:10.8.8.8/4', 'attemptFailed:10.8.8.8/4/EHOSTUNREACH', 'error:EHOSTUNREACH|connect EHOSTUNREACH 10.8.8.8:PORT|syscall=connect|errno=-113|address=10.8.8.8|port=PORT', 'close:true'], 'unreachable');
    t.same(await run([80, '::1']), ['attempt:::1/6', 'error:EAFNOSUPPORT|connect EAFNOSUPPORT ::1:PORT|syscall=connect|errno=-97|address=::1|port=PORT', 'close:true'], 'IPv6 literal');
    t.same(await run([80, 'nothing.example']), ['lookup:ENOTFOUND/undefined/nothing.example', 'error:ENOTFOUND|getaddrinfo ENOTFOUND nothing.example|syscall=getaddrinfo|errno=-3008', 'close:true'], 'a name: ENOTFOUND, as a failed getaddrinfo');
    const s = net.connect(80, 'nothing.example');
    const [err] = (await next(s, 'error')) as [any];
    t.equal(err.hostname, 'nothing.example', 'hostname set as dns sets it');
    t.same(await run([{ port: 80, host: '10.0.0.1', localAddress: '10.0.0.1', localPort: 5000 }]), [
      'attempt:10.0.0.1/4',
      'attemptFailed:10.0.0.1/4/ECONNREFUSED',
      'error:ECONNREFUSED|connect ECONNREFUSED 10.0.0.1:PORT - Local (10.0.0.1:PORT)|syscall=connect|errno=-111|address=10.0.0.1|port=PORT',
      'close:true',
    ], 'refused, with the local address in the message as Node');
    t.same(await run([{ port: 80, host: '10.0.0.1', localAddress: '10.7.7.7' }]), ['attempt:10.0.0.1/4', 'error:EADDRNOTAVAIL|bind EADDRNOTAVAIL 10.7.7.7|syscall=bind|errno=-99|address=10.7.7.7', 'close:true'], 'local address not ours');
    const l = await listening(net as unknown as NetLike, '0.0.0.0');
    t.same(await run([{ port: 80, host: '10.0.0.1', localPort: l.port }]), ['attempt:10.0.0.1/4', `error:EADDRINUSE|bind EADDRINUSE 0.0.0.0:PORT|syscall=bind|errno=-98|address=0.0.0.0|port=PORT`, 'close:true'], 'local port in use');
    await closeServer(l.server);
    await noLeaks(t, world);
  });

  t.test('no IPC: path arguments are refused, clearly', async (t) => {
    const k = keepnetEnv();
    for (const call of [() => k.net.connect('/tmp/x.sock' as unknown as number), () => k.net.connect({ path: '/tmp/x.sock' }), () => k.net.createServer().listen('/tmp/x.sock'), () => k.net.createServer().listen({ path: '/tmp/x.sock' })]) {
      t.throws(call, { code: 'ERR_INVALID_ARG_VALUE', name: 'TypeError', message: /not supported: keepnet has no IPC/ });
    }
    t.throws(() => new k.net.Socket({ fd: 3 }), { code: 'ERR_INVALID_ARG_VALUE' });
    t.throws(() => new k.net.Socket(3 as unknown as object), { code: 'ERR_INVALID_ARG_VALUE' });
    await noLeaks(t, k.world);
  });

  t.test('listen errors and addresses', async (t) => {
    const world = new FakeNetwork();
    const net = createNet(world.channel(ip('10.0.0.1')));
    const a = net.createServer();
    a.listen(8080);
    await next(a, 'listening');
    t.same(a.address(), { address: '0.0.0.0', family: 'IPv4', port: 8080 }, 'no host: 0.0.0.0');
    t.equal(a.listening, true);
    const fail = async (args: unknown[]): Promise<any> => {
      const s = net.createServer();
      (s.listen as (...x: unknown[]) => void)(...args);
      const [err] = await next(s, 'error');
      t.equal(s.listening, false);
      t.equal(s.address(), null);
      return err;
    };
    let e = await fail([8080]);
    t.match(e, { message: 'listen EADDRINUSE: address already in use 0.0.0.0:8080', code: 'EADDRINUSE', errno: -98, syscall: 'listen', address: '0.0.0.0', port: 8080 });
    e = await fail([8080, '10.0.0.1']);
    t.equal(e.message, 'listen EADDRINUSE: address already in use 10.0.0.1:8080', 'a wildcard listener takes the port on every address');
    e = await fail([8081, '10.1.2.3']);
    t.match(e, { message: 'listen EADDRNOTAVAIL: address not available 10.1.2.3:8081', code: 'EADDRNOTAVAIL', syscall: 'listen' });
    e = await fail([8082, '::1']);
    t.match(e, { message: 'listen EAFNOSUPPORT: address family not supported ::1:8082', code: 'EAFNOSUPPORT' });
    e = await fail([8083, 'nothing.example']);
    t.match(e, { message: 'getaddrinfo ENOTFOUND nothing.example', code: 'ENOTFOUND' });
    const b = net.createServer();
    b.listen(8084, '::');
    await next(b, 'listening');
    t.same(b.address(), { address: '0.0.0.0', family: 'IPv4', port: 8084 }, "'::' listens on 0.0.0.0");
    const c = net.createServer();
    c.listen({ port: 8085, host: 'localhost', backlog: 7 });
    await next(c, 'listening');
    t.same(c.address(), { address: '127.0.0.1', family: 'IPv4', port: 8085 }, "'localhost' is 127.0.0.1");
    const ac = new AbortController();
    const d = net.createServer();
    d.listen({ port: 0, signal: ac.signal });
    await next(d, 'listening');
    ac.abort();
    await next(d, 'close');
    t.equal(d.listening, false, 'an aborted signal closes the server');
    for (const s of [a, b, c]) await closeServer(s);
    await noLeaks(t, world);
  });

  t.test('two stacks: addresses as the peer sees them; options reach the connection', async (t) => {
    const world = new FakeNetwork();
    const netA = createNet(world.channel(ip('10.0.0.1')));
    const netB = createNet(world.channel(ip('10.0.0.2')));
    let sock: AnySocket;
    const server = netA.createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 5000 }, (s) => (sock = s));
    server.listen(7000, '10.0.0.1');
    await next(server, 'listening');
    const accepted = next(server, 'connection');
    const c = netB.connect({ port: 7000, host: '10.0.0.1', noDelay: true, keepAlive: true, keepAliveInitialDelay: 3000 });
    await next(c, 'connect');
    await accepted;
    t.equal(c.remoteAddress, '10.0.0.1');
    t.equal(c.localAddress, '10.0.0.2');
    t.equal(sock.remoteAddress, '10.0.0.2');
    t.equal(sock.remotePort, c.localPort);
    t.equal(sock.localPort, 7000);
    const req = world.channel(ip('10.0.0.2')).requests[0];
    t.match(req, { remoteAddress: ip('10.0.0.1'), remotePort: 7000, noDelay: true, keepAlive: true, keepAliveIdleMs: 3000 }, 'connect options in the request');
    const sConn = [...world.endpoints].find((e) => e.localPort === 7000) as FakeConn;
    t.match(sConn, { noDelay: true, keepAlive: true, keepAliveIdleMs: 5000 }, "the server's options on accepted connections");
    sock.setNoDelay(false);
    sock.setKeepAlive(false);
    t.match(sConn, { noDelay: false, keepAlive: false });
    c.destroy();
    await next(sock, 'close');
    await closeServer(server);
    await noLeaks(t, world);
  });

  t.test('an error on an established connection (keepalive timeout): read ETIMEDOUT', async (t) => {
    const k = keepnetEnv();
    let sock: AnySocket;
    const l = await listening(k.env.net, '127.0.0.1', {}, (s) => (sock = s).resume());
    const log: string[] = [];
    const accepted = next(l.server, 'connection');
    const c = k.net.connect(l.port, '127.0.0.1');
    record(c, log);
    await next(c, 'connect');
    await accepted;
    const cConn = [...k.world.endpoints].find((e) => e.localPort === c.localPort) as FakeConn;
    cConn.fail('ETIMEDOUT');
    await next(c, 'close');
    t.same(log, ['attempt:127.0.0.1/4', 'connect', 'ready', 'error:ETIMEDOUT|read ETIMEDOUT|syscall=read|errno=-110', 'close:true']);
    sock.destroy();
    await closeServer(l.server);
    await noLeaks(t, k.world);
  });

  t.test('writing after the peer ended (allowHalfOpen false): EPIPE', async (t) => {
    const k = keepnetEnv();
    const l = await listening(k.env.net, '127.0.0.1', {}, (s) => s.end());
    const log: string[] = [];
    const c = k.net.connect(l.port, '127.0.0.1');
    record(c, log);
    c.resume();
    await next(c, 'end');
    await new Promise((r) => setImmediate(r));
    const cbErr = new Promise((r) => c.write('late', r));
    t.equal(c.writableEnded, true, 'our side ended after the FIN');
    await next(c, 'close');
    t.match(await cbErr, { code: /EPIPE|ERR_STREAM/ }, 'the write fails');
    await closeServer(l.server);
    await noLeaks(t, k.world);
  });

  t.test('custom lookup option, reconnecting a destroyed socket, resetAndDestroy on a new Socket', async (t) => {
    const k = keepnetEnv();
    const l = await listening(k.env.net, '127.0.0.1', {}, (s) => s.end('hi'));
    const log: string[] = [];
    const lookup = (host: string, opts: any, cb: any): void => {
      log.push(`lookup(${host}, all=${opts.all})`);
      setImmediate(() => (opts.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4)));
    };
    const c = k.net.connect({ port: l.port, host: 'my.service', lookup });
    record(c, log);
    await next(c, 'close');
    t.same(log, ['lookup(my.service, all=true)', 'lookup:127.0.0.1/4/my.service', 'attempt:127.0.0.1/4', 'connect', 'ready', 'data:hi', 'end', 'finish', 'close:false']);
    log.length = 0;
    c.connect(l.port, '127.0.0.1');
    await next(c, 'close');
    t.same(log, ['attempt:127.0.0.1/4', 'connect', 'ready', 'data:hi', 'end', 'finish', 'close:false'], 'connect() again after close');
    const fresh = new k.net.Socket();
    const fl: string[] = [];
    record(fresh, fl);
    t.equal(fresh.resetAndDestroy(), fresh);
    await next(fresh, 'close');
    t.same(fl, ['error:ERR_SOCKET_CLOSED|Socket is closed', 'close:undefined'], 'as Node');
    await closeServer(l.server);
    await noLeaks(t, k.world);
  });

  t.test('a Socket or Server without a stack says so', async (t) => {
    const { Socket, Server } = await import('../../kernel-shim/net.js');
    t.throws(() => new Socket().connect(80, '10.0.0.1'), { code: 'ERR_KEEPNET_NO_STACK' });
    t.throws(() => new Server().listen(80), { code: 'ERR_KEEPNET_NO_STACK' });
  });
}
