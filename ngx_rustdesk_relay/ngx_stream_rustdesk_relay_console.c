/*
 * hbbr's console commands (rustdesk-server's relay_server.rs check_cmd):
 * the same names and output.  Settings and lists live in the zone, so a
 * change applies to every worker at once.
 *
 *     printf 'sb 64' | nc 127.0.0.1 21121
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include <math.h>

#include "ngx_rustdesk_console.h"
#include "ngx_stream_rustdesk_relay_module.h"


static u_char *ngx_stream_rustdesk_relay_console_run(ngx_stream_session_t *s,
    ngx_str_t *args, ngx_uint_t n, u_char *p, u_char *last);
static u_char *ngx_stream_rustdesk_relay_console_list(
    ngx_rustdesk_relay_zone_t *z, ngx_rustdesk_relay_list_e list,
    ngx_int_t op, ngx_str_t *arg, u_char *p, u_char *last);
static ngx_int_t ngx_stream_rustdesk_relay_console_number(ngx_str_t *arg,
    double *v);
static u_char *ngx_stream_rustdesk_relay_console_f64(u_char *p, u_char *last,
    double v);


static ngx_str_t  ngx_stream_rustdesk_relay_console_help = ngx_string(
    "blacklist-add(ba) <ip>\n"
    "blacklist-remove(br) <ip>\n"
    "blacklist(b) <ip>\n"
    "blocklist-add(Ba) <ip>\n"
    "blocklist-remove(Br) <ip>\n"
    "blocklist(B) <ip>\n"
    "downgrade-threshold(dt) [value]\n"
    "downgrade-start-check(t) [value(second)]\n"
    "limit-speed(ls) [value(Mb/s)]\n"
    "total-bandwidth(tb) [value(Mb/s)]\n"
    "single-bandwidth(sb) [value(Mb/s)]\n"
    "usage(u)\n");


void
ngx_stream_rustdesk_relay_console(ngx_stream_session_t *s)
{
    ngx_rustdesk_console_start(s, ngx_stream_rustdesk_relay_console_run);
}


static u_char *
ngx_stream_rustdesk_relay_console_run(ngx_stream_session_t *s,
    ngx_str_t *args, ngx_uint_t n, u_char *p, u_char *last)
{
    double                                  v;
    uint64_t                               *rate;
    ngx_str_t                              *a, *arg;
    ngx_rustdesk_relay_zone_t              *z;
    ngx_rustdesk_relay_limits_t            *limits, copy;
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    lmcf = ngx_stream_get_module_main_conf(s, ngx_stream_rustdesk_relay_module);
    z = lmcf->zone;

    /* changed on a copy, stored for all workers at once */
    copy = *ngx_rustdesk_relay_limits(z);
    limits = &copy;

    a = &args[0];
    arg = (n > 1) ? &args[1] : NULL;

    if (a->len == 1 && a->data[0] == 'h') {
        return ngx_slprintf(p, last, "%V",
                            &ngx_stream_rustdesk_relay_console_help);
    }

    if (ngx_rustdesk_console_is(a, "blacklist-add", "ba")) {
        return ngx_stream_rustdesk_relay_console_list(z,
                                  NGX_RUSTDESK_BLACKLIST, 1, arg, p, last);
    }

    if (ngx_rustdesk_console_is(a, "blacklist-remove", "br")) {
        return ngx_stream_rustdesk_relay_console_list(z,
                                  NGX_RUSTDESK_BLACKLIST, -1, arg, p, last);
    }

    if (ngx_rustdesk_console_is(a, "blacklist", "b")) {
        return ngx_stream_rustdesk_relay_console_list(z,
                                  NGX_RUSTDESK_BLACKLIST, 0, arg, p, last);
    }

    if (ngx_rustdesk_console_is(a, "blocklist-add", "Ba")) {
        return ngx_stream_rustdesk_relay_console_list(z,
                                  NGX_RUSTDESK_BLOCKLIST, 1, arg, p, last);
    }

    if (ngx_rustdesk_console_is(a, "blocklist-remove", "Br")) {
        return ngx_stream_rustdesk_relay_console_list(z,
                                  NGX_RUSTDESK_BLOCKLIST, -1, arg, p, last);
    }

    if (ngx_rustdesk_console_is(a, "blocklist", "B")) {
        return ngx_stream_rustdesk_relay_console_list(z,
                                  NGX_RUSTDESK_BLOCKLIST, 0, arg, p, last);
    }

    if (ngx_rustdesk_console_is(a, "downgrade-threshold", "dt")) {
        if (arg == NULL) {
            p = ngx_stream_rustdesk_relay_console_f64(p, last,
                                      (double) limits->threshold / 100);
            return ngx_slprintf(p, last, "\n");
        }

        if (ngx_stream_rustdesk_relay_console_number(arg, &v) == NGX_OK
            && v <= 100)
        {
            limits->threshold = (ngx_uint_t) (v * 100);
            ngx_rustdesk_relay_limits_update(z, limits);
        }

        return p;
    }

    if (ngx_rustdesk_console_is(a, "downgrade-start-check", "t")) {
        if (arg == NULL) {
            return ngx_slprintf(p, last, "%Ms\n",
                                limits->start_check / 1000);
        }

        /* whole seconds only, as hbbr parses it */

        v = (double) ngx_atoi(arg->data, arg->len);

        if (v > 0 && v < 1e9) {
            limits->start_check = (ngx_msec_t) v * 1000;
            ngx_rustdesk_relay_limits_update(z, limits);
        }

        return p;
    }

    if (ngx_rustdesk_console_is(a, "limit-speed", "ls")) {
        rate = &limits->limit;

    } else if (ngx_rustdesk_console_is(a, "total-bandwidth", "tb")) {
        rate = &limits->total;

    } else if (ngx_rustdesk_console_is(a, "single-bandwidth", "sb")) {
        rate = &limits->single;

    } else if (ngx_rustdesk_console_is(a, "usage", "u")) {
        return ngx_rustdesk_relay_usage_text(z, s->connection->pool,
                                             ngx_current_msec, p, last);

    } else {
        /* unknown commands answer nothing */
        return p;
    }

    if (arg == NULL) {
        p = ngx_stream_rustdesk_relay_console_f64(p, last,
                                     (double) *rate / NGX_RUSTDESK_MBPS);
        return ngx_slprintf(p, last, "Mb/s\n");
    }

    if (ngx_stream_rustdesk_relay_console_number(arg, &v) == NGX_OK
        && v < 1e9)
    {
        *rate = (uint64_t) (v * NGX_RUSTDESK_MBPS);
        ngx_rustdesk_relay_limits_update(z, limits);
    }

    return p;
}


