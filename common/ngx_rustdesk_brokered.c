/*
 * Relay sessions the rendezvous brokered: a table in a zone of its own,
 * by uuid, expiring after ttl.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_rustdesk_brokered.h"


#define NGX_RUSTDESK_BROKERED_SCAN  8     /* expired entries per add */


typedef struct {
    ngx_str_node_t              sn;          /* key: crc32 of the uuid */
    ngx_queue_t                 queue;
    ngx_msec_t                  since;
    u_char                      tickets;     /* taken */
    u_char                      id_len;
    u_char                      id[NGX_RUSTDESK_BROKERED_ID_MAX];
    u_char                      uuid[1];
} ngx_rustdesk_brokered_node_t;


static ngx_rustdesk_brokered_node_t *ngx_rustdesk_brokered_lookup_locked(
    ngx_rustdesk_brokered_t *b, ngx_str_t *uuid, uint32_t hash);
static void ngx_rustdesk_brokered_free(ngx_rustdesk_brokered_t *b,
    ngx_rustdesk_brokered_node_t *n);


ngx_int_t
ngx_rustdesk_brokered_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_rustdesk_brokered_t  *ob = data;

    ngx_slab_pool_t             *shpool;
    ngx_rustdesk_brokered_t     *b;
    ngx_rustdesk_brokered_sh_t  *sh;

    b = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    b->shpool = shpool;

    if (ob) {
        /* a reload: what was brokered stays so */
        b->sh = ob->sh;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        b->sh = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_rustdesk_brokered_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&sh->queue);

    shpool->data = sh;
    shpool->log_nomem = 0;     /* a full zone evicts, quietly */
    b->sh = sh;

    return NGX_OK;
}


ngx_int_t
ngx_rustdesk_brokered_add(ngx_rustdesk_brokered_t *b, ngx_str_t *uuid,
    ngx_str_t *peer_id, ngx_msec_t now)
{
    uint32_t                       hash;
    ngx_uint_t                     i;
    ngx_queue_t                   *q;
    ngx_rustdesk_brokered_node_t  *n;

    if (uuid->len == 0 || uuid->len > NGX_RUSTDESK_BROKERED_UUID_MAX) {
        return NGX_DECLINED;
    }

    hash = ngx_crc32_short(uuid->data, uuid->len);

    ngx_shmtx_lock(&b->shpool->mutex);

    /* a few expired entries go on every add: the table stays small */

    for (i = 0; i < NGX_RUSTDESK_BROKERED_SCAN; i++) {
        if (ngx_queue_empty(&b->sh->queue)) {
            break;
        }

        q = ngx_queue_head(&b->sh->queue);
        n = ngx_queue_data(q, ngx_rustdesk_brokered_node_t, queue);

        if ((ngx_msec_int_t) (now - n->since) < (ngx_msec_int_t) b->ttl) {
            break;
        }

        ngx_rustdesk_brokered_free(b, n);
    }

    n = ngx_rustdesk_brokered_lookup_locked(b, uuid, hash);

    if (n) {
        ngx_queue_remove(&n->queue);

    } else {
        for ( ;; ) {
            n = ngx_slab_alloc_locked(b->shpool,
                            offsetof(ngx_rustdesk_brokered_node_t, uuid)
                            + uuid->len);
            if (n) {
                break;
            }

            /* full: the oldest entry makes room, one at a time */

            if (ngx_queue_empty(&b->sh->queue)) {
                ngx_shmtx_unlock(&b->shpool->mutex);
                return NGX_ERROR;
            }

            q = ngx_queue_head(&b->sh->queue);
            ngx_rustdesk_brokered_free(b,
                      ngx_queue_data(q, ngx_rustdesk_brokered_node_t, queue));
            b->sh->evicted++;
        }

        ngx_memcpy(n->uuid, uuid->data, uuid->len);
        n->sn.str.data = n->uuid;
        n->sn.str.len = uuid->len;
        n->sn.node.key = hash;
        n->id_len = 0;
        n->tickets = 0;

        ngx_rbtree_insert(&b->sh->rbtree, &n->sn.node);
        b->sh->count++;
    }

    if (peer_id->len) {
        n->id_len = ngx_min(peer_id->len, NGX_RUSTDESK_BROKERED_ID_MAX);
        ngx_memcpy(n->id, peer_id->data, n->id_len);
    }

    n->since = now;
    ngx_queue_insert_tail(&b->sh->queue, &n->queue);

    ngx_shmtx_unlock(&b->shpool->mutex);

    return NGX_OK;
}


