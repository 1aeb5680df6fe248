import t from 'tap';
import { ARP_NO_HANDLE, ArpCache, emitArpFrame, multicastMac, type ArpCacheOptions } from '../../servers/ip/arp-cache.js';
import { ARP_OP_REPLY, ARP_OP_REQUEST, ArpRepr, ArpView } from '../../servers/wire/arp.js';
import { MAC_BROADCAST } from '../../servers/wire/ethernet.js';
import { ARP_REPLY, ARP_REQUEST, IP_A, IP_B, MAC_A, MAC_B, toHex } from '../wire/fixtures/helpers.js';
import { mulberry32, randInt } from '../helpers/prng.js';

const S = 1_000_000;
const OUR_MAC = 0x02000000aa01;
const OUR_IP = 0x0a000001; // 10.0.0.1
const host = (n: number): number => 0x0a000000 + n; // 10.0.0.n
const hostMac = (n: number): number => 0x02000000bb00 + n;

function cache(opts: ArpCacheOptions = {}): ArpCache {
  const c = new ArpCache(opts);
  c.setLocal(OUR_MAC, [OUR_IP]);
  return c;
}

function arp(op: number, senderMac: number, senderIp: number, targetMac: number, targetIp: number): ArpRepr {
  const r = new ArpRepr();
  r.operation = op;
  r.senderMac = senderMac;
  r.senderIp = senderIp;
  r.targetMac = targetMac;
  r.targetIp = targetIp;
  return r;
}

const replyFrom = (n: number, mac = hostMac(n)) => arp(ARP_OP_REPLY, mac, host(n), OUR_MAC, OUR_IP);
const requestFrom = (n: number, target = OUR_IP, mac = hostMac(n)) => arp(ARP_OP_REQUEST, mac, host(n), 0, target);
const gratuitous = (n: number, mac: number) => arp(ARP_OP_REQUEST, mac, host(n), 0, host(n));

function requests(c: ArpCache, now: number): [number, number][] {
  const p = c.poll(now);
  const out: [number, number][] = [];
  for (let i = 0; i < p.requestCount; i++) out.push([p.requestIps[i], p.requestEthDsts[i]]);
  return out;
}

t.test('resolve: queue, one broadcast request, reply releases the queue in order', async (t) => {
  const c = cache();
  t.equal(c.query(host(2), 11, 0), 'queued');
  t.equal(c.query(host(2), 12, 10), 'queued');
  t.equal(c.query(host(2), 13, 20), 'queued');
  t.equal(c.queued, 3);
  t.same(requests(c, 20), [[host(2), MAC_BROADCAST]], 'one request, not one per packet');
  t.equal(c.poll(30).nextDeadlineUs, 20 + S, 'retransmit deadline');
  const req = c.makeRequest(host(2), new ArpRepr());
  t.same([req.operation, req.senderMac, req.senderIp, req.targetMac, req.targetIp], [ARP_OP_REQUEST, OUR_MAC, OUR_IP, 0, host(2)]);
  const r = c.input(replyFrom(2), 500);
  t.equal(r.replyReady, false);
  t.equal(r.releasedCount, 3);
  t.same(Array.from(r.released.subarray(0, 3)), [11, 12, 13], 'FIFO');
  t.equal(r.releasedMac, hostMac(2));
  t.equal(c.queued, 0, 'queue empty after release');
  t.equal(c.query(host(2), 14, 600), 'resolved');
  t.equal(c.resolvedMac, hostMac(2));
  t.equal(c.entry(host(2))!.state, 'reachable');
  t.equal(c.counters.get('resolved'), 1);
  t.equal(c.counters.get('released'), 3);
  t.equal(c.counters.get('query-hit'), 1);
  t.equal(c.counters.get('tx-request'), 1);
  t.equal(c.poll(600).nextDeadlineUs, 500 + 30 * S, 'next wake: reachable timeout');
});

