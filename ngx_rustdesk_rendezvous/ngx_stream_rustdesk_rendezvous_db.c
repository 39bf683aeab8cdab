/*
 * The peer database on SQLite (DESIGN.md "Persistence").
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#if (NGX_THREADS)
#include <ngx_thread_pool.h>
#endif

#include <grp.h>
#include <sqlite3.h>

#include "ngx_rustdesk_stats.h"
#include "ngx_stream_rustdesk_rendezvous_db.h"


/* rustdesk-server's schema, word for word */
#define NGX_RUSTDESK_DB_SCHEMA                                               \
    "create table if not exists peer ("                                      \
    " guid blob primary key not null,"                                       \
    " id varchar(100) not null,"                                             \
    " uuid blob not null,"                                                   \
    " pk blob not null,"                                                     \
    " created_at datetime not null default(current_timestamp),"              \
    " user blob,"                                                            \
    " status tinyint,"                                                       \
    " note varchar(300),"                                                    \
    " info text not null"                                                    \
    ") without rowid;"                                                       \
    "create unique index if not exists index_peer_id on peer (id);"          \
    "create index if not exists index_peer_user on peer (user);"             \
    "create index if not exists index_peer_created_at on peer (created_at);" \
    "create index if not exists index_peer_status on peer (status);"

#define NGX_RUSTDESK_DB_GET                                                  \
    "select guid, uuid, pk, info from peer where id = ?"

/*
 * insert, or update id, pk and info by guid as the reference's update_pk;
 * an upsert, so that writes of one peer from two workers cannot miss each
 * other's row; created_at, given or now, only ever with the row's insert
 */
#define NGX_RUSTDESK_DB_PUT                                                  \
    "insert into peer (guid, id, uuid, pk, info, created_at) "               \
    "values (?, ?, ?, ?, ?, coalesce(?, current_timestamp)) "                \
    "on conflict (guid) do update set "                                      \
    "id = excluded.id, pk = excluded.pk, info = excluded.info"

#define NGX_RUSTDESK_DB_BUSY_READ    100     /* ms, in the event loop */
#define NGX_RUSTDESK_DB_BUSY_WRITE   5000    /* ms, in a pool thread */
#define NGX_RUSTDESK_DB_BUSY_PROBE   1000    /* ms, in a pool thread */
#define NGX_RUSTDESK_DB_ERR_LEN      256


struct ngx_rustdesk_db_s {
    char                    *path;
    ngx_atomic_t            *stats;     /* NGX_RUSTDESK_DB_* */
    sqlite3                 *rd;
    sqlite3_stmt            *get;
    sqlite3                 *wr;
    sqlite3_stmt            *put;
#if (NGX_THREADS)
    ngx_thread_pool_t       *pool;
    ngx_thread_mutex_t       mutex;     /* the put statement */
#endif
};


typedef struct {
    ngx_rustdesk_db_t       *db;
    u_char                   guid[16];
    ngx_str_t                id;
    ngx_str_t                uuid;
    ngx_str_t                pk;
    ngx_str_t                info;
    ngx_str_t                created;   /* empty: now */
    ngx_int_t                rc;
    char                    *err;
    ngx_rustdesk_db_done_pt  done;
    void                    *data;
    ngx_log_t               *log;
} ngx_rustdesk_db_task_t;


/* A check of the database (ngx_rustdesk_db_probe). */
typedef struct {
    ngx_rustdesk_db_t         *db;
    char                      *path;
    int                        busy;
    ngx_int_t                  rc;
    ngx_rustdesk_db_probe_pt   done;
    void                      *data;
    u_char                     err[NGX_RUSTDESK_DB_ERR_LEN];
} ngx_rustdesk_db_check_t;


static sqlite3 *ngx_rustdesk_db_connect(ngx_log_t *log, char *path,
    int flags, int busy, const char *sql, sqlite3_stmt **stmt);