/*
 * op 1: add "ip|ip|..."; -1: remove them, or "all"; 0: "true"/"false"
 * for one IP, or the whole list.
 */

static u_char *
ngx_stream_rustdesk_relay_console_list(ngx_rustdesk_relay_zone_t *z,
    ngx_rustdesk_relay_list_e list, ngx_int_t op, ngx_str_t *arg, u_char *p,
    u_char *last)
{
    u_char     *s, *e, *end;
    u_char      text[NGX_RUSTDESK_RELAY_IP_LEN];
    ngx_str_t   ip;

    if (arg == NULL) {
        return (op == 0) ? ngx_rustdesk_relay_list_text(z, list, p, last) : p;
    }

    ip.data = text;

    if (op == 0) {
        ip.len = ngx_rustdesk_relay_ip_text(arg->data, arg->len, text);
        return ngx_slprintf(p, last, "%s\n",
                            ngx_rustdesk_relay_list_has(z, list, &ip)
                            ? "true" : "false");
    }

    if (op < 0 && arg->len == 3 && ngx_strncmp(arg->data, "all", 3) == 0) {
        ngx_rustdesk_relay_list_clear(z, list);
        return p;
    }

    end = arg->data + arg->len;

    for (s = arg->data; s < end; s = e + 1) {
        e = ngx_strlchr(s, end, '|');
        if (e == NULL) {
            e = end;
        }

        if (e == s || (size_t) (e - s) >= NGX_RUSTDESK_RELAY_IP_LEN) {
            continue;
        }

        ip.len = ngx_rustdesk_relay_ip_text(s, e - s, text);

        if (op < 0) {
            ngx_rustdesk_relay_list_remove(z, list, &ip);

        } else if (ngx_rustdesk_relay_list_add(z, list, &ip) != NGX_OK) {
            return ngx_slprintf(p, last, "the zone is full\n");
        }
    }

    return p;
}


/* A positive number, as hbbr's parse::<f64>() and "if v > 0." take it. */

static ngx_int_t
ngx_stream_rustdesk_relay_console_number(ngx_str_t *arg, double *v)
{
    char    buf[64], *end;

    if (arg->len == 0 || arg->len >= sizeof(buf)) {
        return NGX_DECLINED;
    }

    ngx_memcpy(buf, arg->data, arg->len);
    buf[arg->len] = '\0';

    *v = strtod(buf, &end);

    if (*end != '\0' || !isfinite(*v) || *v <= 0) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* A double as Rust's Display prints it: the shortest exact decimal. */

static u_char *
ngx_stream_rustdesk_relay_console_f64(u_char *p, u_char *last, double v)
{
    int   d;
    char  buf[64];

    for (d = 0; d < 17; d++) {
        snprintf(buf, sizeof(buf), "%.*f", d, v);

        if (strtod(buf, NULL) == v) {
            break;
        }
    }

    return ngx_slprintf(p, last, "%s", buf);
}
