/*
 * The metrics listener: a small HTTP/1.x server on a stream connection,
 * enough for Prometheus and for nginx's http proxy_pass in front of it.
 * One request per connection: the request line and headers (4 KiB at
 * most, within the timeout), GET or HEAD of /metrics or /health, an answer
 * with Content-Length and "Connection: close", then the connection closes
 * (after reading what the client still sends, for a while, so that an
 * unread request body does not turn the close into a reset).  And the
 * exposition of what the sources add.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_conf.h"
#include "ngx_rustdesk_console.h"
#include "ngx_rustdesk_keys.h"
#include "ngx_rustdesk_metrics.h"


#define NGX_RUSTDESK_METRICS_REQUEST   4096     /* request line and headers */
#define NGX_RUSTDESK_METRICS_TIMEOUT   5000
#define NGX_RUSTDESK_METRICS_LINGER    2000     /* ms, after answering */
#define NGX_RUSTDESK_METRICS_REASONS   4096

#define NGX_RUSTDESK_METRICS_TYPE                                            \
    "text/plain; version=0.0.4; charset=utf-8"


typedef enum {
    NGX_RUSTDESK_METRICS_READ = 0,
    NGX_RUSTDESK_METRICS_HEALTH,         /* a check waits */
    NGX_RUSTDESK_METRICS_WRITE,
    NGX_RUSTDESK_METRICS_LINGERING
} ngx_rustdesk_metrics_state_e;


/* the connection's data: the listener owns it */
typedef struct {
    ngx_stream_session_t           *session;
    ngx_rustdesk_stream_conf_t     *sc;
    ngx_rustdesk_metrics_srv_t     *srv;
    ngx_buf_t                      *in;
    ngx_buf_t                      *out;
    ngx_rustdesk_health_t          *health;
    ngx_str_t                       line;      /* the request line */
    ngx_uint_t                      state;
    ngx_uint_t                      status;    /* the session's, at the end */
    ngx_uint_t                      head;      /* HEAD: no body */
    ngx_msec_t                      linger;    /* until then */
} ngx_rustdesk_metrics_ctx_t;


typedef struct {
    const ngx_rustdesk_metric_t    *metric;
    ngx_str_t                       labels;
    int64_t                         value;
    ngx_uint_t                      done;
} ngx_rustdesk_metrics_sample_t;


static ngx_rustdesk_metrics_srv_t *ngx_rustdesk_metrics_srv(
    ngx_stream_session_t *s, ngx_rustdesk_stream_conf_t *sc);
static void ngx_rustdesk_metrics_read(ngx_event_t *rev);
static ngx_int_t ngx_rustdesk_metrics_parse(ngx_rustdesk_metrics_ctx_t *ctx);
static ngx_int_t ngx_rustdesk_metrics_request_line(
    ngx_rustdesk_metrics_ctx_t *ctx, u_char *p, u_char *last);
static ngx_int_t ngx_rustdesk_metrics_header(u_char *p, u_char *last);
static void ngx_rustdesk_metrics_route(ngx_rustdesk_metrics_ctx_t *ctx);
static void ngx_rustdesk_metrics_scrape(ngx_rustdesk_metrics_ctx_t *ctx);
static ngx_buf_t *ngx_rustdesk_metrics_text(ngx_rustdesk_metrics_t *m);
static void ngx_rustdesk_metrics_health(ngx_rustdesk_metrics_ctx_t *ctx);
static void ngx_rustdesk_metrics_health_keys(ngx_rustdesk_health_t *h,
    ngx_rustdesk_stream_conf_t *sc);
static void ngx_rustdesk_metrics_health_answer(ngx_rustdesk_health_t *h);
static void ngx_rustdesk_metrics_health_answer_to(
    ngx_rustdesk_metrics_ctx_t *ctx, ngx_rustdesk_health_t *h);
static void ngx_rustdesk_metrics_health_late(ngx_rustdesk_metrics_ctx_t *ctx);
static void ngx_rustdesk_metrics_health_unref(ngx_rustdesk_health_t *h);
static void ngx_rustdesk_metrics_cleanup(void *data);
static void ngx_rustdesk_metrics_answer(ngx_rustdesk_metrics_ctx_t *ctx,
    ngx_uint_t status, const char *type, u_char *body, size_t len);
static void ngx_rustdesk_metrics_error(ngx_rustdesk_metrics_ctx_t *ctx,
    ngx_uint_t status);
