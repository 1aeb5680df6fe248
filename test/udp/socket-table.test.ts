/**
 * The UDP socket table in shared state: bind conflicts (SO_REUSEADDR), ephemeral ports from a seeded
 * sequence, demux order, idempotent replays, survival of a restart and of a crash in mid-write, limits.
 */
import t from 'tap';
import { BINDF_REUSEADDR, OPT_BROADCAST, OPT_TTL, UERR } from '../../servers/udp/api.js';
import { EPHEMERAL_HIGH, EPHEMERAL_LOW, SocketTable, udpCounters, type TableEnv } from '../../servers/udp/socket-table.js';
import { UC } from '../../servers/udp/counters.js';
import { mulberry32, randInt } from '../helpers/prng.js';
import { ip } from './harness.js';

const ENV: TableEnv = { ifAddr: ip('10.7.0.2'), prefix: 24 };
const NO_IFACE: TableEnv = { ifAddr: 0, prefix: 32 };
const ANY = 0;
const LO = ip('127.0.0.1');
const ME = ENV.ifAddr;

function table(opts: { seed?: number; maxSockets?: number; bytes?: number } = {}): { sab: SharedArrayBuffer; tb: SocketTable } {
  const sab = new SharedArrayBuffer(opts.bytes ?? 1 << 18);
  return { sab, tb: SocketTable.attach(sab, opts) };
}

t.test('a fresh state is formatted; the 256 KiB state holds 4088 sockets', async (t) => {
  const { sab, tb } = table();
  t.ok(tb.formatted);
  t.equal(tb.capacity, 4088);
  t.equal(tb.size, 0);
  const again = SocketTable.attach(sab);
  t.notOk(again.formatted, 're-attach finds it');
  t.equal(again.attaches, 2);
  t.throws(() => SocketTable.attach(new SharedArrayBuffer(256)), { code: 'ERR_OUT_OF_RANGE' }, 'too small for one slot');
  const junk = new SharedArrayBuffer(1 << 16);
  new Int32Array(junk).fill(0x12345678);
  t.ok(SocketTable.attach(junk).formatted, 'garbage is not taken for a table');
});

t.test('explicit binds and the conflict rules', async (t) => {
  const { tb } = table();
  t.same(tb.bind(1, ANY, 5000, 0, ENV), { code: UERR.OK, addr: ANY, port: 5000 });
  t.equal(tb.bind(2, ANY, 5000, 0, ENV).code, UERR.EADDRINUSE, 'wildcard vs wildcard');
  t.equal(tb.bind(3, LO, 5000, 0, ENV).code, UERR.EADDRINUSE, 'specific vs wildcard');
  t.equal(tb.bind(4, LO, 5001, 0, ENV).code, UERR.OK);
  t.equal(tb.bind(5, ME, 5001, 0, ENV).code, UERR.OK, 'two different specific addresses share a port');
  t.equal(tb.bind(6, ANY, 5001, 0, ENV).code, UERR.EADDRINUSE, 'wildcard vs specific');
  t.equal(tb.bind(7, LO, 5001, 0, ENV).code, UERR.EADDRINUSE, 'same specific address');
  // SO_REUSEADDR: only when both sides set it.
  t.equal(tb.bind(10, ANY, 6000, BINDF_REUSEADDR, ENV).code, UERR.OK);
  t.equal(tb.bind(11, ANY, 6000, 0, ENV).code, UERR.EADDRINUSE, 'the newcomer lacks reuseAddr');
  t.equal(tb.bind(12, ANY, 6000, BINDF_REUSEADDR, ENV).code, UERR.OK, 'both reuseAddr');
  t.equal(tb.bind(13, LO, 6000, BINDF_REUSEADDR, ENV).code, UERR.OK);
  t.equal(tb.bind(14, ANY, 5000, BINDF_REUSEADDR, ENV).code, UERR.EADDRINUSE, 'the holder lacks reuseAddr');
  // Addresses one may bind.
  t.equal(tb.bind(20, ip('8.8.8.8'), 7000, 0, ENV).code, UERR.EADDRNOTAVAIL);
  t.equal(tb.bind(21, ip('10.7.0.3'), 7000, 0, ENV).code, UERR.EADDRNOTAVAIL, 'a neighbour, not us');
  t.equal(tb.bind(22, ip('127.3.4.5'), 7000, 0, ENV).code, UERR.OK, 'all of 127/8 is ours');
  t.equal(tb.bind(23, ip('10.7.0.255'), 7000, 0, ENV).code, UERR.OK, 'directed broadcast');
  t.equal(tb.bind(24, ip('255.255.255.255'), 7000, 0, ENV).code, UERR.OK, 'limited broadcast');
  t.equal(tb.bind(25, ip('239.1.2.3'), 7000, 0, ENV).code, UERR.OK, 'multicast');
  t.equal(tb.bind(26, ME, 7001, 0, NO_IFACE).code, UERR.EADDRNOTAVAIL, 'no interface: only loopback and any');
  t.equal(tb.bind(27, ANY, 70000, 0, ENV).code, UERR.EINVAL, 'port out of range');
  t.equal(tb.size, 10);
});

