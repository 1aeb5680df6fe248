/**
 * TapDevice: a thin, typed wrapper over the `keepnet_tap` N-API addon (native/tap.c, built by
 * node-gyp into build/Release/keepnet_tap.node at `npm install`).
 *
 * The fd is non-blocking and the only wait is poll(2) with the caller's timeout, so a worker looping
 * on readBatch(…, timeoutMs) can always be terminated, and process exit never hangs on a TAP.
 * Frames are moved in batches into/out of one caller-owned Uint8Array (which may sit on a
 * SharedArrayBuffer) with Int32Array offsets/lengths: no JS allocation per frame.
 *
 * An fd is a process-wide number: a TAP opened on one thread can be used from another thread with
 * `TapDevice.fromFd(fd, name)` (loading the addon in that worker).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Flags for TUNSETOFFLOAD (linux/if_tun.h). */
export const TUN_F = {
  CSUM: 0x01,
  TSO4: 0x02,
  TSO6: 0x04,
  TSO_ECN: 0x08,
  UFO: 0x10,
  USO4: 0x20,
  USO6: 0x40,
} as const;

/** The raw addon API (see native/tap.c). Errors are `Error`s with `code` = errno name. */
export interface TapAddon {
  open(
    name: string,
    netnsPath?: string | null,
    flags?: { vnetHdr?: boolean; multiQueue?: boolean; vnetHdrSize?: number; offload?: number },
  ): {
    fd: number;
    name: string;
    /** 0 without IFF_VNET_HDR. */
    vnetHdrSize: number;
    /** TUN_F flags the kernel granted (TUNSETOFFLOAD), 0 if none. */
    offload: number;
    /** Why the requested offloads were not all granted (errno name), if they were not. */
    offloadError?: string;
  };
  setOffload(fd: number, flags: number): void;
  setVnetHdrSize(fd: number, size: number): void;
  /** Returns the number of frames read; lengths[i] is set to each frame's length (truncated to the slot). */
  readBatch(
    fd: number,
    buf: Uint8Array,
    offsets: Int32Array,
    lengths: Int32Array,
    maxFrames: number,
    timeoutMs: number,
  ): number;
  /** Returns the number of frames written (fewer than count only on EAGAIN). */
  writeBatch(fd: number, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number;
  close(fd: number): void;
  ifIndex(name: string, netnsPath?: string | null): number;
  /** sched_yield(2): not TAP business, see native/tap.c (the host loop's busy poll uses it). */
  schedYield(): void;
  readonly constants: Readonly<Record<string, number>>;
}

/** An Error thrown by the addon: `code` is the errno name (ENOENT, EPERM, EBUSY, ...). */
export interface TapError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
  /** writeBatch only: frames that went out before the failing one. */
  framesWritten?: number;
}

const ADDON_FILE = 'keepnet_tap.node';

/** The package root: the nearest ancestor of this module holding binding.gyp or keepnet's package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'binding.gyp'))) return dir;
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'keepnet') return dir;
      } catch {
        /* not ours */
      }
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  // Fallback: the usual layouts are dist/servers/driver/ (compiled) and servers/driver/ (source).
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes(`${join('dist', 'servers')}`) ? resolve(here, '../../..') : resolve(here, '../..');
}

/** Where the addon is looked for, in order ($KEEPNET_TAP_ADDON first when set). */
export function addonCandidates(): string[] {
  const root = packageRoot();
  const list = [join(root, 'build', 'Release', ADDON_FILE), join(root, 'build', 'Debug', ADDON_FILE)];
  const env = process.env['KEEPNET_TAP_ADDON'];
  return env ? [resolve(env), ...list] : list;
}

/** The path of the built addon, or undefined if it was not built. */
export function addonPath(): string | undefined {
  return addonCandidates().find((p) => existsSync(p));
}

let cached: TapAddon | undefined;

/** Loads the addon (once per thread); throws a clear error if it was not built. */
export function loadTapAddon(): TapAddon {
  if (cached) return cached;
  const path = addonPath();
  if (!path) {
    const err = new Error(
      `keepnet: the native TAP addon (${ADDON_FILE}) is not built. ` +
        `Run \`npm install\` (its postinstall builds it) or, from ${packageRoot()}: \`node native/build.mjs\` ` +
        `(= node-gyp rebuild --nodedir=<dir of Node's include/node headers>). ` +
        `Looked in: ${addonCandidates().join(', ')}`,
    ) as TapError;
    err.code = 'ERR_KEEPNET_TAP_ADDON_MISSING';
    throw err;
  }
  const require = createRequire(import.meta.url);
  cached = require(path) as TapAddon;
  return cached;
}

/** True if the addon is built and loads. */
export function tapAddonAvailable(): boolean {
  try {
    loadTapAddon();
    return true;
  } catch {
    return false;
  }
}

/** `/run/netns/NAME` for a bare name (as made by `ip netns add NAME`); a path is kept as is. */
export function netnsPath(netns: string): string {
  return netns.includes('/') ? netns : `/run/netns/${netns}`;
}

export interface TapOpenOptions {
  /** Create the TAP inside this network namespace: a name from `ip netns add` or a path. */
  netns?: string;
  /** IFF_VNET_HDR: every frame is preceded by a struct virtio_net_hdr. */
  vnetHdr?: boolean;
  /** IFF_MULTI_QUEUE: the same name can be opened several times, one queue per fd. */
  multiQueue?: boolean;
  /** With vnetHdr: TUNSETVNETHDRSZ (10 or 12; default: the kernel's 10). */
  vnetHdrSize?: number;
  /**
   * With vnetHdr: TUNSETOFFLOAD flags (TUN_F) to ask for; the kernel may refuse them: the addon then
   * falls back to TUN_F.CSUM alone, then to none, and `offload` / `offloadError` say what happened.
   */
  offload?: number;
}

