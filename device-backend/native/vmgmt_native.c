/*
 * vmgmt_native: the few Linux calls the ivshmem server needs and Node lacks.
 *
 * Design note
 * - Plain C against N-API (NAPI_VERSION 8) plus libuv for fd readiness. No threads: fd watches are
 *   uv_poll_t handles on the Node event loop, and callbacks go through napi_make_callback so
 *   process.nextTick and promise jobs run right after each callback.
 * - Every failing syscall throws an Error with `code` (errno name, e.g. "ENOENT"), `errno` (negative,
 *   as Node's own system errors), `syscall`, and a message "call(args): strerror".
 * - Argument errors throw TypeError/RangeError with code ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE.
 * - Ownership: mapShared's ArrayBuffer owns its mapping (munmap on GC unless unmap() ran first). A
 *   watch is kept alive by its open uv handle and by its JS stop function; the struct is freed when
 *   both are gone. An env cleanup hook closes watches still running when a worker/env shuts down.
 *
 * - File calls (openat2, the *at calls, pread/pwrite) serve guest file requests confined to a per-VM
 *   root: paths are resolved only by openat2 from a directory fd, and the other *at calls take one
 *   path component ("a", never "a/b", ".", ".." or ""), so nothing here resolves a multi-component
 *   path without openat2's RESOLVE_* checks.
 *
 * Every name in this file carries the prefix vn_.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_kcmp
#define SYS_kcmp 312
#endif
#define VN_KCMP_FILE 0

#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define VN_MSG_BYTES 8
#define VN_SEND_TIMEOUT_MS 1000
#define VN_RECV_REST_TIMEOUT_MS 1000
#define VN_DISCARD_BYTES 4096
#define VN_MAX_RECV_FDS 4
#define VN_MAX_SAFE_INTEGER 9007199254740991LL
#define VN_MAX_DIR_ENTRIES 100000
#define VN_OPENAT2_EAGAIN_RETRIES 8
#define VN_MODE_BITS 07777

/* Marks ArrayBuffers created by mapShared so unmap() can refuse foreign ones. */
static const napi_type_tag VN_MAPPING_TAG = {0x766d676d745f6d61ULL, 0x7070696e67000001ULL};

/* ---------------------------------------------------------------- errors */

static void vn_throw_napi(napi_env env, const char *what) {
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  const char *detail = info != NULL && info->error_message != NULL ? info->error_message : "unknown";
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  char msg[512];
  snprintf(msg, sizeof msg, "vmgmt_native: N-API call %s failed: %s", what, detail);
  napi_throw_error(env, "ERR_VMGMT_NATIVE_NAPI", msg);
}

#define VN_CALL(env, call)            \
  do {                                \
    if ((call) != napi_ok) {          \
      vn_throw_napi((env), #call);    \
      return NULL;                    \
    }                                 \
  } while (0)

static const char *vn_errno_name(int err, char *fallback, size_t fallback_len) {
  const char *name = strerrorname_np(err);
  if (name != NULL) return name;
  snprintf(fallback, fallback_len, "E%d", err);
  return fallback;
}

/* Builds an Error with code = errno name, errno = -err (as Node's system errors), syscall. NULL on failure. */
static napi_value vn_new_error(napi_env env, int err, const char *syscall_name, const char *msg) {
  char fallback[16];
  const char *code_name = vn_errno_name(err, fallback, sizeof fallback);
  napi_value code, message, error, syscall_value, errno_value;
  if (napi_create_string_utf8(env, code_name, NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok ||
      napi_create_error(env, code, message, &error) != napi_ok ||
      napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &syscall_value) != napi_ok ||
      napi_create_int32(env, -err, &errno_value) != napi_ok ||
      napi_set_named_property(env, error, "syscall", syscall_value) != napi_ok ||
      napi_set_named_property(env, error, "errno", errno_value) != napi_ok) {
    return NULL;
  }
  return error;
}

static napi_value vn_throw_error(napi_env env, int err, const char *syscall_name, const char *msg) {
  napi_value error = vn_new_error(env, err, syscall_name, msg);
  if (error == NULL) {
    vn_throw_napi(env, "creating an errno error");
  } else {
    napi_throw(env, error);
  }
  return NULL;
}

/* Throws "syscall(args): strerror(err)". Always returns NULL. */
static napi_value vn_throw_errno(napi_env env, int err, const char *syscall_name, const char *args_fmt, ...) {
  char args[384];
  va_list ap;
  va_start(ap, args_fmt);
  vsnprintf(args, sizeof args, args_fmt, ap);
  va_end(ap);
  char msg[640];
  snprintf(msg, sizeof msg, "%s(%s): %s", syscall_name, args, strerror(err));
  return vn_throw_error(env, err, syscall_name, msg);
}

/* Throws with a message spelled out in full instead of strerror. Always returns NULL. */
static napi_value vn_throw_explained(napi_env env, int err, const char *syscall_name, const char *fmt, ...) {
  char msg[640];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return vn_throw_error(env, err, syscall_name, msg);
}

/* ---------------------------------------------------------------- arguments */

#define VN_ARGS(n)                                                             \
  size_t argc = (n);                                                           \
  napi_value argv[(n)];                                                        \
  VN_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

static bool vn_arg_int(napi_env env, napi_value value, const char *fn, const char *name, int64_t min, int64_t max,
                       int64_t *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) {
    vn_throw_napi(env, "napi_typeof");
    return false;
  }
  char msg[256];
  if (type != napi_number) {
    snprintf(msg, sizeof msg, "%s: %s must be a number, got a value of type %d (napi_valuetype)", fn, name, (int)type);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok) {
    vn_throw_napi(env, "napi_get_value_double");
    return false;
  }
  if (!(d == d) || d != (double)(int64_t)d || d < (double)min || d > (double)max) {
    snprintf(msg, sizeof msg, "%s: %s must be an integer in [%lld, %lld], got %g", fn, name, (long long)min,
             (long long)max, d);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

static bool vn_arg_fd(napi_env env, napi_value value, const char *fn, const char *name, int *out) {
  int64_t v;
  if (!vn_arg_int(env, value, fn, name, 0, INT_MAX, &v)) return false;
  *out = (int)v;
  return true;
}

/* Returns a malloc'ed NUL-terminated copy, or NULL with an exception pending. */
static char *vn_arg_string(napi_env env, napi_value value, const char *fn, const char *name, size_t *len_out) {
  char msg[256];
  size_t len = 0;
  napi_status s = napi_get_value_string_utf8(env, value, NULL, 0, &len);
  if (s == napi_string_expected) {
    snprintf(msg, sizeof msg, "%s: %s must be a string", fn, name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return NULL;
  }
  if (s != napi_ok) {
    vn_throw_napi(env, "napi_get_value_string_utf8");
    return NULL;
  }
  char *buf = malloc(len + 1);
  if (buf == NULL) {
    vn_throw_errno(env, ENOMEM, "malloc", "%zu", len + 1);
    return NULL;
  }
  if (napi_get_value_string_utf8(env, value, buf, len + 1, &len) != napi_ok) {
    free(buf);
    vn_throw_napi(env, "napi_get_value_string_utf8");
    return NULL;
  }
  if (strlen(buf) != len) {
    free(buf);
    snprintf(msg, sizeof msg, "%s: %s must not contain NUL characters", fn, name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
    return NULL;
  }
  if (len_out != NULL) *len_out = len;
  return buf;
}

static napi_value vn_int(napi_env env, int64_t v) {
  napi_value out;
  VN_CALL(env, napi_create_int64(env, v, &out));
  return out;
}

static napi_value vn_undefined(napi_env env) {
  napi_value out;
  VN_CALL(env, napi_get_undefined(env, &out));
  return out;
}

static int64_t vn_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd has `events` or the deadline passes. Returns 1 ready, 0 timeout, -1 error (errno set). */
static int vn_wait_fd(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    int64_t left = deadline_ms - vn_now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {.fd = fd, .events = events, .revents = 0};
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    return r < 0 ? -1 : (r == 0 ? 0 : 1);
  }
}

/* ---------------------------------------------------------------- memory */

typedef struct {
  void *addr;
  size_t len;
  bool unmapped;
  unsigned inflight;    /* preadFull/pwriteFull/fsync jobs on the thread pool that use this mapping */
  bool unmap_deferred;  /* unmap() ran while jobs were in flight: the last one to finish munmaps */
} vn_mapping;

static napi_value vn_memfd_create(napi_env env, napi_callback_info info) {
  VN_ARGS(2);
  char *name = vn_arg_string(env, argv[0], "memfdCreate", "name", NULL);
  if (name == NULL) return NULL;
  int64_t size;
  if (!vn_arg_int(env, argv[1], "memfdCreate", "sizeBytes", 0, VN_MAX_SAFE_INTEGER, &size)) {
    free(name);
    return NULL;
  }
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    int err = errno;
    vn_throw_errno(env, err, "memfd_create", "%s", name);
    free(name);
    return NULL;
  }
  if (ftruncate(fd, (off_t)size) != 0) {
    int err = errno;
    close(fd);
    vn_throw_errno(env, err, "ftruncate", "memfd %s, %lld bytes", name, (long long)size);
    free(name);
    return NULL;
  }
  free(name);
  return vn_int(env, fd);
}

static void vn_mapping_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  vn_mapping *m = data;
  if (!m->unmapped) munmap(m->addr, m->len);
  free(m);
}

static bool vn_arg_bool(napi_env env, napi_value value, const char *fn, const char *name, bool *out);

/*
 * mapShared(fd, sizeBytes, prefault = false). Without prefault the pages of the mapping are faulted in on
 * first touch, so a region costs this process (and the host) only the pages anyone has used; with it,
 * MAP_POPULATE faults in every page at once (best effort: mmap does not fail when populating does).
 */
static napi_value vn_map_shared(napi_env env, napi_callback_info info) {
  VN_ARGS(3);
  int fd;
  int64_t size;
  bool prefault = false;
  if (!vn_arg_fd(env, argv[0], "mapShared", "fd", &fd)) return NULL;
  if (!vn_arg_int(env, argv[1], "mapShared", "sizeBytes", 1, VN_MAX_SAFE_INTEGER, &size)) return NULL;
  if (argc >= 3) {
    napi_valuetype type;
    VN_CALL(env, napi_typeof(env, argv[2], &type));
    if (type != napi_undefined && !vn_arg_bool(env, argv[2], "mapShared", "prefault", &prefault)) return NULL;
  }

  /* Touching a MAP_SHARED page past the end of the file raises SIGBUS and kills the process. */
  struct stat st;
  if (fstat(fd, &st) != 0) return vn_throw_errno(env, errno, "fstat", "fd %d", fd);
  if (S_ISREG(st.st_mode) && (int64_t)st.st_size < size) {
    return vn_throw_explained(env, EINVAL, "mmap",
                              "mmap(fd %d, %lld bytes): the file is only %lld bytes; mapping past its end would "
                              "crash with SIGBUS on access. Grow it first (memfdCreate sizes it) or map less.",
                              fd, (long long)size, (long long)st.st_size);
  }

  void *addr = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED | (prefault ? MAP_POPULATE : 0), fd, 0);
  if (addr == MAP_FAILED) return vn_throw_errno(env, errno, "mmap", "fd %d, %lld bytes", fd, (long long)size);

  vn_mapping *m = malloc(sizeof *m);
  if (m == NULL) {
    munmap(addr, (size_t)size);
    return vn_throw_errno(env, ENOMEM, "malloc", "%zu", sizeof *m);
  }
  m->addr = addr;
  m->len = (size_t)size;
  m->unmapped = false;
  m->inflight = 0;
  m->unmap_deferred = false;

  napi_value buf;
  if (napi_create_external_arraybuffer(env, addr, (size_t)size, NULL, NULL, &buf) != napi_ok) {
    munmap(addr, (size_t)size);
    free(m);
    vn_throw_napi(env, "napi_create_external_arraybuffer");
    return NULL;
  }
  if (napi_type_tag_object(env, buf, &VN_MAPPING_TAG) != napi_ok ||
      napi_wrap(env, buf, m, vn_mapping_finalize, NULL, NULL) != napi_ok) {
    napi_detach_arraybuffer(env, buf);
    munmap(addr, (size_t)size);
    free(m);
    vn_throw_napi(env, "napi_wrap(mapping)");
    return NULL;
  }
  return buf;
}

