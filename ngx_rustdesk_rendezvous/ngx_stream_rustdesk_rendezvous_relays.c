/*
 * The relay servers offered to peers (PROTOCOL.md section 6): in turn,
 * and when more than one is configured, only among those that accepted a
 * TCP connection in the last check, made every 3 s by each worker as the
 * reference does.  When none passes, all are offered.
 *
 * rustdesk_relay_servers and rustdesk_local_ip may hold variables (a map,
 * geo, split_clients or geoip2 variable): they are then evaluated for the
 * requester's session, or for a session made for another client address
 * (relay_session()).  Each distinct value that names more than one relay
 * is a set of its own, checked and rotated as the configured list is;
 * each worker keeps the sets it has met in a tree, the least recently
 * used one dropped beyond 64.  Such values are never resolved (a worker
 * does not wait for DNS): their IP addresses are checked, names are
 * offered unchecked.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


#define NGX_RUSTDESK_RELAY_PORT         21117
#define NGX_RUSTDESK_RELAY_CHECK_EVERY  3000
#define NGX_RUSTDESK_RELAY_CHECK_WAIT   3000
#define NGX_RUSTDESK_RELAY_SETS         64      /* sets a worker keeps */
#define NGX_RUSTDESK_RELAY_SET_MAX      16      /* relays in one value */


typedef struct ngx_stream_rustdesk_relay_set_s
    ngx_stream_rustdesk_relay_set_t;

typedef struct {
    ngx_peer_connection_t              pc;
    ngx_stream_rustdesk_relay_set_t   *set;
    ngx_uint_t                         healthy;
    ngx_uint_t                         busy;
    ngx_uint_t                         unchecked;   /* a name in a value */
} ngx_stream_rustdesk_relay_check_t;

/*
 * The configured list, or a value with variables that named several
 * relays: the relays, their checks and whose turn it is.
 */
struct ngx_stream_rustdesk_relay_set_s {
    ngx_str_node_t                      sn;         /* relays, comma-joined */
    ngx_queue_t                         queue;      /* most recent first */
    ngx_pool_t                         *pool;       /* NULL: configured */
    ngx_str_t                          *names;      /* NUL-terminated */
    ngx_uint_t                          n;
    ngx_stream_rustdesk_relay_check_t  *checks;     /* NULL: not checked */
    ngx_uint_t                          turn;
    ngx_uint_t                          down;       /* all down, logged */
};

/*
 * The session relay_session() makes for another client address: one a
 * worker, made anew for each use (values are evaluated synchronously).
 */
typedef struct {
    ngx_stream_session_t                session;
    ngx_connection_t                    connection;
    struct sockaddr_storage             sockaddr;
    u_char                              text[NGX_SOCKADDR_STRLEN];
    void                              **ctx;        /* NULL: no variables */
    ngx_stream_variable_value_t        *variables;
    ngx_uint_t                          nvariables;
} ngx_stream_rustdesk_relays_client_t;

/* this worker's state */
typedef struct {
    ngx_uint_t                          turn;       /* the console's list */
    ngx_stream_rustdesk_relay_set_t     conf;
    ngx_rbtree_t                        tree;       /* sets from values */
    ngx_rbtree_node_t                   sentinel;
    ngx_queue_t                         sets;
    ngx_uint_t                          nsets;
    ngx_uint_t                          long_logged;
    ngx_uint_t                          initialized;
    ngx_event_t                         event;
    ngx_stream_rustdesk_relays_client_t client;
} ngx_stream_rustdesk_relays_t;


static char *ngx_stream_rustdesk_relays_offer(ngx_stream_session_t *s,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf);
static ngx_uint_t ngx_stream_rustdesk_relays_split(ngx_str_t *value,
    ngx_str_t *names, ngx_uint_t *more);
static ngx_stream_rustdesk_relay_set_t *ngx_stream_rustdesk_relays_set(
    ngx_str_t *names, ngx_uint_t n, ngx_uint_t more, ngx_log_t *log);
