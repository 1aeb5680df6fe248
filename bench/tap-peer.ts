/**
 * The kernel's side of a TAP for bulk tests and `keepnet bench tap`: a network namespace (named by the
 * caller, e.g. with its PID) in which keepnet opens its TAP; the kernel's address goes on the TAP itself
 * (so GSO frames are the kernel's own TCP segments, no forwarding in between), keepnet owns the other
 * address behind it. The peer is tap-bulk-peer.js on node:net, run with `ip netns exec NS node ...`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { removeStaleNamespaces } from './stale-netns.js';

export interface TapNamespace {
  readonly name: string;
  readonly tapName: string;
  readonly kernelAddr: string;
  readonly stackAddr: string;
  /** After keepnet opened the TAP in the namespace: addresses and links up. */
  up(): void;
  /** Deletes the namespace (and with it the TAP); idempotent, never throws. */
  destroy(): void;
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

/**
 * A namespace for one TAP configuration. Name it PREFIX-PID-... with PREFIX kto (tests) or knb (bench):
 * namespaces of that form left by a dead process are removed here first.
 */
export function tapNamespace(name: string, opts: { subnet?: number; mtu?: number } = {}): TapNamespace {
  removeStaleNamespaces(['kto', 'knb']);
  const subnet = opts.subnet ?? 79;
  const tapName = 'kto0';
  try {
    ip(['netns', 'del', name]);
  } catch {
    /* not there */
  }
  ip(['netns', 'add', name]);
  let gone = false;
  const kernelAddr = `10.${subnet}.0.1`;
  return {
    name,
    tapName,
    kernelAddr,
    stackAddr: `10.${subnet}.0.2`,
    up(): void {
      ip(['-n', name, 'link', 'set', 'lo', 'up']);
      ip(['-n', name, 'addr', 'add', `${kernelAddr}/24`, 'dev', tapName]);
      if (opts.mtu) ip(['-n', name, 'link', 'set', tapName, 'mtu', String(opts.mtu)]);
      ip(['-n', name, 'link', 'set', tapName, 'up']);
    },
    destroy(): void {
      if (gone) return;
      gone = true;
      try {
        ip(['netns', 'del', name]);
      } catch {
        /* already gone */
      }
    },
  };
}

export interface PeerResult {
  bytes: number;
  sha256?: string;
  ms?: number;
  error?: string;
}

/** Runs tap-bulk-peer.js in the namespace. */
export class KernelPeer {
  constructor(
    readonly ns: string,
    readonly script: string,
  ) {}

  private run(args: string[]): { done: Promise<string[]>; first: Promise<string> } {
    const child = spawn('ip', ['netns', 'exec', this.ns, process.execPath, this.script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: string[] = [];
    let buf = '';
    let firstResolve!: (s: string) => void;
    const first = new Promise<string>((r) => (firstResolve = r));
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (out.length === 0) firstResolve(line);
        out.push(line);
      }
    });
    const done = once(child, 'close').then(([code]) => {
      if (code !== 0) throw new Error(`tap-bulk-peer ${args.join(' ')} exited ${code}: ${err.slice(0, 400)}`);
      return out;
    });
    done.catch(() => firstResolve(''));
    return { done, first };
  }

  /** Accepts `count` connections on `port`; result: what the last one received. */
  sink(port: number, count = 1, raw = false): { listening: Promise<void>; result: Promise<PeerResult>; all: Promise<PeerResult[]> } {
    const r = this.run(['sink', String(port), String(count), ...(raw ? ['raw'] : [])]);
    const all = r.done.then((lines) => lines.slice(1).map((l) => JSON.parse(l) as PeerResult));
    return {
      listening: r.first.then((l) => {
        if (!l.includes('listening')) throw new Error('tap-bulk-peer sink did not start');
      }),
      result: all.then((a) => a[a.length - 1]!),
      all,
    };
  }

  /** Connects and writes `bytes` (or for `seconds`). raw: no pattern, no hash (benchmarks). */
  source(host: string, port: number, bytes: number, seconds = 0, raw = false): { result: Promise<PeerResult> } {
    const r = this.run(['source', host, String(port), String(bytes), String(seconds), ...(raw ? ['raw'] : [])]);
    return { result: r.done.then((lines) => JSON.parse(lines[lines.length - 1]!) as PeerResult) };
  }
}