static void ngx_rustdesk_metrics_write(ngx_event_t *wev);
static void ngx_rustdesk_metrics_close(ngx_rustdesk_metrics_ctx_t *ctx,
    ngx_uint_t rc);
static const char *ngx_rustdesk_metrics_reason(ngx_uint_t status);


/* rustdesk_metrics [remote] [timeout=time]; */

char *
ngx_rustdesk_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_rustdesk_stream_conf_t  *sc = ((ngx_rustdesk_main_conf_head_t *)
                                       conf)->shared;

    ngx_str_t                    *value, s;
    ngx_uint_t                    i;
    ngx_rustdesk_metrics_srv_t   *srv;
    ngx_rustdesk_metrics_role_t  *role;
    ngx_stream_core_srv_conf_t   *cscf;

    role = cmd->post;

    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);

    if (cscf->handler) {
        return "conflicts with another content handler in this server";
    }

    if (sc->metrics == NULL) {
        sc->metrics = ngx_pcalloc(cf->pool,
                                  sizeof(ngx_rustdesk_metrics_conf_t));
        if (sc->metrics == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ngx_array_init(&sc->metrics->servers, cf->pool, 1,
                           sizeof(ngx_rustdesk_metrics_srv_t))
            != NGX_OK
            || ngx_array_init(&sc->metrics->sources, cf->pool, 2,
                              sizeof(ngx_rustdesk_metrics_source_t))
               != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    srv = ngx_array_push(&sc->metrics->servers);
    if (srv == NULL) {
        return NGX_CONF_ERROR;
    }

    srv->cscf = cscf;
    srv->timeout = NGX_RUSTDESK_METRICS_TIMEOUT;
    srv->remote = 0;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "remote") == 0) {
            srv->remote = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            srv->timeout = ngx_parse_time(&s, 0);

            if (srv->timeout == (ngx_msec_t) NGX_ERROR || srv->timeout == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid timeout \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    cscf->handler = role->handler;

    return NGX_CONF_OK;
}


ngx_uint_t
ngx_rustdesk_metrics_enabled(ngx_rustdesk_stream_conf_t *sc)
{
    return sc->metrics != NULL && sc->metrics->servers.nelts > 0;
}


ngx_rustdesk_metrics_source_t *
ngx_rustdesk_metrics_add_source(ngx_conf_t *cf, ngx_rustdesk_stream_conf_t *sc)
{
    ngx_rustdesk_metrics_source_t  *src;

    src = ngx_array_push(&sc->metrics->sources);
    if (src == NULL) {
        return NULL;
    }

    ngx_memzero(src, sizeof(ngx_rustdesk_metrics_source_t));

    return src;
}


void
ngx_rustdesk_metrics_handler(ngx_stream_session_t *s,
    ngx_rustdesk_stream_conf_t *sc)
{
    ngx_connection_t            *c;
    ngx_pool_cleanup_t          *cln;
    ngx_rustdesk_metrics_ctx_t  *ctx;
    ngx_rustdesk_metrics_srv_t  *srv;

    c = s->connection;
    c->log->action = "serving metrics";

    srv = ngx_rustdesk_metrics_srv(s, sc);
    if (srv == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    if (c->type == SOCK_DGRAM) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: metrics are not served over UDP");
        ngx_stream_finalize_session(s, NGX_STREAM_BAD_REQUEST);
        return;
    }

    /*
     * loopback only, by the real address (proxy_protocol and realip count),
     * unless "remote": then nginx's allow and deny say who
     */

    if (!srv->remote && c->sockaddr->sa_family != AF_UNIX
        && !ngx_rustdesk_sockaddr_is_loopback(c->sockaddr))
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: metrics refused to a non-loopback client");
        ngx_stream_finalize_session(s, NGX_STREAM_FORBIDDEN);
        return;
    }

    ctx = ngx_pcalloc(c->pool, sizeof(ngx_rustdesk_metrics_ctx_t));
    if (ctx == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->in = ngx_create_temp_buf(c->pool, NGX_RUSTDESK_METRICS_REQUEST);
    cln = ngx_pool_cleanup_add(c->pool, 0);

    if (ctx->in == NULL || cln == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_rustdesk_metrics_cleanup;
    cln->data = ctx;

    ctx->session = s;
    ctx->sc = sc;
    ctx->srv = srv;

    c->data = ctx;
    c->read->handler = ngx_rustdesk_metrics_read;
    c->write->handler = ngx_rustdesk_metrics_write;

    /* the whole request within the timeout, however slowly it comes */
    ngx_add_timer(c->read, srv->timeout);

    ngx_rustdesk_metrics_read(c->read);
}


static ngx_rustdesk_metrics_srv_t *
ngx_rustdesk_metrics_srv(ngx_stream_session_t *s,
    ngx_rustdesk_stream_conf_t *sc)
{
    ngx_uint_t                   i;
    ngx_rustdesk_metrics_srv_t  *srv;
    ngx_stream_core_srv_conf_t  *cscf;

    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

    if (sc->metrics == NULL) {
        return NULL;
    }

    srv = sc->metrics->servers.elts;

    for (i = 0; i < sc->metrics->servers.nelts; i++) {
        if (srv[i].cscf == cscf) {
            return &srv[i];
        }
    }

    return NULL;
}


static void
ngx_rustdesk_metrics_read(ngx_event_t *rev)
{
    ssize_t                      n;
    ngx_int_t                    rc;
    ngx_buf_t                   *b;
    ngx_connection_t            *c;
    ngx_rustdesk_metrics_ctx_t  *ctx;

    c = rev->data;
    ctx = c->data;
    b = ctx->in;

    if (rev->timedout) {
        if (ctx->state == NGX_RUSTDESK_METRICS_HEALTH) {
            ngx_rustdesk_metrics_health_late(ctx);
            return;
        }

        if (ctx->state == NGX_RUSTDESK_METRICS_READ) {
            ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                          "rustdesk: metrics client timed out sending its "
                          "request (%uz bytes)", (size_t) (b->last - b->pos));
        }

        ngx_rustdesk_metrics_close(ctx, 0);
        return;
    }

    if (ctx->state == NGX_RUSTDESK_METRICS_LINGERING) {

        /* what the client still sends is read and dropped */

        for ( ;; ) {
            n = c->recv(c, b->start, b->end - b->start);

            if (n == NGX_AGAIN) {
                break;
            }

            if (n == NGX_ERROR || n == 0) {
                ngx_rustdesk_metrics_close(ctx, 0);
                return;
            }
        }

        if (ngx_handle_read_event(rev, 0) != NGX_OK) {
            ngx_rustdesk_metrics_close(ctx, 0);
        }

        return;
    }

    if (ctx->state != NGX_RUSTDESK_METRICS_READ) {
        return;
    }

    for ( ;; ) {
        if (b->last == b->end) {
            /* a request line this long, or the headers after it */

            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rustdesk: metrics request %s longer than %d bytes",
                          ctx->line.data ? "headers" : "line",
                          NGX_RUSTDESK_METRICS_REQUEST);
            ngx_rustdesk_metrics_error(ctx, ctx->line.data ? 431 : 414);
            return;
        }

        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            if (b->last > b->pos) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "rustdesk: metrics client closed the "
                              "connection in the middle of its request");
            }

            ngx_rustdesk_metrics_close(ctx, 0);
            return;
        }

        b->last += n;

        rc = ngx_rustdesk_metrics_parse(ctx);

        if (rc == NGX_OK) {
            ngx_rustdesk_metrics_route(ctx);
            return;
        }

        if (rc != NGX_AGAIN) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "rustdesk: invalid metrics request%s%*s%s",
                          ctx->line.data ? " \"" : "",
                          ngx_min(ctx->line.len, 128), ctx->line.data,
                          ctx->line.data ? "\"" : "");
            ngx_rustdesk_metrics_error(ctx, rc);
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_rustdesk_metrics_close(ctx, 0);
    }
}


