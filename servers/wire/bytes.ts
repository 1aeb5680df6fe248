/**
 * Big-endian field access shared by the wire views, and the base class every view extends.
 *
 * All reads/writes are on a `Uint8Array` at an absolute index (the view's `off` plus a field offset),
 * so they work on views over SharedArrayBuffers at any offset and never allocate.
 */

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

export function readU16(b: Uint8Array, i: number): number {
  return (b[i] << 8) | b[i + 1];
}

export function readU32(b: Uint8Array, i: number): number {
  return ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
}

export function writeU16(b: Uint8Array, i: number, v: number): void {
  b[i] = v >>> 8;
  b[i + 1] = v;
}

export function writeU32(b: Uint8Array, i: number, v: number): void {
  b[i] = v >>> 24;
  b[i + 1] = v >>> 16;
  b[i + 2] = v >>> 8;
  b[i + 3] = v;
}

/** True when [off, off+len) is a valid range of `b` (integers, non-negative, inside). */
export function inBounds(b: Uint8Array, off: number, len: number): boolean {
  return off >= 0 && len >= 0 && off + len <= b.length && Number.isInteger(off) && Number.isInteger(len);
}

/** Throws RangeError unless `b` has `need` bytes from `off` (for emit paths: a caller bug, not input). */
export function needRoom(b: Uint8Array, off: number, need: number, what: string): void {
  if (!inBounds(b, off, need)) {
    throw new RangeError(`${what}: need ${need} bytes at offset ${off}, buffer has ${b.length}`);
  }
}

/**
 * Base of every protocol view: a window [off, off+len) of `bytes`.
 *
 * Contract (as smoltcp's `new_checked`): a subclass's `reset(bytes, off, len)` validates once and
 * returns a WireError or null; after it returned null, no accessor can read outside the window.
 * `bind` skips validation and is meant for building packets into a buffer the caller sized.
 * Views are reusable: servers keep one per protocol and `reset` it per packet (no allocation).
 */
export class ByteView {
  bytes: Uint8Array = EMPTY_BYTES;
  off = 0;
  len = 0;

  /** Point the view at a window without validating it (for emit). Returns `this`. */
  bind(bytes: Uint8Array, off: number, len: number): this {
    this.bytes = bytes;
    this.off = off;
    this.len = len;
    return this;
  }

  /** Detach from any buffer (done automatically when a `reset` fails). */
  clear(): void {
    this.bytes = EMPTY_BYTES;
    this.off = 0;
    this.len = 0;
  }
}
