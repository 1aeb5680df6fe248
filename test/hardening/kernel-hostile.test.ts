/**
 * Hostile traffic from the kernel peer's namespace K against a keepnet stack on the TAP (the real-peer
 * topology of test/helpers/netns.ts), while a node:http client in K keeps one keep-alive connection
 * busy with verified responses and opens fresh connections every 250 ms (test/helpers/keepalive-peer.ts):
 *
 *   (a) a SYN flood at full rate from random sources (hping3 --flood -S --rand-source) against keepnet's
 *       http service: the keep-alive connection keeps getting verified responses, new connections from
 *       K still succeed, the table stays within its bound, SYN cookies are counted, no server restarts;
 *   (b) blind RSTs and SYNs at random sequence numbers on the keep-alive connection's four-tuple
 *       (hping3 -R / -S -s PORT -k), and at an in-window sequence number (hping3 -M, read off the wire):
 *       challenge ACKs, never a reset; blind data at exactly RCV.NXT with unacceptable ACKs: dropped
 *       (RFC 5961);
 *   (c) ICMP errors quoting the connection (a raw-socket python3 script in K, test/helpers/raw-inject.ts,
 *       and hping3 --icmp): soft errors, never a reset (RFC 5927 / RFC 1122 4.2.3.9).
 *
 * Traffic stays inside the namespaces this test creates: the flood's SYN-ACKs go to the gateway, the
 * kernel in K, which does not forward them.
 */
import t from 'tap';
import { randomInt } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { canRunNetns, createWire, netnsUnavailableReason, which, type Background, type Wire } from '../helpers/netns.js';
import { rawInjectArgv } from '../helpers/raw-inject.js';
import { restarts, tcpUsed } from '../helpers/fuzz.js';
import { Stack } from '../../kernel-shim/stack.js';
import { TcpLayout } from '../../servers/tcp/layout.js';
import http from 'node:http';
import { httpHandler, startTcpService, type NetLike } from '../../bin/services/tcp-services.js';

const peer = fileURLToPath(new URL('../helpers/keepalive-peer.js', import.meta.url));
const NONE = { driver: 0, ip: 0, tcp: 0, udp: 0 };
const FLOOD_S = Number(process.env.KEEPNET_FLOOD_S ?? 5);

interface Progress {
  event: string;
  ms: number;
  localPort?: number;
  keepAlive: { ok: number; bad: number; sockets: number; localPorts: number[]; maxMs: number };
  fresh: { ok: number; bad: number; maxMs: number; inFlight: number };
  errors: Record<string, number>;
}

// Runs by default (KEEPNET_HOSTILE=0 skips it): .ci/run installs hping3. A full-rate flood saturates a
// core for seconds; the assertions are about what the stack guarantees under it (no failed request,
// no reset, no restart), not about how fast it answers.
const optOut = process.env.KEEPNET_HOSTILE === '0';
const reason = optOut
  ? 'KEEPNET_HOSTILE=0'
  : !canRunNetns()
    ? netnsUnavailableReason()
    : !which('hping3')
      ? 'hping3 is not installed (apt package hping3; .ci/run installs it)'
      : undefined;