/*
 * What has come so far: NGX_AGAIN (more to come), NGX_OK (the request is
 * whole and its line is in ctx->line), or the status of the error answer.
 * The buffer is small: it is looked through from the start each time.
 */

static ngx_int_t
ngx_rustdesk_metrics_parse(ngx_rustdesk_metrics_ctx_t *ctx)
{
    u_char     *p, *last, *eol;
    ngx_int_t   rc;

    p = ctx->in->pos;
    last = ctx->in->last;

    eol = ngx_strlchr(p, last, LF);

    if (eol) {
        ctx->line.data = p;
        ctx->line.len = eol - p;

        if (ctx->line.len && ctx->line.data[ctx->line.len - 1] == CR) {
            ctx->line.len--;
        }
    }

    rc = ngx_rustdesk_metrics_request_line(ctx, p, eol ? eol : last);

    if (rc != NGX_OK || eol == NULL) {
        /* garbage is told at once, not when the line or the timeout ends */
        return (rc == NGX_OK) ? NGX_AGAIN : rc;
    }

    /* headers: checked for form, otherwise not used */

    for (p = eol + 1; p < last; p = eol + 1) {
        eol = ngx_strlchr(p, last, LF);

        if (eol == NULL) {
            return ngx_rustdesk_metrics_header(p, last) == NGX_OK
                   ? NGX_AGAIN : 400;
        }

        if (eol == p || (eol == p + 1 && *p == CR)) {
            return NGX_OK;
        }

        if (ngx_rustdesk_metrics_header(p, eol) != NGX_OK) {
            return 400;
        }
    }

    return NGX_AGAIN;
}


