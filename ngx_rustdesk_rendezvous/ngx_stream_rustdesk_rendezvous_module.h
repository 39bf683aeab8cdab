/*
 * The rendezvous module's configuration and per-session state, and the
 * functions its files share (the transports, the protocol layer and the
 * files it hands each message to, delivery, registered streams, relay
 * servers, console, database glue).
 */

#ifndef _NGX_STREAM_RUSTDESK_RENDEZVOUS_MODULE_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RENDEZVOUS_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_conf.h"
#include "ngx_rustdesk_metrics.h"
#include "ngx_rustdesk_msg.h"
#include "ngx_rustdesk_tcp.h"
#include "ngx_rustdesk_brokered.h"
#include "ngx_stream_rustdesk_rendezvous_ip.h"
#include "ngx_stream_rustdesk_rendezvous_zone.h"
#include "ngx_stream_rustdesk_rendezvous_peer.h"
#include "ngx_stream_rustdesk_rendezvous_ip_blocker.h"
#include "ngx_stream_rustdesk_rendezvous_waiter.h"
#include "ngx_stream_rustdesk_rendezvous_history.h"
#include "ngx_stream_rustdesk_rendezvous_report.h"
#include "ngx_stream_rustdesk_rendezvous_db.h"
#include "ngx_stream_rustdesk_rendezvous_cluster.h"


#define NGX_RUSTDESK_ROLE_NONE        0
#define NGX_RUSTDESK_ROLE_RENDEZVOUS  1   /* main port, TCP and UDP */
#define NGX_RUSTDESK_ROLE_NAT_TEST    2   /* main port - 1 */
#define NGX_RUSTDESK_ROLE_CONSOLE     3   /* loopback clients only */

#define NGX_RUSTDESK_KEEP_ALIVE       30000   /* rustdesk_keep_alive */


typedef struct {
    ngx_rustdesk_stream_conf_t  *shared;           /* must stay first */
    ngx_str_t                    licence;          /* empty: any key */

    ngx_shm_zone_t              *shm_zone;
    ngx_rustdesk_peer_zone_t    *zone;

    ngx_int_t                    serial;
    ngx_str_t                    rendezvous_servers;  /* comma-joined */
    ngx_str_t                    software_url;
    ngx_str_t                    software_version;

    ngx_array_t                 *relay_servers;    /* of ngx_str_t */
    ngx_addr_t                  *relay_addrs;      /* checked when > 1 */
    ngx_stream_complex_value_t  *relay_value;      /* with variables */
    ngx_flag_t                   always_use_relay;
    in_addr_t                    lan_addr;         /* hbbs --mask */
    in_addr_t                    lan_mask;
    ngx_str_t                    local_ip;         /* hbbs --local-ip */
    ngx_stream_complex_value_t  *local_ip_value;   /* with variables */

    size_t                       brokered_size;    /* rustdesk_brokered_zone */
    ngx_msec_t                   brokered_timeout;
    ngx_shm_zone_t              *brokered_zone;
    ngx_rustdesk_brokered_t     *brokered;         /* relay sessions */

    ngx_uint_t                   ip_block_max;     /* rustdesk_ip_blocker */
    ngx_uint_t                   ip_ids_max;
    ngx_msec_t                   keep_alive;       /* registered streams */
    ngx_msec_t                   online_timeout;   /* after a registration */
    ngx_str_t                    database;         /* path; "off": none */
    ngx_uint_t                   database_off;
    void                        *thread_pool;

    ngx_stream_rustdesk_rendezvous_cluster_conf_t  cluster;  /* Redis */

    ngx_uint_t                   used;             /* a server has a role */
} ngx_stream_rustdesk_rendezvous_main_conf_t;


typedef struct {
    ngx_uint_t                   role;
    ngx_uint_t                   console;          /* nat_test console */
    ngx_uint_t                   websocket;        /* rendezvous websocket */
    ngx_msec_t                   timeout;
    size_t                       max_message;
} ngx_stream_rustdesk_rendezvous_srv_conf_t;


