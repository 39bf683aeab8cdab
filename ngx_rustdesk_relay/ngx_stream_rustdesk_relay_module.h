/*
 * The RustDesk relay server ("hbbr") as an nginx stream module: shared
 * declarations of its files.
 *
 *   ngx_stream_rustdesk_relay_module.c   directives, accept, first message
 *   ngx_stream_rustdesk_relay_pair.c     waiting, pairing across workers
 *   ngx_stream_rustdesk_relay_cluster.c  tickets from the cluster's Redis
 *   ngx_stream_rustdesk_relay_forward.c  forwarding, bandwidth, closing
 *   ngx_stream_rustdesk_relay_message.c  forwarding with a WebSocket side
 *   ngx_stream_rustdesk_relay_console.c  hbbr's console commands
 *   ngx_stream_rustdesk_relay_metrics.c  figures for the metrics listener
 *   ngx_stream_rustdesk_relay_zone.c     the shared zone
 */

#ifndef _NGX_STREAM_RUSTDESK_RELAY_MODULE_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RELAY_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_conf.h"
#include "ngx_rustdesk_metrics.h"
#include "ngx_rustdesk_tcp.h"
#include "ngx_rustdesk_brokered.h"
#include "ngx_stream_rustdesk_relay_zone.h"


/* the largest message a pair with a WebSocket side forwards */
#define NGX_RUSTDESK_RELAY_MESSAGE_MAX  (16 * 1024 * 1024)


typedef struct {
    ngx_rustdesk_stream_conf_t   *shared;          /* must stay first */
    ngx_str_t                     licence;         /* key clients present */

    ngx_shm_zone_t               *shm_zone;
    ngx_rustdesk_relay_zone_t    *zone;

    ngx_msec_t                    request_timeout;
    ngx_msec_t                    pair_timeout;
    ngx_msec_t                    idle_timeout;
    size_t                        buffer_size;

    ngx_rustdesk_relay_limits_t   limits;          /* as configured */
    ngx_str_t                     files[2];        /* blacklist, blocklist */

    ngx_flag_t                    tickets;         /* rustdesk_relay_tickets */
    ngx_shm_zone_t               *brokered_zone;   /* tickets: referenced */
    ngx_rustdesk_brokered_t      *brokered;        /* the rendezvous's, if
                                                      it runs here */
    void                         *unlogged;        /* a log conf with no
                                                      access_log */

    ngx_uint_t                    used;            /* a relay port exists */
} ngx_stream_rustdesk_relay_main_conf_t;


typedef struct ngx_stream_rustdesk_relay_pair_s  ngx_stream_rustdesk_relay_pair_t;

/* One client connection of the relay, from accept to close. */
typedef struct {
    ngx_connection_t                  *connection;
    ngx_stream_session_t              *session;    /* NULL: a descriptor
                                                      another worker passed */
    ngx_rustdesk_tcp_t                *tcp;        /* the first message */
    ngx_stream_rustdesk_relay_pair_t  *pair;

    ngx_buf_t                         *buf;        /* read from this side,
                                                      not yet written to the
                                                      other */
    ngx_str_t                          uuid;
    ngx_rbtree_node_t                  node;       /* waiting: key = serial */

    ngx_str_t                          ip;         /* as the lists hold it */
    u_char                             ip_text[NGX_RUSTDESK_RELAY_IP_LEN];

    /* what the access log shows (variables.c) */
    const char                        *result;     /* "paired", ... */
    ngx_str_t                          peer_id;    /* brokered: the peer
                                                      asked to relay */
    ngx_str_t                          partner;    /* its address */

    ngx_rustdesk_redis_cmd_t          *ticket;     /* asked of Redis */

    /* a pair with a WebSocket side forwards messages (message.c) */
    ngx_buf_t                         *out;        /* encoded for this side */
    u_char                            *msg;        /* its decoder's buffer */
    ngx_rustdesk_frame_decoder_t      *frame;      /* TCP side */
    ngx_rustdesk_ws_decoder_t         *wsd;        /* WebSocket side */
    u_char                            *held_payload;
    size_t                             held_len;
    u_char                            *pong;       /* a WebSocket side's
                                                      latest ping not yet
                                                      answered */
    size_t                             pong_len;

    unsigned                           ws:1;       /* a WebSocket client */
    unsigned                           waiting:1;
    unsigned                           eof:1;      /* it sent FIN */
    unsigned                           shut:1;     /* FIN passed on */
    unsigned                           held:1;     /* a message waits for
                                                      room in the other's
                                                      output */
    unsigned                           quiet:1;    /* its partner's log
                                                      line tells of it */
    unsigned                           pong_owed:1;
} ngx_stream_rustdesk_relay_side_t;