static void ngx_rustdesk_db_put(ngx_rustdesk_db_task_t *t);
static ngx_int_t ngx_rustdesk_db_parse_info(ngx_pool_t *pool, u_char *p,
    size_t len, ngx_rustdesk_ip_t *ip);
static void ngx_rustdesk_db_check(ngx_rustdesk_db_check_t *t);
#if (NGX_THREADS)
static void ngx_rustdesk_db_put_thread(void *data, ngx_log_t *log);
static void ngx_rustdesk_db_put_done(ngx_event_t *ev);
static void ngx_rustdesk_db_check_thread(void *data, ngx_log_t *log);
static void ngx_rustdesk_db_check_done(ngx_event_t *ev);
#endif


ngx_int_t
ngx_rustdesk_db_init_file(ngx_log_t *log, ngx_str_t *path)
{
    int       rc;
    char     *err;
    sqlite3  *conn;

    conn = NULL;
    err = NULL;

    rc = sqlite3_open_v2((char *) path->data, &conn,
                         SQLITE_OPEN_READWRITE|SQLITE_OPEN_CREATE, NULL);

    if (rc != SQLITE_OK) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "rustdesk: cannot open database \"%V\": %s", path,
                      conn ? sqlite3_errmsg(conn) : sqlite3_errstr(rc));
        sqlite3_close(conn);
        return NGX_ERROR;
    }

    /* the first statement that reads the file tells a broken one */

    rc = sqlite3_exec(conn, "pragma journal_mode = wal;"
                      NGX_RUSTDESK_DB_SCHEMA, NULL, NULL, &err);

    if (rc != SQLITE_OK) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "rustdesk: database \"%V\" is not usable: %s",
                      path, err ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        sqlite3_close(conn);
        return NGX_ERROR;
    }

    sqlite3_close(conn);

    return NGX_OK;
}


void
ngx_rustdesk_db_give_to_workers(ngx_cycle_t *cycle, ngx_str_t *path)
{
    u_char           *p, *dir;
    ngx_uint_t        i;
    ngx_core_conf_t  *ccf;
    u_char            name[NGX_MAX_PATH];

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (geteuid() != 0 || ccf->user == (ngx_uid_t) NGX_CONF_UNSET_UINT
        || ccf->user == 0)
    {
        return;
    }

    /*
     * workers write the file and its -wal and -shm companions, and create
     * and remove those in its directory
     */

    dir = ngx_pstrdup(cycle->pool, path);
    if (dir == NULL) {
        return;
    }

    for (p = dir + path->len; p > dir && p[-1] != '/'; p--) { /* void */ }

    /* the file's directory; never "/" itself */

    if (p - 1 > dir) {
        p[-1] = '\0';

        if (chown((char *) dir, ccf->user, (gid_t) -1) == -1) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_errno,
                          "rustdesk: chown(\"%s\", %d) failed, workers "
                          "may not be able to write the database",
                          dir, ccf->user);
        }
    }

    for (i = 0; i < 3; i++) {
        p = ngx_snprintf(name, sizeof(name) - 1, "%V%s", path,
                         i == 0 ? "" : (i == 1 ? "-wal" : "-shm"));
        *p = '\0';

        if (chown((char *) name, ccf->user, (gid_t) -1) == -1
            && ngx_errno != NGX_ENOENT)
        {
            ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_errno,
                          "rustdesk: chown(\"%s\", %d) failed, workers "
                          "may not be able to write the database",
                          name, ccf->user);
        }
    }
}


/*
 * Whether the worker user can write the database: a child process takes
 * that user's identity and starts a write transaction, the one sure test
 * (every directory on the path, the file, its -wal and -shm, the
 * directory's own write permission for them).  Only a root master with a
 * worker user has anything to check: otherwise workers are the master's
 * user, which has just opened the file.
 */

