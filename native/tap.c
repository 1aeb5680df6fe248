/*
 * keepnet_tap: a small N-API addon that opens Linux TAP devices (optionally inside a network
 * namespace) and moves Ethernet frames in batches with non-blocking syscalls.
 *
 * Design rules:
 *   - Nothing blocks without a timeout: the fd is O_NONBLOCK and the only wait is poll(2) with the
 *     caller's timeout, so process exit and worker.terminate() never hang on this addon.
 *   - No JS allocation per frame: frames go into / come from one caller-owned Uint8Array (which may
 *     sit on a SharedArrayBuffer), addressed by Int32Array offsets/lengths.
 *   - The module is context-aware (NAPI_MODULE_INIT) and keeps no global state, so it loads in any
 *     number of worker threads.
 *   - Errors are JS Errors whose `code` is the errno name (ENOENT, EPERM, EBUSY, ...), with `errno`
 *     (positive number) and `syscall` properties.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <stdarg.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_tun.h>

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#ifndef IFF_MULTI_QUEUE
#define IFF_MULTI_QUEUE 0x0100
#endif

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                      */

static const char *errno_name(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case E2BIG: return "E2BIG";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOTTY: return "ENOTTY";
    case ENOSPC: return "ENOSPC";
    case EPIPE: return "EPIPE";
    case ERANGE: return "ERANGE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ELOOP: return "ELOOP";
    case EBADFD: return "EBADFD";
    case ENOBUFS: return "ENOBUFS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EMSGSIZE: return "EMSGSIZE";
    case ENETDOWN: return "ENETDOWN";
    case EUSERS: return "EUSERS";
    default: return NULL;
  }
}

/* Throws an Error with code/errno/syscall. Always returns NULL for convenient `return throw_errno(...)`. */
static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *fmt, ...) {
  char ctx[384];
  char msg[640];
  char codebuf[24];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx, sizeof ctx, fmt, ap);
  va_end(ap);
  const char *code = errno_name(err);
  if (code == NULL) {
    snprintf(codebuf, sizeof codebuf, "E%d", err);
    code = codebuf;
  }
  snprintf(msg, sizeof msg, "%s: %s (%s)", ctx, strerror(err), code);

  napi_value jcode, jmsg, jerr, jerrno, jsys;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok) return NULL;
  if (napi_create_error(env, jcode, jmsg, &jerr) != napi_ok) return NULL;
  if (napi_create_int32(env, err, &jerrno) == napi_ok) napi_set_named_property(env, jerr, "errno", jerrno);
  if (syscall != NULL && napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &jsys) == napi_ok)
    napi_set_named_property(env, jerr, "syscall", jsys);
  napi_throw(env, jerr);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}

/* Returns non-zero if a JS exception is pending (e.g. a napi call failed and threw). */
static int pending(napi_env env) {
  bool p = false;
  napi_is_exception_pending(env, &p);
  return p;
}

#define NAPI_CALL(env, call)                                                          \
  do {                                                                                \
    if ((call) != napi_ok) {                                                          \
      if (!pending(env)) napi_throw_error((env), "ERR_KEEPNET_TAP_NAPI", #call " failed"); \
      return NULL;                                                                    \
    }                                                                                 \
  } while (0)

/* ------------------------------------------------------------------------------------------ */
/* Argument helpers                                                                            */

static int is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  if (v == NULL) return 1;
  if (napi_typeof(env, v, &t) != napi_ok) return 1;
  return t == napi_undefined || t == napi_null;
}

/* Reads a number argument; throws a TypeError and returns -1 if it is not one. */
static int get_number(napi_env env, napi_value v, const char *what, double *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    char m[128];
    snprintf(m, sizeof m, "%s must be a number", what);
    throw_type(env, m);
    return -1;
  }
  napi_get_value_double(env, v, out);
  return 0;
}

