/*
 * Counters and gauges in a zone, one slot per worker process.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_rustdesk_stats.h"


#define NGX_RUSTDESK_STATS_HEAD        64       /* then the slots, aligned */
#define NGX_RUSTDESK_STATS_LINE        64

#define NGX_RUSTDESK_STATS_SHARED      ((ngx_atomic_uint_t) -1)


static ngx_atomic_t *ngx_rustdesk_stats_slot(ngx_rustdesk_stats_t *st,
    ngx_uint_t i);
static ngx_uint_t ngx_rustdesk_stats_alive(ngx_atomic_uint_t pid);
static void ngx_rustdesk_stats_zero_gauges(ngx_rustdesk_stats_t *st,
    ngx_atomic_t *slot, const ngx_rustdesk_stat_t *stats);


ngx_rustdesk_stats_t *
ngx_rustdesk_stats_alloc(ngx_slab_pool_t *shpool, ngx_uint_t nvalues,
    ngx_uint_t nslots)
{
    size_t                 stride;
    ngx_atomic_t          *slot;
    ngx_rustdesk_stats_t  *st;

    stride = ngx_align((nvalues + 1) * sizeof(ngx_atomic_t),
                       NGX_RUSTDESK_STATS_LINE);

    /* the slab aligns a chunk this large on its size, at least a line */

    st = ngx_slab_calloc(shpool, NGX_RUSTDESK_STATS_HEAD + nslots * stride);
    if (st == NULL) {
        return NULL;
    }

    st->nslots = nslots;
    st->nvalues = nvalues;
    st->stride = stride;

    /* slot 0 is everybody's, for processes that find no slot of their own */

    slot = ngx_rustdesk_stats_slot(st, 0);
    slot[0] = NGX_RUSTDESK_STATS_SHARED;

    return st;
}


ngx_uint_t
ngx_rustdesk_stats_slots(ngx_cycle_t *cycle)
{
    ngx_int_t         n;
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    n = (ccf && ccf->worker_processes > 0) ? ccf->worker_processes : 1;

    /* this generation, the one a reload replaces, the shared slot */
    return 2 * n + 2;
}


ngx_atomic_t *
ngx_rustdesk_stats_claim(ngx_rustdesk_stats_t *st,
    const ngx_rustdesk_stat_t *stats)
{
    ngx_uint_t          i;
    ngx_atomic_t       *slot;
    ngx_atomic_uint_t   pid;

    for (i = 1; i < st->nslots; i++) {
        slot = ngx_rustdesk_stats_slot(st, i);
        pid = slot[0];

        if (pid == (ngx_atomic_uint_t) ngx_pid
            || (pid == 0 && ngx_atomic_cmp_set(&slot[0], 0, ngx_pid)))
        {
            goto found;
        }
    }

    for (i = 1; i < st->nslots; i++) {
        slot = ngx_rustdesk_stats_slot(st, i);
        pid = slot[0];

        if (pid != 0 && !ngx_rustdesk_stats_alive(pid)
            && ngx_atomic_cmp_set(&slot[0], pid, ngx_pid))
        {
            goto found;
        }
    }

    return ngx_rustdesk_stats_slot(st, 0) + 1;

found:

    /* the counters go on from where the slot's last owner left them */
    ngx_rustdesk_stats_zero_gauges(st, slot, stats);

    return slot + 1;
}


void
ngx_rustdesk_stats_release(ngx_rustdesk_stats_t *st, ngx_atomic_t *values,
    const ngx_rustdesk_stat_t *stats)
{
    ngx_atomic_t  *slot;

    slot = values - 1;

    if (slot[0] != (ngx_atomic_uint_t) ngx_pid) {
        /* the shared slot: the others' gauges are in it too */
        return;
    }

    ngx_rustdesk_stats_zero_gauges(st, slot, stats);

    ngx_memory_barrier();
    slot[0] = 0;
}


void
ngx_rustdesk_stats_sum(ngx_rustdesk_stats_t *st,
    const ngx_rustdesk_stat_t *stats, int64_t *sum)
{
    ngx_uint_t          i, j, live;
    ngx_atomic_t       *slot;
    ngx_atomic_uint_t   pid;

    for (i = 0; i < st->nslots; i++) {
        slot = ngx_rustdesk_stats_slot(st, i);
        pid = slot[0];

        /* a dead process's gauges are not there any more: what it held */
        live = (pid == NGX_RUSTDESK_STATS_SHARED
                || (pid != 0 && ngx_rustdesk_stats_alive(pid)));

        for (j = 0; j < st->nvalues; j++) {
            if (stats[j].metric->type == NGX_RUSTDESK_GAUGE && !live) {
                continue;
            }

            /* modulo 2^64: a gauge's decrements are added as they are */
            sum[j] = (int64_t) ((uint64_t) sum[j] + (uint64_t) slot[1 + j]);
        }
    }
}


static ngx_atomic_t *
ngx_rustdesk_stats_slot(ngx_rustdesk_stats_t *st, ngx_uint_t i)
{
    return (ngx_atomic_t *) ((u_char *) st + NGX_RUSTDESK_STATS_HEAD
                             + i * st->stride);
}


static ngx_uint_t
ngx_rustdesk_stats_alive(ngx_atomic_uint_t pid)
{
    if (pid == NGX_RUSTDESK_STATS_SHARED) {
        return 1;
    }

    return kill((ngx_pid_t) pid, 0) == 0 || ngx_errno == NGX_EPERM;
}


static void
ngx_rustdesk_stats_zero_gauges(ngx_rustdesk_stats_t *st, ngx_atomic_t *slot,
    const ngx_rustdesk_stat_t *stats)
{
    ngx_uint_t  j;

    for (j = 0; j < st->nvalues; j++) {
        if (stats[j].metric->type == NGX_RUSTDESK_GAUGE) {
            slot[1 + j] = 0;
        }
    }
}
