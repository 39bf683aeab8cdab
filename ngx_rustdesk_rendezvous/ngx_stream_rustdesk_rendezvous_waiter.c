/*
 * The requesters waiting for an answer, in the shared zone (PROTOCOL.md
 * section 6): an rbtree keyed by the crc32 of the address, with an LRU
 * queue by the time of the request from which stale entries age out.
 * Every function here takes the zone mutex itself, or is named _locked
 * and called with it held, and never holds it across I/O.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_waiter.h"


static void ngx_rustdesk_waiter_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_waiter_t *w);


void
ngx_rustdesk_waiter_add(ngx_rustdesk_peer_zone_t *z, ngx_rustdesk_ip_t *a,
    ngx_pid_t pid, ngx_msec_t now, ngx_log_t *log)
{
    uint32_t                hash;
    ngx_rustdesk_waiter_t  *w;

    hash = ngx_crc32_short((u_char *) a, sizeof(ngx_rustdesk_ip_t));

    ngx_shmtx_lock(&z->shpool->mutex);

    /* entries of requesters that never got an answer age out here */

    (void) ngx_rustdesk_waiter_expire_locked(z, now, 8);

    w = (ngx_rustdesk_waiter_t *) ngx_rustdesk_ip_lookup(
                                                  &z->sh->waiters, a, hash);

    if (w == NULL) {
        w = ngx_rustdesk_peer_alloc_locked(z, sizeof(ngx_rustdesk_waiter_t),
                                           now, log);
        if (w == NULL) {
            /* no room: A gets no answer and retries, as after a loss */
            ngx_shmtx_unlock(&z->shpool->mutex);
            return;
        }

        w->node.key = hash;
        w->ip = *a;
        ngx_rbtree_insert(&z->sh->waiters, &w->node);
        z->sh->nwaiters++;

    } else {
        ngx_queue_remove(&w->queue);
    }

    w->pid = pid;
    w->time = now;
    ngx_queue_insert_head(&z->sh->waiters_lru, &w->queue);

    ngx_shmtx_unlock(&z->shpool->mutex);
}


ngx_pid_t
ngx_rustdesk_waiter_take(ngx_rustdesk_peer_zone_t *z, ngx_rustdesk_ip_t *a)
{
    ngx_pid_t               pid;
    ngx_rustdesk_waiter_t  *w;

    ngx_shmtx_lock(&z->shpool->mutex);

    w = (ngx_rustdesk_waiter_t *) ngx_rustdesk_ip_lookup(
                 &z->sh->waiters, a,
                 ngx_crc32_short((u_char *) a, sizeof(ngx_rustdesk_ip_t)));

    if (w == NULL) {
        pid = NGX_INVALID_PID;

    } else {
        pid = w->pid;
        ngx_rustdesk_waiter_free_locked(z, w);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return pid;
}


void
ngx_rustdesk_waiter_forget(ngx_rustdesk_peer_zone_t *z, ngx_rustdesk_ip_t *a,
    ngx_pid_t pid)
{
    ngx_rustdesk_waiter_t  *w;

    ngx_shmtx_lock(&z->shpool->mutex);

    w = (ngx_rustdesk_waiter_t *) ngx_rustdesk_ip_lookup(
                 &z->sh->waiters, a,
                 ngx_crc32_short((u_char *) a, sizeof(ngx_rustdesk_ip_t)));

    if (w && w->pid == pid) {
        ngx_rustdesk_waiter_free_locked(z, w);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


void
ngx_rustdesk_peer_count_answer(ngx_rustdesk_peer_zone_t *z, ngx_uint_t cross)
{
    ngx_shmtx_lock(&z->shpool->mutex);

    z->sh->answers++;
    z->sh->answers_cross += cross;

    ngx_shmtx_unlock(&z->shpool->mutex);
}


ngx_uint_t
ngx_rustdesk_waiter_expire_locked(ngx_rustdesk_peer_zone_t *z, ngx_msec_t now,
    ngx_uint_t max)
{
    ngx_uint_t              n;
    ngx_queue_t            *q;
    ngx_rustdesk_waiter_t  *w;

    for (n = 0; n < max && !ngx_queue_empty(&z->sh->waiters_lru); n++) {
        q = ngx_queue_last(&z->sh->waiters_lru);
        w = ngx_queue_data(q, ngx_rustdesk_waiter_t, queue);

        /*
         * signed: another worker's clock may be a little ahead of ours,
         * and its entry is then newer than now, not 49 days old
         */

        if ((ngx_msec_int_t) (now - w->time) < NGX_RUSTDESK_WAITER_TTL) {
            break;
        }

        ngx_rustdesk_waiter_free_locked(z, w);
    }

    return n;
}


static void
ngx_rustdesk_waiter_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_waiter_t *w)
{
    ngx_queue_remove(&w->queue);
    ngx_rbtree_delete(&z->sh->waiters, &w->node);
    ngx_slab_free_locked(z->shpool, w);
    z->sh->nwaiters--;
}