/*
 * A message's origin, all the protocol layer (..._protocol.c) knows of the
 * transport it came on: who sent it, on which port, and how to answer.
 */

#define NGX_RUSTDESK_PORT_MAIN        0   /* TCP (plain or secure), UDP */
#define NGX_RUSTDESK_PORT_NAT         1   /* the NAT-test port */
#define NGX_RUSTDESK_PORT_WS          2   /* the WebSocket port */

typedef struct ngx_stream_rustdesk_rendezvous_req_s
    ngx_stream_rustdesk_rendezvous_req_t;

/*
 * an answer to the client: NGX_OK; NGX_DECLINED: withheld, a datagram
 * larger than the request to a source that has not proven its address
 * (r->proven, PROTOCOL.md section 6); NGX_ERROR: the session ends
 */
typedef ngx_int_t (*ngx_stream_rustdesk_rendezvous_send_pt)(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_rustdesk_msg_t *m);

/* an answer that waited (the handler returned NGX_AGAIN) went out */
typedef void (*ngx_stream_rustdesk_rendezvous_finish_pt)(
    ngx_stream_rustdesk_rendezvous_req_t *r);

struct ngx_stream_rustdesk_rendezvous_req_s {
    ngx_stream_session_t                      *session;
    ngx_rustdesk_ip_t                          addr;     /* the client */
    ngx_uint_t                                 port;     /* PORT_* */
    ngx_rustdesk_tcp_t                        *stream;   /* NULL: a datagram */
    ngx_stream_rustdesk_rendezvous_send_pt     send;
    ngx_stream_rustdesk_rendezvous_finish_pt   finish;
    size_t                                     size;     /* the datagram's */
    unsigned                                   proven:1; /* its source is a
                                                            registered peer's */

    /* what the access log shows of the last message (..._variables.c) */
    const char                                *message;  /* "RegisterPeer" */
    const char                                *result;   /* "OK", "OFFLINE" */
    ngx_str_t                                  id;       /* the sender's */
    ngx_str_t                                  peer_id;  /* the one asked for */
    ngx_str_t                                  uuid;     /* a relay's */

    /* a request waiting for Redis (..._cluster_directory.c) */
    ngx_stream_rustdesk_rendezvous_find_t     *cluster;
};


/* A TCP or WebSocket session's state. */
typedef struct {
    ngx_stream_rustdesk_rendezvous_req_t  req;     /* must stay first */
    ngx_rustdesk_ip_node_t       wait;             /* in the worker's tree */
    ngx_str_node_t               peer;             /* registered: its id */
    ngx_queue_t                  writes;           /* RegisterPk in flight */
    ngx_uint_t                   pings;            /* heartbeats unanswered */
    unsigned                     waiting:1;
    unsigned                     upgraded:1;       /* addr is the real one */
    unsigned                     registered:1;     /* peer is in the tree */
    unsigned                     stream_cleanup:1;
    unsigned                     heard:1;          /* a frame since a ping */
    ngx_msec_t                   cluster_heard;    /* the last frame, for
                                                      the cluster's
                                                      directory */
} ngx_stream_rustdesk_rendezvous_ctx_t;


/* A time as SQLite's current_timestamp writes created_at, in UTC. */
#define NGX_RUSTDESK_CREATED_LEN  (sizeof("YYYY-MM-DD HH:MM:SS") - 1)


/*
 * What the cluster says of an id before its RegisterPk is decided
 * (..._cluster_binding.c); created points into Redis's answer.
 */
typedef struct {
    ngx_uint_t                   binding;          /* NGX_RUSTDESK_BINDING_* */
    ngx_str_t                    created;          /* its first registration
                                                      anywhere; empty: none
                                                      known */
} ngx_stream_rustdesk_rendezvous_record_t;