static napi_value vn_unmap(napi_env env, napi_callback_info info) {
  VN_ARGS(1);
  bool is_ours = false;
  napi_valuetype type;
  VN_CALL(env, napi_typeof(env, argv[0], &type));
  if (type == napi_object) VN_CALL(env, napi_check_object_type_tag(env, argv[0], &VN_MAPPING_TAG, &is_ours));
  if (!is_ours) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "unmap: buf must be an ArrayBuffer returned by mapShared");
    return NULL;
  }
  vn_mapping *m = NULL;
  VN_CALL(env, napi_unwrap(env, argv[0], (void **)&m));
  if (m->unmapped) return vn_undefined(env);
  VN_CALL(env, napi_detach_arraybuffer(env, argv[0]));
  m->unmapped = true;
  if (m->inflight > 0) {
    m->unmap_deferred = true; /* a thread-pool job still copies into or out of it (vn_io_complete munmaps) */
    return vn_undefined(env);
  }
  if (munmap(m->addr, m->len) != 0) return vn_throw_errno(env, errno, "munmap", "%p, %zu bytes", m->addr, m->len);
  return vn_undefined(env);
}

/* ---------------------------------------------------------------- eventfd */

static napi_value vn_eventfd_create(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return vn_throw_errno(env, errno, "eventfd", "0, EFD_NONBLOCK|EFD_CLOEXEC");
  return vn_int(env, fd);
}

static napi_value vn_eventfd_write(napi_env env, napi_callback_info info) {
  VN_ARGS(1);
  int fd;
  if (!vn_arg_fd(env, argv[0], "eventfdWrite", "fd", &fd)) return NULL;
  uint64_t one = 1;
  for (;;) {
    ssize_t n = write(fd, &one, sizeof one);
    if (n == (ssize_t)sizeof one) return vn_undefined(env);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return vn_throw_errno(env, errno, "write", "eventfd %d", fd);
    return vn_throw_explained(env, EIO, "write", "write(eventfd %d): wrote %zd of 8 bytes", fd, n);
  }
}

/* ---------------------------------------------------------------- unix sockets */

static napi_value vn_unix_listen(napi_env env, napi_callback_info info) {
  VN_ARGS(2);
  size_t path_len;
  char *path = vn_arg_string(env, argv[0], "unixListen", "path", &path_len);
  if (path == NULL) return NULL;
  int64_t backlog;
  if (!vn_arg_int(env, argv[1], "unixListen", "backlog", 1, INT_MAX, &backlog)) {
    free(path);
    return NULL;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path_len == 0 || path_len >= sizeof addr.sun_path) {
    vn_throw_explained(env, ENAMETOOLONG, "bind",
                       "bind(%s): a UNIX socket path must be 1..%zu bytes (sun_path holds %zu with the NUL), this "
                       "one is %zu bytes. Use a shorter directory, e.g. under /run or /tmp.",
                       path, sizeof addr.sun_path - 1, sizeof addr.sun_path, path_len);
    free(path);
    return NULL;
  }
  memcpy(addr.sun_path, path, path_len + 1);

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    vn_throw_errno(env, errno, "socket", "AF_UNIX, SOCK_STREAM");
    free(path);
    return NULL;
  }
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    int err = errno;
    close(fd);
    vn_throw_errno(env, err, "bind", "%s", path);
    free(path);
    return NULL;
  }
  if (listen(fd, (int)backlog) != 0) {
    int err = errno;
    close(fd);
    vn_throw_errno(env, err, "listen", "%s, backlog %lld", path, (long long)backlog);
    free(path);
    return NULL;
  }
  free(path);
  return vn_int(env, fd);
}

static napi_value vn_unix_accept(napi_env env, napi_callback_info info) {
  VN_ARGS(1);
  int listen_fd;
  if (!vn_arg_fd(env, argv[0], "unixAccept", "listenFd", &listen_fd)) return NULL;
  for (;;) {
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return vn_int(env, fd);
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return vn_int(env, -1);
    return vn_throw_errno(env, errno, "accept4", "fd %d", listen_fd);
  }
}

