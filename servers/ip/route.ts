/**
 * Interfaces and the IPv4 routing table (pure: no I/O, no clock).
 *
 * Model (a host, not a router; Linux's "local" + "main" tables in miniature):
 *  - Interface 0 is the loopback `lo`, 127.0.0.1/8, MTU 65535; it always exists, with the on-link
 *    route 127.0.0.0/8.
 *  - `addInterface({ addr, prefixLen, mtu })` adds an interface (index >= 1) and its on-link route
 *    (the subnet, gateway 0).
 *  - `addRoute(dst, prefixLen, gateway, ifIndex?, metric?)` adds a route; gateway 0 means on-link.
 *    A gateway must itself be on-link on the route's interface. `setDefaultGateway(gw)` is
 *    `addRoute(0, 0, gw)` replacing any previous default.
 *
 * `lookup(dst)`, in order:
 *  1. dst is one of our addresses (an interface address or anything in 127/8): delivered locally,
 *     `{ ifIndex: 0, nextHop: dst, local: true }`.
 *  2. dst is 255.255.255.255 or multicast (224/4): sent on-link (nextHop = dst) out of the
 *     interface of the best route to it, or the first non-loopback interface. `broadcast` or
 *     `multicast` is set so the caller maps the link address without ARP.
 *  3. Longest prefix match; ties go to the lower metric, then to the older route. On-link routes give
 *     nextHop = dst, others the gateway. `broadcast` is set when dst is the matched interface's
 *     subnet-directed broadcast.
 *  No match: null (the caller answers ICMP net unreachable or fails the send with ENETUNREACH).
 *
 * `lookup` returns one result object owned by the table and overwritten by the next call (no
 * allocation per packet); copy the fields you keep. Configuration calls return a `RouteError` code
 * or null; they never throw on bad input. Sizes are bounded (`maxRoutes`, `maxInterfaces`).
 */
import { IPV4_BROADCAST, ipv4IsLoopback, ipv4IsMulticast, ipv4Mask } from '../wire/ipv4.js';

export const LOOPBACK_IF = 0;
export const LOOPBACK_ADDR = 0x7f000001;
export const LOOPBACK_MTU = 65535;
/** RFC 791: every link must carry 68-byte datagrams. */
export const IPV4_MIN_MTU = 68;

export type RouteError =
  | 'table-full'
  | 'bad-address'
  | 'bad-prefix'
  | 'bad-mtu'
  | 'no-interface'
  | 'unreachable-gateway'
  | 'exists'
  | 'not-found'
  | 'reserved';

export interface InterfaceConfig {
  addr: number;
  prefixLen: number;
  mtu: number;
}

/** An interface as the table keeps it (read-only to callers). */
export interface NetInterface {
  readonly ifIndex: number;
  readonly addr: number;
  readonly prefixLen: number;
  readonly mtu: number;
  readonly mask: number;
  readonly network: number;
  /** Subnet-directed broadcast (== addr for /31 and /32, which have none). */
  readonly broadcast: number;
}

export interface RouteInfo {
  dst: number;
  prefixLen: number;
  /** 0 for on-link. */
  gateway: number;
  ifIndex: number;
  metric: number;
}

interface Route extends RouteInfo {
  mask: number;
  seq: number;
}

/** The answer of `lookup`; one instance per table, overwritten by every call. */
export class RouteResult {
  /** Address to resolve on the link (dst itself when on-link, else the gateway). */
  nextHop = 0;
  ifIndex = 0;
  /** Preferred source address: the outgoing interface's address (dst itself when local). */
  src = 0;
  mtu = 0;
  /** dst is ours: loop it back, do not transmit. */
  local = false;
  /** Limited or subnet-directed broadcast: link broadcast address, no ARP. */
  broadcast = false;
  /** Multicast: mapped link address, no ARP. */
  multicast = false;
}

export interface RouteTableOptions {
  /** Routes including the on-link routes of interfaces and the loopback route. Default 64. */
  maxRoutes?: number;
  /** Interfaces including loopback. Default 8. */
  maxInterfaces?: number;
}

export class RouteTable {
  readonly maxRoutes: number;
  readonly maxInterfaces: number;
  private readonly ifs: (NetInterface | null)[] = [];
  /** Sorted by prefixLen desc, metric asc, seq asc: the first match is the answer. */
  private readonly routes: Route[] = [];
  private seq = 0;
  private readonly result = new RouteResult();

  constructor(options: RouteTableOptions = {}) {
    this.maxRoutes = Math.max(2, options.maxRoutes ?? 64);
    this.maxInterfaces = Math.max(2, options.maxInterfaces ?? 8);
    this.ifs.push(makeIf(LOOPBACK_IF, LOOPBACK_ADDR, 8, LOOPBACK_MTU));
    this.insert({ dst: 0x7f000000, prefixLen: 8, gateway: 0, ifIndex: LOOPBACK_IF, metric: 0 });
  }