/* Throws a RangeError "<what> must be <rule>" and returns -1. */
static int range_fail(napi_env env, const char *what, const char *rule) {
  char m[128];
  snprintf(m, sizeof m, "%s must be %s", what, rule);
  throw_range(env, m);
  return -1;
}

/* Reads an int32 argument; throws and returns -1 if it is not one. */
static int get_int32(napi_env env, napi_value v, const char *what, int32_t *out) {
  double d;
  if (get_number(env, v, what, &d) < 0) return -1;
  if (!(d >= INT32_MIN && d <= INT32_MAX) || d != (double)(int32_t)d) return range_fail(env, what, "an int32 integer");
  *out = (int32_t)d;
  return 0;
}

static int get_fd(napi_env env, napi_value v, int *fd) {
  int32_t x;
  if (get_int32(env, v, "fd", &x) < 0) return -1;
  if (x < 0) {
    throw_errno(env, EBADF, NULL, "keepnet_tap: invalid fd %d", x);
    return -1;
  }
  *fd = x;
  return 0;
}

/* Copies a JS string into a fixed buffer; fails (throwing) if it is not a string or too long. */
static int get_string(napi_env env, napi_value v, const char *what, char *buf, size_t cap, size_t *len_out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
    char m[128];
    snprintf(m, sizeof m, "%s must be a string", what);
    throw_type(env, m);
    return -1;
  }
  size_t len = 0;
  napi_get_value_string_utf8(env, v, NULL, 0, &len);
  if (len + 1 > cap) {
    throw_errno(env, cap == IFNAMSIZ ? EINVAL : ENAMETOOLONG, NULL,
                "keepnet_tap: %s is too long (%zu bytes, at most %zu)", what, len, cap - 1);
    return -1;
  }
  napi_get_value_string_utf8(env, v, buf, cap, &len);
  if (strlen(buf) != len) {
    throw_errno(env, EINVAL, NULL, "keepnet_tap: %s contains a NUL character", what);
    return -1;
  }
  if (len_out) *len_out = len;
  return 0;
}

typedef struct {
  uint8_t *data;
  size_t len; /* bytes */
} bytes_t;

static int get_u8(napi_env env, napi_value v, const char *what, bytes_t *out) {
  bool is_ta = false;
  char m[160];
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) {
    snprintf(m, sizeof m, "%s must be a Uint8Array (or Buffer)", what);
    throw_type(env, m);
    return -1;
  }
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok) return -1;
  if (type != napi_uint8_array && type != napi_int8_array && type != napi_uint8_clamped_array) {
    snprintf(m, sizeof m, "%s must be a Uint8Array (or Buffer)", what);
    throw_type(env, m);
    return -1;
  }
  out->data = (uint8_t *)data;
  out->len = length;
  return 0;
}

static int get_i32arr(napi_env env, napi_value v, const char *what, int32_t **data, size_t *len) {
  bool is_ta = false;
  char m[160];
  napi_typedarray_type type;
  void *d;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, len, &d, NULL, NULL) != napi_ok || type != napi_int32_array) {
    snprintf(m, sizeof m, "%s must be an Int32Array", what);
    throw_type(env, m);
    return -1;
  }
  *data = (int32_t *)d;
  return 0;
}

static int get_bool_prop(napi_env env, napi_value obj, const char *key, int *out) {
  napi_value v;
  napi_valuetype t;
  *out = 0;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return -1;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_undefined || t == napi_null) return 0;
  napi_value b;
  bool r;
  if (napi_coerce_to_bool(env, v, &b) != napi_ok || napi_get_value_bool(env, b, &r) != napi_ok) return -1;
  *out = r ? 1 : 0;
  return 0;
}

/* Reads an optional integer property (absent / null / undefined: leaves *out at 0). */
static int get_int_prop(napi_env env, napi_value obj, const char *key, int32_t *out) {
  napi_value v;
  *out = 0;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return -1;
  if (is_nullish(env, v)) return 0;
  return get_int32(env, v, key, out);
}

