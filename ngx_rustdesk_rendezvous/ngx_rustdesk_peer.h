/*
 * The peer table and the IP blocker of the rendezvous server, in a shared
 * memory zone so that every worker sees the same peers (PROTOCOL.md
 * section 6, DESIGN.md "Processes and state").
 */

#ifndef _NGX_RUSTDESK_PEER_H_INCLUDED_
#define _NGX_RUSTDESK_PEER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_RUSTDESK_REG_TIMEOUT     30000    /* online: registered < 30 s ago */
#define NGX_RUSTDESK_REG_PK_WINDOW   6000     /* at most 3 RegisterPk per 6 s */
#define NGX_RUSTDESK_REG_PK_MAX      3
#define NGX_RUSTDESK_IP_BLOCK_WINDOW 60000    /* at most 30 RegisterPk per 60 s */
#define NGX_RUSTDESK_IP_BLOCK_MAX    30
#define NGX_RUSTDESK_IP_IDS_WINDOW   86400000 /* at most 300 new ids per day */
#define NGX_RUSTDESK_IP_IDS_MAX      300

#define NGX_RUSTDESK_ID_MIN          6
#define NGX_RUSTDESK_ID_MAX          100      /* the database's varchar(100) */
#define NGX_RUSTDESK_BLOB_MAX        255      /* uuid and pk */
#define NGX_RUSTDESK_SERVERS_MAX     1024     /* rendezvous_servers, joined */
#define NGX_RUSTDESK_WAITER_TTL      120000   /* a requester's entry at most */
#define NGX_RUSTDESK_PUNCH_LOG       1000     /* punch requests remembered */
#define NGX_RUSTDESK_PUNCH_DEDUP     60000    /* same from-IP and id: once */
#define NGX_RUSTDESK_IP_CHANGE_DUR   180000   /* IP changes counted together */
#define NGX_RUSTDESK_IP_CHANGE_KEEP  360000   /* and shown this long */
#define NGX_RUSTDESK_IP_CHANGE_IPS   8        /* addresses per peer kept */

/*
 * Peer records up to this size (a 10-digit id, a 36-byte uuid and a
 * 32-byte key make 224 bytes) live in cells carved from whole pages, 18 to
 * a 4 KiB page, instead of the slab's 256-byte class.
 */
#define NGX_RUSTDESK_PEER_CELL       224

/*
 * How a peer is reached (PROTOCOL.md section 8): over UDP at its address,
 * or over the TCP or WebSocket stream it registered on, held by the worker
 * whose pid is recorded; a closed stream leaves no way until it registers
 * again.
 */
#define NGX_RUSTDESK_STREAM_NONE     0        /* UDP */
#define NGX_RUSTDESK_STREAM_CLOSED   -1


/* An IP address and port, compact and comparable (v4-mapped made v4). */
typedef struct {
    u_char               family;            /* 0: none */
    u_char               pad;
    uint16_t             port;
    u_char               addr[16];
} ngx_rustdesk_ip_t;


typedef struct ngx_rustdesk_ip_change_s  ngx_rustdesk_ip_change_t;

typedef struct {
    ngx_rbtree_node_t    node;              /* key: crc32 of the id */
    ngx_queue_t          queue;             /* LRU by registration */
    ngx_rustdesk_ip_change_t  *ip_change;   /* NULL unless its IP changed */
    ngx_msec_t           last_reg;          /* 0: not registered yet */
    ngx_msec_t           reg_pk_time;
    ngx_rustdesk_ip_t    addr;              /* last UDP (or stream) address */
    ngx_rustdesk_ip_t    ip;                /* IP of the last RegisterPk */
    ngx_pid_t            stream;            /* NGX_RUSTDESK_STREAM_* or pid */
    u_char               guid[16];
    u_char               has_guid;          /* known to the database */
    u_char               cell;              /* in a cell, not a slab chunk */
    u_char               reg_pk_count;
    u_char               id_len;
    u_char               uuid_len;
    u_char               pk_len;
    u_char               data[1];           /* id, uuid, pk */
} ngx_rustdesk_peer_t;


