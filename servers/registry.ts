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
