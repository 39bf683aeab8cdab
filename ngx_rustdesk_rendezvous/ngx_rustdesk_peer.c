/*
 * Peer table and IP blocker in shared memory (PROTOCOL.md section 6).
 *
 * Both live in one slab zone: rbtrees keyed by crc32 with an LRU queue
 * each.  Every function here takes the zone mutex itself and never holds
 * it across I/O.  When the zone is full, the least recently registered
 * peers that are offline are evicted (they stay in the database); a zone
 * full of online peers refuses new ones and says so once.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include <sodium.h>

#include "ngx_rustdesk_peer.h"


#define NGX_RUSTDESK_EVICT_MAX  16     /* peers freed per failed alloc */


static ngx_rustdesk_peer_t *ngx_rustdesk_peer_lookup_locked(
    ngx_rustdesk_peer_zone_t *z, ngx_str_t *id, uint32_t hash);
static ngx_rustdesk_peer_t *ngx_rustdesk_peer_store_locked(
    ngx_rustdesk_peer_zone_t *z, ngx_rustdesk_peer_t *old, ngx_str_t *id,
    uint32_t hash, ngx_str_t *uuid, ngx_str_t *pk, ngx_log_t *log);
static ngx_rustdesk_peer_t *ngx_rustdesk_peer_load_locked(
    ngx_rustdesk_peer_zone_t *z, ngx_str_t *id, uint32_t hash,
    ngx_rustdesk_peer_row_t *row, ngx_log_t *log);
static void ngx_rustdesk_ip_change_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p, ngx_rustdesk_ip_t *ip, ngx_msec_t now,
    ngx_log_t *log);
static void ngx_rustdesk_ip_change_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p);
static void ngx_rustdesk_peer_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p);
static ngx_rustdesk_peer_t *ngx_rustdesk_peer_new_locked(
    ngx_rustdesk_peer_zone_t *z, size_t size, ngx_msec_t now,
    ngx_uint_t *cell, ngx_log_t *log);
static void ngx_rustdesk_peer_release_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p);
static ngx_uint_t ngx_rustdesk_peer_evict_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_msec_t now);
static void ngx_rustdesk_peer_full_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_log_t *log);
static void *ngx_rustdesk_peer_alloc_locked(ngx_rustdesk_peer_zone_t *z,
    size_t size, ngx_msec_t now, ngx_log_t *log);
static void ngx_rustdesk_peer_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_rustdesk_waiter_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_waiter_t *w);


#define ngx_rustdesk_peer_id_data(p)    ((p)->data)
#define ngx_rustdesk_peer_uuid_data(p)  ((p)->data + (p)->id_len)
#define ngx_rustdesk_peer_pk_data(p)    ((p)->data + (p)->id_len + (p)->uuid_len)


ngx_int_t
ngx_rustdesk_peer_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_rustdesk_peer_zone_t  *oz = data;

    size_t                     len;
    ngx_rustdesk_peer_zone_t  *z;

    z = shm_zone->data;

    if (oz) {
        /* reload: keep the peers of the running zone */
        z->sh = oz->sh;
        z->shpool = oz->shpool;

        ngx_shmtx_lock(&z->shpool->mutex);
        z->sh->generation++;
        z->sh->full_logged = 0;
        z->sh->always_use_relay = z->always_use_relay;
        ngx_shmtx_unlock(&z->shpool->mutex);

        return NGX_OK;
    }

    z->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    /* a full zone is handled here, by eviction, not logged by the slab */
    z->shpool->log_nomem = 0;

    if (shm_zone->shm.exists) {
        z->sh = z->shpool->data;
        return NGX_OK;
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

    return NGX_OK;
}


void
ngx_rustdesk_ip_from_sockaddr(ngx_rustdesk_ip_t *ip, struct sockaddr *sa,
    socklen_t len)
{
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;

    ngx_memzero(ip, sizeof(ngx_rustdesk_ip_t));

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        ip->family = AF_INET;
        ip->port = ntohs(sin->sin_port);
        ngx_memcpy(ip->addr, &sin->sin_addr, 4);
        break;

    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        ip->port = ntohs(sin6->sin6_port);

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            ip->family = AF_INET;
            ngx_memcpy(ip->addr, &sin6->sin6_addr.s6_addr[12], 4);

        } else {
            ip->family = AF_INET6;
            ngx_memcpy(ip->addr, &sin6->sin6_addr, 16);
        }

        break;
    }
}