/* The head of the address-keyed entries (IP blocker, waiting requesters). */
typedef struct {
    ngx_rbtree_node_t    node;              /* key: crc32 of the address */
    ngx_queue_t          queue;
    ngx_rustdesk_ip_t    ip;
} ngx_rustdesk_ip_node_t;


typedef struct {
    ngx_rbtree_node_t    node;              /* ngx_rustdesk_ip_node_t */
    ngx_queue_t          queue;
    ngx_rustdesk_ip_t    ip;
    ngx_msec_t           reg_time;
    ngx_msec_t           ids_time;
    uint32_t             reg_count;
    uint32_t             nids;
    uint32_t             ids_size;
    uint32_t            *ids;               /* crc32 of each id seen */
} ngx_rustdesk_ip_block_t;


/*
 * A requester (A) waiting on a TCP connection for the answer from B: its
 * address (as it reaches B, mangled, and comes back) and the worker
 * holding the connection (PROTOCOL.md section 6).
 */
typedef struct {
    ngx_rbtree_node_t    node;              /* ngx_rustdesk_ip_node_t */
    ngx_queue_t          queue;
    ngx_rustdesk_ip_t    ip;
    ngx_pid_t            pid;
    ngx_msec_t           time;
} ngx_rustdesk_waiter_t;


/* A peer's recent IP changes, for the console's ip-changes command. */
struct ngx_rustdesk_ip_change_s {
    ngx_queue_t          queue;             /* by time of the last change */
    ngx_msec_t           time;              /* of the first in this round */
    ngx_msec_t           last;
    void                *peer;              /* ngx_rustdesk_peer_t */
    ngx_uint_t           n;
    struct {
        ngx_rustdesk_ip_t  ip;
        uint32_t           count;
    }                    ips[NGX_RUSTDESK_IP_CHANGE_IPS];
};


/* A punch request, for the console's punch-requests command. */
typedef struct {
    time_t               time;
    ngx_msec_t           msec;
    ngx_rustdesk_ip_t    from;
    ngx_rustdesk_ip_t    to;
    u_char               id_len;
    u_char               id[NGX_RUSTDESK_ID_MAX];
} ngx_rustdesk_punch_req_t;


typedef struct {
    ngx_rbtree_t         peers;
    ngx_rbtree_node_t    peers_sentinel;
    ngx_queue_t          peers_lru;
    ngx_rbtree_t         ips;
    ngx_rbtree_node_t    ips_sentinel;
    ngx_queue_t          ips_lru;
    ngx_rbtree_t         waiters;
    ngx_rbtree_node_t    waiters_sentinel;
    ngx_queue_t          waiters_lru;

    ngx_uint_t           npeers;
    ngx_uint_t           nips;
    ngx_uint_t           nwaiters;
    ngx_uint_t           answers;           /* delivered to requesters */
    ngx_uint_t           answers_cross;     /* of which via another worker */
    ngx_uint_t           generation;        /* bumped by each init_zone */
    ngx_uint_t           full_logged;

    ngx_uint_t           always_use_relay;  /* the console may change it */
    size_t               relays_len;        /* set by the console: a,b */
    u_char               relays[NGX_RUSTDESK_SERVERS_MAX];
    ngx_rustdesk_punch_req_t  *punch_reqs;  /* ring, NULL if no room */
    ngx_queue_t          ip_changes;
    ngx_uint_t           nip_changes;       /* of more than one address */
    void                *free_cells;        /* list through each cell */
    ngx_uint_t           npunch_reqs;       /* ever logged */
    int32_t              serial;            /* adopted from ConfigUpdate */
    size_t               servers_len;
    u_char               servers[NGX_RUSTDESK_SERVERS_MAX];
} ngx_rustdesk_peer_shctx_t;


