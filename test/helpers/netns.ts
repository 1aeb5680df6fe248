/**
 * Real-peer test topology (see shared/notes/real-peers.md):
 *
 *   namespace K (kernel peer)            namespace W (wire)
 *   k0 10.77.x.1/24  <--veth-->  w0  ==nft netdev ingress fwd==>  TAP  <-> the stack (fd in this process)
 *                                    <==nft netdev ingress fwd==
 *
 * The stack owns 10.77.x.2 behind the TAP. Faults are nft rules inserted before the `fwd` rule of
 * one direction. Everything lives in namespaces this process creates (named knk-PID-N / knw-PID-N)
 * and is removed by destroy() (also on process exit / SIGINT / SIGTERM, and stale namespaces of dead
 * runs are removed by the next createWire()).
 *
 * Traffic only ever flows inside these namespaces. Root is needed (tests skip, or fail under CI,
 * with netnsUnavailableReason()).
 */
import { execFileSync, spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { TapDevice, netnsPath, tapAddonAvailable, addonCandidates } from '../../servers/driver/tap-device.js';
import { removeStaleNamespaces } from '../../bench/stale-netns.js';

const CMD_TIMEOUT_MS = 10_000;
const NS_PREFIX_K = 'knk-';
const NS_PREFIX_W = 'knw-';
const NFT_TABLE = 'keepnet_wire';

/** Direction of a fault: frames from the kernel to the stack, or from the stack to the kernel. */
export type Direction = 'toStack' | 'toKernel';

export interface WireOptions {
  /** Distinguishes several wires of one process (default: a counter). Names are knk-PID-SUFFIX / knw-PID-SUFFIX. */
  suffix?: string;
  /** Name of the TAP inside W (default 'ktap0'; each W is its own namespace, so no clash between runs). */
  tapName?: string;
  /** Open the TAP with IFF_VNET_HDR. */
  vnetHdr?: boolean;
  /** MTU of k0, w0 and the TAP (default 1500). */
  mtu?: number;
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
}

export interface Background {
  readonly child: ChildProcess;
  /** stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process exits (it is killed after its timeout). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  kill(): void;
}

export interface Wire {
  /** Namespace names (for `ip netns exec`, `ip -n`). */
  readonly K: string;
  readonly W: string;
  readonly tapName: string;
  /** The TAP, opened in W (non-blocking); closed by destroy(). */
  readonly tap: TapDevice;
  /** 10.77.x.1: k0 in K. */
  readonly kernelAddr: string;
  /** 10.77.x.2: the stack's address behind the TAP. */
  readonly stackAddr: string;
  readonly prefix: 24;
  /** The x of 10.77.x.0/24. */
  readonly subnet: number;
  /** MAC of k0 ("aa:bb:..") and as 6 bytes. */
  readonly kernelMac: string;
  readonly kernelMacBytes: Uint8Array;
  /** Runs a command in a namespace ('K', 'W' or a namespace name); a string runs through sh -c. Returns stdout. */
  exec(ns: string, cmd: string | readonly string[], opts?: ExecOptions): string;
  /** Starts a command in a namespace in the background; killed after timeoutMs (default 30 s) and by destroy(). */
  spawn(ns: string, argv: readonly string[], opts?: { timeoutMs?: number }): Background;
  /** Adds a permanent neighbour entry in K: stackAddr -> mac (so the kernel does not ARP). */
  setStackNeighbor(mac: string): void;
  /** Inserts an nft netdev expression before the fwd rule of a direction (e.g. 'meta protocol ip numgen random mod 100 < 5 drop'). */
  addFault(direction: Direction, nftExpr: string): void;
  /** Removes the faults of one direction, or of both. */
  clearFaults(direction?: Direction): void;
  /** Tears everything down (idempotent, never throws). */
  destroy(): void;
}

// ---------------------------------------------------------------------------------------------
// Capability checks

export function hasRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Absolute path of a program found on PATH (plus the sbin directories), or undefined. */
export function which(prog: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, prog);
    if (existsSync(p)) return p;
  }
  return undefined;
}

let cachedReason: string | undefined | null = null;

/** Why the real-peer topology cannot be built here, or undefined if it can. Cached. */
export function netnsUnavailableReason(): string | undefined {
  if (cachedReason !== null) return cachedReason;
  cachedReason = computeReason();
  return cachedReason;
}

/** True if createWire() can work here (Linux, root, ip/nft/ethtool, /dev/net/tun, the addon, `ip netns add`). */
export function canRunNetns(): boolean {
  return netnsUnavailableReason() === undefined;
}

