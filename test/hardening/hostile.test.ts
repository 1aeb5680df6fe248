/**
 * Hostile traffic against a live stack, from a scripted peer that writes every segment itself (the raw
 * side of a shared-memory wire: no root needed): RFC 5961 blind RST / SYN / data injection, ICMP
 * errors quoting an established connection, overlapping and tiny fragments, and a SYN flood from
 * spoofed addresses while an established connection keeps transferring and new connections must
 * still succeed. (Writing to a TAP fd sends towards the kernel, not into the stack: a hostile peer
 * through TAP has to send from the kernel's namespace, e.g. an AF_PACKET socket there.)
 */
import t from 'tap';
import { Stack } from '../../kernel-shim/stack.js';
import { ShmWire } from '../../servers/driver/shm-wire.js';
import { RawPeer } from '../helpers/raw-peer.js';
import { ScriptedTcp } from '../helpers/scripted-tcp.js';
import { eth, ETHERTYPE_IPV4, ip4, ipv4, synOptions, TCP, tcp, udp } from '../helpers/frames.js';
import { restarts, tcpUsed } from '../helpers/fuzz.js';
import { mulberry32, randInt } from '../helpers/prng.js';

const STACK = ip4('10.98.0.1');
const PEER = ip4('10.98.0.2');
const PORT = 80;

interface Env {
  stack: Stack;
  peer: RawPeer;
  accepted: number;
}

