import t from 'tap';
import { LOOPBACK_IF, RouteTable } from '../../servers/ip/route.js';
import { ipv4Mask, ipv4Parse } from '../../servers/wire/ipv4.js';
import { mulberry32, randInt } from '../helpers/prng.js';

const ip = (s: string): number => {
  const a = ipv4Parse(s);
  if (a === null) throw new Error(s);
  return a;
};

function table(): { rt: RouteTable; eth0: number; eth1: number } {
  const rt = new RouteTable();
  const eth0 = rt.addInterface({ addr: ip('10.9.0.1'), prefixLen: 24, mtu: 1500 });
  const eth1 = rt.addInterface({ addr: ip('192.168.7.20'), prefixLen: 16, mtu: 9000 });
  if (typeof eth0 !== 'number' || typeof eth1 !== 'number') throw new Error('setup');
  return { rt, eth0, eth1 };
}

t.test('loopback exists from the start', async (t) => {
  const rt = new RouteTable();
  const r = rt.lookup(ip('127.0.0.1'));
  t.ok(r);
  t.equal(r!.ifIndex, LOOPBACK_IF);
  t.equal(r!.local, true);
  t.equal(r!.nextHop, ip('127.0.0.1'));
  t.equal(rt.lookup(ip('127.255.3.4'))!.local, true, 'all of 127/8 is ours');
  t.equal(rt.lookup(ip('8.8.8.8')), null, 'no route without interfaces');
  t.equal(rt.removeInterface(LOOPBACK_IF), 'reserved');
  t.equal(rt.interface(LOOPBACK_IF)!.mtu, 65535);
});

t.test('on-link routes from interfaces, local addresses, directed broadcast', async (t) => {
  const { rt, eth0, eth1 } = table();
  t.equal(eth0, 1);
  t.equal(eth1, 2);
  let r = rt.lookup(ip('10.9.0.2'))!;
  t.same({ ...r }, { nextHop: ip('10.9.0.2'), ifIndex: eth0, src: ip('10.9.0.1'), mtu: 1500, local: false, broadcast: false, multicast: false });
  r = rt.lookup(ip('192.168.200.1'))!;
  t.equal(r.ifIndex, eth1);
  t.equal(r.mtu, 9000);
  t.equal(r.src, ip('192.168.7.20'));
  r = rt.lookup(ip('10.9.0.1'))!;
  t.equal(r.local, true, 'our own address is delivered locally');
  t.equal(r.ifIndex, LOOPBACK_IF);
  r = rt.lookup(ip('10.9.0.255'))!;
  t.equal(r.broadcast, true, 'subnet-directed broadcast');
  t.equal(r.ifIndex, eth0);
  t.equal(rt.lookup(ip('8.8.8.8')), null, 'no default route yet');
  t.ok(rt.isLocal(ip('192.168.7.20')));
  t.notOk(rt.isLocal(ip('192.168.7.21')));
  t.ok(rt.isBroadcast(ip('192.168.255.255')));
  t.ok(rt.isBroadcast(0xffffffff));
  t.notOk(rt.isBroadcast(ip('10.9.1.255')));
});

