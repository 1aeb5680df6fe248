/** Server modules by name: what a host instantiates for each server it runs. */
import type { ServerModule } from './runtime/server.js';
import type { ServerName } from './runtime/topology.js';
import { driverServer } from './driver/server.js';
import { ipServer } from './ip/server.js';
import { tcpServer } from './tcp/server.js';
import { udpServer } from './udp/server.js';

export const SERVER_MODULES: Readonly<Record<ServerName, ServerModule>> = {
  driver: driverServer,
  ip: ipServer,
  tcp: tcpServer,
  udp: udpServer,
};

import { readIpCounters } from './ip/engine.js';
import { DriverCounters } from './driver/counters.js';
import { udpCounters } from './udp/socket-table.js';
import { tcpCounters } from './tcp/counters.js';

/** Each server's protocol counters (drops by reason and events), read from its shared state. */
export const PROTOCOL_COUNTERS: Readonly<Partial<Record<ServerName, (state: SharedArrayBuffer) => Record<string, number>>>> = {
  driver: (state) => nonZero(DriverCounters.attach(state).c.snapshot()),
  ip: readIpCounters,
  udp: (state) => nonZero(udpCounters(state)),
  tcp: tcpCounters,
};

function nonZero(r: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(r)) if (v !== 0) out[k] = v;
  return out;
}
