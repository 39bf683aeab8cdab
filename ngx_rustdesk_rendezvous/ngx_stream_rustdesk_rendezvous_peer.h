/*
 * The peer table of the rendezvous server: each id with its uuid, key,
 * address and the way it is reached, in the shared zone so that every
 * worker sees the same peers (PROTOCOL.md section 6, DESIGN.md "Processes
 * and state").
 */

#ifndef _NGX_STREAM_RUSTDESK_RENDEZVOUS_PEER_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RENDEZVOUS_PEER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "rendezvous.pb-c.h"

#include "ngx_stream_rustdesk_rendezvous_ip.h"
#include "ngx_stream_rustdesk_rendezvous_zone.h"
#include "ngx_stream_rustdesk_rendezvous_table.h"


#define NGX_RUSTDESK_REG_TIMEOUT     30000    /* rustdesk_online_timeout */
#define NGX_RUSTDESK_REG_PK_WINDOW   6000     /* at most 3 RegisterPk per 6 s */
#define NGX_RUSTDESK_REG_PK_MAX      3

#define NGX_RUSTDESK_ID_MIN          6
#define NGX_RUSTDESK_ID_MAX          100      /* the database's varchar(100) */
#define NGX_RUSTDESK_BLOB_MAX        255      /* uuid and pk */

/*
 * How a peer is reached (PROTOCOL.md section 8): over UDP at its address,
 * or over the TCP or WebSocket stream it registered on, held by the worker
 * whose pid is recorded; a closed stream leaves no way until it registers
 * again.
 */
#define NGX_RUSTDESK_STREAM_NONE     0        /* UDP */
#define NGX_RUSTDESK_STREAM_CLOSED   -1


typedef struct ngx_rustdesk_ip_change_s  ngx_rustdesk_ip_change_t;

/*
 * A peer, in a cell of the zone (ngx_stream_rustdesk_rendezvous_table.h):
 * its registration time is in its slot of the index, with what a steady
 * heartbeat needs (ngx_rustdesk_peer_last_reg); 77 bytes before the id,
 * uuid and key, so that a real client's record (a 10-digit id, a 36-byte
 * uuid and a 32-byte key) fits a 160-byte cell.
 */
struct ngx_rustdesk_peer_s {
    uint32_t             slot;              /* of the index */
    ngx_rustdesk_ip_t    addr;              /* last UDP (or stream) address */
    ngx_pid_t            stream;            /* NGX_RUSTDESK_STREAM_* or pid */
    ngx_rustdesk_ip_t    ip;                /* IP of the last RegisterPk */
    uint32_t             reg_pk_time;       /* its ngx_msec_t's low bits */
    uint32_t             ip_change;         /* ngx_rustdesk_zone_ref, 0 */
    u_char               id_len;            /* 0: a free cell */
    u_char               uuid_len;
    u_char               pk_len;
    u_char               reg_pk_count;
    unsigned             has_guid:1;        /* known to the database */
    unsigned             published:1;       /* in the cluster's directory,
                                               as this host's */
    u_char               guid[16];
    u_char               data[1];           /* id, uuid, pk */
};


#define ngx_rustdesk_peer_id_data(p)    ((p)->data)
#define ngx_rustdesk_peer_uuid_data(p)  ((p)->data + (p)->id_len)
#define ngx_rustdesk_peer_pk_data(p)                                         \
    ((p)->data + (p)->id_len + (p)->uuid_len)

/* The time of p's last registration (0: none yet), in the zone z. */
#define ngx_rustdesk_peer_last_reg(z, p)                                     \
    (ngx_rustdesk_table_peer_slot(&(z)->sh->table, p)->last_reg)


/* What a RegisterPk asks of the table. */
typedef struct {
    ngx_str_t            id;
    ngx_str_t            uuid;
    ngx_str_t            pk;
    ngx_rustdesk_ip_t    addr;
    ngx_pid_t            stream;            /* a worker's stream, 0: UDP */
    ngx_msec_t           now;
    ngx_uint_t           vouched;           /* the cluster has this uuid
                                               and key for the id */
} ngx_rustdesk_register_pk_t;


/* What the database needs to hear after a RegisterPk. */
typedef struct {
    ngx_uint_t           write;             /* 0: nothing changed */
    ngx_uint_t           insert;            /* 1: new row, 0: update by guid */
    u_char               guid[16];
} ngx_rustdesk_peer_change_t;


/* What the metrics show of the zone (ngx_rustdesk_peer_figures). */
typedef struct {
    ngx_uint_t           peers;             /* in memory */
    ngx_uint_t           online;
    ngx_uint_t           waiters;           /* requesters waiting */
    ngx_uint_t           answers;           /* delivered to requesters */
    ngx_uint_t           answers_cross;     /* of which via another worker */
    ngx_uint_t           full;              /* new peers are refused */
} ngx_rustdesk_peer_figures_t;


/* A row of the database, loaded on a memory miss. */
typedef struct {
    u_char               guid[16];
    ngx_str_t            uuid;
    ngx_str_t            pk;
    ngx_rustdesk_ip_t    ip;
} ngx_rustdesk_peer_row_t;


/*
 * RegisterPeer: sets *request_pk, *ip_change, and *proven (the peer has a
 * key and addr has the IP it registered from); refreshes the peer's
 * address and registration time unless a key is requested, and sets
 * *prev to the registration time before (0: none).
 */
void ngx_rustdesk_peer_register(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_rustdesk_ip_t *addr, ngx_msec_t now, ngx_uint_t *request_pk,
    ngx_uint_t *ip_change, ngx_uint_t *proven, ngx_msec_t *prev);