t.test('default gateway and longest prefix match', async (t) => {
  const { rt, eth0, eth1 } = table();
  t.equal(rt.setDefaultGateway(ip('10.9.0.254')), null);
  let r = rt.lookup(ip('8.8.8.8'))!;
  t.equal(r.nextHop, ip('10.9.0.254'));
  t.equal(r.ifIndex, eth0);
  t.equal(r.src, ip('10.9.0.1'));
  t.equal(rt.addRoute(ip('8.8.0.0'), 16, ip('192.168.0.1')), null);
  r = rt.lookup(ip('8.8.8.8'))!;
  t.equal(r.nextHop, ip('192.168.0.1'), '/16 beats the default');
  t.equal(r.ifIndex, eth1);
  t.equal(rt.addRoute(ip('8.8.8.0'), 24, ip('10.9.0.253'), eth0), null);
  t.equal(rt.lookup(ip('8.8.8.8'))!.nextHop, ip('10.9.0.253'), '/24 beats /16');
  t.equal(rt.lookup(ip('8.8.9.9'))!.nextHop, ip('192.168.0.1'));
  t.equal(rt.lookup(ip('9.9.9.9'))!.nextHop, ip('10.9.0.254'));
  t.equal(rt.addRoute(ip('8.8.8.8'), 32, 0, eth1), null, 'host route on-link');
  r = rt.lookup(ip('8.8.8.8'))!;
  t.equal(r.nextHop, ip('8.8.8.8'));
  t.equal(r.ifIndex, eth1);
  // Replacing the default.
  t.equal(rt.setDefaultGateway(ip('192.168.0.1')), null);
  t.equal(rt.lookup(ip('1.1.1.1'))!.nextHop, ip('192.168.0.1'));
  t.equal(rt.list().filter((x) => x.prefixLen === 0).length, 1, 'one default');
  rt.clearDefaultGateway();
  t.equal(rt.lookup(ip('1.1.1.1')), null);
  t.equal(rt.removeRoute(ip('8.8.0.0'), 16), null);
  t.equal(rt.removeRoute(ip('8.8.0.0'), 16), 'not-found');
});

t.test('metric and age break ties', async (t) => {
  const { rt } = table();
  t.equal(rt.addRoute(ip('172.16.0.0'), 12, ip('10.9.0.2'), undefined, 10), null);
  t.equal(rt.addRoute(ip('172.16.0.0'), 12, ip('10.9.0.3'), undefined, 5), null);
  t.equal(rt.addRoute(ip('172.16.0.0'), 12, ip('10.9.0.4'), undefined, 5), null);
  t.equal(rt.lookup(ip('172.20.1.1'))!.nextHop, ip('10.9.0.3'), 'lowest metric, then oldest');
  t.equal(rt.addRoute(ip('172.16.0.0'), 12, ip('10.9.0.3'), undefined, 1), 'exists');
});

t.test('configuration errors are codes, not throws', async (t) => {
  const { rt, eth0 } = table();
  t.equal(rt.addInterface({ addr: ip('10.9.0.1'), prefixLen: 24, mtu: 1500 }), 'exists');
  t.equal(rt.addInterface({ addr: ip('10.1.0.1'), prefixLen: 0, mtu: 1500 }), 'bad-prefix');
  t.equal(rt.addInterface({ addr: ip('10.1.0.1'), prefixLen: 33, mtu: 1500 }), 'bad-prefix');
  t.equal(rt.addInterface({ addr: ip('10.1.0.1'), prefixLen: 24, mtu: 67 }), 'bad-mtu');
  t.equal(rt.addInterface({ addr: ip('224.0.0.5'), prefixLen: 24, mtu: 1500 }), 'bad-address');
  t.equal(rt.addInterface({ addr: 0, prefixLen: 24, mtu: 1500 }), 'bad-address');
  t.equal(rt.addInterface({ addr: ip('127.0.0.2'), prefixLen: 8, mtu: 1500 }), 'reserved');
  t.equal(rt.addRoute(ip('1.0.0.0'), 8, ip('172.31.0.1')), 'unreachable-gateway');
  t.equal(rt.addRoute(ip('1.0.0.0'), 8, ip('192.168.0.1'), eth0), 'unreachable-gateway', 'gateway not on that interface');
  t.equal(rt.addRoute(ip('1.0.0.0'), 8, 0), 'no-interface', 'on-link route needs an interface');
  t.equal(rt.addRoute(ip('1.0.0.0'), 8, 0, 7), 'no-interface');
  t.equal(rt.addRoute(ip('1.0.0.0'), 40, 0, eth0), 'bad-prefix');
  t.equal(rt.addRoute(ip('127.0.0.0'), 8, 0, eth0), 'reserved');
  t.equal(rt.setDefaultGateway(ip('172.31.0.1')), 'unreachable-gateway');
  t.equal(rt.setDefaultGateway(ip('10.9.0.1')), 'unreachable-gateway', 'our own address is no gateway');
});

