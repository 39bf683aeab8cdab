/*
 * Counters and gauges in a module's shared zone, one slot per worker
 * process (common/ngx_rustdesk_metrics.h says what they are for): a worker
 * claims a free slot, or the slot of a process that died, when it starts,
 * and adds to its own cache lines only, with atomic adds, so counting
 * never contends between workers; a reader sums the slots.  Gauges (what a
 * worker holds now) are summed over live processes only.
 */

#ifndef _NGX_RUSTDESK_STATS_H_INCLUDED_
#define _NGX_RUSTDESK_STATS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_RUSTDESK_COUNTER   0
#define NGX_RUSTDESK_GAUGE     1


/* One metric family: name, type (NGX_RUSTDESK_COUNTER, _GAUGE) and help. */
typedef struct {
    const char                    *name;
    ngx_uint_t                     type;
    const char                    *help;
} ngx_rustdesk_metric_t;


/*
 * A value kept in the slots: its family and its labels (as they go
 * between the braces, "" for none).  A module's table of these, indexed
 * by its own enum, says what each of its slot values is.
 */
typedef struct {
    const ngx_rustdesk_metric_t   *metric;
    const char                    *labels;
} ngx_rustdesk_stat_t;


/* The slots, in a zone: a header, then nslots slots of stride bytes. */
typedef struct {
    ngx_uint_t                     nslots;
    ngx_uint_t                     nvalues;
    size_t                         stride;
} ngx_rustdesk_stats_t;


/*
 * The slots, allocated in a zone (ngx_slab_calloc: the pool's lock is
 * taken) for nvalues values in each of nslots slots; NULL: no room.
 */
ngx_rustdesk_stats_t *ngx_rustdesk_stats_alloc(ngx_slab_pool_t *shpool,
    ngx_uint_t nvalues, ngx_uint_t nslots);

/* Slots for the configured workers, an old generation's during a reload. */
ngx_uint_t ngx_rustdesk_stats_slots(ngx_cycle_t *cycle);

/*
 * In init_process: this process's values (a free slot, or a dead
 * process's with its gauges zeroed; one slot shared by all when every
 * other is taken).  In exit_process: let go, its gauges zeroed.
 */
ngx_atomic_t *ngx_rustdesk_stats_claim(ngx_rustdesk_stats_t *st,
    const ngx_rustdesk_stat_t *stats);
void ngx_rustdesk_stats_release(ngx_rustdesk_stats_t *st,
    ngx_atomic_t *values, const ngx_rustdesk_stat_t *stats);


/* values: this process's (NULL: nothing is counted). */
#define ngx_rustdesk_stat_add(values, i, n)                                  \
    do {                                                                     \
        if (values) {                                                        \
            (void) ngx_atomic_fetch_add(&(values)[i],                        \
                                        (ngx_atomic_int_t) (n));             \
        }                                                                    \
    } while (0)


/*
 * The sums over the slots, sum[i] for value i (int64_t each): gauges of
 * live processes only.
 */
void ngx_rustdesk_stats_sum(ngx_rustdesk_stats_t *st,
    const ngx_rustdesk_stat_t *stats, int64_t *sum);


#endif /* _NGX_RUSTDESK_STATS_H_INCLUDED_ */