typedef struct {
    ngx_rustdesk_peer_shctx_t  *sh;
    ngx_slab_pool_t            *shpool;
    int32_t                     serial;     /* configured rustdesk_serial */
    ngx_uint_t                  always_use_relay;   /* configured */
    ngx_uint_t                  ip_block_max;       /* RegisterPk per 60 s */
    ngx_uint_t                  ip_ids_max;         /* new ids per day */
    ngx_msec_t                  stream_ttl;         /* online by a stream */
    ngx_str_t                   servers;    /* configured, comma-joined */
} ngx_rustdesk_peer_zone_t;


/* What a RegisterPk asks of the table. */
typedef struct {
    ngx_str_t            id;
    ngx_str_t            uuid;
    ngx_str_t            pk;
    ngx_rustdesk_ip_t    addr;
    ngx_pid_t            stream;            /* a worker's stream, 0: UDP */
    ngx_msec_t           now;
} ngx_rustdesk_register_pk_t;


/* What the database needs to hear after a RegisterPk. */
typedef struct {
    ngx_uint_t           write;             /* 0: nothing changed */
    ngx_uint_t           insert;            /* 1: new row, 0: update by guid */
    u_char               guid[16];
} ngx_rustdesk_peer_change_t;


/* A row of the database, loaded on a memory miss. */
typedef struct {
    u_char               guid[16];
    ngx_str_t            uuid;
    ngx_str_t            pk;
    ngx_rustdesk_ip_t    ip;
} ngx_rustdesk_peer_row_t;


ngx_int_t ngx_rustdesk_peer_init_zone(ngx_shm_zone_t *shm_zone, void *data);

/*
 * Trees keyed by address (node.key = crc32 of the whole ngx_rustdesk_ip_t)
 * whose entries start as ngx_rustdesk_ip_node_t; in the zone, under its
 * lock, or in a worker's own memory.
 */
void ngx_rustdesk_ip_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
ngx_rustdesk_ip_node_t *ngx_rustdesk_ip_lookup(ngx_rbtree_t *tree,
    ngx_rustdesk_ip_t *ip, uint32_t hash);

void ngx_rustdesk_ip_from_sockaddr(ngx_rustdesk_ip_t *ip,
    struct sockaddr *sa, socklen_t len);
socklen_t ngx_rustdesk_ip_to_sockaddr(ngx_rustdesk_ip_t *ip,
    struct sockaddr_storage *ss);
size_t ngx_rustdesk_ip_text(ngx_rustdesk_ip_t *ip, u_char *buf, size_t len);
ngx_uint_t ngx_rustdesk_ip_is_loopback(ngx_rustdesk_ip_t *ip);

/* 0: the same IP (and port, with_port), else 1. */
ngx_int_t ngx_rustdesk_ip_cmp(ngx_rustdesk_ip_t *a, ngx_rustdesk_ip_t *b,
    ngx_uint_t with_port);

/*
 * RegisterPeer: sets *request_pk and *ip_change; refreshes the peer's
 * address and registration time unless a key is requested.
 */
void ngx_rustdesk_peer_register(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_rustdesk_ip_t *addr, ngx_msec_t now, ngx_uint_t *request_pk,
    ngx_uint_t *ip_change);

/*
 * RegisterPk after the id and blocker checks.  Returns a RegisterPkResponse
 * result, or NGX_DECLINED when the peer is not in memory and row is NULL:
 * the caller then reads the database and calls again with the row (or
 * with a row of empty uuid when there is none).  With rk->stream, an OK
 * makes that worker's stream the way to reach the peer.
 */
ngx_int_t ngx_rustdesk_peer_register_pk(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_register_pk_t *rk, ngx_rustdesk_peer_row_t *row,
    ngx_rustdesk_peer_change_t *change, ngx_log_t *log);