/*
 * RegisterPk after the id and blocker checks: NGX_OK with the answer in
 * *result, or NGX_DECLINED when the peer is not in memory and row is NULL:
 * the caller then reads the database and calls again with the row (or
 * with a row of empty uuid when there is none).  With rk->stream, a result
 * OK makes that worker's stream the way to reach the peer.
 */
ngx_int_t ngx_rustdesk_peer_register_pk(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_register_pk_t *rk, ngx_rustdesk_peer_row_t *row,
    ngx_rustdesk_peer_change_t *change,
    Hbb__RegisterPkResponse__Result *result, ngx_log_t *log);

/* 1: the peer is in memory with this uuid, key and IP already. */
ngx_uint_t ngx_rustdesk_peer_unchanged(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_register_pk_t *rk);

/* 1: online now; 0: offline, or not in memory. */
ngx_uint_t ngx_rustdesk_peer_online(ngx_rustdesk_peer_zone_t *z,
    ngx_str_t *id, ngx_msec_t now);

/* A row from the database into memory (offline); NGX_ERROR: zone full. */
ngx_int_t ngx_rustdesk_peer_load(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_rustdesk_peer_row_t *row, ngx_log_t *log);

/*
 * NGX_OK when the peer is in memory: whether it is online in *online, its
 * last address in *addr and how it is reached in *stream
 * (NGX_RUSTDESK_STREAM_* or the pid holding its stream); NGX_DECLINED when
 * it is not in memory.
 */
ngx_int_t ngx_rustdesk_peer_lookup(ngx_rustdesk_peer_zone_t *z,
    ngx_str_t *id, ngx_msec_t now, ngx_uint_t *online,
    ngx_rustdesk_ip_t *addr, ngx_pid_t *stream);

/*
 * A frame on the stream of id held by worker pid: refreshes its
 * registration (now 0: only checks).  NGX_DECLINED: the peer is no longer
 * reached through that worker (registered again elsewhere, or evicted).
 */
ngx_int_t ngx_rustdesk_peer_stream_refresh(ngx_rustdesk_peer_zone_t *z,
    ngx_str_t *id, ngx_pid_t pid, ngx_msec_t now);

/*
 * The stream of id held by worker pid is gone: if the peer is still
 * reached through it, it is not any more; with grace, it stays online for
 * the usual 30 s from now.
 */
void ngx_rustdesk_peer_stream_closed(ngx_rustdesk_peer_zone_t *z,
    ngx_str_t *id, ngx_pid_t pid, ngx_msec_t now, ngx_uint_t grace);

/*
 * Cluster mode (..._cluster_directory.c, ..._cluster_offline.c): the
 * cluster's directory has the peer as this host's now.
 */
void ngx_rustdesk_peer_published(ngx_rustdesk_peer_zone_t *z,
    ngx_str_t *id);

/*
 * Cluster mode: the peer registered with another host at since (this
 * host's clock): unless it registered here after that, it is offline here
 * from now on and nothing reaches it here (as after its stream closed: a
 * stream of a worker closes at its next frame); the stream's worker in
 * *stream (0: none).  Returns
 * 1 when the peer was online here.
 */
ngx_uint_t ngx_rustdesk_peer_moved(ngx_rustdesk_peer_zone_t *z,
    ngx_str_t *id, ngx_msec_t since, ngx_msec_t now, ngx_pid_t *stream);

/* A peer whose entry of the cluster's directory is to go. */
typedef struct {
    ngx_msec_t           last_reg;          /* its last registration */
    size_t               len;
    u_char               id[NGX_RUSTDESK_ID_MAX];
} ngx_rustdesk_peer_gone_t;

/*
 * Cluster mode: from the peers of at most *n slots of the index from
 * *slot on (ngx_rustdesk_table_walk), those published that are offline
 * now, at most max of them, into gone[], and published no more.  Returns
 * how many, with the slots looked at in *n.
 */
ngx_uint_t ngx_rustdesk_peer_gone(ngx_rustdesk_peer_zone_t *z,
    ngx_uint_t *slot, ngx_uint_t *n, ngx_msec_t now,
    ngx_rustdesk_peer_gone_t *gone, ngx_uint_t max);

/* The registered key (up to NGX_RUSTDESK_BLOB_MAX bytes): its length, 0. */
size_t ngx_rustdesk_peer_pk(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    u_char *pk);

/*
 * The zone's figures, for the metrics; the peers online are counted from
 * the zone's counts of registrations per second (ngx_rustdesk_online_t).
 */
void ngx_rustdesk_peer_figures(ngx_rustdesk_peer_zone_t *z, ngx_msec_t now,
    ngx_rustdesk_peer_figures_t *f);

/*
 * Under the zone's mutex, to make room: evicts the offline peers of the
 * next few pages of cells (NGX_RUSTDESK_SWEEP_PAGES) until a cell for a
 * record of size bytes is free, or, with size 0, until a whole page is
 * back in the slab (moving the peers of a page into free cells of others
 * if that empties it).  Returns how many peers it evicted or moved.
 */
ngx_uint_t ngx_rustdesk_peer_sweep_locked(ngx_rustdesk_peer_zone_t *z,
    ngx_msec_t now, size_t size);

/* Online now: registered within online_ttl (stream_ttl with a stream). */
ngx_uint_t ngx_rustdesk_peer_is_online(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_peer_t *p, ngx_msec_t now);


#endif /* _NGX_STREAM_RUSTDESK_RENDEZVOUS_PEER_H_INCLUDED_ */
