/*
 * RendezvousMessage encoding (PROTOCOL.md section 3) on protobuf-c.
 */

#ifndef _NGX_RUSTDESK_MSG_H_INCLUDED_
#define _NGX_RUSTDESK_MSG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "rendezvous.pb-c.h"


typedef Hbb__RendezvousMessage  ngx_rustdesk_msg_t;


/*
 * Decodes a payload; NULL when it is not a RendezvousMessage.  Unknown
 * fields and union members are skipped (the union case is then NOT_SET).
 * Free with ngx_rustdesk_msg_free().
 */
ngx_rustdesk_msg_t *ngx_rustdesk_msg_unpack(u_char *data, size_t len);
void ngx_rustdesk_msg_free(ngx_rustdesk_msg_t *m);

/* Encoded size, with the frame header when framed. */
size_t ngx_rustdesk_msg_size(ngx_rustdesk_msg_t *m, ngx_uint_t framed);

/* Encodes to out (room for ngx_rustdesk_msg_size()); returns the end. */
u_char *ngx_rustdesk_msg_pack(ngx_rustdesk_msg_t *m, ngx_uint_t framed,
    u_char *out);

/* The name of a union member, for logs. */
const char *ngx_rustdesk_msg_name(ngx_rustdesk_msg_t *m);
const char *ngx_rustdesk_msg_type(ngx_rustdesk_msg_t *m);
const char *ngx_rustdesk_msg_enum_name(const ProtobufCEnumDescriptor *d,
    int value);


#endif /* _NGX_RUSTDESK_MSG_H_INCLUDED_ */
