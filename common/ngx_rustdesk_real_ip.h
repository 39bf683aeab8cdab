/*
 * The client behind a trusted proxy: the header rustdesk_real_ip_header
 * names, believed only from rustdesk_real_ip_from.
 */

#ifndef _NGX_RUSTDESK_REAL_IP_H_INCLUDED_
#define _NGX_RUSTDESK_REAL_IP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_rustdesk_ws.h"


/*
 * Makes the address of r's header (NGX_RUSTDESK_REAL_IP_*) c's, with c's
 * port, when c comes from one of from (NULL: none); else leaves c as it is.
 */
void ngx_rustdesk_real_ip(ngx_connection_t *c, ngx_rustdesk_ws_request_t *r,
    ngx_array_t *from, ngx_uint_t header);


#endif /* _NGX_RUSTDESK_REAL_IP_H_INCLUDED_ */
