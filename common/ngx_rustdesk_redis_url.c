/*
 * Where Redis is, from rustdesk_cluster's URL (and the relay's):
 *
 *     redis://[[user]:password@]host[:port][/db]
 *     redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/name[/db]
 *
 * The first names Redis itself (port 6379 by default); the second the
 * Sentinels that watch a primary known to them as "name" (port 26379 by
 * default): a worker asks them where the primary is before each connect,
 * so that a failover moves every host to the new primary (see
 * ngx_rustdesk_redis.c).  The credentials are the primary's.  Names are
 * resolved now, once (the first address of each): a worker never waits
 * for DNS.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_rustdesk_redis.h"


#define NGX_RUSTDESK_REDIS_SCHEME          "redis://"
#define NGX_RUSTDESK_REDIS_SENTINEL_SCHEME "redis-sentinel://"


static char *ngx_rustdesk_redis_parse_credentials(ngx_conf_t *cf,
    u_char **pos, u_char *last, ngx_rustdesk_redis_conf_t *rc);
static char *ngx_rustdesk_redis_parse_db(u_char *p, u_char *last,
    ngx_rustdesk_redis_conf_t *rc);
static char *ngx_rustdesk_redis_resolve(ngx_conf_t *cf, u_char *p,
    u_char *last, ngx_uint_t default_port, ngx_rustdesk_redis_addr_t *addr);


char *
ngx_rustdesk_redis_parse_url(ngx_conf_t *cf, ngx_str_t *url,
    ngx_rustdesk_redis_conf_t *rc)
{
    u_char                     *p, *last, *hosts, *slash, *comma, *end,
                               *name;
    size_t                      scheme;
    char                       *rv;
    ngx_uint_t                  sentinel;
    ngx_rustdesk_redis_addr_t  *addr, primary;

    p = url->data;
    last = p + url->len;

    if (url->len > sizeof(NGX_RUSTDESK_REDIS_SENTINEL_SCHEME) - 1
        && ngx_strncasecmp(p, (u_char *) NGX_RUSTDESK_REDIS_SENTINEL_SCHEME,
                           sizeof(NGX_RUSTDESK_REDIS_SENTINEL_SCHEME) - 1)
           == 0)
    {
        sentinel = 1;
        scheme = sizeof(NGX_RUSTDESK_REDIS_SENTINEL_SCHEME) - 1;

    } else if (url->len > sizeof(NGX_RUSTDESK_REDIS_SCHEME) - 1
               && ngx_strncasecmp(p, (u_char *) NGX_RUSTDESK_REDIS_SCHEME,
                                  sizeof(NGX_RUSTDESK_REDIS_SCHEME) - 1)
                  == 0)
    {
        sentinel = 0;
        scheme = sizeof(NGX_RUSTDESK_REDIS_SCHEME) - 1;

    } else {
        return "takes a redis://host[:port][/db] or "
               "redis-sentinel://host[:port][,host[:port]...]/name[/db] URL";
    }

    p += scheme;

    rv = ngx_rustdesk_redis_parse_credentials(cf, &p, last, rc);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    hosts = p;
    slash = ngx_strlchr(p, last, '/');

    if (slash == hosts || hosts == last) {
        return "has no host";
    }

    if (!sentinel) {
        rv = ngx_rustdesk_redis_resolve(cf, hosts, slash ? slash : last, 6379,
                                        &primary);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        rc->host = primary.host;
        rc->port = primary.port;

        rv = ngx_rustdesk_redis_parse_db(slash, last, rc);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        /* for the logs: never the password */

        rc->url.data = ngx_pnalloc(cf->pool, scheme + (slash ? slash : last)
                                             - hosts + 1 + NGX_INT_T_LEN);
        if (rc->url.data == NULL) {
            return NGX_CONF_ERROR;
        }

        rc->url.len = ngx_sprintf(rc->url.data, "redis://%*s/%ui",
                                  (slash ? slash : last) - hosts, hosts,
                                  rc->db)
                      - rc->url.data;

        return NGX_CONF_OK;
    }

    /* the Sentinels, then the name of the primary they watch */

    if (slash == NULL || slash + 1 == last || slash[1] == '/') {
        return "has no name of the primary after the Sentinels "
               "(redis-sentinel://host:26379/name)";
    }

    rc->sentinels = ngx_array_create(cf->pool, 3,
                                     sizeof(ngx_rustdesk_redis_addr_t));
    if (rc->sentinels == NULL) {
        return NGX_CONF_ERROR;
    }

    for (p = hosts; /* void */; p = comma + 1) {
        comma = ngx_strlchr(p, slash, ',');
        end = comma ? comma : slash;

        if (end == p) {
            return "has an empty Sentinel address";
        }

        addr = ngx_array_push(rc->sentinels);
        if (addr == NULL) {
            return NGX_CONF_ERROR;
        }

        rv = ngx_rustdesk_redis_resolve(cf, p, end, 26379, addr);
        if (rv != NGX_CONF_OK) {
            return rv;
        }

        if (comma == NULL) {
            break;
        }
    }

    name = slash + 1;
    p = ngx_strlchr(name, last, '/');

    rc->master.len = (p ? p : last) - name;
    rc->master.data = ngx_pnalloc(cf->pool, rc->master.len + 1);
    if (rc->master.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(rc->master.data, name, rc->master.len + 1);

    rv = ngx_rustdesk_redis_parse_db(p, last, rc);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    rc->url.data = ngx_pnalloc(cf->pool, scheme + (slash - hosts) + 2
                                         + rc->master.len + NGX_INT_T_LEN);
    if (rc->url.data == NULL) {
        return NGX_CONF_ERROR;
    }

    rc->url.len = ngx_sprintf(rc->url.data, "redis-sentinel://%*s/%V/%ui",
                              slash - hosts, hosts, &rc->master, rc->db)
                  - rc->url.data;

    return NGX_CONF_OK;
}