ngx_int_t
ngx_rustdesk_db_check_workers(ngx_cycle_t *cycle, ngx_str_t *path,
    ngx_log_t *log)
{
    int               fds[2], status, rc;
    char             *err;
    pid_t             pid;
    ssize_t           n;
    sqlite3          *conn;
    ngx_core_conf_t  *ccf;
    u_char            msg[256];

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (geteuid() != 0 || ccf->user == (ngx_uid_t) NGX_CONF_UNSET_UINT
        || ccf->user == 0)
    {
        return NGX_OK;
    }

    ngx_rustdesk_db_give_to_workers(cycle, path);

    if (pipe(fds) == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "pipe() failed");
        return NGX_ERROR;
    }

    pid = fork();

    if (pid == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "fork() failed");
        close(fds[0]);
        close(fds[1]);
        return NGX_ERROR;
    }

    if (pid == 0) {
        /* the child: the worker's identity, one write transaction */

        close(fds[0]);

        err = NULL;
        conn = NULL;

        if (setgid(ccf->group) == -1
            || initgroups(ccf->username, ccf->group) == -1
            || setuid(ccf->user) == -1)
        {
            n = ngx_snprintf(msg, sizeof(msg), "cannot become the user: %s",
                             strerror(errno)) - msg;

        } else {
            rc = sqlite3_open_v2((char *) path->data, &conn,
                                 SQLITE_OPEN_READWRITE, NULL);

            if (rc == SQLITE_OK) {
                rc = sqlite3_exec(conn, "begin immediate; rollback;", NULL,
                                  NULL, &err);
            }

            if (rc == SQLITE_OK) {
                n = 0;

            } else {
                n = ngx_snprintf(msg, sizeof(msg), "%s",
                                 err ? err : conn ? sqlite3_errmsg(conn)
                                              : sqlite3_errstr(rc))
                    - msg;
            }

            sqlite3_free(err);
            sqlite3_close(conn);
        }

        if (n) {
            (void) write(fds[1], msg, n);
        }

        _exit(n ? 1 : 0);
    }

    close(fds[1]);

    n = 0;

    for ( ;; ) {
        rc = read(fds[0], msg + n, sizeof(msg) - n);

        if (rc > 0) {
            n += rc;
            if ((size_t) n < sizeof(msg)) {
                continue;
            }
        }

        if (rc == -1 && ngx_errno == NGX_EINTR) {
            continue;
        }

        break;
    }

    close(fds[0]);

    while (waitpid(pid, &status, 0) == -1 && ngx_errno == NGX_EINTR) {
        /* void */
    }

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_EMERG, log, 0,
                  "rustdesk: the worker user \"%s\" cannot write the "
                  "database \"%V\": %*s (make every directory on its path "
                  "searchable by that user, or choose another path with "
                  "\"rustdesk_database\")",
                  ccf->username, path, n, n ? msg : (u_char *) "it failed");

    return NGX_ERROR;
}


ngx_rustdesk_db_t *
ngx_rustdesk_db_open(ngx_cycle_t *cycle, ngx_str_t *path, void *thread_pool)
{
    ngx_rustdesk_db_t  *db;

    db = ngx_pcalloc(cycle->pool, sizeof(ngx_rustdesk_db_t));
    if (db == NULL) {
        return NULL;
    }

    db->path = (char *) path->data;

    db->rd = ngx_rustdesk_db_connect(cycle->log, (char *) path->data,
                                     SQLITE_OPEN_READONLY,
                                     NGX_RUSTDESK_DB_BUSY_READ,
                                     NGX_RUSTDESK_DB_GET, &db->get);

    db->wr = ngx_rustdesk_db_connect(cycle->log, (char *) path->data,
                                     SQLITE_OPEN_READWRITE,
                                     NGX_RUSTDESK_DB_BUSY_WRITE,
                                     NGX_RUSTDESK_DB_PUT, &db->put);

    if (db->rd == NULL || db->wr == NULL) {
        ngx_rustdesk_db_close(db);
        return NULL;
    }

#if (NGX_THREADS)
    db->pool = thread_pool;

    if (ngx_thread_mutex_create(&db->mutex, cycle->log) != NGX_OK) {
        ngx_rustdesk_db_close(db);
        return NULL;
    }
#endif

    return db;
}


