/**
 * The dgram API against Node's own node:dgram: the same bad calls (and a few good ones) are made on a
 * real Node socket and on a keepnet socket, and what comes out (thrown error or event, its class,
 * name, code, message, errno, syscall, address, port) must be the same. keepnet's side runs on the
 * in-process bench (test/udp/harness.ts); Node's on the host's loopback.
 */
import dgram from 'node:dgram';
import t from 'tap';
import { DgramApi } from '../../kernel-shim/dgram.js';
import { Bench } from './harness.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type AnySocket = any;
type Factory = (type: unknown, listener?: unknown) => AnySocket;

/** What an error looks like, for comparison (ports that differ between the two runs are masked). */
function shape(e: unknown, mask: number[] = []): Record<string, unknown> {
  if (!(e instanceof Error)) return { notAnError: String(e) };
  const x = e as Error & Record<string, unknown>;
  let message = x.message;
  for (const p of mask) message = message.split(`:${p}`).join(':PORT');
  const out: Record<string, unknown> = { ctor: x.constructor.name, name: x.name, code: x.code, message };
  for (const k of ['errno', 'syscall', 'address', 'port'] as const) if (x[k] !== undefined) out[k] = mask.includes(x[k] as number) ? 'PORT' : x[k];
  return out;
}

function outcome(fn: () => unknown): Record<string, unknown> {
  try {
    const r = fn();
    return { returned: r === undefined ? 'undefined' : typeof r === 'object' && r !== null && 'send' in r ? 'this' : r };
  } catch (e) {
    return { threw: shape(e) };
  }
}

const SYNC_CASES: Record<string, (s: AnySocket) => unknown> = {
  'bind(0, 5)': (s) => s.bind(0, 5),
  'bind twice': (s) => {
    s.bind(0);
    return s.bind(0);
  },
  'bind with an object twice': (s) => {
    s.bind({ port: 0 });
    return s.bind({ port: 0, address: '127.0.0.1' });
  },
  'send(123, 80)': (s) => s.send(123, 80),
  'send(null, 80)': (s) => s.send(null, 80),
  'send({}, 80)': (s) => s.send({}, 80),
  'send(buf, 0)': (s) => s.send(Buffer.from('x'), 0),
  'send(buf)': (s) => s.send(Buffer.from('x')),
  'send(buf, 80, 5)': (s) => s.send(Buffer.from('x'), 80, 5),
  'send(buf, 0, 5, 80, a): length out of bounds': (s) => s.send(Buffer.from('x'), 0, 5, 80, '127.0.0.1'),
  'send(buf, 5, 0, 80, a): offset out of bounds': (s) => s.send(Buffer.from('x'), 5, 0, 80, '127.0.0.1'),
  'send(123, 0, 1, 80, a)': (s) => s.send(123, 0, 1, 80, '127.0.0.1'),
  'send([1], 80)': (s) => s.send([1], 80),
  "send(['a', 5], 80)": (s) => s.send(['a', 5], 80),
  "send('x', 80.5)": (s) => s.send('x', 80.5),
  "send('x', 65536)": (s) => s.send('x', 65536),
  "send('x', -1)": (s) => s.send('x', -1),
  "send('x', NaN)": (s) => s.send('x', NaN),
  "send('x', '  ')": (s) => s.send('x', '  '),
  "send('x', true)": (s) => s.send('x', true),
  "send('x', 80, 5)": (s) => s.send('x', 80, 5),
  "send('x', 80, {})": (s) => s.send('x', 80, {}),
  'connect(0)': (s) => s.connect(0),
  "connect('x')": (s) => s.connect('x'),
  'connect(65536)': (s) => s.connect(65536),
  'connect(-1)': (s) => s.connect(-1),
  'connect()': (s) => s.connect(),
  'connect(80, 5)': (s) => s.connect(80, 5),
  'connect(80, null)': (s) => s.connect(80, null),
  'connect twice': (s) => {
    s.connect(80);
    return s.connect(81);
  },
  'disconnect() unconnected': (s) => s.disconnect(),
  'remoteAddress() unconnected': (s) => s.remoteAddress(),
  'address() unbound': (s) => s.address(),
  "setTTL('x')": (s) => s.setTTL('x'),
  'setTTL(0)': (s) => s.setTTL(0),
  'setTTL(256)': (s) => s.setTTL(256),
  'setTTL(-3)': (s) => s.setTTL(-3),
  'setTTL(64) unbound': (s) => s.setTTL(64),
  'setBroadcast(true) unbound': (s) => s.setBroadcast(true),
  'setRecvBufferSize(-1)': (s) => s.setRecvBufferSize(-1),
  'setSendBufferSize(1.5)': (s) => s.setSendBufferSize(1.5),
  'getRecvBufferSize() unbound': (s) => s.getRecvBufferSize(),
  'addMembership()': (s) => s.addMembership(),
  'dropMembership()': (s) => s.dropMembership(),
  'ref()': (s) => s.ref(),
  'unref()': (s) => s.unref(),
  'closed: send': (s) => {
    s.close();
    return s.send('x', 80, '127.0.0.1');
  },
  'closed: bind': (s) => {
    s.close();
    return s.bind(0);
  },
  'closed: close': (s) => {
    s.close();
    return s.close();
  },
  'closed: address': (s) => {
    s.close();
    return s.address();
  },
  'closed: connect': (s) => {
    s.close();
    return s.connect(80);
  },
  'closed: remoteAddress': (s) => {
    s.close();
    return s.remoteAddress();
  },
  'closed: addMembership': (s) => {
    s.close();
    return s.addMembership('239.1.1.1');
  },
  'closed: ref()': (s) => {
    s.close();
    return s.ref();
  },
};