/*
 * The request line, or as much of it as has come: METHOD SP target SP
 * HTTP/1.x.  NGX_OK when what is there is right so far.
 */

static ngx_int_t
ngx_rustdesk_metrics_request_line(ngx_rustdesk_metrics_ctx_t *ctx, u_char *p,
    u_char *last)
{
    u_char      ch, *start, *method;
    ngx_uint_t  i, whole;

    whole = (last < ctx->in->last);    /* its LF is there */

    if (whole && last > p && last[-1] == CR) {
        last--;
    }

    /* the method: capitals */

    for (method = p; p < last && *p != ' '; p++) {
        if ((*p < 'A' || *p > 'Z') && *p != '-' && *p != '_') {
            return 400;
        }

        if (p - method >= 32) {
            return 400;
        }
    }

    if (p == last) {
        return whole ? 400 : NGX_OK;
    }

    if (p == method) {
        return 400;
    }

    ctx->head = (p - method == 4 && ngx_strncmp(method, "HEAD", 4) == 0);

    /* the target: visible characters */

    start = ++p;

    while (p < last && *p != ' ') {
        if (*p <= 0x20 || *p >= 0x7f) {
            return 400;
        }

        p++;
    }

    if (p == last) {
        /* HTTP/0.9 has no version: not served */
        return whole ? 400 : NGX_OK;
    }

    if (p == start || *start != '/') {
        return 400;
    }

    /* the version: HTTP/1.0 or HTTP/1.1 */

    p++;

    for (i = 0; p < last; i++, p++) {
        ch = *p;

        if (i < 5) {
            if (ch != "HTTP/"[i]) {
                return 400;
            }

        } else if (i == 5 || i == 7) {
            if (ch < '0' || ch > '9') {
                return 400;
            }

        } else if (i == 6) {
            if (ch != '.') {
                return 400;
            }

        } else {
            return 400;
        }
    }

    if (!whole) {
        return NGX_OK;
    }

    if (i != 8) {
        return 400;
    }

    if (last[-3] != '1') {
        return 505;
    }

    return NGX_OK;
}


/* A header line (or its start): name ":" value, no control characters. */

static ngx_int_t
ngx_rustdesk_metrics_header(u_char *p, u_char *last)
{
    u_char  *start;

    if (last > p && last[-1] == CR) {
        last--;
    }

    for (start = p; p < last && *p != ':'; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            /* a space, a folded line, a control character */
            return NGX_ERROR;
        }
    }

    if (p < last && p == start) {
        return NGX_ERROR;
    }

    for ( /* void */ ; p < last; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_rustdesk_metrics_route(ngx_rustdesk_metrics_ctx_t *ctx)
{
    u_char            *p, *last, *path;
    size_t             len;
    ngx_connection_t  *c;

    c = ctx->session->connection;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    p = ctx->line.data;
    last = p + ctx->line.len;

    if (!(ctx->head
          || (ctx->line.len > 4 && ngx_strncmp(p, "GET ", 4) == 0)))
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: metrics request \"%*s\" is not GET or HEAD",
                      ngx_min(ctx->line.len, 128), ctx->line.data);
        ngx_rustdesk_metrics_error(ctx, 405);
        return;
    }

    /* the path, without the query */

    path = ngx_strlchr(p, last, ' ') + 1;

    for (p = path; *p != ' ' && *p != '?'; p++) { /* void */ }

    len = p - path;

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "rustdesk: metrics request \"%*s\"", len, path);

    if (len == 8 && ngx_strncmp(path, "/metrics", 8) == 0) {
        ngx_rustdesk_metrics_scrape(ctx);
        return;
    }

    if (len == 7 && ngx_strncmp(path, "/health", 7) == 0) {
        ngx_rustdesk_metrics_health(ctx);
        return;
    }

    ngx_rustdesk_metrics_error(ctx, 404);
}