static napi_value vn_send_int64_with_fd(napi_env env, napi_callback_info info) {
  VN_ARGS(3);
  int sock;
  int64_t pass_fd;
  if (!vn_arg_fd(env, argv[0], "sendInt64WithFd", "sockFd", &sock)) return NULL;
  int64_t value;
  bool lossless = false;
  napi_status s = napi_get_value_bigint_int64(env, argv[1], &value, &lossless);
  if (s == napi_bigint_expected) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "sendInt64WithFd: value must be a bigint");
    return NULL;
  }
  if (s != napi_ok) {
    vn_throw_napi(env, "napi_get_value_bigint_int64");
    return NULL;
  }
  if (!lossless) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "sendInt64WithFd: value must fit in a signed 64-bit integer");
    return NULL;
  }
  if (!vn_arg_int(env, argv[2], "sendInt64WithFd", "fd", -1, INT_MAX, &pass_fd)) return NULL;

  uint8_t bytes[VN_MSG_BYTES];
  for (int i = 0; i < VN_MSG_BYTES; i++) bytes[i] = (uint8_t)((uint64_t)value >> (8 * i));
  struct iovec iov = {.iov_base = bytes, .iov_len = sizeof bytes};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  if (pass_fd >= 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    int fd_int = (int)pass_fd;
    memcpy(CMSG_DATA(cmsg), &fd_int, sizeof fd_int);
  }

  int64_t deadline = -1;
  for (;;) {
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n == VN_MSG_BYTES) return vn_undefined(env);
    if (n >= 0) {
      return vn_throw_explained(env, EPROTO, "sendmsg",
                                "sendmsg(fd %d, value %lld, fd %lld): sent only %zd of 8 bytes; the stream is out "
                                "of sync, close this connection",
                                sock, (long long)value, (long long)pass_fd, n);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return vn_throw_errno(env, errno, "sendmsg", "fd %d, value %lld, fd %lld", sock, (long long)value,
                            (long long)pass_fd);
    }
    if (deadline < 0) deadline = vn_now_ms() + VN_SEND_TIMEOUT_MS;
    int r = vn_wait_fd(sock, POLLOUT, deadline);
    if (r < 0) return vn_throw_errno(env, errno, "poll", "fd %d, POLLOUT", sock);
    if (r == 0) {
      return vn_throw_explained(env, EAGAIN, "sendmsg",
                                "sendmsg(fd %d, value %lld, fd %lld): socket still full after %d ms; the peer is "
                                "not reading, drop it",
                                sock, (long long)value, (long long)pass_fd, VN_SEND_TIMEOUT_MS);
    }
  }
}

static void vn_close_fds(const int *fds, int count) {
  for (int i = 0; i < count; i++) close(fds[i]);
}

/* One recvmsg into bytes[*got..8); appends received fds. Returns bytes read, 0 on EOF, -1 with errno. */
static ssize_t vn_recv_part(int sock, uint8_t *bytes, size_t *got, int *fds, int *fd_count, bool *truncated) {
  struct iovec iov = {.iov_base = bytes + *got, .iov_len = VN_MSG_BYTES - *got};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * VN_MAX_RECV_FDS)];
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  if (msg.msg_flags & MSG_CTRUNC) *truncated = true;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (*fd_count < VN_MAX_RECV_FDS) {
        fds[(*fd_count)++] = fd;
      } else {
        close(fd);
        *truncated = true;
      }
    }
  }
  *got += (size_t)n;
  return n;
}

static napi_value vn_recv_int64_with_fd(napi_env env, napi_callback_info info) {
  VN_ARGS(1);
  int sock;
  if (!vn_arg_fd(env, argv[0], "recvInt64WithFd", "sockFd", &sock)) return NULL;
  uint8_t bytes[VN_MSG_BYTES];
  size_t got = 0;
  int fds[VN_MAX_RECV_FDS];
  int fd_count = 0;
  bool truncated = false;
  int64_t deadline = -1;

  while (got < VN_MSG_BYTES) {
    ssize_t n = vn_recv_part(sock, bytes, &got, fds, &fd_count, &truncated);
    if (n > 0) continue;
    if (n == 0) {
      vn_close_fds(fds, fd_count);
      if (got == 0) {
        return vn_throw_explained(env, ECONNRESET, "recvmsg",
                                  "recvmsg(fd %d): the peer closed the connection (EOF)", sock);
      }
      return vn_throw_explained(env, EPROTO, "recvmsg",
                                "recvmsg(fd %d): the peer closed the connection after %zu of 8 bytes", sock, got);
    }
    int err = errno;
    if (err != EAGAIN && err != EWOULDBLOCK) {
      vn_close_fds(fds, fd_count);
      return vn_throw_errno(env, err, "recvmsg", "fd %d", sock);
    }
    if (got == 0) {
      napi_value null_value;
      VN_CALL(env, napi_get_null(env, &null_value));
      return null_value;
    }
    /* The rest of a split message should follow at once. */
    if (deadline < 0) deadline = vn_now_ms() + VN_RECV_REST_TIMEOUT_MS;
    int r = vn_wait_fd(sock, POLLIN, deadline);
    if (r <= 0) {
      int wait_err = errno;
      vn_close_fds(fds, fd_count);
      if (r < 0) return vn_throw_errno(env, wait_err, "poll", "fd %d, POLLIN", sock);
      return vn_throw_explained(env, EPROTO, "recvmsg",
                                "recvmsg(fd %d): got %zu of 8 bytes and the rest did not arrive within %d ms", sock,
                                got, VN_RECV_REST_TIMEOUT_MS);
    }
  }
  if (truncated || fd_count > 1) {
    vn_close_fds(fds, fd_count);
    return vn_throw_explained(env, EPROTO, "recvmsg",
                              "recvmsg(fd %d): expected at most one fd per message, got %d%s; closed them", sock,
                              fd_count, truncated ? " and truncated control data" : "");
  }

  uint64_t raw = 0;
  for (int i = 0; i < VN_MSG_BYTES; i++) raw |= (uint64_t)bytes[i] << (8 * i);
  napi_value result, value, fd_value;
  if (napi_create_object(env, &result) != napi_ok || napi_create_bigint_int64(env, (int64_t)raw, &value) != napi_ok ||
      napi_create_int32(env, fd_count == 1 ? fds[0] : -1, &fd_value) != napi_ok ||
      napi_set_named_property(env, result, "value", value) != napi_ok ||
      napi_set_named_property(env, result, "fd", fd_value) != napi_ok) {
    vn_close_fds(fds, fd_count);
    vn_throw_napi(env, "building the recvInt64WithFd result");
    return NULL;
  }
  return result;
}

static napi_value vn_recv_discard(napi_env env, napi_callback_info info) {
  VN_ARGS(1);
  int fd;
  if (!vn_arg_fd(env, argv[0], "recvDiscard", "fd", &fd)) return NULL;
  char buf[VN_DISCARD_BYTES];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n >= 0) return vn_int(env, n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return vn_int(env, -1);
    return vn_throw_errno(env, errno, "read", "fd %d", fd);
  }
}

static bool vn_arg_bytes(napi_env env, napi_value value, const char *fn, const char *name, uint8_t **data, size_t *len);

/*
 * pipe(nonBlockingEnd = "read"): [readFd, writeFd], both close-on-exec; the named end non-blocking
 * (readSome/writeSome on the event loop), the other blocking (fs.read/fs.write on the thread pool wait:
 * back-pressure). F_SETPIPE_SZ asks for 1 MiB of room (best effort: the system's pipe-max-size decides).
 */
static napi_value vn_pipe(napi_env env, napi_callback_info info) {
  VN_ARGS(1);
  int non_blocking = 0;
  if (argc >= 1) {
    napi_valuetype type;
    VN_CALL(env, napi_typeof(env, argv[0], &type));
    if (type != napi_undefined) {
      char *end = vn_arg_string(env, argv[0], "pipe", "nonBlockingEnd", NULL);
      if (end == NULL) return NULL;
      bool ok = strcmp(end, "read") == 0 || strcmp(end, "write") == 0;
      non_blocking = strcmp(end, "write") == 0 ? 1 : 0;
      free(end);
      if (!ok) {
        napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "pipe: nonBlockingEnd must be \"read\" or \"write\"");
        return NULL;
      }
    }
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return vn_throw_errno(env, errno, "pipe2", "O_CLOEXEC");
  int flags = fcntl(fds[non_blocking], F_GETFL);
  if (flags < 0 || fcntl(fds[non_blocking], F_SETFL, flags | O_NONBLOCK) != 0) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    return vn_throw_errno(env, err, "fcntl", "F_SETFL O_NONBLOCK");
  }
  (void)fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
  napi_value out, r, w;
  if (napi_create_array_with_length(env, 2, &out) != napi_ok || napi_create_int32(env, fds[0], &r) != napi_ok ||
      napi_create_int32(env, fds[1], &w) != napi_ok || napi_set_element(env, out, 0, r) != napi_ok || napi_set_element(env, out, 1, w) != napi_ok) {
    close(fds[0]);
    close(fds[1]);
    vn_throw_napi(env, "creating the pipe's array");
    return NULL;
  }
  return out;
}

