// Thin wrappers for libev's initialisation macros, which Swift cannot call.
// Debian ships no pkg-config file for libev, so the module map links `ev` directly.
#ifndef COLLABHUB_CEV_SHIM_H
#define COLLABHUB_CEV_SHIM_H
#include <ev.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <malloc.h>

typedef void (*chub_io_cb)(struct ev_loop *, ev_io *, int);
typedef void (*chub_timer_cb)(struct ev_loop *, ev_timer *, int);
typedef void (*chub_async_cb)(struct ev_loop *, ev_async *, int);
typedef void (*chub_prepare_cb)(struct ev_loop *, ev_prepare *, int);
typedef void (*chub_signal_cb)(struct ev_loop *, ev_signal *, int);

static inline void chub_io_init(ev_io *w, chub_io_cb cb, int fd, int events) { ev_io_init(w, cb, fd, events); }
static inline void chub_io_set(ev_io *w, int fd, int events) { ev_io_set(w, fd, events); }
static inline void chub_timer_init(ev_timer *w, chub_timer_cb cb, double after, double repeat) { ev_timer_init(w, cb, after, repeat); }
static inline void chub_timer_set(ev_timer *w, double after, double repeat) { ev_timer_set(w, after, repeat); }
static inline void chub_async_init(ev_async *w, chub_async_cb cb) { ev_async_init(w, cb); }
static inline void chub_prepare_init(ev_prepare *w, chub_prepare_cb cb) { ev_prepare_init(w, cb); }
static inline void chub_signal_init(ev_signal *w, chub_signal_cb cb, int sig) { ev_signal_init(w, cb, sig); }
static inline int chub_is_active(void *w) { return ev_is_active((ev_watcher *)w); }
static inline struct ev_loop *chub_default_loop(void) { return ev_default_loop(EVFLAG_AUTO); }

// A cell written by one thread and read by others: relaxed atomic load and store (two plain moves on
// x86), inlined into Swift. Histogram buckets live in one allocation of these.
static inline void chub_relaxed_add(long *p, long n) {
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
static inline long chub_relaxed_load(const long *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline int chub_errno(void) { return errno; }
// send, sendmsg and recv as plain system calls (`syscall` sets errno and returns -1 the same way): glibc's
// wrappers are cancellation points that switch asynchronous cancellation on and off around the call, ~35
// instructions each, and the hub sends once per recipient. No thread of the hub is ever cancelled.
static inline long chub_send(int fd, const void *buf, size_t len, int flags) {
    return syscall(SYS_sendto, fd, buf, len, flags, NULL, 0);
}
static inline long chub_sendmsg(int fd, const struct msghdr *msg, int flags) {
    return syscall(SYS_sendmsg, fd, msg, flags);
}
static inline long chub_recv(int fd, void *buf, size_t len, int flags) {
    return syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
}
// Heap bytes in use (every arena, plus blocks mapped on their own): glibc's mallinfo2.
static inline size_t chub_heap_bytes(void) {
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}
static inline void chub_ignore_sigpipe(void) {
    signal(SIGPIPE, SIG_IGN);
    // A file-size limit (RLIMIT_FSIZE) must fail a write with EFBIG, not kill the hub.
    signal(SIGXFSZ, SIG_IGN);
}
static inline int chub_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}
// accept4 is declared only under _GNU_SOURCE, which would make this module disagree with Glibc's.
extern int accept4(int, struct sockaddr *, socklen_t *, int);
static inline int chub_accept(int fd, struct sockaddr *a, socklen_t *l) {
    return accept4(fd, a, l, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
#endif