static void
ngx_rustdesk_metrics_scrape(ngx_rustdesk_metrics_ctx_t *ctx)
{
    ngx_buf_t                      *b;
    ngx_uint_t                      i;
    ngx_connection_t               *c;
    ngx_rustdesk_metrics_t          m;
    ngx_rustdesk_metrics_source_t  *src;

    c = ctx->session->connection;

    m.pool = c->pool;

    if (ngx_array_init(&m.samples, c->pool, 64,
                       sizeof(ngx_rustdesk_metrics_sample_t))
        != NGX_OK)
    {
        ngx_rustdesk_metrics_error(ctx, 500);
        return;
    }

    src = ctx->sc->metrics->sources.elts;

    for (i = 0; i < ctx->sc->metrics->sources.nelts; i++) {
        if (src[i].metrics(&m, src[i].data) != NGX_OK) {
            ngx_rustdesk_metrics_error(ctx, 500);
            return;
        }
    }

    b = ngx_rustdesk_metrics_text(&m);
    if (b == NULL) {
        ngx_rustdesk_metrics_error(ctx, 500);
        return;
    }

    ngx_rustdesk_metrics_answer(ctx, 200, NGX_RUSTDESK_METRICS_TYPE, b->pos,
                                b->last - b->pos);
}


ngx_int_t
ngx_rustdesk_metrics_add(ngx_rustdesk_metrics_t *m,
    const ngx_rustdesk_metric_t *metric, const char *labels, size_t len,
    int64_t value)
{
    ngx_rustdesk_metrics_sample_t  *s;

    s = ngx_array_push(&m->samples);
    if (s == NULL) {
        return NGX_ERROR;
    }

    s->metric = metric;
    s->value = value;
    s->done = 0;
    s->labels.len = len;
    s->labels.data = NULL;

    if (len) {
        s->labels.data = ngx_pnalloc(m->pool, len);
        if (s->labels.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(s->labels.data, labels, len);
    }

    return NGX_OK;
}


u_char *
ngx_rustdesk_metrics_label(u_char *p, u_char *last, const char *key,
    ngx_str_t *value)
{
    u_char      ch;
    ngx_uint_t  i;

    p = ngx_slprintf(p, last, "%s=\"", key);

    for (i = 0; i < value->len && p + 2 < last; i++) {
        ch = value->data[i];

        if (ch == '\\' || ch == '"') {
            *p++ = '\\';
            *p++ = ch;

        } else if (ch == LF) {
            *p++ = '\\';
            *p++ = 'n';

        } else {
            *p++ = ch;
        }
    }

    return ngx_slprintf(p, last, "\"");
}


/*
 * The exposition: each family's HELP and TYPE once, then all of its
 * samples (families shared by the modules, such as the zones', come from
 * several sources and are brought together here).
 */

static ngx_buf_t *
ngx_rustdesk_metrics_text(ngx_rustdesk_metrics_t *m)
{
    size_t                          size;
    ngx_buf_t                      *b;
    ngx_uint_t                      i, j;
    const ngx_rustdesk_metric_t    *f;
    ngx_rustdesk_metrics_sample_t  *s;

    s = m->samples.elts;
    size = 1;

    for (i = 0; i < m->samples.nelts; i++) {
        f = s[i].metric;

        size += sizeof("# HELP  \n# TYPE  counter\n") - 1
                + 2 * ngx_strlen(f->name) + ngx_strlen(f->help)
                + ngx_strlen(f->name) + sizeof("{} \n") - 1 + s[i].labels.len
                + NGX_INT64_LEN;
    }

    b = ngx_create_temp_buf(m->pool, size);
    if (b == NULL) {
        return NULL;
    }

    for (i = 0; i < m->samples.nelts; i++) {
        if (s[i].done) {
            continue;
        }

        f = s[i].metric;

        b->last = ngx_sprintf(b->last, "# HELP %s %s\n# TYPE %s %s\n",
                              f->name, f->help, f->name,
                              f->type == NGX_RUSTDESK_GAUGE ? "gauge"
                                                            : "counter");

        for (j = i; j < m->samples.nelts; j++) {
            if (s[j].done
                || ngx_strcmp(s[j].metric->name, f->name) != 0)
            {
                continue;
            }

            s[j].done = 1;

            if (s[j].labels.len) {
                b->last = ngx_sprintf(b->last, "%s{%V} %L\n", f->name,
                                      &s[j].labels, s[j].value);

            } else {
                b->last = ngx_sprintf(b->last, "%s %L\n", f->name,
                                      s[j].value);
            }
        }
    }

    return b;
}


/*
 * /health: the key files, then each source; the answer once every check
 * is over, some of which may wait (the database).
 */

static void
ngx_rustdesk_metrics_health(ngx_rustdesk_metrics_ctx_t *ctx)
{
    ngx_uint_t                      i;
    ngx_pool_t                     *pool;
    ngx_rustdesk_health_t          *h;
    ngx_rustdesk_metrics_source_t  *src;

    /* its own pool: a check may outlive the connection */

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        ngx_rustdesk_metrics_error(ctx, 500);
        return;
    }

    h = ngx_pcalloc(pool, sizeof(ngx_rustdesk_health_t));
    if (h == NULL) {
        ngx_destroy_pool(pool);
        ngx_rustdesk_metrics_error(ctx, 500);
        return;
    }

    h->reasons = ngx_create_temp_buf(pool, NGX_RUSTDESK_METRICS_REASONS);
    if (h->reasons == NULL) {
        ngx_destroy_pool(pool);
        ngx_rustdesk_metrics_error(ctx, 500);
        return;
    }

    h->pool = pool;
    h->log = ngx_cycle->log;
    h->refs = 1;                  /* the connection's */
    h->done = ngx_rustdesk_metrics_health_answer;
    h->data = ctx;

    ctx->health = h;
    ctx->state = NGX_RUSTDESK_METRICS_HEALTH;

    /* a check that waits (the thread pool may be busy) waits this long */
    ngx_add_timer(ctx->session->connection->read, ctx->srv->timeout);

    /* while the checks run, a check that is done now answers later */
    h->pending = 1;

    ngx_rustdesk_metrics_health_keys(h, ctx->sc);

    src = ctx->sc->metrics->sources.elts;

    for (i = 0; i < ctx->sc->metrics->sources.nelts; i++) {
        src[i].health(h, src[i].data);
    }

    h->refs++;
    ngx_rustdesk_health_done(h);
}


