/*
 * The peer table in the shared zone (PROTOCOL.md section 6): RegisterPeer
 * and RegisterPk, rows loaded from the database, the lookups of the
 * requests and the streams registered on (section 8).
 *
 * The peers are found through the hash index of the peer table
 * (ngx_stream_rustdesk_rendezvous_table.c): a steady heartbeat reads and
 * writes one slot of it, nothing else, whatever the number of peers; one
 * that changes something reads the record the slot names too.
 * There is no LRU queue to keep in order on every hit: when room is
 * needed, a sweep goes round the pages of cells, a few at a time, and
 * evicts the peers it finds offline (they stay in the database).  Every
 * function here takes the zone mutex itself, or is named _locked and
 * called with it held, and never holds it across I/O.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include <sodium.h>

#include "ngx_stream_rustdesk_rendezvous_peer.h"
#include "ngx_stream_rustdesk_rendezvous_history.h"


#define NGX_RUSTDESK_SWEEP_PAGES  8    /* pages of cells per sweep */


typedef struct {
    ngx_rustdesk_peer_zone_t  *zone;
    ngx_msec_t                 now;
    ngx_rustdesk_peer_gone_t  *gone;
    ngx_uint_t                 n;
    ngx_uint_t                 max;
} ngx_rustdesk_peer_sweep_t;


static ngx_rustdesk_peer_t *ngx_rustdesk_peer_lock(
    ngx_rustdesk_peer_zone_t *z, ngx_str_t *id, uint32_t *hash);
static ngx_rustdesk_peer_t *ngx_rustdesk_peer_lookup_locked(
    ngx_rustdesk_peer_zone_t *z, ngx_str_t *id, uint32_t hash);
static ngx_rustdesk_peer_t *ngx_rustdesk_peer_store_locked(
    ngx_rustdesk_peer_zone_t *z, ngx_rustdesk_peer_t *old, ngx_str_t *id,
    uint32_t hash, ngx_str_t *uuid, ngx_str_t *pk, ngx_log_t *log);
static ngx_rustdesk_peer_t *ngx_rustdesk_peer_load_locked(
    ngx_rustdesk_peer_zone_t *z, ngx_str_t *id, uint32_t hash,
    ngx_rustdesk_peer_row_t *row, ngx_log_t *log);
static void ngx_rustdesk_peer_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p);
static void ngx_rustdesk_peer_set_reg(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p, ngx_msec_t last_reg, ngx_pid_t stream);
static ngx_uint_t ngx_rustdesk_peer_evict_locked(void *data,
    ngx_rustdesk_peer_t *p);
static ngx_uint_t ngx_rustdesk_peer_gone_locked(void *data,
    ngx_rustdesk_peer_t *p);


/*
 * The zone locked (the caller unlocks it) and the peer of id looked up in
 * it, NULL if none; the id's hash in *hash, for a store that follows.
 */

static ngx_rustdesk_peer_t *
ngx_rustdesk_peer_lock(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    uint32_t *hash)
{
    uint32_t  h;

    /* the key never changes: hashed before the lock is taken */

    h = ngx_rustdesk_table_hash(&z->sh->table, id->data, id->len);

    if (hash) {
        *hash = h;
    }

    ngx_shmtx_lock(&z->shpool->mutex);

    return ngx_rustdesk_peer_lookup_locked(z, id, h);
}


