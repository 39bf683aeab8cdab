/*
 * $rustdesk_* variables that both modules define (DESIGN.md "Observability
 * is nginx's"): one name, such as $rustdesk_result, for the rendezvous's
 * sessions and the relay's, so that one log_format serves both.  nginx
 * keeps one handler per name; each module's handler answers for its own
 * sessions and passes the others on to the handler it replaced.
 */

#ifndef _NGX_RUSTDESK_VARIABLES_H_INCLUDED_
#define _NGX_RUSTDESK_VARIABLES_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>


typedef struct {
    ngx_str_t                    name;
    ngx_stream_get_variable_pt   get;       /* this module's */
    uintptr_t                    data;

    /* what the name had before: the other module's, or none */
    ngx_stream_get_variable_pt   next;
    uintptr_t                    next_data;
} ngx_rustdesk_variable_t;


/*
 * Adds vars (up to one with an empty name) in preconfiguration; the
 * array must live as long as the process (a static one).  Each get()
 * answers through ngx_rustdesk_variable_next() when the session is not
 * its module's.
 */
ngx_int_t ngx_rustdesk_variables_add(ngx_conf_t *cf,
    ngx_rustdesk_variable_t *vars);

ngx_int_t ngx_rustdesk_variable_next(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);

/* v set to the string (not copied), or not found when it is empty */
ngx_int_t ngx_rustdesk_variable_str(ngx_stream_variable_value_t *v,
    u_char *data, size_t len);


#endif /* _NGX_RUSTDESK_VARIABLES_H_INCLUDED_ */
