/*
 * A RegisterPeer heartbeat read in place (ngx_rustdesk_heartbeat.h).
 */

#include "ngx_rustdesk_heartbeat.h"


#define NGX_RUSTDESK_HB_MEMBER   0x32   /* register_peer = 6, length */
#define NGX_RUSTDESK_HB_ID       0x0a   /* id = 1, length */
#define NGX_RUSTDESK_HB_SERIAL   0x10   /* serial = 2, varint */


/*
 * A varint of at most 5 bytes whose value fits 31 bits (a length, or a
 * serial that is not negative): its length, 0 for anything else.
 */

static size_t
ngx_rustdesk_heartbeat_varint(const uint8_t *p, const uint8_t *end,
    uint32_t *value)
{
    size_t    i;
    uint32_t  v;

    v = 0;

    for (i = 0; i < 5 && p + i < end; i++) {
        v |= (uint32_t) (p[i] & 0x7f) << (7 * i);

        if ((p[i] & 0x80) == 0) {
            if (i == 4 && p[i] > 0x07) {
                return 0;               /* 32 bits or more */
            }

            *value = v;
            return i + 1;
        }
    }

    return 0;
}


int
ngx_rustdesk_heartbeat_read(const uint8_t *data, size_t len,
    const uint8_t **id, size_t *id_len, int32_t *serial)
{
    size_t          n;
    uint32_t        v;
    unsigned        seen_id, seen_serial;
    const uint8_t  *p, *end;

    end = data + len;

    /* the member, taking the whole datagram */

    if (len < 2 || data[0] != NGX_RUSTDESK_HB_MEMBER) {
        return 0;
    }

    n = ngx_rustdesk_heartbeat_varint(data + 1, end, &v);

    if (n == 0 || v != (size_t) (end - data - 1 - n)) {
        return 0;
    }

    p = data + 1 + n;

    *id = p;
    *id_len = 0;
    *serial = 0;
    seen_id = 0;
    seen_serial = 0;

    while (p < end) {

        if (*p == NGX_RUSTDESK_HB_ID && !seen_id) {
            n = ngx_rustdesk_heartbeat_varint(p + 1, end, &v);

            if (n == 0 || v > (size_t) (end - p - 1 - n)) {
                return 0;
            }

            *id = p + 1 + n;
            *id_len = v;
            seen_id = 1;
            p += 1 + n + v;
            continue;
        }

        if (*p == NGX_RUSTDESK_HB_SERIAL && !seen_serial) {
            n = ngx_rustdesk_heartbeat_varint(p + 1, end, &v);

            if (n == 0) {
                return 0;
            }

            *serial = (int32_t) v;
            seen_serial = 1;
            p += 1 + n;
            continue;
        }

        return 0;                       /* another field, or twice */
    }

    return 1;
}