/** Interface index of `name` (optionally in a namespace). */
export function ifIndex(name: string, netns?: string): number {
  return loadTapAddon().ifIndex(name, netns === undefined ? undefined : netnsPath(netns));
}

export class TapDevice {
  readonly name: string;
  /** The virtio_net_hdr size in front of every frame (0: plain frames). */
  readonly vnetHdrSize: number;
  /** TUN_F flags granted by TUNSETOFFLOAD. */
  readonly offload: number;
  /** Errno name of a refused TUNSETOFFLOAD, if any. */
  readonly offloadError: string | undefined;
  #fd: number;
  readonly #addon: TapAddon;
  // Single-frame helpers reuse these (no allocation per call).
  readonly #one = new Int32Array(1);
  readonly #len = new Int32Array(1);

  private constructor(addon: TapAddon, fd: number, name: string, vnetHdrSize = 0, offload = 0, offloadError?: string) {
    this.#addon = addon;
    this.#fd = fd;
    this.name = name;
    this.vnetHdrSize = vnetHdrSize;
    this.offload = offload;
    this.offloadError = offloadError;
  }

  /** Opens (creating if needed) TAP `name` ('' lets the kernel pick tapN), IFF_TAP|IFF_NO_PI, non-blocking. */
  static open(name: string, opts: TapOpenOptions = {}): TapDevice {
    const addon = loadTapAddon();
    const flags: { vnetHdr?: boolean; multiQueue?: boolean; vnetHdrSize?: number; offload?: number } = {};
    if (opts.vnetHdr) flags.vnetHdr = true;
    if (opts.multiQueue) flags.multiQueue = true;
    if (opts.vnetHdr && opts.vnetHdrSize) flags.vnetHdrSize = opts.vnetHdrSize;
    if (opts.vnetHdr && opts.offload) flags.offload = opts.offload;
    const r = addon.open(name, opts.netns === undefined ? undefined : netnsPath(opts.netns), flags);
    // An addon built before vnet support reports neither field: treat as what was asked without offload.
    const hdr = r.vnetHdrSize ?? (opts.vnetHdr ? 10 : 0);
    return new TapDevice(addon, r.fd, r.name, hdr, r.offload ?? 0, r.offloadError);
  }

  /** Wraps an fd opened elsewhere in this process (e.g. passed to a worker thread). Not owned twice: close once. */
  static fromFd(fd: number, name: string, vnetHdrSize = 0): TapDevice {
    return new TapDevice(loadTapAddon(), fd, name, vnetHdrSize);
  }

  /** The file descriptor, or -1 once closed. */
  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  #check(): number {
    if (this.#fd < 0) {
      const err = new Error(`keepnet: TAP ${this.name} is closed`) as TapError;
      err.code = 'EBADF';
      throw err;
    }
    return this.#fd;
  }

  /**
   * Reads up to maxFrames frames. Slot i is buf[offsets[i] .. offsets[i]+lengths[i]) on input; on
   * output lengths[i] is the frame's length (slots not filled keep their capacity). The kernel
   * silently truncates a frame longer than its slot, so make slots larger than the largest frame
   * (MTU + 14, + 4 for a VLAN tag, + the vnet header if any): a length equal to the capacity then
   * means truncated. If no frame is queued, waits up to timeoutMs (0 = never wait; keep it short,
   * e.g. <= 100 ms, since the calling thread cannot be terminated while it waits).
   * Returns the number of frames read (0 on timeout).
   */
  readBatch(
    buf: Uint8Array,
    offsets: Int32Array,
    lengths: Int32Array,
    maxFrames: number = offsets.length,
    timeoutMs = 0,
  ): number {
    return this.#addon.readBatch(this.#check(), buf, offsets, lengths, maxFrames, timeoutMs);
  }

  /** Writes frames buf[offsets[i] .. +lengths[i]) for i < count; returns how many went (fewer only on EAGAIN). */
  writeBatch(buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number = offsets.length): number {
    return this.#addon.writeBatch(this.#check(), buf, offsets, lengths, count);
  }

  /** Reads one frame into buf (from offset 0); returns its length, or 0 on timeout. */
  readFrame(buf: Uint8Array, timeoutMs = 0): number {
    this.#one[0] = 0;
    this.#len[0] = buf.length;
    const n = this.#addon.readBatch(this.#check(), buf, this.#one, this.#len, 1, timeoutMs);
    return n === 0 ? 0 : this.#len[0]!;
  }

  /** Writes one frame; returns false if the device queue was full (EAGAIN). */
  writeFrame(frame: Uint8Array): boolean {
    this.#one[0] = 0;
    this.#len[0] = frame.length;
    return this.#addon.writeBatch(this.#check(), frame, this.#one, this.#len, 1) === 1;
  }

  /** TUNSETOFFLOAD with TUN_F flags (needs vnetHdr). */
  setOffload(flags: number): void {
    this.#addon.setOffload(this.#check(), flags);
  }

  /** TUNSETVNETHDRSZ (10 or 12 bytes). */
  setVnetHdrSize(size: number): void {
    this.#addon.setVnetHdrSize(this.#check(), size);
  }

  /** Closes the fd (a non-persistent TAP then disappears). Idempotent. */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    this.#addon.close(fd);
  }
}