void
ngx_rustdesk_db_stats(ngx_rustdesk_db_t *db, ngx_atomic_t *stats)
{
    db->stats = stats;
}


void
ngx_rustdesk_db_close(ngx_rustdesk_db_t *db)
{
    if (db == NULL) {
        return;
    }

    sqlite3_finalize(db->get);
    sqlite3_finalize(db->put);
    sqlite3_close(db->rd);
    sqlite3_close(db->wr);

    db->get = NULL;
    db->put = NULL;
    db->rd = NULL;
    db->wr = NULL;
}


ngx_int_t
ngx_rustdesk_db_get(ngx_rustdesk_db_t *db, ngx_str_t *id,
    ngx_rustdesk_peer_row_t *row, ngx_pool_t *pool, ngx_log_t *log)
{
    int         rc;
    size_t      n;
    ngx_int_t   result;
    const void *blob;

    ngx_memzero(row, sizeof(ngx_rustdesk_peer_row_t));

    if (sqlite3_bind_text(db->get, 1, (char *) id->data, id->len,
                          SQLITE_STATIC)
        != SQLITE_OK)
    {
        goto failed;
    }

    rc = sqlite3_step(db->get);

    if (rc == SQLITE_DONE) {
        sqlite3_reset(db->get);
        ngx_rustdesk_stat_add(db->stats, NGX_RUSTDESK_DB_READ_ABSENT, 1);
        return NGX_DECLINED;
    }

    if (rc != SQLITE_ROW) {
        goto failed;
    }

    result = NGX_OK;

    /* guid */
    n = sqlite3_column_bytes(db->get, 0);
    blob = sqlite3_column_blob(db->get, 0);
    ngx_memcpy(row->guid, blob, ngx_min(n, 16));

    /* uuid, pk */
    row->uuid.len = sqlite3_column_bytes(db->get, 1);
    row->pk.len = sqlite3_column_bytes(db->get, 2);

    if (row->uuid.len > NGX_RUSTDESK_BLOB_MAX
        || row->pk.len > NGX_RUSTDESK_BLOB_MAX)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "rustdesk: database row of peer \"%V\" has an "
                      "oversized uuid or pk", id);
        result = NGX_ERROR;
        goto done;
    }

    row->uuid.data = ngx_pnalloc(pool, row->uuid.len + row->pk.len + 1);
    if (row->uuid.data == NULL) {
        result = NGX_ERROR;
        goto done;
    }

    row->pk.data = row->uuid.data + row->uuid.len;

    ngx_memcpy(row->uuid.data, sqlite3_column_blob(db->get, 1),
               row->uuid.len);
    ngx_memcpy(row->pk.data, sqlite3_column_blob(db->get, 2), row->pk.len);

    /* info: {"ip": "..."}; a row without a usable one has no IP */
    (void) ngx_rustdesk_db_parse_info(pool,
                                      (u_char *) sqlite3_column_text(db->get,
                                                                     3),
                                      sqlite3_column_bytes(db->get, 3),
                                      &row->ip);

done:

    sqlite3_reset(db->get);
    sqlite3_clear_bindings(db->get);

    ngx_rustdesk_stat_add(db->stats, result == NGX_OK
                                     ? NGX_RUSTDESK_DB_READ_FOUND
                                     : NGX_RUSTDESK_DB_READ_ERROR, 1);

    return result;

failed:

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "rustdesk: database lookup of peer \"%V\" failed: %s",
                  id, sqlite3_errmsg(db->rd));

    ngx_rustdesk_stat_add(db->stats, NGX_RUSTDESK_DB_READ_ERROR, 1);

    sqlite3_reset(db->get);
    sqlite3_clear_bindings(db->get);

    return NGX_ERROR;
}