/* 1: the peer is in memory with this uuid, key and IP already. */
ngx_uint_t ngx_rustdesk_peer_unchanged(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_register_pk_t *rk);

/* The IP blocker: 0 refuses this RegisterPk (PROTOCOL.md section 6). */
ngx_uint_t ngx_rustdesk_ip_blocker_allow(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_t *ip, ngx_str_t *id, ngx_msec_t now, ngx_log_t *log);

/* 1: online, 0: known but offline, NGX_DECLINED: not in memory. */
ngx_int_t ngx_rustdesk_peer_online(ngx_rustdesk_peer_zone_t *z,
    ngx_str_t *id, ngx_msec_t now);

/* A row from the database into memory (offline); NGX_ERROR: zone full. */
ngx_int_t ngx_rustdesk_peer_load(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    ngx_rustdesk_peer_row_t *row, ngx_log_t *log);

/*
 * As peer_online, with the peer's last address in *addr and how it is
 * reached in *stream (NGX_RUSTDESK_STREAM_* or the pid holding its stream).
 */
ngx_int_t ngx_rustdesk_peer_lookup(ngx_rustdesk_peer_zone_t *z,
    ngx_str_t *id, ngx_msec_t now, ngx_rustdesk_ip_t *addr,
    ngx_pid_t *stream);

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

/* The registered key (up to NGX_RUSTDESK_BLOB_MAX bytes): its length, 0. */
size_t ngx_rustdesk_peer_pk(ngx_rustdesk_peer_zone_t *z, ngx_str_t *id,
    u_char *pk);

/* Requester A waits on worker pid (replaces an older entry for A). */
void ngx_rustdesk_waiter_add(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_t *a, ngx_pid_t pid, ngx_msec_t now, ngx_log_t *log);

/* Takes A's entry: the worker to answer through, NGX_INVALID_PID: none. */
ngx_pid_t ngx_rustdesk_waiter_take(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_t *a);

/* A's connection closed on worker pid: drop its entry if still ours. */
void ngx_rustdesk_waiter_forget(ngx_rustdesk_peer_zone_t *z,
    ngx_rustdesk_ip_t *a, ngx_pid_t pid);

void ngx_rustdesk_peer_count_answer(ngx_rustdesk_peer_zone_t *z,
    ngx_uint_t cross);

/* Logs A's punch request to id at B's address (deduplicated). */
void ngx_rustdesk_punch_log(ngx_rustdesk_peer_zone_t *z, ngx_rustdesk_ip_t *from,
    ngx_str_t *id, ngx_rustdesk_ip_t *to, ngx_msec_t now);

/* The console's views: text appended at *p, never past last. */
u_char *ngx_rustdesk_punch_log_text(ngx_rustdesk_peer_zone_t *z, u_char *p,
    u_char *last, ngx_uint_t start, ngx_uint_t n, ngx_uint_t clear);
u_char *ngx_rustdesk_ip_changes_text(ngx_rustdesk_peer_zone_t *z, u_char *p,
    u_char *last, ngx_str_t *id, ngx_uint_t start, ngx_uint_t remove,
    ngx_msec_t now);
u_char *ngx_rustdesk_ip_blocker_text(ngx_rustdesk_peer_zone_t *z, u_char *p,
    u_char *last, ngx_rustdesk_ip_t *ip, ngx_uint_t start, ngx_uint_t remove,
    ngx_msec_t now);

/* Serial and rendezvous servers now in force (ConfigUpdate may raise them). */
int32_t ngx_rustdesk_peer_serial(ngx_rustdesk_peer_zone_t *z, u_char *servers,
    size_t *servers_len);
ngx_uint_t ngx_rustdesk_peer_config_update(ngx_rustdesk_peer_zone_t *z,
    int32_t serial, u_char *servers, size_t servers_len);


#endif /* _NGX_RUSTDESK_PEER_H_INCLUDED_ */
