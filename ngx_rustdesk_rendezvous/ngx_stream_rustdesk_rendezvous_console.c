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

#include "ngx_rustdesk_console.h"
#include "ngx_stream_rustdesk_rendezvous_module.h"


static u_char *ngx_stream_rustdesk_console_run(ngx_stream_session_t *s,
    ngx_str_t *args, ngx_uint_t n, u_char *p, u_char *last);


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
    ngx_rustdesk_console_start(s, ngx_stream_rustdesk_console_run);
}


static u_char *
ngx_stream_rustdesk_console_run(ngx_stream_session_t *s, ngx_str_t *args,
    ngx_uint_t n, u_char *p, u_char *last)
{
    size_t                                       len;
    ngx_int_t                                    num;
    ngx_str_t                                   *a;
    ngx_addr_t                                   addr;
    ngx_rustdesk_ip_t                            ip;
    ngx_rustdesk_peer_zone_t                    *z;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);
    z = rmcf->zone;

    a = &args[0];

#define ngx_rustdesk_cmd(name, shortname)                                     \
    ngx_rustdesk_console_is(a, name, shortname)

    if (a->len == 1 && a->data[0] == 'h') {
        return ngx_slprintf(p, last, "%V", &ngx_stream_rustdesk_console_help);
    }

    if (ngx_rustdesk_cmd("relay-servers", "rs")) {
        return ngx_stream_rustdesk_relays_console(rmcf, n > 1 ? &args[1] : NULL,
                                                  p, last);
    }

    if (ngx_rustdesk_cmd("config-update", "cu")) {
        /* not hbbs's: it took a ConfigUpdate datagram from loopback */
        return ngx_stream_rustdesk_rendezvous_config_console(rmcf, args, n,
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
        /*
         * the relay a requester at ip1 would be offered (asking for a
         * peer at ip2, whose address does not decide): the relay servers
         * evaluated for a session with that client address
         */

        if (n > 1 && ngx_parse_addr(s->connection->pool, &addr, args[1].data,
                                    args[1].len)
                     == NGX_OK)
        {
            ngx_rustdesk_ip_from_sockaddr(&ip, addr.sockaddr, addr.socklen);

            return ngx_slprintf(p, last, "\"%s\"",
                           ngx_stream_rustdesk_rendezvous_relay_server(
                               ngx_stream_rustdesk_rendezvous_relay_session(s,
                                                                      &ip)));
        }

        return p;
    }

#undef ngx_rustdesk_cmd

    /* unknown commands, reload-geo included, answer nothing */

    return p;
}
