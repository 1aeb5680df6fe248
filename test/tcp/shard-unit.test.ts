/**
 * Flow-sharded TCP, the parts without threads: the keyed flow hash and the instance it picks, ephemeral
 * ports that hash to the instance choosing them, which instance an active open goes to, the topology of
 * a stack with several tcp instances, and the tcpInstances option's validation. Seeded PRNG throughout.
 */
import t from 'tap';
import { flowHash, flowShard } from '../../servers/runtime/flow-shard.js';
import { ConnTable, EPHEMERAL_HI, EPHEMERAL_LO } from '../../servers/tcp/conn-table.js';
import { KIND_CONN, TcpLayout, TcpViews } from '../../servers/tcp/layout.js';
import { Tx } from '../../servers/tcp/tx.js';
import {
  ENDPOINT_BY_ID,
  ENDPOINT_ID,
  MAX_TCP_INSTANCES,
  hostsFor,
  linksFor,
  serverNames,
  tcpInstanceOf,
  validateTcpInstances,
} from '../../servers/runtime/topology.js';
import { createStackMemory, StackMemory } from '../../servers/runtime/stack-memory.js';
import { connectLocalAddress, pickConnectInstance } from '../../kernel-shim/tcp-sharded-channel.js';
import { createStack } from '../../kernel-shim/stack.js';
import { mulberry32, randInt } from '../helpers/prng.js';

const KEY = [0x01234567, 0x89abcdef, 0xdeadbeef, 0x0badf00d];
const A = 0x0a000001;
const B = 0x0a000002;

t.test('flow hash: deterministic, keyed, spreads tuples evenly over instances', async (t) => {
  t.equal(flowHash(KEY, A, 80, B, 40000), flowHash(KEY, A, 80, B, 40000), 'same tuple, same hash');
  t.not(flowHash(KEY, A, 80, B, 40000), flowHash([1, 2, 3, 4], A, 80, B, 40000), 'another key, another hash');
  t.not(flowHash(KEY, A, 80, B, 40000), flowHash(KEY, A, 80, B, 40001), 'the remote port counts');
  t.not(flowHash(KEY, A, 80, B, 40000), flowHash(KEY, B, 80, A, 40000), 'addresses are not interchangeable');
  const rand = mulberry32(7);
  for (const n of [2, 3, 4, 8]) {
    const counts = new Array<number>(n).fill(0);
    const flows = 20000;
    let outOfRange = 0;
    for (let i = 0; i < flows; i++) {
      const s = flowShard(KEY, n, A, 80, (0x0a000000 | randInt(rand, 2, 250)) >>> 0, randInt(rand, 1024, 65535));
      if (!(s >= 0 && s < n)) outOfRange++;
      else counts[s]++;
    }
    t.equal(outOfRange, 0, `${n} instances: always in range`);
    const expect = flows / n;
    t.ok(counts.every((c) => Math.abs(c - expect) < expect * 0.1), `${n} instances within 10% of even: ${counts.join(' ')}`);
  }
  t.equal(flowShard(KEY, 1, A, 80, B, 1), 0, 'one instance owns everything');
});

function table(): ConnTable {
  const v = new TcpViews(TcpLayout.create({ maxConnections: 64, bufferBytes: 4096 }, Uint32Array.of(1, 2, 3, 4)));
  return new ConnTable(v, new Tx(v.tx, v.log, v.header));
}

t.test('ephemeral ports: each instance picks only ports whose tuple hashes to itself, tuples never collide', async (t) => {
  const n = 3;
  const tables = Array.from({ length: n }, table);
  const seen = new Set<number>();
  const bad: string[] = [];
  for (let i = 0; i < 60; i++) {
    const k = i % n;
    const tb = tables[k];
    const port = tb.ephemeral(A, B, 80, 12345, n, k, KEY);
    if (!(port >= EPHEMERAL_LO && port <= EPHEMERAL_HI)) bad.push(`port ${port} out of range`);
    if (flowShard(KEY, n, A, port, B, 80) !== k) bad.push(`port ${port} of instance ${k} hashes elsewhere`);
    if (seen.has(port)) bad.push(`tuple with port ${port} chosen twice`);
    seen.add(port);
    tb.alloc(KIND_CONN, A, port, B, 80);
  }
  t.same(bad, [], 'every port in range, hashing to its instance, never twice');
  t.equal(seen.size, 60, 'sixty distinct four-tuples over three instances');
  // One instance keeps the old behaviour: any free port.
  const one = table();
  t.ok(one.ephemeral(A, B, 80, 1) >= EPHEMERAL_LO);
});