/* A RegisterPk on its way through the checks and the database. */
typedef struct {
    ngx_rustdesk_register_pk_t   req;              /* addr, stream: caller */
    ngx_rustdesk_peer_change_t   change;
    ngx_str_t                    created;          /* a new row's created_at,
                                                      in a cluster; empty:
                                                      the database's now */
    u_char                       created_at[NGX_RUSTDESK_CREATED_LEN];
    Hbb__RegisterPkResponse__Result  result;       /* the answer */
} ngx_stream_rustdesk_rendezvous_pk_t;


/* The results counted of each message ($rustdesk_result), and transports. */
#define NGX_RUSTDESK_RDV_HEARTBEAT_RESULTS  4
#define NGX_RUSTDESK_RDV_REGISTER_RESULTS   6
#define NGX_RUSTDESK_RDV_PUNCH_RESULTS      4
#define NGX_RUSTDESK_RDV_RELAY_RESULTS      2

#define NGX_RUSTDESK_TRANSPORT_UDP          0
#define NGX_RUSTDESK_TRANSPORT_TCP          1
#define NGX_RUSTDESK_TRANSPORT_WS           2

#define ngx_stream_rustdesk_rendezvous_metrics_transport(r)                  \
    ((r)->stream == NULL ? NGX_RUSTDESK_TRANSPORT_UDP                        \
     : (r)->port == NGX_RUSTDESK_PORT_WS ? NGX_RUSTDESK_TRANSPORT_WS         \
     : NGX_RUSTDESK_TRANSPORT_TCP)


/*
 * The module's counters and gauges in its zone's slots (..._metrics.c),
 * this process's values: NULL unless a metrics listener is configured.
 * The database's five are in NGX_RUSTDESK_DB_* order, and the worker
 * channel's three in NGX_RUSTDESK_IPC_* order.
 */
typedef enum {
    NGX_RUSTDESK_RDV_STREAMS_TCP = 0,
    NGX_RUSTDESK_RDV_STREAMS_WS,
    NGX_RUSTDESK_RDV_IP_BLOCKED,
    NGX_RUSTDESK_RDV_DB_WRITE_OK,
    NGX_RUSTDESK_RDV_DB_WRITE_ERROR,
    NGX_RUSTDESK_RDV_DB_READ_FOUND,
    NGX_RUSTDESK_RDV_DB_READ_ABSENT,
    NGX_RUSTDESK_RDV_DB_READ_ERROR,
    NGX_RUSTDESK_RDV_IPC_SENT,
    NGX_RUSTDESK_RDV_IPC_RECEIVED,
    NGX_RUSTDESK_RDV_IPC_DROPPED,
    NGX_RUSTDESK_RDV_HEARTBEATS,       /* RegisterPeer, by result */
    NGX_RUSTDESK_RDV_REGISTRATIONS = NGX_RUSTDESK_RDV_HEARTBEATS
                                     + NGX_RUSTDESK_RDV_HEARTBEAT_RESULTS,
                                       /* RegisterPk, by transport, result */
    NGX_RUSTDESK_RDV_PUNCH = NGX_RUSTDESK_RDV_REGISTRATIONS
                             + 3 * NGX_RUSTDESK_RDV_REGISTER_RESULTS,
                                       /* PunchHoleRequest, by result */
    NGX_RUSTDESK_RDV_RELAY = NGX_RUSTDESK_RDV_PUNCH
                             + NGX_RUSTDESK_RDV_PUNCH_RESULTS,
                                       /* RequestRelay, by result */
    NGX_RUSTDESK_RDV_LOCAL_NSTATS = NGX_RUSTDESK_RDV_RELAY
                                    + NGX_RUSTDESK_RDV_RELAY_RESULTS,

    /* with rustdesk_cluster only: the connections' counts, the channel's */
    NGX_RUSTDESK_RDV_REDIS = NGX_RUSTDESK_RDV_LOCAL_NSTATS,
    NGX_RUSTDESK_RDV_CLUSTER_SENT = NGX_RUSTDESK_RDV_REDIS
                                    + NGX_RUSTDESK_REDIS_NSTATS,
    NGX_RUSTDESK_RDV_CLUSTER_RECEIVED,
    NGX_RUSTDESK_RDV_NSTATS
} ngx_stream_rustdesk_rendezvous_stat_e;