/* readSome(fd, target): one read() into target; the byte count, 0 at end of file, -1 when nothing is pending. */
static napi_value vn_read_some(napi_env env, napi_callback_info info) {
  VN_ARGS(2);
  int fd;
  uint8_t *data;
  size_t len;
  if (!vn_arg_fd(env, argv[0], "readSome", "fd", &fd) || !vn_arg_bytes(env, argv[1], "readSome", "target", &data, &len)) return NULL;
  for (;;) {
    ssize_t n = read(fd, data, len);
    if (n >= 0) return vn_int(env, n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return vn_int(env, -1);
    return vn_throw_errno(env, errno, "read", "fd %d, %zu bytes", fd, len);
  }
}

/* writeSome(fd, source): one write() of source; the byte count, or -1 when the (non-blocking) fd has no room. */
static napi_value vn_write_some(napi_env env, napi_callback_info info) {
  VN_ARGS(2);
  int fd;
  uint8_t *data;
  size_t len;
  if (!vn_arg_fd(env, argv[0], "writeSome", "fd", &fd) || !vn_arg_bytes(env, argv[1], "writeSome", "source", &data, &len)) return NULL;
  for (;;) {
    ssize_t n = write(fd, data, len);
    if (n >= 0) return vn_int(env, n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return vn_int(env, -1);
    return vn_throw_errno(env, errno, "write", "fd %d, %zu bytes", fd, len);
  }
}

static napi_value vn_close(napi_env env, napi_callback_info info) {
  VN_ARGS(1);
  int fd;
  if (!vn_arg_fd(env, argv[0], "close", "fd", &fd)) return NULL;
  /* On Linux the fd is released even when close reports EINTR; retrying could close a reused fd. */
  if (close(fd) != 0 && errno != EINTR) return vn_throw_errno(env, errno, "close", "fd %d", fd);
  return vn_undefined(env);
}

/* flock(LOCK_EX | LOCK_NB): true when this open file now holds the lock, false when another holds it. The
 * lock lives as long as the open file description (it dies with the process, however it ends). */
static napi_value vn_flock_exclusive(napi_env env, napi_callback_info info) {
  VN_ARGS(1);
  int fd;
  if (!vn_arg_fd(env, argv[0], "flockExclusive", "fd", &fd)) return NULL;
  int r;
  do {
    r = flock(fd, LOCK_EX | LOCK_NB);
  } while (r != 0 && errno == EINTR);
  if (r != 0 && errno != EWOULDBLOCK) return vn_throw_errno(env, errno, "flock", "fd %d", fd);
  napi_value out;
  if (napi_get_boolean(env, r == 0, &out) != napi_ok) {
    vn_throw_napi(env, "napi_get_boolean");
    return NULL;
  }
  return out;
}

/* ---------------------------------------------------------------- fd watches */

typedef struct {
  uv_poll_t poll; /* first member: the uv handle pointer is the watch pointer */
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int fd;
  bool drain_eventfd;
  bool active;
  int owners; /* the open uv handle + the JS stop function; freed at 0 */
} vn_watch;

static void vn_watch_release(vn_watch *w) {
  if (--w->owners == 0) free(w);
}

static void vn_watch_on_closed(uv_handle_t *handle) { vn_watch_release((vn_watch *)handle); }

static void vn_watch_on_stop_fn_finalized(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  vn_watch_release(data);
}

/* Stops polling and schedules the handle close; `in_teardown` skips calls that may run JS. */
static void vn_watch_stop(vn_watch *w, bool in_teardown) {
  if (!w->active) return;
  w->active = false;
  uv_poll_stop(&w->poll);
  napi_delete_reference(w->env, w->callback);
  w->callback = NULL;
  if (!in_teardown) napi_async_destroy(w->env, w->async);
  uv_close((uv_handle_t *)&w->poll, vn_watch_on_closed);
}

static void vn_watch_on_env_teardown(void *arg) { vn_watch_stop(arg, true); }

static void vn_watch_on_poll(uv_poll_t *handle, int status, int events) {
  (void)status;
  (void)events;
  vn_watch *w = (vn_watch *)handle;
  if (!w->active) return;
  double count = 0;
  int read_err = 0;
  if (w->drain_eventfd) {
    for (;;) {
      uint64_t v;
      ssize_t n = read(w->fd, &v, sizeof v);
      if (n == (ssize_t)sizeof v) {
        count += (double)v;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      read_err = n < 0 ? errno : EIO;
      break;
    }
    if (read_err == 0 && count == 0) return;
  }

  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (read_err != 0) {
    /* The eventfd was closed or replaced under the watch; report it as an uncaught exception. */
    char msg[256];
    snprintf(msg, sizeof msg, "read(eventfd %d): %s; the watch was stopped", w->fd, strerror(read_err));
    napi_remove_env_cleanup_hook(env, vn_watch_on_env_teardown, w);
    vn_watch_stop(w, false);
    napi_value error = vn_new_error(env, read_err, "read", msg);
    if (error != NULL) napi_fatal_exception(env, error);
    napi_close_handle_scope(env, scope);
    return;
  }

  napi_value cb, recv, argv[1], result;
  size_t argc = 0;
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok) {
    if (w->drain_eventfd && napi_create_double(env, count, &argv[0]) == napi_ok) argc = 1;
    napi_status s = napi_make_callback(env, w->async, recv, cb, argc, argv, &result);
    if (s == napi_pending_exception) {
      napi_value exception;
      if (napi_get_and_clear_last_exception(env, &exception) == napi_ok) napi_fatal_exception(env, exception);
    }
  }
  napi_close_handle_scope(env, scope);
}

static napi_value vn_stop_fn(napi_env env, napi_callback_info info) {
  vn_watch *w = NULL;
  VN_CALL(env, napi_get_cb_info(env, info, NULL, NULL, NULL, (void **)&w));
  if (w->active) {
    napi_remove_env_cleanup_hook(env, vn_watch_on_env_teardown, w);
    vn_watch_stop(w, false);
  }
  return vn_undefined(env);
}

static napi_value vn_watch_create(napi_env env, napi_callback_info info, const char *fn, bool drain_eventfd) {
  VN_ARGS(2);
  int fd;
  if (!vn_arg_fd(env, argv[0], fn, "fd", &fd)) return NULL;
  napi_valuetype type;
  VN_CALL(env, napi_typeof(env, argv[1], &type));
  if (type != napi_function) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s: the callback must be a function", fn);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return NULL;
  }
  uv_loop_t *loop;
  VN_CALL(env, napi_get_uv_event_loop(env, &loop));

  vn_watch *w = calloc(1, sizeof *w);
  if (w == NULL) return vn_throw_errno(env, ENOMEM, "malloc", "%zu", sizeof *w);
  int uv_err = uv_poll_init(loop, &w->poll, fd);
  if (uv_err != 0) {
    free(w);
    if (uv_err == UV_EEXIST) {
      return vn_throw_explained(env, EEXIST, "uv_poll_init",
                                "uv_poll_init(fd %d): this fd is already watched on the event loop; stop the other "
                                "watch first",
                                fd);
    }
    return vn_throw_errno(env, -uv_err, "uv_poll_init", "fd %d", fd);
  }
  w->env = env;
  w->fd = fd;
  w->drain_eventfd = drain_eventfd;
  w->owners = 1; /* the uv handle; the stop function adds one below */

  napi_value resource_name, stop_fn, result;
  if (napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok ||
      napi_create_string_utf8(env, drain_eventfd ? "vmgmt:watchEventfd" : "vmgmt:watchReadable", NAPI_AUTO_LENGTH,
                              &resource_name) != napi_ok ||
      napi_async_init(env, NULL, resource_name, &w->async) != napi_ok) {
    if (w->callback != NULL) napi_delete_reference(env, w->callback);
    uv_close((uv_handle_t *)&w->poll, vn_watch_on_closed);
    vn_throw_napi(env, "setting up the watch");
    return NULL;
  }
  w->active = true;
  uv_err = uv_poll_start(&w->poll, UV_READABLE, vn_watch_on_poll);
  if (uv_err != 0) {
    vn_watch_stop(w, false);
    return vn_throw_errno(env, -uv_err, "uv_poll_start", "fd %d", fd);
  }
  if (napi_create_function(env, "stop", NAPI_AUTO_LENGTH, vn_stop_fn, w, &stop_fn) != napi_ok ||
      napi_add_finalizer(env, stop_fn, w, vn_watch_on_stop_fn_finalized, NULL, NULL) != napi_ok) {
    vn_watch_stop(w, false);
    vn_throw_napi(env, "creating the stop function");
    return NULL;
  }
  w->owners++;
  VN_CALL(env, napi_add_env_cleanup_hook(env, vn_watch_on_env_teardown, w));
  VN_CALL(env, napi_create_object(env, &result));
  VN_CALL(env, napi_set_named_property(env, result, "stop", stop_fn));
  return result;
}

static napi_value vn_watch_readable(napi_env env, napi_callback_info info) {
  return vn_watch_create(env, info, "watchReadable", false);
}

static napi_value vn_watch_eventfd(napi_env env, napi_callback_info info) {
  return vn_watch_create(env, info, "watchEventfd", true);
}

/* ---------------------------------------------------------------- pidfd and /proc */

static napi_value vn_pidfd_open(napi_env env, napi_callback_info info) {
  VN_ARGS(1);
  int64_t pid;
  if (!vn_arg_int(env, argv[0], "pidfdOpen", "pid", 1, INT_MAX, &pid)) return NULL;
  long fd = syscall(SYS_pidfd_open, (pid_t)pid, 0);
  if (fd < 0) return vn_throw_errno(env, errno, "pidfd_open", "pid %lld", (long long)pid);
  return vn_int(env, fd);
}

static napi_value vn_pidfd_getfd(napi_env env, napi_callback_info info) {
  VN_ARGS(2);
  int pidfd, target;
  if (!vn_arg_fd(env, argv[0], "pidfdGetfd", "pidfd", &pidfd)) return NULL;
  if (!vn_arg_fd(env, argv[1], "pidfdGetfd", "targetFd", &target)) return NULL;
  long fd = syscall(SYS_pidfd_getfd, pidfd, target, 0);
  if (fd < 0) return vn_throw_errno(env, errno, "pidfd_getfd", "pidfd %d, fd %d", pidfd, target);
  if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) != 0) {
    int err = errno;
    close((int)fd);
    return vn_throw_errno(env, err, "fcntl", "fd %ld, F_SETFD FD_CLOEXEC", fd);
  }
  return vn_int(env, fd);
}