const CREATE_CASES: Record<string, unknown[]> = {
  "'tcp'": ['tcp'],
  undefined: [undefined],
  "{ type: 'x' }": [{ type: 'x' }],
  '{}': [{}],
  '5': [5],
  'null': [null],
  "{ type: 'udp4', lookup: 5 }": [{ type: 'udp4', lookup: 5 }],
  "{ type: 'x', lookup: 5 }": [{ type: 'x', lookup: 5 }],
  "{ type: 'udp4', recvBufferSize: -1 }": [{ type: 'udp4', recvBufferSize: -1 }],
  "{ type: 'udp4', recvBufferSize: 1.5 }": [{ type: 'udp4', recvBufferSize: 1.5 }],
  "{ type: 'udp4', sendBufferSize: 'x' }": [{ type: 'udp4', sendBufferSize: 'x' }],
  "{ type: 'udp4', signal: 5 }": [{ type: 'udp4', signal: 5 }],
  "'udp4', 'not a listener'": ['udp4', 'not a listener'],
};

function closeQuietly(s: AnySocket): void {
  s.on('error', () => {});
  try {
    s.close();
  } catch {
    /* closed already */
  }
}

async function withOurs(fn: (create: Factory, bench: Bench) => Promise<void>): Promise<void> {
  const bench = new Bench();
  const api = new DgramApi(bench.shim);
  bench.start();
  try {
    await fn((type, listener) => api.createSocket(type as 'udp4', listener as undefined), bench);
  } finally {
    bench.stop();
    api.close();
  }
}

const nodeCreate: Factory = (type, listener) => dgram.createSocket(type as 'udp4', listener as undefined);

t.test('createSocket: the same refusals as node:dgram', async (t) => {
  await withOurs(async (ours) => {
    for (const [name, args] of Object.entries(CREATE_CASES)) {
      const n = outcome(() => nodeCreate(args[0], args[1]));
      const o = outcome(() => ours(args[0], args[1]));
      for (const s of [n, o]) if ('returned' in s) s.returned = 'a socket';
      t.same(o, n, `createSocket(${name})`);
    }
    t.match(outcome(() => ours('udp6')), { threw: { code: 'ERR_SOCKET_BAD_TYPE', ctor: 'TypeError', message: /IPv4 stack/ } }, "udp6: refused, saying why (Node accepts it)");
  });
});

