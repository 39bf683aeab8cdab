/*
 * rustdesk-server's loopback text console, the connection part shared by
 * the rendezvous (hbbs) and relay (hbbr) commands: a client sends one
 * command (read once, up to 1024 bytes, within a second), gets the text
 * the module's command function writes, and the connection closes.
 *
 *     printf 'h\n' | nc 127.0.0.1 21120
 *
 * Only loopback clients are served, judged by the real address (behind
 * proxy_protocol + set_real_ip_from, the address the proxy reports).
 */

#ifndef _NGX_RUSTDESK_CONSOLE_H_INCLUDED_
#define _NGX_RUSTDESK_CONSOLE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>


#define NGX_RUSTDESK_CONSOLE_ARGS  4


/*
 * Writes the answer to args[0..n-1] (the command split at spaces, n >= 1)
 * into p..last and returns the new end.
 */
typedef u_char *(*ngx_rustdesk_console_run_pt)(ngx_stream_session_t *s,
    ngx_str_t *args, ngx_uint_t n, u_char *p, u_char *last);


/* The content handler's body: takes the connection over. */
void ngx_rustdesk_console_start(ngx_stream_session_t *s,
    ngx_rustdesk_console_run_pt run);

/* Loopback: 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
ngx_int_t ngx_rustdesk_sockaddr_is_loopback(struct sockaddr *sa);

/* The reference's "command [value]" arguments, for "<name>(<short>)". */
ngx_int_t ngx_rustdesk_console_is(ngx_str_t *arg, const char *name,
    const char *shortname);


#endif /* _NGX_RUSTDESK_CONSOLE_H_INCLUDED_ */
