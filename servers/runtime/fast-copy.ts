/**
 * Large copies between byte arrays. V8 copies between SharedArrayBuffers word by word (relaxed atomic
 * loads and stores) when both ends are equally aligned modulo 8, else one byte at a time (2-3 GB/s
 * instead of 10+ for 64 KiB here); the native addon's memmove (native/tap.c copy) uses the vector
 * unit: 64 KiB copies within a 512 KiB span measured 33-37 GB/s against 14-15 GB/s for
 * TypedArray.prototype.set (`node` micro-benchmark on this machine; both ~13 GB/s once the span
 * outgrows the 2 MiB L2). So every copy of NATIVE_MIN_BYTES or more goes through memmove when the
 * addon is built (the segment copies of tcp, the shared-memory wire's two copies per frame, the
 * receive buffer's), and through TypedArray.prototype.set otherwise and for small copies.
 */
import { loadTapAddon } from '../driver/tap-device.js';

type CopyFn = (dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number) => void;

/** Below this, the native call costs more than it saves. */
const NATIVE_MIN_BYTES = 1024;

let native: CopyFn | null | undefined;

function resolveNative(): CopyFn | null {
  try {
    const a = loadTapAddon() as unknown as { copy?: CopyFn };
    return typeof a.copy === 'function' ? a.copy : null;
  } catch {
    return null;
  }
}

/** dst[dstOff, +len) = src[srcOff, +len) (ranges must not overlap). */
export function copyAnyAlign(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
  if (len >= NATIVE_MIN_BYTES) {
    if (native === undefined) native = resolveNative();
    if (native !== null) {
      native(dst, dstOff, src, srcOff, len);
      return;
    }
  }
  dst.set(src.subarray(srcOff, srcOff + len), dstOff);
}
