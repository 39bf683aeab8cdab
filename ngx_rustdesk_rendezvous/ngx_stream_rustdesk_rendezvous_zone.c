/*
 * The rendezvous server's shared zone (PROTOCOL.md section 6).
 *
 * The peer table, the IP blocker, the waiting requesters and the console's
 * histories, each in its own file, live in one slab zone: the peers in a
 * hash index and pages of cells (ngx_stream_rustdesk_rendezvous_table.c),
 * the others in rbtrees keyed by crc32 with an LRU queue each.  Every
 * function here and in those files takes the zone mutex itself, or is
 * named _locked and called with it held, and never holds it across I/O.
 *
 * When the slab has no room, stale requesters and IP blocker entries are
 * freed, then offline peers evicted (they stay in the database), a bounded
 * number per allocation as nginx's limit_req does: a few pages of cells
 * from where the last eviction stopped.  A page whose cells are all free
 * goes back to the slab, so every kind of entry can use what peers leave.
 * An allocation for which nothing could be freed fails, and the first such
 * failure is logged once.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_zone.h"
#include "ngx_stream_rustdesk_rendezvous_db.h"
#include "ngx_stream_rustdesk_rendezvous_peer.h"
#include "ngx_stream_rustdesk_rendezvous_ip_blocker.h"
#include "ngx_stream_rustdesk_rendezvous_waiter.h"
#include "ngx_stream_rustdesk_rendezvous_history.h"


#define NGX_RUSTDESK_EXPIRE_MAX  16    /* stale entries freed per alloc */
#define NGX_RUSTDESK_SWEEPS      2     /* sweeps of the peers per alloc */

/* a zone for a million peers and more: it had better be on huge pages */
#define NGX_RUSTDESK_ZONE_LARGE  ((size_t) 256 << 20)
#define NGX_RUSTDESK_SHMEM_THP                                               \
    "/sys/kernel/mm/transparent_hugepage/shmem_enabled"


static ngx_uint_t ngx_rustdesk_peer_expire_locked(
    ngx_rustdesk_peer_zone_t *z, ngx_msec_t now);
static void ngx_rustdesk_peer_full_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_log_t *log);
static void *ngx_rustdesk_peer_room_made(ngx_rustdesk_peer_zone_t *z,
    void *p);
static ngx_int_t ngx_rustdesk_peer_init_stats(ngx_shm_zone_t *shm_zone,
    ngx_rustdesk_peer_zone_t *z);
#ifdef MADV_HUGEPAGE
static void ngx_rustdesk_peer_zone_pages(ngx_shm_zone_t *shm_zone);
#endif


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

        /* a worker that died while allocating may have left it set */
        z->sh->table.busy = NULL;

        ngx_shmtx_unlock(&z->shpool->mutex);

        return ngx_rustdesk_peer_init_stats(shm_zone, z);
    }

    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.size > NGX_RUSTDESK_ZONE_MAX) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "rustdesk zone \"%V\" is larger than %uzG",
                      &shm_zone->shm.name, NGX_RUSTDESK_ZONE_MAX >> 30);
        return NGX_ERROR;
    }

    /* a full zone is handled here, by eviction, not logged by the slab */
    z->shpool->log_nomem = 0;

#ifdef MADV_HUGEPAGE
    /*
     * Every heartbeat reads an index slot and a record at random: on huge
     * pages, where the kernel gives them to shared memory
     * (transparent_hugepage/shmem_enabled "advise"), that takes fewer TLB
     * misses.  Elsewhere a no-op.
     */
    (void) madvise(shm_zone->shm.addr, shm_zone->shm.size, MADV_HUGEPAGE);

    ngx_rustdesk_peer_zone_pages(shm_zone);