/*
 * Key files that a restart would read: a missing one would be made anew,
 * and the clients' key would no longer match.  A file the worker may not
 * look at is not reported.
 */

static void
ngx_rustdesk_metrics_health_keys(ngx_rustdesk_health_t *h,
    ngx_rustdesk_stream_conf_t *sc)
{
    u_char           *p;
    ngx_uint_t        i;
    ngx_file_info_t   fi;
    u_char            name[NGX_MAX_PATH];

    static const char  *files[] = { NGX_RUSTDESK_SK_FILE,
                                    NGX_RUSTDESK_PK_FILE };

    if (!sc->keys_from_dir) {
        return;
    }

    for (i = 0; i < 2; i++) {
        p = ngx_snprintf(name, sizeof(name) - 1, "%V/%s", &sc->key_dir,
                         files[i]);
        *p = '\0';

        if (ngx_file_info(name, &fi) == NGX_FILE_ERROR
            && (ngx_errno == NGX_ENOENT || ngx_errno == NGX_ENOTDIR))
        {
            ngx_rustdesk_health_fail(h, "key file \"%s\" is missing", name);
        }
    }
}


void
ngx_rustdesk_health_fail(ngx_rustdesk_health_t *h, const char *fmt, ...)
{
    u_char     *p;
    va_list     args;
    ngx_buf_t  *b;

    b = h->reasons;

    if (b->end - b->last < 2) {
        return;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(b->last, b->end - 1, fmt, args);
    va_end(args);

    *p++ = LF;
    b->last = p;
}


void
ngx_rustdesk_health_wait(ngx_rustdesk_health_t *h)
{
    h->pending++;
    h->refs++;
}


/* A check is over: the answer after the last; the memory after that. */

void
ngx_rustdesk_health_done(ngx_rustdesk_health_t *h)
{
    if (--h->pending == 0 && h->data) {
        h->done(h);
    }

    ngx_rustdesk_metrics_health_unref(h);
}


static void
ngx_rustdesk_metrics_health_answer(ngx_rustdesk_health_t *h)
{
    ngx_rustdesk_metrics_ctx_t  *ctx;

    ctx = h->data;

    if (ctx->session->connection->read->timer_set) {
        ngx_del_timer(ctx->session->connection->read);
    }

    ngx_rustdesk_metrics_health_answer_to(ctx, h);
}


static void
ngx_rustdesk_metrics_health_answer_to(ngx_rustdesk_metrics_ctx_t *ctx,
    ngx_rustdesk_health_t *h)
{
    ngx_buf_t  *b;

    b = h->reasons;

    if (b->last == b->pos) {
        ngx_rustdesk_metrics_answer(ctx, 200, "text/plain; charset=utf-8",
                                    (u_char *) "ok\n", 3);
        return;
    }

    /* the causes are logged where they happen: here, what the prober got */

    ngx_log_error(NGX_LOG_INFO, ctx->session->connection->log, 0,
                  "rustdesk: health check failed: %*s",
                  (size_t) (b->last - b->pos - 1), b->pos);

    ngx_rustdesk_metrics_answer(ctx, 503, "text/plain; charset=utf-8",
                                b->pos, b->last - b->pos);
}


/*
 * The checks did not finish within the timeout: 503 with what they found
 * so far; the ones still running end without the request.
 */

static void
ngx_rustdesk_metrics_health_late(ngx_rustdesk_metrics_ctx_t *ctx)
{
    ngx_rustdesk_health_t  *h;

    h = ctx->health;

    ngx_rustdesk_health_fail(h, "health checks did not finish within %M ms",
                             ctx->srv->timeout);

    ctx->health = NULL;
    h->data = NULL;
    h->refs++;

    ngx_rustdesk_metrics_health_answer_to(ctx, h);

    ngx_rustdesk_metrics_health_unref(h);     /* the connection's */
    ngx_rustdesk_metrics_health_unref(h);     /* ours */
}


static void
ngx_rustdesk_metrics_health_unref(ngx_rustdesk_health_t *h)
{
    if (--h->refs == 0) {
        ngx_destroy_pool(h->pool);
    }
}


static void
ngx_rustdesk_metrics_cleanup(void *data)
{
    ngx_rustdesk_metrics_ctx_t  *ctx = data;

    ngx_rustdesk_health_t  *h;

    h = ctx->health;

    if (h) {
        ctx->health = NULL;
        h->data = NULL;
        ngx_rustdesk_metrics_health_unref(h);
    }
}


static void
ngx_rustdesk_metrics_error(ngx_rustdesk_metrics_ctx_t *ctx,
    ngx_uint_t status)
{
    u_char      *body, *p;
    const char  *reason;

    reason = ngx_rustdesk_metrics_reason(status);

    if (reason == NULL) {
        status = 500;
        reason = ngx_rustdesk_metrics_reason(status);
    }

    /* a request that did not parse has no method to go by */
    if (status != 404 && status != 405) {
        ctx->head = 0;
    }

    body = ngx_pnalloc(ctx->session->connection->pool,
                       ngx_strlen(reason) + 1);
    if (body == NULL) {
        ngx_rustdesk_metrics_close(ctx, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    p = ngx_sprintf(body, "%s\n", reason);

    ngx_rustdesk_metrics_answer(ctx, status, "text/plain; charset=utf-8",
                                body, p - body);
}


static void
ngx_rustdesk_metrics_answer(ngx_rustdesk_metrics_ctx_t *ctx,
    ngx_uint_t status, const char *type, u_char *body, size_t len)
{
    size_t             size;
    ngx_buf_t         *b;
    const char        *reason;
    ngx_connection_t  *c;

    c = ctx->session->connection;
    reason = ngx_rustdesk_metrics_reason(status);

    size = sizeof("HTTP/1.1 000 \r\n") - 1 + ngx_strlen(reason)
           + sizeof("Allow: GET, HEAD\r\n") - 1
           + sizeof("Content-Type: \r\n") - 1 + ngx_strlen(type)
           + sizeof("Content-Length: \r\n") - 1 + NGX_SIZE_T_LEN
           + sizeof("Connection: close\r\n\r\n") - 1 + len;

    b = ngx_create_temp_buf(c->pool, size);
    if (b == NULL) {
        ngx_rustdesk_metrics_close(ctx, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    b->last = ngx_sprintf(b->last, "HTTP/1.1 %ui %s\r\n", status, reason);

    if (status == 405) {
        b->last = ngx_cpymem(b->last, "Allow: GET, HEAD\r\n",
                             sizeof("Allow: GET, HEAD\r\n") - 1);
    }

    b->last = ngx_sprintf(b->last, "Content-Type: %s\r\n"
                          "Content-Length: %uz\r\n"
                          "Connection: close\r\n\r\n", type, len);

    if (!ctx->head) {
        b->last = ngx_cpymem(b->last, body, len);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "rustdesk: metrics answer %ui", status);

    /* for $status in the stream access log */

    switch (status / 100) {
    case 2:
        ctx->status = NGX_STREAM_OK;
        break;
    case 4:
        ctx->status = (status == 403) ? NGX_STREAM_FORBIDDEN
                                      : NGX_STREAM_BAD_REQUEST;
        break;
    default:
        ctx->status = (status == 503) ? NGX_STREAM_SERVICE_UNAVAILABLE
                                      : NGX_STREAM_INTERNAL_SERVER_ERROR;
    }

    ctx->out = b;
    ctx->state = NGX_RUSTDESK_METRICS_WRITE;

    ngx_rustdesk_metrics_write(c->write);
}


static void
ngx_rustdesk_metrics_write(ngx_event_t *wev)
{
    ssize_t                      n;
    ngx_buf_t                   *b;
    ngx_connection_t            *c;
    ngx_rustdesk_metrics_ctx_t  *ctx;

    c = wev->data;
    ctx = c->data;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "rustdesk: metrics client timed out reading the "
                      "answer");
        ngx_rustdesk_metrics_close(ctx, 0);
        return;
    }

    if (ctx->state != NGX_RUSTDESK_METRICS_WRITE) {
        return;
    }

    b = ctx->out;

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_rustdesk_metrics_close(ctx, 0);
                return;
            }

            ngx_add_timer(wev, ctx->srv->timeout);
            return;
        }

        if (n == NGX_ERROR) {
            ngx_rustdesk_metrics_close(ctx, 0);
            return;
        }

        b->pos += n;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    /*
     * lingering close: the client may still be sending (a body, more
     * requests); what it sends is read for a while, and our FIN tells it
     * the answer is all
     */

    if (c->ssl || shutdown(c->fd, SHUT_WR) == -1) {
        ngx_rustdesk_metrics_close(ctx, 0);
        return;
    }

    ctx->state = NGX_RUSTDESK_METRICS_LINGERING;
    ctx->in->pos = ctx->in->start;
    ctx->in->last = ctx->in->start;

    ngx_add_timer(c->read, ngx_min(ctx->srv->timeout,
                                   NGX_RUSTDESK_METRICS_LINGER));

    ngx_rustdesk_metrics_read(c->read);
}


static void
ngx_rustdesk_metrics_close(ngx_rustdesk_metrics_ctx_t *ctx, ngx_uint_t rc)
{
    ngx_stream_finalize_session(ctx->session, rc ? rc : ctx->status);
}


static const char *
ngx_rustdesk_metrics_reason(ngx_uint_t status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default:  return NULL;
    }
}


