/**
 * From the options an application passes to createStack() to the StackConfig every server reads:
 * parsing and validation (Node-style errors), the interface's MAC, and the link (a TAP device is opened
 * here, on the main thread, so its fd outlives any driver restart).
 */
import { ipv4Parse } from '../servers/wire/ipv4.js';
import { ShmWire, type ShmWireInit } from '../servers/driver/shm-wire.js';
import { TapDevice, TUN_F, type TapOpenOptions } from '../servers/driver/tap-device.js';
import { GSO_MAX_IP_BYTES } from '../servers/driver/tap-link.js';
import type { FaultLinkOptions } from '../servers/driver/fault-link.js';
import type { StackConfig } from '../servers/runtime/stack-memory.js';

export type LinkOption =
  | { kind: 'shm'; wire: ShmWireInit; side: 'a' | 'b' }
  /** A TAP device: opened (and closed with the stack) by name, optionally in a network namespace; or an
   * already open fd, which stays the caller's. `offload` (default true when keepnet opens the TAP):
   * IFF_VNET_HDR with checksum offload and TSO both ways (64 KiB frames; falls back to what the kernel
   * grants). For a caller's fd, `vnetHdrSize` says it was opened with IFF_VNET_HDR and that header size
   * (`gso`: and TUN_F_TSO4 granted); without it the fd carries plain frames. */
  | { kind: 'tap'; name: string; netns?: string; fd?: number; offload?: boolean; vnetHdrSize?: number; gso?: boolean }
  | { kind: 'none' };

export interface NetworkOptions {
  /** 'a.b.c.d/prefix' */
  address?: string;
  gateway?: string;
  /** Default: the link's MTU (shared-memory wire) or 1500. */
  mtu?: number;
  link?: LinkOption;
  faults?: FaultLinkOptions;
  pcap?: string;
}

function err(e: Error, code: string): Error {
  return Object.assign(e, { code });
}

export function parseCidr(s: string): { address: number; prefix: number } {
  if (typeof s !== 'string') throw err(new TypeError(`address must be a string 'a.b.c.d/prefix', got ${typeof s}`), 'ERR_INVALID_ARG_TYPE');
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(s);
  const address = m ? ipv4Parse(m[1]) : null;
  const prefix = m ? Number(m[2]) : -1;
  if (address === null || prefix < 1 || prefix > 32) {
    throw err(new TypeError(`address must look like '10.0.0.1/24', got '${s}'`), 'ERR_INVALID_ARG_VALUE');
  }
  return { address, prefix };
}

/** A locally administered unicast MAC derived from the address (02:6b:6e + its low three bytes). */
function macFor(address: number): number {
  return 0x026b6e * 2 ** 24 + (address & 0xffffff);
}

function macBytesToNumber(b: Uint8Array): number {
  let m = 0;
  for (let i = 0; i < 6; i++) m = m * 256 + b[i];
  return m;
}

export interface ResolvedNetwork {
  config: StackConfig;
  /** Resources the stack must release when it closes. */
  tap: TapDevice | null;
}

export function resolveNetwork(o: NetworkOptions): ResolvedNetwork {
  const link = o.link ?? { kind: 'none' as const };
  if (o.address === undefined) {
    if (link.kind !== 'none') throw err(new TypeError('a stack with a link needs an address'), 'ERR_INVALID_ARG_VALUE');
    return { config: { iface: null, link: { kind: 'none' } }, tap: null };
  }
  const { address, prefix } = parseCidr(o.address);
  let gateway = 0;
  if (o.gateway !== undefined) {
    const g = ipv4Parse(o.gateway);
    if (g === null) throw err(new TypeError(`gateway must be an IPv4 address, got '${o.gateway}'`), 'ERR_INVALID_ARG_VALUE');
    gateway = g;
  }
  let mtu = o.mtu ?? 1500;
  let mac = macFor(address);
  let checksumOffload = false;
  let gsoMaxBytes = 0;
  let tap: TapDevice | null = null;
  let cfgLink: StackConfig['link'] = { kind: 'none' };
  switch (link.kind) {
    case 'shm':
      mtu = o.mtu ?? link.wire.mtu;
      if (mtu > link.wire.mtu) throw err(new RangeError(`mtu ${mtu} exceeds the wire's ${link.wire.mtu}`), 'ERR_OUT_OF_RANGE');
      mac = macBytesToNumber(ShmWire.mac(link.wire.id, link.side));
      checksumOffload = link.wire.checksumOffload;
      cfgLink = { kind: 'shm', wire: link.wire, side: link.side };
      break;
    case 'tap':
      if (link.fd !== undefined) {
        const h = link.vnetHdrSize ?? 0;
        if (h !== 0 && h !== 10 && h !== 12) throw err(new RangeError(`link.vnetHdrSize must be 10 or 12, got ${h}`), 'ERR_OUT_OF_RANGE');
        if (h !== 0 && o.faults !== undefined) {
          throw err(new TypeError('a vnet-hdr TAP cannot be combined with faults (the fault layer queues MTU-sized frames)'), 'ERR_INVALID_ARG_VALUE');
        }
        cfgLink = { kind: 'tap', fd: link.fd, name: link.name, vnetHdrSize: h, gso: h > 0 && link.gso === true };
      } else {
        // Offload by default, but not under fault injection (its queues hold MTU-sized frames).
        if (link.offload === true && o.faults !== undefined) {
          throw err(new TypeError('link.offload cannot be combined with faults (the fault layer queues MTU-sized frames)'), 'ERR_INVALID_ARG_VALUE');
        }
        const offload = link.offload ?? o.faults === undefined;
        const opts: TapOpenOptions = link.netns === undefined ? {} : { netns: link.netns };
        if (offload) Object.assign(opts, { vnetHdr: true, vnetHdrSize: 12, offload: TUN_F.CSUM | TUN_F.TSO4 });
        tap = TapDevice.open(link.name, opts);
        cfgLink = { kind: 'tap', fd: tap.fd, name: tap.name, vnetHdrSize: tap.vnetHdrSize, gso: (tap.offload & TUN_F.TSO4) !== 0 };
      }
      if (cfgLink.vnetHdrSize) {
        checksumOffload = true;
        gsoMaxBytes = GSO_MAX_IP_BYTES - 20;
      }
      break;
    case 'none':
      break;
    default:
      throw err(new TypeError(`link.kind must be 'shm', 'tap' or 'none'`), 'ERR_INVALID_ARG_VALUE');
  }
  if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) {
    tap?.close();
    throw err(new RangeError(`mtu must be an integer in [576, 65535], got ${mtu}`), 'ERR_OUT_OF_RANGE');
  }
  const config: StackConfig = { iface: { address, prefix, gateway, mac, mtu, checksumOffload }, link: cfgLink };
  if (gsoMaxBytes > 0) config.iface!.gsoMaxBytes = gsoMaxBytes;
  if (o.faults) config.faults = o.faults;
  if (o.pcap) config.pcap = o.pcap;
  return { config, tap };
}
