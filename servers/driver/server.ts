/**
 * The driver server. Its protocol handlers arrive with the link/network and TCP issues; until then it runs
 * in the runtime like any other server (life cycle, heartbeats, restarts, probes) and drops unknown
 * message types with a count.
 */
import { shellServer } from '../runtime/shell-server.js';

export const driverServer = shellServer('driver');