static int set_i32(napi_env env, napi_value obj, const char *key, int32_t v) {
  napi_value x;
  if (napi_create_int32(env, v, &x) != napi_ok) return -1;
  return napi_set_named_property(env, obj, key, x) == napi_ok ? 0 : -1;
}

static int set_str(napi_env env, napi_value obj, const char *key, const char *v) {
  napi_value x;
  if (napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &x) != napi_ok) return -1;
  return napi_set_named_property(env, obj, key, x) == napi_ok ? 0 : -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Network namespace switching (per calling thread)                                            */

typedef struct {
  int saved; /* fd of the thread's original netns, or -1 */
} netns_guard;

/* Enters the namespace at `path` on the calling thread. On failure sets errno and a syscall name. */
static int netns_enter(netns_guard *g, const char *path, const char **syscall) {
  g->saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (g->saved < 0) {
    *syscall = "open(/proc/thread-self/ns/net)";
    return -1;
  }
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    close(g->saved);
    g->saved = -1;
    errno = e;
    *syscall = "open";
    return -1;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int e = errno;
    close(target);
    close(g->saved);
    g->saved = -1;
    errno = e;
    *syscall = "setns";
    return -1;
  }
  close(target);
  return 0;
}

/* Restores the thread's original namespace. A failure here would leave this JS thread (and any
 * socket it creates later, including libuv's) in the wrong namespace, so it is fatal. */
static void netns_leave(netns_guard *g) {
  if (g->saved < 0) return;
  int e = errno;
  if (setns(g->saved, CLONE_NEWNET) < 0) {
    char m[160];
    snprintf(m, sizeof m, "setns() back to the original network namespace failed: %s", strerror(errno));
    napi_fatal_error("keepnet_tap", NAPI_AUTO_LENGTH, m, NAPI_AUTO_LENGTH);
  }
  close(g->saved);
  g->saved = -1;
  errno = e;
}