static ngx_str_t *ngx_stream_rustdesk_relays_pick(
    ngx_stream_rustdesk_relay_set_t *set);
static ngx_uint_t ngx_stream_rustdesk_relays_healthy(
    ngx_stream_rustdesk_relay_set_t *set);
static u_char *ngx_stream_rustdesk_relays_show(
    ngx_stream_rustdesk_relay_set_t *set, u_char *p, u_char *last);
static void ngx_stream_rustdesk_relays_drop(
    ngx_stream_rustdesk_relay_set_t *set);
static void ngx_stream_rustdesk_relays_close(
    ngx_stream_rustdesk_relay_set_t *set);
static char *ngx_stream_rustdesk_relays_copy(ngx_stream_session_t *s,
    ngx_str_t *value);
static void ngx_stream_rustdesk_relays_timer(ngx_event_t *ev);
static void ngx_stream_rustdesk_relays_check_set(
    ngx_stream_rustdesk_relay_set_t *set);
static void ngx_stream_rustdesk_relays_check(
    ngx_stream_rustdesk_relay_check_t *chk);
static void ngx_stream_rustdesk_relays_checked(ngx_event_t *ev);
static void ngx_stream_rustdesk_relays_done(
    ngx_stream_rustdesk_relay_check_t *chk, ngx_uint_t healthy);


static ngx_stream_rustdesk_relays_t  ngx_stream_rustdesk_relays;


/* At configuration time: each server's address, for the checks. */

ngx_int_t
ngx_stream_rustdesk_relays_resolve(ngx_conf_t *cf,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf)
{
    ngx_url_t    u;
    ngx_str_t   *rs;
    ngx_uint_t   i;
    ngx_addr_t  *addr;

    if (rmcf->relay_servers == NULL || rmcf->relay_servers->nelts < 2) {
        return NGX_OK;
    }

    rmcf->relay_addrs = ngx_pcalloc(cf->pool,
                               rmcf->relay_servers->nelts * sizeof(ngx_addr_t));
    if (rmcf->relay_addrs == NULL) {
        return NGX_ERROR;
    }

    rs = rmcf->relay_servers->elts;
    addr = rmcf->relay_addrs;

    for (i = 0; i < rmcf->relay_servers->nelts; i++) {
        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = rs[i];
        u.default_port = NGX_RUSTDESK_RELAY_PORT;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
            /* offered when nothing else is up, never passes a check */
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "rustdesk: relay server \"%V\": %s", &rs[i],
                               u.err ? u.err : "no address");
            continue;
        }

        addr[i] = u.addrs[0];
    }

    return NGX_OK;
}


