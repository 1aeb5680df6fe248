/**
 * A shared-memory wire with room for only a few 64 KiB frames, so that the sending driver finds it full
 * again and again: each refused FRAME record is offered to the driver again (host.ts), and its second
 * claim finds the buffer already the driver's. The transfer arrives intact, nothing is dropped as a
 * replay, and the pools count no failed transfer (before host.ts asked "ours already?" first, every
 * re-offer counted two: 7779 in 2 s of bulk).
 */
import t from 'tap';
import { ShmWire } from '../../servers/driver/shm-wire.js';
import { createStackPair } from '../../kernel-shim/stack-pair.js';
import { seededBytes } from '../helpers/prng.js';
import { sendAndCollect } from '../helpers/transfer.js';

t.test('a nearly full wire: refused frames are re-offered, the data is intact, no pool anomaly', async (t) => {
  const mtu = 65535;
  const [A, B] = await createStackPair({ mtu, checksumOffload: true, capacity: ShmWire.minCapacity(mtu) }, { address: '10.93.4.1/24' }, { address: '10.93.4.2/24' });
  t.teardown(async () => {
    await Promise.allSettled([A.close(), B.close()]);
  });
  const data = seededBytes(6 << 20, 11);
  const chunks = await sendAndCollect(A, B, '10.93.4.1', 9100, data);
  t.ok(Buffer.concat(chunks).equals(data), 'every byte arrived, in order');
  const drv = B.stats().servers.driver.protocol;
  t.ok((drv.txBackpressure ?? 0) > 0, `the wire refused frames (${drv.txBackpressure})`);
  t.equal(drv['drop:replay'] ?? 0, 0, 'no re-offered frame was taken for a replay');
  for (const [name, S] of [['A', A], ['B', B]] as const) {
    const pool = S.stats().pool;
    t.equal(pool.big.badTransfer + pool.small.badTransfer, 0, `${name}: no failed transfer`);
  }
});
