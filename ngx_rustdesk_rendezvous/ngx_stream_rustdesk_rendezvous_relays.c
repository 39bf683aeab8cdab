/*
 * The relay servers offered to peers (PROTOCOL.md section 6): in turn,
 * and when more than one is configured, only among those that accepted a
 * TCP connection in the last check, made every 3 s by each worker as the
 * reference does.  When none passes, all are offered.
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


typedef struct {
    ngx_peer_connection_t   pc;
    ngx_uint_t              healthy;
    ngx_uint_t              busy;
} ngx_stream_rustdesk_relay_check_t;


static void ngx_stream_rustdesk_relays_timer(ngx_event_t *ev);
static void ngx_stream_rustdesk_relays_check(
    ngx_stream_rustdesk_relay_check_t *chk);
static void ngx_stream_rustdesk_relays_checked(ngx_event_t *ev);
static void ngx_stream_rustdesk_relays_done(
    ngx_stream_rustdesk_relay_check_t *chk, ngx_uint_t healthy);


/* this worker's state */
static ngx_uint_t                          ngx_stream_rustdesk_relays_turn;
static ngx_uint_t                          ngx_stream_rustdesk_relays_n;
static ngx_stream_rustdesk_relay_check_t  *ngx_stream_rustdesk_relays_checks;
static ngx_event_t                         ngx_stream_rustdesk_relays_event;


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
    ngx_str_t   *rs;
    ngx_uint_t   i;

    ngx_stream_rustdesk_relays_n = 0;

    if (rmcf->relay_addrs == NULL) {
        return NGX_OK;
    }

    ngx_stream_rustdesk_relays_n = rmcf->relay_servers->nelts;

    ngx_stream_rustdesk_relays_checks = ngx_pcalloc(cycle->pool,
                                  ngx_stream_rustdesk_relays_n
                                  * sizeof(ngx_stream_rustdesk_relay_check_t));
    if (ngx_stream_rustdesk_relays_checks == NULL) {
        return NGX_ERROR;
    }

    rs = rmcf->relay_servers->elts;

    for (i = 0; i < ngx_stream_rustdesk_relays_n; i++) {
        /* healthy until a check says otherwise */
        ngx_stream_rustdesk_relays_checks[i].healthy = 1;
        ngx_stream_rustdesk_relays_checks[i].pc.sockaddr =
                                                 rmcf->relay_addrs[i].sockaddr;
        ngx_stream_rustdesk_relays_checks[i].pc.socklen =
                                                 rmcf->relay_addrs[i].socklen;
        ngx_stream_rustdesk_relays_checks[i].pc.name = &rs[i];
    }

    ngx_stream_rustdesk_relays_event.handler = ngx_stream_rustdesk_relays_timer;
    ngx_stream_rustdesk_relays_event.log = cycle->log;
    ngx_stream_rustdesk_relays_event.data = rmcf;
    ngx_stream_rustdesk_relays_event.cancelable = 1;

    ngx_add_timer(&ngx_stream_rustdesk_relays_event, 1);

    return NGX_OK;
}


void
ngx_stream_rustdesk_relays_exit(ngx_cycle_t *cycle)
{
    ngx_uint_t  i;

    for (i = 0; i < ngx_stream_rustdesk_relays_n; i++) {
        if (ngx_stream_rustdesk_relays_checks[i].busy) {
            ngx_close_connection(
                          ngx_stream_rustdesk_relays_checks[i].pc.connection);
            ngx_stream_rustdesk_relays_checks[i].busy = 0;
        }
    }

    ngx_stream_rustdesk_relays_n = 0;
}


