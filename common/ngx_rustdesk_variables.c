/*
 * $rustdesk_* variables shared by name between the two modules.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_rustdesk_variables.h"


ngx_int_t
ngx_rustdesk_variables_add(ngx_conf_t *cf, ngx_rustdesk_variable_t *vars)
{
    ngx_stream_variable_t    *v;
    ngx_rustdesk_variable_t  *rv;

    for (rv = vars; rv->name.len; rv++) {

        /*
         * changeable: the other module may add the same name; it then
         * gets this one back, and chains to our handler
         */

        v = ngx_stream_add_variable(cf, &rv->name,
                                    NGX_STREAM_VAR_CHANGEABLE
                                    |NGX_STREAM_VAR_NOCACHEABLE);
        if (v == NULL) {
            return NGX_ERROR;
        }

        rv->next = v->get_handler;
        rv->next_data = v->data;

        v->get_handler = rv->get;
        v->data = (uintptr_t) rv;
    }

    return NGX_OK;
}


ngx_int_t
ngx_rustdesk_variable_next(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_rustdesk_variable_t  *rv = (ngx_rustdesk_variable_t *) data;

    if (rv->next) {
        return rv->next(s, v, rv->next_data);
    }

    v->not_found = 1;

    return NGX_OK;
}


ngx_int_t
ngx_rustdesk_variable_str(ngx_stream_variable_value_t *v, u_char *data,
    size_t len)
{
    if (len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = data;

    return NGX_OK;
}
