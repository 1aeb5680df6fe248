/**
 * Worker side of the shm-wire cross-thread test: a second "stack" that attaches side b of the wire with
 * its own pool and echoes every frame back, until it has echoed `count` frames.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ShmWire, type ShmWireInit } from '../../servers/driver/shm-wire.js';
import { OWNER_B, RX_HEADROOM, freeSlots, slots, stackPool } from './link-helpers.js';

export interface EchoWorkerData {
  init: ShmWireInit;
  count: number;
}

const d = workerData as EchoWorkerData;
const link = ShmWire.attach(d.init, 'b', { generation: 7 });
const pool = stackPool(link.maxFrame, 64);
const into = slots(pool, OWNER_B, 64, RX_HEADROOM);
const nap = new Int32Array(new SharedArrayBuffer(4));
let echoed = 0;
let parks = 0;
if (link.wait.kind !== 'doorbell') throw new Error('shm wire must offer a doorbell');
const bell = link.wait.doorbell;
while (echoed < d.count) {
  if (!link.rxReady) {
    const key = bell.prepare();
    if (link.rxReady) bell.cancel();
    else {
      parks++;
      bell.wait(key, 1000);
    }
    continue;
  }
  into.count = 0;
  const n = link.receive(into);
  let sent = 0;
  while (sent < n) {
    sent += link.transmit(into, sent);
    if (sent < n) Atomics.wait(nap, 0, 0, 1); // the peer drains; a timed sleep, not a spin
  }
  echoed += n;
}
const leaked = freeSlots(pool, OWNER_B, into);
link.close();
parentPort!.postMessage({ echoed, parks, leaked, inUse: pool.stats().inUse, stats: link.stats });