ngx_int_t
ngx_stream_rustdesk_relays_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf)
{
    u_char                             *p;
    size_t                              len;
    ngx_str_t                          *rs;
    ngx_uint_t                          i;
    ngx_stream_rustdesk_relays_t       *rl;
    ngx_stream_core_main_conf_t        *cmcf;
    ngx_stream_rustdesk_relay_check_t  *chk;

    rl = &ngx_stream_rustdesk_relays;

    ngx_memzero(rl, sizeof(ngx_stream_rustdesk_relays_t));

    ngx_rbtree_init(&rl->tree, &rl->sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&rl->sets);
    rl->initialized = 1;

    rl->event.handler = ngx_stream_rustdesk_relays_timer;
    rl->event.log = cycle->log;
    rl->event.data = rmcf;
    rl->event.cancelable = 1;

    if (rmcf->relay_value || rmcf->local_ip_value) {
        cmcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                                     ngx_stream_core_module);

        rl->client.nvariables = cmcf->variables.nelts;
        rl->client.ctx = ngx_pcalloc(cycle->pool,
                                     sizeof(void *) * ngx_stream_max_module);
        rl->client.variables = ngx_pcalloc(cycle->pool,
                        cmcf->variables.nelts
                        * sizeof(ngx_stream_variable_value_t));

        if (rl->client.ctx == NULL || rl->client.variables == NULL) {
            return NGX_ERROR;
        }
    }

    if (rmcf->relay_servers == NULL) {
        return NGX_OK;
    }

    rs = rmcf->relay_servers->elts;

    rl->conf.names = rs;
    rl->conf.n = rmcf->relay_servers->nelts;

    if (rmcf->relay_addrs == NULL) {
        return NGX_OK;
    }

    /* the list as a set is named in the log: "a,b" */

    len = 0;

    for (i = 0; i < rl->conf.n; i++) {
        len += rs[i].len + 1;
    }

    p = ngx_pnalloc(cycle->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    rl->conf.sn.str.data = p;

    for (i = 0; i < rl->conf.n; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, rs[i].data, rs[i].len);
    }

    rl->conf.sn.str.len = p - rl->conf.sn.str.data;

    rl->conf.checks = ngx_pcalloc(cycle->pool,
                        rl->conf.n * sizeof(ngx_stream_rustdesk_relay_check_t));
    if (rl->conf.checks == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < rl->conf.n; i++) {
        chk = &rl->conf.checks[i];

        /* healthy until a check says otherwise */
        chk->healthy = 1;
        chk->set = &rl->conf;
        chk->pc.sockaddr = rmcf->relay_addrs[i].sockaddr;
        chk->pc.socklen = rmcf->relay_addrs[i].socklen;
        chk->pc.name = &rs[i];
    }

    ngx_add_timer(&rl->event, 1);

    return NGX_OK;
}


void
ngx_stream_rustdesk_relays_exit(ngx_cycle_t *cycle)
{
    ngx_queue_t                      *q;
    ngx_stream_rustdesk_relays_t     *rl;
    ngx_stream_rustdesk_relay_set_t  *set;

    rl = &ngx_stream_rustdesk_relays;

    if (!rl->initialized) {
        return;
    }

    ngx_stream_rustdesk_relays_close(&rl->conf);
    rl->conf.checks = NULL;

    while (!ngx_queue_empty(&rl->sets)) {
        q = ngx_queue_head(&rl->sets);
        set = ngx_queue_data(q, ngx_stream_rustdesk_relay_set_t, queue);
        ngx_stream_rustdesk_relays_drop(set);
    }
}


char *
ngx_stream_rustdesk_rendezvous_relay_server(ngx_stream_session_t *s)
{
    u_char                                      *p, *start, *last, *name;
    size_t                                       len;
    ngx_uint_t                                   n;
    ngx_rustdesk_peer_shctx_t                   *sh;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;
    u_char                                       list[NGX_RUSTDESK_SERVERS_MAX];

    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    /* a list set from the console (relay-servers) comes first, unchecked */

    sh = rmcf->zone->sh;

    ngx_shmtx_lock(&rmcf->zone->shpool->mutex);
    len = sh->relays_len;
    ngx_memcpy(list, sh->relays, len);
    ngx_shmtx_unlock(&rmcf->zone->shpool->mutex);

    if (len) {
        n = 1;
        for (p = list; p < list + len; p++) {
            n += (*p == ',');
        }

        n = ngx_stream_rustdesk_relays.turn++ % n;
        last = list + len;

        for (start = p = list; p < last; p++) {
            if (*p == ',') {
                if (n-- == 0) {
                    break;
                }

                start = p + 1;
            }
        }

        name = ngx_pnalloc(s->connection->pool, p - start + 1);
        if (name == NULL) {
            return "";
        }

        ngx_cpystrn(name, start, p - start + 1);
        return (char *) name;
    }

    if (rmcf->relay_value) {
        return ngx_stream_rustdesk_relays_offer(s, rmcf);
    }

    if (rmcf->relay_servers == NULL) {
        return "";
    }

    return (char *) ngx_stream_rustdesk_relays_pick(
                                        &ngx_stream_rustdesk_relays.conf)->data;
}


/* rustdesk_local_ip for s's client: "" when there is none. */