async function withEcho(body: (e: Env) => Promise<void>, opts: { backlog?: number; maxConnections?: number } = {}): Promise<void> {
  const wire = ShmWire.create({ mtu: 1500 });
  const stack = new Stack({ address: '10.98.0.1/24', link: { kind: 'shm', wire, side: 'a' }, ...(opts.maxConnections ? { tcp: { maxConnections: opts.maxConnections } } : {}) });
  await stack.start();
  const peer = new RawPeer(wire, { answerArp: true, keep: true });
  const env: Env = { stack, peer, accepted: 0 };
  stack.on('death', (d: { server: string; cause: string; reason?: unknown }) => console.error(`# death: ${d.server} ${d.cause} ${String(d.reason)}`));
  const server = stack.net.createServer((s) => {
    env.accepted++;
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(PORT, '0.0.0.0', opts.backlog ?? 128, () => r()));
  try {
    await body(env);
  } finally {
    server.close();
    peer.close();
    await stack.close();
  }
}

async function established(e: Env, sport: number): Promise<ScriptedTcp> {
  const c = new ScriptedTcp(e.peer, PEER, STACK, sport, PORT, 0x10000000 + sport * 7919);
  if (!(await c.connect())) throw new Error('handshake failed');
  if (!(await c.sendData(Buffer.from('hello')))) throw new Error('data not acknowledged');
  const back = await c.receive(5);
  if (!back || back.toString() !== 'hello') throw new Error(`echo failed: ${back}`);
  return c;
}

/** The connection still carries data both ways. */
async function works(c: ScriptedTcp, tag: string): Promise<boolean> {
  const msg = Buffer.from(`still here: ${tag}`);
  if (!(await c.sendData(msg))) return false;
  const back = await c.receive(msg.length);
  return back !== null && back.equals(msg);
}

t.test('RFC 5961: blind RST, SYN and data injection', async (t) => {
  await withEcho(async (e) => {
    const c = await established(e, 40001);
    const una = c.seq;
    // In-window but not exact RST: a challenge ACK, the connection survives.
    await c.send(TCP.RST, undefined, { seq: una + 1000 });
    const ch1 = await c.next((s) => (s.flags & TCP.ACK) !== 0 && (s.flags & TCP.RST) === 0);
    t.ok(ch1, 'in-window RST: challenge ACK');
    t.equal(ch1?.ack, una, 'the challenge ACK carries RCV.NXT');
    // Out-of-window RST: silently dropped.
    await c.send(TCP.RST, undefined, { seq: una + 0x40000000 });
    t.ok(await works(c, 'after RSTs'), 'the connection survives both RSTs');
    // SYN on an established connection (in window and not): challenge ACK, connection survives.
    await c.send(TCP.SYN, undefined, { seq: c.seq + 10, options: synOptions() });
    const ch2 = await c.next((s) => (s.flags & (TCP.ACK | TCP.RST | TCP.SYN)) === TCP.ACK);
    t.ok(ch2, 'blind SYN: challenge ACK');
    t.equal(ch2?.ack, c.seq, 'acknowledging RCV.NXT');
    await c.send(TCP.SYN, undefined, { seq: c.seq + 0x50000000, options: synOptions() });
    t.ok(await works(c, 'after SYNs'), 'the connection survives the SYNs');
    // Data with an unacceptable ACK (beyond SND.NXT, and too old): dropped, not delivered.
    const evil = Buffer.from('INJECTED');
    await c.send(TCP.ACK | TCP.PSH, evil, { ack: c.ack + 0x20000000, seq: c.seq });
    await c.send(TCP.ACK | TCP.PSH, evil, { ack: c.ack - 0x7000000, seq: c.seq });
    await new Promise((r) => setTimeout(r, 200));
    // The next real data has the same sequence numbers: if the forged data had been taken, the echo
    // would be 'INJECTED' rather than this.
    const real = Buffer.from('GENUINE!');
    t.ok(await c.sendData(real), 'real data at the same sequence numbers is acknowledged');
    const back = await c.receive(real.length);
    t.equal(back?.toString(), 'GENUINE!', 'the forged data was never delivered to the application');
    // An exact RST does reset (RFC 5961 §3.2: exact match).
    await c.send(TCP.RST, undefined, { seq: c.seq });
    await new Promise((r) => setTimeout(r, 100));
    t.same(restarts(e.stack), { driver: 0, ip: 0, tcp: 0, udp: 0 }, 'no restart');
  });
});

t.test('ICMP errors cannot reset an established connection', async (t) => {
  await withEcho(async (e) => {
    const c = await established(e, 40002);
    const frames: Uint8Array[] = [];
    for (const [type, code] of [[3, 0], [3, 1], [3, 2], [3, 3], [3, 13], [11, 0], [12, 0], [4, 0], [5, 1]]) {
      for (const seq of [c.stackIss + 1, c.ack, (c.ack + 0x40000000) >>> 0]) frames.push(c.icmpFrame(type, code, PEER, seq));
    }
    // From a router elsewhere on the subnet too.
    for (const code of [0, 1, 2, 3]) frames.push(c.icmpFrame(3, code, ip4('10.98.0.254'), c.ack));
    await e.peer.write(frames);
    await new Promise((r) => setTimeout(r, 200));
    const tcpc = e.stack.stats().servers.tcp.protocol;
    t.ok((tcpc['icmp'] ?? 0) > 0, `the tcp server saw the ICMP errors (${tcpc['icmp']})`);
    t.ok(await works(c, 'after ICMP'), 'the connection still carries data both ways');
    // And a bulk transfer after them: it still completes.
    const big = Buffer.alloc(20_000, 0x42);
    for (let i = 0; i < big.length; i += 1000) if (!(await c.sendData(big.subarray(i, i + 1000)))) break;
    const back = await c.receive(big.length, 10_000);
    t.equal(back?.length, big.length, 'a 20 kB echo after the ICMP storm');
    t.same(restarts(e.stack), { driver: 0, ip: 0, tcp: 0, udp: 0 }, 'no restart');
  });
});

t.test('a blind "fragmentation needed, MTU 68" quoting an out-of-window sequence number is ignored', async (t) => {
  // ICMP_ERR carries the quoted sequence number to tcp, which ignores reports outside what it has
  // outstanding (RFC 5927 §4.1); a report inside would still be floored at Linux's 552-byte PMTU.
  await withEcho(async (e) => {
    const c = await established(e, 40004);
    await e.peer.write([c.icmpFrame(3, 4, PEER, (c.ack + 0x40000000) >>> 0, 68)]);
    await new Promise((r) => setTimeout(r, 100));
    const big = Buffer.alloc(20_000, 0x42);
    for (let i = 0; i < big.length; i += 1000) if (!(await c.sendData(big.subarray(i, i + 1000)))) break;
    const back = await c.receive(big.length, 5_000);
    t.equal(back?.length, big.length, 'a 20 kB echo after the forged ICMP');
  });
});

t.test('overlapping and tiny fragments are safe', async (t) => {
  await withEcho(async (e) => {
    const sock = e.stack.dgram.createSocket('udp4');
    const got: Buffer[] = [];
    sock.on('message', (m: Buffer) => got.push(m));
    await new Promise<void>((r) => sock.bind(5353, () => r()));
    const payload = Buffer.alloc(1200);
    for (let i = 0; i < payload.length; i++) payload[i] = i & 255;
    const dgram = udp(PEER, STACK, 999, 5353, payload);
    const frag = (id: number, off: number, bytes: Uint8Array, mf: boolean): Uint8Array =>
      eth(e.peer.stackMac, e.peer.mac, ETHERTYPE_IPV4, ipv4({ src: PEER, dst: STACK, proto: 17, id, fragOff: off, mf }, bytes));
    const frames: Uint8Array[] = [];
    // 1. Tiny fragments: 8 bytes each, the UDP header split (RFC 1858 tiny-fragment attack).
    for (let off = 0; off < dgram.length; off += 8) frames.push(frag(1, off, dgram.subarray(off, Math.min(off + 8, dgram.length)), off + 8 < dgram.length));
    // 2. Overlap that rewrites the header (RFC 1858 / 3128 overlapping fragments): conflicting bytes.
    const evil = Uint8Array.from(dgram);
    evil[2] = 0; // destination port changed in the overlap
    frames.push(frag(2, 0, dgram.subarray(0, 512), true));
    frames.push(frag(2, 0, evil.subarray(0, 16), true));
    frames.push(frag(2, 512, dgram.subarray(512), false));
    // 3. Fragments far beyond 64 KiB, and a zero-length last fragment.
    frames.push(frag(3, 0, dgram.subarray(0, 64), true));
    frames.push(frag(3, 65528, dgram.subarray(0, 64), false));
    frames.push(frag(4, 0, dgram.subarray(0, 64), true));
    frames.push(frag(4, 64, new Uint8Array(0), false));
    // 4. Ten thousand fragments of datagrams that never complete (reassembly memory bound).
    const rand = mulberry32(5);
    for (let i = 0; i < 10_000; i++) frames.push(frag(100 + i, 8 * randInt(rand, 1, 8000), dgram.subarray(0, 1024), true));
    await e.peer.write(frames);
    await e.peer.until(() => e.stack.stats().servers.driver.protocol['rxFrames'] >= e.peer.written, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    const ip = e.stack.stats().servers.ip.protocol;
    t.ok(got.length >= 1 && got[0].equals(payload), 'the datagram of tiny fragments reassembles exactly');
    t.ok(got.every((g) => g.equals(payload)), 'no datagram with conflicting overlap bytes is delivered');
    t.comment(`reassembly: ${JSON.stringify(Object.fromEntries(Object.entries(ip).filter(([k]) => /frag|reasm|evict|overlap|memory|too-big|held/.test(k))))}`);
    t.ok((ip['drop:overlap-conflict'] ?? 0) + (ip['drop:fragment'] ?? 0) > 0, 'the conflicting overlap was dropped and counted');
    t.ok((ip['evicted'] ?? 0) > 0 || (ip['drop:memory'] ?? 0) > 0, 'the incomplete datagrams hit the reassembly bounds (evicted / memory)');
    // (The wait's own reading is the check: a second read can catch a segment of a timer in flight.)
    const drained = await e.peer.until(() => e.stack.stats().pool.inUse === 32, 5000);
    t.ok(drained, `no pool buffer held by reassembly (baseline 32, ${e.stack.stats().pool.inUse} now)`);
    // Still works: a normal datagram.
    await e.peer.write([eth(e.peer.stackMac, e.peer.mac, ETHERTYPE_IPV4, ipv4({ src: PEER, dst: STACK, proto: 17 }, udp(PEER, STACK, 999, 5353, Buffer.from('ok'))))]);
    await e.peer.until(() => got.some((g) => g.toString() === 'ok'), 2000);
    t.ok(got.some((g) => g.toString() === 'ok'), 'a normal datagram still arrives');
    t.same(restarts(e.stack), { driver: 0, ip: 0, tcp: 0, udp: 0 }, 'no restart');
    sock.close();
  });
});

t.test('SYN flood from spoofed addresses: established connections keep working, new ones succeed', async (t) => {
  await withEcho(async (e) => {
    const c = await established(e, 40003);
    const rand = mulberry32(9);
    const FLOOD = Number(process.env.KEEPNET_SYN_FLOOD ?? 20_000);
    const synFrames = (n: number): Uint8Array[] =>
      Array.from({ length: n }, () => {
        const src = ip4(`10.98.0.${randInt(rand, 10, 250)}`);
        const seg = tcp({ src, dst: STACK, sport: randInt(rand, 1024, 65535), dport: PORT, seq: randInt(rand, 0, 0xffffffff), flags: TCP.SYN, options: synOptions() });
        return eth(e.peer.stackMac, e.peer.mac, ETHERTYPE_IPV4, ipv4({ src, dst: STACK, proto: 6 }, seg));
      });
    const t0 = Date.now();
    let sent = 0;
    let transfers = 0;
    let newOk = 0;
    let newTried = 0;
    while (sent < FLOOD) {
      await e.peer.write(synFrames(1000));
      sent += 1000;
      if (await works(c, `flood ${sent}`)) transfers++;
      if (sent % 5000 === 0) {
        newTried++;
        const n = new ScriptedTcp(e.peer, PEER, STACK, 41000 + newTried, PORT, 777 * newTried);
        if ((await n.connect(3000)) && (await n.sendData(Buffer.from('x'))) && (await n.receive(1))) newOk++;
      }
    }
    const secs = (Date.now() - t0) / 1000;
    const tc = e.stack.stats().servers.tcp.protocol;
    t.comment(`${sent} SYNs in ${secs.toFixed(1)} s (${Math.round(sent / secs)}/s); tcp ${JSON.stringify(tc)}; table ${tcpUsed(e.stack)}`);
    t.equal(transfers, FLOOD / 1000, 'the established connection kept transferring through the flood');
    t.equal(newOk, newTried, `every new connection during the flood succeeded (${newOk}/${newTried})`);
    t.same(restarts(e.stack), { driver: 0, ip: 0, tcp: 0, udp: 0 }, 'no restart');
    // The last cookie SYN-ACKs may still be on their way out (a buffer in a ring or on the wire) when
    // the flood ends: back to the baseline once they are gone, or a buffer leaked. (Waits on the
    // condition; the 15 s bound only matters on a machine so loaded that 5 s once fell short in CI.)
    // The wait's own reading is the check. The stack's timers (the SYN-RECEIVED children's SYN-ACK
    // retransmissions among them) allocate a segment now and then, so a second read can catch one in
    // flight: 33 once in CI, right after the wait had seen 32. A leaked buffer never lets the wait see 32.
    const settled = await e.peer.until(() => e.stack.stats().pool.inUse === 32, 15_000);
    t.ok(settled, `pool back to its baseline (32; ${e.stack.stats().pool.inUse} now)`);
  });
});

t.test('a cookie ACK evicts a child whose SYN-ACK went unanswered, not a handshake in progress', async (t) => {
  // Backlog 2. F's SYN takes a place and F never answers: the stack retransmits its SYN-ACK after its
  // 1 s timeout. Then X's SYN takes the other place, X holding its ACK back. Y's SYN finds the backlog
  // full and gets a cookie, and so does Y's ACK: one child must give its place up. Taking X's would
  // answer X's ACK with a reset (a client saw ECONNRESET seconds after a SYN flood, when any child
  // could be taken); F's, whose SYN-ACK went unanswered for a timeout, goes first.
  await withEcho(
    async (e) => {
      const tc = (): Record<string, number> => e.stack.stats().servers.tcp.protocol;
      const synAck = (s: { flags: number }): boolean => (s.flags & (TCP.SYN | TCP.ACK)) === (TCP.SYN | TCP.ACK);
      // Z's connection comes and goes first, so that X's child takes the slot below F's: the eviction
      // scan meets X's child first from almost every starting point, and only the preference for a
      // retransmitted child keeps it (without it, this test fails).
      const z = await established(e, 42003);
      const f = new ScriptedTcp(e.peer, PEER, STACK, 42000, PORT, 999);
      await f.send(TCP.SYN, undefined, { options: synOptions(1460, 1, 0) });
      t.ok(await f.next(synAck), 'F: SYN-ACK');
      const used = tcpUsed(e.stack);
      await z.send(TCP.RST | TCP.ACK);
      await e.peer.until(() => tcpUsed(e.stack) < used, 3000);
      t.equal(tcpUsed(e.stack), used - 1, "Z's slot is free again");
      t.ok(await f.next(synAck, 5000), "F: the SYN-ACK again, after the stack's retransmission timeout");
      const x = new ScriptedTcp(e.peer, PEER, STACK, 42001, PORT, 1111);
      await x.send(TCP.SYN, undefined, { options: synOptions(1460, 1, 0) });
      const sa = await x.next(synAck);
      t.ok(sa, 'X: SYN-ACK');
      if (!sa) return;
      x.stackIss = sa.seq;
      x.ack = (sa.seq + 1) >>> 0;
      const y = new ScriptedTcp(e.peer, PEER, STACK, 42002, PORT, 2222);
      t.ok(await y.connect(), 'Y: a SYN-ACK, and its ACK sent');
      await e.peer.until(() => (tc()['syncookies-ok'] ?? 0) > 0, 3000);
      t.equal(tc()['syncookies-sent'] ?? 0, 1, "Y's SYN was answered with a cookie");
      t.equal(tc()['syn-evicted'] ?? 0, 1, "Y's ACK evicted a child");
      t.ok(await works(y, 'y'), "Y's connection carries data");
      await x.send(TCP.ACK);
      t.ok(await works(x, 'x'), "X completes its handshake: its child was not the one evicted");
      t.notOk(x.segments().some((s) => (s.flags & TCP.RST) !== 0), 'no reset to X');
      t.equal(e.accepted, 3, 'Z, X and Y accepted');
    },
    { backlog: 2 },
  );
});