/*
 * A session brokered again (a retried RequestRelay, then the RelayResponse)
 * keeps the tickets already taken: a uuid pairs once.
 */

ngx_int_t
ngx_rustdesk_brokered_take(ngx_rustdesk_brokered_t *b, ngx_str_t *uuid,
    ngx_msec_t now, ngx_str_t *id)
{
    ngx_int_t                      rc;
    ngx_rustdesk_brokered_node_t  *n;

    rc = NGX_DECLINED;

    ngx_shmtx_lock(&b->shpool->mutex);

    if (uuid->len && uuid->len <= NGX_RUSTDESK_BROKERED_UUID_MAX) {
        n = ngx_rustdesk_brokered_lookup_locked(b, uuid,
                                    ngx_crc32_short(uuid->data, uuid->len));

        if (n && (ngx_msec_int_t) (now - n->since) < (ngx_msec_int_t) b->ttl)
        {
            if (n->tickets < NGX_RUSTDESK_BROKERED_TICKETS) {
                n->tickets++;
                id->len = n->id_len;
                ngx_memcpy(id->data, n->id, n->id_len);
                rc = NGX_OK;

            } else {
                rc = NGX_BUSY;
            }
        }
    }

    if (rc == NGX_OK) {
        b->sh->taken++;

    } else {
        b->sh->refused++;
    }

    ngx_shmtx_unlock(&b->shpool->mutex);

    return rc;
}


ngx_int_t
ngx_rustdesk_brokered_find(ngx_rustdesk_brokered_t *b, ngx_str_t *uuid,
    ngx_msec_t now, ngx_str_t *id)
{
    ngx_int_t                      rc;
    ngx_rustdesk_brokered_node_t  *n;

    if (uuid->len == 0 || uuid->len > NGX_RUSTDESK_BROKERED_UUID_MAX) {
        return NGX_DECLINED;
    }

    rc = NGX_DECLINED;

    ngx_shmtx_lock(&b->shpool->mutex);

    n = ngx_rustdesk_brokered_lookup_locked(b, uuid,
                                    ngx_crc32_short(uuid->data, uuid->len));

    if (n && (ngx_msec_int_t) (now - n->since) < (ngx_msec_int_t) b->ttl) {
        id->len = n->id_len;
        ngx_memcpy(id->data, n->id, n->id_len);
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&b->shpool->mutex);

    return rc;
}


/*
 * The rendezvous module's zone, for the relay module: both are found by
 * name, since either may be loaded without the other.
 */

ngx_rustdesk_brokered_t *
ngx_rustdesk_brokered_lookup(ngx_cycle_t *cycle)
{
    void             *tag;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *zone;

    tag = NULL;

    for (i = 0; cycle->modules[i]; i++) {
        if (ngx_strcmp(cycle->modules[i]->name,
                       "ngx_stream_rustdesk_rendezvous_module")
            == 0)
        {
            tag = cycle->modules[i];
            break;
        }
    }

    if (tag == NULL) {
        return NULL;
    }

    part = &cycle->shared_memory.part;
    zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            zone = part->elts;
            i = 0;
        }

        if (zone[i].tag == tag
            && zone[i].shm.name.len == sizeof(NGX_RUSTDESK_BROKERED_ZONE) - 1
            && ngx_strncmp(zone[i].shm.name.data, NGX_RUSTDESK_BROKERED_ZONE,
                           zone[i].shm.name.len)
               == 0)
        {
            return zone[i].data;
        }
    }
}


static ngx_rustdesk_brokered_node_t *
ngx_rustdesk_brokered_lookup_locked(ngx_rustdesk_brokered_t *b,
    ngx_str_t *uuid, uint32_t hash)
{
    ngx_str_node_t  *sn;

    sn = ngx_str_rbtree_lookup(&b->sh->rbtree, uuid, hash);

    return (ngx_rustdesk_brokered_node_t *) sn;
}


static void
ngx_rustdesk_brokered_free(ngx_rustdesk_brokered_t *b,
    ngx_rustdesk_brokered_node_t *n)
{
    ngx_queue_remove(&n->queue);
    ngx_rbtree_delete(&b->sh->rbtree, &n->sn.node);
    ngx_slab_free_locked(b->shpool, n);
    b->sh->count--;
}
