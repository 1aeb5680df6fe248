/**
 * IFF_VNET_HDR on TAP against the Linux kernel: checksum offload and TSO/GRO both ways.
 *
 * Topology: one namespace NS (named with this process's PID) holds the TAP, which keepnet opens itself
 * (offload on by default); the kernel's address is on the TAP inside NS, keepnet's behind it. The kernel
 * peer is test/helpers/bulk-peer.js on node:net, run with `ip netns exec NS node ...`. Several MB go
 * each way, verified by SHA-256, and the driver's counters must show GSO frames both ways; then the
 * same with offload off (plain frames, as before).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { canRunNetns, createWire, netnsUnavailableReason } from '../helpers/netns.js';
import { Stack } from '../../kernel-shim/stack.js';
import { pattern } from '../../bench/tap-bulk-peer.js';
import { KernelPeer, tapNamespace } from '../../bench/tap-peer.js';

const peerScript = fileURLToPath(new URL('../../bench/tap-bulk-peer.js', import.meta.url));
const udpClient = fileURLToPath(new URL('../helpers/udp-echo-client.js', import.meta.url));
const BYTES = 8 << 20;

/** keepnet writes `bytes` of the pattern to host:port; resolves with their SHA-256 once closed. */
function sendPattern(stack: Stack, host: string, port: number, bytes: number): Promise<string> {
  const h = createHash('sha256');
  return new Promise<string>((resolve, reject) => {
    const sock = stack.net.connect(port, host, () => {
      let sent = 0;
      const pump = (): void => {
        while (sent < bytes) {
          const b = Buffer.allocUnsafe(Math.min(256 * 1024, bytes - sent));
          pattern(sent, b);
          h.update(b);
          sent += b.length;
          if (!sock.write(b)) {
            sock.once('drain', pump);
            return;
          }
        }
        sock.end();
      };
      pump();
    });
    sock.on('error', reject);
    sock.on('close', () => resolve(h.digest('hex')));
    sock.resume();
  });
}

