/*
 * The rendezvous module's $rustdesk_* variables, for the stream access log
 * (README "Access log"): what the session's last message was, what came
 * of it, and whom it named.  A UDP datagram is a session of its own.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"
#include "ngx_rustdesk_variables.h"


enum {
    NGX_RUSTDESK_VAR_ID = 0,
    NGX_RUSTDESK_VAR_PEER_ID,
    NGX_RUSTDESK_VAR_UUID,
    NGX_RUSTDESK_VAR_TRANSPORT,
    NGX_RUSTDESK_VAR_MESSAGE,
    NGX_RUSTDESK_VAR_RESULT
};


static ngx_int_t ngx_stream_rustdesk_rendezvous_variable(
    ngx_stream_session_t *s, ngx_stream_variable_value_t *v, uintptr_t data);
static const char *ngx_stream_rustdesk_rendezvous_transport(
    ngx_stream_rustdesk_rendezvous_req_t *r);


#define ngx_rustdesk_rendezvous_var(name, which)                             \
    { ngx_string(name), ngx_stream_rustdesk_rendezvous_variable, which,       \
      NULL, 0 }

static ngx_rustdesk_variable_t  ngx_stream_rustdesk_rendezvous_vars[] = {
    ngx_rustdesk_rendezvous_var("rustdesk_id", NGX_RUSTDESK_VAR_ID),
    ngx_rustdesk_rendezvous_var("rustdesk_peer_id", NGX_RUSTDESK_VAR_PEER_ID),
    ngx_rustdesk_rendezvous_var("rustdesk_uuid", NGX_RUSTDESK_VAR_UUID),
    ngx_rustdesk_rendezvous_var("rustdesk_transport",
                                NGX_RUSTDESK_VAR_TRANSPORT),
    ngx_rustdesk_rendezvous_var("rustdesk_message", NGX_RUSTDESK_VAR_MESSAGE),
    ngx_rustdesk_rendezvous_var("rustdesk_result", NGX_RUSTDESK_VAR_RESULT),
    { ngx_null_string, NULL, 0, NULL, 0 }
};


ngx_int_t
ngx_stream_rustdesk_rendezvous_add_variables(ngx_conf_t *cf)
{
    return ngx_rustdesk_variables_add(cf, ngx_stream_rustdesk_rendezvous_vars);
}


static ngx_int_t
ngx_stream_rustdesk_rendezvous_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    const char                            *text;
    ngx_str_t                             *str;
    ngx_rustdesk_variable_t               *rv;
    ngx_stream_rustdesk_rendezvous_req_t  *r;

    rv = (ngx_rustdesk_variable_t *) data;

    /* both transports' contexts begin with the request */
    r = ngx_stream_get_module_ctx(s, ngx_stream_rustdesk_rendezvous_module);

    if (r == NULL) {
        /* not a rendezvous session (or the console's) */
        return ngx_rustdesk_variable_next(s, v, data);
    }

    switch (rv->data) {

    case NGX_RUSTDESK_VAR_ID:
        str = &r->id;
        break;

    case NGX_RUSTDESK_VAR_PEER_ID:
        str = &r->peer_id;
        break;

    case NGX_RUSTDESK_VAR_UUID:
        str = &r->uuid;
        break;

    default:
        if (rv->data == NGX_RUSTDESK_VAR_TRANSPORT) {
            text = ngx_stream_rustdesk_rendezvous_transport(r);

        } else if (rv->data == NGX_RUSTDESK_VAR_MESSAGE) {
            text = r->message;

        } else {
            text = r->result;
        }

        if (text == NULL) {
            v->not_found = 1;
            return NGX_OK;
        }

        return ngx_rustdesk_variable_str(v, (u_char *) text,
                                         ngx_strlen(text));
    }

    return ngx_rustdesk_variable_str(v, str->data, str->len);
}


/* udp, tcp, secure (secure TCP, PROTOCOL.md section 8), ws, wss */

static const char *
ngx_stream_rustdesk_rendezvous_transport(
    ngx_stream_rustdesk_rendezvous_req_t *r)
{
    if (r->stream == NULL) {
        return "udp";
    }

    if (r->port == NGX_RUSTDESK_PORT_WS) {
#if (NGX_STREAM_SSL)
        if (r->session->connection->ssl) {
            return "wss";
        }
#endif
        return "ws";
    }

    if (r->stream->secure && r->stream->secure->on) {
        return "secure";
    }

    return "tcp";
}
