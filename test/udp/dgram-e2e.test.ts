/**
 * The dgram API end to end with no threads: DgramApi -> (shim ring) -> the real udp server -> a fake
 * ip that loops local datagrams back (test/udp/harness.ts). Events, payload forms, connected sockets,
 * ICMP-driven errors, pool exhaustion and full rings (waits, never losses), the bounded queue, close
 * and port reuse, keep-alive, a udp restart mid-stream, and no buffer or socket left behind.
 */
import t from 'tap';
import { DgramApi, type RemoteInfo, type Socket } from '../../kernel-shim/dgram.js';
import { SocketTable } from '../../servers/udp/socket-table.js';
import { Bench, IFACE, ip, once, type NetOptions } from './harness.js';
import { ipv4Format } from '../../servers/wire/ipv4.js';

const ME = ipv4Format(IFACE.address);

async function withBench(o: NetOptions & { maxQueueDatagrams?: number }, fn: (b: Bench, api: DgramApi) => Promise<void>): Promise<void> {
  const b = new Bench(o);
  const api = new DgramApi(b.shim, { maxQueueDatagrams: o.maxQueueDatagrams });
  b.start();
  try {
    await fn(b, api);
  } finally {
    b.stop();
    api.close();
  }
}

/** Bound socket on `port` (0: ephemeral) and `address`. */
async function bound(api: DgramApi, port = 0, address?: string, opts: { reuseAddr?: boolean } = {}): Promise<Socket> {
  const s = api.createSocket({ type: 'udp4', ...opts });
  const listening = once(s, 'listening');
  s.bind(port, address);
  await listening;
  return s;
}

