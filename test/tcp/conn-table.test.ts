/**
 * The tcp state's transactions and connection table: every change either commits or is undone by a
 * successor, whatever instant the writer stops at; demultiplexing, listeners, ephemeral ports.
 */
import t from 'tap';
import { ConnTable, EPHEMERAL_HI, EPHEMERAL_LO } from '../../servers/tcp/conn-table.js';
import { KIND_CONN, KIND_FREE, KIND_LISTENER, TcpLayout, TcpViews } from '../../servers/tcp/layout.js';
import { Tx } from '../../servers/tcp/tx.js';
import { mulberry32, randInt } from '../helpers/prng.js';

const A = 0x0a000001;
const B = 0x0a000002;

function fresh(maxConnections = 16) {
  const sab = TcpLayout.create({ maxConnections, bufferBytes: 4096 }, Uint32Array.of(1, 2, 3, 4));
  const v = new TcpViews(sab);
  const tx = new Tx(v.tx, v.log, v.header);
  return { sab, v, tx, table: new ConnTable(v, tx) };
}

t.test('layout: sizes validated, regions do not overlap', async (t) => {
  t.throws(() => TcpLayout.create({ bufferBytes: 5000 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => TcpLayout.create({ maxConnections: 0 }), { code: 'ERR_OUT_OF_RANGE' });
  const l = new TcpLayout(100, 8192);
  t.ok(l.countersOff < l.logOff && l.logOff < l.txOff && l.txOff + l.txWords * 8 <= l.sockOff && l.sockOff < l.bufOff);
  t.equal(l.totalBytes, l.bufOff + 100 * 2 * 8192);
  t.equal(TcpLayout.of(new SharedArrayBuffer(1024)), null);
});

t.test('alloc, lookup (exact, then listener on the address, then 0.0.0.0), free', async (t) => {
  const { table, tx } = fresh();
  const any = table.alloc(KIND_LISTENER, 0, 80, 0, 0);
  const spec = table.alloc(KIND_LISTENER, A, 81, 0, 0);
  const c = table.alloc(KIND_CONN, A, 80, B, 5000);
  tx.commit();
  t.equal(table.lookup(A, 80, B, 5000), c);
  t.equal(table.lookup(A, 80, B, 5001), any, 'unknown peer -> the wildcard listener');
  t.equal(table.lookup(A, 81, B, 1), spec);
  t.equal(table.lookup(B, 81, A, 1), -1, 'listener bound to another address');
  t.ok(table.listenConflict(0, 81), 'wildcard conflicts with a specific listener');
  t.ok(table.listenConflict(A, 80), 'specific conflicts with a wildcard listener');
  t.notOk(table.listenConflict(A, 82));
  t.equal(table.used, 3);
  const gen = table.gen(c);
  table.free(c);
  tx.commit();
  t.equal(table.kind(c), KIND_FREE);
  t.equal(table.lookup(A, 80, B, 5000), any);
  const again = table.alloc(KIND_CONN, A, 80, B, 5000);
  t.equal(again, c, 'the freed slot is reused first');
  t.not(table.gen(again), gen, 'with a new generation');
});

t.test('table full: alloc answers -1', async (t) => {
  const { table, tx } = fresh(4);
  for (let i = 0; i < 4; i++) t.ok(table.alloc(KIND_CONN, A, 1000 + i, B, 1) >= 0);
  t.equal(table.alloc(KIND_CONN, A, 2000, B, 1), -1);
  tx.commit();
});

t.test('ephemeral ports: in range, unique per four-tuple, never a listener port', async (t) => {
  const { table, tx } = fresh(64);
  const seen = new Set<number>();
  for (let i = 0; i < 40; i++) {
    const p = table.ephemeral(A, B, 80, 7);
    t.ok(p >= EPHEMERAL_LO && p <= EPHEMERAL_HI);
    t.notOk(seen.has(p));
    seen.add(p);
    table.alloc(KIND_CONN, A, p, B, 80);
  }
  tx.commit();
});

t.test('transactions: a writer stopped at any instant leaves the state exactly as before or after', async (t) => {
  const rand = mulberry32(0x7c9);
  for (let round = 0; round < 120; round++) {
    const { sab, v, table, tx } = fresh(12);
    // Some committed history.
    const live: number[] = [];
    for (let i = 0; i < randInt(rand, 0, 8); i++) {
      const s = table.alloc(KIND_CONN, A, 1000 + i, B, randInt(rand, 1, 3));
      if (s >= 0) live.push(s);
    }
    tx.commit();
    const before = new Float64Array(v.tx);
    // A transaction of random operations, cut after a random number of word writes: simulate the
    // thread dying by copying the SAB at that instant (a stopped writer writes nothing more).
    const cut = randInt(rand, 0, 60);
    let writes = 0;
    let snapshot: Uint8Array | null = null;
    const origSet = tx.set.bind(tx);
    (tx as unknown as { set: (w: number, v: number) => void }).set = (w, val) => {
      if (writes++ === cut && !snapshot) snapshot = new Uint8Array(sab).slice();
      origSet(w, val);
    };
    for (let k = 0; k < 6; k++) {
      if (live.length > 0 && rand() < 0.5) table.free(live.splice(randInt(rand, 0, live.length - 1), 1)[0]);
      else {
        const s = table.alloc(KIND_CONN, B, 2000 + k, A, randInt(rand, 1, 3));
        if (s >= 0) live.push(s);
      }
    }
    const after = new Float64Array(v.tx);
    tx.commit();
    const dead: Uint8Array = snapshot ?? new Uint8Array(sab).slice();
    const dsab = new SharedArrayBuffer(sab.byteLength);
    new Uint8Array(dsab).set(dead);
    const dv = new TcpViews(dsab);
    const dtx = new Tx(dv.tx, dv.log, dv.header);
    dtx.recover();
    const expected = snapshot ? before : after;
    t.same(Array.from(dv.tx), Array.from(expected), `round ${round}: ${snapshot ? 'undone to before' : 'committed'}`);
    // Recovery is idempotent (a successor dying during recovery).
    dtx.recover();
    t.same(Array.from(dv.tx), Array.from(expected));
  }
});

t.test('wire buffer size: 4 MiB for the default table, smaller for big tables, never below 128 KiB', async (t) => {
  const { wireBufferBytes, DEFAULT_MAX_CONNECTIONS, DEFAULT_BUFFER_BYTES } = await import('../../servers/tcp/layout.js');
  t.equal(wireBufferBytes(DEFAULT_MAX_CONNECTIONS), 1 << 22);
  t.equal(wireBufferBytes(1024), 1 << 20);
  t.equal(wireBufferBytes(65535), 1 << 17);
  t.equal(new TcpViews(TcpLayout.create({})).layout.bufBytes, DEFAULT_BUFFER_BYTES, 'the layout default is unchanged');
  const { createStackMemory } = await import('../../servers/runtime/stack-memory.js');
  const { ShmWire } = await import('../../servers/driver/shm-wire.js');
  const shm = createStackMemory({ config: { iface: null, link: { kind: 'shm', wire: ShmWire.create({}), side: 'a' } } });
  t.equal(new TcpViews(shm.state.tcp).layout.bufBytes, 1 << 22, 'a stack on the shm wire gets wire buffers');
  const own = createStackMemory({ config: { iface: null, link: { kind: 'shm', wire: ShmWire.create({}), side: 'a' } }, tcp: { bufferBytes: 8192 } });
  t.equal(new TcpViews(own.state.tcp).layout.bufBytes, 8192, 'an explicit size wins');
  t.equal(new TcpViews(createStackMemory({}).state.tcp).layout.bufBytes, DEFAULT_BUFFER_BYTES, 'no link: the default');
});
