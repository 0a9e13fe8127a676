#ifndef COLLABHUB_COPENSSL_SOCKET_BIO_H
#define COLLABHUB_COPENSSL_SOCKET_BIO_H
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
// A BIO on a socket that moves TLS records with recv and send (MSG_NOSIGNAL), for sessions whose records
// OpenSSL encrypts in user space. OpenSSL's socket BIO (SSL_set_fd) uses read and write, which go through
// the file layer first (fdget_pos, vfs_read/vfs_write: ~6% of the hub's CPU in a wss echo under perf); the
// plain path already uses recv/send. Kernel TLS needs OpenSSL's own socket BIO (it sets the keys through
// it), so TLSContext uses this one only where the kernel offers no `tls` ULP.
// The fd is the BIO's data; the BIO never closes it (the Socket owns it, like SSL_set_fd's BIO_NOCLOSE).
static inline int chub_sbio_fd(BIO *b) { return (int)(intptr_t)BIO_get_data(b); }
static inline int chub_sbio_write(BIO *b, const char *data, int len) {
    BIO_clear_retry_flags(b);
    errno = 0;
    ssize_t n = send(chub_sbio_fd(b), data, (size_t)len, MSG_NOSIGNAL);
    // OpenSSL's rule for sockets: EAGAIN, EINTR, ENOTCONN (still connecting), EINPROGRESS... are retries.
    if (n <= 0 && BIO_sock_non_fatal_error(errno)) BIO_set_retry_write(b);
    return (int)n;
}
static inline int chub_sbio_read(BIO *b, char *data, int len) {
    BIO_clear_retry_flags(b);
    if (data == NULL || len <= 0) return 0;
    errno = 0;
    ssize_t n = recv(chub_sbio_fd(b), data, (size_t)len, 0);
    if (n < 0 && BIO_sock_non_fatal_error(errno)) BIO_set_retry_read(b);
    else if (n == 0) BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    return (int)n;
}
static inline int chub_sbio_puts(BIO *b, const char *s) { return chub_sbio_write(b, s, (int)strlen(s)); }
static inline long chub_sbio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)num;
    switch (cmd) {
    case BIO_C_GET_FD:  // SSL_get_fd
        if (ptr != NULL) *(int *)ptr = chub_sbio_fd(b);
        return chub_sbio_fd(b);
    case BIO_CTRL_EOF: return BIO_test_flags(b, BIO_FLAGS_IN_EOF) ? 1 : 0;
    case BIO_CTRL_FLUSH:  // send() leaves nothing buffered here
    case BIO_CTRL_DUP: return 1;
    default: return 0;  // no kernel TLS (BIO_CTRL_GET_KTLS_*), no close flag, nothing pending
    }
}
static inline int chub_sbio_create(BIO *b) { BIO_set_init(b, 0); return 1; }
static inline int chub_sbio_destroy(BIO *b) { BIO_set_data(b, NULL); BIO_set_init(b, 0); return 1; }
// The method: call once per process (TLSContext keeps it); NULL when OpenSSL cannot make one.
static inline BIO_METHOD *chub_sbio_method_new(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "collabhub socket (recv/send)");
    if (m == NULL) return NULL;
    if (!BIO_meth_set_write(m, chub_sbio_write) || !BIO_meth_set_read(m, chub_sbio_read)
        || !BIO_meth_set_puts(m, chub_sbio_puts) || !BIO_meth_set_ctrl(m, chub_sbio_ctrl)
        || !BIO_meth_set_create(m, chub_sbio_create) || !BIO_meth_set_destroy(m, chub_sbio_destroy)) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}
// A BIO of that method on `fd`, for both directions of a session (SSL_set_bio(ssl, bio, bio)).
static inline BIO *chub_sbio_new(const BIO_METHOD *m, int fd) {
    BIO *b = BIO_new(m);
    if (b == NULL) return NULL;
    BIO_set_data(b, (void *)(intptr_t)fd);
    BIO_set_init(b, 1);
    return b;
}
// Whether a TLS call that returned <= 0 only stopped for the socket: SSL_ERROR_WANT_READ or _WANT_WRITE,
// told from the session's state and its BIO's retry flags (what SSL_get_error looks at after the thread's
// error queue); 0 when it did not (then SSL_get_error says why). The error queue plays no part, so it need
// not be emptied before every call (ERR_peek_error: ~200 instructions, twice per echo round).
static inline int chub_ssl_blocked(const SSL *s) {
    int want = SSL_want(s);
    if (want == SSL_READING) {
        BIO *b = SSL_get_rbio(s);
        if (b != NULL && BIO_should_read(b)) return SSL_ERROR_WANT_READ;
    } else if (want == SSL_WRITING) {
        BIO *b = SSL_get_wbio(s);
        if (b != NULL && BIO_should_write(b)) return SSL_ERROR_WANT_WRITE;
    }
    return 0;
}
#endif