struct ngx_stream_rustdesk_relay_pair_s {
    ngx_stream_rustdesk_relay_side_t     *a;       /* waited (its pool) */
    ngx_stream_rustdesk_relay_side_t     *b;       /* came second */
    ngx_stream_rustdesk_relay_main_conf_t  *conf;

    ngx_event_t                           tick;    /* once a second */

    ngx_msec_t                            start;
    ngx_msec_t                            last_traffic;
    ngx_msec_t                            last_tick;

    uint64_t                              bits;    /* its limit, bit/s */
    int64_t                               tokens;  /* the pair's bucket,
                                                      1/1000 byte */
    ngx_msec_t                            tokens_last;

    uint64_t                              total;   /* bytes, both ways */
    uint64_t                              from_a;  /* bytes a sent */
    uint64_t                              from_b;
    ngx_msec_t                            end;
    uint64_t                              second;  /* since the last tick */
    uint64_t                              highest; /* kb/s */

    ngx_atomic_uint_t                     lists_version;
    ngx_rustdesk_relay_usage_t           *usage;

    unsigned                              messages:1; /* a WebSocket side */
    unsigned                              pipe:1;     /* TLS bytes to the
                                                         real pair in another
                                                         worker */
    unsigned                              blacklisted:1;
    unsigned                              was_blacklisted:1;
    unsigned                              downgraded:1;
    unsigned                              closed:1;
};


/*
 * The module's counters and gauges in its zone's slots (metrics.c), this
 * process's values: NULL unless a metrics listener is configured.  The
 * worker channel's three are in NGX_RUSTDESK_IPC_* order; the sessions
 * are counted by the result their access log line has, as they end.
 */

#define NGX_RUSTDESK_RELAY_RESULTS  12

typedef enum {
    NGX_RUSTDESK_RELAY_S_PAIRS_ACTIVE = 0,
    NGX_RUSTDESK_RELAY_S_WAITING,
    NGX_RUSTDESK_RELAY_S_PAIRS,
    NGX_RUSTDESK_RELAY_S_BYTES,
    NGX_RUSTDESK_RELAY_S_LIMITED_BLACKLIST,
    NGX_RUSTDESK_RELAY_S_LIMITED_DOWNGRADE,
    NGX_RUSTDESK_RELAY_S_IPC_SENT,
    NGX_RUSTDESK_RELAY_S_IPC_RECEIVED,
    NGX_RUSTDESK_RELAY_S_IPC_DROPPED,
    NGX_RUSTDESK_RELAY_S_SESSIONS,     /* by result, as logged */
    NGX_RUSTDESK_RELAY_LOCAL_NSTATS = NGX_RUSTDESK_RELAY_S_SESSIONS
                                      + NGX_RUSTDESK_RELAY_RESULTS,

    /* with tickets from the cluster only: its connections' counts */
    NGX_RUSTDESK_RELAY_S_REDIS = NGX_RUSTDESK_RELAY_LOCAL_NSTATS,
    NGX_RUSTDESK_RELAY_NSTATS = NGX_RUSTDESK_RELAY_S_REDIS
                                + NGX_RUSTDESK_REDIS_NSTATS
} ngx_stream_rustdesk_relay_stat_e;


extern ngx_module_t   ngx_stream_rustdesk_relay_module;
extern ngx_atomic_t  *ngx_stream_rustdesk_relay_stats;


#define ngx_stream_rustdesk_relay_count(i, n)                                \
    ngx_rustdesk_stat_add(ngx_stream_rustdesk_relay_stats, i, n)

/* where the Redis connection counts (NULL: nowhere) */
#define ngx_stream_rustdesk_relay_redis_stats()                              \
    (ngx_stream_rustdesk_relay_stats                                         \
     ? ngx_stream_rustdesk_relay_stats + NGX_RUSTDESK_RELAY_S_REDIS : NULL)

/* nginx's stream log module: no header of nginx declares it */
extern ngx_module_t  ngx_stream_log_module;


/* pair.c */
ngx_int_t ngx_stream_rustdesk_relay_pair_init(ngx_cycle_t *cycle,
    ngx_rustdesk_ipc_dir_t *dir);
void ngx_stream_rustdesk_relay_pair_exit(ngx_cycle_t *cycle);
void ngx_stream_rustdesk_relay_request(ngx_stream_rustdesk_relay_side_t *side,
    u_char *rest, size_t len);
