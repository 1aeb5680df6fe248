/**
 * The TcpChannel of a stack with flow-sharded tcp instances (createStack({ tcpInstances: N }), see
 * servers/runtime/flow-shard.ts): one ShmTcpChannel per instance, behind the same contract, so the net
 * API does not know about instances.
 *  - connect: an explicit local port goes to the instance its four-tuple hashes to (where the ip server
 *    will deliver its segments); otherwise the least-loaded instance (fewest live connections, ties in
 *    turn), which picks an ephemeral port whose tuple hashes to itself.
 *  - listen: the listener is installed on every instance with the same address and port (the first
 *    instance picks an ephemeral port), and a SYN lands on the instance its tuple hashes to; each keeps
 *    its own backlog and SYN cookies. Closing closes it on every instance. If one instance refuses, the
 *    ones already listening are closed and the error is reported.
 */
import type { StackConfig } from '../servers/runtime/stack-memory.js';
import { flowShard } from '../servers/runtime/flow-shard.js';
import type { ShmTcpChannel } from './tcp-shm-channel.js';
import type { ConnectRequest, ConnHandler, ListenHandler, ListenRequest, TcpChannel, TcpConn, TcpListener } from './tcp-channel.js';

const LOOPBACK = 0x7f000001;

/** The local address the tcp server will use for a connect (as its connect() chooses it). */
export function connectLocalAddress(req: Pick<ConnectRequest, 'localAddress' | 'remoteAddress'>, ifAddr: number): number {
  if (req.localAddress !== 0) return req.localAddress >>> 0;
  const raddr = req.remoteAddress >>> 0 || LOOPBACK;
  return raddr >>> 24 === 127 ? LOOPBACK : ifAddr >>> 0;
}

/** Which instance gets an active open: loads are the instances' live connections; `next` breaks ties. */
export function pickConnectInstance(
  req: Pick<ConnectRequest, 'localAddress' | 'localPort' | 'remoteAddress' | 'remotePort'>,
  key: ArrayLike<number>,
  ifAddr: number,
  loads: ArrayLike<number>,
  next: number,
): number {
  const n = loads.length;
  if (req.localPort !== 0) {
    const raddr = req.remoteAddress >>> 0 || LOOPBACK;
    return flowShard(key, n, connectLocalAddress(req, ifAddr), req.localPort, raddr, req.remotePort);
  }
  let best = 0;
  let bestLoad = Infinity;
  for (let i = 0; i < n; i++) {
    const k = (next + i) % n;
    if (loads[k] < bestLoad) {
      best = k;
      bestLoad = loads[k];
    }
  }
  return best;
}

class ShardedListener implements TcpListener {
  constructor(
    readonly address: number,
    readonly port: number,
    private readonly parts: TcpListener[],
  ) {}

  close(): void {
    for (const l of this.parts) l.close();
  }
}

export class ShardedTcpChannel implements TcpChannel {
  private next = 0;
  private readonly loads: Int32Array;
  /** Active opens per instance (all time). */
  readonly connectsBy: number[];

  constructor(
    readonly channels: readonly ShmTcpChannel[],
    private readonly config: StackConfig,
  ) {
    this.loads = new Int32Array(channels.length);
    this.connectsBy = channels.map(() => 0);
  }

  connect(req: ConnectRequest, handler: ConnHandler): TcpConn {
    const ch = this.channels;
    for (let i = 0; i < ch.length; i++) this.loads[i] = ch[i].connections;
    const k = pickConnectInstance(req, this.config.tcpShards?.key ?? [0, 0, 0, 0], this.config.iface?.address ?? 0, this.loads, this.next);
    if (req.localPort === 0) this.next = (k + 1) % ch.length;
    this.connectsBy[k]++;
    return ch[k].connect(req, handler);
  }

  async listen(req: ListenRequest, handler: ListenHandler): Promise<TcpListener> {
    const first = await this.channels[0].listen(req, handler);
    const rest = await Promise.allSettled(
      this.channels.slice(1).map((c) => c.listen({ ...req, port: first.port }, handler)),
    );
    const failed = rest.find((r) => r.status === 'rejected');
    if (failed) {
      first.close();
      for (const r of rest) if (r.status === 'fulfilled') r.value.close();
      throw failed.reason;
    }
    const parts = [first, ...rest.map((r) => (r as PromiseFulfilledResult<TcpListener>).value)];
    return new ShardedListener(first.address, first.port, parts);
  }
}
