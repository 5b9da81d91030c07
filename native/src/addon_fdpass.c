/* N-API surface of the fd hand-over (fdpass.c), used by src/engine/handover/ only:
 *   fdListen(path) -> fd                 the holder's listening socket (mode 0600)
 *   fdServe(listenFd, fds, timeoutMs) -> boolean   blocks until handed over (true) or timeout
 *   fdReceive(path, timeoutMs) -> fds    [] when no holder listens; throws on a broken hand-over
 *   closeFd(fd)
 * fdServe blocks its thread: only the holder process, which does nothing else, calls it. */
#include "addon_fdpass.h"

#include <stdio.h>
#include <unistd.h>

#include "fdpass.h"

int addon_get_fd_array(napi_env env, napi_value array, const char *what, int *out, int max) {
  bool is_array = false;
  uint32_t n = 0;
  char msg[160];
  if (napi_is_array(env, array, &is_array) != napi_ok || !is_array || napi_get_array_length(env, array, &n) != napi_ok ||
      n > (uint32_t)max) {
    snprintf(msg, sizeof msg, "%s must be an array of at most %d fds", what, max);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    int32_t fd;
    if (napi_get_element(env, array, i, &v) != napi_ok || napi_get_value_int32(env, v, &fd) != napi_ok || fd < -1) {
      snprintf(msg, sizeof msg, "%s[%u] must be an fd (an integer >= -1)", what, i);
      napi_throw_type_error(env, NULL, msg);
      return -1;
    }
    out[i] = fd;
  }
  return (int)n;
}

napi_value addon_fd_array(napi_env env, const int *fds, int n) {
  napi_value array, v;
  if (napi_create_array_with_length(env, (size_t)n, &array) != napi_ok) return NULL;
  for (int i = 0; i < n; i++) {
    if (napi_create_int32(env, fds[i], &v) != napi_ok || napi_set_element(env, array, (uint32_t)i, v) != napi_ok) return NULL;
  }
  return array;
}

/* argv[0] as a path string of at most 107 bytes; 0, or -1 after throwing. */
static int get_path(napi_env env, napi_value v, const char *fn, char *path, size_t len) {
  size_t copied = 0;
  if (napi_get_value_string_utf8(env, v, path, len, &copied) != napi_ok || copied >= len - 1) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s: the first argument must be a socket path of at most %zu bytes", fn, len - 2);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

static int get_int(napi_env env, napi_value v, const char *what, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be an integer", what);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

static napi_value js_fd_listen(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  char path[109], err[256] = "";
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, NULL, "fdListen(path)");
    return NULL;
  }
  if (get_path(env, argv[0], "fdListen", path, sizeof path) < 0) return NULL;
  int fd = fdpass_listen(path, err, sizeof err);
  if (fd < 0) {
    napi_throw_error(env, NULL, err);
    return NULL;
  }
  napi_create_int32(env, fd, &result);
  return result;
}

static napi_value js_fd_serve(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  int fds[FDPASS_MAX];
  int32_t listen_fd, timeout_ms;
  char err[256] = "";
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    napi_throw_type_error(env, NULL, "fdServe(listenFd, fds, timeoutMs)");
    return NULL;
  }
  if (get_int(env, argv[0], "fdServe: listenFd", &listen_fd) < 0) return NULL;
  int n = addon_get_fd_array(env, argv[1], "fdServe: fds", fds, FDPASS_MAX);
  if (n < 0 || get_int(env, argv[2], "fdServe: timeoutMs", &timeout_ms) < 0) return NULL;
  int rc = fdpass_serve(listen_fd, fds, n, timeout_ms, err, sizeof err);
  if (rc < 0) {
    napi_throw_error(env, NULL, err);
    return NULL;
  }
  napi_get_boolean(env, rc == 1, &result);
  return result;
}

static napi_value js_fd_receive(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int fds[FDPASS_MAX];
  int32_t timeout_ms;
  char path[109], err[256] = "";
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "fdReceive(path, timeoutMs)");
    return NULL;
  }
  if (get_path(env, argv[0], "fdReceive", path, sizeof path) < 0 || get_int(env, argv[1], "fdReceive: timeoutMs", &timeout_ms) < 0)
    return NULL;
  int n = fdpass_receive(path, fds, FDPASS_MAX, timeout_ms, err, sizeof err);
  if (n < 0) {
    napi_throw_error(env, NULL, err);
    return NULL;
  }
  return addon_fd_array(env, fds, n);
}

static napi_value js_close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, NULL, "closeFd(fd)");
    return NULL;
  }
  if (get_int(env, argv[0], "closeFd: fd", &fd) < 0) return NULL;
  if (fd >= 0) close(fd);
  return NULL;
}

napi_status addon_fdpass_register(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"fdListen", NULL, js_fd_listen, NULL, NULL, NULL, napi_default, NULL},
      {"fdServe", NULL, js_fd_serve, NULL, NULL, NULL, napi_default, NULL},
      {"fdReceive", NULL, js_fd_receive, NULL, NULL, NULL, napi_default, NULL},
      {"closeFd", NULL, js_close_fd, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