ngx_int_t
ngx_rustdesk_db_write(ngx_rustdesk_db_t *db, ngx_pool_t *pool, u_char *guid,
    ngx_str_t *id, ngx_str_t *uuid, ngx_str_t *pk, ngx_rustdesk_ip_t *ip,
    ngx_str_t *created, ngx_rustdesk_db_done_pt done, void *data,
    ngx_log_t *log)
{
    u_char                  *p;
    size_t                   size;
    ngx_rustdesk_db_task_t  *t;
#if (NGX_THREADS)
    ngx_thread_task_t       *task;
#endif

    size = sizeof(ngx_rustdesk_db_task_t) + id->len + uuid->len + pk->len
           + created->len + sizeof("{\"ip\":\"\"}") + NGX_INET6_ADDRSTRLEN;

#if (NGX_THREADS)
    task = NULL;

    if (db->pool) {
        task = ngx_thread_task_alloc(pool, size);
        if (task == NULL) {
            return NGX_ERROR;
        }

        t = task->ctx;

    } else
#endif
    {
        t = ngx_palloc(pool, size);
        if (t == NULL) {
            return NGX_ERROR;
        }
    }

    t->db = db;
    t->done = done;
    t->data = data;
    t->log = log;
    t->err = NULL;
    ngx_memcpy(t->guid, guid, 16);

    p = (u_char *) (t + 1);

    t->id.data = p;
    t->id.len = id->len;
    p = ngx_cpymem(p, id->data, id->len);

    t->uuid.data = p;
    t->uuid.len = uuid->len;
    p = ngx_cpymem(p, uuid->data, uuid->len);

    t->pk.data = p;
    t->pk.len = pk->len;
    p = ngx_cpymem(p, pk->data, pk->len);

    t->created.data = p;
    t->created.len = created->len;
    p = ngx_cpymem(p, created->data, created->len);

    /* serde_json's form of PeerInfo { ip } */
    t->info.data = p;
    p = ngx_cpymem(p, "{\"ip\":\"", 7);
    p += ngx_rustdesk_ip_text(ip, p, NGX_INET6_ADDRSTRLEN);
    p = ngx_cpymem(p, "\"}", 2);
    t->info.len = p - t->info.data;

#if (NGX_THREADS)
    if (task) {
        task->handler = ngx_rustdesk_db_put_thread;
        task->event.handler = ngx_rustdesk_db_put_done;
        task->event.data = t;

        if (ngx_thread_task_post(db->pool, task) != NGX_OK) {
            return NGX_ERROR;
        }

        return NGX_OK;
    }
#endif

    /* no thread pool in this nginx: written here, at once */

    ngx_rustdesk_db_put(t);

    if (t->rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "rustdesk: database write of peer \"%V\" failed: %s",
                      &t->id, t->err);
    }

    ngx_rustdesk_stat_add(db->stats, t->rc == NGX_OK
                                     ? NGX_RUSTDESK_DB_WRITE_OK
                                     : NGX_RUSTDESK_DB_WRITE_ERROR, 1);

    done(data, t->rc);

    return NGX_OK;
}


#if (NGX_THREADS)

static void
ngx_rustdesk_db_put_thread(void *data, ngx_log_t *log)
{
    ngx_rustdesk_db_task_t  *t = data;

    (void) ngx_thread_mutex_lock(&t->db->mutex, log);
    ngx_rustdesk_db_put(t);
    (void) ngx_thread_mutex_unlock(&t->db->mutex, log);
}


static void
ngx_rustdesk_db_put_done(ngx_event_t *ev)
{
    ngx_rustdesk_db_task_t  *t = ev->data;

    if (t->rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, t->log, 0,
                      "rustdesk: database write of peer \"%V\" failed: %s",
                      &t->id, t->err);
    }

    ngx_rustdesk_stat_add(t->db->stats, t->rc == NGX_OK
                                        ? NGX_RUSTDESK_DB_WRITE_OK
                                        : NGX_RUSTDESK_DB_WRITE_ERROR, 1);

    t->done(t->data, t->rc);
}

#endif