t.test('ephemeral ports: in range, never shared, deterministic per seed, continued across restarts', async (t) => {
  const seq = (seed: number, n: number): number[] => {
    const { tb } = table({ seed });
    return Array.from({ length: n }, (_, i) => tb.bind(i + 1, ANY, 0, 0, ENV).port);
  };
  const a = seq(42, 50);
  t.same(seq(42, 50), a, 'same seed, same ports');
  t.notSame(seq(43, 50), a, 'another seed, other ports');
  t.ok(a.every((p) => p >= EPHEMERAL_LOW && p <= EPHEMERAL_HIGH), 'in 49152..65535');
  t.equal(new Set(a).size, a.length, 'all distinct');

  // A restart in the middle of the sequence continues it (the PRNG state lives in the table).
  const { sab, tb } = table({ seed: 42 });
  const first = [1, 2, 3].map((id) => tb.bind(id, ANY, 0, 0, ENV).port);
  const tb2 = SocketTable.attach(sab, { seed: 999 }); // the seed is only used when creating
  const rest = [4, 5, 6].map((id) => tb2.bind(id, ANY, 0, 0, ENV).port);
  t.same([...first, ...rest], a.slice(0, 6));

  // Ephemeral never shares a port, even with reuseAddr sockets on it.
  const { tb: tb3 } = table({ seed: 42 });
  tb3.bind(1, ANY, a[0], BINDF_REUSEADDR, ENV);
  const p = tb3.bind(2, ANY, 0, BINDF_REUSEADDR, ENV).port;
  t.not(p, a[0], 'skips a port in use');
  t.equal(p, a[0] + 1 > EPHEMERAL_HIGH ? EPHEMERAL_LOW : a[0] + 1, 'the next one up');
});

t.test('ephemeral range exhausted: EADDRINUSE', async (t) => {
  const count = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1;
  const { tb } = table({ bytes: 512 + (count + 2) * 64 });
  let ok = 0;
  for (let i = 0; i < count; i++) if (tb.bind(i + 1, ANY, EPHEMERAL_LOW + i, 0, ENV).code === UERR.OK) ok++;
  t.equal(ok, count, 'every ephemeral port bound explicitly');
  t.equal(tb.bind(count + 1, ANY, 0, 0, ENV).code, UERR.EADDRINUSE);
  t.equal(tb.bind(count + 1, ANY, 1234, 0, ENV).code, UERR.OK, 'an explicit port still works');
});

t.test('limits: a full table says EMFILE; close frees a slot', async (t) => {
  const { tb } = table({ maxSockets: 4 });
  t.equal(tb.capacity, 4);
  for (let i = 1; i <= 4; i++) t.equal(tb.bind(i, ANY, 0, 0, ENV).code, UERR.OK);
  t.equal(tb.bind(5, ANY, 0, 0, ENV).code, UERR.EMFILE);
  t.equal(tb.bind(5, ANY, 9999, 0, ENV).code, UERR.EMFILE);
  t.equal(tb.close(2), UERR.OK);
  t.equal(tb.bind(5, ANY, 9999, 0, ENV).code, UERR.OK);
  t.equal(tb.size, 4);
});

