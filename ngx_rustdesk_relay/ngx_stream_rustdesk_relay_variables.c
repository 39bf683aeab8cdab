/*
 * The relay module's $rustdesk_* variables, for the stream access log
 * (README "Access log").  A relayed session ends with one line, the one
 * of the side that waited: both addresses, the uuid, the id of the peer
 * asked to relay when this nginx brokered the session, the bytes each
 * way, how long the pair lasted and why it ended.  The side that came
 * second ends quietly.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_relay_module.h"
#include "ngx_rustdesk_variables.h"


enum {
    NGX_RUSTDESK_VAR_ID = 0,
    NGX_RUSTDESK_VAR_PEER_ID,
    NGX_RUSTDESK_VAR_UUID,
    NGX_RUSTDESK_VAR_TRANSPORT,
    NGX_RUSTDESK_VAR_MESSAGE,
    NGX_RUSTDESK_VAR_RESULT,
    NGX_RUSTDESK_VAR_PARTNER_ADDR,
    NGX_RUSTDESK_VAR_PARTNER_BYTES_SENT,
    NGX_RUSTDESK_VAR_PARTNER_BYTES_RECEIVED,
    NGX_RUSTDESK_VAR_PAIR_TIME
};


static ngx_int_t ngx_stream_rustdesk_relay_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_rustdesk_relay_pair_variable(
    ngx_stream_session_t *s, ngx_stream_variable_value_t *v,
    ngx_stream_rustdesk_relay_side_t *side, ngx_uint_t which);


#define ngx_rustdesk_relay_var(name, which)                                  \
    { ngx_string(name), ngx_stream_rustdesk_relay_variable, which, NULL, 0 }

static ngx_rustdesk_variable_t  ngx_stream_rustdesk_relay_vars[] = {
    ngx_rustdesk_relay_var("rustdesk_id", NGX_RUSTDESK_VAR_ID),
    ngx_rustdesk_relay_var("rustdesk_peer_id", NGX_RUSTDESK_VAR_PEER_ID),
    ngx_rustdesk_relay_var("rustdesk_uuid", NGX_RUSTDESK_VAR_UUID),
    ngx_rustdesk_relay_var("rustdesk_transport", NGX_RUSTDESK_VAR_TRANSPORT),
    ngx_rustdesk_relay_var("rustdesk_message", NGX_RUSTDESK_VAR_MESSAGE),
    ngx_rustdesk_relay_var("rustdesk_result", NGX_RUSTDESK_VAR_RESULT),
    ngx_rustdesk_relay_var("rustdesk_partner_addr",
                           NGX_RUSTDESK_VAR_PARTNER_ADDR),
    ngx_rustdesk_relay_var("rustdesk_partner_bytes_sent",
                           NGX_RUSTDESK_VAR_PARTNER_BYTES_SENT),
    ngx_rustdesk_relay_var("rustdesk_partner_bytes_received",
                           NGX_RUSTDESK_VAR_PARTNER_BYTES_RECEIVED),
    ngx_rustdesk_relay_var("rustdesk_pair_time", NGX_RUSTDESK_VAR_PAIR_TIME),
    { ngx_null_string, NULL, 0, NULL, 0 }
};


ngx_int_t
ngx_stream_rustdesk_relay_add_variables(ngx_conf_t *cf)
{
    return ngx_rustdesk_variables_add(cf, ngx_stream_rustdesk_relay_vars);
}


static ngx_int_t
ngx_stream_rustdesk_relay_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    const char                        *text;
    ngx_rustdesk_variable_t           *rv;
    ngx_stream_rustdesk_relay_side_t  *side;

    rv = (ngx_rustdesk_variable_t *) data;

    side = ngx_stream_get_module_ctx(s, ngx_stream_rustdesk_relay_module);

    if (side == NULL) {
        return ngx_rustdesk_variable_next(s, v, data);
    }

    switch (rv->data) {

    case NGX_RUSTDESK_VAR_PEER_ID:
        return ngx_rustdesk_variable_str(v, side->peer_id.data,
                                         side->peer_id.len);

    case NGX_RUSTDESK_VAR_UUID:
        return ngx_rustdesk_variable_str(v, side->uuid.data, side->uuid.len);

    case NGX_RUSTDESK_VAR_TRANSPORT:
#if (NGX_STREAM_SSL)
        if (side->ws && s->connection->ssl) {
            text = "wss";
            break;
        }
#endif
        text = side->ws ? "ws" : "tcp";
        break;

    case NGX_RUSTDESK_VAR_MESSAGE:
        text = side->uuid.len ? "RequestRelay" : NULL;
        break;

    case NGX_RUSTDESK_VAR_RESULT:
        text = side->result;
        break;

    case NGX_RUSTDESK_VAR_PARTNER_ADDR:
        return ngx_rustdesk_variable_str(v, side->partner.data,
                                         side->partner.len);

    case NGX_RUSTDESK_VAR_PARTNER_BYTES_SENT:
    case NGX_RUSTDESK_VAR_PARTNER_BYTES_RECEIVED:
    case NGX_RUSTDESK_VAR_PAIR_TIME:
        return ngx_stream_rustdesk_relay_pair_variable(s, v, side, rv->data);

    default: /* NGX_RUSTDESK_VAR_ID: the requester's id is not sent */
        text = NULL;
        break;
    }

    if (text == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_rustdesk_variable_str(v, (u_char *) text, ngx_strlen(text));
}


/*
 * Of a pair this side waited for (the pair lives in its pool until its
 * session ends): bytes its client sent to the partner and received from
 * it, and the seconds from pairing to the end, as $session_time.
 */

static ngx_int_t
ngx_stream_rustdesk_relay_pair_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, ngx_stream_rustdesk_relay_side_t *side,
    ngx_uint_t which)
{
    u_char                            *p;
    ngx_msec_int_t                     ms;
    ngx_stream_rustdesk_relay_pair_t  *pair;

    pair = side->pair;

    if (pair == NULL || pair->a != side || pair->pipe || side->quiet) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(s->connection->pool, NGX_OFF_T_LEN + 4);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;

    switch (which) {

    case NGX_RUSTDESK_VAR_PARTNER_BYTES_SENT:
        p = ngx_sprintf(p, "%uL", pair->from_a);
        break;

    case NGX_RUSTDESK_VAR_PARTNER_BYTES_RECEIVED:
        p = ngx_sprintf(p, "%uL", pair->from_b);
        break;

    default: /* NGX_RUSTDESK_VAR_PAIR_TIME */
        ms = (ngx_msec_int_t) ((pair->closed ? pair->end : ngx_current_msec)
                               - pair->start);
        ms = ngx_max(ms, 0);
        p = ngx_sprintf(p, "%T.%03M", (time_t) ms / 1000, ms % 1000);
        break;
    }

    v->len = p - v->data;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
