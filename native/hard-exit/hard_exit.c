/*
 * _exit(2), exposed to JavaScript. process.exit() stops every worker thread, joins them and
 * shuts libuv's thread pool down: with a Kafka client's native call still running on one of
 * those threads it crashes or waits forever. _exit ends the process at once; the kernel closes
 * its sockets. The forwarder calls it only when its MQTT side is finished (docs/DESIGN.md).
 */
#include <node_api.h>
#include <unistd.h>

static napi_value HardExit(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t code = 1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= 1) {
    napi_get_value_int32(env, argv[0], &code);
  }
  _exit(code & 0xff);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "hardExit", NAPI_AUTO_LENGTH, HardExit, NULL, &fn) != napi_ok)
    return NULL;
  if (napi_set_named_property(env, exports, "hardExit", fn) != napi_ok) return NULL;
  return exports;
}
