/*
 * The relay's shared zone: pairing table, lists, limits, usage.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_relay_zone.h"


#define NGX_RUSTDESK_RELAY_EXPIRE_SCAN  16    /* stale waiters per pairing */
#define NGX_RUSTDESK_RELAY_USAGE_STALE  5000  /* its worker is gone */
#define NGX_RUSTDESK_RELAY_BURST        10    /* a tenth of a second */


typedef struct {
    ngx_str_node_t             sn;            /* key: crc32 of the uuid */
    ngx_queue_t                queue;
    ngx_pid_t                  pid;
    ngx_uint_t                 serial;
    ngx_msec_t                 since;
    u_char                     uuid[1];
} ngx_rustdesk_relay_waiter_t;


typedef struct {
    ngx_str_node_t             sn;            /* key: crc32 of the text */
    ngx_queue_t                queue;
    u_char                     ip[1];
} ngx_rustdesk_relay_ip_t;


static void ngx_rustdesk_relay_waiter_free(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_waiter_t *w);
static ngx_rustdesk_relay_ip_t *ngx_rustdesk_relay_list_lookup(
    ngx_rustdesk_relay_list_t *l, ngx_str_t *ip);
static ngx_int_t ngx_rustdesk_relay_list_add_locked(
    ngx_rustdesk_relay_zone_t *z, ngx_rustdesk_relay_list_t *l,
    ngx_str_t *ip);
static void ngx_rustdesk_relay_list_load(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_e list, ngx_log_t *log);
static int ngx_libc_cdecl ngx_rustdesk_relay_usage_cmp(const void *one,
    const void *two);


/* this worker's copy of the bandwidth settings, its share of the bucket */
static ngx_rustdesk_relay_limits_t  ngx_rustdesk_relay_limits_copy;
static ngx_atomic_uint_t            ngx_rustdesk_relay_limits_version;
static ngx_uint_t                   ngx_rustdesk_relay_limits_known;
static int64_t                      ngx_rustdesk_relay_total_share;


static const char  *ngx_rustdesk_relay_list_names[] = {
    "blacklist", "blocklist"
};