socklen_t
ngx_rustdesk_ip_to_sockaddr(ngx_rustdesk_ip_t *ip, struct sockaddr_storage *ss)
{
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;

    ngx_memzero(ss, sizeof(struct sockaddr_storage));

    if (ip->family == AF_INET6) {
        sin6 = (struct sockaddr_in6 *) ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(ip->port);
        ngx_memcpy(&sin6->sin6_addr, ip->addr, 16);
        return sizeof(struct sockaddr_in6);
    }

    sin = (struct sockaddr_in *) ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(ip->port);
    ngx_memcpy(&sin->sin_addr, ip->addr, 4);
    return sizeof(struct sockaddr_in);
}


size_t
ngx_rustdesk_ip_text(ngx_rustdesk_ip_t *ip, u_char *buf, size_t len)
{
    if (ip->family == 0) {
        return 0;
    }

    return ngx_inet_ntop(ip->family, ip->addr, buf, len);
}


ngx_uint_t
ngx_rustdesk_ip_is_loopback(ngx_rustdesk_ip_t *ip)
{
    static u_char  lo6[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };

    if (ip->family == AF_INET) {
        return ip->addr[0] == 127;
    }

    return ip->family == AF_INET6 && ngx_memcmp(ip->addr, lo6, 16) == 0;
}


