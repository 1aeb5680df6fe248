/**
 * The IP server: ARP, IPv4 input and output, ICMP, fragmentation and reassembly, routing and the
 * loopback interface, between the driver and the transport servers. The work is in engine.ts; this
 * module adapts it to the runtime's life cycle (one engine per incarnation).
 */
import { D, DATA_MSG } from '../runtime/messages.js';
import type { ServerContext, ServerModule } from '../runtime/server.js';
import { tcpInstanceOf, type Endpoint } from '../runtime/topology.js';
import { IpEngine } from './engine.js';

const engines = new WeakMap<ServerContext, IpEngine>();

export const ipServer: ServerModule = {
  name: 'ip',

  start(ctx: ServerContext): void {
    engines.set(ctx, new IpEngine(ctx));
  },

  handle(ctx: ServerContext, from: Endpoint, type: number, bytes: Uint8Array, off: number, len: number): boolean {
    const e = engines.get(ctx)!;
    // Refuse (for now) rather than half-handle a record whose outputs may not fit.
    if (!e.hasRoom()) return false;
    const now = ctx.clock.nowUs();
    if (type === DATA_MSG.FRAME && from === 'driver' && len >= D.FRAME_BYTES) e.onFrame(bytes, off, now);
    else if (type === DATA_MSG.L4_OUT && (from === 'udp' || from === 'tcp' || tcpInstanceOf(from) > 0) && len >= D.L4_OUT_BYTES) e.onL4Out(bytes, off, now);
    else if (type === DATA_MSG.PORT_UNREACH && from === 'udp' && len >= D.L4_IN_BYTES) e.onPortUnreach(bytes, off, now);
    else e.counters.values[e.counters.slot('drop:bad-message')]++;
    return true;
  },

  poll(ctx: ServerContext, nowUs: number): number {
    return engines.get(ctx)?.poll(nowUs) ?? Infinity;
  },
};