char *
ngx_stream_rustdesk_rendezvous_local_ip(ngx_stream_session_t *s)
{
    ngx_str_t                                    value;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (rmcf->local_ip_value == NULL) {
        return rmcf->local_ip.len ? (char *) rmcf->local_ip.data : "";
    }

    if (ngx_stream_complex_value(s, rmcf->local_ip_value, &value) != NGX_OK) {
        return "";
    }

    return ngx_stream_rustdesk_relays_copy(s, &value);
}


/*
 * A session whose client is at ip, to evaluate the relay values for it
 * rather than for s's client: a copy of s on a copy of its connection
 * with that address ($remote_addr, $binary_remote_addr, geo and geoip2
 * read the connection's), without proxy protocol or TLS facts, with
 * variables and module contexts of its own.  Valid until the next call;
 * what values allocate comes from s's pool.  s itself when no value has
 * variables.
 */

ngx_stream_session_t *
ngx_stream_rustdesk_rendezvous_relay_session(ngx_stream_session_t *s,
    ngx_rustdesk_ip_t *ip)
{
    socklen_t                             len;
    ngx_connection_t                     *fc;
    ngx_stream_session_t                 *fs;
    ngx_stream_rustdesk_relays_client_t  *cl;

    cl = &ngx_stream_rustdesk_relays.client;

    if (cl->ctx == NULL) {
        return s;
    }

    len = ngx_rustdesk_ip_to_sockaddr(ip, &cl->sockaddr);
    if (len == 0) {
        return s;
    }

    fc = &cl->connection;
    *fc = *s->connection;

    fc->sockaddr = (struct sockaddr *) &cl->sockaddr;
    fc->socklen = len;
    fc->addr_text.data = cl->text;
    fc->addr_text.len = ngx_sock_ntop(fc->sockaddr, len, cl->text,
                                      NGX_SOCKADDR_STRLEN, 0);
    fc->proxy_protocol = NULL;
#if (NGX_SSL)
    fc->ssl = NULL;
#endif

    fs = &cl->session;
    *fs = *s;
    fs->connection = fc;

    ngx_memzero(cl->ctx, sizeof(void *) * ngx_stream_max_module);
    ngx_memzero(cl->variables,
                cl->nvariables * sizeof(ngx_stream_variable_value_t));

    fs->ctx = cl->ctx;
    fs->variables = cl->variables;

#if (NGX_PCRE)
    fs->ncaptures = 0;
    fs->captures = NULL;
    fs->captures_data = NULL;
#endif

    return fs;
}


/* The console's relay-servers: set the list for all workers, or show it. */

u_char *
ngx_stream_rustdesk_relays_console(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *set,
    u_char *p, u_char *last)
{
    size_t                            len;
    ngx_uint_t                        i, healthy;
    ngx_queue_t                      *q;
    ngx_rustdesk_peer_shctx_t        *sh;
    ngx_stream_rustdesk_relay_set_t  *rs;
    u_char                            list[NGX_RUSTDESK_SERVERS_MAX];

    sh = rmcf->zone->sh;

    ngx_shmtx_lock(&rmcf->zone->shpool->mutex);

    if (set) {
        if (set->len <= NGX_RUSTDESK_SERVERS_MAX) {
            sh->relays_len = set->len;
            ngx_memcpy(sh->relays, set->data, set->len);
        }

        ngx_shmtx_unlock(&rmcf->zone->shpool->mutex);
        return p;
    }

    len = sh->relays_len;
    ngx_memcpy(list, sh->relays, len);

    ngx_shmtx_unlock(&rmcf->zone->shpool->mutex);

    if (len) {
        for (i = 0; i < len; i++) {
            p = ngx_slprintf(p, last, "%c", list[i] == ',' ? '\n' : list[i]);
        }

        return ngx_slprintf(p, last, "\n");
    }

    if (rmcf->relay_value) {
        /* the value, then the sets this worker has met and what it offers */

        p = ngx_slprintf(p, last, "%V\n", &rmcf->relay_value->value);

        for (q = ngx_queue_head(&ngx_stream_rustdesk_relays.sets);
             q != ngx_queue_sentinel(&ngx_stream_rustdesk_relays.sets);
             q = ngx_queue_next(q))
        {
            rs = ngx_queue_data(q, ngx_stream_rustdesk_relay_set_t, queue);

            p = ngx_slprintf(p, last, "\"%V\":", &rs->sn.str);
            p = ngx_stream_rustdesk_relays_show(rs, p, last);
        }

        return p;
    }

    if (rmcf->relay_servers == NULL) {
        return p;
    }

    /* the ones that passed the last check, one a line; all when none did */

    rs = &ngx_stream_rustdesk_relays.conf;
    healthy = ngx_stream_rustdesk_relays_healthy(rs);

    for (i = 0; i < rs->n; i++) {
        if (healthy && !rs->checks[i].healthy) {
            continue;
        }

        p = ngx_slprintf(p, last, "%V\n", &rs->names[i]);
    }

    return p;
}