if (reason) {
  t.plan(0, `kernel hostile-traffic tests skipped: ${reason}`);
} else {
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const events = (bg: Background): Progress[] =>
    bg
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Progress);
  const last = (bg: Background): Progress | undefined => events(bg).filter((e) => e.event !== 'ready').pop();
  const until = async <T>(f: () => T | undefined | false, ms: number, what: string): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = f();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  };
  /** Runs a command in a namespace without blocking the event loop; its output. */
  const run = async (wire: Wire, ns: string, argv: string[], timeoutMs = 30_000, okCodes = [0]): Promise<string> => {
    const r = await wire.spawn(ns, argv, { timeoutMs }).exited;
    if (!okCodes.includes(r.code ?? -1)) throw new Error(`${argv.filter((a) => a.length < 100).join(' ')} exited ${r.code ?? r.signal}: ${(r.stderr || r.stdout).slice(0, 400)}`);
    return r.stdout + r.stderr;
  };
  const nstat = async (wire: Wire): Promise<Record<string, number>> =>
    (JSON.parse(await run(wire, 'K', ['nstat', '-az', '--json'])) as { kernel: Record<string, number> }).kernel;
  /** The tcp counters whose names match re, minus those of `before`. */
  const delta = (after: Record<string, number>, before: Record<string, number>, re = /./): Record<string, number> =>
    Object.fromEntries(
      Object.entries(after)
        .filter(([k, v]) => re.test(k) && v !== (before[k] ?? 0))
        .map(([k, v]) => [k, v - (before[k] ?? 0)]),
    );
  /** The keep-alive connection carried `n` more verified responses since `from`, on the same socket. */
  const moreResponses = async (client: Background, from: Progress, n: number, ms: number): Promise<Progress> =>
    until(() => {
      const p = last(client);
      return p && p.keepAlive.ok >= from.keepAlive.ok + n ? p : undefined;
    }, ms, `${n} more keep-alive responses`);

  t.test('hostile traffic from the kernel namespace against a keepnet stack on TAP', async (t) => {
    const wire = createWire({});
    const stack = new Stack({
      address: `${wire.stackAddr}/24`,
      // The flood's SYN-ACKs to random sources go to the gateway (the kernel in K, which drops them).
      gateway: wire.kernelAddr,
      link: { kind: 'tap', name: wire.tapName, fd: wire.tap.fd },
      // A table larger than the listener's backlog (511): the backlog fills first and SYN cookies take
      // over. (With the default table of 256 the table fills first: see the next test.)
      tcp: { maxConnections: 1024 },
    });
    const deaths: string[] = [];
    stack.on('death', (d: { server: string; cause: string; reason?: unknown }) => deaths.push(`${d.server} ${d.cause} ${String(d.reason)}`));
    stack.on('hang', (h: { servers: string[] }) => deaths.push(`hang ${h.servers.join(',')}`));
    const stopFile = `/tmp/kn-hostile-${process.pid}.stop`;
    rmSync(stopFile, { force: true });
    let client: Background | undefined;
    try {
      await stack.start();
      // keepnet's http service (the handler of `keepnet tap --serve http`), with a longer keep-alive
      // timeout than the service's 5 s: during the flood the client's next request can be held back
      // more than 5 s by frames dropped on the way in (driver drop:rx-no-buffer), and node:http
      // would then close the idle keep-alive connection (a FIN, which the client sees as ECONNRESET
      // on the request it had in flight): HTTP's timeout, not the TCP reset this test looks for.
      const h = http.createServer(httpHandler);
      h.keepAliveTimeout = 120_000;
      const httpServer = stack.net.createServer((sock) => {
        sock.on('error', () => {});
        h.emit('connection', sock);
      });
      await new Promise<void>((r) => httpServer.listen(80, '0.0.0.0', () => r()));
      const maxConns = TcpLayout.of(stack.memory.init.state.tcp)?.maxConns ?? 0;
      const poolBase = stack.stats().pool.inUse;
      const kBefore = await nstat(wire);
      client = wire.spawn('K', ['node', peer, `http://${wire.stackAddr}`, stopFile, '20000', '250', '20', '300000'], { timeoutMs: 320_000 });
      const ready = await until(() => events(client!).find((e) => e.event === 'ready'), 20_000, 'the keep-alive client').catch((e: Error) => {
        throw new Error(`${e.message}: ${client!.stderr().slice(0, 500)}`);
      });
      const port = ready.localPort as number;
      t.ok(port > 0, `keep-alive connection from K: ${wire.kernelAddr}:${port} -> ${wire.stackAddr}:80`);
      const first = await until(() => last(client!), 10_000, 'the first progress report');
      const base = await moreResponses(client, first, 3, 10_000);

      await t.test('(a) SYN flood at full rate from random sources', async (t) => {
        const before = stack.stats().servers.tcp.protocol;
        const driverBefore = stack.stats().servers.driver.protocol;
        const start = last(client!) as Progress;
        let peak = tcpUsed(stack);
        const sampler = setInterval(() => (peak = Math.max(peak, tcpUsed(stack))), 20);
        const flood = wire.spawn('K', ['timeout', '-s', 'INT', String(FLOOD_S), 'hping3', '--flood', '-S', '-p', '80', '--rand-source', wire.stackAddr], {
          timeoutMs: FLOOD_S * 1000 + 15_000,
        });
        // The client reports every second: both reports below were printed while the flood ran.
        await sleep(1100);
        const inFlood = last(client!) as Progress;
        const fr = await flood.exited;
        clearInterval(sampler);
        const floodEnd = last(client!) as Progress;
        const sent = /(\d+) packets transmitted/.exec(fr.stdout + fr.stderr)?.[1];
        t.ok(sent && Number(sent) > 0, `hping3 flooded for ${FLOOD_S} s: ${sent} SYNs (${Math.round(Number(sent) / FLOOD_S)}/s)`);
        // At full rate about half of what reaches the driver is dropped for want of an rx buffer, the
        // client's frames among them, and the kernel in K backs its retransmissions off: a request can
        // wait until the flood ends. What must hold: it is answered, on the same connection, in time.
        t.comment(`keep-alive responses: ${floodEnd.keepAlive.ok - start.keepAlive.ok} from the last report before the flood to its end, ${floodEnd.keepAlive.ok - inFlood.keepAlive.ok} in its last ${((floodEnd.ms - inFlood.ms) / 1000).toFixed(1)} s`);
        // After the flood: fresh connections made during it have completed.
        const after = await moreResponses(client!, floodEnd, 5, 30_000);
        const drained = await until(() => (last(client!) as Progress).fresh.inFlight === 0, 20_000, 'fresh connections to finish').catch(() => false);
        const settled = last(client!) as Progress;
        const tc = stack.stats().servers.tcp.protocol;
        const d = delta(tc, before);
        const drv = delta(stack.stats().servers.driver.protocol, driverBefore);
        t.comment(`tcp during the flood: ${JSON.stringify(d)}`);
        t.comment(`driver during the flood: ${JSON.stringify(drv)}; table peak ${peak}/${maxConns}`);
        t.comment(`client: keep-alive ${start.keepAlive.ok} -> ${floodEnd.keepAlive.ok} responses during the flood (max ${settled.keepAlive.maxMs} ms); fresh ${start.fresh.ok} -> ${settled.fresh.ok} ok, ${settled.fresh.bad} failed (max ${settled.fresh.maxMs} ms) ${JSON.stringify(settled.errors)}`);
        t.equal(settled.keepAlive.bad, 0, 'no keep-alive request failed');
        t.ok(settled.keepAlive.maxMs < FLOOD_S * 1000 + 5000, `no keep-alive request waited more than the flood + 5 s (longest ${settled.keepAlive.maxMs} ms)`);
        t.same(settled.keepAlive.localPorts, [port], 'the keep-alive connection is the same socket throughout');
        t.ok(after.keepAlive.ok > floodEnd.keepAlive.ok, 'it still answers after the flood');
        t.ok(settled.fresh.ok > start.fresh.ok + FLOOD_S, `new connections from K succeeded during the flood (${settled.fresh.ok - start.fresh.ok})`);
        t.ok(drained, `every new connection made during the flood completed within 20 s of its end (${settled.fresh.inFlight} still waiting)`);
        t.equal(settled.fresh.bad, 0, 'no new connection failed');
        t.ok((d['syncookies-sent'] ?? 0) > 0, `SYN cookies sent (${d['syncookies-sent']}) once the backlog was full`);
        t.ok(peak <= maxConns, `the table stayed within its bound (peak ${peak} of ${maxConns})`);
        t.same(restarts(stack), NONE, 'no server restarted');
        t.same(deaths, [], 'no server died or hung');
      });

      await t.test('(b) blind RSTs and SYNs on the connection\'s four-tuple (RFC 5961)', async (t) => {
        const before = stack.stats().servers.tcp.protocol;
        const start = last(client!) as Progress;
        // Truly blind: random sequence numbers (hping3 picks one per packet unless -M is given).
        const common = ['-q', '-s', String(port), '-k', '-p', '80', '-c', '200', '-i', 'u2000'];
        await run(wire, 'K', ['hping3', '-R', ...common, wire.stackAddr], 30_000, [0, 1]);
        await run(wire, 'K', ['hping3', '-S', ...common, wire.stackAddr], 30_000, [0, 1]);
        // In the window but not exact: the stack's RCV.NXT read off the wire, plus 3000.
        const seg = JSON.parse(await run(wire, 'K', rawInjectArgv('sniff', ['k0', 80, port, 10]), 15_000)) as { seq: number; ack: number };
        const inWindow = (seg.ack + 3000) >>> 0;
        const exactOnce = ['-q', '-s', String(port), '-k', '-p', '80', '-c', '3', '-i', 'u20000', '-M', String(inWindow)];
        await run(wire, 'K', ['hping3', '-R', ...exactOnce, wire.stackAddr], 30_000, [0, 1]);
        await run(wire, 'K', ['hping3', '-S', ...exactOnce, wire.stackAddr], 30_000, [0, 1]);
        await run(wire, 'K', ['hping3', '-R', '-A', ...exactOnce, wire.stackAddr], 30_000, [0, 1]);
        // Blind data at exactly RCV.NXT, with acknowledgment numbers the stack never sent or long acked
        // (RFC 5961 §5): if it were taken, the http request stream would be corrupt (a 400, a close).
        // (In the window rather than at RCV.NXT itself, which the client's requests keep moving.)
        const beforeData = stack.stats().servers.tcp.protocol;
        for (const ack of [(seg.seq + 0x40000000) >>> 0, (seg.seq - 0x40000000) >>> 0]) {
          const data = ['-q', '-s', String(port), '-k', '-p', '80', '-c', '3', '-i', 'u20000', '-M', String((seg.ack + 1000) >>> 0), '-L', String(ack), '-A', '-P', '-d', '48'];
          await run(wire, 'K', ['hping3', ...data, wire.stackAddr], 30_000, [0, 1]);
        }
        const after = await moreResponses(client!, start, 5, 30_000);
        const dd = delta(stack.stats().servers.tcp.protocol, beforeData, /^drop:seg-/);
        const d = delta(stack.stats().servers.tcp.protocol, before, /drop|rst|closed|challenge/);
        t.comment(`seq read off the wire: ${JSON.stringify(seg)}; RSTs/SYNs at ${inWindow}; tcp: ${JSON.stringify(d)}`);
        t.equal(after.keepAlive.bad, 0, 'no keep-alive request failed');
        t.same(after.keepAlive.localPorts, [port], 'the connection was not reset (same socket)');
        t.ok((d['drop:seg-rst-challenge'] ?? 0) > 0, 'in-window RSTs were answered with a challenge ACK');
        t.ok((d['drop:seg-syn-challenge'] ?? 0) > 0, 'SYNs on the established connection were answered with a challenge ACK');
        t.comment(`blind data at RCV.NXT with bad ACKs: ${JSON.stringify(dd)}`);
        // (Not all 6 always reach the stack as sent: the counts seen are 1-3 of each kind.)
        t.ok((dd['drop:seg-ack-unsent'] ?? 0) >= 1, 'blind data acknowledging bytes never sent was dropped and counted');
        t.ok((dd['drop:seg-ack-too-old'] ?? 0) >= 1, 'blind data with a long-acknowledged ACK was dropped and counted');
        t.same(restarts(stack), NONE, 'no server restarted');
        t.same(deaths, [], 'no server died or hung');
      });

      await t.test('(c) ICMP errors quoting the connection', async (t) => {
        const before = stack.stats().servers.tcp.protocol;
        const start = last(client!) as Progress;
        const seg = JSON.parse(await run(wire, 'K', rawInjectArgv('sniff', ['k0', 80, port, 10]), 15_000)) as { seq: number; ack: number };
        // The stack's segments to K: SND.UNA..SND.NXT is about seg.seq; also stale and far ones.
        const seqs = [seg.seq, (seg.seq - 1) >>> 0, (seg.seq + 20_000) >>> 0, (seg.seq + 0x40000000) >>> 0, randomInt(0, 2 ** 32 - 1)].join(',');
        const kinds = '3/0,3/1,3/2,3/3,3/4/68,3/4/576,3/13,11/0,11/1,12/0,4/0';
        const router = `10.77.${wire.subnet}.254`;
        let sent = 0;
        for (const src of [wire.kernelAddr, router]) {
          const r = JSON.parse(await run(wire, 'K', rawInjectArgv('icmp', [src, wire.stackAddr, wire.stackAddr, wire.kernelAddr, 80, port, seqs, kinds]), 15_000)) as { sent: number };
          sent += r.sent;
        }
        // And hping3's own: port unreachable / host unreachable quoting the four-tuple (its quoted seq is its choice).
        for (const code of ['3', '1']) {
          await run(wire, 'K', ['hping3', '-q', '--icmp', '-C', '3', '-K', code, '--icmp-ipsrc', wire.stackAddr, '--icmp-ipdst', wire.kernelAddr, '--icmp-srcport', '80', '--icmp-dstport', String(port), '-c', '20', '-i', 'u2000', wire.stackAddr], 30_000, [0, 1]);
          sent += 20;
        }
        const after = await moreResponses(client!, start, 5, 30_000);
        const d = delta(stack.stats().servers.tcp.protocol, before, /icmp|drop|rst|closed/);
        t.comment(`${sent} ICMP errors (quoted seqs ${seqs}); tcp: ${JSON.stringify(d)}; ip: ${JSON.stringify(delta(stack.stats().servers.ip.protocol, {}, /icmp/))}`);
        t.ok((d['icmp'] ?? 0) > 0, `the tcp server saw the ICMP errors (${d['icmp']})`);
        t.equal(after.keepAlive.bad, 0, 'no keep-alive request failed');
        t.same(after.keepAlive.localPorts, [port], 'the connection was not reset (same socket)');
        t.same(restarts(stack), NONE, 'no server restarted');
        t.same(deaths, [], 'no server died or hung');
      });

      writeFileSync(stopFile, '');
      const done = await client.exited;
      const final = events(client).pop() as Progress;
      const kAfter = await nstat(wire);
      t.equal(done.code, 0, `the client ended cleanly ${done.stderr.slice(0, 300)}`);
      t.equal(final?.event, 'done', 'the client reported');
      t.comment(`client overall: ${JSON.stringify(final)} (from ${base.keepAlive.ok} responses at the start)`);
      t.equal(final.keepAlive.bad + final.fresh.bad, 0, 'no request failed');
      t.same(final.keepAlive.localPorts, [port], 'one keep-alive connection throughout');
      const kd = delta(kAfter, kBefore, /^Tcp(EstabResets|InRsts|ExtTCPAbortOnData|ExtTCPAbortOnClose)$/);
      t.comment(`kernel in K: ${JSON.stringify(kd)}`);
      t.equal(kd['TcpEstabResets'] ?? 0, 0, 'the kernel saw no established connection reset');
      t.equal(kd['TcpInRsts'] ?? 0, 0, 'the kernel received no reset at all');
      const t1 = Date.now();
      while (stack.stats().pool.inUse > poolBase && Date.now() - t1 < 10_000) await sleep(50);
      t.ok(stack.stats().pool.inUse <= poolBase, `pool back to its baseline (${poolBase} -> ${stack.stats().pool.inUse})`);
      t.same(restarts(stack), NONE, 'no server restarted');
    } finally {
      client?.kill();
      rmSync(stopFile, { force: true });
      await stack.close();
      wire.destroy();
    }
  });

  t.test('SYN flood against a table smaller than the backlog (default 256 < 511): new connections still made', async (t) => {
    // The table fills with the flood's SYN_RECEIVED children before the backlog is full. A SYN that
    // finds the table full is answered with a cookie, and the cookie's ACK evicts an embryonic child
    // to make room: a real client still gets in at once, not a minute later when the children expire.
    const wire = createWire({});
    const stack = new Stack({ address: `${wire.stackAddr}/24`, gateway: wire.kernelAddr, link: { kind: 'tap', name: wire.tapName, fd: wire.tap.fd } });
    const deaths: string[] = [];
    stack.on('death', (d: { server: string; cause: string; reason?: unknown }) => deaths.push(`${d.server} ${d.cause} ${String(d.reason)}`));
    try {
      await stack.start();
      await startTcpService(stack.net as unknown as NetLike, 'http');
      const before = stack.stats().servers.tcp.protocol;
      const fr = await wire.spawn('K', ['timeout', '-s', 'INT', '3', 'hping3', '--flood', '-S', '-p', '80', '--rand-source', wire.stackAddr], { timeoutMs: 20_000 }).exited;
      const t0 = Date.now();
      const r = await wire.spawn('K', ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', `http://${wire.stackAddr}/bytes/1000`], { timeoutMs: 20_000 }).exited;
      const ms = Date.now() - t0;
      const d = delta(stack.stats().servers.tcp.protocol, before, /syn|cookie|no-listener|backlog|evict|accepted/);
      t.comment(`${/(\d+) packets transmitted/.exec(fr.stdout + fr.stderr)?.[1]} SYNs in 3 s; then curl: ${r.stdout || r.stderr.trim()} after ${ms} ms; table ${tcpUsed(stack)}; tcp ${JSON.stringify(d)}`);
      const ok = r.code === 0 && r.stdout === '200';
      t.ok(ok, 'a new connection from K right after the flood gets its response within 10 s');
      t.ok((d['syncookies-sent'] ?? 0) > 0, 'SYNs that found the table full were answered with cookies');
      t.ok((d['syn-evicted'] ?? 0) > 0, "the client's cookie ACK evicted an embryonic child");
      t.same(restarts(stack), NONE, 'no server restarted', { deaths });
    } finally {
      await stack.close();
      wire.destroy();
    }
  });
}
