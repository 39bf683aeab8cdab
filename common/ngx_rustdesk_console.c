/*
 * The loopback console's connection: one command in, one answer out.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_console.h"


#define NGX_RUSTDESK_CONSOLE_IN    1024
#define NGX_RUSTDESK_CONSOLE_OUT   (64 * 1024)
#define NGX_RUSTDESK_CONSOLE_WAIT  1000


/* the connection's data from here on: the console owns it */
typedef struct {
    ngx_stream_session_t         *session;
    ngx_buf_t                    *out;
    ngx_rustdesk_console_run_pt   run;
} ngx_rustdesk_console_ctx_t;


static ngx_uint_t ngx_rustdesk_console_proxied_ok(ngx_connection_t *c);
static u_char *ngx_rustdesk_console_escape(u_char *dst, u_char *src,
    size_t len);
static void ngx_rustdesk_console_read(ngx_event_t *rev);
static void ngx_rustdesk_console_write(ngx_event_t *wev);
static ngx_uint_t ngx_rustdesk_console_args(u_char *cmd, size_t len,
    ngx_str_t *args, ngx_uint_t max);


void
ngx_rustdesk_console_start(ngx_stream_session_t *s,
    ngx_rustdesk_console_run_pt run)
{
    ngx_connection_t            *c;
    ngx_rustdesk_console_ctx_t  *ctx;

    c = s->connection;
    c->log->action = "running console command";

    if (!ngx_rustdesk_sockaddr_is_loopback(c->sockaddr)) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: console refused to a non-loopback client");
        ngx_stream_finalize_session(s, NGX_STREAM_FORBIDDEN);
        return;
    }

    if (!ngx_rustdesk_console_proxied_ok(c)) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "rustdesk: console refused to a client behind an "
                      "untrusted PROXY header (add \"set_real_ip_from\" for "
                      "the proxy)");
        ngx_stream_finalize_session(s, NGX_STREAM_FORBIDDEN);
        return;
    }

    ctx = ngx_pcalloc(c->pool, sizeof(ngx_rustdesk_console_ctx_t));
    if (ctx == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->session = s;
    ctx->run = run;

    c->data = ctx;

    c->read->handler = ngx_rustdesk_console_read;
    c->write->handler = ngx_rustdesk_console_write;

    ngx_rustdesk_console_read(c->read);
}


ngx_int_t
ngx_rustdesk_sockaddr_is_loopback(struct sockaddr *sa)
{
#if (NGX_HAVE_INET6)
    u_char               *p;
    struct sockaddr_in6  *sin6;
#endif
    struct sockaddr_in   *sin;

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        p = sin6->sin6_addr.s6_addr;

        if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) {
            return 1;
        }

        return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && p[12] == 127;
#endif

    default:
        return 0;
    }
}


ngx_int_t
ngx_rustdesk_console_is(ngx_str_t *arg, const char *name,
    const char *shortname)
{
    size_t  n, sn;

    n = ngx_strlen(name);
    sn = ngx_strlen(shortname);

    return (arg->len == n && ngx_strncmp(arg->data, name, n) == 0)
           || (arg->len == sn && ngx_strncmp(arg->data, shortname, sn) == 0);
}