/*
 * The relay for s's client from the value of rustdesk_relay_servers: one
 * relay as it is, several as a set (made when first met) that is checked
 * and rotated.  A copy in the session's memory, as a set may go.
 */

static char *
ngx_stream_rustdesk_relays_offer(ngx_stream_session_t *s,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf)
{
    ngx_str_t                         value, *name;
    ngx_uint_t                        n, more;
    ngx_stream_rustdesk_relays_t     *rl;
    ngx_stream_rustdesk_relay_set_t  *set;
    ngx_str_t                         names[NGX_RUSTDESK_RELAY_SET_MAX];

    rl = &ngx_stream_rustdesk_relays;

    if (ngx_stream_complex_value(s, rmcf->relay_value, &value) != NGX_OK) {
        return "";
    }

    if (value.len > NGX_RUSTDESK_SERVERS_MAX) {
        if (!rl->long_logged) {
            ngx_log_error(NGX_LOG_WARN, s->connection->log, 0,
                          "rustdesk: relay servers \"%V\" are %uz bytes, "
                          "more than %d: none offered (logged once)",
                          &rmcf->relay_value->value, value.len,
                          NGX_RUSTDESK_SERVERS_MAX);
            rl->long_logged = 1;
        }

        return "";
    }

    n = ngx_stream_rustdesk_relays_split(&value, names, &more);

    if (n == 0) {
        return "";
    }

    name = &names[0];

    if (n > 1) {
        set = ngx_stream_rustdesk_relays_set(names, n, more,
                                             s->connection->log);

        if (set) {
            name = ngx_stream_rustdesk_relays_pick(set);
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, s->connection->log, 0,
                   "rustdesk: relay servers \"%V\": \"%V\"", &value, name);

    return ngx_stream_rustdesk_relays_copy(s, name);
}


/*
 * The relays a value names, separated by commas or white space: up to
 * NGX_RUSTDESK_RELAY_SET_MAX of them (*more: there were others).
 */

static ngx_uint_t
ngx_stream_rustdesk_relays_split(ngx_str_t *value, ngx_str_t *names,
    ngx_uint_t *more)
{
    u_char      *p, *start, *last;
    ngx_uint_t   n;

    n = 0;
    *more = 0;
    last = value->data + value->len;

    for (start = p = value->data; p <= last; p++) {
        if (p < last && *p != ',' && *p != ' ' && *p != '\t') {
            continue;
        }

        if (p > start) {
            if (n == NGX_RUSTDESK_RELAY_SET_MAX) {
                *more = 1;
                break;
            }

            names[n].data = start;
            names[n].len = p - start;
            n++;
        }

        start = p + 1;
    }

    return n;
}


/*
 * The set of these relays: found (the most recently used now), or made
 * in a pool of its own and checked at once; the least recently used set
 * goes when there are too many.  NULL when memory is short.
 */

static ngx_stream_rustdesk_relay_set_t *
ngx_stream_rustdesk_relays_set(ngx_str_t *names, ngx_uint_t n,
    ngx_uint_t more, ngx_log_t *log)
{
    u_char                             *p;
    uint32_t                            hash;
    ngx_int_t                           rc;
    ngx_str_t                           key;
    ngx_uint_t                          i, unchecked;
    ngx_pool_t                         *pool;
    ngx_addr_t                          addr;
    ngx_queue_t                        *q;
    ngx_str_node_t                     *sn;
    ngx_stream_rustdesk_relays_t       *rl;
    ngx_stream_rustdesk_relay_set_t    *set;
    ngx_stream_rustdesk_relay_check_t  *chk;
    u_char                              buf[NGX_RUSTDESK_SERVERS_MAX];

    rl = &ngx_stream_rustdesk_relays;

    /* the key: the relays, comma-joined (no longer than the value) */

    p = buf;

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, names[i].data, names[i].len);
    }

    key.data = buf;
    key.len = p - buf;
    hash = ngx_crc32_short(key.data, key.len);

    sn = ngx_str_rbtree_lookup(&rl->tree, &key, hash);

    if (sn) {
        set = (ngx_stream_rustdesk_relay_set_t *) sn;

        ngx_queue_remove(&set->queue);
        ngx_queue_insert_head(&rl->sets, &set->queue);

        return set;
    }

    if (rl->nsets == NGX_RUSTDESK_RELAY_SETS) {
        q = ngx_queue_last(&rl->sets);
        set = ngx_queue_data(q, ngx_stream_rustdesk_relay_set_t, queue);

        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, log, 0,
                       "rustdesk: relay set \"%V\" dropped", &set->sn.str);

        ngx_stream_rustdesk_relays_drop(set);
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    set = ngx_pcalloc(pool, sizeof(ngx_stream_rustdesk_relay_set_t));
    if (set == NULL) {
        goto failed;
    }

    set->pool = pool;
    set->n = n;

    set->sn.str.data = ngx_pnalloc(pool, key.len);
    set->names = ngx_palloc(pool, n * sizeof(ngx_str_t));
    set->checks = ngx_pcalloc(pool,
                              n * sizeof(ngx_stream_rustdesk_relay_check_t));

    if (set->sn.str.data == NULL || set->names == NULL || set->checks == NULL) {
        goto failed;
    }

    set->sn.str.len = key.len;
    ngx_memcpy(set->sn.str.data, key.data, key.len);
    set->sn.node.key = hash;

    unchecked = 0;

    for (i = 0; i < n; i++) {
        set->names[i].len = names[i].len;
        set->names[i].data = ngx_pnalloc(pool, names[i].len + 1);
        if (set->names[i].data == NULL) {
            goto failed;
        }

        ngx_cpystrn(set->names[i].data, names[i].data, names[i].len + 1);

        chk = &set->checks[i];
        chk->set = set;
        chk->healthy = 1;
        chk->pc.name = &set->names[i];

        /* literal addresses only: a name would need a DNS lookup */

        rc = ngx_parse_addr_port(pool, &addr, names[i].data, names[i].len);

        if (rc == NGX_ERROR) {
            goto failed;
        }

        if (rc == NGX_DECLINED) {
            chk->unchecked = 1;
            unchecked++;
            continue;
        }

        if (ngx_inet_get_port(addr.sockaddr) == 0) {
            ngx_inet_set_port(addr.sockaddr, NGX_RUSTDESK_RELAY_PORT);
        }

        chk->pc.sockaddr = addr.sockaddr;
        chk->pc.socklen = addr.socklen;
    }

    if (more) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "rustdesk: relay servers \"%V\": only the first %d "
                      "are offered", &set->sn.str, NGX_RUSTDESK_RELAY_SET_MAX);
    }

    if (unchecked) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "rustdesk: relay servers \"%V\": %ui not IP addresses, "
                      "offered unchecked", &set->sn.str, unchecked);
    }

    ngx_rbtree_insert(&rl->tree, &set->sn.node);
    ngx_queue_insert_head(&rl->sets, &set->queue);
    rl->nsets++;

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, log, 0,
                   "rustdesk: relay set \"%V\" made, %ui sets",
                   &set->sn.str, rl->nsets);

    /* checked now, then with the others */

    if (!(ngx_exiting || ngx_quit || ngx_terminate)) {
        ngx_stream_rustdesk_relays_check_set(set);

        if (!rl->event.timer_set) {
            ngx_add_timer(&rl->event, NGX_RUSTDESK_RELAY_CHECK_EVERY);
        }
    }

    return set;

