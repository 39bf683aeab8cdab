/*
 * The punch request log and the IP changes history in the shared zone,
 * for the console: a ring of the last NGX_RUSTDESK_PUNCH_LOG punch
 * requests, and for each peer whose IP changed, the addresses it came
 * from lately, in a queue by the time of the last change.  Every function
 * here takes the zone mutex itself, or is named _locked and called with
 * it held, and never holds it across I/O.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_history.h"


void
ngx_rustdesk_punch_log(ngx_rustdesk_peer_zone_t *z, ngx_rustdesk_ip_t *from,
    ngx_str_t *id, ngx_rustdesk_ip_t *to, ngx_msec_t now)
{
    ngx_uint_t                 i, n;
    ngx_rustdesk_punch_req_t  *r;

    if (z->sh->punch_reqs == NULL) {
        return;
    }

    ngx_shmtx_lock(&z->shpool->mutex);

    /* the same requester IP and id within a minute once, as the reference */

    n = z->sh->npunch_reqs;

    for (i = 0; i < 30 && i < n; i++) {
        r = &z->sh->punch_reqs[(n - 1 - i) % NGX_RUSTDESK_PUNCH_LOG];

        if (r->id_len == id->len
            && ngx_memcmp(r->id, id->data, id->len) == 0
            && r->from.family == from->family
            && ngx_memcmp(r->from.addr, from->addr, 16) == 0)
        {
            if (now - r->msec < NGX_RUSTDESK_PUNCH_DEDUP) {
                ngx_shmtx_unlock(&z->shpool->mutex);
                return;
            }

            break;
        }
    }

    r = &z->sh->punch_reqs[n % NGX_RUSTDESK_PUNCH_LOG];

    r->time = ngx_time();
    r->msec = now;
    r->from = *from;
    r->from.port = 0;
    r->to = *to;
    r->to.port = 0;
    r->id_len = (u_char) ngx_min(id->len, NGX_RUSTDESK_ID_MAX);
    ngx_memcpy(r->id, id->data, r->id_len);

    z->sh->npunch_reqs++;

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/*
 * As the reference's IP_CHANGES: within 180 s of the first change, each
 * address a peer registers from is counted; later, the count restarts.
 */

void
ngx_rustdesk_ip_change_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p, ngx_rustdesk_ip_t *addr, ngx_msec_t now,
    ngx_log_t *log)
{
    ngx_uint_t                 i;
    ngx_rustdesk_ip_t          ip;
    ngx_rustdesk_ip_change_t  *c;

    ip = *addr;
    ip.port = 0;

    if (p->ip_change == 0) {
        /* eviction must not take the peer while room is made */

        z->sh->table.busy = p;
        c = ngx_rustdesk_peer_alloc_locked(z, sizeof(ngx_rustdesk_ip_change_t),
                                           now, log);
        z->sh->table.busy = NULL;

        if (c == NULL) {
            return;
        }

        ngx_memzero(c, sizeof(ngx_rustdesk_ip_change_t));
        c->peer = p;
        c->time = now;
        p->ip_change = ngx_rustdesk_zone_ref(z->shpool, c);

    } else {
        c = ngx_rustdesk_zone_ptr(z->shpool, p->ip_change);

        ngx_queue_remove(&c->queue);

        if ((ngx_msec_int_t) (now - c->time) > NGX_RUSTDESK_IP_CHANGE_DUR) {
            z->sh->nip_changes -= (c->n > 1);
            c->n = 0;
            c->time = now;
        }
    }

    c->last = now;
    ngx_queue_insert_head(&z->sh->ip_changes, &c->queue);

    for (i = 0; i < c->n; i++) {
        if (ngx_memcmp(&c->ips[i].ip, &ip, sizeof(ngx_rustdesk_ip_t)) == 0) {
            c->ips[i].count++;
            return;
        }
    }

    if (c->n == NGX_RUSTDESK_IP_CHANGE_IPS) {
        return;
    }

    c->ips[c->n].ip = ip;
    c->ips[c->n].count = 1;

    if (++c->n == 2) {
        z->sh->nip_changes++;
    }
}


void
ngx_rustdesk_ip_change_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p)
{
    ngx_rustdesk_ip_change_t  *c;

    if (p->ip_change) {
        c = ngx_rustdesk_zone_ptr(z->shpool, p->ip_change);

        z->sh->nip_changes -= (c->n > 1);
        ngx_queue_remove(&c->queue);
        ngx_slab_free_locked(z->shpool, c);
        p->ip_change = 0;
    }
}
