/** keepnet's public entry point. */
export { createStack, Stack, PROBE_ROUTES, type StackOptions, type ProbeResult } from './stack.js';
export { createStackPair, type PairSideOptions } from './stack-pair.js';
export { runFaultCampaign, type CampaignOptions, type CampaignResult } from './fault-campaign.js';
export { FAULT_KINDS, type FaultKind, type ServerStats, type CrashInfo } from '../servers/runtime/supervisor.js';
export { SERVER_NAMES, MAX_TCP_INSTANCES, tcpInstanceName, type ServerName, type Placement } from '../servers/runtime/topology.js';
export { ShmWire, type ShmWireInit, type ShmWireOptions } from '../servers/driver/shm-wire.js';
export { DgramApi, Socket as DgramSocket, type RemoteInfo } from './dgram.js';
export type { NetworkOptions, LinkOption } from './stack-config.js';
export type { NetModule } from './net.js';
export { Socket as NetSocket, Server as NetServer } from './net.js';
