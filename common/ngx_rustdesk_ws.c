/*
 * WebSocket server side (RFC 6455): upgrade request, frame decoder, frame
 * header.  Pure C, so that t/unit can test it without nginx.
 */

#include <string.h>
#include <strings.h>

#include "ngx_rustdesk_ws.h"


enum {
    ws_start = 0,               /* the first two header bytes */
    ws_header,                  /* the extended length and the mask */
    ws_payload
};


/* a step's "go on with the next state" (not an ngx_rustdesk_ws_rc_e) */
#define WS_NEXT  -1


static const unsigned char *ws_find(const unsigned char *p, size_t len,
    const char *s);
static int ws_token(const unsigned char *v, size_t len, const char *token);
static int ws_base64(const unsigned char *p, size_t len);
static void ws_unmask(unsigned char *dst, const unsigned char *src, size_t n,
    const unsigned char *mask, size_t off);
static int ws_header_bytes(ngx_rustdesk_ws_decoder_t *d, unsigned char **pos,
    unsigned char *last, size_t n);
static int ws_start_step(ngx_rustdesk_ws_decoder_t *d, unsigned char **pos,
    unsigned char *last);
static int ws_header_step(ngx_rustdesk_ws_decoder_t *d, unsigned char **pos,
    unsigned char *last);
static int ws_payload_step(ngx_rustdesk_ws_decoder_t *d, unsigned char **pos,
    unsigned char *last);
static int ws_frame_end(ngx_rustdesk_ws_decoder_t *d);
static ngx_rustdesk_ws_rc_e ws_error(ngx_rustdesk_ws_decoder_t *d,
    unsigned code, const char *reason);


/* The request line, then "name: value" lines; names in any case. */

int
ngx_rustdesk_ws_parse_request(const unsigned char *p, size_t len,
    ngx_rustdesk_ws_request_t *r)
{
    int                   upgrade, connection, version;
    size_t                n, vlen;
    const unsigned char  *end, *line, *eol, *colon, *v, *c;

    memset(r, 0, sizeof(ngx_rustdesk_ws_request_t));

    end = ws_find(p, len, "\r\n\r\n");
    if (end == NULL) {
        return 0;
    }

    r->size = end + 4 - p;
    end += 2;                           /* the last header's "\r\n" */

    eol = ws_find(p, end - p, "\r\n");

    /* "GET <path> HTTP/1.1" */

    if (eol - p < 4 || memcmp(p, "GET ", 4) != 0) {
        r->status = 405;
        r->reason = "not a GET request";
        return 1;
    }

    for (c = eol; c > p && c[-1] != ' '; c--) { /* void */ }

    /* a path that is not empty, then the version */

    if (c <= p + 5 || p[4] == ' ' || eol - c != 8 || memcmp(c, "HTTP/1.", 7) != 0
        || c[7] < '1' || c[7] > '9')
    {
        r->status = 400;
        r->reason = "not an HTTP/1.1 request line";
        return 1;
    }

    upgrade = 0;
    connection = 0;
    version = 0;

    for (line = eol + 2; line < end; line = eol + 2) {
        eol = ws_find(line, end - line, "\r\n");

        colon = memchr(line, ':', eol - line);
        if (colon == NULL || colon == line) {
            r->status = 400;
            r->reason = "a malformed header line";
            return 1;
        }

        n = colon - line;

        for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++) {
            /* void */
        }

        for (vlen = eol - v; vlen && (v[vlen - 1] == ' '
                                      || v[vlen - 1] == '\t'); vlen--)
        {
            /* void */
        }

#define ws_is(name)                                                           \
        (n == sizeof(name) - 1 && strncasecmp((const char *) line, name, n) == 0)

        /* a header given twice counts as one list (RFC 7230 3.2.2) */

        if (ws_is("Upgrade")) {
            upgrade |= ws_token(v, vlen, "websocket");

        } else if (ws_is("Connection")) {
            connection |= ws_token(v, vlen, "upgrade");

        } else if (ws_is("Sec-WebSocket-Key")) {
            r->key = v;
            r->key_len = vlen;

        } else if (ws_is("Sec-WebSocket-Version")) {
            version = (vlen == 2 && v[0] == '1' && v[1] == '3');

        } else if (ws_is("X-Real-IP")) {
            r->real_ip = v;
            r->real_ip_len = vlen;

        } else if (ws_is("X-Forwarded-For")) {
            /* the last address: the one the nearest proxy added */

            for (c = v + vlen; c > v && c[-1] != ','; c--) { /* void */ }

            while (c < v + vlen && (*c == ' ' || *c == '\t')) {
                c++;
            }

            r->forwarded = c;
            r->forwarded_len = v + vlen - c;
        }

#undef ws_is
    }

    if (!upgrade || !connection) {
        r->status = 400;
        r->reason = "not a WebSocket upgrade";
        return 1;
    }

    /* 16 random bytes in base64 */

    if (r->key_len != 24 || r->key[22] != '=' || r->key[23] != '='
        || !ws_base64(r->key, 22))
    {
        r->status = 400;
        r->reason = "no valid Sec-WebSocket-Key";
        return 1;
    }

    if (!version) {
        r->status = 426;
        r->reason = "not WebSocket version 13";
        return 1;
    }

    return 1;
}