extern ngx_module_t   ngx_stream_rustdesk_rendezvous_module;
extern ngx_atomic_t  *ngx_stream_rustdesk_rendezvous_stats;


#define ngx_stream_rustdesk_rendezvous_count(i, n)                           \
    ngx_rustdesk_stat_add(ngx_stream_rustdesk_rendezvous_stats, i, n)

/* where a Redis connection counts (NULL: nowhere) */
#define ngx_stream_rustdesk_rendezvous_redis_stats()                         \
    (ngx_stream_rustdesk_rendezvous_stats                                    \
     ? ngx_stream_rustdesk_rendezvous_stats + NGX_RUSTDESK_RDV_REDIS : NULL)


/*
 * The transports: UDP (..._udp.c), TCP and WebSocket (..._tcp.c).  Each
 * decodes messages and hands them to the protocol layer.
 */
void ngx_stream_rustdesk_rendezvous_udp(ngx_stream_session_t *s);
void ngx_stream_rustdesk_rendezvous_tcp(ngx_stream_session_t *s);

/*
 * The protocol layer (..._protocol.c): which file decides each message,
 * by the port and transport it came on.  Every handler below returns
 * NGX_OK (done, the session may go on), NGX_AGAIN (an answer will follow:
 * r->finish() is called once it went out), NGX_DONE (done, the session
 * ends once its answers are written) or NGX_ERROR.
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_handle(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_rustdesk_msg_t *m);

/*
 * Notes an id (NGX_RUSTDESK_ID_MAX bytes at most) or a uuid for the access
 * log, copied into the session's memory once per field.
 */
void ngx_stream_rustdesk_rendezvous_note(
    ngx_stream_rustdesk_rendezvous_req_t *r, ngx_str_t *field,
    const char *value);

/* $rustdesk_* (..._variables.c) */
ngx_int_t ngx_stream_rustdesk_rendezvous_add_variables(ngx_conf_t *cf);

/* RegisterPeer, RegisterPk from a datagram (..._register.c). */
ngx_int_t ngx_stream_rustdesk_rendezvous_register_peer(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPeer *rp);
ngx_int_t ngx_stream_rustdesk_rendezvous_register_datagram(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk);

/* A RegisterPkResponse result's name, for the access log. */
const char *ngx_stream_rustdesk_rendezvous_register_result(
    Hbb__RegisterPkResponse__Result result);

/*
 * ConfigUpdate datagrams (refused), SoftwareUpdate, the console's
 * config-update command (..._config_update.c).
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_configure(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__ConfigUpdate *cu);
u_char *ngx_stream_rustdesk_rendezvous_config_console(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *args,
    ngx_uint_t n, u_char *p, u_char *last);
ngx_int_t ngx_stream_rustdesk_rendezvous_software(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__SoftwareUpdate *su);

/* Punch hole and relay requests and their answers (..._punch.c). */
ngx_int_t ngx_stream_rustdesk_rendezvous_punch_hole_request(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__PunchHoleRequest *ph);
ngx_int_t ngx_stream_rustdesk_rendezvous_request_relay(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RequestRelay *rr);
ngx_int_t ngx_stream_rustdesk_rendezvous_hole_sent(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__PunchHoleSent *phs);
ngx_int_t ngx_stream_rustdesk_rendezvous_local_addr(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__LocalAddr *la);
ngx_int_t ngx_stream_rustdesk_rendezvous_relay_response(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RelayResponse *rr);

/*
 * A's PunchHoleRequest sent on to B, at b through stream (with host:
 * through that host of the cluster, NGX_AGAIN until f->found() says
 * whether the host heard it); A waits for the answer.
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_punch_peer(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__PunchHoleRequest *ph,
    ngx_str_t *id, ngx_rustdesk_ip_t *b, ngx_pid_t stream, ngx_str_t *host,
    ngx_stream_rustdesk_rendezvous_find_t *f);

/* The answer to a failed PunchHoleRequest (NGX_OK, or NGX_ERROR). */
ngx_int_t ngx_stream_rustdesk_rendezvous_punch_failure(
    ngx_stream_rustdesk_rendezvous_req_t *r,
    Hbb__PunchHoleResponse__Failure failure);

