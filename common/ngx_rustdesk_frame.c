/*
 * RustDesk TCP frame codec (PROTOCOL.md section 2).
 */

#include <string.h>

#include "ngx_rustdesk_frame.h"


void
ngx_rustdesk_frame_decoder_init(ngx_rustdesk_frame_decoder_t *d, u_char *buf,
    size_t max)
{
    d->buf = buf;
    d->cap = max;
    d->max = max;
    d->len = 0;
    d->got = 0;
    d->header = 0;
    d->hlen = 0;
    d->hgot = 0;
}


void
ngx_rustdesk_frame_decoder_set_buf(ngx_rustdesk_frame_decoder_t *d,
    u_char *buf, size_t cap)
{
    /* only between frames or right after GROW: nothing stored yet */
    d->buf = buf;
    d->cap = cap;
}


ngx_rustdesk_frame_rc_e
ngx_rustdesk_frame_decode(ngx_rustdesk_frame_decoder_t *d, u_char **pos,
    u_char *last)
{
    size_t   n;
    u_char  *p;

    p = *pos;

    while (d->hlen == 0 || d->hgot < d->hlen) {

        if (p == last) {
            *pos = p;
            return NGX_RUSTDESK_FRAME_AGAIN;
        }

        if (d->hlen == 0) {
            d->hlen = (*p & 0x03) + 1;
        }

        d->header |= (uint32_t) *p++ << (8 * d->hgot);
        d->hgot++;

        if (d->hgot == d->hlen) {
            d->len = d->header >> 2;
            d->got = 0;

            if (d->len > d->max) {
                *pos = p;
                return NGX_RUSTDESK_FRAME_TOO_BIG;
            }
        }
    }

    if (d->len > d->cap) {
        *pos = p;
        return NGX_RUSTDESK_FRAME_GROW;
    }

    n = d->len - d->got;

    if ((size_t) (last - p) < n) {
        n = last - p;
    }

    if (n) {
        memcpy(d->buf + d->got, p, n);
        d->got += n;
        p += n;
    }

    *pos = p;

    if (d->got < d->len) {
        return NGX_RUSTDESK_FRAME_AGAIN;
    }

    /* the next call starts a new header */

    d->hlen = 0;
    d->hgot = 0;
    d->header = 0;

    return NGX_RUSTDESK_FRAME_DONE;
}


size_t
ngx_rustdesk_frame_header_size(size_t len)
{
    if (len <= 0x3F) {
        return 1;
    }

    if (len <= 0x3FFF) {
        return 2;
    }

    if (len <= 0x3FFFFF) {
        return 3;
    }

    if (len <= NGX_RUSTDESK_FRAME_MAX_LEN) {
        return 4;
    }

    return 0;
}


size_t
ngx_rustdesk_frame_write_header(u_char *out, size_t len)
{
    size_t    i, n;
    uint32_t  h;

    n = ngx_rustdesk_frame_header_size(len);
    if (n == 0) {
        return 0;
    }

    h = ((uint32_t) len << 2) | (uint32_t) (n - 1);

    for (i = 0; i < n; i++) {
        out[i] = (u_char) (h >> (8 * i));
    }

    return n;
}