/* ------------------------------------------------------------------------------------------ */
/* open(name, netnsPath?, flags?) -> { fd, name, vnetHdrSize, offload, offloadError? }           */

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3] = {NULL, NULL, NULL};
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));

  char name[IFNAMSIZ];
  memset(name, 0, sizeof name);
  if (argc < 1) return throw_type(env, "open(name, netnsPath?, flags?): name is required");
  if (get_string(env, argv[0], "interface name", name, IFNAMSIZ, NULL) < 0) return NULL;

  char nspath[PATH_MAX];
  int use_ns = 0;
  if (argc >= 2 && !is_nullish(env, argv[1])) {
    if (get_string(env, argv[1], "netnsPath", nspath, sizeof nspath, NULL) < 0) return NULL;
    use_ns = 1;
  }

  int vnet = 0, mq = 0;
  int32_t want_offload = 0, hdr_size = 0;
  if (argc >= 3 && !is_nullish(env, argv[2])) {
    napi_valuetype t;
    NAPI_CALL(env, napi_typeof(env, argv[2], &t));
    if (t != napi_object) return throw_type(env, "flags must be an object { vnetHdr?, multiQueue?, vnetHdrSize?, offload? }");
    if (get_bool_prop(env, argv[2], "vnetHdr", &vnet) < 0) return NULL;
    if (get_bool_prop(env, argv[2], "multiQueue", &mq) < 0) return NULL;
    if (get_int_prop(env, argv[2], "vnetHdrSize", &hdr_size) < 0) return NULL;
    if (get_int_prop(env, argv[2], "offload", &want_offload) < 0) return NULL;
    if (hdr_size != 0 && hdr_size != 10 && hdr_size != 12)
      return throw_range(env, "open: vnetHdrSize must be 10 or 12 (struct virtio_net_hdr[_mrg_rxbuf])");
  }

  netns_guard g = {-1};
  const char *sys = NULL;
  if (use_ns && netns_enter(&g, nspath, &sys) < 0) {
    int e = errno;
    return throw_errno(env, e, sys, "keepnet_tap.open: cannot enter network namespace '%s' (%s)", nspath, sys);
  }

  /* Both the open and the ioctl must happen inside the namespace: the tun socket takes its
   * namespace at open(), TUNSETIFF creates the device there. */
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    netns_leave(&g);
    return throw_errno(env, e, "open", "keepnet_tap.open: cannot open /dev/net/tun");
  }

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (vnet) ifr.ifr_flags |= IFF_VNET_HDR;
  if (mq) ifr.ifr_flags |= IFF_MULTI_QUEUE;
  memcpy(ifr.ifr_name, name, IFNAMSIZ);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    netns_leave(&g);
    return throw_errno(env, e, "ioctl(TUNSETIFF)", "keepnet_tap.open: TUNSETIFF for TAP '%s'%s%s%s failed",
                       name, use_ns ? " in netns '" : "", use_ns ? nspath : "", use_ns ? "'" : "");
  }
  netns_leave(&g);

  /* vnet header mode: the header size, then the offloads the kernel may use towards us. The kernel
   * accepts TUN_F_* only in combinations it supports (TSO needs CSUM): on EINVAL fall back to checksum
   * offload alone, then to none, and report what was granted (`offload`) and why not (`offloadError`). */
  int granted = 0, off_err = 0;
  if (vnet) {
    if (hdr_size != 0 && ioctl(fd, TUNSETVNETHDRSZ, &hdr_size) < 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, e, "ioctl(TUNSETVNETHDRSZ)", "keepnet_tap.open: TUNSETVNETHDRSZ %d on '%s' failed",
                         hdr_size, name);
    }
    if (want_offload != 0) {
      unsigned long tries[3] = {(unsigned long)(uint32_t)want_offload, TUN_F_CSUM, 0};
      for (int i = 0; i < 3; i++) {
        if (i > 0 && tries[i] >= tries[i - 1]) continue;
        if (ioctl(fd, TUNSETOFFLOAD, tries[i]) == 0) {
          granted = (int)tries[i];
          break;
        }
        if (off_err == 0) off_err = errno;
      }
    }
  }

  /* O_NONBLOCK / O_CLOEXEC were given to open(); assert them anyway (cheap, and defensive). */
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl >= 0 && !(fdfl & FD_CLOEXEC)) fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);

  napi_value result, jfd, jname;
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  if (napi_create_object(env, &result) != napi_ok || napi_create_int32(env, fd, &jfd) != napi_ok ||
      napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &jname) != napi_ok ||
      napi_set_named_property(env, result, "fd", jfd) != napi_ok ||
      napi_set_named_property(env, result, "name", jname) != napi_ok ||
      set_i32(env, result, "vnetHdrSize", vnet ? (hdr_size ? hdr_size : 10) : 0) < 0 ||
      set_i32(env, result, "offload", granted) < 0 ||
      (off_err != 0 && set_str(env, result, "offloadError", errno_name(off_err) ? errno_name(off_err) : "EINVAL") < 0)) {
    close(fd);
    if (!pending(env)) napi_throw_error(env, "ERR_KEEPNET_TAP_NAPI", "keepnet_tap.open: result creation failed");
    return NULL;
  }
  return result;
}

/* ------------------------------------------------------------------------------------------ */
/* setOffload(fd, flags), setVnetHdrSize(fd, n)                                                */

static napi_value js_set_offload(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2] = {NULL, NULL};
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "setOffload(fd, flags)");
  int fd;
  int32_t flags;
  if (get_fd(env, argv[0], &fd) < 0 || get_int32(env, argv[1], "flags", &flags) < 0) return NULL;
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)(uint32_t)flags) < 0)
    return throw_errno(env, errno, "ioctl(TUNSETOFFLOAD)", "keepnet_tap.setOffload(fd %d, 0x%x)", fd, flags);
  return NULL;
}