ngx_int_t
ngx_rustdesk_relay_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_rustdesk_relay_zone_t  *oz = data;

    ngx_uint_t                  i;
    ngx_slab_pool_t            *shpool;
    ngx_rustdesk_stats_t       *st;
    ngx_rustdesk_relay_sh_t    *sh;
    ngx_rustdesk_relay_zone_t  *z;

    z = shm_zone->data;

    /*
     * the workers' channel directory: nginx's user and pid file are known
     * here, and a refusal still leaves a reload harmless; a zone that no
     * server uses has none
     */

    if (z->channel
        && ngx_rustdesk_ipc_dir_init(z->channel, shm_zone->shm.log) != NGX_OK)
    {
        return NGX_ERROR;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    z->shpool = shpool;

    if (oz) {
        /* a reload: the pairs, lists and usage live on */
        z->sh = oz->sh;

    } else if (shm_zone->shm.exists) {
        z->sh = shpool->data;

    } else {
        sh = ngx_slab_calloc(shpool, sizeof(ngx_rustdesk_relay_sh_t));
        if (sh == NULL) {
            return NGX_ERROR;
        }

        ngx_rbtree_init(&sh->waiters, &sh->waiters_sentinel,
                        ngx_str_rbtree_insert_value);
        ngx_queue_init(&sh->waiters_queue);

        for (i = 0; i < 2; i++) {
            ngx_rbtree_init(&sh->lists[i].tree, &sh->lists[i].sentinel,
                            ngx_str_rbtree_insert_value);
            ngx_queue_init(&sh->lists[i].queue);
        }

        ngx_queue_init(&sh->usage);

        sh->total_last = ngx_current_msec;

        shpool->data = sh;
        z->sh = sh;

        shpool->log_nomem = 0;
    }

    /* the configuration's values apply at start and at each reload */

    ngx_shmtx_lock(&shpool->mutex);
    z->sh->limits = z->conf;
    (void) ngx_atomic_fetch_add(&z->sh->limits_version, 1);
    z->sh->full_logged = 0;
    ngx_shmtx_unlock(&shpool->mutex);

    /*
     * the metrics' slots, when a listener wants them: made once and kept
     * across reloads (a module of another version with other counters gets
     * slots of its own; the old ones stay with the old workers)
     */

    if (z->stats_values
        && (z->sh->stats == NULL || z->sh->stats->nvalues != z->stats_values))
    {
        st = ngx_rustdesk_stats_alloc(shpool, z->stats_values,
                                      ngx_rustdesk_stats_slots(z->cycle));
        if (st == NULL) {
            ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                          "rustdesk: no room for the metrics' counters in "
                          "zone \"%V\", the relay module counts nothing",
                          &shm_zone->shm.name);

        } else {
            ngx_shmtx_lock(&shpool->mutex);
            z->sh->stats = st;
            ngx_shmtx_unlock(&shpool->mutex);
        }
    }

    for (i = 0; i < 2; i++) {
        if (z->files[i].len) {
            ngx_rustdesk_relay_list_load(z, i, shm_zone->shm.log);
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_rustdesk_relay_waiter_pair(ngx_rustdesk_relay_zone_t *z, ngx_str_t *uuid,
    ngx_uint_t serial, ngx_msec_t expire, ngx_pid_t *pid,
    ngx_uint_t *partner)
{
    uint32_t                      hash;
    ngx_uint_t                    i;
    ngx_queue_t                  *q;
    ngx_rustdesk_relay_sh_t      *sh;
    ngx_rustdesk_relay_waiter_t  *w;

    sh = z->sh;
    hash = ngx_crc32_short(uuid->data, uuid->len);

    ngx_shmtx_lock(&z->shpool->mutex);

    for (i = 0; i < NGX_RUSTDESK_RELAY_EXPIRE_SCAN; i++) {
        if (ngx_queue_empty(&sh->waiters_queue)) {
            break;
        }

        q = ngx_queue_head(&sh->waiters_queue);
        w = ngx_queue_data(q, ngx_rustdesk_relay_waiter_t, queue);

        if ((ngx_msec_int_t) (ngx_current_msec - w->since) < (ngx_msec_int_t) expire) {
            break;
        }

        ngx_rustdesk_relay_waiter_free(z, w);
    }

    w = (ngx_rustdesk_relay_waiter_t *)
            ngx_str_rbtree_lookup(&sh->waiters, uuid, hash);

    if (w) {
        *pid = w->pid;
        *partner = w->serial;
        ngx_rustdesk_relay_waiter_free(z, w);
        ngx_shmtx_unlock(&z->shpool->mutex);
        return NGX_OK;
    }

    w = ngx_slab_alloc_locked(z->shpool,
                      offsetof(ngx_rustdesk_relay_waiter_t, uuid) + uuid->len);
    if (w == NULL) {
        sh->full = 1;
        ngx_shmtx_unlock(&z->shpool->mutex);
        return NGX_ERROR;
    }

    if (sh->full) {
        sh->full = 0;
    }

    w->sn.node.key = hash;
    w->sn.str.len = uuid->len;
    w->sn.str.data = w->uuid;
    ngx_memcpy(w->uuid, uuid->data, uuid->len);
    w->pid = ngx_pid;
    w->serial = serial;
    w->since = ngx_current_msec;

    ngx_rbtree_insert(&sh->waiters, &w->sn.node);
    ngx_queue_insert_tail(&sh->waiters_queue, &w->queue);

    ngx_shmtx_unlock(&z->shpool->mutex);

    return NGX_DECLINED;
}


void
ngx_rustdesk_relay_waiter_remove(ngx_rustdesk_relay_zone_t *z,
    ngx_str_t *uuid, ngx_uint_t serial)
{
    ngx_rustdesk_relay_waiter_t  *w;

    ngx_shmtx_lock(&z->shpool->mutex);

    w = (ngx_rustdesk_relay_waiter_t *)
            ngx_str_rbtree_lookup(&z->sh->waiters, uuid,
                                  ngx_crc32_short(uuid->data, uuid->len));

    if (w && w->pid == ngx_pid && w->serial == serial) {
        ngx_rustdesk_relay_waiter_free(z, w);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


static void
ngx_rustdesk_relay_waiter_free(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_waiter_t *w)
{
    ngx_rbtree_delete(&z->sh->waiters, &w->sn.node);
    ngx_queue_remove(&w->queue);
    ngx_slab_free_locked(z->shpool, w);
}


/* The level to log a full zone at: warn the first time, then info. */

ngx_uint_t
ngx_rustdesk_relay_zone_full(ngx_rustdesk_relay_zone_t *z)
{
    ngx_uint_t  first;

    ngx_shmtx_lock(&z->shpool->mutex);
    first = !z->sh->full_logged;
    z->sh->full_logged = 1;
    ngx_shmtx_unlock(&z->shpool->mutex);

    return first ? NGX_LOG_WARN : NGX_LOG_INFO;
}


ngx_uint_t
ngx_rustdesk_relay_list_has(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_e list, ngx_str_t *ip)
{
    ngx_uint_t  found;

    if (z->sh->lists[list].n == 0) {
        return 0;
    }

    ngx_shmtx_lock(&z->shpool->mutex);
    found = (ngx_rustdesk_relay_list_lookup(&z->sh->lists[list], ip) != NULL);
    ngx_shmtx_unlock(&z->shpool->mutex);

    return found;
}


ngx_int_t
ngx_rustdesk_relay_list_add(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_e list, ngx_str_t *ip)
{
    ngx_int_t  rc;

    ngx_shmtx_lock(&z->shpool->mutex);
    rc = ngx_rustdesk_relay_list_add_locked(z, &z->sh->lists[list], ip);
    ngx_shmtx_unlock(&z->shpool->mutex);

    return rc;
}


void
ngx_rustdesk_relay_list_remove(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_e list, ngx_str_t *ip)
{
    ngx_rustdesk_relay_ip_t    *e;
    ngx_rustdesk_relay_list_t  *l;

    l = &z->sh->lists[list];

    ngx_shmtx_lock(&z->shpool->mutex);

    e = ngx_rustdesk_relay_list_lookup(l, ip);

    if (e) {
        ngx_rbtree_delete(&l->tree, &e->sn.node);
        ngx_queue_remove(&e->queue);
        ngx_slab_free_locked(z->shpool, e);
        l->n--;
        z->sh->lists_version++;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);
}


void
ngx_rustdesk_relay_list_clear(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_e list)
{
    ngx_queue_t                *q;
    ngx_rustdesk_relay_ip_t    *e;
    ngx_rustdesk_relay_list_t  *l;

    l = &z->sh->lists[list];

    ngx_shmtx_lock(&z->shpool->mutex);

    while (!ngx_queue_empty(&l->queue)) {
        q = ngx_queue_head(&l->queue);
        e = ngx_queue_data(q, ngx_rustdesk_relay_ip_t, queue);

        ngx_rbtree_delete(&l->tree, &e->sn.node);
        ngx_queue_remove(&e->queue);
        ngx_slab_free_locked(z->shpool, e);
    }

    l->n = 0;
    z->sh->lists_version++;

    ngx_shmtx_unlock(&z->shpool->mutex);
}


u_char *
ngx_rustdesk_relay_list_text(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_e list, u_char *p, u_char *last)
{
    ngx_queue_t                *q;
    ngx_rustdesk_relay_ip_t    *e;
    ngx_rustdesk_relay_list_t  *l;

    l = &z->sh->lists[list];

    ngx_shmtx_lock(&z->shpool->mutex);

    for (q = ngx_queue_head(&l->queue);
         q != ngx_queue_sentinel(&l->queue);
         q = ngx_queue_next(q))
    {
        e = ngx_queue_data(q, ngx_rustdesk_relay_ip_t, queue);
        p = ngx_slprintf(p, last, "%V\n", &e->sn.str);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return p;
}


static ngx_rustdesk_relay_ip_t *
ngx_rustdesk_relay_list_lookup(ngx_rustdesk_relay_list_t *l, ngx_str_t *ip)
{
    return (ngx_rustdesk_relay_ip_t *)
               ngx_str_rbtree_lookup(&l->tree, ip,
                                     ngx_crc32_short(ip->data, ip->len));
}


static ngx_int_t
ngx_rustdesk_relay_list_add_locked(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_t *l, ngx_str_t *ip)
{
    ngx_rustdesk_relay_ip_t  *e;

    if (ip->len == 0 || ngx_rustdesk_relay_list_lookup(l, ip)) {
        return NGX_OK;
    }

    e = ngx_slab_alloc_locked(z->shpool,
                              offsetof(ngx_rustdesk_relay_ip_t, ip) + ip->len);
    if (e == NULL) {
        return NGX_ERROR;
    }

    e->sn.node.key = ngx_crc32_short(ip->data, ip->len);
    e->sn.str.len = ip->len;
    e->sn.str.data = e->ip;
    ngx_memcpy(e->ip, ip->data, ip->len);

    ngx_rbtree_insert(&l->tree, &e->sn.node);
    ngx_queue_insert_tail(&l->queue, &e->queue);
    l->n++;
    z->sh->lists_version++;

    return NGX_OK;
}


/*
 * blacklist.txt / blocklist.txt (PROTOCOL.md section 7): one IP per line,
 * anything after the first space ignored.  Read in the master at start and
 * at each reload, merged into what the console has made of the list.
 */

static void
ngx_rustdesk_relay_list_load(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_e list, ngx_log_t *log)
{
    u_char           *buf, *p, *end, *line, *sp;
    u_char            text[NGX_RUSTDESK_RELAY_IP_LEN];
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t         ip, *name;
    ngx_uint_t        count, failed, level;
    ngx_file_info_t   fi;

    name = &z->files[list];

    fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "rustdesk: cannot open %s \"%V\", it stays as it is",
                      ngx_rustdesk_relay_list_names[list], name);
        return;
    }

    buf = NULL;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || (buf = ngx_alloc(ngx_file_size(&fi) + 1, log)) == NULL)
    {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "rustdesk: cannot read %s \"%V\"",
                      ngx_rustdesk_relay_list_names[list], name);
        ngx_close_file(fd);
        return;
    }

    n = ngx_read_fd(fd, buf, ngx_file_size(&fi));
    ngx_close_file(fd);

    if (n == -1) {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "rustdesk: cannot read %s \"%V\"",
                      ngx_rustdesk_relay_list_names[list], name);
        ngx_free(buf);
        return;
    }

    count = 0;
    failed = 0;
    end = buf + n;

    ngx_shmtx_lock(&z->shpool->mutex);

    for (line = buf; line < end; line = p + 1) {
        p = ngx_strlchr(line, end, '\n');
        if (p == NULL) {
            p = end;
        }

        while (line < p && (*line == ' ' || *line == '\t')) {
            line++;
        }

        for (sp = line; sp < p; sp++) {
            if (*sp == ' ' || *sp == '\t' || *sp == '\r') {
                break;
            }
        }

        if (sp == line || *line == '#') {
            continue;
        }

        if ((size_t) (sp - line) >= NGX_RUSTDESK_RELAY_IP_LEN) {
            failed++;
            continue;
        }

        ip.data = text;
        ip.len = ngx_rustdesk_relay_ip_text(line, sp - line, text);

        if (ngx_rustdesk_relay_list_add_locked(z, &z->sh->lists[list], &ip)
            != NGX_OK)
        {
            failed++;
            continue;
        }

        count++;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    ngx_free(buf);

    level = failed ? NGX_LOG_WARN : NGX_LOG_NOTICE;

    ngx_log_error(level, log, 0, "rustdesk: #%s(%V): %ui%s",
                  ngx_rustdesk_relay_list_names[list], name, count,
                  failed ? ", some lines were not valid or did not fit" : "");
}


size_t
ngx_rustdesk_relay_ip_text(u_char *in, size_t len, u_char *out)
{
#if (NGX_HAVE_INET6)
    u_char           a6[16];
#endif
    in_addr_t        a4;
    struct in_addr   in4;

    a4 = ngx_inet_addr(in, len);

    if (a4 != INADDR_NONE) {
        in4.s_addr = a4;
        return ngx_inet_ntop(AF_INET, &in4, out, NGX_RUSTDESK_RELAY_IP_LEN);
    }

#if (NGX_HAVE_INET6)
    if (ngx_inet6_addr(in, len, a6) == NGX_OK) {
        if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *) a6)) {
            return ngx_inet_ntop(AF_INET, &a6[12], out,
                                 NGX_RUSTDESK_RELAY_IP_LEN);
        }

        return ngx_inet6_ntop(a6, out, NGX_RUSTDESK_RELAY_IP_LEN);
    }
