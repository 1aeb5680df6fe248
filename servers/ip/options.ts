/**
 * IPv4 option lists (RFC 791 §3.1): a syntax check and the "copied" subset used by fragmentation.
 *
 * Layout: EOL (type 0) ends the list and everything after it is padding; NOP (type 1) is one byte;
 * every other option is type, length (>= 2, counting both), data, and must end inside the header.
 * The top bit of the type is the *copied* flag: options with it set (security, LSRR, SSRR, stream
 * id) go into every fragment, the others (record route, timestamp) only into the first.
 *
 * The stack never emits options of its own; these helpers only vet and carry options of datagrams it
 * receives (input) or is asked to fragment.
 */

export const IPOPT_EOL = 0;
export const IPOPT_NOP = 1;
/** Copied flag in an option type. */
export const IPOPT_COPIED = 0x80;

/** True when the `len` option bytes at `off` form a well-formed list (see the header). */
export function ipv4OptionsValid(b: Uint8Array, off: number, len: number): boolean {
  let i = off;
  const end = off + len;
  while (i < end) {
    const type = b[i];
    if (type === IPOPT_EOL) return true;
    if (type === IPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return false;
    const olen = b[i + 1];
    if (olen < 2 || i + olen > end) return false;
    i += olen;
  }
  return true;
}

/**
 * Copy the options with the copied flag from the `len` bytes at `off` into `out` at `outOff`, padded
 * with EOL to a multiple of 4. Returns the bytes written (0..40), or -1 if the list is malformed.
 * `out` must have room for `len` rounded up to 4 bytes.
 */
export function ipv4CopyOptions(b: Uint8Array, off: number, len: number, out: Uint8Array, outOff: number): number {
  let i = off;
  const end = off + len;
  let o = outOff;
  while (i < end) {
    const type = b[i];
    if (type === IPOPT_EOL) break;
    if (type === IPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return -1;
    const olen = b[i + 1];
    if (olen < 2 || i + olen > end) return -1;
    if ((type & IPOPT_COPIED) !== 0) {
      for (let k = 0; k < olen; k++) out[o++] = b[i + k];
    }
    i += olen;
  }
  while (((o - outOff) & 3) !== 0) out[o++] = IPOPT_EOL;
  return o - outOff;
}