t.test('synchronous argument and state errors: the same as node:dgram', async (t) => {
  await withOurs(async (ours) => {
    for (const [name, fn] of Object.entries(SYNC_CASES)) {
      const ns = nodeCreate('udp4');
      ns.on('error', () => {});
      const os = ours('udp4');
      os.on('error', () => {});
      const n = outcome(() => fn(ns));
      const o = outcome(() => fn(os));
      t.same(o, n, name);
      closeQuietly(ns);
      closeQuietly(os);
    }
  });
});

t.test('deliberate difference: option setters on a closed socket', async (t) => {
  await withOurs(async (ours) => {
    const s = ours('udp4');
    s.close();
    t.throws(() => s.setTTL(4), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' }, "Node throws a TypeError from its null handle; we say what is wrong");
    t.throws(() => s.setBroadcast(true), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
  });
});

/** Run an asynchronous scenario to its first settled outcome. */
type Scenario = (create: Factory, port: number) => Promise<unknown>;

function firstEvent(s: AnySocket, names: string[], ms = 5000): Promise<{ event: string; args: unknown[] }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`none of ${names.join(', ')} within ${ms} ms`)), ms);
    for (const name of names) {
      s.once(name, (...args: unknown[]) => {
        clearTimeout(timer);
        resolve({ event: name, args });
      });
    }
  });
}

/** A port nobody listens on (on the host, for Node's side: bind, note, close). */
async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** A lookup that knows IPv4 literals only. */
const failingLookup = (h: string, _f: number, cb: (e: Error | null, a?: string, f?: number) => void): void => {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(h)) return process.nextTick(cb, null, h, 4);
  process.nextTick(cb, Object.assign(new Error(`getaddrinfo ENOTFOUND ${h}`), { code: 'ENOTFOUND', errno: -3008, syscall: 'getaddrinfo', hostname: h }));
};