void
ngx_rustdesk_peer_register(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_rustdesk_ip_t *addr, ngx_msec_t now, ngx_uint_t *request_pk,
    ngx_uint_t *ip_change)
{
    uint32_t              hash;
    ngx_rustdesk_peer_t  *p;

    hash = ngx_crc32_short(id->data, id->len);

    ngx_shmtx_lock(&z->shpool->mutex);

    p = ngx_rustdesk_peer_lookup_locked(z, id, hash);

    if (p == NULL) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        *request_pk = 1;
        *ip_change = 0;
        return;
    }

    /*
     * an IP change compares with the last UDP address, or with the IP of
     * the last RegisterPk when there is none; loopback never counts
     */

    if (p->addr.family) {
        *ip_change = ngx_rustdesk_ip_cmp(&p->addr, addr, 0) != 0;

    } else {
        *ip_change = ngx_rustdesk_ip_cmp(&p->ip, addr, 0) != 0;
    }

    if (ngx_rustdesk_ip_is_loopback(addr)) {
        *ip_change = 0;
    }

    /*
     * a peer with a live stream moves to UDP only by a RegisterPk, whose
     * uuid is checked: a RegisterPeer from its IP (another device behind
     * the same NAT could send one) must not take its messages away
     */

    *request_pk = (p->pk_len == 0 || *ip_change || p->stream > 0);

    if (!*request_pk) {
        /* over UDP from now on, even if a stream of it lingers */
        p->addr = *addr;
        p->stream = NGX_RUSTDESK_STREAM_NONE;
        p->last_reg = now;

        ngx_queue_remove(&p->queue);
        ngx_queue_insert_head(&z->sh->peers_lru, &p->queue);
    }

    /* the reference logs an IP change only while RegisterPk is not looping */
    if (*ip_change && p->reg_pk_count > 2) {
        *ip_change = 0;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


ngx_int_t
ngx_rustdesk_peer_register_pk(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_register_pk_t *rk, ngx_rustdesk_peer_row_t *row,
    ngx_rustdesk_peer_change_t *change, ngx_log_t *log)
{
    uint32_t              hash;
    ngx_str_t             uuid, pk;
    ngx_uint_t            changed, same_pk;
    ngx_rustdesk_peer_t  *p;

    ngx_memzero(change, sizeof(ngx_rustdesk_peer_change_t));

    hash = ngx_crc32_short(rk->id.data, rk->id.len);

    ngx_shmtx_lock(&z->shpool->mutex);

    p = ngx_rustdesk_peer_lookup_locked(z, &rk->id, hash);

    if (p == NULL && row == NULL) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        return NGX_DECLINED;
    }

    if (p == NULL && row->uuid.len) {
        /* known to the database only: load it into memory first */

        p = ngx_rustdesk_peer_load_locked(z, &rk->id, hash, row, log);
        if (p == NULL) {
            ngx_shmtx_unlock(&z->shpool->mutex);
            return 7;  /* SERVER_ERROR */
        }
    }

    if (p == NULL || p->uuid_len == 0) {
        changed = 1;

    } else {
        uuid.data = ngx_rustdesk_peer_uuid_data(p);
        uuid.len = p->uuid_len;
        pk.data = ngx_rustdesk_peer_pk_data(p);
        pk.len = p->pk_len;

        same_pk = (pk.len == rk->pk.len
                   && ngx_memcmp(pk.data, rk->pk.data, pk.len) == 0);

        if (uuid.len != rk->uuid.len
            || ngx_memcmp(uuid.data, rk->uuid.data, uuid.len) != 0)
        {
            ngx_shmtx_unlock(&z->shpool->mutex);
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "rustdesk: peer \"%V\" uuid mismatch", &rk->id);
            return 2;  /* UUID_MISMATCH */
        }

        if (ngx_rustdesk_ip_cmp(&p->ip, &rk->addr, 0) != 0 && !same_pk) {
            ngx_shmtx_unlock(&z->shpool->mutex);
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "rustdesk: peer \"%V\" ip and pk mismatch",
                          &rk->id);
            return 2;  /* UUID_MISMATCH */
        }

        changed = !same_pk || ngx_rustdesk_ip_cmp(&p->ip, &rk->addr, 0) != 0;
    }

    /* at most 3 RegisterPk within 6 s for one id */

    if (p) {
        if (rk->now - p->reg_pk_time > NGX_RUSTDESK_REG_PK_WINDOW) {
            p->reg_pk_count = 0;

        } else if (p->reg_pk_count >= NGX_RUSTDESK_REG_PK_MAX) {
            ngx_shmtx_unlock(&z->shpool->mutex);
            return 4;  /* TOO_FREQUENT */
        }
    }

    if (p && p->uuid_len && ngx_rustdesk_ip_cmp(&p->ip, &rk->addr, 0) != 0) {
        ngx_rustdesk_ip_change_locked(z, p, &rk->addr, rk->now, log);
    }

    if (changed) {
        p = ngx_rustdesk_peer_store_locked(z, p, &rk->id, hash, &rk->uuid,
                                           &rk->pk, log);
        if (p == NULL) {
            ngx_shmtx_unlock(&z->shpool->mutex);
            return 7;  /* SERVER_ERROR */
        }

        p->addr = rk->addr;
        p->stream = NGX_RUSTDESK_STREAM_NONE;
        p->ip = rk->addr;
        p->ip.port = 0;
        p->last_reg = rk->now;

        change->write = 1;
        change->insert = !p->has_guid;

        if (!p->has_guid) {
            /* a random (version 4) UUID, as the reference's guid */
            randombytes_buf(p->guid, 16);
            p->guid[6] = (p->guid[6] & 0x0f) | 0x40;
            p->guid[8] = (p->guid[8] & 0x3f) | 0x80;
            p->has_guid = 1;
        }

        ngx_memcpy(change->guid, p->guid, 16);
    }

    p->reg_pk_count++;
    p->reg_pk_time = rk->now;

    if (rk->stream || p->stream != NGX_RUSTDESK_STREAM_NONE) {
        /*
         * registered over a stream: reached through it (section 8); or
         * over UDP after a stream: reached over UDP from now on
         */

        p->addr = rk->addr;
        p->stream = rk->stream;
        p->last_reg = rk->now;

        ngx_queue_remove(&p->queue);
        ngx_queue_insert_head(&z->sh->peers_lru, &p->queue);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return 0;  /* OK */
}


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

    if (now - b->reg_time > NGX_RUSTDESK_IP_BLOCK_WINDOW) {
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

    if (now - b->ids_time > NGX_RUSTDESK_IP_IDS_WINDOW) {
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


ngx_int_t
ngx_rustdesk_peer_online(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_msec_t now)
{
    ngx_pid_t          stream;
    ngx_rustdesk_ip_t  addr;

    return ngx_rustdesk_peer_lookup(z, id, now, &addr, &stream);
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


ngx_int_t
ngx_rustdesk_peer_load(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_rustdesk_peer_row_t *row, ngx_log_t *log)
{
    uint32_t              hash;
    ngx_rustdesk_peer_t  *p;

    hash = ngx_crc32_short(id->data, id->len);

    ngx_shmtx_lock(&z->shpool->mutex);

    p = ngx_rustdesk_peer_lookup_locked(z, id, hash);

    if (p == NULL) {
        p = ngx_rustdesk_peer_load_locked(z, id, hash, row, log);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return p ? NGX_OK : NGX_ERROR;
}


static ngx_rustdesk_peer_t *
ngx_rustdesk_peer_load_locked(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    uint32_t hash, ngx_rustdesk_peer_row_t *row, ngx_log_t *log)
{
    ngx_rustdesk_peer_t  *p;

    p = ngx_rustdesk_peer_store_locked(z, NULL, id, hash, &row->uuid,
                                       &row->pk, log);
    if (p == NULL) {
        return NULL;
    }

    /* offline until it registers: last_reg stays 0 */

    ngx_memcpy(p->guid, row->guid, 16);
    p->has_guid = 1;
    p->ip = row->ip;

    return p;
}


/*
 * Online: registered in the last 30 s; a peer with a live stream is
 * refreshed by each frame on it, at least once per keep-alive period, and
 * stays online for stream_ttl after the last one (a worker that died
 * without closing its streams leaves them for that long at most).
 */

ngx_int_t
ngx_rustdesk_peer_lookup(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_msec_t now, ngx_rustdesk_ip_t *addr, ngx_pid_t *stream)
{
    ngx_int_t             rc;
    ngx_msec_t            ttl;
    ngx_rustdesk_peer_t  *p;

    ngx_shmtx_lock(&z->shpool->mutex);

    p = ngx_rustdesk_peer_lookup_locked(z, id,
                                        ngx_crc32_short(id->data, id->len));
    if (p == NULL) {
        rc = NGX_DECLINED;

    } else {
        ttl = (p->stream > 0) ? ngx_max(z->stream_ttl,
                                        NGX_RUSTDESK_REG_TIMEOUT)
                              : NGX_RUSTDESK_REG_TIMEOUT;

        rc = (p->last_reg && now - p->last_reg < ttl);
        *addr = p->addr;
        *stream = p->stream;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return rc;
}


ngx_uint_t
ngx_rustdesk_peer_unchanged(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_register_pk_t *rk)
{
    ngx_uint_t            same;
    ngx_rustdesk_peer_t  *p;

    ngx_shmtx_lock(&z->shpool->mutex);

    p = ngx_rustdesk_peer_lookup_locked(z, &rk->id,
                                        ngx_crc32_short(rk->id.data,
                                                        rk->id.len));

    same = p
           && p->uuid_len == rk->uuid.len
           && ngx_memcmp(ngx_rustdesk_peer_uuid_data(p), rk->uuid.data,
                         rk->uuid.len) == 0
           && p->pk_len == rk->pk.len
           && ngx_memcmp(ngx_rustdesk_peer_pk_data(p), rk->pk.data,
                         rk->pk.len) == 0
           && ngx_rustdesk_ip_cmp(&p->ip, &rk->addr, 0) == 0;

    ngx_shmtx_unlock(&z->shpool->mutex);

    return same;
}


ngx_int_t
ngx_rustdesk_peer_stream_refresh(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_pid_t pid, ngx_msec_t now)
{
    ngx_int_t             rc;
    ngx_rustdesk_peer_t  *p;

    ngx_shmtx_lock(&z->shpool->mutex);

    p = ngx_rustdesk_peer_lookup_locked(z, id,
                                        ngx_crc32_short(id->data, id->len));

    if (p && p->stream == pid) {
        if (now) {
            p->last_reg = now;

            ngx_queue_remove(&p->queue);
            ngx_queue_insert_head(&z->sh->peers_lru, &p->queue);
        }

        rc = NGX_OK;

    } else {
        rc = NGX_DECLINED;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return rc;
}


void
ngx_rustdesk_peer_stream_closed(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_pid_t pid, ngx_msec_t now, ngx_uint_t grace)
{
    ngx_rustdesk_peer_t  *p;

    ngx_shmtx_lock(&z->shpool->mutex);

    p = ngx_rustdesk_peer_lookup_locked(z, id,
                                        ngx_crc32_short(id->data, id->len));

    if (p && p->stream == pid) {
        p->stream = NGX_RUSTDESK_STREAM_CLOSED;

        if (grace) {
            p->last_reg = now;
        }
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


size_t
ngx_rustdesk_peer_pk(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id, u_char *pk)
{
    size_t                len;
    ngx_rustdesk_peer_t  *p;

    len = 0;

    ngx_shmtx_lock(&z->shpool->mutex);

    p = ngx_rustdesk_peer_lookup_locked(z, id,
                                        ngx_crc32_short(id->data, id->len));
    if (p) {
        len = p->pk_len;
        ngx_memcpy(pk, ngx_rustdesk_peer_pk_data(p), len);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return len;
}


void
ngx_rustdesk_waiter_add(ngx_rustdesk_peer_zone_t *z, ngx_rustdesk_ip_t *a,
    ngx_pid_t pid, ngx_msec_t now, ngx_log_t *log)
{
    uint32_t                hash;
    ngx_uint_t              n;
    ngx_queue_t            *q;
    ngx_rustdesk_waiter_t  *w;

    hash = ngx_crc32_short((u_char *) a, sizeof(ngx_rustdesk_ip_t));

    ngx_shmtx_lock(&z->shpool->mutex);

    /* entries of requesters that never got an answer age out here */

    for (n = 0; n < 8 && !ngx_queue_empty(&z->sh->waiters_lru); n++) {
        q = ngx_queue_last(&z->sh->waiters_lru);
        w = ngx_queue_data(q, ngx_rustdesk_waiter_t, queue);

        if (now - w->time < NGX_RUSTDESK_WAITER_TTL) {
            break;
        }

        ngx_rustdesk_waiter_free_locked(z, w);
    }

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

        p = ngx_slprintf(p, last, "%4d-%02d-%02dT%02d:%02d:%02dZ %*s -> %*s@%*s\n",
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
                ngx_queue_remove(&b->queue);
                ngx_rbtree_delete(&z->sh->ips, &b->node);

                if (b->ids) {
                    ngx_slab_free_locked(z->shpool, b->ids);
                }

                ngx_slab_free_locked(z->shpool, b);
                z->sh->nips--;
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


/*
 * As the reference's IP_CHANGES: within 180 s of the first change, each
 * address a peer registers from is counted; later, the count restarts.
 */

static void
ngx_rustdesk_ip_change_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p, ngx_rustdesk_ip_t *addr, ngx_msec_t now,
    ngx_log_t *log)
{
    ngx_uint_t                 i;
    ngx_rustdesk_ip_t          ip;
    ngx_rustdesk_ip_change_t  *c;

    ip = *addr;
    ip.port = 0;

    c = p->ip_change;

    if (c == NULL) {
        /* out of the LRU while allocating, so that eviction cannot take it */

        ngx_queue_remove(&p->queue);
        c = ngx_rustdesk_peer_alloc_locked(z, sizeof(ngx_rustdesk_ip_change_t),
                                           now, log);
        ngx_queue_insert_head(&z->sh->peers_lru, &p->queue);

        if (c == NULL) {
            return;
        }

        ngx_memzero(c, sizeof(ngx_rustdesk_ip_change_t));
        c->peer = p;
        c->time = now;
        p->ip_change = c;

    } else {
        ngx_queue_remove(&c->queue);

        if (now - c->time > NGX_RUSTDESK_IP_CHANGE_DUR) {
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


static void
ngx_rustdesk_ip_change_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p)
{
    ngx_rustdesk_ip_change_t  *c;

    c = p->ip_change;

    if (c) {
        z->sh->nip_changes -= (c->n > 1);
        ngx_queue_remove(&c->queue);
        ngx_slab_free_locked(z->shpool, c);
        p->ip_change = NULL;
    }
}


static void
ngx_rustdesk_peer_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p)
{
    ngx_rustdesk_ip_change_free_locked(z, p);

    ngx_queue_remove(&p->queue);
    ngx_rbtree_delete(&z->sh->peers, &p->node);
    ngx_rustdesk_peer_release_locked(z, p);
    z->sh->npeers--;
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

        if (now - c->time < NGX_RUSTDESK_IP_CHANGE_KEEP) {
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


static void
ngx_rustdesk_waiter_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_waiter_t *w)
{
    ngx_queue_remove(&w->queue);
    ngx_rbtree_delete(&z->sh->waiters, &w->node);
    ngx_slab_free_locked(z->shpool, w);
    z->sh->nwaiters--;
}


static ngx_rustdesk_peer_t *
ngx_rustdesk_peer_lookup_locked(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    uint32_t hash)
{
    ngx_int_t             rc;
    ngx_rbtree_node_t    *node, *sentinel;
    ngx_rustdesk_peer_t  *p;

    node = z->sh->peers.root;
    sentinel = z->sh->peers.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        p = (ngx_rustdesk_peer_t *) node;

        rc = ngx_memn2cmp(id->data, ngx_rustdesk_peer_id_data(p), id->len,
                          p->id_len);
        if (rc == 0) {
            return p;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/*
 * Stores id/uuid/pk: in place when the sizes match, else in a new node
 * that takes over the old one's fields and place in the LRU.
 */

static ngx_rustdesk_peer_t *
ngx_rustdesk_peer_store_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *old, ngx_str_t *id, uint32_t hash, ngx_str_t *uuid,
    ngx_str_t *pk, ngx_log_t *log)
{
    size_t                size;
    ngx_uint_t            cell;
    ngx_rustdesk_peer_t  *p;

    if (old && old->uuid_len == uuid->len && old->pk_len == pk->len) {
        p = old;
        goto copy;
    }

    size = offsetof(ngx_rustdesk_peer_t, data) + id->len + uuid->len + pk->len;

    /* out of the LRU while allocating, so that eviction cannot take it */

    if (old) {
        ngx_queue_remove(&old->queue);
    }

    p = ngx_rustdesk_peer_new_locked(z, size, ngx_current_msec, &cell, log);

    if (p == NULL) {
        if (old) {
            ngx_queue_insert_head(&z->sh->peers_lru, &old->queue);
        }

        return NULL;
    }

    if (old) {
        ngx_memcpy(p, old, offsetof(ngx_rustdesk_peer_t, data));
        ngx_rbtree_delete(&z->sh->peers, &old->node);
        ngx_rustdesk_peer_release_locked(z, old);
        z->sh->npeers--;

        if (p->ip_change) {
            p->ip_change->peer = p;
        }

    } else {
        ngx_memzero(p, offsetof(ngx_rustdesk_peer_t, data));
    }

    p->cell = (u_char) cell;

    p->node.key = hash;
    p->id_len = (u_char) id->len;
    ngx_memcpy(ngx_rustdesk_peer_id_data(p), id->data, id->len);

    ngx_rbtree_insert(&z->sh->peers, &p->node);
    ngx_queue_insert_head(&z->sh->peers_lru, &p->queue);
    z->sh->npeers++;

copy:

    p->uuid_len = (u_char) uuid->len;
    p->pk_len = (u_char) pk->len;
    ngx_memcpy(ngx_rustdesk_peer_uuid_data(p), uuid->data, uuid->len);
    ngx_memcpy(ngx_rustdesk_peer_pk_data(p), pk->data, pk->len);

    ngx_queue_remove(&p->queue);
    ngx_queue_insert_head(&z->sh->peers_lru, &p->queue);

    return p;
}


/*
 * A peer record: in a cell when it fits, else a slab chunk; *cell says
 * which.  Room is made as in ngx_rustdesk_peer_alloc_locked().
 */

static ngx_rustdesk_peer_t *
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
            return (ngx_rustdesk_peer_t *) c;
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


static void
ngx_rustdesk_peer_release_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p)
{
    void  **c;

    if (!p->cell) {
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

static void *
ngx_rustdesk_peer_alloc_locked(ngx_rustdesk_peer_zone_t *z, size_t size,
    ngx_msec_t now, ngx_log_t *log)
{
    void  *p;

    for ( ;; ) {
        p = ngx_slab_alloc_locked(z->shpool, size);
        if (p != NULL) {
            return p;
        }

        if (ngx_rustdesk_peer_evict_locked(z, now) == 0) {
            ngx_rustdesk_peer_full_locked(z, log);
            return NULL;
        }
    }
}


/* Frees a bounded number of stale entries; returns how many. */

static ngx_uint_t
ngx_rustdesk_peer_evict_locked(ngx_rustdesk_peer_zone_t *z, ngx_msec_t now)
{
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_rustdesk_peer_t      *peer;
    ngx_rustdesk_waiter_t    *w;
    ngx_rustdesk_ip_block_t  *b;

    n = 0;

    while (n < NGX_RUSTDESK_EVICT_MAX && !ngx_queue_empty(&z->sh->waiters_lru))
    {
        q = ngx_queue_last(&z->sh->waiters_lru);
        w = ngx_queue_data(q, ngx_rustdesk_waiter_t, queue);

        if (now - w->time < NGX_RUSTDESK_WAITER_TTL) {
            break;
        }

        ngx_rustdesk_waiter_free_locked(z, w);
        n++;
    }

    while (n < NGX_RUSTDESK_EVICT_MAX && !ngx_queue_empty(&z->sh->ips_lru)) {
        q = ngx_queue_last(&z->sh->ips_lru);
        b = ngx_queue_data(q, ngx_rustdesk_ip_block_t, queue);

        if (now - b->ids_time < NGX_RUSTDESK_IP_IDS_WINDOW
            && now - b->reg_time < NGX_RUSTDESK_IP_BLOCK_WINDOW)
        {
            break;
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&z->sh->ips, &b->node);

        if (b->ids) {
            ngx_slab_free_locked(z->shpool, b->ids);
        }

        ngx_slab_free_locked(z->shpool, b);
        z->sh->nips--;
        n++;
    }

    while (n < NGX_RUSTDESK_EVICT_MAX && !ngx_queue_empty(&z->sh->peers_lru)) {
        q = ngx_queue_last(&z->sh->peers_lru);
        peer = ngx_queue_data(q, ngx_rustdesk_peer_t, queue);

        if (peer->last_reg && now - peer->last_reg < NGX_RUSTDESK_REG_TIMEOUT) {
            break;
        }

        ngx_rustdesk_peer_free_locked(z, peer);
        n++;
    }

    return n;
}


static void
ngx_rustdesk_peer_full_locked(ngx_rustdesk_peer_zone_t *z, ngx_log_t *log)
{
    if (z->sh->full_logged) {
        return;
    }

    z->sh->full_logged = 1;

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "rustdesk: no room%s: it holds %ui peers, all online; "
                  "new peers are refused until it is made larger",
                  z->shpool->log_ctx, z->sh->npeers);
}


/* ordered by crc32, then by the id itself, as ngx_str_rbtree_insert_value */

static void
ngx_rustdesk_peer_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t    **p;
    ngx_rustdesk_peer_t   *n, *t;

    n = (ngx_rustdesk_peer_t *) node;

    for ( ;; ) {
        t = (ngx_rustdesk_peer_t *) temp;

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            p = (ngx_memn2cmp(ngx_rustdesk_peer_id_data(n), ngx_rustdesk_peer_id_data(t),
                              n->id_len, t->id_len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* address-keyed trees: ordered by crc32, then by the address itself */

void
ngx_rustdesk_ip_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t       **p;
    ngx_rustdesk_ip_node_t   *n, *t;

    n = (ngx_rustdesk_ip_node_t *) node;

    for ( ;; ) {
        t = (ngx_rustdesk_ip_node_t *) temp;

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            p = (ngx_memcmp(&n->ip, &t->ip, sizeof(ngx_rustdesk_ip_t)) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


ngx_rustdesk_ip_node_t *
ngx_rustdesk_ip_lookup(ngx_rbtree_t *tree, ngx_rustdesk_ip_t *ip,
    uint32_t hash)
{
    ngx_int_t                rc;
    ngx_rbtree_node_t       *node, *sentinel;
    ngx_rustdesk_ip_node_t  *n;

    node = tree->root;
    sentinel = tree->sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        n = (ngx_rustdesk_ip_node_t *) node;

        rc = ngx_memcmp(ip, &n->ip, sizeof(ngx_rustdesk_ip_t));
        if (rc == 0) {
            return n;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


ngx_int_t
ngx_rustdesk_ip_cmp(ngx_rustdesk_ip_t *a, ngx_rustdesk_ip_t *b,
    ngx_uint_t with_port)
{
    if (a->family != b->family) {
        return 1;
    }

    if (with_port && a->port != b->port) {
        return 1;
    }

    return ngx_memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) != 0;
}
