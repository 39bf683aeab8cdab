/*
 * The peer database: SQLite, the schema of rustdesk-server's
 * db_v2.sqlite3, so that an existing file is used as it is (DESIGN.md
 * "Persistence").  Lookups on a memory miss are synchronous and indexed;
 * writes run in nginx's thread pool and report back in the event loop.
 */

#ifndef _NGX_STREAM_RUSTDESK_RENDEZVOUS_DB_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RENDEZVOUS_DB_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_peer.h"


typedef struct ngx_rustdesk_db_s  ngx_rustdesk_db_t;

/* In the event loop, once the write is done: NGX_OK or NGX_ERROR. */
typedef void (*ngx_rustdesk_db_done_pt)(void *data, ngx_int_t rc);

/* In the event loop, once the check is done: NGX_OK, or NGX_ERROR and why. */
typedef void (*ngx_rustdesk_db_probe_pt)(void *data, ngx_int_t rc,
    u_char *err);


/*
 * The counters the database adds to (ngx_rustdesk_db_stats), one after
 * the other in this order: writes done and failed, lookups that found a
 * row, found none, failed.
 */
#define NGX_RUSTDESK_DB_WRITE_OK      0
#define NGX_RUSTDESK_DB_WRITE_ERROR   1
#define NGX_RUSTDESK_DB_READ_FOUND    2
#define NGX_RUSTDESK_DB_READ_ABSENT   3
#define NGX_RUSTDESK_DB_READ_ERROR    4


/*
 * At configuration time, in the master: creates the file and the tables
 * if missing, switches it to WAL, and checks that it is a usable database
 * (an EMERG otherwise, so a reload with a broken file keeps the old one).
 */
ngx_int_t ngx_rustdesk_db_init_file(ngx_log_t *log, ngx_str_t *path);

/*
 * Running as root with a worker user: gives that user the file and its
 * directory, as nginx does with its temp directories.
 */
void ngx_rustdesk_db_give_to_workers(ngx_cycle_t *cycle, ngx_str_t *path);

/*
 * In the master, once nginx's user is known (a zone's init): gives the
 * database to the worker user and checks, as that user, that it can
 * write it.  NGX_ERROR: it cannot (an EMERG naming the path and user).
 */
ngx_int_t ngx_rustdesk_db_check_workers(ngx_cycle_t *cycle, ngx_str_t *path,
    ngx_log_t *log);

/* In a worker: opens its connections.  NULL on error (logged). */
ngx_rustdesk_db_t *ngx_rustdesk_db_open(ngx_cycle_t *cycle, ngx_str_t *path,
    void *thread_pool);
void ngx_rustdesk_db_close(ngx_rustdesk_db_t *db);

/* The metrics' counters (NGX_RUSTDESK_DB_* from stats on), NULL: none. */
void ngx_rustdesk_db_stats(ngx_rustdesk_db_t *db, ngx_atomic_t *stats);

/*
 * The row of id: NGX_OK (row filled, blobs from pool), NGX_DECLINED (no
 * such peer), NGX_ERROR (logged).
 */
ngx_int_t ngx_rustdesk_db_get(ngx_rustdesk_db_t *db, ngx_str_t *id,
    ngx_rustdesk_peer_row_t *row, ngx_pool_t *pool, ngx_log_t *log);

/*
 * Inserts (created_at: created, or now if empty) or updates (by guid: id,
 * pk, info) a peer; done() is called in the event loop.  NGX_ERROR:
 * nothing was started.
 */
ngx_int_t ngx_rustdesk_db_write(ngx_rustdesk_db_t *db, ngx_pool_t *pool,
    u_char *guid, ngx_str_t *id, ngx_str_t *uuid, ngx_str_t *pk,
    ngx_rustdesk_ip_t *ip, ngx_str_t *created, ngx_rustdesk_db_done_pt done,
    void *data, ngx_log_t *log);


/*
 * Whether the database can be written now, as a connection opened now
 * finds it (the file's mode and owner, the filesystem, a write lock that
 * another process holds): opened for writing, a write transaction begun
 * and rolled back, in the thread pool.  NGX_ERROR: nothing was started.
 */
ngx_int_t ngx_rustdesk_db_probe(ngx_rustdesk_db_t *db, ngx_pool_t *pool,
    ngx_rustdesk_db_probe_pt done, void *data);


#endif /* _NGX_STREAM_RUSTDESK_RENDEZVOUS_DB_H_INCLUDED_ */
