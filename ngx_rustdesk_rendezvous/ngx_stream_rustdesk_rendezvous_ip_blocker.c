/*
 * The IP blocker in the shared zone (PROTOCOL.md section 6): an rbtree of
 * entries keyed by the crc32 of the IP, with an LRU queue from which
 * eviction takes the stale ones.  Every function here takes the zone
 * mutex itself, or is named _locked and called with it held, and never
 * holds it across I/O.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_ip_blocker.h"


ngx_uint_t
ngx_rustdesk_ip_blocker_allow(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_t *addr, ngx_str_t *id, ngx_msec_t now, ngx_log_t *log)
{
    uint32_t                  hash, idh, *ids;
    ngx_uint_t                i, is_new;
    ngx_rustdesk_ip_t         ip;
    ngx_rustdesk_ip_block_t  *b;

    ip = *addr;
    ip.port = 0;

    hash = ngx_crc32_short((u_char *) &ip, sizeof(ngx_rustdesk_ip_t));
    idh = ngx_crc32_short(id->data, id->len);

    ngx_shmtx_lock(&z->shpool->mutex);

    b = (ngx_rustdesk_ip_block_t *) ngx_rustdesk_ip_lookup(&z->sh->ips,
                                                                  &ip, hash);

    if (b == NULL) {
        /* the reference starts counting from the second request */

        b = ngx_rustdesk_peer_alloc_locked(z, sizeof(ngx_rustdesk_ip_block_t),
                                           now, log);
        if (b != NULL) {
            ngx_memzero(b, sizeof(ngx_rustdesk_ip_block_t));
            b->node.key = hash;
            b->ip = ip;
            b->reg_time = now;
            b->ids_time = now;
            ngx_rbtree_insert(&z->sh->ips, &b->node);
            ngx_queue_insert_head(&z->sh->ips_lru, &b->queue);
            z->sh->nips++;
        }

        ngx_shmtx_unlock(&z->shpool->mutex);
        return 1;
    }

    ngx_queue_remove(&b->queue);
    ngx_queue_insert_head(&z->sh->ips_lru, &b->queue);

    /* more than 30 (ip_block_max) RegisterPk without a 60 s pause */

    if ((ngx_msec_int_t) (now - b->reg_time) > NGX_RUSTDESK_IP_BLOCK_WINDOW) {
        b->reg_count = 0;

    } else if (b->reg_count > z->ip_block_max) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        return 0;
    }

    b->reg_count++;
    b->reg_time = now;

    /* more than 300 (ip_ids_max) new ids without a day's pause: known only */

    is_new = 1;

    for (i = 0; i < b->nids; i++) {
        if (b->ids[i] == idh) {
            is_new = 0;
            break;
        }
    }

    if ((ngx_msec_int_t) (now - b->ids_time) > NGX_RUSTDESK_IP_IDS_WINDOW) {
        b->nids = 0;

    } else if (b->nids > z->ip_ids_max) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        return !is_new;
    }

    if (is_new) {
        if (b->nids == b->ids_size) {
            ids = ngx_rustdesk_peer_alloc_locked(z,
                                  (b->ids_size ? b->ids_size * 2 : 8)
                                  * sizeof(uint32_t), now, log);
            if (ids == NULL) {
                /* no room to remember it: let it pass */
                ngx_shmtx_unlock(&z->shpool->mutex);
                return 1;
            }

            if (b->ids) {
                ngx_memcpy(ids, b->ids, b->nids * sizeof(uint32_t));
                ngx_slab_free_locked(z->shpool, b->ids);
            }

            b->ids = ids;
            b->ids_size = b->ids_size ? b->ids_size * 2 : 8;
        }

        b->ids[b->nids++] = idh;
    }

    b->ids_time = now;

    ngx_shmtx_unlock(&z->shpool->mutex);

    return 1;
}


void
ngx_rustdesk_ip_blocker_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_block_t *b)
{
    ngx_queue_remove(&b->queue);
    ngx_rbtree_delete(&z->sh->ips, &b->node);

    if (b->ids) {
        ngx_slab_free_locked(z->shpool, b->ids);
    }

    ngx_slab_free_locked(z->shpool, b);
    z->sh->nips--;
}


/*
 * An entry goes once either of its windows has passed: 60 s since its
 * last counted RegisterPk, or a day since its ids were last seen.
 */

ngx_uint_t
ngx_rustdesk_ip_blocker_expire_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_msec_t now, ngx_uint_t max)
{
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_rustdesk_ip_block_t  *b;

    for (n = 0; n < max && !ngx_queue_empty(&z->sh->ips_lru); n++) {
        q = ngx_queue_last(&z->sh->ips_lru);
        b = ngx_queue_data(q, ngx_rustdesk_ip_block_t, queue);

        if ((ngx_msec_int_t) (now - b->ids_time) < NGX_RUSTDESK_IP_IDS_WINDOW
            && (ngx_msec_int_t) (now - b->reg_time)
               < NGX_RUSTDESK_IP_BLOCK_WINDOW)
        {
            break;
        }

        ngx_rustdesk_ip_blocker_free_locked(z, b);
    }

    return n;
}
