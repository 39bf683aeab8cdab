/*
 * The console's text views of the rendezvous zone, in the reference's
 * words: the punch request log (punch-requests), the peers' IP changes
 * (ip-changes, which also ages the old ones out) and the IP blocker
 * (ip-blocker).  Every function here takes the zone mutex itself and
 * never holds it across I/O.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_report.h"
#include "ngx_stream_rustdesk_rendezvous_peer.h"
#include "ngx_stream_rustdesk_rendezvous_ip_blocker.h"
#include "ngx_stream_rustdesk_rendezvous_history.h"


/* "2026-11-23T21:00:00Z 1.2.3.4 -> 123456789@5.6.7.8", oldest first */

u_char *
ngx_rustdesk_punch_log_text(ngx_rustdesk_peer_zone_t *z, u_char *p,
    u_char *last, ngx_uint_t start, ngx_uint_t n, ngx_uint_t clear)
{
    ngx_tm_t                   tm;
    ngx_uint_t                 i, first, total;
    ngx_rustdesk_punch_req_t  *r;
    u_char                     from[NGX_INET6_ADDRSTRLEN];
    u_char                     to[NGX_INET6_ADDRSTRLEN];

    if (z->sh->punch_reqs == NULL) {
        return p;
    }

    ngx_shmtx_lock(&z->shpool->mutex);

    if (clear) {
        z->sh->npunch_reqs = 0;
        ngx_shmtx_unlock(&z->shpool->mutex);
        return p;
    }

    total = ngx_min(z->sh->npunch_reqs, NGX_RUSTDESK_PUNCH_LOG);
    first = z->sh->npunch_reqs - total;

    for (i = start; i < total && i < start + n; i++) {
        r = &z->sh->punch_reqs[(first + i) % NGX_RUSTDESK_PUNCH_LOG];

        ngx_gmtime(r->time, &tm);

        p = ngx_slprintf(p, last,
                         "%4d-%02d-%02dT%02d:%02d:%02dZ %*s -> %*s@%*s\n",
                         tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                         tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                         ngx_rustdesk_ip_text(&r->from, from, sizeof(from)),
                         from, (size_t) r->id_len, r->id,
                         ngx_rustdesk_ip_text(&r->to, to, sizeof(to)), to);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return p;
}


/*
 * The reference's ip-changes output: the number of peers with more than
 * one address lately, then "id: Ns {"ip": count, ...}" lines (or, for one
 * id, "Ns {...}").  Entries older than 360 s go first, a bounded number.
 */

u_char *
ngx_rustdesk_ip_changes_text(ngx_rustdesk_peer_zone_t *z, u_char *p,
    u_char *last, ngx_str_t *id, ngx_uint_t start, ngx_uint_t remove,
    ngx_msec_t now)
{
    ngx_uint_t                 i, k;
    ngx_queue_t               *q;
    ngx_rustdesk_peer_t       *peer;
    ngx_rustdesk_ip_change_t  *c;
    u_char                     text[NGX_INET6_ADDRSTRLEN];

    ngx_shmtx_lock(&z->shpool->mutex);

    for (k = 0; k < 1000 && !ngx_queue_empty(&z->sh->ip_changes); k++) {
        q = ngx_queue_last(&z->sh->ip_changes);
        c = ngx_queue_data(q, ngx_rustdesk_ip_change_t, queue);

        if ((ngx_msec_int_t) (now - c->time) < NGX_RUSTDESK_IP_CHANGE_KEEP) {
            break;
        }

        ngx_rustdesk_ip_change_free_locked(z, c->peer);
    }

    p = ngx_slprintf(p, last, "%ui\n", z->sh->nip_changes);

    i = 0;

    for (q = ngx_queue_head(&z->sh->ip_changes);
         q != ngx_queue_sentinel(&z->sh->ip_changes);
         q = ngx_queue_next(q))
    {
        c = ngx_queue_data(q, ngx_rustdesk_ip_change_t, queue);
        peer = c->peer;

        if (id) {
            if (peer->id_len != id->len
                || ngx_memcmp(ngx_rustdesk_peer_id_data(peer), id->data,
                              id->len) != 0)
            {
                continue;
            }

        } else {
            if (c->n < 2) {
                continue;
            }

            if (i++ < start) {
                continue;
            }

            if (i > start + 10) {
                break;
            }

            p = ngx_slprintf(p, last, "%*s: ", (size_t) peer->id_len,
                             ngx_rustdesk_peer_id_data(peer));
        }

        p = ngx_slprintf(p, last, "%Ms {", (now - c->time) / 1000);

        for (k = 0; k < c->n; k++) {
            p = ngx_slprintf(p, last, "%s\"%*s\": %uD", k ? ", " : "",
                             ngx_rustdesk_ip_text(&c->ips[k].ip, text,
                                                  sizeof(text)),
                             text, c->ips[k].count);
        }

        p = ngx_slprintf(p, last, "}\n");

        if (id) {
            if (remove) {
                ngx_rustdesk_ip_change_free_locked(z, peer);
            }

            break;
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return p;
}


/*
 * The reference's ip-blocker output: the number of entries, then for one
 * IP "count/age ids/age", or ten "ip: count/ages ids/ages" lines from start.
 */

u_char *
ngx_rustdesk_ip_blocker_text(ngx_rustdesk_peer_zone_t *z, u_char *p,
    u_char *last, ngx_rustdesk_ip_t *ip, ngx_uint_t start, ngx_uint_t remove,
    ngx_msec_t now)
{
    ngx_uint_t                i;
    ngx_queue_t              *q;
    ngx_rustdesk_ip_block_t  *b;
    u_char                    text[NGX_INET6_ADDRSTRLEN];

    ngx_shmtx_lock(&z->shpool->mutex);

    p = ngx_slprintf(p, last, "%ui\n", z->sh->nips);

    if (ip) {
        b = (ngx_rustdesk_ip_block_t *) ngx_rustdesk_ip_lookup(&z->sh->ips, ip,
                   ngx_crc32_short((u_char *) ip, sizeof(ngx_rustdesk_ip_t)));

        if (b) {
            p = ngx_slprintf(p, last, "%uD/%Ms %uD/%Ms\n",
                             b->reg_count, (now - b->reg_time) / 1000,
                             b->nids, (now - b->ids_time) / 1000);

            if (remove) {
                ngx_rustdesk_ip_blocker_free_locked(z, b);
            }
        }

        ngx_shmtx_unlock(&z->shpool->mutex);
        return p;
    }

    i = 0;

    for (q = ngx_queue_head(&z->sh->ips_lru);
         q != ngx_queue_sentinel(&z->sh->ips_lru) && i < start + 10;
         q = ngx_queue_next(q), i++)
    {
        if (i < start) {
            continue;
        }

        b = ngx_queue_data(q, ngx_rustdesk_ip_block_t, queue);

        p = ngx_slprintf(p, last, "%*s: %uD/%Ms %uD/%Ms\n",
                         ngx_rustdesk_ip_text(&b->ip, text, sizeof(text)),
                         text, b->reg_count, (now - b->reg_time) / 1000,
                         b->nids, (now - b->ids_time) / 1000);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return p;
}
