/**
 * Node's error shapes for the net API (on top of dgram-errors.ts, which holds the shared builders):
 *   - system errors as lib/internal/errors.js builds them: ExceptionWithHostPort ("connect ECONNREFUSED
 *     10.0.0.1:80[ - Local (a:p)]"), UVExceptionWithHostPort ("listen EADDRINUSE: address already in use
 *     0.0.0.0:8080"), ErrnoException ("read ECONNRESET") and the DNS error ("getaddrinfo ENOTFOUND x");
 *   - the ERR_* argument and state errors of lib/net.js, with Node's classes and messages;
 *   - Node's validators (validatePort, validateNumber, getTimerDuration...) as net.js calls them.
 */
import { getSystemErrorMap } from 'node:util';
import { codedError, errno, ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE, ERR_SOCKET_BAD_PORT, type CodedError, type SystemError } from './dgram-errors.js';

export { codedError, errno, errnoException, ERR_INVALID_ARG_TYPE, ERR_INVALID_ARG_VALUE, ERR_OUT_OF_RANGE } from './dgram-errors.js';
export type { CodedError, SystemError } from './dgram-errors.js';

/** libuv's EAI_NONAME, which Node reports as the fabricated code ENOTFOUND. */
const UV_EAI_NONAME = -3008;

/** Node's ExceptionWithHostPort: "<syscall> <CODE> <address>:<port>[ - Local (<additional>)]". */
export function exceptionWithHostPort(code: string, syscall: string, address: string | undefined, port: number | undefined, additional?: string): SystemError {
  let details = '';
  if (port && port > 0) details = ` ${address}:${port}`;
  else if (address) details = ` ${address}`;
  if (additional) details += ` - Local (${additional})`;
  const e = new Error(`${syscall} ${code}${details}`) as SystemError;
  e.errno = errno(code);
  e.code = code;
  e.syscall = syscall;
  e.address = address;
  if (port) e.port = port;
  return e;
}

/** libuv's description of an error code ("address already in use"), as Node's uvErrmapGet gives it. */
export function uvMessage(code: string): string {
  const entry = getSystemErrorMap().get(errno(code));
  return entry ? entry[1] : 'unknown error';
}

/** Node's UVExceptionWithHostPort: "<syscall> <CODE>: <uv message> <address>:<port>" (listen errors). */
export function uvExceptionWithHostPort(code: string, syscall: string, address: string | undefined, port: number | undefined): SystemError {
  let details = '';
  if (port && port > 0) details = ` ${address}:${port}`;
  else if (address) details = ` ${address}`;
  const e = new Error(`${syscall} ${code}: ${uvMessage(code)}${details}`) as SystemError;
  e.code = code;
  e.errno = errno(code);
  e.syscall = syscall;
  e.address = address;
  if (port) e.port = port;
  return e;
}

export type DnsError = Error & { code: string; errno: number; syscall: string; hostname: string };

/** A failed name lookup, as dns.lookup reports it: "getaddrinfo ENOTFOUND <hostname>". */
export function dnsNotFound(hostname: string): DnsError {
  const e = new Error(`getaddrinfo ENOTFOUND ${hostname}`) as DnsError;
  e.errno = UV_EAI_NONAME;
  e.code = 'ENOTFOUND';
  e.syscall = 'getaddrinfo';
  e.hostname = hostname;
  return e;
}

/** Node's ERR_MISSING_ARGS with its list formatting (an inner array reads "a" or "b"). */
export function ERR_MISSING_ARGS(...args: (string | string[])[]): CodedError {
  const wrap = (a: string): string => `"${a}"`;
  const names = args.map((a) => (Array.isArray(a) ? a.map(wrap).join(' or ') : wrap(a)));
  let msg = 'The ';
  if (names.length === 1) msg += `${names[0]} argument`;
  else if (names.length === 2) msg += `${names[0]} and ${names[1]} arguments`;
  else msg += `${names.slice(0, -1).join(', ')}, and ${names[names.length - 1]} arguments`;
  return codedError(TypeError, 'ERR_MISSING_ARGS', `${msg} must be specified`);
}

export const ERR_INVALID_IP_ADDRESS = (ip: unknown): CodedError => codedError(TypeError, 'ERR_INVALID_IP_ADDRESS', `Invalid IP address: ${String(ip)}`);
export const ERR_SERVER_ALREADY_LISTEN = (): CodedError =>
  codedError(Error, 'ERR_SERVER_ALREADY_LISTEN', 'Listen method has been called more than once without closing.');
export const ERR_SERVER_NOT_RUNNING = (): CodedError => codedError(Error, 'ERR_SERVER_NOT_RUNNING', 'Server is not running.');
export const ERR_SOCKET_CLOSED = (): CodedError => codedError(Error, 'ERR_SOCKET_CLOSED', 'Socket is closed');
export const ERR_SOCKET_CLOSED_BEFORE_CONNECTION = (): CodedError =>
  codedError(Error, 'ERR_SOCKET_CLOSED_BEFORE_CONNECTION', 'Socket closed before the connection was established');

/** Node's writeAfterFIN error: a plain Error with code EPIPE. */
export function endedByOtherParty(): Error & { code: string } {
  return Object.assign(new Error('This socket has been ended by the other party'), { code: 'EPIPE' });
}

// ---- validators (lib/internal/validators.js) ----------------------------------------------------

export function validatePort(port: unknown, name = 'Port', allowZero = true): number {
  if (
    (typeof port !== 'number' && typeof port !== 'string') ||
    (typeof port === 'string' && port.trim().length === 0) ||
    +port !== +port >>> 0 ||
    +port > 0xffff ||
    (+port === 0 && !allowZero)
  ) {
    throw ERR_SOCKET_BAD_PORT(name, port, allowZero);
  }
  return +port | 0;
}

export function validateNumber(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number') throw ERR_INVALID_ARG_TYPE(name, 'number', value);
}

export function validateFunction(value: unknown, name: string): asserts value is (...args: unknown[]) => unknown {
  if (typeof value !== 'function') throw ERR_INVALID_ARG_TYPE(name, 'Function', value);
}

export function validateBoolean(value: unknown, name: string): asserts value is boolean {
  if (typeof value !== 'boolean') throw ERR_INVALID_ARG_TYPE(name, 'boolean', value);
}

export function validateAbortSignal(value: unknown, name: string): asserts value is AbortSignal {
  if (value !== undefined && (value === null || typeof value !== 'object' || !('aborted' in value))) {
    throw ERR_INVALID_ARG_TYPE(name, 'AbortSignal', value);
  }
}

const TIMEOUT_MAX = 2 ** 31 - 1;

/** timers' getTimerDuration: a non-negative finite number of ms (too large: 1 ms with a warning, as Node). */
export function getTimerDuration(msecs: unknown, name: string): number {
  validateNumber(msecs, name);
  if (msecs < 0 || !Number.isFinite(msecs)) throw ERR_OUT_OF_RANGE(name, 'a non-negative finite number', msecs);
  if (msecs > TIMEOUT_MAX) {
    process.emitWarning(`${msecs} does not fit into a 32-bit signed integer.\nTimer duration was truncated to ${TIMEOUT_MAX}.`, 'TimeoutOverflowWarning');
    return TIMEOUT_MAX;
  }
  return msecs;
}
