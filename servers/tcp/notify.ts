/** The NOTIFY bits tcp sets in a connection's SW.NOTIFY word for the shim (layout.ts). */
export const N = Object.freeze({
  /** The handshake completed (PUB.CONNECTED is set). */
  CONNECTED: 1,
  /** Data or the peer's FIN can be read. */
  READABLE: 2,
  /** Send-buffer space was freed. */
  WRITABLE: 4,
  /** SW.ERR is set: the connection failed. */
  ERROR: 8,
  /** The connection reached CLOSED. */
  CLOSED: 16,
});