t.test('retry every second, three requests, then host unreachable for the waiters', async (t) => {
  const c = cache();
  t.equal(c.query(host(3), 1, 0), 'queued');
  t.equal(c.query(host(3), 2, 0), 'queued');
  t.equal(c.query(host(4), ARP_NO_HANDLE, 0), 'queued', 'resolution without a packet');
  t.same(requests(c, 0), [[host(3), MAC_BROADCAST], [host(4), MAC_BROADCAST]]);
  t.same(requests(c, S - 1), [], 'nothing before the retransmit time');
  t.same(requests(c, S), [[host(3), MAC_BROADCAST], [host(4), MAC_BROADCAST]]);
  t.same(requests(c, 2 * S), [[host(3), MAC_BROADCAST], [host(4), MAC_BROADCAST]]);
  t.equal(c.counters.get('tx-request'), 6);
  const p = c.poll(3 * S);
  t.equal(p.requestCount, 0);
  t.equal(p.failedCount, 2);
  t.same(Array.from(p.failed.subarray(0, 2)), [1, 2]);
  t.same(Array.from(p.failedIps.subarray(0, 2)), [host(3), host(3)]);
  t.equal(p.nextDeadlineUs, Infinity);
  t.equal(c.size, 0, 'failed entries are removed');
  t.equal(c.queued, 0);
  t.equal(c.counters.get('failed'), 2);
  t.equal(c.counters.get('waiters-failed'), 2);
  // A later packet starts over.
  t.equal(c.query(host(3), 5, 4 * S), 'queued');
  t.same(requests(c, 4 * S), [[host(3), MAC_BROADCAST]]);
});

t.test('queue limits: per entry and in total; the caller keeps refused handles', async (t) => {
  const c = cache({ maxQueuePerEntry: 2, maxQueued: 5 });
  t.equal(c.query(host(2), 1, 0), 'queued');
  t.equal(c.query(host(2), 2, 0), 'queued');
  t.equal(c.query(host(2), 3, 0), 'dropped', 'per-entry limit: tail drop');
  t.equal(c.query(host(3), 4, 0), 'queued');
  t.equal(c.query(host(3), 5, 0), 'queued');
  t.equal(c.query(host(4), 6, 0), 'queued');
  t.equal(c.query(host(4), 7, 0), 'dropped', 'pool exhausted');
  t.equal(c.query(host(5), 8, 0), 'dropped', 'no entry is made when the packet cannot be held');
  t.equal(c.entry(host(5)), null);
  t.equal(c.counters.get('drop:queue-full'), 1);
  t.equal(c.counters.get('drop:pool-full'), 2);
  t.equal(c.queued, 5);
  const r = c.input(replyFrom(3), 10);
  t.same(Array.from(r.released.subarray(0, r.releasedCount)), [4, 5]);
  t.equal(c.query(host(4), 7, 20), 'queued', 'room again after a release');
  const f = c.flush();
  t.same(Array.from(f.failed.subarray(0, f.failedCount)).sort(), [1, 2, 6, 7]);
  t.equal(c.queued, 0, 'no leak');
  t.equal(c.size, 0);
});

t.test('answering requests for our address; learning only when we are the target', async (t) => {
  const c = cache();
  let r = c.input(requestFrom(7), 0);
  t.equal(r.replyReady, true);
  t.same(
    [r.reply.operation, r.reply.senderMac, r.reply.senderIp, r.reply.targetMac, r.reply.targetIp, r.replyEthDst],
    [ARP_OP_REPLY, OUR_MAC, OUR_IP, hostMac(7), host(7), hostMac(7)],
  );
  t.equal(c.entry(host(7))!.state, 'reachable', 'the asker is learnt (it will talk to us)');
  t.equal(c.counters.get('learned'), 1);
  r = c.input(requestFrom(8, host(9)), 0);
  t.equal(r.replyReady, false, 'not ours: no reply');
  t.equal(c.entry(host(8)), null, 'and not learnt (RFC 826)');
  t.equal(c.counters.get('ignored:not-for-us'), 1);
  // A request from a host we know refreshes it even if it is not for us.
  r = c.input(requestFrom(7, host(9), 0x02000000cc07), 5);
  t.equal(c.entry(host(7))!.mac, 0x02000000cc07);
  t.equal(c.counters.get('mac-changed'), 1);
  t.equal(c.counters.get('tx-reply'), 1);
});

t.test('real capture: our answer to the captured request matches the captured reply', async (t) => {
  const c = new ArpCache();
  c.setLocal(MAC_B, [IP_B]);
  const view = new ArpView();
  const req = new ArpRepr();
  t.equal(view.reset(ARP_REQUEST, 14, ARP_REQUEST.length - 14), null);
  t.equal(req.parse(view), null);
  const r = c.input(req, 0);
  t.equal(r.replyReady, true);
  const out = new Uint8Array(64).fill(0xee);
  t.equal(emitArpFrame(out, 2, r.replyEthDst, r.reply), 60);
  t.equal(toHex(out, 2, ARP_REPLY.length), toHex(ARP_REPLY), 'byte for byte');
  t.equal(toHex(out, 2 + ARP_REPLY.length, 60 - ARP_REPLY.length), '00'.repeat(60 - ARP_REPLY.length), 'padded with zeros');
  t.equal(out[62], 0xee, 'nothing written past the frame');
  t.equal(c.entry(IP_A)!.mac, MAC_A, 'the requester was learnt');
  t.throws(() => emitArpFrame(new Uint8Array(59), 0, 0, r.reply), RangeError);
});

