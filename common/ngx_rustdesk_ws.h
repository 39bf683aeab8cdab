/*
 * WebSocket (RFC 6455), the server side, as PROTOCOL.md section 2 has the
 * clients use it: an HTTP/1.1 upgrade on any path, then one binary message
 * per RendezvousMessage (or per relayed TCP frame).  Pure C, no nginx: the
 * upgrade request parser, a resumable frame decoder that unmasks and
 * reassembles fragmented messages, and the server's frame header.
 */

#ifndef _NGX_RUSTDESK_WS_H_INCLUDED_
#define _NGX_RUSTDESK_WS_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_RUSTDESK_WS_GUID          "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define NGX_RUSTDESK_WS_REQUEST_MAX   8192   /* the upgrade request */
#define NGX_RUSTDESK_WS_HEADER_MAX    10     /* a server frame header */
#define NGX_RUSTDESK_WS_CONTROL_MAX   125    /* a control frame's payload */

#define NGX_RUSTDESK_WS_CONT          0x0
#define NGX_RUSTDESK_WS_TEXT          0x1
#define NGX_RUSTDESK_WS_BINARY        0x2
#define NGX_RUSTDESK_WS_CLOSE_FRAME   0x8
#define NGX_RUSTDESK_WS_PING_FRAME    0x9
#define NGX_RUSTDESK_WS_PONG_FRAME    0xA

/* close codes (RFC 6455 section 7.4.1) */
#define NGX_RUSTDESK_WS_NORMAL        1000
#define NGX_RUSTDESK_WS_GOING_AWAY    1001
#define NGX_RUSTDESK_WS_PROTOCOL      1002
#define NGX_RUSTDESK_WS_UNSUPPORTED   1003
#define NGX_RUSTDESK_WS_NO_STATUS     1005
#define NGX_RUSTDESK_WS_TOO_BIG       1009


/* The upgrade request: what it asks for, or why it is refused. */
typedef struct {
    int              status;          /* 0: a valid upgrade; else 400, 405,
                                         426 */
    const char      *reason;          /* what is wrong, for the log */

    const unsigned char  *key;        /* Sec-WebSocket-Key */
    size_t           key_len;
    const unsigned char  *real_ip;    /* X-Real-IP, if any */
    size_t           real_ip_len;
    const unsigned char  *forwarded;  /* X-Forwarded-For's last address */
    size_t           forwarded_len;
    size_t           size;            /* bytes up to the empty line */
} ngx_rustdesk_ws_request_t;


/*
 * Looks for a whole request (up to "\r\n\r\n") in p..p+len: returns 0 when
 * it is not all there yet, 1 when it is (r says what it is).
 */
int ngx_rustdesk_ws_parse_request(const unsigned char *p, size_t len,
    ngx_rustdesk_ws_request_t *r);


typedef enum {
    NGX_RUSTDESK_WS_AGAIN = 0,       /* all input used, nothing complete */
    NGX_RUSTDESK_WS_MESSAGE,         /* d->buf[0 .. d->len) is a message */
    NGX_RUSTDESK_WS_PING,            /* d->ctl[0 .. d->ctl_len) */
    NGX_RUSTDESK_WS_PONG,
    NGX_RUSTDESK_WS_CLOSE,           /* the peer closes: d->code */
    NGX_RUSTDESK_WS_GROW,            /* give a buffer of d->need bytes */
    NGX_RUSTDESK_WS_ERROR            /* close with d->code (d->reason) */
} ngx_rustdesk_ws_rc_e;


typedef struct {
    unsigned char   *buf;            /* the message being assembled */
    size_t           cap;
    size_t           len;
    size_t           max;            /* the largest message accepted */
    size_t           need;           /* after GROW */

    int              state;
    unsigned char    hdr[14];
    size_t           hlen;           /* header bytes so far */
    size_t           hsize;          /* the header's full size */
    uint64_t         flen;           /* this frame's payload */
    uint64_t         fgot;
    unsigned char    mask[4];
    unsigned         opcode;
    unsigned         fin;
    unsigned         fragmented;     /* a message continues */
    unsigned         delivered;      /* buf was handed out */

    unsigned char    ctl[NGX_RUSTDESK_WS_CONTROL_MAX];
    size_t           ctl_len;

    unsigned         code;
    const char      *reason;
} ngx_rustdesk_ws_decoder_t;


void ngx_rustdesk_ws_decoder_init(ngx_rustdesk_ws_decoder_t *d,
    unsigned char *buf, size_t cap, size_t max);

/* After GROW: buf (at least d->need bytes) has d->len bytes copied in. */
void ngx_rustdesk_ws_decoder_set_buf(ngx_rustdesk_ws_decoder_t *d,
    unsigned char *buf, size_t cap);

/* Decodes from *pos (advanced) up to last; see ngx_rustdesk_ws_rc_e. */
ngx_rustdesk_ws_rc_e ngx_rustdesk_ws_decode(ngx_rustdesk_ws_decoder_t *d,
    unsigned char **pos, unsigned char *last);

/*
 * What a control event of the decoder calls for (RFC 6455 section 5.5),
 * whoever the server side is: the frame to write back, if any, and whether
 * the connection ends once it is written.
 */
typedef struct {
    unsigned              opcode;    /* 0: nothing to write */
    const unsigned char  *payload;
    size_t                len;
    unsigned char         code[2];   /* an error's close code */
    int                   end;       /* 0: go on; 1: the client closed;
                                        2: a protocol error */
} ngx_rustdesk_ws_reply_t;

/*
 * event: PING (a pong with its payload), PONG (nothing), CLOSE (the close
 * echoed, with its code if it had one; the end), ERROR (a close with
 * d->code; the end).
 */
void ngx_rustdesk_ws_control(ngx_rustdesk_ws_decoder_t *d,
    ngx_rustdesk_ws_rc_e event, ngx_rustdesk_ws_reply_t *r);

/*
 * A server frame header (FIN set, not masked) for a payload of len bytes;
 * returns its size (2, 4 or 10).
 */
size_t ngx_rustdesk_ws_header(unsigned char *p, unsigned opcode,
    uint64_t len);


#endif /* _NGX_RUSTDESK_WS_H_INCLUDED_ */
