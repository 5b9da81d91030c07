/* The addon's fd hand-over functions (addon_fdpass.c) and the fd-array reader js_open uses for
 * its adopt option. */
#ifndef WEFT_ADDON_FDPASS_H
#define WEFT_ADDON_FDPASS_H

#include <node_api.h>

/* Reads a JS array of fds (integers >= -1) into out[0..max); its length, or -1 after throwing
 * (the message names `what`). */
int addon_get_fd_array(napi_env env, napi_value array, const char *what, int *out, int max);
/* A JS array of the first n fds. */
napi_value addon_fd_array(napi_env env, const int *fds, int n);
/* Adds fdListen, fdServe, fdReceive, closeFd to exports. */
napi_status addon_fdpass_register(napi_env env, napi_value exports);

#endif