t.test('gratuitous ARP updates existing entries only', async (t) => {
  const c = cache();
  c.input(requestFrom(2), 0); // learn 10.0.0.2
  let r = c.input(gratuitous(2, 0x02000000dd02), S);
  t.equal(r.replyReady, false);
  t.equal(c.entry(host(2))!.mac, 0x02000000dd02, 'moved to a new MAC');
  t.equal(c.entry(host(2))!.deadlineUs, S + 30 * S, 'and confirmed');
  r = c.input(gratuitous(3, hostMac(3)), S);
  t.equal(c.entry(host(3)), null, 'unknown host: not learnt');
  t.equal(c.counters.get('rx-gratuitous'), 2);
  // A gratuitous reply resolves an entry that was waiting.
  c.query(host(4), 9, S);
  r = c.input(arp(ARP_OP_REPLY, hostMac(4), host(4), MAC_BROADCAST, host(4)), S + 5);
  t.same(Array.from(r.released.subarray(0, r.releasedCount)), [9]);
  // Someone claiming our address: never learnt, counted.
  r = c.input(arp(ARP_OP_REQUEST, hostMac(5), OUR_IP, 0, OUR_IP), S);
  t.equal(r.replyReady, false);
  t.equal(c.counters.get('drop:address-conflict'), 1);
});

t.test('malformed or suspicious senders are counted by reason', async (t) => {
  const c = cache();
  const cases: [ArpRepr, string][] = [
    [arp(ARP_OP_REQUEST, 0, host(2), 0, OUR_IP), 'drop:bad-sender-mac'],
    [arp(ARP_OP_REQUEST, MAC_BROADCAST, host(2), 0, OUR_IP), 'drop:bad-sender-mac'],
    [arp(ARP_OP_REQUEST, 0x01005e000001, host(2), 0, OUR_IP), 'drop:bad-sender-mac'],
    [arp(ARP_OP_REQUEST, OUR_MAC, OUR_IP, 0, host(2)), 'drop:own-packet'],
    [arp(ARP_OP_REQUEST, hostMac(2), 0xffffffff, 0, OUR_IP), 'drop:bad-sender-ip'],
    [arp(ARP_OP_REQUEST, hostMac(2), 0xe0000001, 0, OUR_IP), 'drop:bad-sender-ip'],
    [arp(ARP_OP_REQUEST, hostMac(2), 0x7f000001, 0, OUR_IP), 'drop:bad-sender-ip'],
    [arp(ARP_OP_REQUEST, hostMac(2), 0x00000005, 0, OUR_IP), 'drop:bad-sender-ip'],
    [arp(ARP_OP_REPLY, hostMac(2), OUR_IP, 0, OUR_IP), 'drop:address-conflict'],
  ];
  for (const [pkt, reason] of cases) {
    const before = c.counters.get(reason as never);
    const r = c.input(pkt, 0);
    t.equal(r.replyReady, false, reason);
    t.equal(c.counters.get(reason as never), before + 1, reason);
  }
  t.equal(c.size, 0, 'nothing learnt');
  t.equal(c.counters.drops(), cases.length);
});

t.test('RFC 5227 probe for our address is answered, never learnt', async (t) => {
  const c = cache();
  let r = c.input(arp(ARP_OP_REQUEST, hostMac(9), 0, 0, OUR_IP), 0);
  t.equal(r.replyReady, true);
  t.equal(r.reply.targetIp, 0);
  t.equal(r.replyEthDst, hostMac(9));
  t.equal(c.size, 0);
  r = c.input(arp(ARP_OP_REQUEST, hostMac(9), 0, 0, host(9)), 0);
  t.equal(r.replyReady, false, 'probe for someone else: ignored');
  t.equal(c.counters.get('rx-probe'), 2);
});

