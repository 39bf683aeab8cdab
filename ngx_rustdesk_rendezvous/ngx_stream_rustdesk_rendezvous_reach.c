/*
 * Reaching peer B (PROTOCOL.md sections 6 and 8): a message for B goes on
 * the stream it registered on, through the worker holding it, or as a
 * datagram from this server's UDP socket of the port it registered with,
 * so that it comes from the address B knows.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


/*
 * The largest datagram sent to a peer: a client's PunchHole, FetchLocalAddr
 * or RequestRelay is a few hundred bytes (a RequestRelay with a login
 * token under a kilobyte); and one IP packet on any path.
 */
#define NGX_RUSTDESK_UDP_TO_PEER_MAX  1200


static void ngx_stream_rustdesk_rendezvous_udp_to_peer(ngx_stream_session_t *s,
    ngx_rustdesk_ip_t *to, ngx_rustdesk_msg_t *m);
static void ngx_stream_rustdesk_rendezvous_udp_send(in_port_t port,
    ngx_rustdesk_ip_t *to, u_char *buf, size_t len, ngx_log_t *log);
static ngx_listening_t *ngx_stream_rustdesk_rendezvous_udp_listener(
    in_port_t port, ngx_uint_t family);
static ngx_uint_t ngx_stream_rustdesk_rendezvous_udp_server(
    ngx_listening_t *ls);


/*
 * A message to peer B: over its registered stream, or over UDP.
 * NGX_DECLINED: its stream is known to be gone, or the message is larger
 * than any a real client's request makes (a datagram that size would only
 * serve to flood B).
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_to_peer(ngx_stream_session_t *s,
    ngx_str_t *id, ngx_rustdesk_ip_t *to, ngx_pid_t stream,
    ngx_rustdesk_msg_t *m)
{
    size_t  size;

    if (stream > 0) {
        return ngx_stream_rustdesk_rendezvous_stream_send(s, id, stream, m);
    }

    size = ngx_rustdesk_msg_size(m, 0);

    if (size > NGX_RUSTDESK_UDP_TO_PEER_MAX) {
        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "rustdesk: %s of %uz bytes for peer \"%V\" not sent: "
                      "larger than %d bytes", ngx_rustdesk_msg_type(m), size,
                      id, NGX_RUSTDESK_UDP_TO_PEER_MAX);
        return NGX_DECLINED;
    }

    ngx_stream_rustdesk_rendezvous_udp_to_peer(s, to, m);

    return NGX_OK;
}


/*
 * The same for a message encoded already, with no session of its own (one
 * that another host of the cluster passed on): from a UDP socket of a
 * rustdesk_rendezvous server.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_to_peer_raw(ngx_rustdesk_peer_zone_t *z,
    ngx_str_t *id, ngx_rustdesk_ip_t *to, ngx_pid_t stream, u_char *msg,
    size_t len, ngx_log_t *log)
{
    if (stream > 0) {
        return ngx_stream_rustdesk_rendezvous_stream_send_raw(z, id, stream,
                                                              msg, len, log);
    }

    if (len > NGX_RUSTDESK_UDP_TO_PEER_MAX) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "rustdesk: a message of %uz bytes for peer \"%V\" "
                      "not sent: larger than %d bytes", len, id,
                      NGX_RUSTDESK_UDP_TO_PEER_MAX);
        return NGX_DECLINED;
    }

    ngx_stream_rustdesk_rendezvous_udp_send(0, to, msg, len, log);

    return NGX_OK;
}


/*
 * A datagram to peer B from this server's UDP socket on the same port as
 * the TCP connection (with reuseport, this worker's copy of it), so that
 * it comes from the address B registered with.
 */

static void
ngx_stream_rustdesk_rendezvous_udp_to_peer(ngx_stream_session_t *s,
    ngx_rustdesk_ip_t *to, ngx_rustdesk_msg_t *m)
{
    u_char            *buf, *last;
    ngx_connection_t  *c;

    c = s->connection;

    buf = ngx_pnalloc(c->pool, ngx_rustdesk_msg_size(m, 0));
    if (buf == NULL) {
        return;
    }

    last = ngx_rustdesk_msg_pack(m, 0, buf);

    ngx_stream_rustdesk_rendezvous_udp_send(
                           ngx_inet_get_port(c->local_sockaddr), to, buf,
                           last - buf, c->log);
}


/* From the UDP listener of port (0: of any rendezvous server). */

