#ifndef COLLABHUB_COPENSSL_SHIM_H
#define COLLABHUB_COPENSSL_SHIM_H
#include <openssl/sha.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/bio.h>
#include "socket_bio.h"
// Macros over SSL_CTX_ctrl/SSL_ctrl that Swift cannot call.
static inline int chub_ssl_ctx_min_tls12(SSL_CTX *ctx) { return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); }
static inline long chub_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
// No SSL_MODE_RELEASE_BUFFERS: a busy session keeps its record buffers, an idle one gives them back
// (SSL_free_buffers, EventLoop's TLSBuffers) instead of freeing and allocating them on every read and write.
static inline long chub_ssl_modes(void) {
    return SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
}
// Read-ahead: one read() takes every record the socket holds, instead of a header and a body per record.
static inline void chub_ssl_ctx_read_ahead(SSL_CTX *ctx) { SSL_CTX_set_read_ahead(ctx, 1); }
// SSL_OP_ENABLE_KTLS: where the kernel offers kernel TLS (the `tls` ULP) and the cipher suits it, OpenSSL
// hands the record layer to the kernel after the handshake; elsewhere it is ignored (user-space records).
static inline uint64_t chub_ssl_server_options(void) {
    return SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_ENABLE_KTLS;
}
// Which record path a session uses (after its handshake): 1 when the kernel encrypts / decrypts.
static inline int chub_ssl_ktls_send(SSL *ssl) { BIO *b = SSL_get_wbio(ssl); return b != NULL && BIO_get_ktls_send(b) ? 1 : 0; }
static inline int chub_ssl_ktls_recv(SSL *ssl) { BIO *b = SSL_get_rbio(ssl); return b != NULL && BIO_get_ktls_recv(b) ? 1 : 0; }
// The TLSContext a session belongs to (the SSL_CTX's app data).
static inline void chub_ssl_ctx_set_owner(SSL_CTX *ctx, void *owner) { SSL_CTX_set_app_data(ctx, owner); }
static inline void *chub_ssl_owner(const SSL *ssl) { return SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)); }
static inline int chub_ssl_cb_handshake_done(void) { return SSL_CB_HANDSHAKE_DONE; }
// AES-128-GCM first (ten AES rounds against AES-256's fourteen, and every kTLS kernel has it), then
// AES-256-GCM and ChaCha20-Poly1305 (for clients without AES instructions); TLS 1.2 likewise, ECDHE only.
static inline int chub_ssl_ctx_prefer_aes128(SSL_CTX *ctx) {
    return SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256")
        && SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
}
// Set once: the first caller gets 1, every later one 0 (reporting a TLS path once per process).
static inline int chub_first_time(int *flag) { return __atomic_exchange_n(flag, 1, __ATOMIC_ACQ_REL) == 0; }
// No server-side session cache: every cached session costs memory per client; resumption still
// works through stateless TLS 1.3 tickets.
static inline long chub_ssl_ctx_no_session_cache(SSL_CTX *ctx) { return SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); }
static inline int chub_ssl_set_tlsext_host_name(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }
// ALPN: choose http/1.1 when the client offers it (WebSocket upgrades are HTTP/1.1).
static inline int chub_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                   const unsigned char *in, unsigned int inlen, void *arg) {
    static const unsigned char h11[] = { 8, 'h','t','t','p','/','1','.','1' };
    if (SSL_select_next_proto((unsigned char **)out, outlen, h11, sizeof(h11), in, inlen) == OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_OK;
    return SSL_TLSEXT_ERR_NOACK;
}
static inline void chub_ssl_ctx_alpn_http11(SSL_CTX *ctx) { SSL_CTX_set_alpn_select_cb(ctx, chub_alpn_select, NULL); }
#endif