static void
ngx_rustdesk_console_read(ngx_event_t *rev)
{
    u_char                      *cmd, *p;
    ssize_t                      n;
    ngx_buf_t                   *b;
    ngx_str_t                    args[NGX_RUSTDESK_CONSOLE_ARGS];
    ngx_uint_t                   nargs;
    ngx_connection_t            *c;
    ngx_stream_session_t        *s;
    ngx_rustdesk_console_ctx_t  *ctx;
    u_char                       logged[64 * 4];

    c = rev->data;
    ctx = c->data;
    s = ctx->session;

    if (rev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "rustdesk: console client sent no command");
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    if (ctx->out) {
        return;
    }

    cmd = ngx_pnalloc(c->pool, NGX_RUSTDESK_CONSOLE_IN);
    if (cmd == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    n = c->recv(c, cmd, NGX_RUSTDESK_CONSOLE_IN);

    if (n == NGX_AGAIN) {
        if (ngx_handle_read_event(rev, 0) != NGX_OK) {
            ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }

        if (!rev->timer_set) {
            ngx_add_timer(rev, NGX_RUSTDESK_CONSOLE_WAIT);
        }

        return;
    }

    if (n == NGX_ERROR || n == 0) {
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    if (rev->timer_set) {
        ngx_del_timer(rev);
    }

    b = ngx_create_temp_buf(c->pool, NGX_RUSTDESK_CONSOLE_OUT);
    if (b == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    nargs = ngx_rustdesk_console_args(cmd, n, args,
                                      NGX_RUSTDESK_CONSOLE_ARGS);

    if (nargs) {
        b->last = ctx->run(s, args, nargs, b->pos, b->end);
    }

    ctx->out = b;

    while (n > 0 && (cmd[n - 1] == '\n' || cmd[n - 1] == '\r')) {
        n--;
    }

    /* the client's bytes, escaped: no newline or control goes to the log */

    p = ngx_rustdesk_console_escape(logged, cmd, ngx_min(n, 64));

    ngx_log_error(NGX_LOG_INFO, c->log, 0, "rustdesk: console command \"%*s\"",
                  p - logged, logged);

    ngx_rustdesk_console_write(c->write);
}


static void
ngx_rustdesk_console_write(ngx_event_t *wev)
{
    ssize_t                      n;
    ngx_buf_t                   *b;
    ngx_connection_t            *c;
    ngx_stream_session_t        *s;
    ngx_rustdesk_console_ctx_t  *ctx;

    c = wev->data;
    ctx = c->data;
    s = ctx->session;

    if (wev->timedout) {
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    b = ctx->out;

    if (b == NULL) {
        return;
    }

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_stream_finalize_session(s, NGX_STREAM_OK);
                return;
            }

            ngx_add_timer(wev, NGX_RUSTDESK_CONSOLE_WAIT * 5);
            return;
        }

        if (n == NGX_ERROR) {
            ngx_stream_finalize_session(s, NGX_STREAM_OK);
            return;
        }

        b->pos += n;
    }

    ngx_stream_finalize_session(s, NGX_STREAM_OK);
}


/* Splits the trimmed command at spaces, as the reference does. */

static ngx_uint_t
ngx_rustdesk_console_args(u_char *cmd, size_t len, ngx_str_t *args,
    ngx_uint_t max)
{
    u_char      *p, *last, *start;
    ngx_uint_t   n;

    last = cmd + len;

    while (cmd < last && (*cmd == ' ' || *cmd == '\r' || *cmd == '\n'
                          || *cmd == '\t'))
    {
        cmd++;
    }

    while (last > cmd && (last[-1] == ' ' || last[-1] == '\r'
                          || last[-1] == '\n' || last[-1] == '\t'))
    {
        last--;
    }

    if (cmd == last) {
        return 0;
    }

    n = 0;

    for (start = p = cmd; p <= last && n < max; p++) {
        if (p < last && *p != ' ') {
            continue;
        }

        args[n].data = start;
        args[n].len = p - start;
        n++;
        start = p + 1;
    }

    return n;
}


/*
 * Behind the PROXY protocol, the client is the header's only when
 * set_real_ip_from trusted its sender, and nginx then made it the
 * connection's address; otherwise the address is the proxy's (loopback
 * for a proxy on this host), which must not let every client it passes
 * on into the console.
 */

static ngx_uint_t
ngx_rustdesk_console_proxied_ok(ngx_connection_t *c)
{
    ngx_addr_t  addr;

    if (c->proxy_protocol == NULL) {
        return 1;
    }

    if (ngx_parse_addr(c->pool, &addr, c->proxy_protocol->src_addr.data,
                       c->proxy_protocol->src_addr.len)
        != NGX_OK)
    {
        return 0;
    }

    return ngx_cmp_sockaddr(addr.sockaddr, addr.socklen, c->sockaddr,
                            c->socklen, 0)
           == NGX_OK;
}


/* Printable ASCII as it is, '"', '\\' and anything else as \xHH. */

static u_char *
ngx_rustdesk_console_escape(u_char *dst, u_char *src, size_t len)
{
    static u_char  hex[] = "0123456789abcdef";

    while (len--) {
        if (*src >= 0x20 && *src < 0x7f && *src != '"' && *src != '\\') {
            *dst++ = *src++;
            continue;
        }

        *dst++ = '\\';
        *dst++ = 'x';
        *dst++ = hex[*src >> 4];
        *dst++ = hex[*src++ & 0xf];
    }

    return dst;
}
