/**
 * The part every server shares before its protocol is plugged in: it accepts no message types of its
 * own (the host handles runtime messages such as probes itself) and counts anything else as an unknown
 * message, dropped. The driver, IP, TCP and UDP servers extend this with their protocols.
 */
import { K } from './counters.js';
import type { ServerContext, ServerModule } from './server.js';
import type { ServerName } from './topology.js';

export function shellServer(name: ServerName): ServerModule {
  return {
    name,
    start(): void {},
    handle(ctx: ServerContext): boolean {
      ctx.counters.add(K.unknownDropped);
      return true;
    },
    poll(): number {
      return Infinity;
    },
  };
}