static napi_value js_set_vnet_hdr_size(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2] = {NULL, NULL};
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "setVnetHdrSize(fd, size)");
  int fd;
  int32_t n;
  if (get_fd(env, argv[0], &fd) < 0 || get_int32(env, argv[1], "size", &n) < 0) return NULL;
  int sz = n;
  if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0)
    return throw_errno(env, errno, "ioctl(TUNSETVNETHDRSZ)", "keepnet_tap.setVnetHdrSize(fd %d, %d)", fd, n);
  return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* readBatch(fd, buf, offsets, lengths, maxFrames, timeoutMs) -> frames                        */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to timeout_ms for fd to become readable. Returns 1 readable, 0 timeout, -1 error (errno). */
static int wait_readable(int fd, int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    int r = poll(&p, 1, timeout_ms);
    if (r > 0) {
      if (p.revents & POLLNVAL) {
        errno = EBADF;
        return -1;
      }
      return 1; /* POLLIN, or POLLERR/POLLHUP: let read() report the condition */
    }
    if (r == 0) return 0;
    if (errno != EINTR) return -1;
    int64_t left = deadline - now_ms();
    if (left <= 0) return 0;
    timeout_ms = (int)left;
  }
}

static napi_value js_read_batch(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) return throw_type(env, "readBatch(fd, buf, offsets, lengths, maxFrames, timeoutMs)");

  int fd;
  bytes_t buf;
  int32_t *offs, *lens;
  size_t noffs, nlens;
  int32_t max, timeout;
  if (get_fd(env, argv[0], &fd) < 0 || get_u8(env, argv[1], "buf", &buf) < 0 ||
      get_i32arr(env, argv[2], "offsets", &offs, &noffs) < 0 ||
      get_i32arr(env, argv[3], "lengths", &lens, &nlens) < 0 ||
      get_int32(env, argv[4], "maxFrames", &max) < 0 || get_int32(env, argv[5], "timeoutMs", &timeout) < 0)
    return NULL;
  if (timeout < 0) return throw_range(env, "readBatch: timeoutMs must be >= 0 (0 = do not wait)");
  if (max < 0) return throw_range(env, "readBatch: maxFrames must be >= 0");
  size_t limit = (size_t)max;
  if (limit > noffs) limit = noffs;
  if (limit > nlens) limit = nlens;

  size_t n = 0;
  int waited = (timeout == 0);
  while (n < limit) {
    int64_t off = offs[n], cap = lens[n];
    if (off < 0 || cap <= 0 || off + cap > (int64_t)buf.len) {
      char m[200];
      snprintf(m, sizeof m, "readBatch: slot %zu (offset %lld, capacity %lld) is outside buf (%zu bytes)", n,
               (long long)off, (long long)cap, buf.len);
      return throw_range(env, m);
    }
    ssize_t r = read(fd, buf.data + off, (size_t)cap);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (n > 0 || waited) break;
        waited = 1;
        int w = wait_readable(fd, timeout);
        if (w == 0) break;
        if (w < 0) return throw_errno(env, errno, "poll", "keepnet_tap.readBatch(fd %d)", fd);
        continue;
      }
      if (n > 0) break; /* report what we have; the error recurs on the next call */
      return throw_errno(env, errno, "read", "keepnet_tap.readBatch(fd %d)", fd);
    }
    if (r == 0) break;
    /* A frame longer than its slot is silently truncated by the kernel (read returns `cap`):
     * callers give slots more room than the largest frame, so length == capacity means truncated. */
    lens[n] = r > INT32_MAX ? INT32_MAX : (int32_t)r;
    n++;
  }

  napi_value res;
  NAPI_CALL(env, napi_create_uint32(env, (uint32_t)n, &res));
  return res;
}

/* ------------------------------------------------------------------------------------------ */
/* writeBatch(fd, buf, offsets, lengths, count) -> frames written                              */

