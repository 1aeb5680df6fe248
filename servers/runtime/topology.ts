/**
 * Who is in a stack and who talks to whom. Servers are wired to each other directly (one ring per
 * direction per pair); the supervisor is never on the data path. Its only rings are control rings into
 * each server (fault injection, poison tests), which carry no traffic.
 */
export const SERVER_NAMES = ['driver', 'ip', 'tcp', 'udp'] as const;
export type BaseServerName = (typeof SERVER_NAMES)[number];
/**
 * Flow-sharded TCP (createStack({ tcpInstances: N })): instance 0 is 'tcp', as in a stack with one tcp
 * server, and instances 1..N-1 are 'tcp1', 'tcp2', ... Each is a full tcp server (own thread in
 * dedicated placement, own connection table, own rings to ip and the shim, restarted on its own).
 */
export type TcpInstanceName = `tcp${number}`;
export type ServerName = BaseServerName | TcpInstanceName;
/** Endpoints of rings: the servers, the kernel shim (application side) and the supervisor. */
export type Endpoint = ServerName | 'shim' | 'sup';

/** At most this many tcp instances per stack (their endpoint ids must fit the pool's owner byte). */
export const MAX_TCP_INSTANCES = 16;
/** Endpoint id of tcp instance k >= 1 is TCP_INSTANCE_ID_BASE + k (7..21). */
const TCP_INSTANCE_ID_BASE = 6;

/** The name of tcp instance k. */
export function tcpInstanceName(k: number): 'tcp' | TcpInstanceName {
  return k === 0 ? 'tcp' : `tcp${k}`;
}

/** Which tcp instance an endpoint is: 0 for 'tcp', k for 'tcpK', -1 for anything else. */
export function tcpInstanceOf(e: string): number {
  if (e === 'tcp') return 0;
  if (e.length < 4 || !e.startsWith('tcp')) return -1;
  const k = Number(e.slice(3));
  return Number.isInteger(k) && k >= 1 && k < MAX_TCP_INSTANCES && String(k) === e.slice(3) ? k : -1;
}

/** The servers of a stack with `tcpInstances` tcp instances (the extra instances after the base four). */
export function serverNames(tcpInstances = 1): ServerName[] {
  const out: ServerName[] = [...SERVER_NAMES];
  for (let k = 1; k < tcpInstances; k++) out.push(tcpInstanceName(k));
  return out;
}

/** Validate the tcpInstances option (Node-style errors); returns it. */
export function validateTcpInstances(n: unknown): number {
  if (n === undefined) return 1;
  if (typeof n !== 'number') {
    throw Object.assign(new TypeError(`The "tcpInstances" option must be of type number. Received ${typeof n}`), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
  }
  if (!Number.isInteger(n) || n < 1 || n > MAX_TCP_INSTANCES) {
    throw Object.assign(
      new RangeError(`The value of "tcpInstances" is out of range. It must be an integer >= 1 and <= ${MAX_TCP_INSTANCES}. Received ${n}`),
      { code: 'ERR_OUT_OF_RANGE' },
    );
  }
  return n;
}

/** Numeric ids: used in pool owner words (1..255) and message headers; tcp instance k >= 1 is 6 + k. */
export const ENDPOINT_ID: Readonly<Record<Endpoint, number>> = Object.freeze({
  driver: 1,
  ip: 2,
  tcp: 3,
  udp: 4,
  shim: 5,
  sup: 6,
  ...Object.fromEntries(Array.from({ length: MAX_TCP_INSTANCES - 1 }, (_, i) => [tcpInstanceName(i + 1), TCP_INSTANCE_ID_BASE + i + 1])),
});
export const ENDPOINT_BY_ID: readonly Endpoint[] = [
  'shim', 'driver', 'ip', 'tcp', 'udp', 'shim', 'sup',
  ...Array.from({ length: MAX_TCP_INSTANCES - 1 }, (_, i) => tcpInstanceName(i + 1)),
];

/** Every ring of a stack, as [producer, consumer]. */
export const LINKS: readonly (readonly [Endpoint, Endpoint])[] = [
  ['driver', 'ip'],
  ['ip', 'driver'],
  ['ip', 'tcp'],
  ['tcp', 'ip'],
  ['ip', 'udp'],
  ['udp', 'ip'],
  ['tcp', 'shim'],
  ['shim', 'tcp'],
  ['udp', 'shim'],
  ['shim', 'udp'],
  ['sup', 'driver'],
  ['sup', 'ip'],
  ['sup', 'tcp'],
  ['sup', 'udp'],
];

/** Every ring of a stack with `tcpInstances` tcp instances: LINKS, then the extra instances' rings. */
export function linksFor(tcpInstances = 1): (readonly [Endpoint, Endpoint])[] {
  const out = [...LINKS];
  for (let k = 1; k < tcpInstances; k++) {
    const t = tcpInstanceName(k);
    out.push(['ip', t], [t, 'ip'], [t, 'shim'], ['shim', t], ['sup', t]);
  }
  return out;
}

export const linkName = (from: Endpoint, to: Endpoint): string => `${from}>${to}`;

/**
 * Placement: which servers share a worker thread. 'dedicated' (default) gives each server its own
 * thread; 'shared' hosts all four on one (for small machines and benchmarks). Same server code, same
 * rings either way. Servers sharing a thread also share its fate: a crash restarts them together.
 */
export type Placement = 'dedicated' | 'shared' | ServerName[][];

export function hostsFor(placement: Placement, names: readonly ServerName[] = SERVER_NAMES): ServerName[][] {
  if (placement === 'dedicated') return names.map((s) => [s]);
  if (placement === 'shared') return [[...names]];
  if (!Array.isArray(placement)) {
    throw Object.assign(new TypeError(`placement must be 'dedicated', 'shared' or an array of server groups`), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
  }
  const seen = new Set<string>();
  for (const group of placement) {
    if (!Array.isArray(group) || group.length === 0) {
      throw Object.assign(new TypeError('each placement group must be a non-empty array of server names'), {
        code: 'ERR_INVALID_ARG_VALUE',
      });
    }
    for (const s of group) {
      if (!(names as readonly string[]).includes(s) || seen.has(s)) {
        throw Object.assign(new TypeError(`placement: unknown or repeated server '${s}'`), { code: 'ERR_INVALID_ARG_VALUE' });
      }
      seen.add(s);
    }
  }
  if (seen.size !== names.length) {
    throw Object.assign(new TypeError('placement must place every server exactly once'), { code: 'ERR_INVALID_ARG_VALUE' });
  }
  return placement.map((g) => [...g]);
}