t.test('idempotent per sockId: replays return the same result, never EADDRINUSE against themselves', async (t) => {
  const { tb } = table();
  const r = tb.bind(7, ANY, 0, 0, ENV);
  t.same(tb.bind(7, ANY, 0, 0, ENV), r, 'replayed ephemeral bind: same port');
  t.same(tb.bind(7, ANY, r.port, 0, ENV), r, 'and with the port it got');
  t.equal(tb.bind(7, LO, 0, 0, ENV).code, UERR.EINVAL, 'a different bind of a bound socket');
  t.equal(tb.bind(7, ANY, 4000, 0, ENV).code, UERR.EINVAL);
  t.equal(tb.bind(8, ANY, 5353, 0, ENV).code, UERR.OK);
  t.equal(tb.bind(8, ANY, 5353, 0, ENV).code, UERR.OK, 'explicit port replayed');

  const c = tb.connect(8, ip('10.7.0.9'), 53, ENV);
  t.equal(c.code, UERR.OK);
  t.same(tb.connect(8, ip('10.7.0.9'), 53, ENV), c, 'replayed connect');
  t.equal(tb.connect(8, ip('10.7.0.9'), 54, ENV).code, UERR.EISCONN, 'another peer');
  t.equal(tb.disconnect(8).code, UERR.OK);
  t.equal(tb.disconnect(8).code, UERR.ENOTCONN);
  t.equal(tb.close(8), UERR.OK);
  t.equal(tb.close(8), UERR.OK, 'replayed close');
  t.equal(tb.disconnect(8).code, UERR.EBADF);
  t.equal(tb.size, 1);
});

t.test('connect: source address, broadcast, autobind, bad peers', async (t) => {
  const { tb } = table();
  tb.bind(1, ANY, 4000, 0, ENV);
  t.same(tb.connect(1, LO, 9, ENV), { code: UERR.OK, addr: LO, port: 4000 }, 'to the loopback: source 127.0.0.1');
  t.equal(tb.localAddrOf(tb.slotOf(1)), LO);
  t.same(tb.disconnect(1), { code: UERR.OK, addr: ANY, port: 4000 }, 'disconnect restores the wildcard');
  t.same(tb.connect(1, ip('10.7.0.9'), 9, ENV), { code: UERR.OK, addr: ME, port: 4000 }, 'elsewhere: the interface address');
  tb.disconnect(1);
  t.equal(tb.connect(1, ip('10.7.0.255'), 9, ENV).code, UERR.EACCES, 'broadcast without SO_BROADCAST');
  t.equal(tb.setOpt(1, OPT_BROADCAST, 1), UERR.OK);
  t.equal(tb.connect(1, ip('10.7.0.255'), 9, ENV).code, UERR.OK);
  t.equal(tb.connect(2, ip('8.8.8.8'), 0, ENV).code, UERR.EINVAL, 'port 0');
  const auto = tb.connect(3, ip('8.8.8.8'), 53, ENV);
  t.equal(auto.code, UERR.OK, 'connect binds an unknown socket first');
  t.ok(auto.port >= EPHEMERAL_LOW);
  t.equal(tb.connect(4, 0, 53, ENV).code, UERR.OK, '0.0.0.0 is this host');
  t.equal(tb.remoteAddrOf(tb.slotOf(4)), LO);
  t.equal(tb.connect(5, ip('8.8.8.8'), 53, NO_IFACE).code, UERR.ENETUNREACH, 'no interface, no route');
  t.equal(tb.setOpt(1, OPT_TTL, 0), UERR.EINVAL);
  t.equal(tb.setOpt(1, OPT_TTL, 256), UERR.EINVAL);
  t.equal(tb.setOpt(1, OPT_TTL, 7), UERR.OK);
  t.equal(tb.ttlOf(tb.slotOf(1)), 7);
  t.equal(tb.setOpt(1, 99, 1), UERR.EINVAL, 'unknown option');
  t.equal(tb.setOpt(77, OPT_TTL, 7), UERR.EBADF, 'unknown socket');
});