static napi_value vn_fd_realpath(napi_env env, napi_callback_info info) {
  VN_ARGS(1);
  int fd;
  if (!vn_arg_fd(env, argv[0], "fdRealpath", "fd", &fd)) return NULL;
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char target[PATH_MAX];
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return vn_throw_errno(env, errno, "readlink", "%s", link);
  target[n] = '\0';
  napi_value out;
  VN_CALL(env, napi_create_string_utf8(env, target, (size_t)n, &out));
  return out;
}

/* kcmp(KCMP_FILE): whether fd1 in pid1 and fd2 in pid2 are the same open file description. */
static napi_value vn_kcmp_file(napi_env env, napi_callback_info info) {
  VN_ARGS(4);
  int64_t pid1, fd1, pid2, fd2;
  if (!vn_arg_int(env, argv[0], "kcmpFile", "pid1", 1, INT_MAX, &pid1)) return NULL;
  if (!vn_arg_int(env, argv[1], "kcmpFile", "fd1", 0, INT_MAX, &fd1)) return NULL;
  if (!vn_arg_int(env, argv[2], "kcmpFile", "pid2", 1, INT_MAX, &pid2)) return NULL;
  if (!vn_arg_int(env, argv[3], "kcmpFile", "fd2", 0, INT_MAX, &fd2)) return NULL;
  long r = syscall(SYS_kcmp, (pid_t)pid1, (pid_t)pid2, VN_KCMP_FILE, (unsigned long)fd1, (unsigned long)fd2);
  if (r < 0) return vn_throw_errno(env, errno, "kcmp", "pid %lld fd %lld, pid %lld fd %lld", (long long)pid1, (long long)fd1, (long long)pid2, (long long)fd2);
  napi_value out;
  if (napi_get_boolean(env, r == 0, &out) != napi_ok) {
    vn_throw_napi(env, "napi_get_boolean");
    return NULL;
  }
  return out;
}

/* ---------------------------------------------------------------- confined file system */

typedef struct {
  const char *name;
  int64_t value;
} vn_constant;

static const vn_constant VN_OPEN_FLAGS[] = {
    {"RDONLY", O_RDONLY},     {"WRONLY", O_WRONLY},       {"RDWR", O_RDWR},         {"CREAT", O_CREAT},
    {"EXCL", O_EXCL},         {"TRUNC", O_TRUNC},         {"DIRECTORY", O_DIRECTORY}, {"NOFOLLOW", O_NOFOLLOW},
    {"NONBLOCK", O_NONBLOCK}, {"PATH", O_PATH},           {"CLOEXEC", O_CLOEXEC},   {"APPEND", O_APPEND},
};

static const vn_constant VN_RESOLVE_FLAGS[] = {
    {"BENEATH", RESOLVE_BENEATH},         {"NO_MAGICLINKS", RESOLVE_NO_MAGICLINKS}, {"NO_XDEV", RESOLVE_NO_XDEV},
    {"NO_SYMLINKS", RESOLVE_NO_SYMLINKS}, {"IN_ROOT", RESOLVE_IN_ROOT},
};

/* Sets exports[name] to a frozen object of the constants. */
static bool vn_define_constants(napi_env env, napi_value exports, const char *name, const vn_constant *constants,
                                size_t count) {
  napi_value obj;
  if (napi_create_object(env, &obj) != napi_ok) return false;
  for (size_t i = 0; i < count; i++) {
    napi_value v;
    if (napi_create_int64(env, constants[i].value, &v) != napi_ok ||
        napi_set_named_property(env, obj, constants[i].name, v) != napi_ok) {
      return false;
    }
  }
  return napi_object_freeze(env, obj) == napi_ok && napi_set_named_property(env, exports, name, obj) == napi_ok;
}

/* One path component for the *at calls, so that only openat2 (with its RESOLVE_* checks) walks a path. */
static char *vn_arg_name(napi_env env, napi_value value, const char *fn, const char *name) {
  size_t len;
  char *s = vn_arg_string(env, value, fn, name, &len);
  if (s == NULL) return NULL;
  if (len == 0 || strchr(s, '/') != NULL || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
    char msg[512];
    snprintf(msg, sizeof msg,
             "%s: %s must be one path component (no '/', not '', '.' or '..'), got \"%s\"; open its parent "
             "directory with openat2 and pass the last component",
             fn, name, s);
    free(s);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
    return NULL;
  }
  return s;
}

static bool vn_arg_bool(napi_env env, napi_value value, const char *fn, const char *name, bool *out) {
  napi_status s = napi_get_value_bool(env, value, out);
  if (s == napi_ok) return true;
  if (s == napi_boolean_expected) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s must be a boolean", fn, name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  } else {
    vn_throw_napi(env, "napi_get_value_bool");
  }
  return false;
}

/* A Uint8Array's bytes. N-API's data pointer already includes the view's byte_offset. */
static bool vn_arg_bytes(napi_env env, napi_value value, const char *fn, const char *name, uint8_t **data,
                         size_t *len) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok) {
    vn_throw_napi(env, "napi_is_typedarray");
    return false;
  }
  napi_typedarray_type type = napi_int8_array;
  void *ptr = NULL;
  size_t length = 0;
  if (is_typed && napi_get_typedarray_info(env, value, &type, &length, &ptr, NULL, NULL) != napi_ok) {
    vn_throw_napi(env, "napi_get_typedarray_info");
    return false;
  }
  if (!is_typed || type != napi_uint8_array) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s must be a Uint8Array (or Buffer)", fn, name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  *data = ptr;
  *len = length;
  return true;
}