void
ngx_rustdesk_ws_decoder_init(ngx_rustdesk_ws_decoder_t *d, unsigned char *buf,
    size_t cap, size_t max)
{
    memset(d, 0, sizeof(ngx_rustdesk_ws_decoder_t));

    d->buf = buf;
    d->cap = cap;
    d->max = max;
}


void
ngx_rustdesk_ws_decoder_set_buf(ngx_rustdesk_ws_decoder_t *d,
    unsigned char *buf, size_t cap)
{
    d->buf = buf;
    d->cap = cap;
}


/*
 * A state machine of three steps, each taking what it needs from the
 * input: the first two header bytes (checked at once), the rest of the
 * header (extended length and mask), the payload (unmasked into the
 * message or the control buffer).  A step returns WS_NEXT to go on with
 * the next state, or what the caller gets.
 */

ngx_rustdesk_ws_rc_e
ngx_rustdesk_ws_decode(ngx_rustdesk_ws_decoder_t *d, unsigned char **pos,
    unsigned char *last)
{
    int  rc;

    if (d->delivered) {
        d->delivered = 0;
        d->len = 0;
    }

    for ( ;; ) {

        switch (d->state) {

        case ws_start:
            rc = ws_start_step(d, pos, last);
            break;

        case ws_header:
            rc = ws_header_step(d, pos, last);
            break;

        default: /* ws_payload */
            rc = ws_payload_step(d, pos, last);
            break;
        }

        if (rc != WS_NEXT) {
            return (ngx_rustdesk_ws_rc_e) rc;
        }
    }
}


/* Header bytes from the input until there are n: 1 when there are. */

static int
ws_header_bytes(ngx_rustdesk_ws_decoder_t *d, unsigned char **pos,
    unsigned char *last, size_t n)
{
    while (*pos < last && d->hlen < n) {
        d->hdr[d->hlen++] = *(*pos)++;
    }

    return d->hlen == n;
}


/* The first two bytes: FIN, reserved bits, opcode; mask bit, length. */

static int
ws_start_step(ngx_rustdesk_ws_decoder_t *d, unsigned char **pos,
    unsigned char *last)
{
    unsigned char  b0, b1;

    if (!ws_header_bytes(d, pos, last, 2)) {
        return NGX_RUSTDESK_WS_AGAIN;
    }

    b0 = d->hdr[0];
    b1 = d->hdr[1];

    d->fin = b0 >> 7;
    d->opcode = b0 & 0x0f;

    if (b0 & 0x70) {
        return ws_error(d, NGX_RUSTDESK_WS_PROTOCOL, "reserved bits set");
    }

    if (!(b1 & 0x80)) {
        return ws_error(d, NGX_RUSTDESK_WS_PROTOCOL,
                        "an unmasked client frame");
    }

    switch (d->opcode) {

    case NGX_RUSTDESK_WS_CONT:
        if (!d->fragmented) {
            return ws_error(d, NGX_RUSTDESK_WS_PROTOCOL,
                            "a continuation without a start");
        }
        break;

    case NGX_RUSTDESK_WS_BINARY:
        if (d->fragmented) {
            return ws_error(d, NGX_RUSTDESK_WS_PROTOCOL,
                            "a new message inside a fragmented one");
        }
        break;

    case NGX_RUSTDESK_WS_TEXT:
        return ws_error(d, NGX_RUSTDESK_WS_UNSUPPORTED, "a text message");

    case NGX_RUSTDESK_WS_CLOSE_FRAME:
    case NGX_RUSTDESK_WS_PING_FRAME:
    case NGX_RUSTDESK_WS_PONG_FRAME:
        if (!d->fin || (b1 & 0x7f) > NGX_RUSTDESK_WS_CONTROL_MAX) {
            return ws_error(d, NGX_RUSTDESK_WS_PROTOCOL,
                            "a fragmented or long control frame");
        }
        break;

    default:
        return ws_error(d, NGX_RUSTDESK_WS_PROTOCOL, "an unknown opcode");
    }

    /* what follows: a 16- or 64-bit length, if any, then the mask */

    switch (b1 & 0x7f) {
    case 126:
        d->hsize = 2 + 2 + 4;
        break;
    case 127:
        d->hsize = 2 + 8 + 4;
        break;
    default:
        d->hsize = 2 + 4;
    }

    d->state = ws_header;

    return WS_NEXT;
}