function computeReason(): string | undefined {
  if (process.platform !== 'linux') return `real-peer tests need Linux (this is ${process.platform})`;
  if (!hasRoot()) return 'real-peer tests need root (network namespaces, TAP devices, nftables)';
  const missing: string[] = [];
  for (const [prog, pkg] of [
    ['ip', 'iproute2'],
    ['nft', 'nftables'],
    ['ethtool', 'ethtool'],
  ] as const) {
    if (!which(prog)) missing.push(`${prog} (apt package ${pkg})`);
  }
  if (missing.length) return `real-peer tests need: ${missing.join(', ')}`;
  if (!existsSync('/dev/net/tun')) return 'real-peer tests need /dev/net/tun (tun module)';
  if (!tapAddonAvailable())
    return `the native TAP addon is not built (looked in ${addonCandidates().join(', ')}); run npm install`;
  const probe = `knp-${process.pid}`;
  try {
    run('ip', ['netns', 'add', probe]);
  } catch (e) {
    return `cannot create a network namespace: ${(e as Error).message}`;
  } finally {
    try {
      run('ip', ['netns', 'del', probe]);
    } catch {
      /* was not created */
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Commands

function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): string {
  try {
    return execFileSync(cmd, args as string[], {
      encoding: 'utf8',
      timeout: opts.timeoutMs ?? CMD_TIMEOUT_MS,
      killSignal: 'SIGKILL',
      input: opts.input ?? '',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as Error & { stderr?: string | Buffer; status?: number | null; signal?: string | null };
    const stderr = String(err.stderr ?? '').trim();
    const how = err.signal ? `killed by ${err.signal} (timeout?)` : `exit ${err.status}`;
    const wrapped = new Error(`\`${[cmd, ...args].join(' ')}\` failed (${how})${stderr ? `: ${stderr}` : ''}`);
    (wrapped as Error & { cause?: unknown }).cause = e;
    throw wrapped;
  }
}

function tryRun(cmd: string, args: readonly string[]): boolean {
  try {
    run(cmd, args);
    return true;
  } catch {
    return false;
  }
}

/** Deletes namespaces knk-PID-* / knw-PID-* / knp-PID-* left by processes that no longer exist. Best effort. */
export function cleanupStaleNamespaces(): string[] {
  return removeStaleNamespaces(['knk', 'knw', 'knp']);
}

// ---------------------------------------------------------------------------------------------
// Process-exit safety net

const live = new Set<Wire>();
let hooksInstalled = false;

function destroyAll(): void {
  for (const w of [...live]) w.destroy();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', destroyAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      destroyAll();
      process.removeListener(sig, onSignal);
      // Re-raise for the default action unless someone else handles the signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

export function parseMac(mac: string): Uint8Array {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new Error(`bad MAC ${mac}`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(b: Uint8Array, off = 0): string {
  const out: string[] = [];
  for (let i = 0; i < 6; i++) out.push((b[off + i] ?? 0).toString(16).padStart(2, '0'));
  return out.join(':');
}

let seq = 0;

// ---------------------------------------------------------------------------------------------
// The wire

export function createWire(opts: WireOptions = {}): Wire {
  const reason = netnsUnavailableReason();
  if (reason) throw new Error(`createWire: ${reason}`);
  installHooks();
  cleanupStaleNamespaces();

  const n = seq++;
  const suffix = opts.suffix ?? String(n);
  if (!/^[A-Za-z0-9_.-]{1,40}$/.test(suffix)) throw new Error(`createWire: bad suffix ${JSON.stringify(suffix)}`);
  const K = `${NS_PREFIX_K}${process.pid}-${suffix}`;
  const W = `${NS_PREFIX_W}${process.pid}-${suffix}`;
  const subnet = ((process.pid + n) % 254) + 1;
  const kernelAddr = `10.77.${subnet}.1`;
  const stackAddr = `10.77.${subnet}.2`;
  const tapName = opts.tapName ?? 'ktap0';
  const mtu = opts.mtu ?? 1500;

  const children = new Set<Background>();
  const faults: Record<Direction, string[]> = { toStack: [], toKernel: [] };
  let tap: TapDevice | undefined;
  let destroyed = false;

  const nsName = (ns: string): string => (ns === 'K' ? K : ns === 'W' ? W : ns);

  const exec = (ns: string, cmd: string | readonly string[], eo: ExecOptions = {}): string => {
    const argv = typeof cmd === 'string' ? ['sh', '-c', cmd] : [...cmd];
    return run('ip', ['netns', 'exec', nsName(ns), ...argv], eo);
  };

  const chainOf = (d: Direction): string => (d === 'toStack' ? 'to_stack' : 'to_kernel');
  const fwdOf = (d: Direction): string => (d === 'toStack' ? tapName : 'w0');
  const nftScript = (dirs: readonly Direction[]): string => {
    const lines: string[] = [];
    for (const d of dirs) {
      lines.push(`flush chain netdev ${NFT_TABLE} ${chainOf(d)}`);
      for (const f of faults[d]) lines.push(`add rule netdev ${NFT_TABLE} ${chainOf(d)} ${f}`);
      lines.push(`add rule netdev ${NFT_TABLE} ${chainOf(d)} fwd to "${fwdOf(d)}"`);
    }
    return lines.join('\n') + '\n';
  };
  const nft = (script: string): void => {
    run('ip', ['netns', 'exec', W, 'nft', '-f', '-'], { input: script });
  };

  const destroy = (): void => {
    if (destroyed) return;
    destroyed = true;
    live.delete(wire);
    for (const c of children) c.kill();
    children.clear();
    try {
      tap?.close();
    } catch {
      /* already gone */
    }
    tryRun('ip', ['netns', 'del', K]);
    tryRun('ip', ['netns', 'del', W]);
  };

  const wire: Wire = {
    K,
    W,
    tapName,
    get tap(): TapDevice {
      if (!tap) throw new Error('wire not built');
      return tap;
    },
    kernelAddr,
    stackAddr,
    prefix: 24,
    subnet,
    kernelMac: '',
    kernelMacBytes: new Uint8Array(6),
    exec,
    spawn(ns, argv, so = {}) {
      const child = spawnChild('ip', ['netns', 'exec', nsName(ns), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), so.timeoutMs ?? 30_000);
      timer.unref();
      let bg: Background;
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
        (resolve) => {
          child.on('close', (code, signal) => {
            clearTimeout(timer);
            children.delete(bg);
            resolve({ code, signal, stdout: out, stderr: err });
          });
          child.on('error', (e) => {
            clearTimeout(timer);
            children.delete(bg);
            resolve({ code: -1, signal: null, stdout: out, stderr: err + String(e) });
          });
        },
      );
      bg = {
        child,
        stdout: () => out,
        stderr: () => err,
        exited,
        kill: () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        },
      };
      children.add(bg);
      return bg;
    },
    setStackNeighbor(mac) {
      parseMac(mac);
      run('ip', ['-n', K, 'neigh', 'replace', stackAddr, 'lladdr', mac, 'dev', 'k0', 'nud', 'permanent']);
    },
    addFault(direction, nftExpr) {
      faults[direction].push(nftExpr);
      try {
        nft(nftScript([direction]));
      } catch (e) {
        faults[direction].pop();
        nft(nftScript([direction]));
        throw e;
      }
    },
    clearFaults(direction) {
      const dirs: Direction[] = direction ? [direction] : ['toStack', 'toKernel'];
      for (const d of dirs) faults[d] = [];
      nft(nftScript(dirs));
    },
    destroy,
  };
  live.add(wire);

  try {
    run('ip', ['netns', 'add', K]);
    run('ip', ['netns', 'add', W]);
    for (const ns of [K, W]) {
      // No IPv6: no router solicitations / MLD / DAD noise on the wire, only what a test sends.
      exec(ns, [
        'sh',
        '-c',
        'for f in /proc/sys/net/ipv6/conf/all/disable_ipv6 /proc/sys/net/ipv6/conf/default/disable_ipv6; do [ -e $f ] && echo 1 > $f; done; true',
      ]);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    run('ip', ['link', 'add', 'name', 'k0', 'netns', K, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'w0', 'netns', W, 'mtu', String(mtu)]);
    run('ip', ['-n', K, 'addr', 'add', `${kernelAddr}/24`, 'dev', 'k0']);
    exec(K, ['ethtool', '-K', 'k0', 'tx', 'off', 'tso', 'off', 'gso', 'off']);
    run('ip', ['-n', K, 'link', 'set', 'k0', 'up']);
    run('ip', ['-n', W, 'link', 'set', 'w0', 'up']);

    tap = TapDevice.open(tapName, opts.vnetHdr ? { netns: netnsPath(W), vnetHdr: true } : { netns: netnsPath(W) });
    run('ip', ['-n', W, 'link', 'set', tapName, 'mtu', String(mtu), 'up']);

    nft(
      [
        `add table netdev ${NFT_TABLE}`,
        `add chain netdev ${NFT_TABLE} to_stack { type filter hook ingress device "w0" priority 0; policy accept; }`,
        `add chain netdev ${NFT_TABLE} to_kernel { type filter hook ingress device "${tapName}" priority 0; policy accept; }`,
        '',
      ].join('\n') + nftScript(['toStack', 'toKernel']),
    );

    const info = JSON.parse(run('ip', ['-n', K, '-j', 'link', 'show', 'k0'])) as Array<{ address?: string }>;
    const mac = info[0]?.address;
    if (!mac) throw new Error('cannot read the MAC of k0');
    (wire as { kernelMac: string }).kernelMac = mac;
    (wire as { kernelMacBytes: Uint8Array }).kernelMacBytes = parseMac(mac);
  } catch (e) {
    destroy();
    throw e;
  }
  return wire;
}