static const char *vn_stat_type(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default: return "unknown";
  }
}

static const char *vn_dirent_type(unsigned char d_type) {
  switch (d_type) {
    case DT_REG: return "file";
    case DT_DIR: return "dir";
    case DT_LNK: return "symlink";
    case DT_FIFO: return "fifo";
    case DT_SOCK: return "socket";
    case DT_CHR: return "char";
    case DT_BLK: return "block";
    default: return "unknown";
  }
}

static bool vn_set_number(napi_env env, napi_value obj, const char *key, double v) {
  napi_value n;
  return napi_create_double(env, v, &n) == napi_ok && napi_set_named_property(env, obj, key, n) == napi_ok;
}

static bool vn_set_string(napi_env env, napi_value obj, const char *key, const char *v) {
  napi_value s;
  return napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &s) == napi_ok &&
         napi_set_named_property(env, obj, key, s) == napi_ok;
}

static napi_value vn_stat_object(napi_env env, const struct stat *st) {
  napi_value obj;
  double mtime_ms = (double)st->st_mtim.tv_sec * 1000.0 + (double)st->st_mtim.tv_nsec / 1e6;
  if (napi_create_object(env, &obj) != napi_ok || !vn_set_string(env, obj, "type", vn_stat_type(st->st_mode)) ||
      !vn_set_number(env, obj, "mode", (double)(st->st_mode & VN_MODE_BITS)) ||
      !vn_set_number(env, obj, "sizeBytes", (double)st->st_size) || !vn_set_number(env, obj, "mtimeMs", mtime_ms) ||
      !vn_set_number(env, obj, "ino", (double)st->st_ino) || !vn_set_number(env, obj, "dev", (double)st->st_dev) ||
      !vn_set_number(env, obj, "nlink", (double)st->st_nlink) || !vn_set_number(env, obj, "uid", st->st_uid) ||
      !vn_set_number(env, obj, "gid", st->st_gid)) {
    vn_throw_napi(env, "building a NativeStat");
    return NULL;
  }
  return obj;
}

/* SYS_openat2 with O_CLOEXEC added; the only call here that resolves a multi-component path. */
static napi_value vn_openat2(napi_env env, napi_callback_info info) {
  VN_ARGS(5);
  int dir_fd;
  if (!vn_arg_fd(env, argv[0], "openat2", "dirFd", &dir_fd)) return NULL;
  char *path = vn_arg_string(env, argv[1], "openat2", "path", NULL);
  if (path == NULL) return NULL;
  int64_t flags, mode, resolve;
  if (!vn_arg_int(env, argv[2], "openat2", "flags", 0, INT_MAX, &flags) ||
      !vn_arg_int(env, argv[3], "openat2", "mode", 0, VN_MODE_BITS, &mode) ||
      !vn_arg_int(env, argv[4], "openat2", "resolve", 0, INT_MAX, &resolve)) {
    free(path);
    return NULL;
  }
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (uint64_t)flags | O_CLOEXEC;
  how.mode = (uint64_t)mode;
  how.resolve = (uint64_t)resolve;
  int eagain_left = VN_OPENAT2_EAGAIN_RETRIES;
  for (;;) {
    long fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
    if (fd >= 0) {
      free(path);
      return vn_int(env, fd);
    }
    int err = errno;
    if (err == EINTR) continue;
    /* RESOLVE_BENEATH/IN_ROOT: a concurrent rename or mount made ".." unverifiable; the kernel asks for a retry. */
    if (err == EAGAIN && (resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT)) != 0 && --eagain_left > 0) continue;
    vn_throw_errno(env, err, "openat2", "dirfd %d, %s, flags 0x%llx, mode 0%llo, resolve 0x%llx", dir_fd, path,
                   (unsigned long long)how.flags, (unsigned long long)mode, (unsigned long long)resolve);
    free(path);
    return NULL;
  }
}

/*
 * Reopens what an fd (typically an O_PATH fd from openat2) refers to, through its /proc/self/fd magic link:
 * the same inode, never a path walked again, so nothing can be swapped in between. openat2 with
 * RESOLVE_NO_MAGICLINKS would refuse this, hence a plain open here. flags: the access mode plus
 * NONBLOCK/APPEND; creating, truncating or O_PATH/NOFOLLOW make no sense on a reopen.
 */
static napi_value vn_reopen_fd(napi_env env, napi_callback_info info) {
  VN_ARGS(2);
  int fd;
  int64_t flags;
  if (!vn_arg_fd(env, argv[0], "reopenFd", "fd", &fd) ||
      !vn_arg_int(env, argv[1], "reopenFd", "flags", 0, INT_MAX, &flags)) {
    return NULL;
  }
  const int64_t allowed = O_ACCMODE | O_NONBLOCK | O_APPEND | O_CLOEXEC;
  if ((flags & ~allowed) != 0) {
    char msg[256];
    snprintf(msg, sizeof msg,
             "reopenFd: flags 0x%llx include 0x%llx; only the access mode, NONBLOCK, APPEND and CLOEXEC "
             "may be given (no CREAT, TRUNC, PATH, NOFOLLOW or DIRECTORY on a reopen)",
             (unsigned long long)flags, (unsigned long long)(flags & ~allowed));
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return NULL;
  }
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  for (;;) {
    int out = open(link, (int)flags | O_CLOEXEC);
    if (out >= 0) return vn_int(env, out);
    if (errno == EINTR) continue;
    return vn_throw_errno(env, errno, "open", "%s, flags 0x%llx", link, (unsigned long long)flags);
  }
}

static napi_value vn_fstat(napi_env env, napi_callback_info info) {
  VN_ARGS(1);
  int fd;
  if (!vn_arg_fd(env, argv[0], "fstat", "fd", &fd)) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) return vn_throw_errno(env, errno, "fstat", "fd %d", fd);
  return vn_stat_object(env, &st);
}

static napi_value vn_fstatat(napi_env env, napi_callback_info info) {
  VN_ARGS(2);
  int dir_fd;
  if (!vn_arg_fd(env, argv[0], "fstatat", "dirFd", &dir_fd)) return NULL;
  char *name = vn_arg_name(env, argv[1], "fstatat", "name");
  if (name == NULL) return NULL;
  struct stat st;
  if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    vn_throw_errno(env, errno, "fstatat", "dirfd %d, %s, AT_SYMLINK_NOFOLLOW", dir_fd, name);
    free(name);
    return NULL;
  }
  free(name);
  return vn_stat_object(env, &st);
}

/* Appends {name, type} to list[index]; false with an exception pending. */
static bool vn_push_dir_entry(napi_env env, napi_value list, uint32_t index, const struct dirent *e) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return false;
  napi_value entry;
  bool ok = napi_create_object(env, &entry) == napi_ok && vn_set_string(env, entry, "name", e->d_name) &&
            vn_set_string(env, entry, "type", vn_dirent_type(e->d_type)) &&
            napi_set_element(env, list, index, entry) == napi_ok;
  if (!ok) vn_throw_napi(env, "building a NativeDirEntry");
  napi_close_handle_scope(env, scope);
  return ok;
}

static napi_value vn_readdir_fd(napi_env env, napi_callback_info info) {
  VN_ARGS(1);
  int dir_fd;
  if (!vn_arg_fd(env, argv[0], "readdirFd", "dirFd", &dir_fd)) return NULL;
  /* A dup() would share (and move) the caller's directory offset; a fresh open of "." has its own. */
  int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return vn_throw_errno(env, errno, "openat", "dirfd %d, ., O_RDONLY|O_DIRECTORY", dir_fd);
  DIR *dir = fdopendir(fd);
  if (dir == NULL) {
    int err = errno;
    close(fd);
    return vn_throw_errno(env, err, "fdopendir", "fd %d (reopened from dirfd %d)", fd, dir_fd);
  }
  napi_value list;
  if (napi_create_array(env, &list) != napi_ok) {
    closedir(dir);
    vn_throw_napi(env, "napi_create_array");
    return NULL;
  }
  uint32_t count = 0;
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(dir);
    if (e == NULL) {
      int err = errno;
      closedir(dir);
      if (err != 0) return vn_throw_errno(env, err, "readdir", "dirfd %d, after %u entries", dir_fd, count);
      return list;
    }
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (count == VN_MAX_DIR_ENTRIES) {
      closedir(dir);
      return vn_throw_explained(env, E2BIG, "readdir",
                                "readdir(dirfd %d): the directory has more than %d entries; refusing to list it "
                                "(the cap bounds one listing's memory). Split the directory.",
                                dir_fd, VN_MAX_DIR_ENTRIES);
    }
    if (!vn_push_dir_entry(env, list, count, e)) {
      closedir(dir);
      return NULL;
    }
    count++;
  }
}