t.test('active opens: explicit ports go where they hash, others to the least loaded in turn', async (t) => {
  const req = { localAddress: 0, localPort: 0, remoteAddress: B, remotePort: 80 };
  t.equal(pickConnectInstance(req, KEY, A, [0, 0], 0), 0);
  t.equal(pickConnectInstance(req, KEY, A, [0, 0], 1), 1, 'ties broken in turn');
  t.equal(pickConnectInstance(req, KEY, A, [5, 2, 3], 0), 1, 'least loaded');
  t.equal(pickConnectInstance(req, KEY, A, [2, 2, 3], 1), 1);
  const wrong: number[] = [];
  for (let p = 1024; p < 1100; p++) {
    const r = { ...req, localPort: p };
    if (pickConnectInstance(r, KEY, A, [9, 0, 0, 0], 0) !== flowShard(KEY, 4, A, p, B, 80)) wrong.push(p);
  }
  t.same(wrong, [], 'an explicit local port goes where its tuple hashes, whatever the loads');
  t.equal(connectLocalAddress({ localAddress: 0, remoteAddress: 0x7f000005 }, A), 0x7f000001, 'loopback from 127.0.0.1');
  t.equal(connectLocalAddress({ localAddress: 0, remoteAddress: 0 }, A), 0x7f000001, '0.0.0.0 is this host');
  t.equal(connectLocalAddress({ localAddress: 0, remoteAddress: B }, A), A, 'the interface address');
  t.equal(connectLocalAddress({ localAddress: 0x7f000001, remoteAddress: B }, A), 0x7f000001, 'an explicit one');
});

t.test('topology: tcp instances after the base servers, own rings, ids, counters and state', async (t) => {
  t.same(serverNames(1), ['driver', 'ip', 'tcp', 'udp']);
  t.same(serverNames(3), ['driver', 'ip', 'tcp', 'udp', 'tcp1', 'tcp2']);
  t.equal(tcpInstanceOf('tcp'), 0);
  t.equal(tcpInstanceOf('tcp2'), 2);
  t.equal(tcpInstanceOf('tcp02'), -1);
  t.equal(tcpInstanceOf('udp'), -1);
  t.equal(tcpInstanceOf(`tcp${MAX_TCP_INSTANCES}`), -1);
  t.equal(linksFor(1).length, 14, 'one instance: the same rings as always');
  t.equal(linksFor(3).length, 14 + 2 * 5);
  const ids = new Set(serverNames(MAX_TCP_INSTANCES).map((n) => ENDPOINT_ID[n]));
  t.equal(ids.size, MAX_TCP_INSTANCES + 3, 'distinct endpoint ids');
  t.ok([...ids].every((id) => id >= 1 && id < 255 && id !== ENDPOINT_ID.shim && id !== ENDPOINT_ID.sup));
  t.same(serverNames(MAX_TCP_INSTANCES).filter((n) => ENDPOINT_BY_ID[ENDPOINT_ID[n]] !== n), [], 'ids map back to names');
  t.same(hostsFor('dedicated', serverNames(2)), [['driver'], ['ip'], ['tcp'], ['udp'], ['tcp1']]);
  t.throws(() => hostsFor([['driver', 'ip', 'tcp', 'udp']], serverNames(2)), { code: 'ERR_INVALID_ARG_VALUE' }, 'tcp1 unplaced');

  const one = new StackMemory(createStackMemory({ tcp: { maxConnections: 4, bufferBytes: 4096 } }));
  t.equal(one.init.config.tcpShards, undefined, 'one instance: no sharding in the config');
  const mem = new StackMemory(createStackMemory({ tcpInstances: 2, tcp: { maxConnections: 4, bufferBytes: 4096 } }));
  t.same(mem.tcpInstances, ['tcp', 'tcp1']);
  t.equal(mem.init.config.tcpShards?.count, 2);
  t.equal(mem.init.config.tcpShards?.key.length, 4);
  t.not(mem.init.state.tcp, mem.init.state.tcp1, 'own connection table');
  t.same(mem.inputsOf('tcp1'), ['ip', 'shim', 'sup']);
  t.same(mem.outputsOf('tcp1'), ['ip', 'shim']);
  t.ok(mem.inputsOf('ip').includes('tcp1') && mem.inputsOf('shim').includes('tcp1'));
  mem.counters('tcp1').add(0, 5);
  t.equal(mem.counters('tcp').get('handled'), 0, 'own counters');
  t.equal(mem.counters('tcp1').get('handled'), 5);
});

t.test('tcpInstances: bad values rejected with Node-style errors', async (t) => {
  t.equal(validateTcpInstances(undefined), 1);
  t.equal(validateTcpInstances(4), 4);
  for (const bad of [0, -1, 1.5, MAX_TCP_INSTANCES + 1, NaN, Infinity]) {
    t.throws(() => validateTcpInstances(bad), { code: 'ERR_OUT_OF_RANGE', name: 'RangeError' }, String(bad));
  }
  for (const bad of ['2', null, {}]) t.throws(() => validateTcpInstances(bad), { code: 'ERR_INVALID_ARG_TYPE' }, String(bad));
  await t.rejects(createStack({ tcpInstances: 0 }), { code: 'ERR_OUT_OF_RANGE' });
  await t.rejects(createStack({ tcpInstances: '2' as unknown as number }), { code: 'ERR_INVALID_ARG_TYPE' });
});
