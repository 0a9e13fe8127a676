// hiredis (Debian libhiredis-dev) and its libev adapter, which is header-only: its functions are
// static and the adapter's watcher struct is private, so Swift reaches it through the wrappers below.
// The loop travels as `void *` so that this module exports no libev types of its own (CEV does).
#ifndef COLLABHUB_CHIREDIS_SHIM_H
#define COLLABHUB_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>
#include <sys/time.h>
#include <sys/socket.h>

typedef void (*chub_redis_reply_cb)(redisAsyncContext *, void *, void *);
typedef void (*chub_redis_status_cb)(const redisAsyncContext *, int);

static inline int chub_redis_attach(void *loop, redisAsyncContext *ac) {
    return redisLibevAttach((struct ev_loop *)loop, ac);
}
static inline int chub_redis_command(redisAsyncContext *ac, chub_redis_reply_cb cb, void *priv, int argc,
                                     const char **argv, const size_t *lens) {
    return redisAsyncCommandArgv(ac, cb, priv, argc, argv, lens);
}
static inline int chub_redis_on_connect(redisAsyncContext *ac, chub_redis_status_cb cb) {
    return redisAsyncSetConnectCallback(ac, (redisConnectCallback *)cb);
}
static inline int chub_redis_on_disconnect(redisAsyncContext *ac, chub_redis_status_cb cb) {
    return redisAsyncSetDisconnectCallback(ac, (redisDisconnectCallback *)cb);
}
static inline void *chub_redis_data(const redisAsyncContext *ac) { return ac->data; }
static inline void chub_redis_set_data(redisAsyncContext *ac, void *data) { ac->data = data; }
static inline const char *chub_redis_errstr(const redisAsyncContext *ac) { return ac->errstr; }
// TCP keepalive on an async connection's socket (a Redis that vanished is noticed by the kernel).
static inline int chub_redis_keepalive(redisAsyncContext *ac) { return redisEnableKeepAlive(&ac->c); }
// Gives up on a connection now: redisAsyncDisconnect waits for every pending reply, which never comes
// from a Redis that stopped answering. The loop then sees the socket fail and hiredis its error path.
static inline void chub_redis_abort(redisAsyncContext *ac) { shutdown(ac->c.fd, SHUT_RDWR); }
static inline redisContext *chub_redis_connect_sync(const char *host, int port, double seconds) {
    struct timeval tv = { (time_t)seconds, (suseconds_t)((seconds - (time_t)seconds) * 1e6) };
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c && !c->err) redisSetTimeout(c, tv);
    return c;
}
#endif