t.test('reachable -> stale -> probe (unicast) -> reachable, and the failure paths', async (t) => {
  const c = cache();
  c.input(requestFrom(2), 0);
  const early = c.poll(30 * S - 1);
  t.equal(early.nextDeadlineUs, 30 * S);
  t.equal(early.fired, 0, 'nothing due: no entry ran (ip publishes its counters only when one did)');
  const staleBefore = c.counters.get('stale');
  t.equal(c.poll(30 * S).fired, 1, 'the entry whose deadline passed ran');
  t.equal(c.counters.get('stale'), staleBefore + 1, 'and counted');
  t.equal(c.entry(host(2))!.state, 'stale');
  t.equal(c.query(host(2), 1, 31 * S), 'resolved', 'stale entries are still used');
  t.equal(c.entry(host(2))!.state, 'probe');
  t.same(requests(c, 31 * S), [], 'probe delay first');
  t.same(requests(c, 36 * S), [[host(2), hostMac(2)]], 'unicast probe to the known MAC');
  t.equal(c.counters.get('tx-probe'), 1);
  c.input(replyFrom(2), 36 * S + 100);
  t.equal(c.entry(host(2))!.state, 'reachable');

  // Upper-layer confirmation instead of ARP.
  c.poll(70 * S);
  t.equal(c.entry(host(2))!.state, 'stale');
  c.query(host(2), ARP_NO_HANDLE, 71 * S);
  c.confirm(host(2), 72 * S);
  t.equal(c.entry(host(2))!.state, 'reachable');
  t.equal(c.entry(host(2))!.deadlineUs, 102 * S);

  // Probe with no answer: removed after three probes.
  c.poll(102 * S);
  c.query(host(2), ARP_NO_HANDLE, 103 * S);
  t.same(requests(c, 108 * S).length, 1);
  t.same(requests(c, 109 * S).length, 1);
  t.same(requests(c, 110 * S).length, 1);
  c.poll(111 * S);
  t.equal(c.entry(host(2)), null);
  t.equal(c.counters.get('probe-failed'), 1);

  // Unused stale entry: garbage-collected.
  c.input(requestFrom(3), 200 * S);
  c.poll(230 * S);
  t.equal(c.entry(host(3))!.state, 'stale');
  c.poll(290 * S - 1);
  t.ok(c.entry(host(3)));
  c.poll(290 * S);
  t.equal(c.entry(host(3)), null);
  t.equal(c.counters.get('expired'), 1);
  t.equal(c.size, 0);
});

t.test('table limit: LRU eviction, stale first; incomplete and static entries are kept', async (t) => {
  const c = cache({ capacity: 4 });
  for (let n = 2; n <= 5; n++) c.input(requestFrom(n), n * S); // learnt at 2..5 s
  t.equal(c.size, 4);
  c.query(host(2), ARP_NO_HANDLE, 10 * S); // 2 is now the most recently used
  t.equal(c.query(host(6), 1, 11 * S), 'queued');
  t.equal(c.entry(host(3)), null, 'least recently used went');
  t.equal(c.counters.get('evicted'), 1);
  // Stale entries go before reachable ones even when a reachable one is less recently used.
  const e = cache({ capacity: 2 });
  e.input(requestFrom(2), 0); // used at 0
  e.input(requestFrom(3), 5 * S); // used at 5 s
  e.input(replyFrom(2), 20 * S); // 2 confirmed (reachable until 50 s), not used
  e.poll(36 * S);
  t.equal(e.entry(host(3))!.state, 'stale');
  t.equal(e.entry(host(2))!.state, 'reachable');
  t.equal(e.query(host(7), 2, 37 * S), 'queued');
  t.equal(e.entry(host(3)), null, 'the stale entry went');
  t.ok(e.entry(host(2)), 'the older reachable one stayed');
  // Fill with incomplete + static: nothing evictable.
  const d = cache({ capacity: 2 });
  d.query(host(2), 1, 0);
  t.not(d.addStatic(host(3), hostMac(3)), 'drop:table-full');
  t.equal(d.query(host(4), 2, 0), 'dropped');
  t.equal(d.counters.get('drop:table-full'), 1);
  t.equal(d.input(requestFrom(5), 0).replyReady, true, 'still answers when it cannot learn');
  t.equal(d.counters.get('drop:learn-table-full'), 1);
  t.equal(d.addStatic(host(6), 1), 'drop:table-full');
});

t.test('static entries: release waiters, ignore the wire, survive flush and timers', async (t) => {
  const c = cache();
  c.query(host(2), 41, 0);
  const r = c.addStatic(host(2), hostMac(2));
  if (r === 'drop:table-full') throw new Error('unexpected');
  t.same(Array.from(r.released.subarray(0, r.releasedCount)), [41]);
  c.input(replyFrom(2, 0x02000000ee02), 1);
  t.equal(c.entry(host(2))!.mac, hostMac(2), 'wire cannot override');
  t.equal(c.counters.get('ignored:static'), 1);
  t.equal(c.poll(1000 * S).nextDeadlineUs, Infinity);
  c.flush();
  t.equal(c.entry(host(2))!.state, 'static');
  t.equal(c.query(host(2), 1, 0), 'resolved');
});