t.test('demux: connected match, then specific address, then wildcard; ties to the latest binding', async (t) => {
  const { tb } = table();
  const R = ip('10.7.0.9');
  tb.bind(1, ANY, 53, BINDF_REUSEADDR, ENV);
  t.equal(tb.sockIdOf(tb.lookup(ME, 53, R, 1000)), 1, 'the wildcard');
  tb.bind(2, ME, 53, BINDF_REUSEADDR, ENV);
  t.equal(tb.sockIdOf(tb.lookup(ME, 53, R, 1000)), 2, 'a specific address beats the wildcard');
  t.equal(tb.sockIdOf(tb.lookup(LO, 53, LO, 1000)), 1, 'but only for its address');
  tb.bind(3, ANY, 53, BINDF_REUSEADDR, ENV);
  tb.connect(3, R, 1000, ENV);
  t.equal(tb.sockIdOf(tb.lookup(ME, 53, R, 1000)), 3, 'a connected match beats everything');
  t.equal(tb.sockIdOf(tb.lookup(ME, 53, R, 1001)), 2, 'a connected socket hears only its peer');
  t.equal(tb.sockIdOf(tb.lookup(ME, 53, ip('10.7.0.10'), 1000)), 2);
  tb.bind(4, ANY, 53, BINDF_REUSEADDR, ENV);
  t.equal(tb.sockIdOf(tb.lookup(LO, 53, LO, 1000)), 4, 'equal scores: the latest binding');
  t.equal(tb.lookup(ME, 54, R, 1000), -1, 'nobody on that port');
  const out = new Int32Array(8);
  const n = tb.lookupAll(ip('10.7.0.255'), 53, R, 5, out);
  t.same([...out.subarray(0, n)].map((s) => tb.sockIdOf(s)).sort(), [1, 4], 'broadcast: every wildcard socket (not the specific, not the connected)');
  tb.close(4);
  t.equal(tb.sockIdOf(tb.lookup(LO, 53, LO, 1000)), 1);
  t.equal(tb.sockIdOf(tb.lookupSender(ME, 53, R, 1000)), 3, 'the sender of a datagram an ICMP error quotes');
  t.equal(tb.lookupSender(ME, 53, R, 999), -1, 'only connected sockets');
});

t.test('demux against a brute-force model (seeded)', async (t) => {
  const seed = 0xc0ffee;
  const rand = mulberry32(seed);
  const addrs = [ANY, LO, ME, ip('127.0.0.2')];
  const peers = [LO, ip('10.7.0.9'), ip('10.7.0.10'), ME];
  const { tb } = table({ seed });
  let id = 1;
  let checked = 0;
  for (let round = 0; round < 3000; round++) {
    const op = rand();
    if (op < 0.45) {
      tb.bind(id++, addrs[randInt(rand, 0, 3)], 1000 + randInt(rand, 0, 3), rand() < 0.7 ? BINDF_REUSEADDR : 0, ENV);
    } else if (op < 0.6 && id > 1) {
      const s = randInt(rand, 1, id - 1);
      if (tb.slotOf(s) >= 0 && !tb.isConnected(tb.slotOf(s))) tb.connect(s, peers[randInt(rand, 0, 3)], 2000 + randInt(rand, 0, 2), ENV);
    } else if (op < 0.7 && id > 1) {
      tb.close(randInt(rand, 1, id - 1));
    } else {
      const dst = [LO, ME, ip('127.0.0.2')][randInt(rand, 0, 2)];
      const dport = 1000 + randInt(rand, 0, 3);
      const src = peers[randInt(rand, 0, 3)];
      const sport = 2000 + randInt(rand, 0, 2);
      // The model: eligible sockets, scored, latest binding on ties (bind order = sockId order here).
      let best: { id: number; score: number } | null = null;
      for (const s of tb.list()) {
        if (s.localPort !== dport || (s.localAddr !== 0 && s.localAddr !== dst)) continue;
        let score = s.localAddr !== 0 ? 2 : 0;
        if (s.remotePort !== 0) {
          if (s.remoteAddr !== src || s.remotePort !== sport) continue;
          score += 4;
        }
        if (!best || score > best.score || (score === best.score && s.sockId > best.id)) best = { id: s.sockId, score };
      }
      const got = tb.lookup(dst, dport, src, sport);
      if ((got < 0 ? null : tb.sockIdOf(got)) !== (best ? best.id : null)) {
        t.fail(`seed ${seed} round ${round}: lookup ${got < 0 ? null : tb.sockIdOf(got)} vs model ${best?.id}`);
        return;
      }
      checked++;
    }
  }
  t.ok(checked > 500, `${checked} lookups agree with the model`);
});

