/**
 * The closed set of reasons a wire-format check or parse can fail.
 *
 * Parsing never throws on malformed input: checks and `parse` methods return one of these codes (or
 * `null` on success) so a server can count drops by reason and move on. The codes are plain strings,
 * so they survive structured clone across worker threads.
 *
 * Conventions used by every protocol in this folder:
 *  - 'truncated'  the buffer holds fewer bytes than the format (or a length field in it) says exist.
 *  - 'bad-length' a length field is below its minimum or inconsistent with another length field.
 *  - 'bad-…'      a specific field holds a value the format forbids (see each protocol's `check`).
 *  - 'unsupported' well-formed, but a type/variant this stack does not implement.
 *
 * Programming errors (e.g. emitting into a buffer that is too small) are not wire errors; those throw
 * RangeError.
 */
export const WIRE_ERRORS = [
  'truncated',
  'bad-length',
  'bad-checksum',
  'bad-version',
  'bad-ihl',
  'bad-data-offset',
  'bad-option',
  'bad-hardware',
  'bad-protocol',
  'bad-operation',
  'bad-code',
  'unsupported',
] as const;

export type WireError = (typeof WIRE_ERRORS)[number];

/** Number of distinct wire errors: size a `Uint32Array` of drop counters with this. */
export const WIRE_ERROR_COUNT = WIRE_ERRORS.length;

const INDEX: Readonly<Record<WireError, number>> = Object.fromEntries(
  WIRE_ERRORS.map((e, i) => [e, i]),
) as Record<WireError, number>;

/** Stable index of an error code in `WIRE_ERRORS`, for counter arrays (`drops[wireErrorIndex(e)]++`). */
export function wireErrorIndex(e: WireError): number {
  return INDEX[e];
}

/** Type guard: is this value one of the wire error codes? */
export function isWireError(x: unknown): x is WireError {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(INDEX, x);
}
