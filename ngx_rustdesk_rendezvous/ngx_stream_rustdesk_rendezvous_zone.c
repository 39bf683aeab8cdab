/*
 * The rendezvous server's shared zone (PROTOCOL.md section 6).
 *
 * The peer table, the IP blocker, the waiting requesters and the console's
 * histories, each in its own file, live in one slab zone: rbtrees keyed by
 * crc32 with an LRU queue each.  Every function here and in those files
 * takes the zone mutex itself, or is named _locked and called with it
 * held, and never holds it across I/O.  When the zone is full, the least
 * recently registered peers that are offline are evicted (they stay in the
 * database); a zone full of online peers refuses new ones and says so
 * once.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_zone.h"
#include "ngx_stream_rustdesk_rendezvous_db.h"
#include "ngx_stream_rustdesk_rendezvous_peer.h"
#include "ngx_stream_rustdesk_rendezvous_ip_blocker.h"
#include "ngx_stream_rustdesk_rendezvous_waiter.h"
#include "ngx_stream_rustdesk_rendezvous_history.h"


#define NGX_RUSTDESK_EVICT_MAX  16     /* peers freed per failed alloc */


static ngx_uint_t ngx_rustdesk_peer_evict_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_msec_t now);
static void ngx_rustdesk_peer_full_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_log_t *log);
static ngx_int_t ngx_rustdesk_peer_init_stats(ngx_shm_zone_t *shm_zone,
    ngx_rustdesk_peer_zone_t *z);