const SCENARIOS: Record<string, Scenario> = {
  'bind to an address that is not ours: EADDRNOTAVAIL': async (create) => {
    const s = create('udp4');
    s.bind(0, '8.8.8.8');
    const e = await firstEvent(s, ['error', 'listening']);
    closeQuietly(s);
    return { event: e.event, err: shape(e.args[0]) };
  },
  'bind to an IPv6 address on udp4: EINVAL': async (create) => {
    const s = create('udp4');
    s.bind(0, '::1');
    const e = await firstEvent(s, ['error', 'listening']);
    closeQuietly(s);
    return { event: e.event, err: shape(e.args[0]) };
  },
  'bind with a failing lookup: the lookup error': async (create) => {
    const s = create({ type: 'udp4', lookup: failingLookup });
    s.bind(0, 'nowhere.invalid');
    const e = await firstEvent(s, ['error', 'listening']);
    closeQuietly(s);
    return { event: e.event, err: shape(e.args[0]) };
  },
  'bind a port in use: EADDRINUSE, with the port': async (create) => {
    const a = create('udp4');
    a.bind(0, '127.0.0.1');
    await firstEvent(a, ['listening']);
    const port = a.address().port;
    const b = create('udp4');
    b.bind(port, '127.0.0.1');
    const e = await firstEvent(b, ['error', 'listening']);
    closeQuietly(a);
    closeQuietly(b);
    return { event: e.event, err: shape(e.args[0], [port]) };
  },
  'bind callback: called with this = the socket; not called on error': async (create) => {
    const a = create('udp4');
    const self = await new Promise((r) => a.bind(0, '127.0.0.1', function (this: unknown) {
      r(this === a);
    }));
    const b = create('udp4');
    let called = false;
    b.bind(a.address().port, '127.0.0.1', () => (called = true));
    const e = await firstEvent(b, ['error']);
    closeQuietly(a);
    closeQuietly(b);
    return { self, called, err: e.event };
  },
  'address() after bind': async (create) => {
    const s = create('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const a = s.address();
    closeQuietly(s);
    return { ...a, port: typeof a.port };
  },
  'send EMSGSIZE: to the callback, system-style': async (create) => {
    const s = create('udp4');
    const err = await new Promise((r) => s.send(Buffer.alloc(65508), 9, '127.0.0.1', (e: unknown) => r(e)));
    closeQuietly(s);
    return shape(err);
  },
  'send 65507 bytes: the callback gets the length': async (create, port) => {
    const s = create('udp4');
    const r = await new Promise((res) => s.send(Buffer.alloc(65507), port, '127.0.0.1', (e: unknown, n: number) => res([e, n])));
    closeQuietly(s);
    return r;
  },
  'send to the broadcast address without setBroadcast: EACCES': async (create) => {
    const s = create('udp4');
    const err = await new Promise((r) => s.send('x', 9, '255.255.255.255', (e: unknown) => r(e)));
    closeQuietly(s);
    return shape(err);
  },
  'send EMSGSIZE without a callback: silent, as Node': async (create) => {
    const s = create('udp4');
    let errors = 0;
    s.on('error', () => errors++);
    s.send(Buffer.alloc(70000), 9, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 50));
    closeQuietly(s);
    return { errors };
  },
  'send with a failing lookup: the error to the callback': async (create) => {
    const s = create({ type: 'udp4', lookup: failingLookup });
    s.bind(0, '127.0.0.1');
    await firstEvent(s, ['listening']);
    const err = await new Promise((r) => s.send('x', 9, 'nowhere.invalid', (e: unknown) => r(e)));
    closeQuietly(s);
    return shape(err);
  },
  'connected: connect event, addresses, ECONNREFUSED as an error event from recvmsg': async (create, port) => {
    const s = create('udp4');
    const events: string[] = [];
    s.on('listening', () => events.push('listening'));
    await new Promise<void>((r) => s.connect(port, () => r()));
    events.push('connect');
    const remote = s.remoteAddress();
    const local = s.address();
    s.send('x');
    const e = await firstEvent(s, ['error']);
    closeQuietly(s);
    return { events, remote: { ...remote, port: remote.port === port }, local: { ...local, port: typeof local.port }, err: shape(e.args[0]) };
  },
  'connect with a failing lookup: the error to the callback': async (create) => {
    const s = create({ type: 'udp4', lookup: failingLookup });
    const err = await new Promise((r) => s.connect(9, 'nowhere.invalid', (e: unknown) => r(e)));
    let threw: unknown = null;
    try {
      s.remoteAddress();
    } catch (e) {
      threw = shape(e);
    }
    closeQuietly(s);
    return { err: shape(err), threw };
  },
  'close: the close event and callback, once': async (create) => {
    const s = create('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const order: string[] = [];
    s.on('close', () => order.push('event'));
    await new Promise<void>((r) => s.close(() => (order.push('cb'), r())));
    return order;
  },
  'implicit bind on send: listening, then a wildcard address': async (create, port) => {
    const s = create('udp4');
    const l = firstEvent(s, ['listening']);
    s.send('x', port, '127.0.0.1');
    await l;
    const a = s.address();
    closeQuietly(s);
    return { address: a.address, family: a.family };
  },
};

t.test('asynchronous outcomes: the same events and errors as node:dgram', async (t) => {
  const nodePort = await freePort();
  await withOurs(async (ours) => {
    for (const [name, scenario] of Object.entries(SCENARIOS)) {
      const n = await scenario(nodeCreate, nodePort);
      const o = await scenario(ours, 9);
      t.same(o, n, name);
    }
  });
});