/* The NAT test and the online query (..._nat.c). */
ngx_int_t ngx_stream_rustdesk_rendezvous_test_nat(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__TestNatRequest *tnr);
ngx_int_t ngx_stream_rustdesk_rendezvous_online(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__OnlineRequest *req);

/*
 * A message to peer B, registered as id at to or on a stream held by
 * worker stream (..._reach.c).
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_to_peer(ngx_stream_session_t *s,
    ngx_str_t *id, ngx_rustdesk_ip_t *to, ngx_pid_t stream,
    ngx_rustdesk_msg_t *m);

/* The same, encoded, without a session (from another host). */
ngx_int_t ngx_stream_rustdesk_rendezvous_to_peer_raw(
    ngx_rustdesk_peer_zone_t *z, ngx_str_t *id, ngx_rustdesk_ip_t *to,
    ngx_pid_t stream, u_char *msg, size_t len, ngx_log_t *log);

/* Answers to waiting requesters, across workers (..._deliver.c). */
ngx_int_t ngx_stream_rustdesk_rendezvous_deliver_init(ngx_cycle_t *cycle,
    ngx_rustdesk_peer_zone_t *z);
void ngx_stream_rustdesk_rendezvous_deliver_exit(ngx_cycle_t *cycle);
ngx_int_t ngx_stream_rustdesk_rendezvous_wait(ngx_stream_session_t *s);
void ngx_stream_rustdesk_rendezvous_answer(ngx_stream_session_t *s,
    ngx_rustdesk_ip_t *a, ngx_rustdesk_msg_t *m);

/* The same, encoded, from another host: NGX_DECLINED, A not waiting. */
ngx_int_t ngx_stream_rustdesk_rendezvous_answer_raw(
    ngx_rustdesk_peer_zone_t *z, ngx_rustdesk_ip_t *a, u_char *msg,
    size_t len, ngx_log_t *log);

/*
 * RegisterPk's checks and the peer table (PROTOCOL.md section 6), with
 * pk->req.addr and pk->req.stream set by the caller, and what the cluster
 * said of the id (NULL: not asked, or no answer): NGX_OK with the answer
 * in pk->result, or NGX_DONE when the message is ignored.  A result OK
 * with pk->change.write set still needs register_write().
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_register_pk(ngx_stream_session_t *s,
    Hbb__RegisterPk *rk, ngx_stream_rustdesk_rendezvous_record_t *record,
    ngx_stream_rustdesk_rendezvous_pk_t *pk, ngx_pool_t *pool);

/*
 * Starts the database write (its task from pool): NGX_AGAIN, and done()
 * reports, perhaps before this returns; NGX_ERROR: it could not start
 * (the answer is SERVER_ERROR).
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_register_write(
    ngx_stream_rustdesk_rendezvous_pk_t *pk, ngx_pool_t *pool,
    ngx_rustdesk_db_done_pt done, void *data, ngx_log_t *log);

/* Streams registered by their peers (PROTOCOL.md section 8). */
ngx_int_t ngx_stream_rustdesk_rendezvous_stream_init(ngx_cycle_t *cycle);
ngx_int_t ngx_stream_rustdesk_rendezvous_stream_register(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk);
ngx_int_t ngx_stream_rustdesk_rendezvous_stream_heard(ngx_rustdesk_tcp_t *t);
ngx_int_t ngx_stream_rustdesk_rendezvous_stream_heartbeat(
    ngx_rustdesk_tcp_t *t);
ngx_int_t ngx_stream_rustdesk_rendezvous_stream_send(ngx_stream_session_t *s,
    ngx_str_t *id, ngx_pid_t pid, ngx_rustdesk_msg_t *m);