function collect(s: Socket, n: number, ms = 5000): Promise<{ msg: Buffer; rinfo: RemoteInfo }[]> {
  const got: { msg: Buffer; rinfo: RemoteInfo }[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${got.length} of ${n} datagrams`)), ms);
    const on = (msg: Buffer, rinfo: RemoteInfo): void => {
      got.push({ msg, rinfo });
      if (got.length === n) {
        clearTimeout(timer);
        s.off('message', on);
        resolve(got);
      }
    };
    s.on('message', on);
  });
}

/** Wait (polling on timers, for the pool's retry timer) until `cond` holds. */
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function closeAll(...socks: Socket[]): Promise<void> {
  await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
}

async function noLeaks(t: { equal: (found: unknown, wanted: unknown, msg: string) => unknown }, b: Bench): Promise<void> {
  await b.settle();
  t.equal(b.net.inUse(), 0, 'every pool buffer is back');
  t.equal(SocketTable.attach(b.net.state).size, 0, 'every socket is gone from the table');
}

t.test('two sockets talk over 127.0.0.1 and over the stack address', async (t) => {
  await withBench({}, async (b, api) => {
    const a = await bound(api, 4000);
    t.same(a.address(), { address: '0.0.0.0', family: 'IPv4', port: 4000 });
    const c = await bound(api, 0, ME);
    const port = c.address().port;
    t.ok(port >= 49152, 'ephemeral');
    t.equal(c.address().address, ME);
    const got = collect(a, 2);
    const sent: (number | undefined)[] = [];
    c.send('over the loopback', 4000, '127.0.0.1', (err, n) => sent.push(err ? -1 : n));
    c.send(Buffer.from('to my own address'), 4000, ME, (err, n) => sent.push(err ? -1 : n));
    const r = await got;
    t.same(r.map((x) => x.msg.toString()), ['over the loopback', 'to my own address']);
    t.same(r[0].rinfo, { address: ME, family: 'IPv4', port, size: 17 }, 'the socket is bound to the stack address: that is its source');
    t.same(sent, [17, 17], 'send callbacks with the byte counts');
    const back = collect(c, 1);
    a.send('pong', r[0].rinfo.port, r[0].rinfo.address);
    t.same((await back)[0].rinfo, { address: ME, family: 'IPv4', port: 4000, size: 4 });
    await closeAll(a, c);
    await noLeaks(t, b);
  });
});

t.test('implicit bind on first send; every payload form', async (t) => {
  await withBench({}, async (b, api) => {
    const rx = await bound(api, 5000, '127.0.0.1');
    const tx = api.createSocket('udp4');
    const listening = once(tx, 'listening');
    const got = collect(rx, 7);
    tx.send('str', 5000, '127.0.0.1');
    t.throws(() => tx.address(), { code: 'EBADF', syscall: 'getsockname' }, 'not bound yet');
    await listening;
    t.equal(tx.address().address, '0.0.0.0');
    tx.send(Buffer.from('xxBUFyy'), 2, 3, 5000, '127.0.0.1');
    tx.send(new Uint16Array([0x4241, 0x4443]), 5000, '127.0.0.1');
    tx.send(new DataView(new Uint8Array([0x44, 0x56]).buffer), 5000, '127.0.0.1');
    tx.send(['li', Buffer.from('st'), new Uint8Array([0x21])], 5000, '127.0.0.1');
    tx.send(Buffer.alloc(0), 5000, '127.0.0.1');
    tx.send([], 5000);
    const r = await got;
    t.same(
      r.map((x) => x.msg.toString('latin1')),
      ['str', 'BUF', 'ABCD', 'DV', 'list!', '', ''],
    );
    t.equal(r[0].rinfo.address, '127.0.0.1', 'a wildcard socket sends to the loopback from 127.0.0.1');
    await closeAll(rx, tx);
    await noLeaks(t, b);
  });
});

t.test('the largest datagram, 65507 bytes, and EMSGSIZE past it', async (t) => {
  await withBench({}, async (b, api) => {
    const rx = await bound(api, 5001);
    const tx = await bound(api);
    const big = Buffer.alloc(65507, 0xab);
    big[65506] = 1;
    const got = collect(rx, 1);
    tx.send(big, 5001, '127.0.0.1');
    const [r] = await got;
    t.ok(r.msg.equals(big), 'intact');
    const err = await new Promise<NodeJS.ErrnoException | null>((res) => tx.send(Buffer.alloc(65508), 5001, '127.0.0.1', (e) => res(e as NodeJS.ErrnoException)));
    t.match(err, { code: 'EMSGSIZE', errno: -90, syscall: 'send', address: '127.0.0.1', port: 5001, message: 'send EMSGSIZE 127.0.0.1:5001' });
    await closeAll(rx, tx);
    await noLeaks(t, b);
  });
});

t.test('connected sockets: connect, send without address, ECONNREFUSED, disconnect', async (t) => {
  await withBench({}, async (b, api) => {
    const srv = await bound(api, 6000);
    const cl = api.createSocket('udp4');
    const events: string[] = [];
    cl.on('listening', () => events.push('listening'));
    await new Promise<void>((res) => cl.connect(6000, () => res()));
    events.push('connect');
    t.same(events, ['listening', 'connect'], "connect binds first, as Node's does");
    t.same(cl.remoteAddress(), { address: '127.0.0.1', family: 'IPv4', port: 6000 }, 'the default address is 127.0.0.1');
    t.equal(cl.address().address, '127.0.0.1', 'the local address is the source address chosen for the peer');
    const got = collect(srv, 1);
    cl.send('hi');
    t.equal((await got)[0].msg.toString(), 'hi');
    t.throws(() => cl.send('x', 0, 1, 6000), { code: 'ERR_SOCKET_DGRAM_IS_CONNECTED' });
    // Datagrams from elsewhere do not reach a connected socket.
    const stranger = await bound(api);
    let leaked = 0;
    cl.on('message', () => leaked++);
    stranger.send('not for you', cl.address().port, '127.0.0.1');
    await b.settle();
    t.equal(leaked, 0);
    // The server goes away: the next datagram comes back as ICMP port unreachable.
    await closeAll(srv);
    const err = once<[NodeJS.ErrnoException]>(cl, 'error');
    cl.send('anyone?');
    const [e] = await err;
    t.match(e, { code: 'ECONNREFUSED', syscall: 'recvmsg', errno: -111, message: 'recvmsg ECONNREFUSED' });
    cl.disconnect();
    t.throws(() => cl.remoteAddress(), { code: 'ERR_SOCKET_DGRAM_NOT_CONNECTED' });
    t.equal(cl.address().address, '0.0.0.0', 'back to the bound address');
    await closeAll(cl, stranger);
    await noLeaks(t, b);
  });
});

t.test('bind errors arrive as Node reports them', async (t) => {
  await withBench({}, async (b, api) => {
    const a = await bound(api, 7000);
    const c = api.createSocket('udp4');
    const err = once<[NodeJS.ErrnoException]>(c, 'error');
    c.bind(7000);
    const [e] = await err;
    t.match(e, { code: 'EADDRINUSE', syscall: 'bind', address: '0.0.0.0', port: 7000, errno: -98, message: 'bind EADDRINUSE 0.0.0.0:7000' });
    // The socket may bind again after a failure, as in Node.
    const l = once(c, 'listening');
    c.bind(7001);
    await l;
    const d = api.createSocket('udp4');
    const err2 = once<[NodeJS.ErrnoException]>(d, 'error');
    d.bind(7002, '10.7.0.99');
    t.match((await err2)[0], { code: 'EADDRNOTAVAIL', message: 'bind EADDRNOTAVAIL 10.7.0.99:7002' });
    // reuseAddr on both: shared.
    const r1 = await bound(api, 7003, undefined, { reuseAddr: true });
    const r2 = await bound(api, 7003, undefined, { reuseAddr: true });
    t.equal(r2.address().port, 7003);
    await closeAll(a, c, d, r1, r2);
    await noLeaks(t, b);
  });
});

t.test('close frees the port at once; events; closing twice', async (t) => {
  await withBench({}, async (b, api) => {
    const a = await bound(api, 8000);
    const order: string[] = [];
    a.on('close', () => order.push('close'));
    a.close(() => order.push('cb'));
    // The CLOSE goes first on the one ordered queue: the port is free for the next BIND.
    const c = await bound(api, 8000);
    t.same(order, ['close', 'cb']);
    t.throws(() => a.close(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    t.throws(() => a.send('x', 1, '127.0.0.1'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    t.throws(() => a.address(), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    // A close during the implicit bind waits for the bind (as Node's does), then goes.
    const d = api.createSocket('udp4');
    d.send('x', 8000, '127.0.0.1');
    const closed = once(d, 'close');
    d.close();
    await closed;
    await closeAll(c);
    await noLeaks(t, b);
  });
});

t.test('pool exhaustion and a full ring: datagrams wait, none is lost, order kept', async (t) => {
  await withBench({ smallBuffers: 4, bigBuffers: 1, ringCapacity: 1024 }, async (b, api) => {
    const rx = await bound(api, 9000);
    const tx = await bound(api);
    const n = 300;
    b.pauseUdp();
    const acks: number[] = [];
    for (let i = 0; i < n; i++) tx.send(`m${i}`, 9000, '127.0.0.1', () => acks.push(i));
    await b.settle();
    t.ok(tx.getSendQueueCount() > 0, `${tx.getSendQueueCount()} waiting for buffers`);
    t.equal(tx.getSendQueueSize() > 0, true);
    t.ok(acks.length < n, 'callbacks only for what the stack took');
    const got = collect(rx, n);
    b.resume();
    const r = await got;
    t.same(
      r.map((x) => x.msg.toString()),
      Array.from({ length: n }, (_, i) => `m${i}`),
      'all of them, in order',
    );
    await until(() => acks.length === n);
    t.equal(acks.length, n);
    t.same(acks, [...acks].sort((x, y) => x - y), 'callbacks in order');
    t.equal(tx.getSendQueueCount(), 0);
    t.ok(api.channel.stats.poolWaits > 0, 'it waited for the pool');
    await closeAll(rx, tx);
    await noLeaks(t, b);
  });
});

t.test('the queue is bounded: ENOBUFS past it, to the callback or as an error event', async (t) => {
  await withBench({ smallBuffers: 2, bigBuffers: 1, maxQueueDatagrams: 3 }, async (b, api) => {
    const tx = await bound(api);
    b.pauseUdp();
    const results: (string | null)[] = [];
    for (let i = 0; i < 8; i++) tx.send('x', 9, '127.0.0.1', (e) => results.push(e ? (e as NodeJS.ErrnoException).code! : null));
    const err = once<[NodeJS.ErrnoException]>(tx, 'error');
    tx.send('y', 9, '127.0.0.1');
    t.match((await err)[0], { code: 'ENOBUFS', syscall: 'send', address: '127.0.0.1', port: 9 }, 'without a callback: an error event');
    await b.settle();
    t.same([...results].sort(), ['ENOBUFS', 'ENOBUFS', null, null, null], '3 buffers taken and handed over, 3 queued, 2 refused');
    t.equal(tx.getSendQueueCount(), 3);
    b.resume();
    await until(() => results.length === 8);
    t.equal(results.filter((r) => r === null).length, 6, 'the queued ones went when the pool had room');
    await closeAll(tx);
    await noLeaks(t, b);
  });
});

t.test('keep-alive while bound and ref()d, like a libuv handle', async (t) => {
  await withBench({}, async (_b, api) => {
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const base = timers();
    const s = api.createSocket('udp4');
    t.equal(timers(), base, 'an unbound socket does not hold the process');
    await new Promise<void>((r) => s.bind(0, () => r()));
    t.equal(timers(), base + 1, 'bound: it does');
    s.unref();
    t.equal(timers(), base);
    s.ref();
    t.equal(timers(), base + 1);
    await closeAll(s);
    t.equal(timers(), base, 'closed: released');
  });
});

t.test('setTTL and setBroadcast reach the stack', async (t) => {
  await withBench({}, async (b, api) => {
    const s = await bound(api);
    t.equal(s.setTTL(5), 5);
    s.send('x', 9, '10.7.0.50');
    await b.settle();
    t.equal(b.ipf.wire.at(-1)?.ttl, 5);
    const e = await new Promise<NodeJS.ErrnoException | null>((r) => s.send('x', 9, '255.255.255.255', (err) => r(err as NodeJS.ErrnoException)));
    t.match(e, { code: 'EACCES', syscall: 'send', message: 'send EACCES 255.255.255.255:9' });
    const e2 = await new Promise<NodeJS.ErrnoException | null>((r) => s.send('x', 9, '10.7.0.255', (err) => r(err as NodeJS.ErrnoException)));
    t.match(e2, { code: 'EACCES' }, 'the directed broadcast too');
    s.setBroadcast(true);
    const ok = await new Promise<Error | null>((r) => s.send('all', 9, '255.255.255.255', (err) => r(err)));
    t.equal(ok, null);
    await b.settle();
    t.same([b.ipf.wire.at(-1)?.dst, b.ipf.wire.at(-1)?.payload.toString()], [ip('255.255.255.255'), 'all']);
    await closeAll(s);
    await noLeaks(t, b);
  });
});

t.test('closing the API closes its sockets and lets the process go', async (t) => {
  const b = new Bench();
  const api = new DgramApi(b.shim);
  b.start();
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const base = timers();
  const s = await bound(api, 0);
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  s.send('x', 1, '127.0.0.1');
  t.equal(timers(), base + 1, 'the bound socket holds the process');
  api.close();
  await closed;
  t.equal(timers(), base, 'no keep-alive left');
  t.throws(() => s.send('x', 1, '127.0.0.1'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
  b.stop();
});

t.test('a udp server restart mid-stream: sockets and traffic carry on', async (t) => {
  await withBench({}, async (b, api) => {
    const rx = await bound(api, 9100);
    const tx = await bound(api);
    const got = collect(rx, 40);
    for (let i = 0; i < 20; i++) tx.send(`a${i}`, 9100, '127.0.0.1');
    await b.settle();
    b.restartUdp();
    for (let i = 0; i < 20; i++) tx.send(`b${i}`, 9100, '127.0.0.1');
    const r = await got;
    t.equal(r.length, 40);
    t.equal(r.at(-1)?.msg.toString(), 'b19');
    t.equal(b.host.generation, 2);
    await closeAll(rx, tx);
    await noLeaks(t, b);
  });
});