t.test('broadcast, multicast and 0.0.0.0 targets', async (t) => {
  const c = cache();
  t.equal(c.query(0xffffffff, 1, 0), 'resolved');
  t.equal(c.resolvedMac, MAC_BROADCAST);
  t.equal(c.query(0xe00000fb, 1, 0), 'resolved');
  t.equal(c.resolvedMac, 0x01005e0000fb);
  t.equal(multicastMac(0xefff8081), 0x01005e7f8081, 'only the low 23 bits');
  t.equal(c.query(0, 1, 0), 'dropped');
  t.equal(c.counters.get('drop:bad-target'), 1);
  t.equal(c.size, 0);
});

t.test('seeded random workload: every handle comes back exactly once; deterministic', async (t) => {
  function run(seed: number): string {
    const rand = mulberry32(seed);
    const c = cache({ capacity: 8, maxQueuePerEntry: 3, maxQueued: 12 });
    const held = new Set<number>();
    let handle = 0;
    let now = 0;
    const log: string[] = [];
    const give = (h: number, why: string) => {
      if (!held.delete(h)) t.fail(`handle ${h} returned twice or never held (${why})`);
    };
    for (let step = 0; step < 4000; step++) {
      const a = rand();
      const n = randInt(rand, 2, 14);
      if (a < 0.5) {
        const h = handle++;
        const q = c.query(host(n), h, now);
        if (q === 'queued') held.add(h);
        log.push(q[0]);
      } else if (a < 0.7) {
        const r = c.input(rand() < 0.5 ? replyFrom(n) : requestFrom(n, rand() < 0.5 ? OUR_IP : host(99)), now);
        for (let i = 0; i < r.releasedCount; i++) give(r.released[i], 'released');
        log.push(`i${r.releasedCount}`);
      } else if (a < 0.95) {
        now += randInt(rand, 0, 3 * S);
        const p = c.poll(now);
        for (let i = 0; i < p.failedCount; i++) give(p.failed[i], 'failed');
        log.push(`p${p.requestCount}/${p.failedCount}`);
        if (p.nextDeadlineUs !== Infinity && p.nextDeadlineUs <= now) t.fail('deadline in the past');
      } else {
        c.confirm(host(n), now);
      }
      if (c.queued !== held.size) {
        t.fail(`queued ${c.queued} != held ${held.size}`);
        break;
      }
      if (c.size > 8 || c.queued > 12) t.fail('limits');
    }
    const f = c.flush();
    for (let i = 0; i < f.failedCount; i++) give(f.failed[i], 'flush');
    t.equal(held.size, 0, 'all handles returned');
    t.equal(c.queued, 0);
    return log.join(',') + JSON.stringify(c.counters.snapshot());
  }
  const a = run(1234);
  t.equal(run(1234), a, 'same seed, same history');
  t.not(run(4321), a);
});

t.test('poll skips its scan until the earliest deadline, and every deadline set meanwhile counts', async (t) => {
  // A seeded sequence of queries, replies and polls against a twin cache that always scans (a cache
  // whose `nextDue` is forced unknown before every poll): both must send the same requests, fail the
  // same waiters and report the same next deadline at every step.
  const rnd = mulberry32(0x5ca7);
  const a = cache({ capacity: 8 });
  const b = cache({ capacity: 8 });
  const forceScan = (c: ArpCache) => ((c as unknown as { nextDue: number }).nextDue = -Infinity);
  let now = 0;
  let handle = 1;
  for (let step = 0; step < 3000; step++) {
    now += randInt(rnd, 0, 400_000);
    const n = randInt(rnd, 2, 12);
    const what = randInt(rnd, 0, 3);
    if (what === 0) {
      const h = handle++;
      const qa = a.query(host(n), h, now);
      const qb = b.query(host(n), h, now);
      if (qa !== qb) {
        t.equal(qa, qb, `step ${step}: same answer to a query`);
        return;
      }
    } else if (what === 1) {
      a.input(replyFrom(n), now);
      b.input(replyFrom(n), now);
    } else {
      forceScan(b);
      const pa = a.poll(now);
      const ra = [pa.nextDeadlineUs, pa.requestCount, pa.failedCount, pa.fired];
      const pb = b.poll(now);
      const rb = [pb.nextDeadlineUs, pb.requestCount, pb.failedCount, pb.fired];
      if (ra.join() !== rb.join()) {
        t.same(ra, rb, `step ${step}: the skipping cache and the scanning one agree`);
        return;
      }
    }
  }
  t.same(a.counters.snapshot(), b.counters.snapshot(), 'same counters');
  t.pass('3000 steps: same requests, failures and deadlines');
});