ngx_int_t
ngx_rustdesk_db_probe(ngx_rustdesk_db_t *db, ngx_pool_t *pool,
    ngx_rustdesk_db_probe_pt done, void *data)
{
    ngx_rustdesk_db_check_t  *t;
#if (NGX_THREADS)
    ngx_thread_task_t        *task;

    if (db->pool) {
        task = ngx_thread_task_alloc(pool, sizeof(ngx_rustdesk_db_check_t));
        if (task == NULL) {
            return NGX_ERROR;
        }

        t = task->ctx;
        t->db = db;
        t->path = db->path;
        t->busy = NGX_RUSTDESK_DB_BUSY_PROBE;
        t->done = done;
        t->data = data;

        task->handler = ngx_rustdesk_db_check_thread;
        task->event.handler = ngx_rustdesk_db_check_done;
        task->event.data = t;

        return ngx_thread_task_post(db->pool, task);
    }
#endif

    /* no thread pool in this nginx: here, at once, not waiting for a lock */

    t = ngx_palloc(pool, sizeof(ngx_rustdesk_db_check_t));
    if (t == NULL) {
        return NGX_ERROR;
    }

    t->db = db;
    t->path = db->path;
    t->busy = 0;

    ngx_rustdesk_db_check(t);

    done(data, t->rc, t->err);

    return NGX_OK;
}


#if (NGX_THREADS)

static void
ngx_rustdesk_db_check_thread(void *data, ngx_log_t *log)
{
    ngx_rustdesk_db_check_t  *t = data;

    /* this worker's connection is the writes' (ngx_rustdesk_db_put) */

    (void) ngx_thread_mutex_lock(&t->db->mutex, log);
    ngx_rustdesk_db_check(t);
    (void) ngx_thread_mutex_unlock(&t->db->mutex, log);
}


static void
ngx_rustdesk_db_check_done(ngx_event_t *ev)
{
    ngx_rustdesk_db_check_t  *t = ev->data;

    t->done(t->data, t->rc, t->err);
}

#endif


/*
 * This worker's connection still on the file at the path (as
 * ngx_rustdesk_db_put requires), then a connection of its own, opened
 * now: one opened for writing on a file the process may not write is
 * read-only, and the write lock shows whether another process holds it.
 */

static void
ngx_rustdesk_db_check(ngx_rustdesk_db_check_t *t)
{
    int       rc, moved;
    char     *err;
    sqlite3  *conn;

    conn = NULL;
    err = NULL;

    t->rc = NGX_ERROR;
    t->err[0] = '\0';

    moved = 0;

    if (sqlite3_file_control(t->db->wr, "main", SQLITE_FCNTL_HAS_MOVED,
                             &moved)
        == SQLITE_OK
        && moved)
    {
        ngx_cpystrn(t->err, (u_char *) "the file was deleted or replaced "
                    "since the workers opened it (a reload opens it again)",
                    NGX_RUSTDESK_DB_ERR_LEN);
        return;
    }

    rc = sqlite3_open_v2(t->path, &conn, SQLITE_OPEN_READWRITE, NULL);

    if (rc != SQLITE_OK) {
        ngx_cpystrn(t->err, (u_char *) (conn ? sqlite3_errmsg(conn)
                                             : sqlite3_errstr(rc)),
                    NGX_RUSTDESK_DB_ERR_LEN);
        sqlite3_close(conn);
        return;
    }

    if (sqlite3_db_readonly(conn, "main") == 1) {
        ngx_cpystrn(t->err, (u_char *) "the file is read-only for the "
                    "workers", NGX_RUSTDESK_DB_ERR_LEN);
        sqlite3_close(conn);
        return;
    }

    (void) sqlite3_busy_timeout(conn, t->busy);

    rc = sqlite3_exec(conn, "begin immediate", NULL, NULL, &err);

    if (rc != SQLITE_OK) {
        ngx_cpystrn(t->err, (u_char *) (err ? err : sqlite3_errstr(rc)),
                    NGX_RUSTDESK_DB_ERR_LEN);
        sqlite3_free(err);
        sqlite3_close(conn);
        return;
    }

    (void) sqlite3_exec(conn, "rollback", NULL, NULL, NULL);
    sqlite3_close(conn);

    t->rc = NGX_OK;
}