failed:

    ngx_destroy_pool(pool);
    return NULL;
}


/* The next relay of a set in turn, among those that passed if any did. */

static ngx_str_t *
ngx_stream_rustdesk_relays_pick(ngx_stream_rustdesk_relay_set_t *set)
{
    ngx_uint_t  i, n, healthy;

    healthy = ngx_stream_rustdesk_relays_healthy(set);

    if (healthy == 0) {
        return &set->names[set->turn++ % set->n];
    }

    /* the turn-th healthy one */

    n = set->turn++ % healthy;

    for (i = 0; i < set->n; i++) {
        if (set->checks[i].healthy && n-- == 0) {
            break;
        }
    }

    return &set->names[i];
}


static ngx_uint_t
ngx_stream_rustdesk_relays_healthy(ngx_stream_rustdesk_relay_set_t *set)
{
    ngx_uint_t  i, healthy;

    if (set->checks == NULL) {
        return 0;
    }

    healthy = 0;

    for (i = 0; i < set->n; i++) {
        healthy += set->checks[i].healthy;
    }

    return healthy;
}


/* " a,b\n": the relays a set offers now */

static u_char *
ngx_stream_rustdesk_relays_show(ngx_stream_rustdesk_relay_set_t *set,
    u_char *p, u_char *last)
{
    ngx_uint_t  i, healthy;
    u_char      sep;

    healthy = ngx_stream_rustdesk_relays_healthy(set);
    sep = ' ';

    for (i = 0; i < set->n; i++) {
        if (healthy && !set->checks[i].healthy) {
            continue;
        }

        p = ngx_slprintf(p, last, "%c%V", sep, &set->names[i]);
        sep = ',';
    }

    return ngx_slprintf(p, last, "\n");
}