#endif

    if (shm_zone->shm.exists) {
        z->sh = z->shpool->data;
        return ngx_rustdesk_peer_init_stats(shm_zone, z);
    }

    z->sh = ngx_slab_calloc(z->shpool, sizeof(ngx_rustdesk_peer_shctx_t));
    if (z->sh == NULL) {
        return NGX_ERROR;
    }

    z->shpool->data = z->sh;

    /*
     * the index of the peers, sized for as many as the zone could hold; the
     * zone is new (a reload that keeps it returned above), its pages zeroes
     */

    if (ngx_rustdesk_table_init(&z->sh->table, z->shpool, shm_zone->shm.size,
                                1)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the count of peers online, by second of their last registration */

    if (ngx_rustdesk_online_init(&z->sh->online, z->shpool,
                                 shm_zone->shm.size)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

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


#ifdef MADV_HUGEPAGE

/*
 * A zone of hundreds of megabytes is for millions of peers, and there each
 * heartbeat's reads at random (an index slot, and above all a record
 * anywhere in the zone) miss the TLB on 4 KiB pages: at 10 M peers a
 * heartbeat costs more than on huge pages (README "Performance").  Linux
 * gives huge pages to shared memory only as transparent_hugepage/
 * shmem_enabled allows; when it does not, the start says so, once, with
 * what to change.
 */

static void
ngx_rustdesk_peer_zone_pages(ngx_shm_zone_t *shm_zone)
{
    u_char     *last, *start, *end;
    ssize_t     n;
    ngx_fd_t    fd;
    ngx_str_t   setting;
    u_char      buf[128];

    if (shm_zone->shm.size < NGX_RUSTDESK_ZONE_LARGE) {
        return;
    }

    fd = ngx_open_file(NGX_RUSTDESK_SHMEM_THP, NGX_FILE_RDONLY,
                       NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        return;                         /* a kernel without THP */
    }

    n = ngx_read_fd(fd, buf, sizeof(buf));
    (void) ngx_close_file(fd);

    if (n <= 0) {
        return;
    }

    /* "always within_size advise [never] deny force": the one in force */

    last = buf + n;

    start = ngx_strlchr(buf, last, '[');
    end = start ? ngx_strlchr(start, last, ']') : NULL;

    if (end == NULL) {
        return;
    }

    setting.data = start + 1;
    setting.len = end - setting.data;

    if ((setting.len == 5 && ngx_strncmp(setting.data, "never", 5) == 0)
        || (setting.len == 4 && ngx_strncmp(setting.data, "deny", 4) == 0))
    {
        ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                      "rustdesk zone \"%V\" of %uzM is on %uzK pages: "
                      "with millions of peers a heartbeat costs more than "
                      "on huge pages, which " NGX_RUSTDESK_SHMEM_THP
                      " \"%V\" keeps from shared memory (\"advise\" "
                      "gives them, before nginx starts)",
                      &shm_zone->shm.name, shm_zone->shm.size >> 20,
                      ngx_pagesize >> 10, &setting);
    }
}

#endif


/*
 * The serial in force, without the mutex: every heartbeat asks whether its
 * client is behind (section 6), and the answer is almost always no.  An
 * aligned int32_t is read whole; the servers that go with it are read
 * under the mutex by ngx_rustdesk_peer_serial(), and only for a client that
 * is behind.
 */

int32_t
ngx_rustdesk_peer_serial_now(ngx_rustdesk_peer_zone_t *z)
{
    int32_t  serial;

    serial = *(volatile int32_t *) &z->sh->serial;

    return ngx_max(serial, z->serial);
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


/* A peer record, in a cell of the peer table. */

void *
ngx_rustdesk_peer_new_locked(ngx_rustdesk_peer_zone_t *z, size_t size,
    ngx_msec_t now, ngx_log_t *log)
{
    void        *p;
    ngx_uint_t   i, n;

    p = ngx_rustdesk_table_cell_alloc(&z->sh->table, z->shpool, size);
    if (p) {
        return ngx_rustdesk_peer_room_made(z, p);
    }

    /* a freed blocker entry or requester may leave a whole page */

    n = ngx_rustdesk_peer_expire_locked(z, now);

    if (n) {
        p = ngx_rustdesk_table_cell_alloc(&z->sh->table, z->shpool, size);
        if (p) {
            return ngx_rustdesk_peer_room_made(z, p);
        }
    }

    for (i = 0; i < NGX_RUSTDESK_SWEEPS; i++) {
        if (ngx_rustdesk_peer_sweep_locked(z, now, size) == 0) {
            break;
        }

        n++;

        p = ngx_rustdesk_table_cell_alloc(&z->sh->table, z->shpool, size);
        if (p) {
            return ngx_rustdesk_peer_room_made(z, p);
        }
    }

    if (n == 0) {
        ngx_rustdesk_peer_full_locked(z, log);
    }

    return NULL;
}


void
ngx_rustdesk_peer_release_locked(ngx_rustdesk_peer_zone_t *z, void *p)
{
    ngx_rustdesk_table_cell_free(&z->sh->table, z->shpool, p);
}


/*
 * Allocation with room made by freeing requesters that waited too long
 * and idle blocker entries, then by evicting offline peers until a page
 * of cells is back in the slab.
 */

void *
ngx_rustdesk_peer_alloc_locked(ngx_rustdesk_peer_zone_t *z, size_t size,
    ngx_msec_t now, ngx_log_t *log)
{
    void        *p;
    ngx_uint_t   i, n;

    p = ngx_slab_alloc_locked(z->shpool, size);
    if (p) {
        return p;
    }

    n = ngx_rustdesk_peer_expire_locked(z, now);

    if (n) {
        p = ngx_slab_alloc_locked(z->shpool, size);
        if (p) {
            return ngx_rustdesk_peer_room_made(z, p);
        }
    }

    for (i = 0; i < NGX_RUSTDESK_SWEEPS; i++) {
        if (ngx_rustdesk_peer_sweep_locked(z, now, 0) == 0) {
            break;
        }

        n++;

        p = ngx_slab_alloc_locked(z->shpool, size);
        if (p) {
            return ngx_rustdesk_peer_room_made(z, p);
        }
    }

    if (n == 0) {
        ngx_rustdesk_peer_full_locked(z, log);
    }

    return NULL;
}


/*
 * Frees a bounded number of stale entries, each table its own, oldest
 * first: requesters that waited too long, then idle blocker entries;
 * returns how many.
 */

static ngx_uint_t
ngx_rustdesk_peer_expire_locked(ngx_rustdesk_peer_zone_t *z, ngx_msec_t now)
{
    ngx_uint_t  n;

    n = ngx_rustdesk_waiter_expire_locked(z, now, NGX_RUSTDESK_EXPIRE_MAX);
    n += ngx_rustdesk_ip_blocker_expire_locked(z, now,
                                               NGX_RUSTDESK_EXPIRE_MAX - n);

    return n;
}


/* Room was made: the zone takes new entries again (the metrics' gauge). */

static void *
ngx_rustdesk_peer_room_made(ngx_rustdesk_peer_zone_t *z, void *p)
{
    if (z->sh->full) {
        z->sh->full = 0;
    }

    return p;
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
                  "rustdesk: no room%s: it holds %ui peers, all online "
                  "where room was sought; new peers are refused until some "
                  "go offline or it is made larger",
                  z->shpool->log_ctx, z->sh->npeers);
}