void ngx_stream_rustdesk_relay_unwait(ngx_stream_rustdesk_relay_side_t *side);
/* a side with its ticket (if tickets are on) meets its partner, or waits */
void ngx_stream_rustdesk_relay_pair(ngx_stream_rustdesk_relay_side_t *side);
/*
 * side is not read until its partner comes or Redis answers (its timer is
 * the caller's); a client that leaves meanwhile is closed.
 */
void ngx_stream_rustdesk_relay_hold(ngx_stream_rustdesk_relay_side_t *side);

/* cluster.c */
ngx_int_t ngx_stream_rustdesk_relay_cluster_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_relay_main_conf_t *lmcf);
void ngx_stream_rustdesk_relay_cluster_exit(ngx_cycle_t *cycle);
/*
 * A ticket for side asked of Redis: NGX_AGAIN, and the answer pairs side
 * or closes it; NGX_DECLINED when Redis cannot be asked now (refused).
 */
ngx_int_t ngx_stream_rustdesk_relay_cluster_ticket(
    ngx_stream_rustdesk_relay_side_t *side);
/* A ticket taken from this nginx's rendezvous, spent in Redis too. */
void ngx_stream_rustdesk_relay_cluster_spend(
    ngx_stream_rustdesk_relay_side_t *side);

/* forward.c */
void ngx_stream_rustdesk_relay_start(ngx_stream_rustdesk_relay_pair_t *p);
void ngx_stream_rustdesk_relay_close_side(
    ngx_stream_rustdesk_relay_side_t *side);
void ngx_stream_rustdesk_relay_buf_init(size_t size);
ngx_buf_t *ngx_stream_rustdesk_relay_buf_get(size_t size);
void ngx_stream_rustdesk_relay_buf_put(ngx_buf_t *b);
ngx_buf_t *ngx_stream_rustdesk_relay_buf_drained(ngx_buf_t **bp);

ngx_int_t ngx_stream_rustdesk_relay_recv(ngx_stream_rustdesk_relay_pair_t *p,
    ngx_stream_rustdesk_relay_side_t *src);
ngx_int_t ngx_stream_rustdesk_relay_send(ngx_connection_t *c, ngx_buf_t *b);
size_t ngx_stream_rustdesk_relay_allow(ngx_stream_rustdesk_relay_pair_t *p,
    ngx_msec_t *delay);
void ngx_stream_rustdesk_relay_account(ngx_stream_rustdesk_relay_pair_t *p,
    size_t n);

/* message.c */
ngx_int_t ngx_stream_rustdesk_relay_message_init(
    ngx_stream_rustdesk_relay_side_t *side, size_t max);
void ngx_stream_rustdesk_relay_message_free(
    ngx_stream_rustdesk_relay_side_t *side);
void ngx_stream_rustdesk_relay_message_flush(
    ngx_stream_rustdesk_relay_side_t *side);
/*
 * Writes side's output, then the pong it is owed: NGX_OK when all is
 * written, NGX_AGAIN, NGX_ERROR.
 */
ngx_int_t ngx_stream_rustdesk_relay_message_write(
    ngx_stream_rustdesk_relay_side_t *side);
/*
 * Decodes src's input and frames each message for dst, while dst's output
 * has room: NGX_OK, NGX_AGAIN (no whole message), NGX_DONE (a WebSocket
 * close), NGX_ERROR.
 */
ngx_int_t ngx_stream_rustdesk_relay_message_decode(
    ngx_stream_rustdesk_relay_pair_t *p, ngx_stream_rustdesk_relay_side_t *src,
    ngx_stream_rustdesk_relay_side_t *dst);

/* variables.c: $rustdesk_* */
ngx_int_t ngx_stream_rustdesk_relay_add_variables(ngx_conf_t *cf);

/* console.c */
void ngx_stream_rustdesk_relay_console(ngx_stream_session_t *s);

/* metrics.c */
ngx_int_t ngx_stream_rustdesk_relay_metrics_conf(ngx_conf_t *cf,
    ngx_stream_rustdesk_relay_main_conf_t *lmcf);
void ngx_stream_rustdesk_relay_metrics_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_relay_main_conf_t *lmcf);
void ngx_stream_rustdesk_relay_metrics_exit(ngx_cycle_t *cycle);
void ngx_stream_rustdesk_relay_metrics_handler(ngx_stream_session_t *s);


#endif /* _NGX_STREAM_RUSTDESK_RELAY_MODULE_H_INCLUDED_ */