/* The rest of the header: the frame's length and mask. */

static int
ws_header_step(ngx_rustdesk_ws_decoder_t *d, unsigned char **pos,
    unsigned char *last)
{
    size_t    i;
    uint64_t  len;

    if (!ws_header_bytes(d, pos, last, d->hsize)) {
        return NGX_RUSTDESK_WS_AGAIN;
    }

    len = d->hdr[1] & 0x7f;

    if (len == 126) {
        len = ((uint64_t) d->hdr[2] << 8) | d->hdr[3];

    } else if (len == 127) {
        if (d->hdr[2] & 0x80) {
            return ws_error(d, NGX_RUSTDESK_WS_PROTOCOL,
                            "a 64-bit length with its top bit set");
        }

        len = 0;

        for (i = 2; i < 10; i++) {
            len = (len << 8) | d->hdr[i];
        }
    }

    memcpy(d->mask, &d->hdr[d->hsize - 4], 4);

    d->flen = len;
    d->fgot = 0;
    d->hlen = 0;
    d->state = ws_payload;

    if (d->opcode >= NGX_RUSTDESK_WS_CLOSE_FRAME) {
        d->ctl_len = 0;
        return WS_NEXT;
    }

    if (len > d->max || d->len > d->max - len) {
        return ws_error(d, NGX_RUSTDESK_WS_TOO_BIG,
                        "a message larger than the maximum");
    }

    return WS_NEXT;
}


/*
 * The payload, unmasked as it comes; a data frame's goes after what the
 * message has so far, in a buffer the caller grows first when it is short.
 */

static int
ws_payload_step(ngx_rustdesk_ws_decoder_t *d, unsigned char **pos,
    unsigned char *last)
{
    size_t          n;
    int             data;
    unsigned char  *dst;

    data = (d->opcode < NGX_RUSTDESK_WS_CLOSE_FRAME);

    if (data && d->fgot == 0 && d->len + d->flen > d->cap) {
        d->need = d->len + d->flen;
        return NGX_RUSTDESK_WS_GROW;
    }

    n = (size_t) ((uint64_t) (last - *pos) < d->flen - d->fgot
                  ? (uint64_t) (last - *pos) : d->flen - d->fgot);

    dst = data ? d->buf + d->len : d->ctl + d->ctl_len;

    ws_unmask(dst, *pos, n, d->mask, (size_t) (d->fgot & 3));

    *pos += n;
    d->fgot += n;

    if (data) {
        d->len += n;

    } else {
        d->ctl_len += n;
    }

    if (d->fgot < d->flen) {
        return NGX_RUSTDESK_WS_AGAIN;
    }

    d->state = ws_start;

    return ws_frame_end(d);
}


/* A whole frame: a control event, a whole message, or more to come. */

static int
ws_frame_end(ngx_rustdesk_ws_decoder_t *d)
{
    switch (d->opcode) {

    case NGX_RUSTDESK_WS_PING_FRAME:
        return NGX_RUSTDESK_WS_PING;

    case NGX_RUSTDESK_WS_PONG_FRAME:
        return NGX_RUSTDESK_WS_PONG;

    case NGX_RUSTDESK_WS_CLOSE_FRAME:
        if (d->ctl_len == 0) {
            d->code = NGX_RUSTDESK_WS_NO_STATUS;
            return NGX_RUSTDESK_WS_CLOSE;
        }

        if (d->ctl_len == 1) {
            return ws_error(d, NGX_RUSTDESK_WS_PROTOCOL,
                            "a close frame of 1 byte");
        }

        d->code = (d->ctl[0] << 8) | d->ctl[1];

        if (d->code < 1000 || d->code >= 5000
            || (d->code >= 1004 && d->code <= 1006)
            || (d->code >= 1015 && d->code < 3000))
        {
            return ws_error(d, NGX_RUSTDESK_WS_PROTOCOL,
                            "an invalid close code");
        }

        return NGX_RUSTDESK_WS_CLOSE;

    default:
        if (!d->fin) {
            d->fragmented = 1;
            return WS_NEXT;
        }

        d->fragmented = 0;
        d->delivered = 1;
        return NGX_RUSTDESK_WS_MESSAGE;
    }
}