t.test('limits on routes and interfaces', async (t) => {
  const rt = new RouteTable({ maxRoutes: 4, maxInterfaces: 3 });
  const a = rt.addInterface({ addr: ip('10.0.0.1'), prefixLen: 24, mtu: 1500 });
  const b = rt.addInterface({ addr: ip('10.0.1.1'), prefixLen: 24, mtu: 1500 });
  t.equal(a, 1);
  t.equal(b, 2);
  t.equal(rt.addInterface({ addr: ip('10.0.2.1'), prefixLen: 24, mtu: 1500 }), 'table-full');
  t.equal(rt.routeCount, 3);
  t.equal(rt.addRoute(ip('1.0.0.0'), 8, ip('10.0.0.2')), null);
  t.equal(rt.addRoute(ip('2.0.0.0'), 8, ip('10.0.0.2')), 'table-full');
  // Removing an interface removes its routes and frees its index.
  t.equal(rt.removeInterface(1), null);
  t.equal(rt.routeCount, 2);
  t.equal(rt.lookup(ip('1.2.3.4')), null);
  t.equal(rt.lookup(ip('10.0.0.9')), null);
  t.equal(rt.addInterface({ addr: ip('10.0.2.1'), prefixLen: 24, mtu: 1500 }), 1, 'index reused');
  t.equal(rt.removeInterface(9), 'no-interface');
});

t.test('broadcast and multicast leave by an interface, without a gateway', async (t) => {
  const { rt, eth0, eth1 } = table();
  rt.setDefaultGateway(ip('192.168.0.1'));
  let r = rt.lookup(0xffffffff)!;
  t.equal(r.broadcast, true);
  t.equal(r.nextHop, 0xffffffff);
  t.equal(r.ifIndex, eth1, 'limited broadcast follows the default route interface');
  r = rt.lookup(ip('224.0.0.251'))!;
  t.equal(r.multicast, true);
  t.equal(r.nextHop, ip('224.0.0.251'));
  rt.clearDefaultGateway();
  r = rt.lookup(ip('239.1.2.3'))!;
  t.equal(r.ifIndex, eth0, 'no route: first interface');
  const bare = new RouteTable();
  t.equal(bare.lookup(0xffffffff), null, 'only loopback: nowhere to broadcast');
});

t.test('seeded lookups agree with a brute-force longest-prefix reference', async (t) => {
  const { rt } = table();
  const rand = mulberry32(0x5eed);
  // [network, prefixLen, gateway (0 = on-link)], including the interfaces' on-link routes.
  const routes: [number, number, number][] = [
    [ip('10.9.0.0'), 24, 0],
    [ip('192.168.0.0'), 16, 0],
  ];
  for (let i = 0; i < 60; i++) {
    const len = randInt(rand, 1, 32);
    const dst = Math.floor(rand() * 2 ** 32);
    if (dst >>> 24 === 127) continue;
    const gw = ip('10.9.0.2') + (i % 200);
    const m = ipv4Mask(len);
    const net = (dst & m) >>> 0;
    const res = rt.addRoute(dst, len, gw);
    if (res === null) routes.push([net, len, gw]);
    else t.equal(res, 'exists', 'only duplicates are refused');
  }
  let checked = 0;
  let mismatches = 0;
  for (let k = 0; k < 5000; k++) {
    // Half the probes inside a random route's prefix, half anywhere.
    let d = Math.floor(rand() * 2 ** 32);
    if (k % 2 === 0) {
      const [net, len] = routes[randInt(rand, 0, routes.length - 1)];
      d = ((net & ipv4Mask(len)) | (d & ~ipv4Mask(len))) >>> 0;
    }
    if (rt.isLocal(d) || rt.isBroadcast(d) || d >>> 28 === 0xe) continue;
    let best: [number, number, number] | null = null;
    for (const r of routes) {
      if (((d & ipv4Mask(r[1])) >>> 0) === r[0] && (best === null || r[1] > best[1])) best = r;
    }
    const want = best === null ? null : best[2] === 0 ? d : best[2];
    const got = rt.lookup(d);
    checked++;
    if ((got === null ? null : got.nextHop) !== want) mismatches++;
  }
  t.ok(checked > 4000);
  t.equal(mismatches, 0);
});
