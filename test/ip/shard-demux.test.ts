/**
 * The ip server's demultiplexing over flow-sharded tcp instances (servers/runtime/flow-shard.ts): an
 * IpEngine on a stack memory with three tcp instances, fed literal frames. Every TCP segment goes to
 * the instance its four-tuple (seen from this stack) hashes to, an ICMP error quoting one of our
 * segments to the instance owning that flow, and UDP stays on udp. Ports from a seeded PRNG.
 */
import t from 'tap';
import { IpEngine } from '../../servers/ip/engine.js';
import { createStackMemory, StackMemory } from '../../servers/runtime/stack-memory.js';
import type { ServerContext } from '../../servers/runtime/server.js';
import { ENDPOINT_ID, type Endpoint } from '../../servers/runtime/topology.js';
import { makeOwner } from '../../shared-rings/pool.js';
import { RingConsumer, RingProducer } from '../../shared-rings/ring.js';
import { D, DATA_MSG, FRAME_CSUM_OK, wr32 } from '../../servers/runtime/messages.js';
import { flowShard } from '../../servers/runtime/flow-shard.js';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../../servers/wire/ipv4.js';
import { writeU16, writeU32 } from '../../servers/wire/bytes.js';
import { ethFrame, icmpMessage, ipPacket, udpDatagram } from './helpers.js';
import { mulberry32, randInt } from '../helpers/prng.js';

const IP_A = 0x0a630001; // this stack
const IP_B = 0x0a630002;
const MAC_A = 0x020000000001;
const MAC_B = 0x020000000002;
const N = 3;

function tcpSegment(sport: number, dport: number, seq: number): Uint8Array {
  const s = new Uint8Array(20);
  writeU16(s, 0, sport);
  writeU16(s, 2, dport);
  writeU32(s, 4, seq);
  s[12] = 5 << 4;
  s[13] = 0x02; // SYN
  writeU16(s, 14, 65535);
  return s;
}

function setup() {
  const mem = new StackMemory(
    createStackMemory({
      tcpInstances: N,
      config: { iface: { address: IP_A, prefix: 24, gateway: 0, mac: MAC_A, mtu: 1500, checksumOffload: true }, link: { kind: 'none' } },
      ringCapacity: 1 << 14,
      poolBuffers: 64,
      tcp: { maxConnections: 2, bufferBytes: 4096 },
    }),
  );
  const pools = mem.pools;
  const driver = makeOwner(ENDPOINT_ID.driver, 1);
  const owner = makeOwner(ENDPOINT_ID.ip, 1);
  const out = new Map<Endpoint, RingProducer>(mem.outputsOf('ip').map((to) => [to, new RingProducer(mem.ring('ip', to))]));
  const ctx: ServerContext = {
    name: 'ip',
    id: ENDPOINT_ID.ip,
    generation: 1,
    owner,
    transitOwner: makeOwner(ENDPOINT_ID.ip, 0),
    clock: mem.clock,
    pools,
    out,
    counters: mem.counters('ip'),
    config: mem.init.config,
    state: mem.init.state.ip,
    claim: (buf, epoch) => pools.epochOf(buf) === epoch >>> 0 && pools.transfer(buf, driver, owner),
    beat: () => {},
  };
  const engine = new IpEngine(ctx);
  const inputs = new Map<Endpoint, RingConsumer>(mem.outputsOf('ip').map((to) => [to, new RingConsumer(mem.ring('ip', to))]));
  const rec = new Uint8Array(D.FRAME_BYTES);
  /** Feed one frame (as the driver would) and say which transport ring got a record, of which type. */
  const feed = (frame: Uint8Array): { to: Endpoint; type: number; rec: Uint8Array }[] => {
    const buf = pools.alloc(frame.length, driver);
    pools.bytesOf(buf).set(frame, pools.offsetOf(buf));
    wr32(rec, D.BUF, buf);
    wr32(rec, D.EPOCH, pools.epochOf(buf));
    wr32(rec, D.OFF, 0);
    wr32(rec, D.LEN, frame.length);
    wr32(rec, D.FLAGS, FRAME_CSUM_OK);
    engine.onFrame(rec, 0, mem.clock.nowUs());
    for (const p of out.values()) p.flush();
    const got: { to: Endpoint; type: number; rec: Uint8Array }[] = [];
    for (const [to, c] of inputs) {
      while (c.peek() >= 0) {
        const r = c.bytes.slice(c.offset, c.offset + c.length);
        if (to !== 'driver' && r.length >= D.L4_IN_BYTES && c.tag === DATA_MSG.L4_IN) {
          const b = new DataView(r.buffer).getInt32(D.BUF, true);
          pools.free(b, makeOwner(ENDPOINT_ID.ip, 1));
        }
        got.push({ to, type: c.tag, rec: r });
        c.commit();
      }
    }
    return got;
  };
  return { mem, feed, key: mem.init.config.tcpShards!.key };
}