/* A set made from a value goes: its checks, its place, its memory. */

static void
ngx_stream_rustdesk_relays_drop(ngx_stream_rustdesk_relay_set_t *set)
{
    ngx_stream_rustdesk_relays_t  *rl;

    rl = &ngx_stream_rustdesk_relays;

    ngx_stream_rustdesk_relays_close(set);

    ngx_rbtree_delete(&rl->tree, &set->sn.node);
    ngx_queue_remove(&set->queue);
    rl->nsets--;

    ngx_destroy_pool(set->pool);
}


static void
ngx_stream_rustdesk_relays_close(ngx_stream_rustdesk_relay_set_t *set)
{
    ngx_uint_t  i;

    if (set->checks == NULL) {
        return;
    }

    for (i = 0; i < set->n; i++) {
        if (set->checks[i].busy) {
            ngx_close_connection(set->checks[i].pc.connection);
            set->checks[i].pc.connection = NULL;
            set->checks[i].busy = 0;
        }
    }
}


static char *
ngx_stream_rustdesk_relays_copy(ngx_stream_session_t *s, ngx_str_t *value)
{
    u_char  *p;

    p = ngx_pnalloc(s->connection->pool, value->len + 1);
    if (p == NULL) {
        return "";
    }

    ngx_cpystrn(p, value->data, value->len + 1);

    return (char *) p;
}


