/*
 * The rendezvous console: rustdesk-server's loopback text commands, same
 * names and output.  A client sends one command (read once, up to 1024
 * bytes, within a second), gets the text, and the connection closes.
 *
 *     printf 'rs\n' | nc 127.0.0.1 21120
 *
 * It is served only to loopback clients, on a listener of its own
 * (rustdesk_console) or, for compatibility, to loopback clients of the
 * NAT-test port (rustdesk_nat_test console).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


#define NGX_RUSTDESK_CONSOLE_IN    1024
#define NGX_RUSTDESK_CONSOLE_OUT   16384
#define NGX_RUSTDESK_CONSOLE_WAIT  1000


typedef struct {
    ngx_buf_t          *out;
} ngx_stream_rustdesk_console_ctx_t;


static void ngx_stream_rustdesk_console_read(ngx_event_t *rev);
static void ngx_stream_rustdesk_console_write(ngx_event_t *wev);
static u_char *ngx_stream_rustdesk_console_run(ngx_stream_session_t *s,
    u_char *cmd, size_t len, u_char *p, u_char *last);
static ngx_uint_t ngx_stream_rustdesk_console_args(u_char *cmd, size_t len,
    ngx_str_t *args, ngx_uint_t max);


static ngx_str_t  ngx_stream_rustdesk_console_help = ngx_string(
    "relay-servers(rs) <separated by ,>\n"
    "reload-geo(rg)\n"
    "ip-blocker(ib) [<ip>|<number>] [-]\n"
    "ip-changes(ic) [<id>|<number>] [-]\n"
    "punch-requests(pr) [<number>] [-]\n"
    "always-use-relay(aur)\n"
    "test-geo(tg) <ip1> <ip2>\n");


void
ngx_stream_rustdesk_rendezvous_console(ngx_stream_session_t *s)
{
    ngx_connection_t                   *c;
    ngx_rustdesk_ip_t                   ip;
    ngx_stream_rustdesk_console_ctx_t  *ctx;

    c = s->connection;
    c->log->action = "running console command";

    ngx_rustdesk_ip_from_sockaddr(&ip, c->sockaddr, c->socklen);

    if (!ngx_rustdesk_ip_is_loopback(&ip)) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: console refused to a non-loopback client");
        ngx_stream_finalize_session(s, NGX_STREAM_FORBIDDEN);
        return;
    }

    ctx = ngx_pcalloc(c->pool, sizeof(ngx_stream_rustdesk_console_ctx_t));
    if (ctx == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    /* the session ctx of the module is the console's here */
    ngx_stream_set_ctx(s, ctx, ngx_stream_rustdesk_rendezvous_module);

    c->read->handler = ngx_stream_rustdesk_console_read;
    c->write->handler = ngx_stream_rustdesk_console_write;

    ngx_stream_rustdesk_console_read(c->read);
}


static void
ngx_stream_rustdesk_console_read(ngx_event_t *rev)
{
    u_char                             *cmd;
    ssize_t                             n;
    ngx_buf_t                          *b;
    ngx_connection_t                   *c;
    ngx_stream_session_t               *s;
    ngx_stream_rustdesk_console_ctx_t  *ctx;

    c = rev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_rustdesk_rendezvous_module);

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

    b->last = ngx_stream_rustdesk_console_run(s, cmd, n, b->pos, b->end);
    ctx->out = b;

    while (n > 0 && (cmd[n - 1] == '\n' || cmd[n - 1] == '\r')) {
        n--;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0, "rustdesk: console command \"%*s\"",
                  (size_t) ngx_min(n, 64), cmd);

    ngx_stream_rustdesk_console_write(c->write);
}


static void
ngx_stream_rustdesk_console_write(ngx_event_t *wev)
{
    ssize_t                             n;
    ngx_buf_t                          *b;
    ngx_connection_t                   *c;
    ngx_stream_session_t               *s;
    ngx_stream_rustdesk_console_ctx_t  *ctx;

    c = wev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_rustdesk_rendezvous_module);

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


static u_char *
ngx_stream_rustdesk_console_run(ngx_stream_session_t *s, u_char *cmd,
    size_t len, u_char *p, u_char *last)
{
    ngx_int_t                                    num;
    ngx_str_t                                    args[4], *a;
    ngx_uint_t                                   n;
    ngx_addr_t                                   addr;
    ngx_rustdesk_ip_t                            ip;
    ngx_rustdesk_peer_zone_t                    *z;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);
    z = rmcf->zone;

    n = ngx_stream_rustdesk_console_args(cmd, len, args, 4);

    if (n == 0) {
        return p;
    }

    a = &args[0];