t.test('TCP segments go to the instance their tuple hashes to; UDP to udp', async (t) => {
  const { feed, key } = setup();
  const rand = mulberry32(11);
  const seen = new Array<number>(N).fill(0);
  const wrong: string[] = [];
  for (let i = 0; i < 90; i++) {
    const sport = randInt(rand, 1024, 65535);
    const dport = [80, 443, 7][i % 3];
    const frame = ethFrame(MAC_A, MAC_B, ipPacket({ src: IP_B, dst: IP_A, proto: IPPROTO_TCP, payload: tcpSegment(sport, dport, i) }));
    const got = feed(frame);
    const want = flowShard(key, N, IP_A, dport, IP_B, sport);
    const name = want === 0 ? 'tcp' : `tcp${want}`;
    const where = got.map((g) => `${g.to}/${g.type}`).join(',');
    if (where !== `${name}/${DATA_MSG.L4_IN}`) wrong.push(`segment ${i}: ${where}, wanted ${name}`);
    seen[want]++;
  }
  t.same(wrong, [], 'each segment on the instance of its tuple');
  t.ok(seen.every((n) => n > 0), `every instance got some: ${seen.join(' ')}`);
  const u = feed(ethFrame(MAC_A, MAC_B, ipPacket({ src: IP_B, dst: IP_A, proto: IPPROTO_UDP, payload: udpDatagram(IP_B, IP_A, 5000, 53, new Uint8Array(4)) })));
  t.same(u.map((g) => g.to), ['udp']);
});

t.test('an ICMP error about one of our segments goes to the instance owning the flow', async (t) => {
  const { feed, key } = setup();
  const rand = mulberry32(12);
  const seen = new Array<number>(N).fill(0);
  const wrong: string[] = [];
  for (let i = 0; i < 45; i++) {
    const lport = randInt(rand, 32768, 60999);
    // The segment we sent (A:lport -> B:80), quoted by a router's port unreachable.
    const quoted = ipPacket({ src: IP_A, dst: IP_B, proto: IPPROTO_TCP, payload: tcpSegment(lport, 80, 1000 + i) }).subarray(0, 28);
    const icmp = icmpMessage(3, 3, 0, quoted);
    const got = feed(ethFrame(MAC_A, MAC_B, ipPacket({ src: IP_B, dst: IP_A, proto: IPPROTO_ICMP, payload: icmp })));
    const want = flowShard(key, N, IP_A, lport, IP_B, 80);
    const name = want === 0 ? 'tcp' : `tcp${want}`;
    const where = got.map((g) => `${g.to}/${g.type}`).join(',');
    if (where !== `${name}/${DATA_MSG.ICMP_ERR}`) wrong.push(`error ${i}: ${where}, wanted ${name}`);
    seen[want]++;
  }
  t.same(wrong, [], 'each error on the instance owning the flow');
  t.ok(seen.every((n) => n > 0), `every instance got some: ${seen.join(' ')}`);
});
