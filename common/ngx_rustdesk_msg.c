/*
 * RendezvousMessage encoding on protobuf-c.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_rustdesk_frame.h"
#include "ngx_rustdesk_msg.h"


ngx_rustdesk_msg_t *
ngx_rustdesk_msg_unpack(u_char *data, size_t len)
{
    return hbb__rendezvous_message__unpack(NULL, len, data);
}


void
ngx_rustdesk_msg_free(ngx_rustdesk_msg_t *m)
{
    if (m) {
        hbb__rendezvous_message__free_unpacked(m, NULL);
    }
}


size_t
ngx_rustdesk_msg_size(ngx_rustdesk_msg_t *m, ngx_uint_t framed)
{
    size_t  n;

    n = hbb__rendezvous_message__get_packed_size(m);

    return framed ? n + ngx_rustdesk_frame_header_size(n) : n;
}


u_char *
ngx_rustdesk_msg_pack(ngx_rustdesk_msg_t *m, ngx_uint_t framed, u_char *out)
{
    size_t  n;

    /* the size is walked for the frame header only: a datagram has none */

    if (framed) {
        n = hbb__rendezvous_message__get_packed_size(m);
        out += ngx_rustdesk_frame_write_header(out, n);
    }

    return out + hbb__rendezvous_message__pack(m, out);
}


const char *
ngx_rustdesk_msg_name(ngx_rustdesk_msg_t *m)
{
    const ProtobufCFieldDescriptor  *f;

    f = protobuf_c_message_descriptor_get_field(
                                        &hbb__rendezvous_message__descriptor,
                                        m->union_case);

    return f ? f->name : "unknown";
}


/* The message's type as the .proto names it, e.g. "RegisterPeer". */

const char *
ngx_rustdesk_msg_type(ngx_rustdesk_msg_t *m)
{
    const ProtobufCFieldDescriptor    *f;
    const ProtobufCMessageDescriptor  *d;

    f = protobuf_c_message_descriptor_get_field(
                                        &hbb__rendezvous_message__descriptor,
                                        m->union_case);

    if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE) {
        return "unknown";
    }

    d = f->descriptor;

    return d->short_name;
}


/* An enum value's name, e.g. "UUID_MISMATCH"; NULL when unknown. */

const char *
ngx_rustdesk_msg_enum_name(const ProtobufCEnumDescriptor *d, int value)
{
    const ProtobufCEnumValue  *ev;

    ev = protobuf_c_enum_descriptor_get_value(d, value);

    return ev ? ev->name : NULL;
}