/* Runs under the db mutex; sets t->rc and, on error, t->err. */

static void
ngx_rustdesk_db_put(ngx_rustdesk_db_task_t *t)
{
    int            rc, moved;
    sqlite3_stmt  *put;

    put = t->db->put;

    /*
     * a file deleted (or replaced) while nginx runs would take the write
     * and lose it at the next start: refused, until a reload creates the
     * file again
     */

    moved = 0;

    if (sqlite3_file_control(t->db->wr, "main", SQLITE_FCNTL_HAS_MOVED,
                             &moved)
        == SQLITE_OK
        && moved)
    {
        t->rc = NGX_ERROR;
        t->err = "the database file was deleted or replaced since nginx "
                 "opened it (a reload creates it again)";
        return;
    }

    if (sqlite3_bind_blob(put, 1, t->guid, 16, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_text(put, 2, (char *) t->id.data, t->id.len,
                             SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_blob(put, 3, t->uuid.data, t->uuid.len,
                             SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_blob(put, 4, t->pk.data, t->pk.len,
                             SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_text(put, 5, (char *) t->info.data, t->info.len,
                             SQLITE_STATIC) != SQLITE_OK
        || (t->created.len
            && sqlite3_bind_text(put, 6, (char *) t->created.data,
                                 t->created.len, SQLITE_STATIC)
               != SQLITE_OK))
    {
        rc = SQLITE_ERROR;

    } else {
        rc = sqlite3_step(put);
    }

    t->rc = (rc == SQLITE_DONE) ? NGX_OK : NGX_ERROR;

    /* a static message: the task outlives the connection's error state */
    t->err = (char *) sqlite3_errstr(sqlite3_extended_errcode(t->db->wr));

    sqlite3_reset(put);
    sqlite3_clear_bindings(put);
}


static sqlite3 *
ngx_rustdesk_db_connect(ngx_log_t *log, char *path, int flags, int busy,
    const char *sql, sqlite3_stmt **stmt)
{
    sqlite3  *conn;

    conn = NULL;

    if (sqlite3_open_v2(path, &conn, flags|SQLITE_OPEN_FULLMUTEX, NULL)
        != SQLITE_OK
        || sqlite3_busy_timeout(conn, busy) != SQLITE_OK
        || sqlite3_prepare_v2(conn, sql, -1, stmt, NULL) != SQLITE_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "rustdesk: cannot open database \"%s\": %s", path,
                      conn ? sqlite3_errmsg(conn) : "out of memory");
        sqlite3_close(conn);
        return NULL;
    }

    return conn;
}


/*
 * The IP in info, {"ip":"1.2.3.4"} as serde_json writes it (spaces
 * allowed); IPv4 and IPv6, a v4-mapped one made IPv4.
 */

static ngx_int_t
ngx_rustdesk_db_parse_info(ngx_pool_t *pool, u_char *p, size_t len,
    ngx_rustdesk_ip_t *ip)
{
    u_char     *last, *start;
    ngx_addr_t  addr;

    ngx_memzero(ip, sizeof(ngx_rustdesk_ip_t));

    if (p == NULL) {
        return NGX_DECLINED;
    }

    last = p + len;

    p = ngx_strlcasestrn(p, last, (u_char *) "\"ip\"", 4 - 1);
    if (p == NULL) {
        return NGX_DECLINED;
    }

    for (p += 4; p < last && (*p == ' ' || *p == ':'); p++) { /* void */ }

    if (p == last || *p++ != '"') {
        return NGX_DECLINED;
    }

    start = p;

    while (p < last && *p != '"') {
        p++;
    }

    if (p == last
        || ngx_parse_addr(pool, &addr, start, p - start) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ngx_rustdesk_ip_from_sockaddr(ip, addr.sockaddr, addr.socklen);
    ip->port = 0;

    return NGX_OK;
}
