/*
 * Metrics and health (DESIGN.md "Observability is nginx's"): a listener
 * role, "rustdesk_metrics", that answers GET /metrics in the Prometheus
 * text exposition format (0.0.4) and GET /health, and the counters both
 * modules keep for it in their shared zones.
 *
 * Both modules declare the directive; nginx gives it to the first loaded
 * module that declares it (ngx_conf_handler), whose copy of this file then
 * serves the listener.  The figures come from sources: each module that
 * serves something registers one, in its postconfiguration, in the
 * configuration both modules share (ngx_rustdesk_stream_conf_t), with a
 * function that adds its samples and one that checks its health.  A module
 * that is not loaded registers nothing, so one endpoint shows whatever is
 * loaded and used, and nothing here names either module.  (Variables,
 * one per module rendering its text, would do the same through nginx's
 * variable table; a source is a function pointer in a structure both
 * modules' copies of this header lay out alike, which spares a module
 * looking up the other's variables by name, and lets /health wait for a
 * check that runs in a thread.)
 *
 * Counters live in the module's zone, in one slot per process
 * (ngx_rustdesk_stats.c: a worker claims a free slot, or the slot of a
 * dead process, in init_process): a worker adds to its own cache lines
 * only, so counting costs an atomic add and never contends, and a scrape
 * sums the slots.  They survive a reload with the zone.  Gauges kept
 * the same way (what a worker holds now: pairs, waiting connections,
 * streams) are summed over live processes only: a worker that died takes
 * its share with it.  Figures the zone knows anyway (peers, pages) are
 * read from it when scraped.  Without a listener nothing is counted.
 */

#ifndef _NGX_RUSTDESK_METRICS_H_INCLUDED_
#define _NGX_RUSTDESK_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_conf.h"
#include "ngx_rustdesk_stats.h"


typedef struct ngx_rustdesk_metrics_s  ngx_rustdesk_metrics_t;
typedef struct ngx_rustdesk_health_s   ngx_rustdesk_health_t;

/* A source's samples: NGX_OK, or NGX_ERROR (no memory). */
typedef ngx_int_t (*ngx_rustdesk_metrics_pt)(ngx_rustdesk_metrics_t *m,
    void *data);

/*
 * A source's health: what is wrong goes to ngx_rustdesk_health_fail().  A
 * check that must wait (the database, in a thread) calls
 * ngx_rustdesk_health_wait() first and ngx_rustdesk_health_done() when it
 * is over, and takes what it needs from h->pool, which lives until then.
 */
typedef void (*ngx_rustdesk_health_pt)(ngx_rustdesk_health_t *h, void *data);


typedef struct {
    ngx_rustdesk_metrics_pt        metrics;
    ngx_rustdesk_health_pt         health;
    void                          *data;
} ngx_rustdesk_metrics_source_t;


/* A listener: a server block with "rustdesk_metrics". */
typedef struct {
    ngx_stream_core_srv_conf_t    *cscf;
    ngx_msec_t                     timeout;
    ngx_uint_t                     remote;   /* not only loopback clients */
} ngx_rustdesk_metrics_srv_t;


/* The shared configuration's part (ngx_rustdesk_stream_conf_t.metrics). */
struct ngx_rustdesk_metrics_conf_s {
    ngx_array_t                    servers;  /* ngx_rustdesk_metrics_srv_t */
    ngx_array_t                    sources;  /* of sources (below) */
};


/*
 * What a module puts in its command table's "post" for the directive: its
 * content handler, which calls ngx_rustdesk_metrics_handler() with the
 * shared configuration from its main conf.
 */
typedef struct {
    ngx_stream_content_handler_pt  handler;
} ngx_rustdesk_metrics_role_t;


struct ngx_rustdesk_metrics_s {
    ngx_pool_t                    *pool;
    ngx_array_t                    samples;
};


struct ngx_rustdesk_health_s {
    ngx_pool_t                    *pool;     /* its own */
    ngx_log_t                     *log;
    ngx_buf_t                     *reasons;  /* a line each */
    ngx_uint_t                     pending;  /* checks that wait */
    ngx_uint_t                     refs;
    void                         (*done)(ngx_rustdesk_health_t *h);
    void                          *data;     /* the request; NULL: gone */
};


/* rustdesk_metrics [remote] [timeout=time]; the role in cmd->post. */
char *ngx_rustdesk_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* 1: a listener is configured; the modules keep their counters then. */
ngx_uint_t ngx_rustdesk_metrics_enabled(ngx_rustdesk_stream_conf_t *sc);

/* A module's source, added in its postconfiguration. */
ngx_rustdesk_metrics_source_t *ngx_rustdesk_metrics_add_source(ngx_conf_t *cf,
    ngx_rustdesk_stream_conf_t *sc);

/* The listener's content handler, called by the module's. */
void ngx_rustdesk_metrics_handler(ngx_stream_session_t *s,
    ngx_rustdesk_stream_conf_t *sc);


/* A sample: labels as they go between the braces ("" for none), copied. */
ngx_int_t ngx_rustdesk_metrics_add(ngx_rustdesk_metrics_t *m,
    const ngx_rustdesk_metric_t *metric, const char *labels, size_t len,
    int64_t value);

/* key="value", the value escaped, for labels made at run time. */
u_char *ngx_rustdesk_metrics_label(u_char *p, u_char *last, const char *key,
    ngx_str_t *value);

/* Every slot value as a sample, described by stats[i] for value i. */
ngx_int_t ngx_rustdesk_metrics_add_stats(ngx_rustdesk_metrics_t *m,
    ngx_rustdesk_stats_t *st, const ngx_rustdesk_stat_t *stats);

/* A zone's size and the bytes of its pages in use, labelled. */
ngx_int_t ngx_rustdesk_metrics_add_zone(ngx_rustdesk_metrics_t *m,
    ngx_shm_zone_t *shm_zone, const char *module);


void ngx_rustdesk_health_fail(ngx_rustdesk_health_t *h, const char *fmt, ...);
void ngx_rustdesk_health_wait(ngx_rustdesk_health_t *h);
void ngx_rustdesk_health_done(ngx_rustdesk_health_t *h);


#endif /* _NGX_RUSTDESK_METRICS_H_INCLUDED_ */