#endif

    len = ngx_min(len, NGX_RUSTDESK_RELAY_IP_LEN);
    ngx_memcpy(out, in, len);

    return len;
}


size_t
ngx_rustdesk_relay_sockaddr_ip(struct sockaddr *sa, u_char *out)
{
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;

    if (sa->sa_family == AF_INET6) {
        sin6 = (struct sockaddr_in6 *) sa;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            return ngx_inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], out,
                                 NGX_RUSTDESK_RELAY_IP_LEN);
        }

        return ngx_inet6_ntop(sin6->sin6_addr.s6_addr, out,
                              NGX_RUSTDESK_RELAY_IP_LEN);
    }
#endif

    if (sa->sa_family == AF_INET) {
        return ngx_inet_ntop(AF_INET, &((struct sockaddr_in *) sa)->sin_addr,
                             out, NGX_RUSTDESK_RELAY_IP_LEN);
    }

    return ngx_sock_ntop(sa, sizeof(ngx_sockaddr_t), out,
                         NGX_RUSTDESK_RELAY_IP_LEN, 0);
}


ngx_rustdesk_relay_limits_t *
ngx_rustdesk_relay_limits(ngx_rustdesk_relay_zone_t *z)
{
    ngx_atomic_uint_t  version;

    version = z->sh->limits_version;

    if (version != ngx_rustdesk_relay_limits_version
        || !ngx_rustdesk_relay_limits_known)
    {
        ngx_shmtx_lock(&z->shpool->mutex);
        ngx_rustdesk_relay_limits_copy = z->sh->limits;
        ngx_rustdesk_relay_limits_version = z->sh->limits_version;
        ngx_shmtx_unlock(&z->shpool->mutex);

        ngx_rustdesk_relay_limits_known = 1;
    }

    return &ngx_rustdesk_relay_limits_copy;
}