static napi_value vn_renameat(napi_env env, napi_callback_info info) {
  VN_ARGS(5);
  int old_dir_fd, new_dir_fd;
  bool no_replace;
  if (!vn_arg_fd(env, argv[0], "renameat", "oldDirFd", &old_dir_fd) ||
      !vn_arg_fd(env, argv[2], "renameat", "newDirFd", &new_dir_fd) ||
      !vn_arg_bool(env, argv[4], "renameat", "noReplace", &no_replace)) {
    return NULL;
  }
  char *old_name = vn_arg_name(env, argv[1], "renameat", "oldName");
  if (old_name == NULL) return NULL;
  char *new_name = vn_arg_name(env, argv[3], "renameat", "newName");
  if (new_name == NULL) {
    free(old_name);
    return NULL;
  }
  if (renameat2(old_dir_fd, old_name, new_dir_fd, new_name, no_replace ? RENAME_NOREPLACE : 0) != 0) {
    vn_throw_errno(env, errno, "renameat2", "dirfd %d, %s -> dirfd %d, %s%s", old_dir_fd, old_name, new_dir_fd,
                   new_name, no_replace ? ", RENAME_NOREPLACE" : "");
    free(old_name);
    free(new_name);
    return NULL;
  }
  free(old_name);
  free(new_name);
  return vn_undefined(env);
}

static napi_value vn_unlinkat(napi_env env, napi_callback_info info) {
  VN_ARGS(3);
  int dir_fd;
  bool remove_dir;
  if (!vn_arg_fd(env, argv[0], "unlinkat", "dirFd", &dir_fd) ||
      !vn_arg_bool(env, argv[2], "unlinkat", "removeDir", &remove_dir)) {
    return NULL;
  }
  char *name = vn_arg_name(env, argv[1], "unlinkat", "name");
  if (name == NULL) return NULL;
  if (unlinkat(dir_fd, name, remove_dir ? AT_REMOVEDIR : 0) != 0) {
    vn_throw_errno(env, errno, "unlinkat", "dirfd %d, %s%s", dir_fd, name, remove_dir ? ", AT_REMOVEDIR" : "");
    free(name);
    return NULL;
  }
  free(name);
  return vn_undefined(env);
}

static napi_value vn_mkdirat(napi_env env, napi_callback_info info) {
  VN_ARGS(3);
  int dir_fd;
  int64_t mode;
  if (!vn_arg_fd(env, argv[0], "mkdirat", "dirFd", &dir_fd) ||
      !vn_arg_int(env, argv[2], "mkdirat", "mode", 0, VN_MODE_BITS, &mode)) {
    return NULL;
  }
  char *name = vn_arg_name(env, argv[1], "mkdirat", "name");
  if (name == NULL) return NULL;
  if (mkdirat(dir_fd, name, (mode_t)mode) != 0) {
    vn_throw_errno(env, errno, "mkdirat", "dirfd %d, %s, mode 0%llo", dir_fd, name, (unsigned long long)mode);
    free(name);
    return NULL;
  }
  free(name);
  return vn_undefined(env);
}

static napi_value vn_fchmod(napi_env env, napi_callback_info info) {
  VN_ARGS(2);
  int fd;
  int64_t mode;
  if (!vn_arg_fd(env, argv[0], "fchmod", "fd", &fd) || !vn_arg_int(env, argv[1], "fchmod", "mode", 0, VN_MODE_BITS, &mode)) {
    return NULL;
  }
  if (fchmod(fd, (mode_t)mode) != 0) {
    return vn_throw_errno(env, errno, "fchmod", "fd %d, mode 0%llo", fd, (unsigned long long)mode);
  }
  return vn_undefined(env);
}

static napi_value vn_fchown(napi_env env, napi_callback_info info) {
  VN_ARGS(3);
  int fd;
  int64_t uid, gid;
  /* -1 leaves that id unchanged, as in fchown(2). */
  if (!vn_arg_fd(env, argv[0], "fchown", "fd", &fd) ||
      !vn_arg_int(env, argv[1], "fchown", "uid", -1, (int64_t)UINT32_MAX - 1, &uid) ||
      !vn_arg_int(env, argv[2], "fchown", "gid", -1, (int64_t)UINT32_MAX - 1, &gid)) {
    return NULL;
  }
  if (fchown(fd, (uid_t)uid, (gid_t)gid) != 0) {
    return vn_throw_errno(env, errno, "fchown", "fd %d, uid %lld, gid %lld", fd, (long long)uid, (long long)gid);
  }
  return vn_undefined(env);
}

static napi_value vn_fsync(napi_env env, napi_callback_info info) {
  VN_ARGS(1);
  int fd;
  if (!vn_arg_fd(env, argv[0], "fsync", "fd", &fd)) return NULL;
  if (fsync(fd) != 0) return vn_throw_errno(env, errno, "fsync", "fd %d", fd);
  return vn_undefined(env);
}

static napi_value vn_pread(napi_env env, napi_callback_info info) {
  VN_ARGS(3);
  int fd;
  uint8_t *data;
  size_t len;
  int64_t position;
  if (!vn_arg_fd(env, argv[0], "pread", "fd", &fd) || !vn_arg_bytes(env, argv[1], "pread", "target", &data, &len) ||
      !vn_arg_int(env, argv[2], "pread", "position", 0, VN_MAX_SAFE_INTEGER, &position)) {
    return NULL;
  }
  for (;;) {
    ssize_t n = pread(fd, data, len, (off_t)position);
    if (n >= 0) return vn_int(env, n);
    if (errno == EINTR) continue;
    return vn_throw_errno(env, errno, "pread", "fd %d, %zu bytes at %lld", fd, len, (long long)position);
  }
}

static napi_value vn_pwrite(napi_env env, napi_callback_info info) {
  VN_ARGS(3);
  int fd;
  uint8_t *data;
  size_t len;
  int64_t position;
  if (!vn_arg_fd(env, argv[0], "pwrite", "fd", &fd) || !vn_arg_bytes(env, argv[1], "pwrite", "source", &data, &len) ||
      !vn_arg_int(env, argv[2], "pwrite", "position", 0, VN_MAX_SAFE_INTEGER, &position)) {
    return NULL;
  }
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, data + done, len - done, (off_t)position + (off_t)done);
    if (n > 0) {
      done += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    int err = n < 0 ? errno : EIO;
    if (done == 0) return vn_throw_errno(env, err, "pwrite", "fd %d, %zu bytes at %lld", fd, len, (long long)position);
    return vn_throw_explained(env, err, "pwrite", "pwrite(fd %d, %zu bytes at %lld): %s after %zu bytes were written",
                              fd, len, (long long)position, strerror(err), done);
  }
  return vn_int(env, (int64_t)done);
}

/* ---------------------------------------------------------------- file I/O on the thread pool */

/*
 * preadFull(fd, target, position) / pwriteFull(fd, source, position) / fsyncAsync(fd): the same calls run
 * on libuv's thread pool, each returning a Promise (of the byte count: pread loops until target is full or
 * the file ends, pwrite until all is written). The view is held by a reference until the job completes;
 * when it is a view of a mapShared buffer, the mapping counts the job, and an unmap() meanwhile detaches
 * the buffer at once but leaves the munmap to the last job that finishes, so a thread never copies into
 * memory that is gone. The fd stays the caller's: it must not close it before the promise settles.
 */
typedef enum { VN_IO_READ, VN_IO_WRITE, VN_IO_FSYNC } vn_io_kind;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref view_ref;      /* NULL for fsync */
  vn_mapping *mapping;    /* the mapShared mapping the view is part of, or NULL */
  vn_io_kind kind;
  int fd;
  uint8_t *data;
  size_t len;
  int64_t position;
  size_t done;
  int err;
} vn_io_job;

static const char *vn_io_name(vn_io_kind kind) {
  return kind == VN_IO_READ ? "pread" : kind == VN_IO_WRITE ? "pwrite" : "fsync";
}