/* [[user]:password@]: the password may hold "@", the host follows the last */

static char *
ngx_rustdesk_redis_parse_credentials(ngx_conf_t *cf, u_char **pos,
    u_char *last, ngx_rustdesk_redis_conf_t *rc)
{
    u_char  *p, *at, *colon, *q;

    p = *pos;
    at = NULL;

    for (q = p; q < last; q++) {
        if (*q == '@') {
            at = q;
        }
    }

    if (at == NULL) {
        return NGX_CONF_OK;
    }

    colon = ngx_strlchr(p, at, ':');

    if (colon == NULL || colon + 1 == at) {
        return "has credentials other than [user]:password@";
    }

    rc->password.len = at - (colon + 1);
    rc->password.data = ngx_pnalloc(cf->pool, rc->password.len + 1);
    if (rc->password.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(rc->password.data, colon + 1, rc->password.len + 1);

    rc->user.len = colon - p;

    if (rc->user.len) {
        rc->user.data = ngx_pnalloc(cf->pool, rc->user.len + 1);
        if (rc->user.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(rc->user.data, p, rc->user.len + 1);
    }

    *pos = at + 1;

    return NGX_CONF_OK;
}


/* [/db], p at the slash or NULL */

static char *
ngx_rustdesk_redis_parse_db(u_char *p, u_char *last,
    ngx_rustdesk_redis_conf_t *rc)
{
    ngx_int_t  db;

    rc->db = 0;

    if (p == NULL || p + 1 >= last) {
        return NGX_CONF_OK;
    }

    db = ngx_atoi(p + 1, last - p - 1);

    if (db == NGX_ERROR || db > 1000000) {
        return "has an invalid database number";
    }

    rc->db = db;

    return NGX_CONF_OK;
}


static char *
ngx_rustdesk_redis_resolve(ngx_conf_t *cf, u_char *p, u_char *last,
    ngx_uint_t default_port, ngx_rustdesk_redis_addr_t *addr)
{
    u_char     *host;
    ngx_url_t   u;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url.data = p;
    u.url.len = last - p;
    u.default_port = (in_port_t) default_port;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in redis URL \"%V\"",
                               u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        return "has no usable address";
    }

    host = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (host == NULL) {
        return NGX_CONF_ERROR;
    }

    addr->host.data = host;
    addr->host.len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                                   host, NGX_SOCKADDR_STRLEN, 0);
    host[addr->host.len] = '\0';

    addr->port = ngx_inet_get_port(u.addrs[0].sockaddr);

    return NGX_CONF_OK;
}