void
ngx_rustdesk_relay_limits_update(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_limits_t *limits)
{
    ngx_shmtx_lock(&z->shpool->mutex);
    z->sh->limits = *limits;
    (void) ngx_atomic_fetch_add(&z->sh->limits_version, 1);
    ngx_shmtx_unlock(&z->shpool->mutex);
}


/*
 * The total bucket: a worker spends a share of it, taken under the mutex
 * (a hundredth of a second of the total rate at most), so that the mutex
 * is taken once per share, not twice per read.
 */

size_t
ngx_rustdesk_relay_total_allow(ngx_rustdesk_relay_zone_t *z, ngx_msec_t now,
    ngx_msec_t *delay)
{
    int64_t                       rate, burst, share, take;
    ngx_msec_int_t                elapsed;
    ngx_rustdesk_relay_sh_t      *sh;
    ngx_rustdesk_relay_limits_t  *limits;

    limits = ngx_rustdesk_relay_limits(z);

    if (limits->total == 0) {
        ngx_rustdesk_relay_total_share = 0;
        return SIZE_MAX;
    }

    if (ngx_rustdesk_relay_total_share >= 1000) {
        return (size_t) (ngx_rustdesk_relay_total_share / 1000);
    }

    sh = z->sh;

    /* as the pairs' buckets: in thousandths of a byte */

    rate = ngx_max(limits->total / 8, 1000);          /* bytes per second */
    burst = ngx_max(rate / NGX_RUSTDESK_RELAY_BURST, 16384) * 1000;
    share = ngx_max(rate / 100, 16384) * 1000;

    ngx_shmtx_lock(&z->shpool->mutex);

    elapsed = (ngx_msec_int_t) (now - sh->total_last);

    if (elapsed > 0) {
        sh->total_tokens += rate * ngx_min(elapsed, 1000);
        sh->total_last = now;
    }

    if (sh->total_tokens > burst) {
        sh->total_tokens = burst;
    }

    take = ngx_min(sh->total_tokens, share);

    if (take > 0) {
        sh->total_tokens -= take;
        ngx_rustdesk_relay_total_share += take;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    if (ngx_rustdesk_relay_total_share >= 1000) {
        return (size_t) (ngx_rustdesk_relay_total_share / 1000);
    }

    *delay = (ngx_msec_t) ((1000 - ngx_rustdesk_relay_total_share) / rate) + 1;

    return 0;
}


void
ngx_rustdesk_relay_total_consume(ngx_rustdesk_relay_zone_t *z, size_t n)
{
    if (ngx_rustdesk_relay_limits(z)->total == 0) {
        return;
    }

    /* this worker's share, never more than it was given */
    ngx_rustdesk_relay_total_share -= (int64_t) n * 1000;
}


ngx_rustdesk_relay_usage_t *
ngx_rustdesk_relay_usage_add(ngx_rustdesk_relay_zone_t *z, u_char *addr,
    size_t len)
{
    ngx_rustdesk_relay_usage_t  *u;

    ngx_shmtx_lock(&z->shpool->mutex);

    u = ngx_slab_calloc_locked(z->shpool, sizeof(ngx_rustdesk_relay_usage_t));

    if (u) {
        u->pid = ngx_pid;
        u->updated = ngx_current_msec;
        u->len = (u_short) ngx_min(len, NGX_RUSTDESK_RELAY_ADDR_LEN);
        ngx_memcpy(u->addr, addr, u->len);
        ngx_queue_insert_tail(&z->sh->usage, &u->queue);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    return u;
}


void
ngx_rustdesk_relay_usage_update(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_usage_t *u, ngx_msec_t now, uint64_t elapsed,
    uint64_t total, uint64_t highest, uint64_t speed)
{
    ngx_shmtx_lock(&z->shpool->mutex);

    u->updated = now;
    u->elapsed = elapsed;
    u->total = total;
    u->highest = highest;
    u->speed = speed;

    ngx_shmtx_unlock(&z->shpool->mutex);
}


void
ngx_rustdesk_relay_usage_free(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_usage_t *u)
{
    ngx_shmtx_lock(&z->shpool->mutex);
    ngx_queue_remove(&u->queue);
    ngx_slab_free_locked(z->shpool, u);
    ngx_shmtx_unlock(&z->shpool->mutex);
}


/*
 * hbbr's "usage": "<ip:port>: <elapsed>s <MB>MB <highest>kb/s
 * <average>kb/s <current>kb/s", the biggest total first; entries of a
 * worker that died (not updated for a few seconds, no such process) are
 * dropped here.
 */

u_char *
ngx_rustdesk_relay_usage_text(ngx_rustdesk_relay_zone_t *z, ngx_pool_t *pool,
    ngx_msec_t now, u_char *p, u_char *last)
{
    ngx_uint_t                   i, n;
    ngx_queue_t                 *q, *next;
    ngx_rustdesk_relay_usage_t  *u, *all;

    ngx_shmtx_lock(&z->shpool->mutex);

    n = 0;

    for (q = ngx_queue_head(&z->sh->usage);
         q != ngx_queue_sentinel(&z->sh->usage);
         q = next)
    {
        next = ngx_queue_next(q);
        u = ngx_queue_data(q, ngx_rustdesk_relay_usage_t, queue);

        if ((ngx_msec_int_t) (now - u->updated)
                > NGX_RUSTDESK_RELAY_USAGE_STALE
            && kill(u->pid, 0) == -1 && ngx_errno == ESRCH)
        {
            ngx_queue_remove(q);
            ngx_slab_free_locked(z->shpool, u);
            continue;
        }

        n++;
    }

    all = (n == 0) ? NULL
                   : ngx_palloc(pool, n * sizeof(ngx_rustdesk_relay_usage_t));

    if (all == NULL) {
        ngx_shmtx_unlock(&z->shpool->mutex);
        return p;
    }

    i = 0;

    for (q = ngx_queue_head(&z->sh->usage);
         q != ngx_queue_sentinel(&z->sh->usage) && i < n;
         q = ngx_queue_next(q))
    {
        all[i++] = *ngx_queue_data(q, ngx_rustdesk_relay_usage_t, queue);
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    ngx_qsort(all, n, sizeof(ngx_rustdesk_relay_usage_t),
              ngx_rustdesk_relay_usage_cmp);

    for (i = 0; i < n; i++) {
        u = &all[i];

        if (u->elapsed == 0) {
            continue;
        }

        p = ngx_slprintf(p, last, "%*s: %uLs %.2fMB %uLkb/s %uLkb/s %uLkb/s\n",
                         (size_t) u->len, u->addr, u->elapsed / 1000,
                         (double) u->total / 1024 / 1024 / 8, u->highest,
                         u->total / u->elapsed, u->speed);
    }

    return p;
}


static int ngx_libc_cdecl
ngx_rustdesk_relay_usage_cmp(const void *one, const void *two)
{
    const ngx_rustdesk_relay_usage_t  *a = one, *b = two;

    if (a->total == b->total) {
        return 0;
    }

    return (a->total < b->total) ? 1 : -1;
}
