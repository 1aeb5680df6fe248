/**
 * Node's error shapes for the dgram API, so that code written against node:dgram can branch on the
 * same classes, `code`s, `errno`s and `syscall`s:
 *   - argument errors (TypeError / RangeError / Error) with a `code` such as ERR_INVALID_ARG_TYPE, and
 *     Node's messages (built as lib/internal/errors.js builds them);
 *   - system errors as Node's ErrnoException / ExceptionWithHostPort: an Error whose message is
 *     "<syscall> <CODE>[ <address>[:<port>]]", with errno (negative, libuv style), code and syscall.
 */
import { constants } from 'node:os';
import { inspect } from 'node:util';

export type CodedError = Error & { code: string };

/** An error of class `Base` with a `code`, shown as Node shows its own ("TypeError [CODE]: ..."). */
export function codedError(Base: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, code: string, message: string): CodedError {
  const e = new Base(message) as CodedError;
  e.code = code;
  const name = Base.name;
  if (typeof e.stack === 'string' && e.stack.startsWith(`${name}: `)) e.stack = `${name} [${code}]: ${e.stack.slice(name.length + 2)}`;
  Object.defineProperty(e, 'toString', {
    value(this: Error) {
      return `${this.name} [${code}]: ${this.message}`;
    },
    enumerable: false,
    writable: true,
    configurable: true,
  });
  return e;
}

/** Node's description of a received value in argument errors. */
export function determineSpecificType(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  switch (typeof value) {
    case 'bigint':
      return `type bigint (${value}n)`;
    case 'number':
      if (value === 0) return 1 / value === -Infinity ? 'type number (-0)' : 'type number (0)';
      if (value !== value) return 'type number (NaN)';
      if (value === Infinity) return 'type number (Infinity)';
      if (value === -Infinity) return 'type number (-Infinity)';
      return `type number (${value})`;
    case 'boolean':
      return value ? 'type boolean (true)' : 'type boolean (false)';
    case 'symbol':
      return `type symbol (${String(value)})`;
    case 'function':
      return `function ${value.name}`;
    case 'object': {
      const ctor = (value as { constructor?: { name?: string } }).constructor;
      if (ctor && 'name' in ctor) return `an instance of ${ctor.name}`;
      return inspect(value, { depth: -1 });
    }
    case 'string': {
      let s = value;
      if (s.length > 28) s = `${s.slice(0, 25)}...`;
      return s.indexOf("'") === -1 ? `type string ('${s}')` : `type string (${JSON.stringify(s)})`;
    }
    default:
      return `type ${typeof value} (${inspect(value, { colors: false })})`;
  }
}

function formatList(a: string[], type = 'and'): string {
  if (a.length <= 2) return a.join(` ${type} `);
  return `${a.slice(0, -1).join(', ')}, ${type} ${a[a.length - 1]}`;
}

const K_TYPES = ['string', 'function', 'number', 'object', 'Function', 'Object', 'boolean', 'bigint', 'symbol'];
const CLASS_RE = /^([A-Z][a-z0-9]*)+$/;

export function ERR_INVALID_ARG_TYPE(name: string, expected: string | string[], actual: unknown): CodedError {
  const exp = Array.isArray(expected) ? expected : [expected];
  let msg = 'The ';
  if (name.endsWith(' argument')) msg += `${name} `;
  else msg += `"${name}" ${name.includes('.') ? 'property' : 'argument'} `;
  msg += 'must be ';
  const types: string[] = [];
  const instances: string[] = [];
  const other: string[] = [];
  for (const v of exp) {
    if (K_TYPES.includes(v)) types.push(v.toLowerCase());
    else if (CLASS_RE.test(v)) instances.push(v);
    else other.push(v);
  }
  if (instances.length > 0) {
    const pos = types.indexOf('object');
    if (pos !== -1) {
      types.splice(pos, 1);
      instances.push('Object');
    }
  }
  if (types.length > 0) {
    msg += `${types.length > 1 ? 'one of type' : 'of type'} ${formatList(types, 'or')}`;
    if (instances.length > 0 || other.length > 0) msg += ' or ';
  }
  if (instances.length > 0) {
    msg += `an instance of ${formatList(instances, 'or')}`;
    if (other.length > 0) msg += ' or ';
  }
  if (other.length > 0) {
    if (other.length > 1) msg += `one of ${formatList(other, 'or')}`;
    else msg += `${other[0].toLowerCase() !== other[0] ? 'an ' : ''}${other[0]}`;
  }
  msg += `. Received ${determineSpecificType(actual)}`;
  return codedError(TypeError, 'ERR_INVALID_ARG_TYPE', msg);
}

