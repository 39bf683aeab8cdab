/*
 * RustDesk TCP framing (PROTOCOL.md section 2): a 1-4 byte little-endian
 * header whose low two bits are (header length - 1) and whose value
 * shifted right by two is the payload length.
 *
 * Plain C, no nginx symbols: the unit tests link it on its own.
 */

#ifndef _NGX_RUSTDESK_FRAME_H_INCLUDED_
#define _NGX_RUSTDESK_FRAME_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


#define NGX_RUSTDESK_FRAME_MAX_LEN     0x3FFFFFFF
#define NGX_RUSTDESK_FRAME_MAX_HEADER  4


typedef enum {
    NGX_RUSTDESK_FRAME_DONE = 0,     /* a whole payload is in the buffer */
    NGX_RUSTDESK_FRAME_AGAIN,        /* all input consumed, need more */
    NGX_RUSTDESK_FRAME_TOO_BIG,      /* announced length exceeds max */
    NGX_RUSTDESK_FRAME_GROW          /* len > cap: give a bigger buffer */
} ngx_rustdesk_frame_rc_e;


/*
 * Resumable decoder.  The caller owns "buf" ("cap" bytes, reused for every
 * frame); the announced length is checked against "max" as soon as the
 * header is complete, before any payload byte is stored.  A frame longer
 * than cap (but not than max) stops the decoder with GROW until the caller
 * gives it a larger buffer, so a connection can start with a small one.
 */
typedef struct {
    u_char      *buf;
    size_t       cap;
    size_t       max;

    size_t       len;       /* payload length of the current frame */
    size_t       got;       /* payload bytes stored so far */
    uint32_t     header;    /* header bytes collected so far */
    unsigned     hlen:3;    /* header size, 0 while unknown */
    unsigned     hgot:3;    /* header bytes collected */
} ngx_rustdesk_frame_decoder_t;


/* A decoder whose buffer holds max bytes (cap = max). */
void ngx_rustdesk_frame_decoder_init(ngx_rustdesk_frame_decoder_t *d,
    u_char *buf, size_t max);

/* After GROW (or before any frame): a buffer of cap >= d->len bytes. */
void ngx_rustdesk_frame_decoder_set_buf(ngx_rustdesk_frame_decoder_t *d,
    u_char *buf, size_t cap);

/*
 * Consumes bytes from *pos up to last, advancing *pos.  On DONE the payload
 * is d->buf[0 .. d->len) and the next call starts a new frame; bytes after
 * the frame stay unconsumed at *pos.
 */
ngx_rustdesk_frame_rc_e ngx_rustdesk_frame_decode(
    ngx_rustdesk_frame_decoder_t *d, u_char **pos, u_char *last);

/* Header size for a payload of len bytes, 0 when len is too large. */
size_t ngx_rustdesk_frame_header_size(size_t len);

/*
 * Writes the header for a payload of len bytes to out (room for
 * NGX_RUSTDESK_FRAME_MAX_HEADER bytes); returns its size, 0 if too large.
 */
size_t ngx_rustdesk_frame_write_header(u_char *out, size_t len);


#endif /* _NGX_RUSTDESK_FRAME_H_INCLUDED_ */