static napi_value js_write_batch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5] = {NULL, NULL, NULL, NULL, NULL};
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_type(env, "writeBatch(fd, buf, offsets, lengths, count)");

  int fd;
  bytes_t buf;
  int32_t *offs, *lens;
  size_t noffs, nlens;
  int32_t count;
  if (get_fd(env, argv[0], &fd) < 0 || get_u8(env, argv[1], "buf", &buf) < 0 ||
      get_i32arr(env, argv[2], "offsets", &offs, &noffs) < 0 ||
      get_i32arr(env, argv[3], "lengths", &lens, &nlens) < 0 || get_int32(env, argv[4], "count", &count) < 0)
    return NULL;
  if (count < 0 || (size_t)count > noffs || (size_t)count > nlens)
    return throw_range(env, "writeBatch: count must be >= 0 and <= offsets.length and lengths.length");

  size_t n = 0;
  while (n < (size_t)count) {
    int64_t off = offs[n], len = lens[n];
    if (off < 0 || len <= 0 || off + len > (int64_t)buf.len) {
      char m[200];
      snprintf(m, sizeof m, "writeBatch: frame %zu (offset %lld, length %lld) is outside buf (%zu bytes)", n,
               (long long)off, (long long)len, buf.len);
      return throw_range(env, m);
    }
    ssize_t w = write(fd, buf.data + off, (size_t)len);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      int e = errno;
      throw_errno(env, e, "write", "keepnet_tap.writeBatch(fd %d): frame %zu of %d (%lld bytes)", fd, n, count,
                  (long long)len);
      /* Tell the caller how many frames did go out before the failure. */
      napi_value exc, jn;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) {
        if (napi_create_uint32(env, (uint32_t)n, &jn) == napi_ok)
          napi_set_named_property(env, exc, "framesWritten", jn);
        napi_throw(env, exc);
      }
      return NULL;
    }
    n++;
  }

  napi_value res;
  NAPI_CALL(env, napi_create_uint32(env, (uint32_t)n, &res));
  return res;
}

/* ------------------------------------------------------------------------------------------ */
/* copy(dst, dstOff, src, srcOff, len): memmove between byte arrays (any alignment)              */

/* A byte offset: an integer in [0, 2^53). */
static int get_offset(napi_env env, napi_value v, const char *what, int64_t *out) {
  double d;
  if (get_number(env, v, what, &d) < 0) return -1;
  if (!(d >= 0 && d < 9007199254740992.0) || d != (double)(int64_t)d) return range_fail(env, what, "a non-negative integer below 2^53");
  *out = (int64_t)d;
  return 0;
}

/* V8 copies between SharedArrayBuffers word by word only when both ends are equally aligned modulo 8,
 * else byte by byte (2-3 GB/s instead of 10+). A received TCP payload lands in the receive buffer at
 * an alignment nobody chose (it depends on the sequence number): this copy is memmove at any alignment,
 * for the large copies only (the call itself costs a few hundred nanoseconds). */
static napi_value js_copy(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5] = {NULL, NULL, NULL, NULL, NULL};
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_type(env, "copy(dst, dstOff, src, srcOff, len)");
  bytes_t dst, src;
  int64_t doff, soff;
  int32_t len;
  /* Offsets are 53-bit: a tcp state with 256 connections of 4 MiB buffers is larger than 2 GiB. */
  if (get_u8(env, argv[0], "dst", &dst) < 0 || get_offset(env, argv[1], "dstOff", &doff) < 0 ||
      get_u8(env, argv[2], "src", &src) < 0 || get_offset(env, argv[3], "srcOff", &soff) < 0 ||
      get_int32(env, argv[4], "len", &len) < 0)
    return NULL;
  if (len < 0 || (uint64_t)doff + (uint64_t)len > dst.len || (uint64_t)soff + (uint64_t)len > src.len)
    return throw_range(env, "copy: range outside dst or src");
  memmove(dst.data + doff, src.data + soff, (size_t)len);
  return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* close(fd), ifIndex(name, netnsPath?)                                                        */

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1] = {NULL};
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "close(fd)");
  int fd;
  if (get_fd(env, argv[0], &fd) < 0) return NULL;
  /* Linux always releases the fd, even when close() reports EINTR: never retry. */
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, errno, "close", "keepnet_tap.close(fd %d)", fd);
  return NULL;
}