void
ngx_rustdesk_ws_control(ngx_rustdesk_ws_decoder_t *d,
    ngx_rustdesk_ws_rc_e event, ngx_rustdesk_ws_reply_t *r)
{
    memset(r, 0, sizeof(ngx_rustdesk_ws_reply_t));

    switch (event) {

    case NGX_RUSTDESK_WS_PING:
        r->opcode = NGX_RUSTDESK_WS_PONG_FRAME;
        r->payload = d->ctl;
        r->len = d->ctl_len;
        break;

    case NGX_RUSTDESK_WS_CLOSE:
        /* the close handshake: the same code back, then the end */
        r->opcode = NGX_RUSTDESK_WS_CLOSE_FRAME;
        r->payload = d->ctl;
        r->len = (d->code == NGX_RUSTDESK_WS_NO_STATUS) ? 0 : 2;
        r->end = 1;
        break;

    case NGX_RUSTDESK_WS_ERROR:
        r->code[0] = (unsigned char) (d->code >> 8);
        r->code[1] = (unsigned char) d->code;
        r->opcode = NGX_RUSTDESK_WS_CLOSE_FRAME;
        r->payload = r->code;
        r->len = 2;
        r->end = 2;
        break;

    default: /* a pong, or not a control event */
        break;
    }
}


size_t
ngx_rustdesk_ws_header(unsigned char *p, unsigned opcode, uint64_t len)
{
    int  i;

    p[0] = 0x80 | (opcode & 0x0f);

    if (len <= 125) {
        p[1] = (unsigned char) len;
        return 2;
    }

    if (len <= 0xffff) {
        p[1] = 126;
        p[2] = (unsigned char) (len >> 8);
        p[3] = (unsigned char) len;
        return 4;
    }

    p[1] = 127;

    for (i = 0; i < 8; i++) {
        p[2 + i] = (unsigned char) (len >> (56 - 8 * i));
    }

    return 10;
}


static const unsigned char *
ws_find(const unsigned char *p, size_t len, const char *s)
{
    size_t  n, i;

    n = strlen(s);

    for (i = 0; i + n <= len; i++) {
        if (p[i] == (unsigned char) s[0] && memcmp(p + i, s, n) == 0) {
            return p + i;
        }
    }

    return NULL;
}


/* Whether a comma-separated header value holds the token, in any case. */

static int
ws_token(const unsigned char *v, size_t len, const char *token)
{
    size_t                n;
    const unsigned char  *end, *s, *e;

    n = strlen(token);
    end = v + len;

    for (s = v; s < end; s = e + 1) {
        while (s < end && (*s == ' ' || *s == '\t')) {
            s++;
        }

        e = memchr(s, ',', end - s);
        if (e == NULL) {
            e = end;
        }

        len = e - s;

        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
            len--;
        }

        if (len == n && strncasecmp((const char *) s, token, n) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * dst = src XOR the mask, the mask starting at its byte off: eight bytes
 * at a time (the mask repeated twice), then the rest.
 */

static void
ws_unmask(unsigned char *dst, const unsigned char *src, size_t n,
    const unsigned char *mask, size_t off)
{
    size_t         i;
    uint64_t       v, m64;
    unsigned char  m[8];

    for (i = 0; i < 8; i++) {
        m[i] = mask[(off + i) & 3];
    }

    memcpy(&m64, m, 8);

    for (i = 0; i + 8 <= n; i += 8) {
        memcpy(&v, src + i, 8);
        v ^= m64;
        memcpy(dst + i, &v, 8);
    }

    for ( /* void */ ; i < n; i++) {
        dst[i] = src[i] ^ m[i & 3];
    }
}


static int
ws_base64(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z')
              || (p[i] >= '0' && p[i] <= '9') || p[i] == '+' || p[i] == '/'))
        {
            return 0;
        }
    }

    return 1;
}


static ngx_rustdesk_ws_rc_e
ws_error(ngx_rustdesk_ws_decoder_t *d, unsigned code, const char *reason)
{
    d->code = code;
    d->reason = reason;

    return NGX_RUSTDESK_WS_ERROR;
}