void
ngx_rustdesk_peer_register(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_rustdesk_ip_t *addr, ngx_msec_t now, ngx_uint_t *request_pk,
    ngx_uint_t *ip_change, ngx_uint_t *proven, ngx_msec_t *prev)
{
    uint32_t               hash;
    uint64_t               id_hash, beat;
    ngx_rustdesk_slot_t   *s;
    ngx_rustdesk_peer_t   *p;
    ngx_rustdesk_table_t  *t;

    t = &z->sh->table;

    id_hash = ngx_rustdesk_table_id_hash(t, id->data, id->len);
    hash = (uint32_t) id_hash;
    beat = ngx_rustdesk_table_beat(t, id_hash, addr);

    ngx_shmtx_lock(&z->shpool->mutex);

    /*
     * a steady heartbeat: the peer has a key and no stream, and its last
     * one came from this address and port, so that all below would change
     * nothing but the time (the slot's beat says so): the record is not
     * read at all, whatever the number of peers
     */

    s = ngx_rustdesk_table_find_beat(t, hash, beat);

    if (s) {
        *request_pk = 0;
        *ip_change = 0;
        *proven = 1;
        *prev = s->last_reg;

        ngx_rustdesk_online_move(&z->sh->online, s->last_reg, 0, now, 0);
        s->last_reg = now;

        ngx_shmtx_unlock(&z->shpool->mutex);
        return;
    }

    p = ngx_rustdesk_peer_lookup_locked(z, id, hash);

    if (p == NULL) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        *request_pk = 1;
        *ip_change = 0;
        *proven = 0;
        *prev = 0;
        return;
    }

    *prev = ngx_rustdesk_peer_last_reg(z, p);

    /* a peer with a key, heard from the IP it registered from */

    *proven = p->pk_len
              && ngx_rustdesk_ip_cmp(p->addr.family ? &p->addr : &p->ip,
                                     addr, 0)
                 == 0;

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
        ngx_rustdesk_peer_set_reg(z, p, now, NGX_RUSTDESK_STREAM_NONE);

        /* the next heartbeat from here may skip the record */
        ngx_rustdesk_table_peer_slot(t, p)->beat = beat;
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
    ngx_rustdesk_peer_change_t *change,
    Hbb__RegisterPkResponse__Result *result, ngx_log_t *log)
{
    uint32_t               hash;
    uint64_t               id_hash, beat;
    ngx_str_t              uuid, pk;
    ngx_uint_t             changed, same_pk;
    ngx_rustdesk_peer_t   *p;
    ngx_rustdesk_table_t  *t;

    ngx_memzero(change, sizeof(ngx_rustdesk_peer_change_t));

    t = &z->sh->table;

    id_hash = ngx_rustdesk_table_id_hash(t, rk->id.data, rk->id.len);
    hash = (uint32_t) id_hash;
    beat = rk->stream ? 0 : ngx_rustdesk_table_beat(t, id_hash, &rk->addr);

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
            *result = HBB__REGISTER_PK_RESPONSE__RESULT__SERVER_ERROR;
            return NGX_OK;
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
            *result = HBB__REGISTER_PK_RESPONSE__RESULT__UUID_MISMATCH;
            return NGX_OK;
        }

        /*
         * a key the cluster vouches for is the one the peer registered
         * last, on another host: as if this record had it already
         */

        if (ngx_rustdesk_ip_cmp(&p->ip, &rk->addr, 0) != 0 && !same_pk
            && !rk->vouched)
        {
            ngx_shmtx_unlock(&z->shpool->mutex);
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "rustdesk: peer \"%V\" ip and pk mismatch",
                          &rk->id);
            *result = HBB__REGISTER_PK_RESPONSE__RESULT__UUID_MISMATCH;
            return NGX_OK;
        }

        changed = !same_pk || ngx_rustdesk_ip_cmp(&p->ip, &rk->addr, 0) != 0;
    }

    /* at most 3 RegisterPk within 6 s for one id */

    if (p) {
        if ((int32_t) ((uint32_t) rk->now - p->reg_pk_time)
            > NGX_RUSTDESK_REG_PK_WINDOW)
        {
            p->reg_pk_count = 0;

        } else if (p->reg_pk_count >= NGX_RUSTDESK_REG_PK_MAX) {
            ngx_shmtx_unlock(&z->shpool->mutex);
            *result = HBB__REGISTER_PK_RESPONSE__RESULT__TOO_FREQUENT;
            return NGX_OK;
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
            *result = HBB__REGISTER_PK_RESPONSE__RESULT__SERVER_ERROR;
            return NGX_OK;
        }

        p->addr = rk->addr;
        p->ip = rk->addr;
        p->ip.port = 0;
        ngx_rustdesk_peer_set_reg(z, p, rk->now, NGX_RUSTDESK_STREAM_NONE);

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
    p->reg_pk_time = (uint32_t) rk->now;

    if (rk->stream || p->stream != NGX_RUSTDESK_STREAM_NONE) {
        /*
         * registered over a stream: reached through it (section 8); or
         * over UDP after a stream: reached over UDP from now on
         */

        p->addr = rk->addr;
        ngx_rustdesk_peer_set_reg(z, p, rk->now, rk->stream);
    }

    /*
     * over UDP, and reached at this very address: a heartbeat from it
     * would change nothing but the time, and may skip the record
     */

    if (beat && p->stream == NGX_RUSTDESK_STREAM_NONE && p->pk_len
        && ngx_rustdesk_ip_cmp(&p->addr, &rk->addr, 1) == 0)
    {
        ngx_rustdesk_table_peer_slot(t, p)->beat = beat;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    *result = HBB__REGISTER_PK_RESPONSE__RESULT__OK;

    return NGX_OK;
}


ngx_uint_t
ngx_rustdesk_peer_online(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_msec_t now)
{
    ngx_pid_t          stream;
    ngx_uint_t         online;
    ngx_rustdesk_ip_t  addr;

    if (ngx_rustdesk_peer_lookup(z, id, now, &online, &addr, &stream)
        != NGX_OK)
    {
        return 0;
    }

    return online;
}


ngx_int_t
ngx_rustdesk_peer_load(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_rustdesk_peer_row_t *row, ngx_log_t *log)
{
    uint32_t              hash;
    ngx_rustdesk_peer_t  *p;

    p = ngx_rustdesk_peer_lock(z, id, &hash);

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
 * Online: registered within rustdesk_online_timeout; a peer with a live
 * stream is
 * refreshed by each frame on it, at least once per keep-alive period, and
 * stays online for stream_ttl after the last one (a worker that died
 * without closing its streams leaves them for that long at most).
 */

ngx_int_t
ngx_rustdesk_peer_lookup(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_msec_t now, ngx_uint_t *online, ngx_rustdesk_ip_t *addr,
    ngx_pid_t *stream)
{
    ngx_int_t             rc;
    ngx_rustdesk_peer_t  *p;

    p = ngx_rustdesk_peer_lock(z, id, NULL);
    if (p == NULL) {
        rc = NGX_DECLINED;

    } else {
        *online = ngx_rustdesk_peer_is_online(z, p, now);
        *addr = p->addr;
        *stream = p->stream;
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return rc;
}


/*
 * Online: registered within rustdesk_online_timeout (hbbs: 30 s); a peer
 * with a live stream for longer (stream_ttl, see peer_lookup).
 */

ngx_uint_t
ngx_rustdesk_peer_is_online(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p, ngx_msec_t now)
{
    ngx_msec_t  ttl, last_reg;

    ttl = (p->stream > 0) ? ngx_max(z->stream_ttl, z->online_ttl)
                          : z->online_ttl;

    last_reg = ngx_rustdesk_peer_last_reg(z, p);

    /* signed: another worker's clock may be a little ahead of ours */

    return (last_reg
            && (ngx_msec_int_t) (now - last_reg) < (ngx_msec_int_t) ttl);
}


ngx_uint_t
ngx_rustdesk_peer_unchanged(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_register_pk_t *rk)
{
    ngx_uint_t            same;
    ngx_rustdesk_peer_t  *p;

    p = ngx_rustdesk_peer_lock(z, &rk->id, NULL);

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

    p = ngx_rustdesk_peer_lock(z, id, NULL);

    if (p && p->stream == pid) {
        if (now) {
            ngx_rustdesk_peer_set_reg(z, p, now, p->stream);
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
    ngx_msec_t            last_reg;
    ngx_rustdesk_peer_t  *p;

    p = ngx_rustdesk_peer_lock(z, id, NULL);

    if (p && p->stream == pid) {
        last_reg = grace ? now : ngx_rustdesk_peer_last_reg(z, p);
        ngx_rustdesk_peer_set_reg(z, p, last_reg, NGX_RUSTDESK_STREAM_CLOSED);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


void
ngx_rustdesk_peer_published(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id)
{
    ngx_rustdesk_peer_t  *p;

    p = ngx_rustdesk_peer_lock(z, id, NULL);

    if (p) {
        p->published = 1;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


ngx_uint_t
ngx_rustdesk_peer_moved(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_msec_t since, ngx_msec_t now, ngx_pid_t *stream)
{
    ngx_msec_t            last_reg;
    ngx_uint_t            online;
    ngx_rustdesk_peer_t  *p;

    online = 0;
    *stream = 0;

    p = ngx_rustdesk_peer_lock(z, id, NULL);

    last_reg = p ? ngx_rustdesk_peer_last_reg(z, p) : 0;

    if (last_reg && (ngx_msec_int_t) (last_reg - since) <= 0) {
        online = ngx_rustdesk_peer_is_online(z, p, now);

        if (p->stream > 0) {
            *stream = p->stream;
        }

        /*
         * its entry is the other host's now: nothing of ours to remove;
         * no way to reach it here (a RequestRelay goes to any address
         * known) until it registers here again
         */

        p->published = 0;
        ngx_rustdesk_peer_set_reg(z, p, 0, NGX_RUSTDESK_STREAM_CLOSED);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return online;
}


/*
 * The mutex is held for n slots: the caller keeps n small (a few hundred
 * microseconds at most, see ..._cluster_offline.c).
 */

ngx_uint_t
ngx_rustdesk_peer_gone(ngx_rustdesk_peer_zone_t *z, ngx_uint_t *slot,
    ngx_uint_t *n, ngx_msec_t now, ngx_rustdesk_peer_gone_t *gone,
    ngx_uint_t max)
{
    ngx_rustdesk_peer_sweep_t  sw;

    if (max == 0) {
        *n = 0;
        return 0;
    }

    sw.zone = z;
    sw.now = now;
    sw.gone = gone;
    sw.n = 0;
    sw.max = max;

    ngx_shmtx_lock(&z->shpool->mutex);

    *n = ngx_rustdesk_table_walk(&z->sh->table, z->shpool, slot, *n,
                                 ngx_rustdesk_peer_gone_locked, &sw);

    ngx_shmtx_unlock(&z->shpool->mutex);

    return sw.n;
}


static ngx_uint_t
ngx_rustdesk_peer_gone_locked(void *data, ngx_rustdesk_peer_t *p)
{
    ngx_rustdesk_peer_sweep_t  *sw = data;

    ngx_rustdesk_peer_gone_t  *g;

    if (!p->published || p->id_len > NGX_RUSTDESK_ID_MAX
        || ngx_rustdesk_peer_is_online(sw->zone, p, sw->now))
    {
        return 0;
    }

    p->published = 0;

    g = &sw->gone[sw->n++];
    g->last_reg = ngx_rustdesk_peer_last_reg(sw->zone, p);
    g->len = p->id_len;
    ngx_memcpy(g->id, ngx_rustdesk_peer_id_data(p), p->id_len);

    return sw->n == sw->max;
}


size_t
ngx_rustdesk_peer_pk(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id, u_char *pk)
{
    size_t                len;
    ngx_rustdesk_peer_t  *p;

    len = 0;

    p = ngx_rustdesk_peer_lock(z, id, NULL);
    if (p) {
        len = p->pk_len;
        ngx_memcpy(pk, ngx_rustdesk_peer_pk_data(p), len);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return len;
}


static ngx_rustdesk_peer_t *
ngx_rustdesk_peer_lookup_locked(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    uint32_t hash)
{
    return ngx_rustdesk_table_find(&z->sh->table, z->shpool, id->data,
                                   id->len, hash);
}


/*
 * Stores id/uuid/pk: in place when they fit the record's cell, else in a
 * new cell that takes over the old one's fields and its slot.
 */

static ngx_rustdesk_peer_t *
ngx_rustdesk_peer_store_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *old, ngx_str_t *id, uint32_t hash, ngx_str_t *uuid,
    ngx_str_t *pk, ngx_log_t *log)
{
    size_t                 size;
    ngx_rustdesk_peer_t   *p;
    ngx_rustdesk_table_t  *t;

    t = &z->sh->table;

    size = offsetof(ngx_rustdesk_peer_t, data) + id->len + uuid->len + pk->len;

    if (old && size <= ngx_rustdesk_table_cell_room(old)) {
        p = old;
        goto copy;
    }

    /* eviction must not take the old record while a cell is found */

    t->busy = old;

    p = ngx_rustdesk_peer_new_locked(z, size, ngx_current_msec, log);

    t->busy = NULL;

    if (p == NULL) {
        return NULL;
    }

    if (old) {
        ngx_memcpy(p, old, offsetof(ngx_rustdesk_peer_t, data) + old->id_len);
        ngx_rustdesk_table_moved(t, z->shpool, old, p);
        ngx_rustdesk_peer_release_locked(z, old);
        goto copy;
    }

    ngx_memzero(p, offsetof(ngx_rustdesk_peer_t, data));

    p->id_len = (u_char) id->len;
    ngx_memcpy(ngx_rustdesk_peer_id_data(p), id->data, id->len);

    if (ngx_rustdesk_table_insert(t, z->shpool, p, hash) != NGX_OK) {
        ngx_rustdesk_peer_release_locked(z, p);
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "rustdesk: the index of peers%s is full",
                      z->shpool->log_ctx);
        return NULL;
    }

    z->sh->npeers++;

copy:

    p->uuid_len = (u_char) uuid->len;
    p->pk_len = (u_char) pk->len;
    ngx_memcpy(ngx_rustdesk_peer_uuid_data(p), uuid->data, uuid->len);
    ngx_memcpy(ngx_rustdesk_peer_pk_data(p), pk->data, pk->len);

    return p;
}


static void
ngx_rustdesk_peer_free_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p)
{
    ngx_rustdesk_ip_change_free_locked(z, p);
    ngx_rustdesk_online_move(&z->sh->online, ngx_rustdesk_peer_last_reg(z, p),
                             p->stream > 0, 0, 0);

    ngx_rustdesk_table_delete(&z->sh->table, z->shpool, p);
    ngx_rustdesk_peer_release_locked(z, p);
    z->sh->npeers--;
}


/*
 * Sets p's registration time and way of reach, and counts it anew.  Its
 * slot's beat goes: the next heartbeat reads the record again (the callers
 * set the beat afterwards only when they know the record fits it).
 */

static void
ngx_rustdesk_peer_set_reg(ngx_rustdesk_peer_zone_t *z, ngx_rustdesk_peer_t *p,
    ngx_msec_t last_reg, ngx_pid_t stream)
{
    ngx_rustdesk_slot_t  *s;

    s = ngx_rustdesk_table_peer_slot(&z->sh->table, p);

    ngx_rustdesk_online_move(&z->sh->online, s->last_reg, p->stream > 0,
                             last_reg, stream > 0);

    s->last_reg = last_reg;
    s->beat = 0;
    p->stream = stream;
}


/*
 * Peers online, from the zone's counts per second of registration
 * (ngx_stream_rustdesk_rendezvous_online.h): a sum over a few thousand
 * slots at most, whatever the number of peers.
 */

void
ngx_rustdesk_peer_figures(ngx_rustdesk_peer_zone_t *z, ngx_msec_t now,
    ngx_rustdesk_peer_figures_t *f)
{
    ngx_shmtx_lock(&z->shpool->mutex);

    f->online = ngx_rustdesk_online_count(&z->sh->online, now, z->online_ttl,
                                          z->stream_ttl);
    f->peers = z->sh->npeers;
    f->waiters = z->sh->nwaiters;
    f->answers = z->sh->answers;
    f->answers_cross = z->sh->answers_cross;
    f->full = z->sh->full;

    ngx_shmtx_unlock(&z->shpool->mutex);
}


/*
 * Eviction, for the sweep of the pages of cells (ngx_rustdesk_table_sweep):
 * a peer that is offline goes (it stays in the database).
 */

ngx_uint_t
ngx_rustdesk_peer_sweep_locked(ngx_rustdesk_peer_zone_t *z, ngx_msec_t now,
    size_t size)
{
    ngx_rustdesk_peer_sweep_t  sw;

    sw.zone = z;
    sw.now = now;

    return ngx_rustdesk_table_sweep(&z->sh->table, z->shpool, size,
                                    NGX_RUSTDESK_SWEEP_PAGES,
                                    ngx_rustdesk_peer_evict_locked, &sw);
}


static ngx_uint_t
ngx_rustdesk_peer_evict_locked(void *data, ngx_rustdesk_peer_t *p)
{
    ngx_rustdesk_peer_sweep_t  *sw = data;

    if (ngx_rustdesk_peer_is_online(sw->zone, p, sw->now)) {
        return 0;
    }

    ngx_rustdesk_peer_free_locked(sw->zone, p);

    return 1;
}