ngx_int_t
ngx_rustdesk_peer_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_rustdesk_peer_zone_t  *oz = data;

    size_t                     len;
    ngx_rustdesk_peer_zone_t  *z;

    z = shm_zone->data;

    /*
     * the workers' channel directory: nginx's user and pid file are known
     * here, and a refusal still leaves a reload harmless; a zone that no
     * server uses has none
     */

    if (z->channel
        && ngx_rustdesk_ipc_dir_init(z->channel, shm_zone->shm.log) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the same for the database: the worker user must be able to write it */

    if (z->database
        && ngx_rustdesk_db_check_workers(z->cycle, z->database,
                                         shm_zone->shm.log)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (oz) {
        /* reload: keep the peers of the running zone */
        z->sh = oz->sh;
        z->shpool = oz->shpool;

        ngx_shmtx_lock(&z->shpool->mutex);
        z->sh->full_logged = 0;
        z->sh->always_use_relay = z->always_use_relay;
        ngx_shmtx_unlock(&z->shpool->mutex);

        return ngx_rustdesk_peer_init_stats(shm_zone, z);
    }

    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    /* a full zone is handled here, by eviction, not logged by the slab */
    z->shpool->log_nomem = 0;

    if (shm_zone->shm.exists) {
        z->sh = z->shpool->data;
        return ngx_rustdesk_peer_init_stats(shm_zone, z);
    }

    z->sh = ngx_slab_calloc(z->shpool, sizeof(ngx_rustdesk_peer_shctx_t));
    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    z->shpool->data = z->sh;

    ngx_rbtree_init(&z->sh->peers, &z->sh->peers_sentinel,
                    ngx_rustdesk_peer_rbtree_insert);
    ngx_queue_init(&z->sh->peers_lru);

    ngx_rbtree_init(&z->sh->ips, &z->sh->ips_sentinel,
                    ngx_rustdesk_ip_rbtree_insert);
    ngx_queue_init(&z->sh->ips_lru);

    ngx_rbtree_init(&z->sh->waiters, &z->sh->waiters_sentinel,
                    ngx_rustdesk_ip_rbtree_insert);
    ngx_queue_init(&z->sh->waiters_lru);

    ngx_queue_init(&z->sh->ip_changes);

    z->sh->always_use_relay = z->always_use_relay;
    z->sh->serial = z->serial;

    /* the console's punch request log: without room, none */
    z->sh->punch_reqs = ngx_slab_calloc(z->shpool, NGX_RUSTDESK_PUNCH_LOG
                                        * sizeof(ngx_rustdesk_punch_req_t));
    z->sh->servers_len = ngx_min(z->servers.len, NGX_RUSTDESK_SERVERS_MAX);

    if (z->sh->servers_len) {
        /* none configured: no data pointer at all */
        ngx_memcpy(z->sh->servers, z->servers.data, z->sh->servers_len);
    }

    len = sizeof(" in rustdesk zone \"\"") + shm_zone->shm.name.len;

    z->shpool->log_ctx = ngx_slab_alloc(z->shpool, len);
    if (z->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(z->shpool->log_ctx, " in rustdesk zone \"%V\"%Z",
                &shm_zone->shm.name);

    return ngx_rustdesk_peer_init_stats(shm_zone, z);
}


/*
 * The metrics' slots, when a listener wants them: made once and kept
 * across reloads (a module of another version with other counters gets
 * slots of its own; the old ones stay with the old workers).
 */

static ngx_int_t
ngx_rustdesk_peer_init_stats(ngx_shm_zone_t *shm_zone,
    ngx_rustdesk_peer_zone_t *z)
{
    ngx_rustdesk_stats_t  *st;

    if (z->stats_values == 0
        || (z->sh->stats && z->sh->stats->nvalues == z->stats_values))
    {
        return NGX_OK;
    }

    st = ngx_rustdesk_stats_alloc(z->shpool, z->stats_values,
                                  ngx_rustdesk_stats_slots(z->cycle));
    if (st == NULL) {
        ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                      "rustdesk: no room for the metrics' counters in zone "
                      "\"%V\", the rendezvous module counts nothing",
                      &shm_zone->shm.name);
        return NGX_OK;
    }

    ngx_shmtx_lock(&z->shpool->mutex);
    z->sh->stats = st;
    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_OK;
}


int32_t
ngx_rustdesk_peer_serial(ngx_rustdesk_peer_zone_t *z, u_char *servers,
    size_t *servers_len)
{
    int32_t  serial;

    ngx_shmtx_lock(&z->shpool->mutex);

    if (z->sh->serial > z->serial) {
        serial = z->sh->serial;
        *servers_len = z->sh->servers_len;
        ngx_memcpy(servers, z->sh->servers, z->sh->servers_len);

    } else {
        serial = z->serial;
        *servers_len = ngx_min(z->servers.len, NGX_RUSTDESK_SERVERS_MAX);

        if (*servers_len) {
            ngx_memcpy(servers, z->servers.data, *servers_len);
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return serial;
}


ngx_uint_t
ngx_rustdesk_peer_config_update(ngx_rustdesk_peer_zone_t *z, int32_t serial,
    u_char *servers, size_t servers_len)
{
    ngx_uint_t  adopted;

    if (servers_len > NGX_RUSTDESK_SERVERS_MAX) {
        return 0;
    }

    ngx_shmtx_lock(&z->shpool->mutex);

    adopted = (serial > z->sh->serial && serial > z->serial);

    if (adopted) {
        z->sh->serial = serial;
        z->sh->servers_len = servers_len;
        ngx_memcpy(z->sh->servers, servers, servers_len);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return adopted;
}


/*
 * A peer record: in a cell when it fits, else a slab chunk; *cell says
 * which.  Room is made as in ngx_rustdesk_peer_alloc_locked().
 */

void *
ngx_rustdesk_peer_new_locked(ngx_rustdesk_peer_zone_t *z, size_t size,
    ngx_msec_t now, ngx_uint_t *cell, ngx_log_t *log)
{
    u_char      *page;
    void       **c;
    ngx_uint_t   i, n;

    if (size > NGX_RUSTDESK_PEER_CELL) {
        *cell = 0;
        return ngx_rustdesk_peer_alloc_locked(z, size, now, log);
    }

    *cell = 1;

    for ( ;; ) {
        if (z->sh->free_cells) {
            c = z->sh->free_cells;
            z->sh->free_cells = *c;

            if (z->sh->full) {
                z->sh->full = 0;
            }

            return c;
        }

        page = ngx_slab_alloc_locked(z->shpool, ngx_pagesize);

        if (page) {
            n = ngx_pagesize / NGX_RUSTDESK_PEER_CELL;

            for (i = 0; i < n; i++) {
                c = (void **) (page + i * NGX_RUSTDESK_PEER_CELL);
                *c = z->sh->free_cells;
                z->sh->free_cells = c;
            }

            continue;
        }

        /* evicted peers in cells come back to the free list */

        if (ngx_rustdesk_peer_evict_locked(z, now) == 0) {
            ngx_rustdesk_peer_full_locked(z, log);
            return NULL;
        }
    }
}


void
ngx_rustdesk_peer_release_locked(ngx_rustdesk_peer_zone_t *z, void *p,
    ngx_uint_t cell)
{
    void  **c;

    if (!cell) {
        ngx_slab_free_locked(z->shpool, p);
        return;
    }

    c = (void **) p;
    *c = z->sh->free_cells;
    z->sh->free_cells = c;
}


/*
 * Allocation with room made by evicting peers that are offline, least
 * recently registered first, and blocker entries idle for a day.
 */

void *
ngx_rustdesk_peer_alloc_locked(ngx_rustdesk_peer_zone_t *z, size_t size,
    ngx_msec_t now, ngx_log_t *log)
{
    void  *p;

    for ( ;; ) {
        p = ngx_slab_alloc_locked(z->shpool, size);
        if (p != NULL) {
            if (z->sh->full) {
                z->sh->full = 0;
            }

            return p;
        }

        if (ngx_rustdesk_peer_evict_locked(z, now) == 0) {
            ngx_rustdesk_peer_full_locked(z, log);
            return NULL;
        }
    }
}


/*
 * Frees a bounded number of stale entries, each table its own, oldest
 * first: requesters that waited too long, idle blocker entries, then
 * offline peers; returns how many.
 */

static ngx_uint_t
ngx_rustdesk_peer_evict_locked(ngx_rustdesk_peer_zone_t *z, ngx_msec_t now)
{
    ngx_uint_t  n;

    n = ngx_rustdesk_waiter_expire_locked(z, now, NGX_RUSTDESK_EVICT_MAX);
    n += ngx_rustdesk_ip_blocker_expire_locked(z, now,
                                               NGX_RUSTDESK_EVICT_MAX - n);
    n += ngx_rustdesk_peer_expire_locked(z, now, NGX_RUSTDESK_EVICT_MAX - n);

    return n;
}


static void
ngx_rustdesk_peer_full_locked(ngx_rustdesk_peer_zone_t *z, ngx_log_t *log)
{
    z->sh->full = 1;

    if (z->sh->full_logged) {
        return;
    }

    z->sh->full_logged = 1;

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "rustdesk: no room%s: it holds %ui peers, all online; "
                  "new peers are refused until it is made larger",
                  z->shpool->log_ctx, z->sh->npeers);
}