ngx_int_t ngx_stream_rustdesk_rendezvous_stream_send_raw(
    ngx_rustdesk_peer_zone_t *z, ngx_str_t *id, ngx_pid_t pid, u_char *msg,
    size_t len, ngx_log_t *log);
void ngx_stream_rustdesk_rendezvous_stream_deliver(
    ngx_rustdesk_peer_zone_t *z, u_char *data, size_t len, ngx_pid_t from,
    ngx_log_t *log);

/*
 * The channel between the hosts of a cluster (..._cluster_channel.c):
 * worker 0 listens to its host's; send_to_peer() asks another host to
 * send m to its peer id.
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_channel_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf);
void ngx_stream_rustdesk_rendezvous_channel_exit(ngx_cycle_t *cycle);
/*
 * With f (a find of the requester's), NGX_AGAIN: f->found() is called
 * with f->count, how many listened (0: the host is gone; -1: no answer).
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_channel_to_peer_msg(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *host,
    ngx_str_t *id, ngx_rustdesk_ip_t *a, ngx_rustdesk_msg_t *m,
    ngx_pool_t *pool, ngx_stream_rustdesk_rendezvous_find_t *f);
ngx_int_t ngx_stream_rustdesk_rendezvous_channel_to_peer_raw(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *host,
    ngx_str_t *id, ngx_rustdesk_ip_t *a, u_char *msg, size_t len,
    ngx_pool_t *pool, ngx_stream_rustdesk_rendezvous_find_t *f);

/*
 * B's answer for a requester A not waiting here: passed to the host where
 * A waits, if any (NGX_OK: handed to Redis).
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_channel_answer(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_rustdesk_ip_t *a,
    ngx_rustdesk_msg_t *m, ngx_pool_t *pool);

/*
 * Worker 0 removes the directory's entries of peers that went offline
 * here (..._cluster_offline.c).
 */
void ngx_stream_rustdesk_rendezvous_offline_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf);
void ngx_stream_rustdesk_rendezvous_offline_exit(ngx_cycle_t *cycle);

/*
 * Peer id, registered with this host at ms (Unix time in ms), was host's
 * a moment ago: that host is told (NGX_OK: handed to Redis).
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_channel_moved(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *host,
    ngx_str_t *id, uint64_t ms);

/*
 * The cluster's peer records, each id's uuid, key and created_at
 * (..._cluster_binding.c): check_uuid() before a RegisterPk is decided
 * here (NGX_AGAIN: bound() is called with a copy of rk and the id's
 * record; NGX_DECLINED: decide now), bind() after one answered OK;
 * check_pk() when a peer with a key here comes online (see
 * ..._cluster.h for finds); created() writes this moment as created_at.
 */
#define NGX_RUSTDESK_BINDING_NONE   0    /* unbound, or not known */
#define NGX_RUSTDESK_BINDING_OTHER  1    /* bound to another uuid */
#define NGX_RUSTDESK_BINDING_SAME   2    /* to this uuid, with this key */

typedef void (*ngx_stream_rustdesk_rendezvous_bound_pt)(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk,
    ngx_stream_rustdesk_rendezvous_record_t *record);

ngx_int_t ngx_stream_rustdesk_rendezvous_cluster_check_uuid(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__RegisterPk *rk,
    ngx_stream_rustdesk_rendezvous_bound_pt bound);
void ngx_stream_rustdesk_rendezvous_cluster_bind(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *id,
    ngx_str_t *uuid, ngx_str_t *pk, ngx_str_t *created, ngx_pool_t *pool);
size_t ngx_stream_rustdesk_rendezvous_cluster_created(u_char *buf);
ngx_int_t ngx_stream_rustdesk_rendezvous_cluster_check_pk(
    ngx_stream_rustdesk_rendezvous_find_t *f);

/* The worker channel of the rendezvous module (deliver.c). */
#define NGX_RUSTDESK_IPC_ANSWER   1    /* ngx_rustdesk_ip_t A, message */
#define NGX_RUSTDESK_IPC_TO_PEER  2    /* id length, id, message */

