/**
 * The link and network layers against the Linux kernel as the peer: a TAP device in a "wire" namespace
 * forwarded to a veth whose other end, in namespace K, is the kernel's own IPv4 stack. The namespaces
 * are created by the test and removed after it (test/helpers/netns.ts); no traffic leaves them.
 * Checks: ping (with 4000-byte pings that fragment both ways) with 0% loss, ARP both ways, 1000 UDP
 * echoes from node:dgram in K byte-exact, the same through 5% loss each way, and every server restarted
 * mid-transfer without the client noticing.
 */
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { canRunNetns, createWire, netnsUnavailableReason, type Wire } from '../helpers/netns.js';
import { Stack } from '../../kernel-shim/stack.js';
import { SERVER_NAMES } from '../../servers/runtime/topology.js';
import { flowing } from '../helpers/flowing.js';

const client = fileURLToPath(new URL('../helpers/udp-echo-client.js', import.meta.url));

if (!canRunNetns()) {
  if (process.env.CI) t.fail(`real-peer tests cannot run in CI: ${netnsUnavailableReason()}`);
  else t.plan(0, `real-peer tests need root and iproute2/nftables: ${netnsUnavailableReason()}`);
} else {
  let wire: Wire;
  let stack: Stack;

  t.before(async () => {
    wire = createWire({});
    stack = new Stack({ address: `${wire.stackAddr}/24`, link: { kind: 'tap', name: wire.tapName, fd: wire.tap.fd } });
    await stack.start();
    const echo = stack.dgram.createSocket('udp4');
    echo.on('message', (msg: Buffer, rinfo: { port: number; address: string }) => echo.send(msg, rinfo.port, rinfo.address));
    await new Promise<void>((r) => echo.bind(7, () => r()));
  });
  t.teardown(async () => {
    await stack?.close();
    wire?.destroy();
  });

  // Commands run in the background (never execFileSync): the application side of keepnet (the kernel
  // shim, which delivers datagrams to the echo socket) runs on this thread's event loop.
  const run = async (argv: string[], timeoutMs: number): Promise<string> => {
    const bg = wire.spawn('K', argv, { timeoutMs });
    const r = await bg.exited;
    return r.stdout;
  };

  const ping = async (args: string): Promise<{ transmitted: number; received: number }> => {
    const out = await run(['ping', '-q', ...args.split(' '), wire.stackAddr], 60_000);
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    return { transmitted: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? -1) };
  };

  const echoes = async (count: number, seed: number, maxSize: number, timeoutMs = 1000, awaitLate = true): Promise<{ ok: number; retries: number; lost: number; mismatched: number; ms: number }> => {
    const out = await run(['node', client, wire.stackAddr, '7', String(count), String(seed), String(maxSize), String(timeoutMs), '16', awaitLate ? '1' : '0'], 60_000);
    return JSON.parse(out.trim().split('\n').pop() || '{"ok":0,"retries":0,"lost":-1,"mismatched":0,"ms":0}');
  };

  t.test('ARP resolves both ways', async (t) => {
    // This runs first, before any traffic: neither side knows the other yet. keepnet speaks first, so
    // it must resolve the kernel's address itself; the kernel answers, so it must resolve keepnet's.
    wire.exec('K', 'ip neigh flush dev k0');
    const ip0 = stack.stats().servers.ip.protocol;
    const s = stack.dgram.createSocket('udp4');
    const reply = new Promise<string>((resolve) => s.on('message', (m: Buffer) => resolve(m.toString())));
    const peer = wire.spawn(
      'K',
      ['node', '-e', `const d=require('dgram').createSocket('udp4');d.on('message',(m,r)=>{console.log(m.toString());d.send('hello keepnet',r.port,r.address,()=>process.exit(0))});d.bind(9999)`],
      { timeoutMs: 20_000 },
    );
    await new Promise((r) => setTimeout(r, 500)); // the listener binds
    let answer = '';
    for (let i = 0; i < 10 && !answer; i++) {
      s.send('hello kernel', 9999, wire.kernelAddr);
      answer = await Promise.race([reply, new Promise<string>((r) => setTimeout(() => r(''), 500))]);
    }
    await peer.exited;
    t.equal(peer.stdout().trim(), 'hello kernel', 'the kernel received keepnet\'s datagram');
    t.equal(answer, 'hello keepnet', 'and keepnet received the kernel\'s answer');
    const ip1 = stack.stats().servers.ip.protocol;
    t.ok((ip1['tx-request'] ?? 0) > (ip0['tx-request'] ?? 0), 'keepnet asked for the kernel\'s address');
    t.ok((ip1['released'] ?? 0) > (ip0['released'] ?? 0), 'and sent the datagram that waited for the answer');
    t.match(wire.exec('K', `ip neigh show ${wire.stackAddr}`), /lladdr/, 'and the kernel resolved keepnet');
    s.close();
  });

  t.test('the kernel pings keepnet with 0% loss, 4000-byte pings fragmenting both ways', async (t) => {
    const small = await ping('-c 50 -i 0.01 -W 2');
    t.same(small, { transmitted: 50, received: 50 }, '50 pings, 50 replies');
    const big = await ping('-c 20 -i 0.02 -W 2 -s 4000');
    t.same(big, { transmitted: 20, received: 20 }, '20 pings of 4000 bytes, 20 replies');
    const ip = stack.stats().servers.ip.protocol;
    t.ok((ip['reassembled'] ?? 0) >= 20, 'keepnet reassembled the fragmented requests');
    t.ok((ip['fragments-out'] ?? 0) >= 40, 'and fragmented its replies');
  });

  t.test('a datagram to a closed port gets ICMP port unreachable: the kernel reports ECONNREFUSED', async (t) => {
    const out = await run(
      [
        'node',
        '-e',
        `const d=require('dgram').createSocket('udp4');d.on('error',e=>{console.log(e.code);process.exit(0)});` +
          `d.connect(4444,'${wire.stackAddr}',()=>{d.send('anyone?');setInterval(()=>d.send('anyone?'),200)});setTimeout(()=>{console.log('none');process.exit(0)},5000)`,
      ],
      20_000,
    );
    t.equal(out.trim(), 'ECONNREFUSED');
    t.ok((stack.stats().servers.ip.protocol['port-unreachables'] ?? 0) > 0, 'keepnet sent the ICMP error');
  });

  t.test('1000 UDP echoes from node:dgram in the kernel namespace, byte-exact', async (t) => {
    const r = await echoes(1000, 1, 1400);
    t.equal(r.ok, 1000, 'every echo came back');
    t.equal(r.mismatched, 0, 'byte-exact');
    t.equal(r.lost, 0, `none lost (${r.retries} resent after 1 s)`);
    const big = await echoes(100, 2, 8000);
    t.equal(big.ok, 100, 'datagrams up to 8000 bytes (fragmented both ways) come back too');
    t.equal(big.mismatched, 0);
  });

  t.test('through 5% loss each way, retries complete everything', async (t) => {
    wire.addFault('toStack', 'meta protocol ip numgen random mod 100 < 5 drop');
    wire.addFault('toKernel', 'meta protocol ip numgen random mod 100 < 5 drop');
    try {
      const r = await echoes(1000, 3, 1400, 300, false);
      t.equal(r.ok, 1000, 'every echo came back in the end');
      t.equal(r.mismatched, 0, 'byte-exact');
      t.ok(r.retries > 0, `losses were repaired by retries (${r.retries})`);
      wire.exec('K', 'ip neigh flush dev k0');
      const p = await ping('-c 40 -i 0.02 -W 1');
      t.ok(p.received >= 30, `pings still answered through the loss (${p.received}/40) and ARP resolved again`);
    } finally {
      wire.clearFaults();
    }
  });

  t.test('every server restarted mid-transfer: the client notices nothing', async (t) => {
    const run = wire.spawn('K', ['node', client, wire.stackAddr, '7', '3000', '4', '1400', '3000', '8'], { timeoutMs: 120_000 });
    const faults: string[] = [];
    for (const server of SERVER_NAMES) {
      for (const kind of ['crash', 'exit', 'hang'] as const) {
        await new Promise((r) => setTimeout(r, 40));
        const recovered = new Promise<void>((resolve) => {
          const on = (e: { server: string }): void => {
            if (e.server === server) {
              stack.off('recovered', on);
              resolve();
            }
          };
          stack.on('recovered', on);
        });
        stack.inject(server, kind);
        await recovered;
        await flowing(stack);
        faults.push(`${server}:${kind}`);
      }
    }
    const res = await run.exited;
    const r = JSON.parse(res.stdout.trim().split('\n').pop()!);
    t.equal(faults.length, 12, 'driver, ip, tcp and udp each crashed, exited and hung');
    t.equal(r.ok, 3000, 'every echo came back');
    t.equal(r.mismatched, 0, 'byte-exact');
    t.equal(r.lost, 0, `and none was lost to a restart (${r.retries} resent after 3 s)`);
    t.equal(stack.stats().servers.udp.restarts.total >= 3, true);
  });
}