static napi_value js_if_index(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2] = {NULL, NULL};
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "ifIndex(name, netnsPath?)");
  char name[IFNAMSIZ];
  memset(name, 0, sizeof name);
  if (get_string(env, argv[0], "interface name", name, IFNAMSIZ, NULL) < 0) return NULL;
  char nspath[PATH_MAX];
  int use_ns = 0;
  if (argc >= 2 && !is_nullish(env, argv[1])) {
    if (get_string(env, argv[1], "netnsPath", nspath, sizeof nspath, NULL) < 0) return NULL;
    use_ns = 1;
  }
  netns_guard g = {-1};
  const char *sys = NULL;
  if (use_ns && netns_enter(&g, nspath, &sys) < 0)
    return throw_errno(env, errno, sys, "keepnet_tap.ifIndex: cannot enter network namespace '%s' (%s)", nspath,
                       sys);
  unsigned idx = if_nametoindex(name);
  int e = errno;
  netns_leave(&g);
  if (idx == 0)
    return throw_errno(env, e, "if_nametoindex", "keepnet_tap.ifIndex: no interface '%s'%s%s%s", name,
                       use_ns ? " in netns '" : "", use_ns ? nspath : "", use_ns ? "'" : "");
  napi_value res;
  NAPI_CALL(env, napi_create_uint32(env, idx, &res));
  return res;
}

/* ------------------------------------------------------------------------------------------ */
/* Module                                                                                      */

static int set_u32(napi_env env, napi_value obj, const char *key, uint32_t v) {
  napi_value x;
  if (napi_create_uint32(env, v, &x) != napi_ok) return -1;
  return napi_set_named_property(env, obj, key, x) == napi_ok ? 0 : -1;
}

/* schedYield(): give this core to another runnable thread, if there is one. Not TAP business: the
 * host loop's busy poll calls it between checks, so a spinning server thread never holds a core that a
 * thread with work is queued for (the collapse machine-limits.md measured with plain spinning). This
 * is the project's one native addon, so it lives here. */
static napi_value js_sched_yield(napi_env env, napi_callback_info info) {
  sched_yield();
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor fns[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setOffload", NULL, js_set_offload, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setVnetHdrSize", NULL, js_set_vnet_hdr_size, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readBatch", NULL, js_read_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeBatch", NULL, js_write_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"copy", NULL, js_copy, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ifIndex", NULL, js_if_index, NULL, NULL, NULL, napi_enumerable, NULL},
      {"schedYield", NULL, js_sched_yield, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns) != napi_ok) return NULL;

  napi_value k;
  if (napi_create_object(env, &k) != napi_ok) return NULL;
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif
  if (set_u32(env, k, "TUN_F_CSUM", TUN_F_CSUM) || set_u32(env, k, "TUN_F_TSO4", TUN_F_TSO4) ||
      set_u32(env, k, "TUN_F_TSO6", TUN_F_TSO6) || set_u32(env, k, "TUN_F_TSO_ECN", TUN_F_TSO_ECN) ||
      set_u32(env, k, "TUN_F_UFO", TUN_F_UFO) || set_u32(env, k, "TUN_F_USO4", TUN_F_USO4) ||
      set_u32(env, k, "TUN_F_USO6", TUN_F_USO6) || set_u32(env, k, "IFNAMSIZ", IFNAMSIZ))
    return NULL;
  if (napi_set_named_property(env, exports, "constants", k) != napi_ok) return NULL;
  return exports;
}
