/*
 * The rendezvous module's use of the peer database (DESIGN.md
 * "Persistence"; the SQLite work is in ..._db.c): its path and thread pool
 * at configuration, each worker's connection, the lookup on a memory miss.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif

#include "ngx_stream_rustdesk_rendezvous_module.h"


#define NGX_RUSTDESK_DEFAULT_DATABASE   "db_v2.sqlite3"   /* in the key dir */


/* this worker's database */
static ngx_rustdesk_db_t  *ngx_stream_rustdesk_rendezvous_database_conn;
static ngx_uint_t          ngx_stream_rustdesk_rendezvous_database_failed;


ngx_int_t
ngx_stream_rustdesk_rendezvous_database_init(ngx_conf_t *cf,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf)
{
    u_char     *p;
    ngx_str_t  *dir, def;

    if (rmcf->database_off) {
        return NGX_OK;
    }

    if (rmcf->database.data == NULL) {
        /* beside the key files, as rustdesk-server keeps them */

        dir = &rmcf->shared->key_dir;

        if (dir->data == NULL) {
            ngx_str_set(&def, NGX_RUSTDESK_DEFAULT_KEY_DIR);
            dir = &def;
        }

        rmcf->database.len = dir->len + 1
                             + sizeof(NGX_RUSTDESK_DEFAULT_DATABASE) - 1;
        rmcf->database.data = ngx_pnalloc(cf->pool, rmcf->database.len + 1);
        if (rmcf->database.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(rmcf->database.data, dir->data, dir->len);
        *p++ = '/';
        ngx_memcpy(p, NGX_RUSTDESK_DEFAULT_DATABASE,
                   sizeof(NGX_RUSTDESK_DEFAULT_DATABASE));
    }

#if (NGX_THREADS)
    rmcf->thread_pool = ngx_thread_pool_add(cf, NULL);
    if (rmcf->thread_pool == NULL) {
        return NGX_ERROR;
    }
#endif

    return ngx_rustdesk_db_init_file(cf->log, &rmcf->database);
}


void
ngx_stream_rustdesk_rendezvous_db_open(ngx_cycle_t *cycle,
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf)
{
    if (rmcf->database_off) {
        return;
    }

    ngx_stream_rustdesk_rendezvous_database_conn =
        ngx_rustdesk_db_open(cycle, &rmcf->database, rmcf->thread_pool);

    if (ngx_stream_rustdesk_rendezvous_database_conn == NULL) {
        /* the worker serves on; key registrations get SERVER_ERROR */
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "rustdesk: database \"%V\" unavailable in this "
                      "worker, key registrations will be refused",
                      &rmcf->database);
        ngx_stream_rustdesk_rendezvous_database_failed = 1;
        return;
    }

    if (ngx_stream_rustdesk_rendezvous_stats) {
        ngx_rustdesk_db_stats(ngx_stream_rustdesk_rendezvous_database_conn,
                              ngx_stream_rustdesk_rendezvous_stats
                              + NGX_RUSTDESK_RDV_DB_WRITE_OK);
    }
}


void
ngx_stream_rustdesk_rendezvous_db_close(void)
{
    ngx_rustdesk_db_close(ngx_stream_rustdesk_rendezvous_database_conn);
    ngx_stream_rustdesk_rendezvous_database_conn = NULL;
}


ngx_rustdesk_db_t *
ngx_stream_rustdesk_rendezvous_db(ngx_uint_t *failed)
{
    *failed = ngx_stream_rustdesk_rendezvous_database_failed;
    return ngx_stream_rustdesk_rendezvous_database_conn;
}


ngx_int_t
ngx_stream_rustdesk_rendezvous_db_load(ngx_stream_session_t *s, ngx_str_t *id,
    ngx_rustdesk_peer_row_t *row)
{
    ngx_int_t                                    rc;
    ngx_uint_t                                   failed;
    ngx_rustdesk_db_t                           *db;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    db = ngx_stream_rustdesk_rendezvous_db(&failed);

    if (db == NULL) {
        return failed ? NGX_ERROR : NGX_DECLINED;
    }

    rc = ngx_rustdesk_db_get(db, id, row, s->connection->pool,
                             s->connection->log);
    if (rc != NGX_OK) {
        return rc;
    }

    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    /* a full zone: the peer is known all the same */
    (void) ngx_rustdesk_peer_load(rmcf->zone, id, row, s->connection->log);

    return NGX_OK;
}