t.test('a restart (re-attach to the same state) finds every socket and lookup intact', async (t) => {
  const { sab, tb } = table({ seed: 5 });
  tb.bind(1, ANY, 53, 0, ENV);
  tb.bind(2, LO, 0, 0, ENV);
  tb.bind(3, ANY, 0, 0, ENV);
  tb.connect(3, ip('10.7.0.9'), 7, ENV);
  tb.setOpt(1, OPT_BROADCAST, 1);
  tb.count(UC['drop:bad-checksum'], 3);
  const before = tb.list();
  const tb2 = SocketTable.attach(sab);
  t.same(tb2.list(), before);
  t.equal(tb2.sockIdOf(tb2.lookup(ME, 53, ip('1.2.3.4'), 9)), 1);
  t.equal(tb2.sockIdOf(tb2.lookup(ME, before[2].localPort, ip('10.7.0.9'), 7)), 3);
  t.equal(tb2.counter('drop:bad-checksum'), 3, 'counters survive');
  t.equal(udpCounters(sab)['drop:bad-checksum'], 3, 'and read from the main thread without attaching');
  t.equal(udpCounters(new SharedArrayBuffer(1 << 12)).rx, 0, 'an unformatted state reads as zeros');
  t.equal(tb2.bind(2, LO, 0, 0, ENV).code, UERR.OK, 'replay after restart');
});

t.test('a crash in mid-write is completed by the next attach (journal)', async (t) => {
  for (const where of ['journaled', 'half-applied'] as const) {
    const { sab, tb } = table({ seed: 9 });
    tb.bind(1, ANY, 4000, 0, ENV);
    tb.failPoint = (w) => {
      if (w === where) throw new Error('crash');
    };
    t.throws(() => tb.connect(1, ip('10.7.0.9'), 53, ENV), /crash/, `${where}: the writer dies`);
    const tb2 = SocketTable.attach(sab);
    t.ok(tb2.redone, `${where}: the next incarnation redoes the write`);
    const s = tb2.list()[0];
    t.same([s.localAddr, s.remoteAddr, s.remotePort, s.flags & 8], [ME, ip('10.7.0.9'), 53, 8], `${where}: whole, not half`);
    t.same(tb2.connect(1, ip('10.7.0.9'), 53, ENV).code, UERR.OK, `${where}: the replayed CONNECT is a success`);
    // A crash while binding a new socket: the port is taken exactly once.
    const tb3 = SocketTable.attach(sab);
    tb3.failPoint = (w) => {
      if (w === where) throw new Error('crash');
    };
    t.throws(() => tb3.bind(2, ANY, 0, 0, ENV));
    const tb4 = SocketTable.attach(sab);
    const r = tb4.bind(2, ANY, 0, 0, ENV);
    t.equal(r.code, UERR.OK);
    t.equal(tb4.size, 2);
    const { tb: twin } = table({ seed: 9 });
    twin.bind(1, ANY, 4000, 0, ENV);
    twin.connect(1, ip('10.7.0.9'), 53, ENV);
    t.equal(r.port, twin.bind(2, ANY, 0, 0, ENV).port, `${where}: the same port as with no crash`);
  }
});
