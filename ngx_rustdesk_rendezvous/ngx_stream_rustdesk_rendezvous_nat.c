/*
 * The NAT test and the online query (PROTOCOL.md section 6): what the
 * NAT-test port answers (and the main port for TestNatRequest, the
 * WebSocket port for OnlineRequest).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_rendezvous_module.h"


/*
 * TestNatResponse{port}: the client's source port as seen here; the main
 * port adds a ConfigUpdate when the serial is higher than the client's.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_test_nat(ngx_stream_rustdesk_rendezvous_req_t *r,
    Hbb__TestNatRequest *tnr)
{
    ngx_rustdesk_msg_t     out;
    Hbb__TestNatResponse   tnr_out;

    hbb__rendezvous_message__init(&out);
    hbb__test_nat_response__init(&tnr_out);

    tnr_out.port = r->addr.port;

    if (r->port != NGX_RUSTDESK_PORT_NAT) {
        tnr_out.cu = ngx_stream_rustdesk_rendezvous_config_update(r->session,
                                                                tnr->serial);
    }

    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_TEST_NAT_RESPONSE;
    out.test_nat_response = &tnr_out;

    r->result = "OK";

    if (r->send(r, &out) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_DONE;
}


/*
 * OnlineResponse: bit (7 - i % 8) of byte i / 8 is set when peer i is
 * online (registered in the last 30 s).  Memory only, as the reference.
 */

ngx_int_t
ngx_stream_rustdesk_rendezvous_online(ngx_stream_rustdesk_rendezvous_req_t *r,
    Hbb__OnlineRequest *req)
{
    size_t                                       i;
    ngx_str_t                                    id;
    ngx_rustdesk_msg_t                           out;
    Hbb__OnlineResponse                          res;
    ngx_stream_rustdesk_rendezvous_main_conf_t  *rmcf;

    rmcf = ngx_stream_get_module_main_conf(r->session,
                                        ngx_stream_rustdesk_rendezvous_module);

    hbb__rendezvous_message__init(&out);
    hbb__online_response__init(&res);

    res.states.len = (req->n_peers + 7) / 8;

    if (res.states.len) {
        res.states.data = ngx_pcalloc(r->session->connection->pool,
                                      res.states.len);
        if (res.states.data == NULL) {
            return NGX_ERROR;
        }
    }

    for (i = 0; i < req->n_peers; i++) {
        id.data = (u_char *) req->peers[i];
        id.len = ngx_strlen(req->peers[i]);

        if (ngx_rustdesk_peer_online(rmcf->zone, &id, ngx_current_msec)) {
            res.states.data[i / 8] |= 1 << (7 - i % 8);
        }
    }

    /* the peers not online here may be online on another host */

    if (ngx_stream_rustdesk_rendezvous_cluster_on(rmcf)
        && ngx_stream_rustdesk_rendezvous_cluster_online(r, req->peers,
                                                         req->n_peers,
                                                         res.states.data)
           == NGX_AGAIN)
    {
        return NGX_AGAIN;
    }

    out.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_ONLINE_RESPONSE;
    out.online_response = &res;

    r->result = "OK";

    if (r->send(r, &out) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_DONE;
}
