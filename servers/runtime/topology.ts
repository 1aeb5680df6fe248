/**
 * Who is in a stack and who talks to whom. Servers are wired to each other directly (one ring per
 * direction per pair); the supervisor is never on the data path. Its only rings are control rings into
 * each server (fault injection, poison tests), which carry no traffic.
 */
export const SERVER_NAMES = ['driver', 'ip', 'tcp', 'udp'] as const;
export type ServerName = (typeof SERVER_NAMES)[number];
/** Endpoints of rings: the servers, the kernel shim (application side) and the supervisor. */
export type Endpoint = ServerName | 'shim' | 'sup';

/** Numeric ids: used in pool owner words (1..255) and message headers. */
export const ENDPOINT_ID: Readonly<Record<Endpoint, number>> = Object.freeze({
  driver: 1,
  ip: 2,
  tcp: 3,
  udp: 4,
  shim: 5,
  sup: 6,
});
export const ENDPOINT_BY_ID: readonly Endpoint[] = ['shim', 'driver', 'ip', 'tcp', 'udp', 'shim', 'sup'];

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

export const linkName = (from: Endpoint, to: Endpoint): string => `${from}>${to}`;

/**
 * Placement: which servers share a worker thread. 'dedicated' (default) gives each server its own
 * thread; 'shared' hosts all four on one (for small machines and benchmarks). Same server code, same
 * rings either way. Servers sharing a thread also share its fate: a crash restarts them together.
 */
export type Placement = 'dedicated' | 'shared' | ServerName[][];

export function hostsFor(placement: Placement): ServerName[][] {
  if (placement === 'dedicated') return SERVER_NAMES.map((s) => [s]);
  if (placement === 'shared') return [[...SERVER_NAMES]];
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
      if (!(SERVER_NAMES as readonly string[]).includes(s) || seen.has(s)) {
        throw Object.assign(new TypeError(`placement: unknown or repeated server '${s}'`), { code: 'ERR_INVALID_ARG_VALUE' });
      }
      seen.add(s);
    }
  }
  if (seen.size !== SERVER_NAMES.length) {
    throw Object.assign(new TypeError('placement must place every server exactly once'), { code: 'ERR_INVALID_ARG_VALUE' });
  }
  return placement.map((g) => [...g]);
}