  /** Add an interface and its on-link route. Returns its index (>= 1) or an error. */
  addInterface(cfg: InterfaceConfig): number | RouteError {
    const { addr, prefixLen, mtu } = cfg;
    if (!isU32(addr) || addr === 0 || addr === IPV4_BROADCAST || ipv4IsMulticast(addr)) return 'bad-address';
    if (ipv4IsLoopback(addr)) return 'reserved';
    if (!Number.isInteger(prefixLen) || prefixLen < 1 || prefixLen > 32) return 'bad-prefix';
    if (!Number.isInteger(mtu) || mtu < IPV4_MIN_MTU || mtu > 65535) return 'bad-mtu';
    if (this.interfaceByAddr(addr) !== null) return 'exists';
    let idx = this.ifs.indexOf(null);
    if (idx < 0) {
      if (this.ifs.length >= this.maxInterfaces) return 'table-full';
      idx = this.ifs.length;
    }
    if (this.routes.length >= this.maxRoutes) return 'table-full';
    const ifc = makeIf(idx, addr, prefixLen, mtu);
    if (idx === this.ifs.length) this.ifs.push(ifc);
    else this.ifs[idx] = ifc;
    this.insert({ dst: ifc.network, prefixLen, gateway: 0, ifIndex: idx, metric: 0 });
    return idx;
  }

  /** Remove an interface and every route through it. The loopback cannot be removed. */
  removeInterface(ifIndex: number): RouteError | null {
    if (ifIndex === LOOPBACK_IF) return 'reserved';
    if (this.interface(ifIndex) === null) return 'no-interface';
    this.ifs[ifIndex] = null;
    for (let i = this.routes.length - 1; i >= 0; i--) if (this.routes[i].ifIndex === ifIndex) this.routes.splice(i, 1);
    return null;
  }

  interface(ifIndex: number): NetInterface | null {
    return Number.isInteger(ifIndex) && ifIndex >= 0 && ifIndex < this.ifs.length ? this.ifs[ifIndex] : null;
  }

  /** The interface that owns `addr` as its address (not 127/8 beyond 127.0.0.1), or null. */
  interfaceByAddr(addr: number): NetInterface | null {
    for (const ifc of this.ifs) if (ifc !== null && ifc.addr === addr) return ifc;
    return null;
  }

  /** Live interfaces (allocates). */
  interfaces(): NetInterface[] {
    return this.ifs.filter((x): x is NetInterface => x !== null);
  }