#define ngx_rustdesk_cmd(long, short)                                         \
    ((a->len == sizeof(long) - 1 && ngx_strncmp(a->data, long, a->len) == 0) \
     || (a->len == sizeof(short) - 1                                          \
         && ngx_strncmp(a->data, short, a->len) == 0))

    if (a->len == 1 && a->data[0] == 'h') {
        return ngx_slprintf(p, last, "%V", &ngx_stream_rustdesk_console_help);
    }

    if (ngx_rustdesk_cmd("relay-servers", "rs")) {
        return ngx_stream_rustdesk_relays_console(rmcf, n > 1 ? &args[1] : NULL,
                                                  p, last);
    }

    if (ngx_rustdesk_cmd("ip-blocker", "ib")) {
        num = (n > 1) ? ngx_atoi(args[1].data, args[1].len) : 0;

        if (n > 1 && num == NGX_ERROR) {
            /* an IP: its entry, removed with "-" */

            if (ngx_parse_addr(s->connection->pool, &addr, args[1].data,
                               args[1].len)
                != NGX_OK)
            {
                return ngx_slprintf(p, last, "%ui\n", z->sh->nips);
            }

            ngx_rustdesk_ip_from_sockaddr(&ip, addr.sockaddr, addr.socklen);
            ip.port = 0;

            return ngx_rustdesk_ip_blocker_text(z, p, last, &ip, 0,
                           n > 2 && args[2].len == 1 && args[2].data[0] == '-',
                           ngx_current_msec);
        }

        return ngx_rustdesk_ip_blocker_text(z, p, last, NULL, num, 0,
                                            ngx_current_msec);
    }

    if (ngx_rustdesk_cmd("ip-changes", "ic")) {
        num = (n > 1) ? ngx_atoi(args[1].data, args[1].len) : 0;

        if (n > 1 && (num == NGX_ERROR || num > 10000000)) {
            /* an id: its entry, removed with "-" */
            return ngx_rustdesk_ip_changes_text(z, p, last, &args[1], 0,
                           n > 2 && args[2].len == 1 && args[2].data[0] == '-',
                           ngx_current_msec);
        }

        return ngx_rustdesk_ip_changes_text(z, p, last, NULL, num, 0,
                                            ngx_current_msec);
    }

    if (ngx_rustdesk_cmd("punch-requests", "pr")) {
        if (n > 1 && args[1].len == 1 && args[1].data[0] == '-') {
            return ngx_rustdesk_punch_log_text(z, p, last, 0, 0, 1);
        }

        num = (n > 1) ? ngx_atoi(args[1].data, args[1].len) : 0;
        len = (n > 2) ? (size_t) ngx_atoi(args[2].data, args[2].len) : 10;

        if (num == NGX_ERROR) {
            num = 0;
        }

        if (len == 0 || len == (size_t) NGX_ERROR) {
            len = 10;
        }

        return ngx_rustdesk_punch_log_text(z, p, last, num, len, 0);
    }

    if (ngx_rustdesk_cmd("always-use-relay", "aur")) {
        if (n > 1) {
            z->sh->always_use_relay = (args[1].len == 1
                                       && ngx_toupper(args[1].data[0]) == 'Y');
            return p;
        }

        return ngx_slprintf(p, last, "ALWAYS_USE_RELAY: %s\n",
                            z->sh->always_use_relay ? "true" : "false");
    }

    if (ngx_rustdesk_cmd("test-geo", "tg")) {
        /* no geography here: the relay a pair of peers would be offered */

        if (n > 1 && ngx_parse_addr(s->connection->pool, &addr, args[1].data,
                                    args[1].len)
                     == NGX_OK)
        {
            return ngx_slprintf(p, last, "\"%s\"",
                           ngx_stream_rustdesk_rendezvous_relay_server(s));
        }

        return p;
    }

#undef ngx_rustdesk_cmd

    /* unknown commands, reload-geo included, answer nothing */

    return p;
}


/* Splits the trimmed command at spaces, as the reference does. */

static ngx_uint_t
ngx_stream_rustdesk_console_args(u_char *cmd, size_t len, ngx_str_t *args,
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
