/*
 * ConfigUpdate and SoftwareUpdate (PROTOCOL.md section 6): what a client
 * with an older serial is told of the rendezvous servers, and the version
 * of the newest software, from rustdesk_software_url.
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
