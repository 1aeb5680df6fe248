/**
 * The udp server's own counters: per-reason drops and protocol events. They live in the server's
 * shared state (a region of the socket table's SAB, see socket-table.ts), so they survive restarts and
 * the main thread can read them (`udpCounters(stack.memory.init.state.udp)`) without a message. The
 * runtime's fixed counters (handled, replayDropped, backpressure, ...) stay in ctx.counters.
 *
 * Drops are spelled "drop:REASON". A record replayed after a crash may count twice; counts are
 * diagnostics, not accounting.
 */
export const UDP_COUNTERS = [
  'rx', // L4_IN datagrams handled (delivered, dropped or answered with PORT_UNREACH)
  'delivered', // RECV events sent to the shim (one per receiving socket)
  'tx', // L4_OUT sent to ip
  'port-unreach', // PORT_UNREACH sent to ip
  'port-unreach-dropped', // PORT_UNREACH not sent: the ring to ip was full (best effort, never waited for)
  'bcast-copies', // extra copies made for a broadcast reaching several sockets
  'icmp-reported', // ICMP errors reported to a connected socket
  'icmp-ignored', // ICMP errors with no connected socket, or soft errors (Linux reports only hard ones)
  'send-error', // SENDs refused with an ERROR to the shim
  'drop:truncated',
  'drop:bad-length',
  'drop:bad-checksum',
  'drop:no-socket', // unicast, no socket: answered with PORT_UNREACH
  'drop:no-socket-bcast', // broadcast/multicast, no socket: silently dropped (no ICMP, RFC 1122 §3.2.2)
  'drop:bad-descriptor', // a descriptor with offsets outside its buffer
  'drop:send-no-socket', // a SEND for a socket the table does not know (closed)
  'drop:copy-no-buffer', // a broadcast copy that found the pool exhausted
  'drop:bad-request', // a shim request too short or malformed
  'drop:unknown', // message types this server does not handle
] as const;
export type UdpCounterName = (typeof UDP_COUNTERS)[number];

export const UC = Object.freeze(Object.fromEntries(UDP_COUNTERS.map((n, i) => [n, i])) as Record<UdpCounterName, number>);
