/*
 * Relay tickets in the cluster's Redis: the two scripts and their
 * answers.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_rustdesk_tickets.h"


#define NGX_RUSTDESK_TICKETS_KEY_MAX                                          \
    (NGX_RUSTDESK_CLUSTER_PREFIX_MAX + sizeof("ticket:") - 1                  \
     + NGX_RUSTDESK_BROKERED_UUID_MAX)


static ngx_int_t ngx_rustdesk_tickets_eval(const char **argv, size_t *len,
    const char *script, size_t script_len, u_char *key, ngx_str_t *prefix,
    ngx_str_t *uuid);


/* KEYS[1] the session, ARGV[1] the peer's id, ARGV[2] the expiry in ms */
static const char  ngx_rustdesk_tickets_record_lua[] =
    "if ARGV[1] ~= '' or redis.call('EXISTS', KEYS[1]) == 0 then "
        "redis.call('HSET', KEYS[1], 'id', ARGV[1]) "
    "end "
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
    "return 1";

/* KEYS[1] the session, ARGV[1] the tickets a session has */
static const char  ngx_rustdesk_tickets_take_lua[] =
    "local id = redis.call('HGET', KEYS[1], 'id') "
    "if not id then return false end "
    "if redis.call('HINCRBY', KEYS[1], 'taken', 1) > tonumber(ARGV[1]) then "
        "return 0 "
    "end "
    "return id";


ngx_int_t
ngx_rustdesk_tickets_record(ngx_rustdesk_redis_t *r, ngx_str_t *prefix,
    ngx_str_t *uuid, ngx_str_t *id, ngx_msec_t ttl)
{
    u_char       key[NGX_RUSTDESK_TICKETS_KEY_MAX];
    u_char       ms[NGX_INT_T_LEN];
    size_t       len[6];
    const char  *argv[6];

    if (ngx_rustdesk_tickets_eval(argv, len, ngx_rustdesk_tickets_record_lua,
                                  sizeof(ngx_rustdesk_tickets_record_lua) - 1,
                                  key, prefix, uuid)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    argv[4] = id->len ? (const char *) id->data : "";
    len[4] = ngx_min(id->len, NGX_RUSTDESK_BROKERED_ID_MAX);
    argv[5] = (const char *) ms;
    len[5] = ngx_sprintf(ms, "%M", ttl) - ms;

    return ngx_rustdesk_redis_send(r, 6, argv, len);
}


ngx_rustdesk_redis_cmd_t *
ngx_rustdesk_tickets_take(ngx_rustdesk_redis_t *r, ngx_str_t *prefix,
    ngx_str_t *uuid, ngx_rustdesk_redis_handler_pt handler, void *data)
{
    u_char       key[NGX_RUSTDESK_TICKETS_KEY_MAX];
    u_char       n[NGX_INT_T_LEN];
    size_t       len[5];
    const char  *argv[5];

    if (ngx_rustdesk_tickets_eval(argv, len, ngx_rustdesk_tickets_take_lua,
                                  sizeof(ngx_rustdesk_tickets_take_lua) - 1,
                                  key, prefix, uuid)
        != NGX_OK)
    {
        return NULL;
    }

    argv[4] = (const char *) n;
    len[4] = ngx_sprintf(n, "%d", NGX_RUSTDESK_BROKERED_TICKETS) - n;

    if (handler == NULL) {
        (void) ngx_rustdesk_redis_send(r, 5, argv, len);
        return NULL;
    }

    return ngx_rustdesk_redis_command(r, handler, data, 5, argv, len);
}


ngx_int_t
ngx_rustdesk_tickets_taken(redisReply *reply, ngx_str_t *id)
{
    if (reply == NULL) {
        return NGX_ERROR;
    }

    switch (reply->type) {

    case REDIS_REPLY_NIL:
        return NGX_DECLINED;

    case REDIS_REPLY_INTEGER:
        return NGX_BUSY;

    case REDIS_REPLY_STRING:
        id->len = ngx_min(reply->len, NGX_RUSTDESK_BROKERED_ID_MAX);
        ngx_memcpy(id->data, reply->str, id->len);
        return NGX_OK;

    default:
        /* an error: a script refused (NOSCRIPT, OOM, ...) */
        return NGX_ERROR;
    }
}


/* EVAL script 1 <prefix>ticket:<uuid>, in argv[0..3]; key is the key's room */

static ngx_int_t
ngx_rustdesk_tickets_eval(const char **argv, size_t *len, const char *script,
    size_t script_len, u_char *key, ngx_str_t *prefix, ngx_str_t *uuid)
{
    u_char  *p;

    if (uuid->len == 0 || uuid->len > NGX_RUSTDESK_BROKERED_UUID_MAX
        || prefix->len > NGX_RUSTDESK_CLUSTER_PREFIX_MAX)
    {
        return NGX_DECLINED;
    }

    p = ngx_cpymem(key, prefix->data, prefix->len);
    p = ngx_cpymem(p, "ticket:", sizeof("ticket:") - 1);
    p = ngx_cpymem(p, uuid->data, uuid->len);

    argv[0] = "EVAL";
    len[0] = 4;
    argv[1] = script;
    len[1] = script_len;
    argv[2] = "1";
    len[2] = 1;
    argv[3] = (const char *) key;
    len[3] = p - key;

    return NGX_OK;
}