char *
ngx_stream_rustdesk_rendezvous_relay_server(ngx_stream_session_t *s)
{
    u_char                                      *p, *start, *last, *name;
    size_t                                       len;
    ngx_str_t                                   *rs;
    ngx_uint_t                                   i, n, healthy;
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

        n = ngx_stream_rustdesk_relays_turn++ % n;
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

    if (rmcf->relay_servers == NULL) {
        return "";
    }

    rs = rmcf->relay_servers->elts;
    n = rmcf->relay_servers->nelts;

    healthy = 0;

    for (i = 0; i < ngx_stream_rustdesk_relays_n; i++) {
        healthy += ngx_stream_rustdesk_relays_checks[i].healthy;
    }

    if (healthy == 0) {
        return (char *) rs[ngx_stream_rustdesk_relays_turn++ % n].data;
    }

    /* the turn-th healthy one */

    n = ngx_stream_rustdesk_relays_turn++ % healthy;

    for (i = 0; i < ngx_stream_rustdesk_relays_n; i++) {
        if (ngx_stream_rustdesk_relays_checks[i].healthy && n-- == 0) {
            break;
        }
    }

    return (char *) rs[i].data;
}


/* The console's relay-servers: set the list for all workers, or show it. */

u_char *
ngx_stream_rustdesk_relays_console(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *set,
    u_char *p, u_char *last)
{
    ngx_str_t                  *rs;
    ngx_uint_t                  i, healthy;
    ngx_rustdesk_peer_shctx_t  *sh;

    sh = rmcf->zone->sh;

    ngx_shmtx_lock(&rmcf->zone->shpool->mutex);

    if (set && set->len <= NGX_RUSTDESK_SERVERS_MAX) {
        sh->relays_len = set->len;
        ngx_memcpy(sh->relays, set->data, set->len);

    } else if (set == NULL && sh->relays_len) {
        for (i = 0; i < sh->relays_len; i++) {
            p = ngx_slprintf(p, last, "%c",
                             sh->relays[i] == ',' ? '\n' : sh->relays[i]);
        }

        p = ngx_slprintf(p, last, "\n");

    } else if (set == NULL && rmcf->relay_servers) {
        rs = rmcf->relay_servers->elts;

        /* the ones that passed the last check; all when none did */

        healthy = 0;

        for (i = 0; i < ngx_stream_rustdesk_relays_n; i++) {
            healthy += ngx_stream_rustdesk_relays_checks[i].healthy;
        }

        for (i = 0; i < rmcf->relay_servers->nelts; i++) {
            if (healthy && i < ngx_stream_rustdesk_relays_n
                && !ngx_stream_rustdesk_relays_checks[i].healthy)
            {
                continue;
            }

            p = ngx_slprintf(p, last, "%V\n", &rs[i]);
        }
    }

    ngx_shmtx_unlock(&rmcf->zone->shpool->mutex);

    return p;
}


static void
ngx_stream_rustdesk_relays_timer(ngx_event_t *ev)
{
    ngx_uint_t  i;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    for (i = 0; i < ngx_stream_rustdesk_relays_n; i++) {
        if (!ngx_stream_rustdesk_relays_checks[i].busy) {
            ngx_stream_rustdesk_relays_check(
                                        &ngx_stream_rustdesk_relays_checks[i]);
        }
    }

    ngx_add_timer(ev, NGX_RUSTDESK_RELAY_CHECK_EVERY);
}


static void
ngx_stream_rustdesk_relays_check(ngx_stream_rustdesk_relay_check_t *chk)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    if (chk->pc.sockaddr == NULL) {
        chk->healthy = 0;
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
        }

        chk->healthy = 0;
        return;
    }

    c = chk->pc.connection;
    c->data = chk;
    c->log = ngx_cycle->log;
    c->read->log = c->log;
    c->write->log = c->log;

    if (rc == NGX_OK) {
        ngx_close_connection(c);
        chk->healthy = 1;
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

    if (ev->timedout) {
        ngx_stream_rustdesk_relays_done(chk, 0);
        return;
    }

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    ngx_stream_rustdesk_relays_done(chk, err == 0);
}


static void
ngx_stream_rustdesk_relays_done(ngx_stream_rustdesk_relay_check_t *chk,
    ngx_uint_t healthy)
{
    if (chk->healthy != healthy) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "rustdesk: relay server \"%V\" is %s", chk->pc.name,
                      healthy ? "up" : "down");
    }

    chk->healthy = healthy;
    chk->busy = 0;

    ngx_close_connection(chk->pc.connection);
    chk->pc.connection = NULL;
}
