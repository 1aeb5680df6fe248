/** Server modules by name: what a host instantiates for each server it runs. */
import type { ServerModule } from './runtime/server.js';
import { tcpInstanceOf, type BaseServerName, type ServerName } from './runtime/topology.js';
import { driverServer } from './driver/server.js';
import { ipServer } from './ip/server.js';
import { tcpServer } from './tcp/server.js';
import { udpServer } from './udp/server.js';

export const SERVER_MODULES: Readonly<Record<BaseServerName, ServerModule>> = {
  driver: driverServer,
  ip: ipServer,
  tcp: tcpServer,
  udp: udpServer,
};

/** The module of any server of a stack: every tcp instance runs the tcp server. */
export function serverModule(name: ServerName): ServerModule {
  return tcpInstanceOf(name) >= 0 ? tcpServer : SERVER_MODULES[name as BaseServerName];
}

import { readIpCounters } from './ip/engine.js';
import { DriverCounters } from './driver/counters.js';
import { udpCounters } from './udp/socket-table.js';
import { tcpCounters } from './tcp/counters.js';

/** Each server's protocol counters (drops by reason and events), read from its shared state. */
export const PROTOCOL_COUNTERS: Readonly<Partial<Record<BaseServerName, (state: SharedArrayBuffer) => Record<string, number>>>> = {
  driver: (state) => nonZero(DriverCounters.attach(state).c.snapshot()),
  ip: readIpCounters,
  udp: (state) => nonZero(udpCounters(state)),
  tcp: tcpCounters,
};

/** A server's protocol counters, tcp instances included. */
export function protocolCounters(name: ServerName, state: SharedArrayBuffer): Record<string, number> {
  return (tcpInstanceOf(name) >= 0 ? tcpCounters : PROTOCOL_COUNTERS[name as BaseServerName])?.(state) ?? {};
}

function nonZero(r: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(r)) if (v !== 0) out[k] = v;
  return out;
}
