/**
 * `keepnet tap`: attach a stack to a TAP device (optionally inside a network namespace) and run until
 * SIGINT or SIGTERM, serving the built-in services asked for. On exit it prints its counters; with
 * --json, as one JSON object on the last line of stdout.
 *
 * Services: echo (RFC 862, port 7) and discard (RFC 863, port 9), each on UDP and TCP; http (TCP port
 * 80: GET /bytes/N, POST /sha256; see services/tcp-services.ts).
 */
import { parseArgs } from 'node:util';
import { Stack } from '../../kernel-shim/stack.js';
import type { Socket } from '../../kernel-shim/dgram.js';
import { startTcpService, type NetLike } from '../services/tcp-services.js';
import type { Server } from 'node:net';
import { tcpInstancesOption } from './options.js';


const SERVICES = ['echo', 'discard', 'http'] as const;
type Service = (typeof SERVICES)[number];

function startUdpService(stack: Stack, service: 'echo' | 'discard'): Socket {
  const sock = stack.dgram.createSocket('udp4');
  if (service === 'echo') {
    sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
    sock.bind(7);
  } else {
    sock.on('message', () => {});
    sock.bind(9);
  }
  return sock;
}

/** The counters printed on exit: restarts per server and every drop by reason. */
export function exitReport(stack: Stack): { servers: Record<string, unknown>; drops: Record<string, number> } {
  const st = stack.stats();
  const servers: Record<string, unknown> = {};
  const drops: Record<string, number> = {};
  for (const name of stack.memory.servers) {
    const s = st.servers[name];
    servers[name] = { restarts: s.restarts.total, restartsByCause: s.restarts, incarnation: s.incarnation, ...s.protocol, runtime: s.counters };
    for (const [k, v] of Object.entries(s.protocol)) {
      if (k.startsWith('drop:')) drops[`${name}:${k.slice(5)}`] = v;
    }
  }
  return { servers, drops };
}

export async function tapCommand(args: string[], fail: (msg: string) => never): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        dev: { type: 'string' },
        netns: { type: 'string' },
        address: { type: 'string' },
        gateway: { type: 'string' },
        mtu: { type: 'string' },
        pcap: { type: 'string' },
        serve: { type: 'string' },
        'tcp-instances': { type: 'string' },
        offload: { type: 'string' },
        json: { type: 'boolean' },
      },
    });
  } catch (err) {
    // An unknown option, a missing value, a positional: a usage error (exit 2), not a crash.
    fail((err as Error).message);
  }
  const { values } = parsed;
  if (!values.dev) fail('--dev NAME is required');
  if (!values.address) fail('--address A.B.C.D/P is required');
  const serve = (values.serve ? values.serve.split(',') : []) as Service[];
  for (const s of serve) if (!(SERVICES as readonly string[]).includes(s)) fail(`unknown service '${s}' (services: ${SERVICES.join(', ')})`);
  const mtu = values.mtu === undefined ? undefined : Number(values.mtu);
  const tcpInstances = tcpInstancesOption(values['tcp-instances'], fail);
  if (values.offload !== undefined && values.offload !== 'on' && values.offload !== 'off') fail(`--offload must be on or off, got '${values.offload}'`);
  // Listen for the stop signals before the TAP is opened: a SIGTERM during start-up (the TAP exists,
  // the workers are still starting) must still end in a clean close and the report, not a kill.
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  let stack: Stack;
  try {
    stack = new Stack({
      address: values.address,
      ...(values.gateway ? { gateway: values.gateway } : {}),
      ...(mtu !== undefined ? { mtu } : {}),
      ...(values.pcap ? { pcap: values.pcap } : {}),
      ...(tcpInstances > 1 ? { tcpInstances } : {}),
      // IFF_VNET_HDR with checksum offload and TSO unless --offload off (the stack's default).
      link: { kind: 'tap', name: values.dev, ...(values.netns ? { netns: values.netns } : {}), ...(values.offload ? { offload: values.offload === 'on' } : {}) },
    });
  } catch (err) {
    fail((err as Error).message);
  }
  await stack.start();
  const sockets = serve.filter((s) => s !== 'http').map((s) => startUdpService(stack, s as 'echo' | 'discard'));
  const servers: Server[] = [];
  for (const s of serve) servers.push(await startTcpService(stack.net as unknown as NetLike, s));
  if (!values.json) process.stderr.write(`keepnet: ${values.address} on ${values.dev}${values.netns ? ` (netns ${values.netns})` : ''}, serving ${serve.join(', ') || 'nothing'}; Ctrl-C to stop\n`);
  await stopped;
  for (const s of sockets) s.close();
  for (const s of servers) s.close();
  const report = exitReport(stack);
  await stack.close();
  process.stdout.write(values.json ? JSON.stringify(report) + '\n' : JSON.stringify(report, null, 2) + '\n');
}
