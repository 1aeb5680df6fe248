/**
 * Large copies between byte arrays at any alignment. V8 copies between SharedArrayBuffers word by word
 * only when both ends are equally aligned modulo 8, else one byte at a time (2-3 GB/s instead of 10+
 * for 64 KiB here). Where the alignment cannot be chosen (a received TCP payload goes to the receive
 * buffer at a place set by its sequence number), large misaligned copies go through the native addon's
 * memmove (native/tap.c copy) when it is built; otherwise, and for small or co-aligned copies, through
 * TypedArray.prototype.set.
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
  if (len >= NATIVE_MIN_BYTES && ((dst.byteOffset + dstOff - src.byteOffset - srcOff) & 7) !== 0) {
    if (native === undefined) native = resolveNative();
    if (native !== null) {
      native(dst, dstOff, src, srcOff, len);
      return;
    }
  }
  dst.set(src.subarray(srcOff, srcOff + len), dstOff);
}