ngx_int_t
ngx_rustdesk_metrics_add_stats(ngx_rustdesk_metrics_t *m,
    ngx_rustdesk_stats_t *st, const ngx_rustdesk_stat_t *stats)
{
    int64_t     *sum;
    ngx_uint_t   j;

    sum = ngx_pcalloc(m->pool, st->nvalues * sizeof(int64_t));
    if (sum == NULL) {
        return NGX_ERROR;
    }

    ngx_rustdesk_stats_sum(st, stats, sum);

    for (j = 0; j < st->nvalues; j++) {
        if (ngx_rustdesk_metrics_add(m, stats[j].metric, stats[j].labels,
                                     ngx_strlen(stats[j].labels), sum[j])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_rustdesk_metrics_add_zone(ngx_rustdesk_metrics_t *m,
    ngx_shm_zone_t *shm_zone, const char *module)
{
    u_char           *p;
    size_t            pages;
    ngx_slab_pool_t  *shpool;
    u_char            labels[NGX_MAX_PATH];

    static const ngx_rustdesk_metric_t  size = {
        "rustdesk_zone_size_bytes", NGX_RUSTDESK_GAUGE,
        "Size of a shared memory zone, as configured."
    };

    static const ngx_rustdesk_metric_t  used = {
        "rustdesk_zone_used_bytes", NGX_RUSTDESK_GAUGE,
        "Bytes of a shared memory zone's pages in use."
    };

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    pages = (shpool->end - shpool->start) / ngx_pagesize;

    p = ngx_slprintf(labels, labels + sizeof(labels), "module=\"%s\",",
                     module);
    p = ngx_rustdesk_metrics_label(p, labels + sizeof(labels), "zone",
                                   &shm_zone->shm.name);

    if (ngx_rustdesk_metrics_add(m, &size, (char *) labels, p - labels,
                                 (int64_t) shm_zone->shm.size)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_rustdesk_metrics_add(m, &used, (char *) labels, p - labels,
                                    (int64_t) ((pages - shpool->pfree)
                                               * ngx_pagesize));
}