  /**
   * Add a route to dst/prefixLen via `gateway` (0 = on-link). Without `ifIndex` the interface is
   * the one whose subnet holds the gateway (required for gateway routes). The destination is masked.
   */
  addRoute(dst: number, prefixLen: number, gateway: number, ifIndex?: number, metric = 0): RouteError | null {
    if (!isU32(dst) || !isU32(gateway)) return 'bad-address';
    if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > 32) return 'bad-prefix';
    const mask = ipv4Mask(prefixLen);
    const net = (dst & mask) >>> 0;
    if (ipv4IsLoopback(net) && prefixLen >= 8) return 'reserved';
    let idx: number;
    if (ifIndex !== undefined) {
      const ifc = this.interface(ifIndex);
      if (ifc === null || ifIndex === LOOPBACK_IF) return 'no-interface';
      if (gateway !== 0 && !onLink(ifc, gateway)) return 'unreachable-gateway';
      idx = ifIndex;
    } else if (gateway !== 0) {
      const ifc = this.onLinkInterface(gateway);
      if (ifc === null) return 'unreachable-gateway';
      idx = ifc.ifIndex;
    } else {
      return 'no-interface';
    }
    for (const r of this.routes) {
      if (r.dst === net && r.prefixLen === prefixLen && r.gateway === gateway && r.ifIndex === idx) return 'exists';
    }
    if (this.routes.length >= this.maxRoutes) return 'table-full';
    this.insert({ dst: net, prefixLen, gateway, ifIndex: idx, metric: Math.max(0, metric | 0) });
    return null;
  }

  /** Remove the route(s) to dst/prefixLen (only those via `gateway` if given). */
  removeRoute(dst: number, prefixLen: number, gateway?: number): RouteError | null {
    const net = (dst & ipv4Mask(prefixLen)) >>> 0;
    let n = 0;
    for (let i = this.routes.length - 1; i >= 0; i--) {
      const r = this.routes[i];
      if (r.ifIndex === LOOPBACK_IF) continue;
      if (r.dst === net && r.prefixLen === prefixLen && (gateway === undefined || r.gateway === gateway)) {
        this.routes.splice(i, 1);
        n++;
      }
    }
    return n === 0 ? 'not-found' : null;
  }

  /** Replace the default route (0.0.0.0/0) with one via `gateway`. */
  setDefaultGateway(gateway: number, ifIndex?: number): RouteError | null {
    if (!isU32(gateway) || gateway === 0) return 'bad-address';
    const ifc = ifIndex !== undefined ? this.interface(ifIndex) : this.onLinkInterface(gateway);
    if (ifc === null || ifc.ifIndex === LOOPBACK_IF) return ifIndex !== undefined ? 'no-interface' : 'unreachable-gateway';
    if (!onLink(ifc, gateway)) return 'unreachable-gateway';
    this.removeRoute(0, 0);
    return this.addRoute(0, 0, gateway, ifc.ifIndex);
  }

  clearDefaultGateway(): void {
    this.removeRoute(0, 0);
  }

  /** Routes in lookup order (allocates). */
  list(): RouteInfo[] {
    return this.routes.map(({ dst, prefixLen, gateway, ifIndex, metric }) => ({ dst, prefixLen, gateway, ifIndex, metric }));
  }

  get routeCount(): number {
    return this.routes.length;
  }

  /** An address of ours: an interface address or anything in 127/8. */
  isLocal(addr: number): boolean {
    if (ipv4IsLoopback(addr)) return true;
    for (let i = 1; i < this.ifs.length; i++) {
      const ifc = this.ifs[i];
      if (ifc !== null && ifc.addr === addr) return true;
    }
    return false;
  }

  /** 255.255.255.255 or the subnet-directed broadcast of one of our interfaces. */
  isBroadcast(addr: number): boolean {
    if (addr === IPV4_BROADCAST) return true;
    for (let i = 1; i < this.ifs.length; i++) {
      const ifc = this.ifs[i];
      if (ifc !== null && ifc.broadcast === addr && ifc.prefixLen < 31) return true;
    }
    return false;
  }

  /** Route `dst` (see the header). The result is reused by the next call. */
  lookup(dst: number): RouteResult | null {
    dst >>>= 0;
    const res = this.result;
    res.local = false;
    res.broadcast = false;
    res.multicast = false;
    if (this.isLocal(dst)) {
      res.nextHop = dst;
      res.ifIndex = LOOPBACK_IF;
      res.src = dst;
      res.mtu = LOOPBACK_MTU;
      res.local = true;
      return res;
    }
    const special = dst === IPV4_BROADCAST || ipv4IsMulticast(dst);
    let r: Route | null = null;
    for (let i = 0; i < this.routes.length; i++) {
      const c = this.routes[i];
      if (((dst & c.mask) >>> 0) === c.dst) {
        r = c;
        break;
      }
    }
    let ifc: NetInterface | null = r === null ? null : this.ifs[r.ifIndex];
    if (special) {
      if (ifc === null || ifc.ifIndex === LOOPBACK_IF) ifc = this.firstInterface();
      if (ifc === null) return null;
      res.nextHop = dst;
      res.ifIndex = ifc.ifIndex;
      res.src = ifc.addr;
      res.mtu = ifc.mtu;
      res.broadcast = dst === IPV4_BROADCAST;
      res.multicast = !res.broadcast;
      return res;
    }
    if (r === null || ifc === null) return null;
    res.nextHop = r.gateway === 0 ? dst : r.gateway;
    res.ifIndex = ifc.ifIndex;
    res.src = ifc.addr;
    res.mtu = ifc.mtu;
    res.broadcast = r.gateway === 0 && ifc.prefixLen < 31 && dst === ifc.broadcast;
    return res;
  }

  private firstInterface(): NetInterface | null {
    for (let i = 1; i < this.ifs.length; i++) if (this.ifs[i] !== null) return this.ifs[i];
    return null;
  }

  private onLinkInterface(addr: number): NetInterface | null {
    for (let i = 1; i < this.ifs.length; i++) {
      const ifc = this.ifs[i];
      if (ifc !== null && onLink(ifc, addr)) return ifc;
    }
    return null;
  }

  private insert(info: RouteInfo): void {
    const r: Route = { ...info, mask: ipv4Mask(info.prefixLen), seq: this.seq++ };
    let i = 0;
    while (i < this.routes.length && !before(r, this.routes[i])) i++;
    this.routes.splice(i, 0, r);
  }
}

function before(a: Route, b: Route): boolean {
  if (a.prefixLen !== b.prefixLen) return a.prefixLen > b.prefixLen;
  if (a.metric !== b.metric) return a.metric < b.metric;
  return a.seq < b.seq;
}

function onLink(ifc: NetInterface, addr: number): boolean {
  return ((addr & ifc.mask) >>> 0) === ifc.network && addr !== ifc.addr;
}

function makeIf(ifIndex: number, addr: number, prefixLen: number, mtu: number): NetInterface {
  const mask = ipv4Mask(prefixLen);
  const network = (addr & mask) >>> 0;
  const broadcast = prefixLen >= 31 ? addr : (network | ~mask) >>> 0;
  return Object.freeze({ ifIndex, addr, prefixLen, mtu, mask, network, broadcast });
}

function isU32(x: number): boolean {
  return Number.isInteger(x) && x >= 0 && x <= 0xffffffff;
}
