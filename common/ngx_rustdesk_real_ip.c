/*
 * The client behind a trusted proxy (rustdesk_real_ip_from,
 * rustdesk_real_ip_header): the address a WebSocket upgrade request names
 * becomes the connection's.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_rustdesk_conf.h"
#include "ngx_rustdesk_real_ip.h"


/*
 * The header rustdesk_real_ip_header names (X-Real-IP, or the last
 * X-Forwarded-For address) is believed only from a trusted proxy
 * (rustdesk_real_ip_from); the port stays the connection's, so that
 * clients behind one proxy stay apart.
 */

void
ngx_rustdesk_real_ip(ngx_connection_t *c, ngx_rustdesk_ws_request_t *r,
    ngx_array_t *from, ngx_uint_t header)
{
    u_char      *text;
    size_t       len;
    in_port_t    port;
    ngx_addr_t   addr;

    if (header == NGX_RUSTDESK_REAL_IP_FORWARDED) {
        text = (u_char *) r->forwarded;
        len = r->forwarded_len;

    } else {
        text = (u_char *) r->real_ip;
        len = r->real_ip_len;
    }

    if (len == 0) {
        return;
    }

    if (from == NULL || ngx_cidr_match(c->sockaddr, from) != NGX_OK) {
        ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "rustdesk: client address header from an untrusted "
                       "address ignored");
        return;
    }

    if (ngx_parse_addr(c->pool, &addr, text, len) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "rustdesk: invalid client address \"%*s\" from a "
                      "trusted proxy ignored", ngx_min(len, 64), text);
        return;
    }

    port = ngx_inet_get_port(c->sockaddr);
    ngx_inet_set_port(addr.sockaddr, port);

    text = ngx_pnalloc(c->pool, NGX_SOCKADDR_STRLEN);
    if (text == NULL) {
        return;
    }

    len = ngx_sock_ntop(addr.sockaddr, addr.socklen, text,
                        NGX_SOCKADDR_STRLEN, 0);

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "rustdesk: client address %*s from trusted proxy %V",
                   len, text, &c->addr_text);

    c->sockaddr = addr.sockaddr;
    c->socklen = addr.socklen;
    c->addr_text.data = text;
    c->addr_text.len = len;
}
