/*
 * Secure TCP on a framed session (PROTOCOL.md section 8): the signed
 * ephemeral box key offered first, the client's KeyExchange that decides,
 * then secretbox framing with a counter nonce each way.  Heartbeats (empty
 * or one-byte frames) stay plain.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include <sodium.h>

#include "ngx_rustdesk_tcp.h"


static ngx_int_t ngx_rustdesk_tcp_key_exchange(ngx_rustdesk_tcp_t *t,
    ngx_rustdesk_msg_t *m);
static void ngx_rustdesk_tcp_nonce(u_char *nonce, uint64_t seq);


ngx_int_t
ngx_rustdesk_tcp_secure(ngx_rustdesk_tcp_t *t, u_char *sign_sk)
{
    u_char                      pk[crypto_box_PUBLICKEYBYTES];
    u_char                      signed_pk[crypto_sign_BYTES
                                          + crypto_box_PUBLICKEYBYTES];
    ngx_connection_t           *c;
    ProtobufCBinaryData         keys[1];
    Hbb__KeyExchange            kx;
    Hbb__RendezvousMessage      out;
    unsigned long long          len;

    c = t->session->connection;

    t->secure = ngx_pcalloc(c->pool, sizeof(ngx_rustdesk_tcp_secure_t));
    if (t->secure == NULL) {
        return NGX_ERROR;
    }

    /* an ephemeral curve25519 key, its public half signed by the server */

    crypto_box_keypair(pk, t->secure->box_sk);

    if (crypto_sign(signed_pk, &len, pk, sizeof(pk), sign_sk) != 0) {
        return NGX_ERROR;
    }

    keys[0].data = signed_pk;
    keys[0].len = (size_t) len;

    hbb__key_exchange__init(&kx);
    kx.n_keys = 1;
    kx.keys = keys;

    hbb__rendezvous_message__init(&out);
    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_KEY_EXCHANGE;
    out.key_exchange = &kx;

    return ngx_rustdesk_tcp_send(t, &out);
}


/*
 * The first message decides: NGX_OK when it was the client's KeyExchange
 * (the session is keyed), NGX_DECLINED when it is anything else (an older
 * client, or one that skips it: plain from here on, the message goes to
 * the handler), NGX_ERROR for a KeyExchange that does not open.
 */

ngx_int_t
ngx_rustdesk_tcp_secure_decide(ngx_rustdesk_tcp_t *t, ngx_rustdesk_msg_t *m)
{
    t->secure->decided = 1;

    if (m->union_case != HBB__RENDEZVOUS_MESSAGE__UNION_KEY_EXCHANGE) {
        return NGX_DECLINED;
    }

    return ngx_rustdesk_tcp_key_exchange(t, m);
}


/*
 * The client's KeyExchange{[its box public key, crypto_box(32-byte key,
 * zero nonce, our box public key, its box secret key)]}: from here on
 * every frame longer than one byte is a secretbox (PROTOCOL.md section 8).
 */

static ngx_int_t
ngx_rustdesk_tcp_key_exchange(ngx_rustdesk_tcp_t *t, ngx_rustdesk_msg_t *m)
{
    u_char             nonce[crypto_box_NONCEBYTES];
    ngx_connection_t  *c;
    Hbb__KeyExchange  *kx;

    c = t->session->connection;
    kx = m->key_exchange;

    if (kx == NULL || kx->n_keys != 2
        || kx->keys[0].len != crypto_box_PUBLICKEYBYTES
        || kx->keys[1].len != 32 + crypto_box_MACBYTES)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: client sent a malformed key exchange");
        return NGX_ERROR;
    }

    ngx_memzero(nonce, sizeof(nonce));

    if (crypto_box_open_easy(t->secure->key, kx->keys[1].data,
                             kx->keys[1].len, nonce, kx->keys[0].data,
                             t->secure->box_sk)
        != 0)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: client sent a key exchange that does not "
                      "open");
        return NGX_ERROR;
    }

    sodium_memzero(t->secure->box_sk, sizeof(t->secure->box_sk));

    t->secure->on = 1;

    ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "rustdesk: secure tcp established");

    return NGX_OK;
}


/* Opens a received frame in place once keyed: NGX_ERROR is logged. */

ngx_int_t
ngx_rustdesk_tcp_secure_open(ngx_rustdesk_tcp_t *t, u_char *payload,
    size_t *len)
{
    u_char             nonce[crypto_secretbox_NONCEBYTES];
    ngx_connection_t  *c;

    if (!t->secure->on || *len <= 1) {
        /* not keyed yet, or a heartbeat */
        return NGX_OK;
    }

    c = t->session->connection;

    if (*len < crypto_secretbox_MACBYTES) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: client sent an encrypted frame of %uz "
                      "bytes", *len);
        return NGX_ERROR;
    }

    ngx_rustdesk_tcp_nonce(nonce, ++t->secure->recv_seq);

    if (crypto_secretbox_open_easy(payload, payload, *len, nonce,
                                   t->secure->key)
        != 0)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: client sent a frame that does not "
                      "decrypt");
        return NGX_ERROR;
    }

    *len -= crypto_secretbox_MACBYTES;

    return NGX_OK;
}


/* What sealing adds to a frame's content: the MAC once keyed, else 0. */

size_t
ngx_rustdesk_tcp_secure_overhead(ngx_rustdesk_tcp_t *t)
{
    return (t->secure && t->secure->on) ? crypto_secretbox_MACBYTES : 0;
}


/*
 * A frame's content at dst: payload sealed with the next nonce once keyed,
 * else payload as it is.  payload may lie inside dst's room (at dst plus
 * the overhead: sealed in place).
 */

void
ngx_rustdesk_tcp_secure_seal(ngx_rustdesk_tcp_t *t, u_char *dst,
    u_char *payload, size_t len)
{
    u_char  nonce[crypto_secretbox_NONCEBYTES];

    if (ngx_rustdesk_tcp_secure_overhead(t) == 0) {
        if (dst != payload) {
            ngx_memmove(dst, payload, len);
        }

        return;
    }

    ngx_rustdesk_tcp_nonce(nonce, ++t->secure->send_seq);
    crypto_secretbox_easy(dst, payload, len, nonce, t->secure->key);
}


/* The nonce of message seq: its little-endian u64, then zeros. */

static void
ngx_rustdesk_tcp_nonce(u_char *nonce, uint64_t seq)
{
    ngx_uint_t  i;

    ngx_memzero(nonce, crypto_secretbox_NONCEBYTES);

    for (i = 0; i < 8; i++) {
        nonce[i] = (u_char) (seq >> (8 * i));
    }
}