static void
ngx_stream_rustdesk_rendezvous_udp_send(in_port_t port, ngx_rustdesk_ip_t *to,
    u_char *buf, size_t size, ngx_log_t *log)
{
    ssize_t                   n;
    socklen_t                 len;
    ngx_listening_t          *ls;
    struct sockaddr_storage   ss;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6       sin6;
#endif

    /*
     * The UDP listener of this port (the main port), else, for the
     * WebSocket port, one of a rendezvous server: B listens to the port it
     * registered with, not to ours.
     */

    ls = port ? ngx_stream_rustdesk_rendezvous_udp_listener(port, to->family)
              : NULL;

    if (ls == NULL) {
        ls = ngx_stream_rustdesk_rendezvous_udp_listener(0, to->family);
    }

    if (ls == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "rustdesk: no UDP listener of a rustdesk_rendezvous "
                      "server to reach the peer: add \"listen ... udp\" to "
                      "the main port's server");
        return;
    }

    len = ngx_rustdesk_ip_to_sockaddr(to, &ss);

#if (NGX_HAVE_INET6)
    if (ls->sockaddr->sa_family == AF_INET6 && ss.ss_family == AF_INET) {
        /* an IPv4 peer from a dual-stack socket: its v4-mapped address */

        ngx_memzero(&sin6, sizeof(struct sockaddr_in6));
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = ((struct sockaddr_in *) &ss)->sin_port;
        sin6.sin6_addr.s6_addr[10] = 0xff;
        sin6.sin6_addr.s6_addr[11] = 0xff;
        ngx_memcpy(&sin6.sin6_addr.s6_addr[12],
                   &((struct sockaddr_in *) &ss)->sin_addr, 4);

        ngx_memcpy(&ss, &sin6, sizeof(struct sockaddr_in6));
        len = sizeof(struct sockaddr_in6);
    }
#endif

    n = sendto(ls->fd, buf, size, 0, (struct sockaddr *) &ss, len);

    if (n == -1) {
        ngx_log_error(NGX_LOG_INFO, log, ngx_socket_errno,
                      "rustdesk: sendto() to the peer failed");
    }
}


/*
 * A UDP listener to send to a peer from: on this port (0: any port of a
 * rustdesk_rendezvous server), of the peer's family if there is one.
 */

static ngx_listening_t *
ngx_stream_rustdesk_rendezvous_udp_listener(in_port_t port, ngx_uint_t family)
{
    ngx_uint_t        i;
    ngx_listening_t  *ls, *found;

    found = NULL;
    ls = ngx_cycle->listening.elts;

    for (i = 0; i < ngx_cycle->listening.nelts; i++) {
        if (ls[i].type != SOCK_DGRAM || ls[i].fd == (ngx_socket_t) -1) {
            continue;
        }

        if (port ? ngx_inet_get_port(ls[i].sockaddr) != port
                 : !ngx_stream_rustdesk_rendezvous_udp_server(&ls[i]))
        {
            continue;
        }

        found = &ls[i];

        if (ls[i].sockaddr->sa_family == (family == AF_INET6
                                          ? AF_INET6 : AF_INET))
        {
            break;
        }
    }

    return found;
}


/* Whether a listener belongs to a rustdesk_rendezvous server (not a
 * WebSocket one). */

static ngx_uint_t
ngx_stream_rustdesk_rendezvous_udp_server(ngx_listening_t *ls)
{
    ngx_uint_t                                  i;
    ngx_stream_port_t                          *port;
    ngx_stream_addr_conf_t                     *addr_conf;
    ngx_stream_conf_ctx_t                      *ctx;
    ngx_stream_rustdesk_rendezvous_srv_conf_t  *rscf;

    port = ls->servers;

    for (i = 0; i < port->naddrs; i++) {
#if (NGX_HAVE_INET6)
        if (ls->sockaddr->sa_family == AF_INET6) {
            addr_conf = &((ngx_stream_in6_addr_t *) port->addrs)[i].conf;

        } else
#endif
        {
            addr_conf = &((ngx_stream_in_addr_t *) port->addrs)[i].conf;
        }

        /*
         * The one place that depends on the nginx version: with stream
         * virtual servers (1.25.5) an address names its default server
         * instead of a configuration context.
         */
#if (nginx_version >= 1025005)
        ctx = addr_conf->default_server->ctx;
#else
        ctx = addr_conf->ctx;
#endif

        rscf = ctx->srv_conf[ngx_stream_rustdesk_rendezvous_module.ctx_index];

        if (rscf->role == NGX_RUSTDESK_ROLE_RENDEZVOUS && !rscf->websocket) {
            return 1;
        }
    }

    return 0;
}