ngx_int_t ngx_stream_rustdesk_rendezvous_ipc_send(ngx_pid_t pid,
    ngx_uint_t type, u_char *data, size_t len);

/*
 * The module's database (..._database.c): the default path and the thread
 * pool at configuration, each worker's connection (a failed open is
 * logged; RegisterPk then gets SERVER_ERROR).
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_database_init(ngx_conf_t *cf,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf);
void ngx_stream_rustdesk_rendezvous_db_open(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf);
void ngx_stream_rustdesk_rendezvous_db_close(void);

/*
 * This worker's database: NULL with *failed 0 when none is configured,
 * NULL with *failed 1 when it could not be opened.
 */
ngx_rustdesk_db_t *ngx_stream_rustdesk_rendezvous_db(ngx_uint_t *failed);

/*
 * A peer known to the database but not to memory: loaded (offline).
 * NGX_OK, NGX_DECLINED (unknown), NGX_ERROR (logged).
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_db_load(ngx_stream_session_t *s,
    ngx_str_t *id, ngx_rustdesk_peer_row_t *row);

ngx_int_t ngx_stream_rustdesk_relays_resolve(ngx_conf_t *cf,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf);
ngx_int_t ngx_stream_rustdesk_relays_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf);
void ngx_stream_rustdesk_relays_exit(ngx_cycle_t *cycle);
u_char *ngx_stream_rustdesk_relays_console(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *set,
    u_char *p, u_char *last);
void ngx_stream_rustdesk_rendezvous_console(ngx_stream_session_t *s);

/*
 * The metrics (..._metrics.c): the source and the zone's slots at
 * configuration, this process's slot in init_process, given back in
 * exit_process.
 */
ngx_int_t ngx_stream_rustdesk_rendezvous_metrics_conf(ngx_conf_t *cf,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf);
void ngx_stream_rustdesk_rendezvous_metrics_init(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf);
void ngx_stream_rustdesk_rendezvous_metrics_exit(ngx_cycle_t *cycle);
void ngx_stream_rustdesk_rendezvous_metrics_handler(ngx_stream_session_t *s);

/*
 * A message's result ($rustdesk_result) counted: heartbeats, key
 * registrations, punch hole and relay requests (message: the
 * RendezvousMessage union case; transport: NGX_RUSTDESK_TRANSPORT_*).
 */
void ngx_stream_rustdesk_rendezvous_account(ngx_uint_t transport,
    ngx_uint_t message, const char *result);

/*
 * The relays offered (..._relays.c), evaluated for s's client when they
 * hold variables: a relay server, round-robin ("" when none is
 * configured), and the one for LAN-side peers, rustdesk_local_ip ("" when
 * none).  relay_session() gives a session to evaluate them for a client
 * at ip instead (s itself when they hold no variables).
 */
char *ngx_stream_rustdesk_rendezvous_relay_server(ngx_stream_session_t *s);
char *ngx_stream_rustdesk_rendezvous_local_ip(ngx_stream_session_t *s);
ngx_stream_session_t *ngx_stream_rustdesk_rendezvous_relay_session(
    ngx_stream_session_t *s, ngx_rustdesk_ip_t *ip);
ngx_uint_t ngx_stream_rustdesk_rendezvous_is_lan(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_rustdesk_ip_t *ip);
ngx_uint_t ngx_stream_rustdesk_rendezvous_always_relay(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf);

/*
 * TestNatResponse / RegisterPeer's ConfigUpdate: when serial is higher
 * (..._config_update.c).
 */
Hbb__ConfigUpdate *ngx_stream_rustdesk_rendezvous_config_update(
    ngx_stream_session_t *s, int32_t client_serial);

/* The version of rustdesk_software_url: after the last "-", less ".ext". */
void ngx_stream_rustdesk_rendezvous_version_from_url(ngx_str_t *url,
    ngx_str_t *version);


#endif /* _NGX_STREAM_RUSTDESK_RENDEZVOUS_MODULE_H_INCLUDED_ */