static void
ngx_stream_rustdesk_relays_timer(ngx_event_t *ev)
{
    ngx_queue_t                      *q;
    ngx_stream_rustdesk_relays_t     *rl;
    ngx_stream_rustdesk_relay_set_t  *set;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    rl = &ngx_stream_rustdesk_relays;

    ngx_stream_rustdesk_relays_check_set(&rl->conf);

    for (q = ngx_queue_head(&rl->sets);
         q != ngx_queue_sentinel(&rl->sets);
         q = ngx_queue_next(q))
    {
        set = ngx_queue_data(q, ngx_stream_rustdesk_relay_set_t, queue);
        ngx_stream_rustdesk_relays_check_set(set);
    }

    if (rl->conf.checks || rl->nsets) {
        ngx_add_timer(ev, NGX_RUSTDESK_RELAY_CHECK_EVERY);
    }
}


static void
ngx_stream_rustdesk_relays_check_set(ngx_stream_rustdesk_relay_set_t *set)
{
    ngx_uint_t  i;

    if (set->checks == NULL) {
        return;
    }

    for (i = 0; i < set->n; i++) {
        if (!set->checks[i].busy && !set->checks[i].unchecked) {
            ngx_stream_rustdesk_relays_check(&set->checks[i]);
        }
    }
}


static void
ngx_stream_rustdesk_relays_check(ngx_stream_rustdesk_relay_check_t *chk)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    if (chk->pc.sockaddr == NULL) {
        /* a configured name that did not resolve never passes */
        ngx_stream_rustdesk_relays_done(chk, 0);
        return;
    }

    chk->pc.get = ngx_event_get_peer;
    chk->pc.log = ngx_cycle->log;
    chk->pc.log_error = NGX_ERROR_INFO;
    chk->pc.connection = NULL;

    rc = ngx_event_connect_peer(&chk->pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (chk->pc.connection) {
            ngx_close_connection(chk->pc.connection);
            chk->pc.connection = NULL;
        }

        ngx_stream_rustdesk_relays_done(chk, 0);
        return;
    }

    c = chk->pc.connection;
    c->data = chk;
    c->log = ngx_cycle->log;
    c->read->log = c->log;
    c->write->log = c->log;

    if (rc == NGX_OK) {
        ngx_close_connection(c);
        chk->pc.connection = NULL;
        ngx_stream_rustdesk_relays_done(chk, 1);
        return;
    }

    /* NGX_AGAIN: connecting */

    chk->busy = 1;
    c->read->handler = ngx_stream_rustdesk_relays_checked;
    c->write->handler = ngx_stream_rustdesk_relays_checked;

    ngx_add_timer(c->write, NGX_RUSTDESK_RELAY_CHECK_WAIT);
}


static void
ngx_stream_rustdesk_relays_checked(ngx_event_t *ev)
{
    int                                 err;
    socklen_t                           len;
    ngx_connection_t                   *c;
    ngx_stream_rustdesk_relay_check_t  *chk;

    c = ev->data;
    chk = c->data;

    chk->busy = 0;
    chk->pc.connection = NULL;

    if (ev->timedout) {
        ngx_close_connection(c);
        ngx_stream_rustdesk_relays_done(chk, 0);
        return;
    }

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    ngx_close_connection(c);
    ngx_stream_rustdesk_relays_done(chk, err == 0);
}


/*
 * A check's result: a change is logged for the relay, and a set whose
 * relays are all down is logged once (all are offered meanwhile).
 */

static void
ngx_stream_rustdesk_relays_done(ngx_stream_rustdesk_relay_check_t *chk,
    ngx_uint_t healthy)
{
    ngx_stream_rustdesk_relay_set_t  *set;

    set = chk->set;

    if (chk->healthy != healthy) {
        if (set->pool == NULL) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "rustdesk: relay server \"%V\" is %s", chk->pc.name,
                          healthy ? "up" : "down");

        } else {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "rustdesk: relay server \"%V\" is %s "
                          "(in \"%V\")", chk->pc.name,
                          healthy ? "up" : "down", &set->sn.str);
        }
    }

    chk->healthy = healthy;

    if (ngx_stream_rustdesk_relays_healthy(set)) {
        set->down = 0;

    } else if (!set->down) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "rustdesk: no relay server of \"%V\" is up: all "
                      "are offered", &set->sn.str);
        set->down = 1;
    }
}