if (!canRunNetns()) {
  if (process.env.CI) t.fail(`real-peer tests cannot run in CI: ${netnsUnavailableReason()}`);
  else t.plan(0, `real-peer tests need root and iproute2: ${netnsUnavailableReason()}`);
} else {
  for (const offload of [true, false]) {
    t.test(`${BYTES >> 20} MB each way, SHA-256 verified, offload ${offload ? 'on' : 'off'}`, async (t) => {
      const ns = tapNamespace(`kto-${process.pid}-${offload ? 1 : 0}`);
      const stack = new Stack({ address: `${ns.stackAddr}/24`, link: { kind: 'tap', name: ns.tapName, netns: ns.name, offload } });
      try {
        await stack.start();
        ns.up();
        const peer = new KernelPeer(ns.name, peerScript);

        // keepnet -> kernel
        const sink = peer.sink(5001, 1);
        await sink.listening;
        const sentHash = await sendPattern(stack, ns.kernelAddr, 5001, BYTES);
        const got = await sink.result;
        t.equal(got.bytes, BYTES, 'kernel received every byte');
        t.equal(got.sha256, sentHash, 'keepnet -> kernel: SHA-256 matches');

        // kernel -> keepnet
        const received = new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
          const server = stack.net.createServer((s) => {
            const hh = createHash('sha256');
            let bytes = 0;
            s.on('data', (d: Buffer) => {
              hh.update(d);
              bytes += d.length;
            });
            s.on('end', () => {
              s.end();
              server.close();
              resolve({ bytes, sha256: hh.digest('hex') });
            });
            s.on('error', reject);
          });
          server.listen(5002);
        });
        const src = await peer.source(ns.stackAddr, 5002, BYTES).result;
        const mine = await received;
        t.equal(mine.bytes, BYTES, 'keepnet received every byte');
        t.equal(mine.sha256, src.sha256, 'kernel -> keepnet: SHA-256 matches');

        // UDP both ways, up to 8000 bytes: checksums offloaded for whole datagrams, computed by IP for
        // fragmented ones (a link completes a checksum only in a whole packet); every echo byte-exact.
        const echo = stack.dgram.createSocket('udp4');
        echo.on('message', (msg, rinfo) => echo.send(msg, rinfo.port, rinfo.address));
        await new Promise<void>((resolve) => echo.bind(7, resolve));
        const udp = await new Promise<string>((resolve, reject) => {
          execFile('ip', ['netns', 'exec', ns.name, process.execPath, udpClient, ns.stackAddr, '7', '200', '5', '8000', '1000'], { timeout: 60_000 }, (err, stdout) =>
            err ? reject(err) : resolve(stdout),
          );
        });
        echo.close();
        const u = JSON.parse(udp.trim().split('\n').pop()!) as { sent: number; ok: number; mismatched: number };
        t.equal(u.ok, 200, 'every UDP echo came back');
        t.equal(u.mismatched, 0, 'byte-exact');

        const d = stack.stats().servers.driver.protocol;
        const tap = stack.stats().tap;
        if (offload) {
          t.match(tap, { vnetHdrSize: 12, offload: ['csum', 'tso4'], offloadError: null }, 'stats().tap: what the kernel granted');
        } else {
          t.match(tap, { vnetHdrSize: 0, offload: [] }, 'stats().tap: plain frames');
        }
        if (offload) {
          t.ok((d['rxGsoFrames'] ?? 0) > 0, `GSO frames from the kernel (${d['rxGsoFrames']})`);
          t.ok((d['txGsoFrames'] ?? 0) > 0, `TSO frames to the kernel (${d['txGsoFrames']})`);
          t.ok((d['rxCsumTrusted'] ?? 0) > 0, 'checksums vouched for by the vnet header');
        } else {
          t.equal(d['rxGsoFrames'] ?? 0, 0, 'no GSO without offload');
          t.equal(d['txGsoFrames'] ?? 0, 0, 'no TSO without offload');
        }
        const drops = Object.entries(d).filter(([k]) => k.startsWith('drop:vnet') || k === 'drop:rx-oversize' || k === 'drop:tx-oversize');
        t.same(drops, [], 'no vnet header drops');
        t.same(stack.stats().servers.tcp.restarts.total, 0, 'no tcp restarts');
      } finally {
        await stack.close();
        ns.destroy();
      }
    });
  }
}

if (canRunNetns()) {
  // The kernel delivers our TSO frames locally as they are (CHECKSUM_PARTIAL: nothing verified). Here it
  // must cut them in software and finish their checksums: they are forwarded (nft fwd in W) to a veth
  // without TSO and checksum offload, and the peer in K verifies every checksum (rx offload off). A
  // wrong partial checksum would leave every piece dropped and the transfer stuck.
  t.test('TSO frames cut by the kernel in software carry valid checksums (verified by the peer)', async (t) => {
    const wire = createWire({ vnetHdr: true, suffix: 'gso' });
    const stack = new Stack({ address: `${wire.stackAddr}/24`, link: { kind: 'tap', name: wire.tapName, fd: wire.tap.fd, vnetHdrSize: 10 } });
    try {
      wire.exec('W', ['ethtool', '-K', 'w0', 'tx', 'off', 'tso', 'off', 'gso', 'off']);
      wire.exec('K', ['ethtool', '-K', 'k0', 'rx', 'off']);
      await stack.start();
      const csumErrors = (): number => Number(/TcpInCsumErrors\s+(\d+)/.exec(wire.exec('K', ['nstat', '-az', 'TcpInCsumErrors']))?.[1] ?? 0);
      const before = csumErrors();
      const peer = new KernelPeer(wire.K, peerScript);
      const sink = peer.sink(5001, 1);
      await sink.listening;
      const bytes = 4 << 20;
      const sentHash = await sendPattern(stack, wire.kernelAddr, 5001, bytes);
      const got = await sink.result;
      t.equal(got.bytes, bytes);
      t.equal(got.sha256, sentHash, 'byte-exact through software segmentation');
      t.ok((stack.stats().servers.driver.protocol['txGsoFrames'] ?? 0) > 0, 'TSO frames were sent');
      t.equal(csumErrors() - before, 0, 'no checksum errors at the peer');
    } finally {
      await stack.close();
      wire.destroy();
    }
  });
}
