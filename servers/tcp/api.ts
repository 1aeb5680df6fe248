/**
 * The messages between the kernel shim (the net API, main thread) and the tcp server. No data travels
 * in them: each connection's bytes sit in its send and receive buffers in the tcp state (layout.ts),
 * which the shim writes and reads directly. Messages carry requests, replies and wake-ups.
 *
 * Every record starts with the common header of runtime/messages.ts ([0] dstGen i32 = 0, [4] srcGen
 * i32). Little-endian; offsets from the start of the payload. Addresses uint32, ports u16. A connection
 * is named by its connId (layout.ts: slot | generation << 16): a request for a stale connId is ignored.
 *
 * Every request is safe to handle twice (the host replays the record a crashed incarnation was
 * handling): CONNECT and LISTEN carry a token the server remembers in the slot they create, so a
 * replay finds the slot and answers again; the others act on state and are idempotent.
 *
 * REQUESTS (shim -> tcp)
 *   CONNECT  [8] token u32  [12] raddr  [16] rport u16  [18] lport u16 (0: ephemeral)  [20] laddr
 *            (0: the interface's, or 127.0.0.1 for a loopback peer)  [24] flags u16 (OPTF_*)
 *            [26] cc u8 (0 newreno, 1 cubic)  [28] keepIdleMs u32                        32 bytes
 *            REPLY: code 0 with connId and the four-tuple (the handshake goes on; PUB.CONNECTED and
 *            N_CONNECTED report its end), or EADDRINUSE, EADDRNOTAVAIL, EMFILE, ENETUNREACH.
 *   LISTEN   [8] token  [12] addr  [16] port u16 (0: ephemeral)  [18] backlog u16          20 bytes
 *            REPLY: code 0 with the listener's connId and address/port, EADDRINUSE, EMFILE.
 *   OP       [8] connId  [12] op u8 (OP_*)  [16] value i32                                  20 bytes
 *            OP_SHUTDOWN: FIN after queued data. OP_CLOSE: the application released the
 *            connection (close(2): RST if unread data, as Linux; else FIN). OP_ABORT: RST now.
 *            OP_KICK: read the KICK bits (new data written / data read). OP_NODELAY value 0/1.
 *            OP_KEEPALIVE value: idle ms (0: off). OP_TAKEN: the shim took an ACCEPTED connection
 *            (it leaves its listener's backlog). OP_UNLISTEN: close a listener (pending children reset).
 *            No reply.
 *
 * EVENTS (tcp -> shim)
 *   REPLY    [8] token  [12] code i32 (TcpErr)  [16] connId  [20] laddr  [24] lport u16  [26] rport u16
 *            [28] raddr                                                                  32 bytes
 *   NOTIFY   [8] connId: something changed; the shim takes the connection's SW.NOTIFY bits   12 bytes
 *   ACCEPTED [8] listenerId  [12] connId  [16] raddr  [20] rport u16  [22] lport u16  [24] laddr
 *                                                                                        28 bytes
 *            A passively opened connection completed its handshake. Sent again after a tcp restart
 *            until the shim answers OP_TAKEN: the shim ignores a connId it already has.
 */
export const TCP_MSG = Object.freeze({
  CONNECT: 0x230,
  LISTEN: 0x231,
  OP: 0x232,
  REPLY: 0x238,
  NOTIFY: 0x239,
  ACCEPTED: 0x23a,
});

export const T = Object.freeze({
  TOKEN: 8,
  C_RADDR: 12,
  C_RPORT: 16,
  C_LPORT: 18,
  C_LADDR: 20,
  C_FLAGS: 24,
  C_CC: 26,
  C_KEEPIDLE: 28,
  CONNECT_BYTES: 32,
  L_ADDR: 12,
  L_PORT: 16,
  L_BACKLOG: 18,
  LISTEN_BYTES: 20,
  O_CONN: 8,
  O_OP: 12,
  O_VALUE: 16,
  OP_BYTES: 20,
  R_TOKEN: 8,
  R_CODE: 12,
  R_CONN: 16,
  R_LADDR: 20,
  R_LPORT: 24,
  R_RPORT: 26,
  R_RADDR: 28,
  REPLY_BYTES: 32,
  N_CONN: 8,
  NOTIFY_BYTES: 12,
  A_LISTENER: 8,
  A_CONN: 12,
  A_RADDR: 16,
  A_RPORT: 20,
  A_LPORT: 22,
  A_LADDR: 24,
  ACCEPTED_BYTES: 28,
});

export const OPTF_NODELAY = 1;
export const OPTF_KEEPALIVE = 2;

export const OP = Object.freeze({
  SHUTDOWN: 1,
  CLOSE: 2,
  ABORT: 3,
  KICK: 4,
  NODELAY: 5,
  KEEPALIVE: 6,
  TAKEN: 7,
  UNLISTEN: 8,
});

/** Error codes on the wire (REPLY code, SW.ERR). */
export const TERR = Object.freeze({
  OK: 0,
  ECONNREFUSED: 1,
  ECONNRESET: 2,
  ETIMEDOUT: 3,
  EPIPE: 4,
  ENETUNREACH: 5,
  EHOSTUNREACH: 6,
  EADDRINUSE: 7,
  EADDRNOTAVAIL: 8,
  EMFILE: 9,
  ECONNABORTED: 10,
  EINVAL: 11,
});
export type TcpErrName = Exclude<keyof typeof TERR, 'OK'>;
export const TERR_NAME: readonly (TcpErrName | null)[] = (() => {
  const out: (TcpErrName | null)[] = [null];
  for (const [k, v] of Object.entries(TERR)) if (v !== 0) out[v] = k as TcpErrName;
  return out;
})();

