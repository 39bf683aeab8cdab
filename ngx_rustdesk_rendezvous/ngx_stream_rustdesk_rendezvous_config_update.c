/*
 * ConfigUpdate and SoftwareUpdate (PROTOCOL.md section 6): what a client
 * with an older serial is told of the rendezvous servers, the console
 * command that raises the serial, and the newest software
 * (rustdesk_software_url) offered to clients of another version.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


Hbb__ConfigUpdate *
ngx_stream_rustdesk_rendezvous_config_update(ngx_stream_session_t *s,
    int32_t client_serial)
{
    u_char                                      *p, *last, *start, *name;
    size_t                                       len;
    int32_t                                      serial;
    ngx_uint_t                                   n;
    Hbb__ConfigUpdate                           *cu;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;
    u_char                                       servers[NGX_RUSTDESK_SERVERS_MAX];

    rmcf = ngx_stream_get_module_main_conf(s,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (ngx_rustdesk_peer_serial_now(rmcf->zone) <= client_serial) {
        return NULL;
    }

    serial = ngx_rustdesk_peer_serial(rmcf->zone, servers, &len);

    if (serial <= client_serial) {
        return NULL;
    }

    cu = ngx_palloc(s->connection->pool, sizeof(Hbb__ConfigUpdate));
    if (cu == NULL) {
        return NULL;
    }

    hbb__config_update__init(cu);
    cu->serial = serial;

    if (len == 0) {
        return cu;
    }

    /* the servers are kept comma-joined */

    n = 1;
    for (p = servers; p < servers + len; p++) {
        n += (*p == ',');
    }

    cu->rendezvous_servers = ngx_palloc(s->connection->pool, n * sizeof(char *));
    if (cu->rendezvous_servers == NULL) {
        return NULL;
    }

    last = servers + len;
    start = servers;

    for (p = servers; p <= last; p++) {
        if (p < last && *p != ',') {
            continue;
        }

        name = ngx_pnalloc(s->connection->pool, p - start + 1);
        if (name == NULL) {
            return NULL;
        }

        ngx_cpystrn(name, start, p - start + 1);
        cu->rendezvous_servers[cu->n_rendezvous_servers] = (char *) name;

        cu->n_rendezvous_servers++;
        start = p + 1;
    }

    return cu;
}


/*
 * The version a software URL names, as hbb_common's get_version_from_url:
 * what follows the last '-', less an extension after the last '.' unless
 * that is a number: ".../rustdesk-1.2.3.exe" and ".../app-1.2.3" both give
 * "1.2.3".  SoftwareUpdate answers clients whose url differs.
 */

void
ngx_stream_rustdesk_rendezvous_version_from_url(ngx_str_t *url,
    ngx_str_t *version)
{
    u_char  *dash, *dot, *end, *p;

    ngx_str_null(version);

    end = url->data + url->len;
    dash = NULL;
    dot = NULL;

    for (p = end; p > url->data; p--) {
        if (dash == NULL && p[-1] == '-') {
            dash = p - 1;
        }

        if (dot == NULL && p[-1] == '.') {
            dot = p - 1;
        }
    }

    if (dash == NULL || dot == NULL) {
        return;
    }

    version->data = dash + 1;
    version->len = end - version->data;

    if (dot < dash) {
        return;
    }

    /* a numeric suffix is part of the version, an extension is not */

    for (p = dot + 1; p < end; p++) {
        if (*p < '0' || *p > '9') {
            break;
        }
    }

    if (p == dot + 1 || p < end) {
        version->len = dot - version->data;
    }
}


/*
 * A ConfigUpdate datagram: hbbs takes one from loopback to raise the
 * serial, but any local process can send it, and every client would then
 * be told its servers.  The console's config-update command does it here.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_configure(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__ConfigUpdate *cu)
{
    ngx_log_error(NGX_LOG_INFO, r->session->connection->log, 0,
                  "rustdesk: ConfigUpdate datagram ignored: the console's "
                  "\"config-update\" command changes the serial");

    r->result = "REFUSED";

    return NGX_OK;
}


/*
 * The console's config-update|cu [<serial> [<server>[,<server>...]]]:
 * shows the serial and the rendezvous servers clients are told, or raises
 * the serial (for all workers, until a restart) with the servers given.
 */

u_char *
ngx_stream_rustdesk_rendezvous_config_console(
    ngx_stream_rustdesk_rendezvous_main_conf_t *rmcf, ngx_str_t *args,
    ngx_uint_t n, u_char *p, u_char *last)
{
    u_char      *q, *end;
    size_t       len;
    int32_t      serial;
    ngx_int_t    num;
    ngx_uint_t   i;
    u_char       servers[NGX_RUSTDESK_SERVERS_MAX];

    if (n < 2) {
        serial = ngx_rustdesk_peer_serial(rmcf->zone, servers, &len);
        return ngx_slprintf(p, last, "serial: %D\nrendezvous-servers: %*s\n",
                            serial, len, servers);
    }

    num = ngx_atoi(args[1].data, args[1].len);

    if (num == NGX_ERROR || num > NGX_MAX_INT32_VALUE) {
        return ngx_slprintf(p, last, "invalid serial\n");
    }

    /* the servers, comma-joined; empty or unusable names are dropped */

    q = servers;
    end = servers + sizeof(servers);

    for (i = 2; i < n; i++) {
        if (ngx_strlchr(args[i].data, args[i].data + args[i].len, ' ')) {
            continue;
        }

        if ((size_t) (end - q) < args[i].len + 1) {
            return ngx_slprintf(p, last, "too many rendezvous servers\n");
        }

        if (q > servers && args[i].len) {
            *q++ = ',';
        }

        q = ngx_cpymem(q, args[i].data, args[i].len);
    }

    if (!ngx_rustdesk_peer_config_update(rmcf->zone, (int32_t) num, servers,
                                         q - servers))
    {
        return ngx_slprintf(p, last, "serial %i is not above the current "
                            "one\n", num);
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "rustdesk: configure updated from the console: serial=%i "
                  "rendezvous-servers=\"%*s\"", num, q - servers, servers);

    return p;
}


/*
 * SoftwareUpdate{url: the client's version}: the configured URL back when
 * the versions differ, nothing otherwise.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_software(
    ngx_stream_rustdesk_rendezvous_req_t *r, Hbb__SoftwareUpdate *su)
{
    ngx_int_t                                    rc;
    ngx_rustdesk_msg_t                           out;
    Hbb__SoftwareUpdate                          answer;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    if (rmcf->software_version.len == 0
        || (ngx_strlen(su->url) == rmcf->software_version.len
            && ngx_strncmp(su->url, rmcf->software_version.data,
                           rmcf->software_version.len) == 0))
    {
        r->result = "UP_TO_DATE";
        return NGX_OK;
    }

    hbb__rendezvous_message__init(&out);
    hbb__software_update__init(&answer);

    /* software_url is NUL-terminated: it comes from the configuration */
    answer.url = (char *) rmcf->software_url.data;
    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_SOFTWARE_UPDATE;
    out.software_update = &answer;

    /* larger than the request: not to an address that proved nothing */

    rc = r->send(r, &out);
    r->result = (rc == NGX_DECLINED) ? "REFUSED" : "OK";

    return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
}
