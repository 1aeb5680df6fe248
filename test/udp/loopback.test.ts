/**
 * The dgram API through a real stack (worker threads: the udp and ip servers, the supervisor):
 * datagrams between sockets over 127.0.0.1 and over the stack's own address (ip's loopback), a port
 * unreachable coming back as ECONNREFUSED, and traffic across a crash of the udp server.
 *
 * Needs Stack.dgram (a DgramApi over the stack's ShimHost): skipped, saying so, until the stack has it.
 */
import t from 'tap';
import type { DgramApi, RemoteInfo, Socket } from '../../kernel-shim/dgram.js';
import { Stack } from '../../kernel-shim/stack.js';

const ADDRESS = '10.77.0.1';

function once<T extends unknown[]>(em: NodeJS.EventEmitter, event: string, ms = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      em.off(event, on);
      reject(new Error(`no '${event}' within ${ms} ms`));
    }, ms);
    const on = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args as T);
    };
    em.once(event, on);
  });
}

function messages(s: Socket, n: number, ms = 10_000): Promise<{ msg: Buffer; rinfo: RemoteInfo }[]> {
  const got: { msg: Buffer; rinfo: RemoteInfo }[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.off('message', on);
      reject(new Error(`${got.length} of ${n} datagrams within ${ms} ms`));
    }, ms);
    const on = (msg: Buffer, rinfo: RemoteInfo): void => {
      got.push({ msg, rinfo });
      if (got.length < n) return;
      clearTimeout(timer);
      s.off('message', on);
      resolve(got);
    };
    s.on('message', on);
  });
}

async function bound(dgram: DgramApi, port: number, address?: string): Promise<Socket> {
  const s = dgram.createSocket('udp4');
  const l = once(s, 'listening');
  s.bind(port, address);
  await l;
  return s;
}

function close(...socks: Socket[]): Promise<void[]> {
  return Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
}

const stack = new Stack({ address: `${ADDRESS}/24` });
await stack.start();
t.teardown(() => stack.close());
const dgram = (stack as unknown as { dgram?: DgramApi }).dgram;

t.test('dgram through a real stack', { skip: dgram === undefined ? 'Stack has no dgram API yet (stack.dgram is undefined): skipped until it is plugged in' : false }, async (t) => {
  if (dgram === undefined) return;

  await t.test('127.0.0.1: one socket to another', async (t) => {
    const a = await bound(dgram, 0, '127.0.0.1');
    const b = await bound(dgram, 0);
    const got = messages(b, 3);
    for (const m of ['one', 'two', 'three']) a.send(m, b.address().port, '127.0.0.1');
    const r = await got;
    t.same(r.map((x) => x.msg.toString()), ['one', 'two', 'three']);
    t.same(r[0].rinfo, { address: '127.0.0.1', family: 'IPv4', port: a.address().port, size: 3 });
    const back = messages(a, 1);
    b.send('reply', r[0].rinfo.port, r[0].rinfo.address);
    t.equal((await back)[0].msg.toString(), 'reply');
    await close(a, b);
  });

  await t.test("the stack's own address", async (t) => {
    const a = await bound(dgram, 0);
    const b = await bound(dgram, 0, ADDRESS);
    const got = messages(b, 1);
    a.send(Buffer.alloc(3000, 7), b.address().port, ADDRESS);
    const [r] = await got;
    t.equal(r.msg.length, 3000, 'larger than the MTU: fine on the loopback');
    t.equal(r.rinfo.address, ADDRESS, 'a wildcard socket sends to our address from our address');
    await close(a, b);
  });

  await t.test('many datagrams, none lost', async (t) => {
    const a = await bound(dgram, 0);
    const b = await bound(dgram, 0, '127.0.0.1');
    const n = 500;
    const got = messages(b, n, 30_000);
    for (let i = 0; i < n; i++) a.send(`d${i}`, b.address().port, '127.0.0.1');
    const r = await got;
    t.equal(new Set(r.map((x) => x.msg.toString())).size, n);
    await close(a, b);
  });

  await t.test('a connected socket hears ECONNREFUSED for a closed port', async (t) => {
    const gone = await bound(dgram, 0, ADDRESS);
    const port = gone.address().port;
    await close(gone);
    const c = dgram.createSocket('udp4');
    await new Promise<void>((r) => c.connect(port, ADDRESS, () => r()));
    const err = once<[NodeJS.ErrnoException]>(c, 'error');
    c.send('anyone?');
    const [e] = await err;
    t.match(e, { code: 'ECONNREFUSED', syscall: 'recvmsg' });
    await close(c);
  });

  await t.test('a crash of the udp server: sockets survive, traffic resumes', async (t) => {
    const a = await bound(dgram, 0);
    const b = await bound(dgram, 0, '127.0.0.1');
    const first = messages(b, 1);
    a.send('before', b.address().port, '127.0.0.1');
    await first;
    const recovered = once(stack, 'recovered', 20_000);
    stack.inject('udp', 'crash');
    await recovered;
    const after = messages(b, 1);
    a.send('after', b.address().port, '127.0.0.1');
    t.equal((await after)[0].msg.toString(), 'after', 'the same sockets, on the new incarnation');
    await close(a, b);
  });

  await t.test('a crash of the udp server during a flood: nothing duplicated, nothing lost', async (t) => {
    const a = await bound(dgram, 0);
    const b = await bound(dgram, 0, '127.0.0.1');
    const seen = new Map<string, number>();
    b.on('message', (m) => seen.set(m.toString(), (seen.get(m.toString()) ?? 0) + 1));
    const n = 3000;
    const recovered = once(stack, 'recovered', 20_000);
    for (let i = 0; i < n; i++) {
      a.send(`f${i}`, b.address().port, '127.0.0.1');
      if (i === 1000) stack.inject('udp', 'crash');
    }
    await recovered;
    const end = Date.now() + 10_000;
    while (seen.size < n && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    t.equal(seen.size, n, 'every datagram arrived');
    t.equal([...seen.values()].filter((v) => v > 1).length, 0, 'none twice');
    await close(a, b);
    t.equal(stack.stats().pool.inUse, 0, 'every pool buffer is back');
  });
});