static void vn_io_execute(napi_env env, void *data) {
  (void)env;
  vn_io_job *j = data;
  if (j->kind == VN_IO_FSYNC) {
    if (fsync(j->fd) != 0) j->err = errno;
    return;
  }
  while (j->done < j->len) {
    ssize_t n = j->kind == VN_IO_READ ? pread(j->fd, j->data + j->done, j->len - j->done, (off_t)j->position + (off_t)j->done)
                                      : pwrite(j->fd, j->data + j->done, j->len - j->done, (off_t)j->position + (off_t)j->done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      j->err = errno;
      return;
    }
    if (n == 0) {
      if (j->kind == VN_IO_WRITE) j->err = EIO;
      return; /* read: end of file */
    }
    j->done += (size_t)n;
  }
}

static void vn_io_complete(napi_env env, napi_status status, void *data) {
  vn_io_job *j = data;
  if (j->mapping != NULL && --j->mapping->inflight == 0 && j->mapping->unmap_deferred) {
    munmap(j->mapping->addr, j->mapping->len);
    j->mapping->unmap_deferred = false;
  }
  napi_value result = NULL;
  if (status == napi_ok && j->err == 0) {
    napi_create_int64(env, (int64_t)j->done, &result);
    napi_resolve_deferred(env, j->deferred, result);
  } else {
    char msg[640];
    int err = status == napi_ok ? j->err : ECANCELED;
    if (j->done > 0)
      snprintf(msg, sizeof msg, "%s(fd %d, %zu bytes at %lld): %s after %zu bytes", vn_io_name(j->kind), j->fd, j->len, (long long)j->position, strerror(err), j->done);
    else
      snprintf(msg, sizeof msg, "%s(fd %d, %zu bytes at %lld): %s", vn_io_name(j->kind), j->fd, j->len, (long long)j->position, strerror(err));
    result = vn_new_error(env, err, vn_io_name(j->kind), msg);
    if (result == NULL) napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &result);
    napi_reject_deferred(env, j->deferred, result);
  }
  if (j->view_ref != NULL) napi_delete_reference(env, j->view_ref);
  napi_delete_async_work(env, j->work);
  free(j);
}

/* The mapShared mapping a Uint8Array is a view of, or NULL. */
static bool vn_view_mapping(napi_env env, napi_value view, vn_mapping **out) {
  napi_value arraybuffer;
  napi_typedarray_type type;
  size_t length, offset;
  void *ptr;
  *out = NULL;
  if (napi_get_typedarray_info(env, view, &type, &length, &ptr, &arraybuffer, &offset) != napi_ok) return false;
  bool is_ours = false;
  if (napi_check_object_type_tag(env, arraybuffer, &VN_MAPPING_TAG, &is_ours) != napi_ok) return false;
  if (is_ours && napi_unwrap(env, arraybuffer, (void **)out) != napi_ok) return false;
  return true;
}

static napi_value vn_io_start(napi_env env, napi_callback_info info, vn_io_kind kind, const char *fn) {
  VN_ARGS(3);
  vn_io_job *j = calloc(1, sizeof *j);
  if (j == NULL) return vn_throw_errno(env, ENOMEM, "malloc", "%zu", sizeof *j);
  j->kind = kind;
  bool ok = vn_arg_fd(env, argv[0], fn, "fd", &j->fd);
  if (ok && kind != VN_IO_FSYNC)
    ok = vn_arg_bytes(env, argv[1], fn, kind == VN_IO_READ ? "target" : "source", &j->data, &j->len) &&
         vn_arg_int(env, argv[2], fn, "position", 0, VN_MAX_SAFE_INTEGER, &j->position);
  if (!ok) {
    free(j);
    return NULL;
  }
  napi_value promise, name;
  if ((kind != VN_IO_FSYNC && (!vn_view_mapping(env, argv[1], &j->mapping) || napi_create_reference(env, argv[1], 1, &j->view_ref) != napi_ok)) ||
      napi_create_string_utf8(env, fn, NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, vn_io_execute, vn_io_complete, j, &j->work) != napi_ok ||
      napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    if (j->view_ref != NULL) napi_delete_reference(env, j->view_ref);
    if (j->work != NULL) napi_delete_async_work(env, j->work);
    free(j);
    vn_throw_napi(env, "starting a thread-pool file job");
    return NULL;
  }
  if (napi_queue_async_work(env, j->work) != napi_ok) {
    /* The promise is never settled: reject it so no one waits forever. */
    napi_value error = vn_new_error(env, EAGAIN, fn, "napi_queue_async_work failed");
    napi_reject_deferred(env, j->deferred, error);
    if (j->view_ref != NULL) napi_delete_reference(env, j->view_ref);
    napi_delete_async_work(env, j->work);
    free(j);
    return promise;
  }
  if (j->mapping != NULL) j->mapping->inflight++;
  return promise;
}

static napi_value vn_pread_full(napi_env env, napi_callback_info info) {
  return vn_io_start(env, info, VN_IO_READ, "preadFull");
}

static napi_value vn_pwrite_full(napi_env env, napi_callback_info info) {
  return vn_io_start(env, info, VN_IO_WRITE, "pwriteFull");
}

static napi_value vn_fsync_async(napi_env env, napi_callback_info info) {
  return vn_io_start(env, info, VN_IO_FSYNC, "fsyncAsync");
}

static napi_value vn_ftruncate(napi_env env, napi_callback_info info) {
  VN_ARGS(2);
  int fd;
  int64_t size;
  if (!vn_arg_fd(env, argv[0], "ftruncate", "fd", &fd) ||
      !vn_arg_int(env, argv[1], "ftruncate", "sizeBytes", 0, VN_MAX_SAFE_INTEGER, &size)) {
    return NULL;
  }
  if (ftruncate(fd, (off_t)size) != 0) {
    return vn_throw_errno(env, errno, "ftruncate", "fd %d, %lld bytes", fd, (long long)size);
  }
  return vn_undefined(env);
}

/* ---------------------------------------------------------------- module */

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
      {"memfdCreate", NULL, vn_memfd_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapShared", NULL, vn_map_shared, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmap", NULL, vn_unmap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfdCreate", NULL, vn_eventfd_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfdWrite", NULL, vn_eventfd_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unixListen", NULL, vn_unix_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unixAccept", NULL, vn_unix_accept, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendInt64WithFd", NULL, vn_send_int64_with_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvInt64WithFd", NULL, vn_recv_int64_with_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvDiscard", NULL, vn_recv_discard, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pipe", NULL, vn_pipe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readSome", NULL, vn_read_some, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeSome", NULL, vn_write_some, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, vn_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"flockExclusive", NULL, vn_flock_exclusive, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watchReadable", NULL, vn_watch_readable, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watchEventfd", NULL, vn_watch_eventfd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pidfdOpen", NULL, vn_pidfd_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pidfdGetfd", NULL, vn_pidfd_getfd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"kcmpFile", NULL, vn_kcmp_file, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fdRealpath", NULL, vn_fd_realpath, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openat2", NULL, vn_openat2, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reopenFd", NULL, vn_reopen_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fstat", NULL, vn_fstat, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fstatat", NULL, vn_fstatat, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readdirFd", NULL, vn_readdir_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"renameat", NULL, vn_renameat, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unlinkat", NULL, vn_unlinkat, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mkdirat", NULL, vn_mkdirat, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fchmod", NULL, vn_fchmod, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fchown", NULL, vn_fchown, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fsync", NULL, vn_fsync, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pread", NULL, vn_pread, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pwrite", NULL, vn_pwrite, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ftruncate", NULL, vn_ftruncate, NULL, NULL, NULL, napi_enumerable, NULL},
      {"preadFull", NULL, vn_pread_full, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pwriteFull", NULL, vn_pwrite_full, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fsyncAsync", NULL, vn_fsync_async, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok ||
      !vn_define_constants(env, exports, "OPEN_FLAGS", VN_OPEN_FLAGS, sizeof VN_OPEN_FLAGS / sizeof VN_OPEN_FLAGS[0]) ||
      !vn_define_constants(env, exports, "RESOLVE", VN_RESOLVE_FLAGS,
                           sizeof VN_RESOLVE_FLAGS / sizeof VN_RESOLVE_FLAGS[0])) {
    vn_throw_napi(env, "defining the exports");
    return NULL;
  }
  return exports;
}