export function ERR_SOCKET_BAD_PORT(name: string, port: unknown, allowZero: boolean): CodedError {
  return codedError(RangeError, 'ERR_SOCKET_BAD_PORT', `${name} should be ${allowZero ? '>=' : '>'} 0 and < 65536. Received ${determineSpecificType(port)}.`);
}

export function ERR_OUT_OF_RANGE(name: string, range: string, received: unknown): CodedError {
  return codedError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${String(received)}`);
}

export function ERR_BUFFER_OUT_OF_BOUNDS(name: string): CodedError {
  return codedError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', `"${name}" is outside of buffer bounds`);
}

export function ERR_INVALID_ARG_VALUE(name: string, value: unknown, reason: string): CodedError {
  return codedError(TypeError, 'ERR_INVALID_ARG_VALUE', `The ${name.includes('.') ? 'property' : 'argument'} '${name}' ${reason}. Received ${inspect(value)}`);
}

export const ERR_SOCKET_ALREADY_BOUND = (): CodedError => codedError(Error, 'ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound');
export const ERR_SOCKET_DGRAM_IS_CONNECTED = (): CodedError => codedError(Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
export const ERR_SOCKET_DGRAM_NOT_CONNECTED = (): CodedError => codedError(Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
export const ERR_SOCKET_DGRAM_NOT_RUNNING = (): CodedError => codedError(Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
export const ERR_SOCKET_BAD_BUFFER_SIZE = (): CodedError => codedError(TypeError, 'ERR_SOCKET_BAD_BUFFER_SIZE', 'Buffer size must be a positive integer');
export const ERR_MISSING_ARGS = (name: string): CodedError => codedError(TypeError, 'ERR_MISSING_ARGS', `The "${name}" argument must be specified`);
export function ERR_SOCKET_BAD_TYPE(message = 'Bad socket type specified. Valid types are: udp4, udp6'): CodedError {
  return codedError(TypeError, 'ERR_SOCKET_BAD_TYPE', message);
}
/** Node's class for system errors with an ERR_ code (its constructor's name is NodeError). */
class NodeError extends Error {}

/** Node's ERR_SOCKET_BUFFER_SIZE, a SystemError ("... returned EBADF (bad file descriptor)"). */
export function ERR_SOCKET_BUFFER_SIZE(syscall: string, code: string): CodedError {
  const desc = code === 'EBADF' ? 'bad file descriptor' : code;
  const e = codedError(NodeError as ErrorConstructor, 'ERR_SOCKET_BUFFER_SIZE', `Could not get or set buffer size: ${syscall} returned ${code} (${desc})`);
  Object.defineProperty(e, 'name', { value: 'SystemError', enumerable: false, writable: true, configurable: true });
  return Object.assign(e, { info: { errno: errno(code), code, message: desc, syscall }, errno: errno(code), syscall });
}

/** Node's errno for a POSIX code name (negative, as libuv reports them). */
export function errno(code: string): number {
  const n = (constants.errno as Record<string, number | undefined>)[code];
  return n === undefined ? -22 : -n;
}

export type SystemError = Error & { code: string; errno: number; syscall: string; address?: string; port?: number };

/** Node's ErrnoException: "<syscall> <CODE>". */
export function errnoException(code: string, syscall: string, original?: string): SystemError {
  const e = new Error(original ? `${syscall} ${code} ${original}` : `${syscall} ${code}`) as SystemError;
  e.errno = errno(code);
  e.code = code;
  e.syscall = syscall;
  return e;
}

/** Node's ExceptionWithHostPort: "<syscall> <CODE> <address>:<port>", with address and port. */
export function exceptionWithHostPort(code: string, syscall: string, address: string | undefined, port: unknown): SystemError {
  let details = '';
  if (port && (port as number) > 0) details = ` ${address}:${port}`;
  else if (address) details = ` ${address}`;
  const e = new Error(`${syscall} ${code}${details}`) as SystemError;
  e.errno = errno(code);
  e.code = code;
  e.syscall = syscall;
  e.address = address;
  if (port) e.port = port as number;
  return e;
}
