/*
 * Unit tests of common/: the frame codec, AddrMangle, the key files, the
 * signed peer key (PROTOCOL.md sections 2, 4 and 5) and the WebSocket
 * codec (RFC 6455).
 *
 * Self-contained runner: every CHECK counts a pass or a failure, failures
 * print the expression with file:line, and the last line is
 * "N passed, N failed".  The exit status is non-zero on any failure.
 */

#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <arpa/inet.h>

#include <sodium.h>

#include "ngx_rustdesk_frame.h"
#include "ngx_rustdesk_addr.h"
#include "ngx_rustdesk_keys.h"
#include "ngx_rustdesk_ws.h"
#include "ngx_rustdesk_heartbeat.h"
#include "rendezvous.pb-c.h"


#define MAX_FAILURES_SHOWN  100


static unsigned long  passed;
static unsigned long  failed;
static const char    *context = "";


static void
check(int ok, const char *expr, const char *file, int line)
{
    if (ok) {
        passed++;
        return;
    }

    failed++;

    if (failed <= MAX_FAILURES_SHOWN) {
        fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n",
                file, line, context, expr);

    } else if (failed == MAX_FAILURES_SHOWN + 1) {
        fprintf(stderr, "(further failures not shown)\n");
    }
}


static void
check_eq(unsigned long long a, unsigned long long b, const char *ea,
    const char *eb, const char *file, int line)
{
    if (a == b) {
        passed++;
        return;
    }

    failed++;

    if (failed <= MAX_FAILURES_SHOWN) {
        fprintf(stderr, "%s:%d: [%s] CHECK_EQ failed: %s == %s "
                "(0x%llx != 0x%llx)\n", file, line, context, ea, eb, a, b);

    } else if (failed == MAX_FAILURES_SHOWN + 1) {
        fprintf(stderr, "(further failures not shown)\n");
    }
}


#define CHECK(expr)                                                         \
    check((expr) ? 1 : 0, #expr, __FILE__, __LINE__)

#define CHECK_EQ(a, b)                                                      \
    check_eq((unsigned long long) (a), (unsigned long long) (b), #a, #b,    \
             __FILE__, __LINE__)


/* xorshift64*, fixed seed: reproducible runs */

static uint64_t  rng_state = 0x9E3779B97F4A7C15ULL;


static uint64_t
rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;

    return rng_state * 0x2545F4914F6CDD1DULL;
}


static void
rnd_bytes(u_char *p, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        p[i] = (u_char) (rnd() >> 32);
    }
}


/* ------------------------------------------------------------------ */
/* frame codec                                                         */
/* ------------------------------------------------------------------ */


#define FEED_ALL     0
#define FEED_BYTES   1
#define FEED_RANDOM  2


/* an independent encoder, straight from the table in PROTOCOL.md 2 */

static size_t
expect_header(u_char *out, size_t len)
{
    size_t    n, i;
    uint64_t  h;

    if (len < 0x40) {
        n = 1;

    } else if (len < 0x4000) {
        n = 2;

    } else if (len < 0x400000) {
        n = 3;

    } else if (len < 0x40000000) {
        n = 4;

    } else {
        return 0;
    }

    h = (uint64_t) len * 4 + (n - 1);

    for (i = 0; i < n; i++) {
        out[i] = (u_char) (h % 256);
        h /= 256;
    }

    return n;
}


/*
 * Feeds in[0 .. in_len) (one frame, nothing after it) to a fresh decoder
 * in the given way; the frame must come out whole on the last call and
 * only there.
 */

static void
frame_feed_one(u_char *in, size_t in_len, const u_char *payload,
    size_t len, size_t max, int mode)
{
    size_t                        chunk, off, bad_again, bad_pos;
    u_char                       *buf, *pos, *last;
    ngx_rustdesk_frame_rc_e       rc;
    ngx_rustdesk_frame_decoder_t  d;

    buf = malloc(max ? max : 1);
    if (buf == NULL) {
        CHECK(buf != NULL);
        return;
    }

    ngx_rustdesk_frame_decoder_init(&d, buf, max);

    off = 0;
    bad_again = 0;
    bad_pos = 0;
    rc = NGX_RUSTDESK_FRAME_AGAIN;

    while (off < in_len) {

        switch (mode) {

        case FEED_ALL:
            chunk = in_len;
            break;

        case FEED_BYTES:
            chunk = 1;
            break;

        default:
            chunk = 1 + rnd() % (in_len > 70000 ? 65536 : 7);
            break;
        }

        if (chunk > in_len - off) {
            chunk = in_len - off;
        }

        pos = in + off;
        last = pos + chunk;

        rc = ngx_rustdesk_frame_decode(&d, &pos, last);

        /* the decoder must take everything it is given within a frame */

        if (pos != last) {
            bad_pos++;
        }

        off += chunk;

        if (off < in_len && rc != NGX_RUSTDESK_FRAME_AGAIN) {
            bad_again++;
        }
    }

    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK_EQ(bad_again, 0);
    CHECK_EQ(bad_pos, 0);
    CHECK_EQ(d.len, len);
    CHECK(len == 0 || memcmp(buf, payload, len) == 0);

    free(buf);
}


static void
test_frame_header(void)
{
    size_t  i, n, len;
    u_char  out[8], exp[8];

    static const struct {
        size_t  len;
        size_t  n;
        u_char  bytes[4];
    } vectors[] = {
        /* worked out by hand from PROTOCOL.md section 2 */
        { 0,          1, { 0x00 } },
        { 1,          1, { 0x04 } },
        { 0x3F,       1, { 0xFC } },
        { 0x40,       2, { 0x01, 0x01 } },
        { 0x1234,     2, { 0xD1, 0x48 } },
        { 0x3FFF,     2, { 0xFD, 0xFF } },
        { 0x4000,     3, { 0x02, 0x00, 0x01 } },
        { 0x3FFFFF,   3, { 0xFE, 0xFF, 0xFF } },
        { 0x400000,   4, { 0x03, 0x00, 0x00, 0x01 } },
        { 0x12345678, 4, { 0xE3, 0x59, 0xD1, 0x48 } },
        { 0x3FFFFFFF, 4, { 0xFF, 0xFF, 0xFF, 0xFF } },
    };

    context = "frame header";

    CHECK_EQ(ngx_rustdesk_frame_header_size(0), 1);
    CHECK_EQ(ngx_rustdesk_frame_header_size(0x3F), 1);
    CHECK_EQ(ngx_rustdesk_frame_header_size(0x40), 2);
    CHECK_EQ(ngx_rustdesk_frame_header_size(0x3FFF), 2);
    CHECK_EQ(ngx_rustdesk_frame_header_size(0x4000), 3);
    CHECK_EQ(ngx_rustdesk_frame_header_size(0x3FFFFF), 3);
    CHECK_EQ(ngx_rustdesk_frame_header_size(0x400000), 4);
    CHECK_EQ(ngx_rustdesk_frame_header_size(0x3FFFFFFF), 4);
    CHECK_EQ(ngx_rustdesk_frame_header_size(0x40000000), 0);
    CHECK_EQ(ngx_rustdesk_frame_header_size(0xFFFFFFFF), 0);
    CHECK_EQ(ngx_rustdesk_frame_header_size((size_t) -1), 0);

    CHECK_EQ(ngx_rustdesk_frame_write_header(out, 0x40000000), 0);
    CHECK_EQ(ngx_rustdesk_frame_write_header(out, (size_t) -1), 0);

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        memset(out, 0xAA, sizeof(out));
        n = ngx_rustdesk_frame_write_header(out, vectors[i].len);

        CHECK_EQ(n, vectors[i].n);
        CHECK(memcmp(out, vectors[i].bytes, vectors[i].n) == 0);
        CHECK_EQ(out[vectors[i].n], 0xAA);
        CHECK_EQ(ngx_rustdesk_frame_header_size(vectors[i].len), vectors[i].n);
    }

    /* random lengths of every size class against the independent encoder */

    for (i = 0; i < 4000; i++) {
        len = rnd() >> (34 + rnd() % 30);
        n = ngx_rustdesk_frame_write_header(out, len);

        CHECK_EQ(n, expect_header(exp, len));
        CHECK(n == 0 || memcmp(out, exp, n) == 0);
    }
}


static void
test_frame_roundtrip(void)
{
    int      mode;
    size_t   i, n, len, max;
    u_char  *frame, *payload;

    static const size_t  lens[] = {
        0, 1, 0x3F, 0x40, 0x3FFF, 0x4000, 0x3FFFFF, 0x400000
    };

    static const char  *names[] = {
        "frame roundtrip, all at once",
        "frame roundtrip, one byte at a time",
        "frame roundtrip, random chunks"
    };

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        len = lens[i];

        frame = malloc(len + NGX_RUSTDESK_FRAME_MAX_HEADER);
        if (frame == NULL) {
            CHECK(frame != NULL);
            return;
        }

        n = ngx_rustdesk_frame_write_header(frame, len);
        CHECK_EQ(n, ngx_rustdesk_frame_header_size(len));

        payload = frame + n;
        rnd_bytes(payload, len);

        for (mode = FEED_ALL; mode <= FEED_RANDOM; mode++) {
            context = names[mode];

            /* max exactly the length (inclusive bound), and larger */

            frame_feed_one(frame, n + len, payload, len, len, mode);

            max = len < 0x400000 ? 0x400000 : len + 1;
            frame_feed_one(frame, n + len, payload, len, max, mode);
        }

        free(frame);
    }
}


static void
test_frame_stream(void)
{
    size_t                        i, k, off, n, total, chunk;
    u_char                       *pos, *last, buf[4096];
    u_char                        stream[8192];
    size_t                        starts[16], lens[16];
    ngx_rustdesk_frame_rc_e       rc;
    ngx_rustdesk_frame_decoder_t  d;

    static const size_t  frame_lens[] = {
        0, 5, 0x40, 0, 300, 1, 0x3F, 2000, 0
    };

    size_t  nframes = sizeof(frame_lens) / sizeof(frame_lens[0]);

    context = "frame stream";

    /* build several frames back to back, then half of another header */

    off = 0;

    for (i = 0; i < nframes; i++) {
        lens[i] = frame_lens[i];
        n = expect_header(stream + off, lens[i]);
        off += n;
        starts[i] = off;
        rnd_bytes(stream + off, lens[i]);
        off += lens[i];
    }

    /* a 2-byte header (len 0x100) cut after its first byte */

    stream[off++] = 0x01;
    total = off;

    /* (a) all in one buffer: each DONE leaves the rest at *pos */

    ngx_rustdesk_frame_decoder_init(&d, buf, sizeof(buf));
    pos = stream;
    last = stream + total;

    for (i = 0; i < nframes; i++) {
        rc = ngx_rustdesk_frame_decode(&d, &pos, last);

        CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
        CHECK_EQ(d.len, lens[i]);
        CHECK_EQ(pos - stream, starts[i] + lens[i]);
        CHECK(lens[i] == 0 || memcmp(buf, stream + starts[i], lens[i]) == 0);
    }

    rc = ngx_rustdesk_frame_decode(&d, &pos, last);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_AGAIN);
    CHECK(pos == last);

    /* the rest of that header and its payload complete the frame */

    {
        u_char  more[1 + 0x100];

        more[0] = 0x04;                  /* (0x100 << 2 | 1) = 0x0401 */
        rnd_bytes(more + 1, 0x100);

        pos = more;
        rc = ngx_rustdesk_frame_decode(&d, &pos, more + sizeof(more));

        CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
        CHECK_EQ(d.len, 0x100);
        CHECK(pos == more + sizeof(more));
        CHECK(memcmp(buf, more + 1, 0x100) == 0);
    }

    /* (b) the same stream in random chunks, several passes */

    for (k = 0; k < 50; k++) {
        ngx_rustdesk_frame_decoder_init(&d, buf, sizeof(buf));
        off = 0;
        i = 0;

        while (off < total) {
            chunk = 1 + rnd() % (k < 25 ? 4 : 600);
            if (chunk > total - off) {
                chunk = total - off;
            }

            pos = stream + off;
            last = pos + chunk;

            while (pos < last) {
                rc = ngx_rustdesk_frame_decode(&d, &pos, last);

                if (rc == NGX_RUSTDESK_FRAME_DONE) {
                    CHECK(i < nframes);
                    if (i >= nframes) {
                        break;
                    }

                    CHECK_EQ(d.len, lens[i]);
                    CHECK_EQ(pos - stream, starts[i] + lens[i]);
                    CHECK(lens[i] == 0
                          || memcmp(buf, stream + starts[i], lens[i]) == 0);
                    i++;

                } else {
                    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_AGAIN);
                    CHECK(pos == last);
                    break;
                }
            }

            off += chunk;
        }

        CHECK_EQ(i, nframes);
    }
}


static void
test_frame_edge(void)
{
    size_t                        i;
    u_char                       *pos, *big, buf[4096], small[16];
    u_char                        in[64];
    ngx_rustdesk_frame_rc_e       rc;
    ngx_rustdesk_frame_decoder_t  d;

    /* zero-length frames */

    context = "frame zero length";

    ngx_rustdesk_frame_decoder_init(&d, buf, sizeof(buf));
    in[0] = 0x00;
    in[1] = 0x00;
    in[2] = 0x99;
    pos = in;

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 3);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK_EQ(d.len, 0);
    CHECK(pos == in + 1);

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 3);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK_EQ(d.len, 0);
    CHECK(pos == in + 2);

    /* zero-length frame with max 0 */

    ngx_rustdesk_frame_decoder_init(&d, small, 0);
    pos = in;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 1);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK_EQ(d.len, 0);
    CHECK(pos == in + 1);

    /* non-minimal headers still carry their length */

    ngx_rustdesk_frame_decoder_init(&d, buf, sizeof(buf));
    in[0] = 0x01;                        /* 2-byte header, length 0 */
    in[1] = 0x00;
    in[2] = 0x17;                        /* 4-byte header, length 5 */
    in[3] = 0x00;
    in[4] = 0x00;
    in[5] = 0x00;
    memcpy(in + 6, "hello", 5);
    pos = in;

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 11);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK_EQ(d.len, 0);
    CHECK(pos == in + 2);

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 11);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK_EQ(d.len, 5);
    CHECK(pos == in + 11);
    CHECK(memcmp(buf, "hello", 5) == 0);

    /* empty input: nothing happens */

    context = "frame empty input";

    ngx_rustdesk_frame_decoder_init(&d, buf, sizeof(buf));
    pos = in;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_AGAIN);
    CHECK(pos == in);

    /* a split header: one byte per call, then the payload */

    context = "frame split header";

    big = malloc(0x3FFF);
    if (big == NULL) {
        CHECK(big != NULL);
        return;
    }

    ngx_rustdesk_frame_decoder_init(&d, big, 0x3FFF);
    CHECK_EQ(expect_header(in, 0x3FFF), 2);                 /* FD FF */

    for (i = 0; i < 2; i++) {
        pos = in + i;
        rc = ngx_rustdesk_frame_decode(&d, &pos, in + i + 1);
        CHECK_EQ(rc, NGX_RUSTDESK_FRAME_AGAIN);
        CHECK(pos == in + i + 1);

        pos = in + i + 1;                /* an empty call in between */
        rc = ngx_rustdesk_frame_decode(&d, &pos, in + i + 1);
        CHECK_EQ(rc, NGX_RUSTDESK_FRAME_AGAIN);
        CHECK(pos == in + i + 1);
    }

    {
        u_char  *payload;

        payload = malloc(0x3FFF + 3);
        if (payload == NULL) {
            CHECK(payload != NULL);
            return;
        }

        rnd_bytes(payload, 0x3FFF + 3);

        pos = payload;
        rc = ngx_rustdesk_frame_decode(&d, &pos, payload + 0x3FFF + 3);
        CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
        CHECK_EQ(d.len, 0x3FFF);
        CHECK(pos == payload + 0x3FFF);
        CHECK(memcmp(big, payload, 0x3FFF) == 0);

        free(payload);
    }

    free(big);

    /*
     * A 4-byte header split over 4 calls, len 0x400001, into a decoder
     * with a 16-byte buffer: GROW on the last header byte, then the
     * payload in parts once a buffer of that size is given.
     */

    ngx_rustdesk_frame_decoder_init(&d, small, 0x400001);
    ngx_rustdesk_frame_decoder_set_buf(&d, small, sizeof(small));
    CHECK_EQ(expect_header(in, 0x400001), 4);
    rnd_bytes(in + 4, 40);
    memset(small, 0x5A, sizeof(small));

    for (i = 0; i < 3; i++) {
        pos = in + i;
        rc = ngx_rustdesk_frame_decode(&d, &pos, in + i + 1);
        CHECK_EQ(rc, NGX_RUSTDESK_FRAME_AGAIN);
        CHECK(pos == in + i + 1);
    }

    pos = in + 3;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 44);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_GROW);
    CHECK(pos == in + 4);
    CHECK_EQ(d.len, 0x400001);
    CHECK_EQ(d.got, 0);

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 44);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_GROW);
    CHECK(pos == in + 4);
    CHECK_EQ(d.got, 0);
    CHECK_EQ(small[0], 0x5A);
    CHECK_EQ(small[15], 0x5A);

    big = malloc(0x400001);
    if (big == NULL) {
        CHECK(big != NULL);
        return;
    }

    ngx_rustdesk_frame_decoder_set_buf(&d, big, 0x400001);

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 44);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_AGAIN);
    CHECK(pos == in + 44);
    CHECK_EQ(d.len, 0x400001);
    CHECK_EQ(d.got, 40);
    CHECK(memcmp(big, in + 4, 40) == 0);

    {
        u_char  *rest;

        rest = malloc(0x400001 - 40);
        if (rest == NULL) {
            CHECK(rest != NULL);
            free(big);
            return;
        }

        rnd_bytes(rest, 0x400001 - 40);
        pos = rest;
        rc = ngx_rustdesk_frame_decode(&d, &pos, rest + 0x400001 - 40);
        CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
        CHECK(pos == rest + 0x400001 - 40);
        CHECK_EQ(d.len, 0x400001);
        CHECK(memcmp(big, in + 4, 40) == 0);
        CHECK(memcmp(big + 40, rest, 0x400001 - 40) == 0);

        free(rest);
    }

    free(big);

    /*
     * The largest length: the header alone is accepted with max = len;
     * with a 16-byte buffer it asks for one, storing nothing.
     */

    context = "frame max length";

    ngx_rustdesk_frame_decoder_init(&d, small, NGX_RUSTDESK_FRAME_MAX_LEN);
    ngx_rustdesk_frame_decoder_set_buf(&d, small, sizeof(small));
    CHECK_EQ(ngx_rustdesk_frame_write_header(in, 0x3FFFFFFF), 4);
    rnd_bytes(in + 4, sizeof(small));
    memset(small, 0x5A, sizeof(small));
    pos = in;

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 4 + sizeof(small));
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_GROW);
    CHECK(pos == in + 4);
    CHECK_EQ(d.len, 0x3FFFFFFF);
    CHECK_EQ(d.got, 0);

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 4 + sizeof(small));
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_GROW);
    CHECK(pos == in + 4);
    CHECK_EQ(d.got, 0);

    for (i = 0; i < sizeof(small); i++) {
        CHECK_EQ(small[i], 0x5A);
    }

    /* too big: reported once the header completes, no payload stored */

    context = "frame too big";

    ngx_rustdesk_frame_decoder_init(&d, buf, 4096);
    in[0] = 0xFF;                        /* 4 bytes announcing 1 GiB - 1 */
    in[1] = 0xFF;
    in[2] = 0xFF;
    in[3] = 0xFF;
    pos = in;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 4);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_TOO_BIG);
    CHECK(pos == in + 4);

    /* the same with payload bytes behind it: none are consumed */

    memset(buf, 0x5A, sizeof(buf));
    memset(in + 4, 0xC3, 40);
    ngx_rustdesk_frame_decoder_init(&d, buf, 4096);
    pos = in;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 44);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_TOO_BIG);
    CHECK(pos == in + 4);
    CHECK_EQ(buf[0], 0x5A);

    /* one header byte per call */

    ngx_rustdesk_frame_decoder_init(&d, buf, 4096);

    for (i = 0; i < 3; i++) {
        pos = in + i;
        rc = ngx_rustdesk_frame_decode(&d, &pos, in + i + 1);
        CHECK_EQ(rc, NGX_RUSTDESK_FRAME_AGAIN);
        CHECK(pos == in + i + 1);
    }

    pos = in + 3;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 44);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_TOO_BIG);
    CHECK(pos == in + 4);

    /* max + 1 is too big, max is not; a decoder with a 16-byte buffer */

    ngx_rustdesk_frame_decoder_init(&d, small, 16);
    CHECK_EQ(expect_header(in, 17), 1);
    pos = in;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 30);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_TOO_BIG);
    CHECK(pos == in + 1);

    ngx_rustdesk_frame_decoder_init(&d, buf, 4096);
    CHECK_EQ(expect_header(in, 4097), 2);                   /* 05 40 */
    CHECK_EQ(in[0], 0x05);
    CHECK_EQ(in[1], 0x40);
    pos = in;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 2);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_TOO_BIG);
    CHECK(pos == in + 2);

    ngx_rustdesk_frame_decoder_init(&d, small, 16);
    CHECK_EQ(expect_header(in, 16), 1);
    rnd_bytes(in + 1, 16);
    pos = in;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 17);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK(pos == in + 17);
    CHECK(memcmp(small, in + 1, 16) == 0);
}


/*
 * Feeds in[0 .. in_len) (one frame with an hlen-byte header, nothing after
 * it) to a decoder whose buffer has only cap bytes, max being max.  When
 * the frame is longer than cap, GROW must come exactly once, right after
 * the header, and repeat without consuming anything until a buffer of
 * d.len bytes is given; the old buffer is freed first, so ASan catches a
 * decoder that still writes to it.
 */

static void
frame_feed_grow(u_char *in, size_t in_len, size_t hlen,
    const u_char *payload, size_t len, size_t cap, size_t max, int mode)
{
    size_t                        chunk, off, bad_again, bad_pos, grows;
    u_char                       *buf, *nbuf, *pos, *last, *save;
    ngx_rustdesk_frame_rc_e       rc;
    ngx_rustdesk_frame_decoder_t  d;

    buf = malloc(cap ? cap : 1);
    if (buf == NULL) {
        CHECK(buf != NULL);
        return;
    }

    ngx_rustdesk_frame_decoder_init(&d, buf, max);
    ngx_rustdesk_frame_decoder_set_buf(&d, buf, cap);

    off = 0;
    bad_again = 0;
    bad_pos = 0;
    grows = 0;
    rc = NGX_RUSTDESK_FRAME_AGAIN;

    while (off < in_len) {

        switch (mode) {

        case FEED_ALL:
            chunk = in_len;
            break;

        case FEED_BYTES:
            chunk = 1;
            break;

        default:
            chunk = 1 + rnd() % (in_len > 70000 ? 65536 : 7);
            break;
        }

        if (chunk > in_len - off) {
            chunk = in_len - off;
        }

        pos = in + off;
        last = pos + chunk;

        rc = ngx_rustdesk_frame_decode(&d, &pos, last);

        if (rc == NGX_RUSTDESK_FRAME_GROW) {
            grows++;

            if (grows > 1) {
                /* a buffer of d.len bytes was given already: give up */
                CHECK_EQ(grows, 1);
                free(buf);
                return;
            }

            /* the header and nothing more */

            CHECK_EQ(pos - in, hlen);
            CHECK_EQ(d.len, len);
            CHECK_EQ(d.got, 0);

            save = pos;
            rc = ngx_rustdesk_frame_decode(&d, &pos, last);
            CHECK_EQ(rc, NGX_RUSTDESK_FRAME_GROW);
            CHECK(pos == save);

            rc = ngx_rustdesk_frame_decode(&d, &pos, pos);
            CHECK_EQ(rc, NGX_RUSTDESK_FRAME_GROW);
            CHECK(pos == save);

            nbuf = malloc(d.len);
            if (nbuf == NULL) {
                CHECK(nbuf != NULL);
                free(buf);
                return;
            }

            free(buf);
            buf = nbuf;
            ngx_rustdesk_frame_decoder_set_buf(&d, buf, d.len);

            rc = ngx_rustdesk_frame_decode(&d, &pos, last);
        }

        if (pos != last) {
            bad_pos++;
        }

        off += chunk;

        if (off < in_len && rc != NGX_RUSTDESK_FRAME_AGAIN) {
            bad_again++;
        }
    }

    CHECK_EQ(grows, len > cap ? 1 : 0);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK_EQ(bad_again, 0);
    CHECK_EQ(bad_pos, 0);
    CHECK_EQ(d.len, len);
    CHECK(len == 0 || memcmp(buf, payload, len) == 0);

    free(buf);
}


static void
test_frame_grow(void)
{
    int                           mode;
    size_t                        i, n, len, cap, max, off;
    u_char                       *pos, *frame, small[16], in[256];
    u_char                       *b99, *b100, *b200;
    u_char                        p100[100], p5[5], p200[200];
    ngx_rustdesk_frame_rc_e       rc;
    ngx_rustdesk_frame_decoder_t  d;

    static const struct {
        size_t  len;
        size_t  cap;
        size_t  max;
    } cases[] = {
        { 100,       16,   4096 },
        { 16,        16,   4096 },       /* exactly cap: no GROW */
        { 17,        16,   4096 },
        { 15,        16,   4096 },
        { 4096,      16,   4096 },       /* exactly max, far over cap */
        { 0,         0,    4096 },
        { 1,         0,    4096 },
        { 0x3F,      0x3E, 0x3F },       /* 1-byte header */
        { 0x40,      0x3F, 0x40 },       /* 2-byte header */
        { 0x4000,    0x40, 0x400000 },   /* 3-byte header */
        { 0x400000,  0x40, 0x400000 },   /* 4-byte header */
    };

    static const char  *names[] = {
        "frame grow, all at once",
        "frame grow, one byte at a time",
        "frame grow, random chunks"
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        len = cases[i].len;
        cap = cases[i].cap;
        max = cases[i].max;

        frame = malloc(len + NGX_RUSTDESK_FRAME_MAX_HEADER);
        if (frame == NULL) {
            CHECK(frame != NULL);
            return;
        }

        n = expect_header(frame, len);
        rnd_bytes(frame + n, len);

        for (mode = FEED_ALL; mode <= FEED_RANDOM; mode++) {
            context = names[mode];
            frame_feed_grow(frame, n + len, n, frame + n, len, cap, max,
                            mode);
        }

        /* random chunks again: they split the header differently */

        context = names[FEED_RANDOM];

        for (mode = 0; mode < 20; mode++) {
            frame_feed_grow(frame, n + len, n, frame + n, len, cap, max,
                            FEED_RANDOM);
        }

        free(frame);
    }

    /*
     * Step by step: a 100-byte frame, a 5-byte one, an empty one, a
     * 100-byte one and a 200-byte one back to back into a decoder with a
     * 16-byte buffer and max 4096.
     */

    context = "frame grow, stream";

    rnd_bytes(p100, sizeof(p100));
    rnd_bytes(p5, sizeof(p5));
    rnd_bytes(p200, sizeof(p200));

    off = 0;
    CHECK_EQ(expect_header(in + off, 100), 2);
    off += 2;
    memcpy(in + off, p100, 100);
    off += 100;
    CHECK_EQ(expect_header(in + off, 5), 1);
    off += 1;
    memcpy(in + off, p5, 5);
    off += 5;
    CHECK_EQ(expect_header(in + off, 0), 1);
    off += 1;
    CHECK_EQ(expect_header(in + off, 100), 2);
    off += 2;
    memcpy(in + off, p100, 100);
    off += 100;
    CHECK_EQ(off, 211);

    b99 = malloc(99);
    b100 = malloc(100);
    b200 = malloc(200);

    if (b99 == NULL || b100 == NULL || b200 == NULL) {
        CHECK(!"malloc failed");
        free(b99);
        free(b100);
        free(b200);
        return;
    }

    memset(small, 0x5A, sizeof(small));

    ngx_rustdesk_frame_decoder_init(&d, small, 4096);
    ngx_rustdesk_frame_decoder_set_buf(&d, small, sizeof(small));
    CHECK_EQ(d.cap, 16);
    CHECK_EQ(d.max, 4096);

    pos = in;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + off);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_GROW);
    CHECK(pos == in + 2);
    CHECK_EQ(d.len, 100);
    CHECK_EQ(d.got, 0);

    /* again without a new buffer: GROW, nothing consumed */

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + off);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_GROW);
    CHECK(pos == in + 2);
    CHECK_EQ(d.len, 100);
    CHECK_EQ(d.got, 0);

    /* a buffer still one byte short: GROW again */

    ngx_rustdesk_frame_decoder_set_buf(&d, b99, 99);
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + off);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_GROW);
    CHECK(pos == in + 2);
    CHECK_EQ(d.len, 100);
    CHECK_EQ(d.got, 0);

    for (i = 0; i < sizeof(small); i++) {
        CHECK_EQ(small[i], 0x5A);
    }

    /* exactly big enough: the frame comes out whole */

    ngx_rustdesk_frame_decoder_set_buf(&d, b100, 100);
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + off);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK(pos == in + 102);
    CHECK_EQ(d.len, 100);
    CHECK(memcmp(b100, p100, 100) == 0);

    /* a small frame after it, into the current (100-byte) buffer */

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + off);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK(pos == in + 108);
    CHECK_EQ(d.len, 5);
    CHECK(d.buf == b100);
    CHECK(memcmp(b100, p5, 5) == 0);

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + off);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK(pos == in + 109);
    CHECK_EQ(d.len, 0);

    /* another 100 bytes fit the buffer now: no GROW */

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + off);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK(pos == in + 211);
    CHECK_EQ(d.len, 100);
    CHECK(memcmp(b100, p100, 100) == 0);

    /* 200 bytes do not: GROW once more, header split over two calls */

    CHECK_EQ(expect_header(in, 200), 2);
    memcpy(in + 2, p200, 200);
    memcpy(b100, p5, 5);

    pos = in;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 1);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_AGAIN);
    CHECK(pos == in + 1);

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 10);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_GROW);
    CHECK(pos == in + 2);
    CHECK_EQ(d.len, 200);
    CHECK(memcmp(b100, p5, 5) == 0);

    ngx_rustdesk_frame_decoder_set_buf(&d, b200, 200);
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 10);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_AGAIN);
    CHECK(pos == in + 10);
    CHECK_EQ(d.got, 8);

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 202);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK(pos == in + 202);
    CHECK(memcmp(b200, p200, 200) == 0);

    /* between frames the caller may go back to the small buffer */

    ngx_rustdesk_frame_decoder_set_buf(&d, small, sizeof(small));
    CHECK_EQ(expect_header(in, 16), 1);
    memcpy(in + 1, p200, 16);
    CHECK_EQ(expect_header(in + 17, 17), 1);
    pos = in;

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 40);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK(pos == in + 17);
    CHECK_EQ(d.len, 16);
    CHECK(memcmp(small, p200, 16) == 0);

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 40);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_GROW);
    CHECK(pos == in + 18);
    CHECK_EQ(d.len, 17);

    free(b99);
    free(b100);
    free(b200);

    /* exactly cap bytes: DONE straight away, no GROW */

    context = "frame grow, exactly cap";

    memset(small, 0x5A, sizeof(small));
    ngx_rustdesk_frame_decoder_init(&d, small, 4096);
    ngx_rustdesk_frame_decoder_set_buf(&d, small, sizeof(small));
    CHECK_EQ(expect_header(in, 16), 1);
    rnd_bytes(in + 1, 16);
    pos = in;

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 17);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK(pos == in + 17);
    CHECK_EQ(d.len, 16);
    CHECK(memcmp(small, in + 1, 16) == 0);

    /* the same, one byte at a time */

    ngx_rustdesk_frame_decoder_init(&d, small, 4096);
    ngx_rustdesk_frame_decoder_set_buf(&d, small, sizeof(small));

    for (i = 0; i < 17; i++) {
        pos = in + i;
        rc = ngx_rustdesk_frame_decode(&d, &pos, in + i + 1);
        CHECK_EQ(rc, i < 16 ? NGX_RUSTDESK_FRAME_AGAIN
                            : NGX_RUSTDESK_FRAME_DONE);
        CHECK(pos == in + i + 1);
    }

    CHECK(memcmp(small, in + 1, 16) == 0);

    /* more than max is TOO_BIG, not GROW, even though it is over cap */

    context = "frame grow, too big";

    ngx_rustdesk_frame_decoder_init(&d, small, 4096);
    ngx_rustdesk_frame_decoder_set_buf(&d, small, sizeof(small));
    CHECK_EQ(expect_header(in, 4097), 2);
    memset(in + 2, 0xC3, 40);
    memset(small, 0x5A, sizeof(small));
    pos = in;

    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 42);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_TOO_BIG);
    CHECK(pos == in + 2);
    CHECK_EQ(small[0], 0x5A);

    /* one header byte per call */

    ngx_rustdesk_frame_decoder_init(&d, small, 4096);
    ngx_rustdesk_frame_decoder_set_buf(&d, small, sizeof(small));
    pos = in;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 1);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_AGAIN);
    CHECK(pos == in + 1);
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 42);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_TOO_BIG);
    CHECK(pos == in + 2);

    /* the largest header, 1 GiB - 1 */

    ngx_rustdesk_frame_decoder_init(&d, small, 4096);
    ngx_rustdesk_frame_decoder_set_buf(&d, small, sizeof(small));
    memset(in, 0xFF, 4);
    pos = in;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 42);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_TOO_BIG);
    CHECK(pos == in + 4);

    /* max below cap: max still decides */

    ngx_rustdesk_frame_decoder_init(&d, small, 8);
    ngx_rustdesk_frame_decoder_set_buf(&d, small, sizeof(small));
    CHECK_EQ(expect_header(in, 9), 1);
    pos = in;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 42);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_TOO_BIG);
    CHECK(pos == in + 1);
    CHECK_EQ(small[0], 0x5A);

    CHECK_EQ(expect_header(in, 8), 1);
    rnd_bytes(in + 1, 8);
    ngx_rustdesk_frame_decoder_init(&d, small, 8);
    ngx_rustdesk_frame_decoder_set_buf(&d, small, sizeof(small));
    pos = in;
    rc = ngx_rustdesk_frame_decode(&d, &pos, in + 42);
    CHECK_EQ(rc, NGX_RUSTDESK_FRAME_DONE);
    CHECK(pos == in + 9);
    CHECK(memcmp(small, in + 1, 8) == 0);

    /* init alone: cap is max */

    context = "frame grow, init";

    ngx_rustdesk_frame_decoder_init(&d, small, sizeof(small));
    CHECK(d.buf == small);
    CHECK_EQ(d.cap, sizeof(small));
    CHECK_EQ(d.max, sizeof(small));

    ngx_rustdesk_frame_decoder_set_buf(&d, in, sizeof(in));
    CHECK(d.buf == in);
    CHECK_EQ(d.cap, sizeof(in));
    CHECK_EQ(d.max, sizeof(small));
}


/* ------------------------------------------------------------------ */
/* addresses                                                           */
/* ------------------------------------------------------------------ */


typedef unsigned __int128  u128_t;


/* PROTOCOL.md section 4, computed here on its own */

static size_t
expect_v4(const u_char octets[4], uint16_t port, uint32_t tm, u_char *out)
{
    size_t   n;
    u128_t   v, ip;

    ip = (u128_t) octets[0]
         + ((u128_t) octets[1] << 8)
         + ((u128_t) octets[2] << 16)
         + ((u128_t) octets[3] << 24);

    v = ((ip + tm) << 49) + ((u128_t) tm << 17) + port + (tm & 0xFFFF);

    n = 0;

    while (v != 0) {
        out[n++] = (u_char) (v % 256);
        v /= 256;
    }

    return n;
}


static void
make_v4(struct sockaddr_storage *ss, const u_char octets[4], uint16_t port)
{
    struct sockaddr_in  *sin;

    memset(ss, 0, sizeof(*ss));
    sin = (struct sockaddr_in *) ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    memcpy(&sin->sin_addr, octets, 4);
}


static void
make_v6(struct sockaddr_storage *ss, const u_char addr[16], uint16_t port)
{
    struct sockaddr_in6  *sin6;

    memset(ss, 0, sizeof(*ss));
    sin6 = (struct sockaddr_in6 *) ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    memcpy(sin6->sin6_addr.s6_addr, addr, 16);
}


static int
is_v4(const struct sockaddr_storage *ss, const u_char octets[4],
    uint16_t port)
{
    const struct sockaddr_in  *sin;

    sin = (const struct sockaddr_in *) ss;

    return sin->sin_family == AF_INET
           && memcmp(&sin->sin_addr, octets, 4) == 0
           && ntohs(sin->sin_port) == port;
}


static int
is_v6(const struct sockaddr_storage *ss, const u_char addr[16],
    uint16_t port)
{
    const struct sockaddr_in6  *sin6;

    sin6 = (const struct sockaddr_in6 *) ss;

    return sin6->sin6_family == AF_INET6
           && memcmp(sin6->sin6_addr.s6_addr, addr, 16) == 0
           && ntohs(sin6->sin6_port) == port;
}


static void
test_addr_vectors(void)
{
    size_t                   i, n;
    u_char                   out[NGX_RUSTDESK_ADDR_MAX_LEN + 8];
    u_char                   exp[32];
    socklen_t                sl;
    struct sockaddr_storage  ss, dec;

    /* from a separate big-integer computation of the section 4 formula */

    static const struct {
        u_char    ip[4];
        uint16_t  port;
        uint32_t  tm;
        size_t    n;
        u_char    bytes[16];
    } vectors[] = {
        { { 1, 2, 3, 4 }, 5, 0, 10,
          { 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x06, 0x08 } },
        { { 0, 0, 0, 0 }, 0, 1, 7,
          { 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02 } },
        { { 255, 255, 255, 255 }, 65535, 0xFFFFFFFF, 11,
          { 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfd, 0xff, 0xff, 0xff,
            0x03 } },
        { { 0, 0, 0, 0 }, 0, 0, 0, { 0 } },
        { { 192, 168, 1, 10 }, 21116, 0x12345678, 10,
          { 0xf4, 0xa8, 0xf0, 0xac, 0x68, 0x24, 0x70, 0xfe, 0x6b, 0x38 } },
        { { 10, 0, 0, 1 }, 443, 0xFFFFFFFF, 11,
          { 0xba, 0x01, 0xff, 0xff, 0xff, 0xff, 0x13, 0x00, 0x00, 0x02,
            0x02 } },
        { { 255, 255, 255, 255 }, 65535, 0, 11,
          { 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff,
            0x01 } },
        { { 0, 0, 0, 0 }, 0, 0xFFFFFFFF, 11,
          { 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x01 } },
    };

    context = "addr vectors";

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        make_v4(&ss, vectors[i].ip, vectors[i].port);
        memset(out, 0xEE, sizeof(out));

        n = ngx_rustdesk_addr_encode_at((struct sockaddr *) &ss,
                                        vectors[i].tm, out);

        CHECK_EQ(n, vectors[i].n);
        CHECK(memcmp(out, vectors[i].bytes, vectors[i].n) == 0);
        CHECK(n == 0 || out[n - 1] != 0);

        /* the test's own formula agrees with the table */

        CHECK_EQ(expect_v4(vectors[i].ip, vectors[i].port, vectors[i].tm,
                           exp), vectors[i].n);
        CHECK(memcmp(exp, vectors[i].bytes, vectors[i].n) == 0);

        memset(&dec, 0xAA, sizeof(dec));
        sl = ngx_rustdesk_addr_decode(vectors[i].bytes, vectors[i].n, &dec);
        CHECK_EQ(sl, sizeof(struct sockaddr_in));
        CHECK(is_v4(&dec, vectors[i].ip, vectors[i].port));
    }
}


static void
test_addr_v4_random(void)
{
    int                      k;
    size_t                   n, e, i;
    u_char                   ip[4], out[NGX_RUSTDESK_ADDR_MAX_LEN + 8];
    u_char                   exp[32];
    uint16_t                 port;
    uint32_t                 tm;
    socklen_t                sl;
    struct sockaddr_storage  ss, dec;

    static const uint32_t  fixed_tm[] = { 0, 1, 0xFFFF, 0x10000, 0xFFFFFFFF };

    context = "addr v4 random";

    for (k = 0; k < 5000; k++) {
        rnd_bytes(ip, 4);
        port = (uint16_t) rnd();
        tm = (uint32_t) rnd();

        /* the extremes, now and then */

        switch (k % 10) {
        case 0:
            tm = fixed_tm[(k / 10) % 5];
            break;
        case 1:
            memset(ip, 0xFF, 4);
            port = 65535;
            break;
        case 2:
            memset(ip, 0, 4);
            port = 0;
            break;
        }

        make_v4(&ss, ip, port);
        memset(out, 0xEE, sizeof(out));

        n = ngx_rustdesk_addr_encode_at((struct sockaddr *) &ss, tm, out);
        e = expect_v4(ip, port, tm, exp);

        CHECK_EQ(n, e);
        CHECK(n <= 16);
        CHECK(memcmp(out, exp, e) == 0);

        for (i = n; i < sizeof(out); i++) {
            if (out[i] != 0xEE) {
                break;
            }
        }

        CHECK_EQ(i, sizeof(out));            /* nothing written past n */

        memset(&dec, 0xAA, sizeof(dec));
        sl = ngx_rustdesk_addr_decode(out, n, &dec);
        CHECK_EQ(sl, sizeof(struct sockaddr_in));
        CHECK(is_v4(&dec, ip, port));

        /* decoding the same value padded to 16 bytes gives the same */

        memset(out + n, 0, 16 - n);
        sl = ngx_rustdesk_addr_decode(out, 16, &dec);
        CHECK_EQ(sl, sizeof(struct sockaddr_in));
        CHECK(is_v4(&dec, ip, port));
    }
}


static void
test_addr_v6(void)
{
    int                      k;
    size_t                   n, n2;
    u_char                   a6[16], ip[4], out[NGX_RUSTDESK_ADDR_MAX_LEN + 8];
    u_char                   out2[NGX_RUSTDESK_ADDR_MAX_LEN + 8];
    u_char                   exp[32];
    uint16_t                 port;
    uint32_t                 tm;
    socklen_t                sl;
    struct sockaddr_un       sun;
    struct sockaddr_storage  ss, dec, orig;

    static const u_char  doc[16] = {
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01
    };

    /* a fixed address: 2001:db8::1 port 0x1234 */

    context = "addr v6 fixed";

    make_v6(&ss, doc, 0x1234);
    n = ngx_rustdesk_addr_encode_at((struct sockaddr *) &ss, 77, out);
    CHECK_EQ(n, 18);
    CHECK(memcmp(out, doc, 16) == 0);
    CHECK_EQ(out[16], 0x34);
    CHECK_EQ(out[17], 0x12);

    n2 = ngx_rustdesk_addr_encode_at((struct sockaddr *) &ss, 0xFFFFFFFF, out2);
    CHECK_EQ(n2, 18);
    CHECK(memcmp(out, out2, 18) == 0);       /* no time stamp in IPv6 */

    memset(&dec, 0xAA, sizeof(dec));
    sl = ngx_rustdesk_addr_decode(out, 18, &dec);
    CHECK_EQ(sl, sizeof(struct sockaddr_in6));
    CHECK(is_v6(&dec, doc, 0x1234));

    /* random IPv6, never v4-mapped */

    context = "addr v6 random";

    for (k = 0; k < 2000; k++) {
        rnd_bytes(a6, 16);
        if (k % 2) {
            memset(a6, 0, 10);           /* close to v4-mapped, but not */
            a6[10] = 0xFF;
            a6[11] = (u_char) (rnd() % 0xFF);
        }

        port = (uint16_t) rnd();
        make_v6(&ss, a6, port);

        n = ngx_rustdesk_addr_encode_at((struct sockaddr *) &ss,
                                        (uint32_t) rnd(), out);
        CHECK_EQ(n, 18);
        CHECK(memcmp(out, a6, 16) == 0);
        CHECK_EQ(out[16], port & 0xFF);
        CHECK_EQ(out[17], port >> 8);

        memset(&dec, 0xAA, sizeof(dec));
        sl = ngx_rustdesk_addr_decode(out, n, &dec);
        CHECK_EQ(sl, sizeof(struct sockaddr_in6));
        CHECK(is_v6(&dec, a6, port));
    }

    /* v4-mapped IPv6 encodes exactly as IPv4 */

    context = "addr v4-mapped";

    for (k = 0; k < 1000; k++) {
        rnd_bytes(ip, 4);
        port = (uint16_t) rnd();
        tm = (k == 0) ? 0 : (k == 1) ? 0xFFFFFFFF : (uint32_t) rnd();

        memset(a6, 0, 10);
        a6[10] = 0xFF;
        a6[11] = 0xFF;
        memcpy(a6 + 12, ip, 4);
        make_v6(&ss, a6, port);

        n = ngx_rustdesk_addr_encode_at((struct sockaddr *) &ss, tm, out);

        make_v4(&orig, ip, port);
        n2 = ngx_rustdesk_addr_encode_at((struct sockaddr *) &orig, tm, out2);

        CHECK_EQ(n, expect_v4(ip, port, tm, exp));
        CHECK_EQ(n, n2);
        CHECK(memcmp(out, exp, n) == 0);
        CHECK(memcmp(out, out2, n) == 0);

        sl = ngx_rustdesk_addr_decode(out, n, &dec);
        CHECK_EQ(sl, sizeof(struct sockaddr_in));
        CHECK(is_v4(&dec, ip, port));
    }

    /* another family */

    context = "addr other family";

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    CHECK_EQ(ngx_rustdesk_addr_encode_at((struct sockaddr *) &sun, 1, out), 0);
}


static void
test_addr_normalize(void)
{
    u_char                   a6[16];
    socklen_t                sl;
    struct sockaddr_storage  ss, orig;

    static const u_char  v4[4] = { 1, 2, 3, 4 };
    static const u_char  loop6[16] = {
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
    };
    static const u_char  compat[16] = {         /* ::1.2.3.4, not mapped */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4
    };

    context = "addr normalize";

    /* ::ffff:1.2.3.4 port 5 */

    memset(a6, 0, 10);
    a6[10] = 0xFF;
    a6[11] = 0xFF;
    memcpy(a6 + 12, v4, 4);
    make_v6(&ss, a6, 5);

    sl = ngx_rustdesk_addr_normalize(&ss, sizeof(struct sockaddr_in6));
    CHECK_EQ(sl, sizeof(struct sockaddr_in));
    CHECK_EQ(ss.ss_family, AF_INET);
    CHECK(is_v4(&ss, v4, 5));

    /* pure IPv6 and a v4-compatible one stay as they are */

    make_v6(&ss, loop6, 443);
    orig = ss;
    sl = ngx_rustdesk_addr_normalize(&ss, sizeof(struct sockaddr_in6));
    CHECK_EQ(sl, sizeof(struct sockaddr_in6));
    CHECK(memcmp(&ss, &orig, sizeof(ss)) == 0);

    make_v6(&ss, compat, 80);
    orig = ss;
    sl = ngx_rustdesk_addr_normalize(&ss, sizeof(struct sockaddr_in6));
    CHECK_EQ(sl, sizeof(struct sockaddr_in6));
    CHECK(memcmp(&ss, &orig, sizeof(ss)) == 0);

    /* IPv4 stays as it is */

    make_v4(&ss, v4, 5);
    orig = ss;
    sl = ngx_rustdesk_addr_normalize(&ss, sizeof(struct sockaddr_in));
    CHECK_EQ(sl, sizeof(struct sockaddr_in));
    CHECK(memcmp(&ss, &orig, sizeof(ss)) == 0);
}


static void
test_addr_decode_bad(void)
{
    size_t                   i;
    u_char                   in[64];
    socklen_t                sl;
    struct sockaddr_storage  ss;

    static const u_char  zero4[4] = { 0, 0, 0, 0 };
    static const size_t  bad[] = { 17, 19, 20, 64 };

    context = "addr decode bad length";

    memset(in, 0xA5, sizeof(in));

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&ss, 0xAA, sizeof(ss));
        sl = ngx_rustdesk_addr_decode(in, bad[i], &ss);
        CHECK_EQ(sl, 0);
        CHECK_EQ(ss.ss_family, AF_INET);
        CHECK(is_v4(&ss, zero4, 0));
    }

    context = "addr decode length 0";

    memset(&ss, 0xAA, sizeof(ss));
    sl = ngx_rustdesk_addr_decode(in, 0, &ss);
    CHECK_EQ(sl, sizeof(struct sockaddr_in));
    CHECK(is_v4(&ss, zero4, 0));
}


static void
test_addr_now(void)
{
    int                      k;
    size_t                   n, i;
    u_char                   ip[4], a6[16], out[NGX_RUSTDESK_ADDR_MAX_LEN];
    uint16_t                 port;
    uint32_t                 tm, now, diff;
    uint64_t                 us;
    u128_t                   v;
    socklen_t                sl;
    struct timeval           tv;
    struct sockaddr_storage  ss, dec;

    context = "addr encode (now)";

    for (k = 0; k < 200; k++) {
        rnd_bytes(ip, 4);
        port = (uint16_t) rnd();
        make_v4(&ss, ip, port);

        n = ngx_rustdesk_addr_encode((struct sockaddr *) &ss, out);

        gettimeofday(&tv, NULL);
        us = (uint64_t) tv.tv_sec * 1000000 + (uint64_t) tv.tv_usec;
        now = (uint32_t) us;

        CHECK(n > 0 && n <= 16);

        sl = ngx_rustdesk_addr_decode(out, n, &dec);
        CHECK_EQ(sl, sizeof(struct sockaddr_in));
        CHECK(is_v4(&dec, ip, port));

        /* the time stamp is microseconds, taken just now */

        v = 0;
        for (i = n; i > 0; i--) {
            v = v * 256 + out[i - 1];
        }

        tm = (uint32_t) (v >> 17);
        diff = now - tm;
        CHECK(diff < 10 * 1000000);
    }

    rnd_bytes(a6, 16);
    a6[0] = 0x20;
    make_v6(&ss, a6, 21117);
    n = ngx_rustdesk_addr_encode((struct sockaddr *) &ss, out);
    CHECK_EQ(n, 18);
    sl = ngx_rustdesk_addr_decode(out, n, &dec);
    CHECK_EQ(sl, sizeof(struct sockaddr_in6));
    CHECK(is_v6(&dec, a6, 21117));
}


/* ------------------------------------------------------------------ */
/* keys                                                                */
/* ------------------------------------------------------------------ */


static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}


static int
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int  fd;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd == -1) {
        return -1;
    }

    if (write(fd, data, len) != (ssize_t) len) {
        close(fd);
        return -1;
    }

    if (fchmod(fd, mode) != 0) {
        close(fd);
        return -1;
    }

    return close(fd);
}


/* returns the length, -1 on error; buf gets a terminating NUL */

static ssize_t
read_file(const char *path, char *buf, size_t size)
{
    int      fd;
    ssize_t  n, len;

    fd = open(path, O_RDONLY);
    if (fd == -1) {
        return -1;
    }

    len = 0;

    while ((size_t) len < size - 1) {
        n = read(fd, buf + len, size - 1 - len);
        if (n <= 0) {
            break;
        }

        len += n;
    }

    close(fd);
    buf[len] = '\0';

    return len;
}


static int
count_entries(const char *dir)
{
    int             n;
    DIR            *d;
    struct dirent  *de;

    d = opendir(dir);
    if (d == NULL) {
        return -1;
    }

    n = 0;

    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            n++;
        }
    }

    closedir(d);

    return n;
}


static mode_t
file_mode(const char *path)
{
    struct stat  st;

    if (stat(path, &st) != 0) {
        return (mode_t) -1;
    }

    return st.st_mode & 07777;
}


/* base64 of a 64-byte secret made of a seed and its real public key */

static void
make_sk_b64(char *out, size_t size, u_char sk[64])
{
    u_char  pk[32];

    crypto_sign_keypair(pk, sk);
    sodium_bin2base64(out, size, sk, 64, sodium_base64_VARIANT_ORIGINAL);
}


static void
test_keys_files(const char *tmp)
{
    int                     rc;
    char                    sk_path[512], pk_path[512], path[512];
    char                    buf[2048], saved[2048], err[512];
    char                    sub[256], pub_saved[2048];
    u_char                  bin[128], pk[32], sk[64];
    size_t                  bin_len, i;
    ssize_t                 len, saved_len, pub_len;
    unsigned                what;
    ngx_rustdesk_keypair_t  kp, kp2;

    snprintf(sk_path, sizeof(sk_path), "%s/%s", tmp, NGX_RUSTDESK_SK_FILE);
    snprintf(pk_path, sizeof(pk_path), "%s/%s", tmp, NGX_RUSTDESK_PK_FILE);

    /* generation in an empty directory */

    context = "keys generate files";

    err[0] = '\0';
    what = 0xFF;
    rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp, &what, err, sizeof(err));
    CHECK_EQ(rc, 0);
    CHECK_EQ(what, NGX_RUSTDESK_KEYS_GENERATED);
    CHECK_EQ(file_mode(sk_path), 0600);
    CHECK_EQ(file_mode(pk_path), 0644);
    CHECK_EQ(count_entries(tmp), 2);     /* no temporary file left over */

    len = read_file(pk_path, buf, sizeof(buf));
    CHECK_EQ(len, 44);
    CHECK(strchr(buf, '\n') == NULL);
    CHECK(strchr(buf, '/') == NULL);
    CHECK(strchr(buf, ':') == NULL);
    CHECK(strcmp(buf, kp.pk_b64) == 0);
    CHECK_EQ(strlen(kp.pk_b64), 44);

    CHECK_EQ(sodium_base642bin(bin, sizeof(bin), buf, len, NULL, &bin_len,
                               NULL, sodium_base64_VARIANT_ORIGINAL), 0);
    CHECK_EQ(bin_len, 32);
    CHECK(memcmp(bin, kp.pk, 32) == 0);

    len = read_file(sk_path, buf, sizeof(buf));
    CHECK_EQ(len, 88);
    CHECK(strchr(buf, '\n') == NULL);
    CHECK_EQ(sodium_base642bin(bin, sizeof(bin), buf, len, NULL, &bin_len,
                               NULL, sodium_base64_VARIANT_ORIGINAL), 0);
    CHECK_EQ(bin_len, 64);
    CHECK(memcmp(bin + 32, kp.pk, 32) == 0);
    CHECK(memcmp(bin, kp.sk, 64) == 0);

    /* the public half really belongs to the seed */

    crypto_sign_seed_keypair(pk, sk, bin);
    CHECK(memcmp(pk, kp.pk, 32) == 0);

    /* a second call loads the same pair */

    context = "keys reload";

    what = 0xFF;
    rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, 0);
    CHECK_EQ(what, 0);
    CHECK(memcmp(kp.sk, kp2.sk, 64) == 0);
    CHECK(memcmp(kp.pk, kp2.pk, 32) == 0);
    CHECK(strcmp(kp.pk_b64, kp2.pk_b64) == 0);

    /* trailing newlines are tolerated, in both files */

    context = "keys trailing newline";

    saved_len = read_file(sk_path, saved, sizeof(saved));
    CHECK_EQ(saved_len, 88);
    memcpy(buf, saved, saved_len);
    buf[saved_len] = '\n';
    CHECK_EQ(write_file(sk_path, buf, saved_len + 1, 0600), 0);

    pub_len = read_file(pk_path, pub_saved, sizeof(pub_saved));
    memcpy(buf, pub_saved, pub_len);
    buf[pub_len] = '\n';
    CHECK_EQ(write_file(pk_path, buf, pub_len + 1, 0644), 0);

    memset(&kp2, 0, sizeof(kp2));
    what = 0xFF;
    rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, 0);
    CHECK_EQ(what, 0);
    CHECK(memcmp(kp.sk, kp2.sk, 64) == 0);
    CHECK(strcmp(kp.pk_b64, kp2.pk_b64) == 0);

    /* "\r\n" as well */

    memcpy(buf, saved, saved_len);
    memcpy(buf + saved_len, "\r\n", 2);
    CHECK_EQ(write_file(sk_path, buf, saved_len + 2, 0600), 0);
    what = 0xFF;
    rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, 0);
    CHECK(memcmp(kp.sk, kp2.sk, 64) == 0);

    CHECK_EQ(write_file(sk_path, saved, saved_len, 0600), 0);
    CHECK_EQ(write_file(pk_path, pub_saved, pub_len, 0644), 0);

    /* malformed secret keys: an error, and the file is left alone */

    {
        char    bad[6][256];
        size_t  bad_len[6];
        u_char  sk32[32], sk64[64];

        static const char  *names[] = {
            "keys malformed: garbage",
            "keys malformed: 32 bytes",
            "keys malformed: altered public half",
            "keys malformed: empty file",
            "keys malformed: public key file content",
            "keys malformed: truncated"
        };

        strcpy(bad[0], "this is not base64 at all!\n");

        rnd_bytes(sk32, 32);
        sodium_bin2base64(bad[1], sizeof(bad[1]), sk32, 32,
                          sodium_base64_VARIANT_ORIGINAL);

        make_sk_b64(bad[2], sizeof(bad[2]), sk64);
        sk64[40] ^= 0x01;
        sodium_bin2base64(bad[2], sizeof(bad[2]), sk64, 64,
                          sodium_base64_VARIANT_ORIGINAL);

        bad[3][0] = '\0';

        strcpy(bad[4], kp.pk_b64);

        memcpy(bad[5], saved, 80);
        bad[5][80] = '\0';

        for (i = 0; i < 6; i++) {
            context = names[i];
            bad_len[i] = strlen(bad[i]);

            CHECK_EQ(write_file(sk_path, bad[i], bad_len[i], 0600), 0);

            err[0] = '\0';
            rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp2, &what, err,
                                                    sizeof(err));
            CHECK_EQ(rc, -1);
            CHECK(err[0] != '\0');
            CHECK(strstr(err, "malformed") != NULL);

            len = read_file(sk_path, buf, sizeof(buf));
            CHECK_EQ(len, bad_len[i]);
            CHECK(len >= 0 && memcmp(buf, bad[i], bad_len[i]) == 0);
            CHECK_EQ(file_mode(sk_path), 0600);

            len = read_file(pk_path, buf, sizeof(buf));
            CHECK(len == pub_len && memcmp(buf, pub_saved, pub_len) == 0);
            CHECK_EQ(count_entries(tmp), 2);
        }
    }

    CHECK_EQ(write_file(sk_path, saved, saved_len, 0600), 0);

    /* a secret key file too large to be one */

    context = "keys secret file too large";

    memset(buf, 'A', 1500);
    CHECK_EQ(write_file(sk_path, buf, 1500, 0600), 0);
    err[0] = '\0';
    rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, -1);
    CHECK(err[0] != '\0');
    CHECK_EQ(read_file(sk_path, buf, sizeof(buf)), 1500);

    /* a secret key path that is a directory: unreadable, not replaced */

    context = "keys secret is a directory";

    CHECK_EQ(unlink(sk_path), 0);
    CHECK_EQ(mkdir(sk_path, 0700), 0);
    err[0] = '\0';
    rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, -1);
    CHECK(err[0] != '\0');
    CHECK_EQ(count_entries(sk_path), 0);
    CHECK_EQ(rmdir(sk_path), 0);

    CHECK_EQ(write_file(sk_path, saved, saved_len, 0600), 0);

    /* a missing public key file is rewritten */

    context = "keys pub rewritten";

    CHECK_EQ(unlink(pk_path), 0);
    what = 0xFF;
    rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, 0);
    CHECK_EQ(what, NGX_RUSTDESK_KEYS_PUB_WRITTEN);
    CHECK(memcmp(kp.sk, kp2.sk, 64) == 0);
    len = read_file(pk_path, buf, sizeof(buf));
    CHECK_EQ(len, 44);
    CHECK(strcmp(buf, kp.pk_b64) == 0);
    CHECK_EQ(file_mode(pk_path), 0644);
    CHECK_EQ(count_entries(tmp), 2);

    /* a public key file that does not match */

    context = "keys pub mismatch";

    ngx_rustdesk_keys_generate(&kp2);
    CHECK(strcmp(kp2.pk_b64, kp.pk_b64) != 0);
    CHECK_EQ(write_file(pk_path, kp2.pk_b64, 44, 0644), 0);
    what = 0xFF;
    rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, 0);
    CHECK(what & NGX_RUSTDESK_KEYS_PUB_MISMATCH);
    CHECK(!(what & NGX_RUSTDESK_KEYS_GENERATED));
    CHECK(memcmp(kp.pk, kp2.pk, 32) == 0);      /* the secret key rules */
    CHECK(strcmp(kp.pk_b64, kp2.pk_b64) == 0);

    CHECK_EQ(write_file(pk_path, "short", 5, 0644), 0);
    what = 0;
    rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, 0);
    CHECK(what & NGX_RUSTDESK_KEYS_PUB_MISMATCH);

    CHECK_EQ(write_file(pk_path, pub_saved, pub_len, 0644), 0);

    /* secret key file modes */

    context = "keys secret file mode";

    CHECK_EQ(chmod(sk_path, 0644), 0);
    what = 0;
    rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, 0);
    CHECK_EQ(what, NGX_RUSTDESK_KEYS_SK_OPEN_MODE);
    CHECK_EQ(file_mode(sk_path), 0644);         /* reported, not changed */

    CHECK_EQ(chmod(sk_path, 0640), 0);
    what = 0;
    rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, 0);
    CHECK_EQ(what, NGX_RUSTDESK_KEYS_SK_OPEN_MODE);

    CHECK_EQ(chmod(sk_path, 0400), 0);
    what = 0xFF;
    rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, 0);
    CHECK_EQ(what, 0);

    CHECK_EQ(chmod(sk_path, 0600), 0);

    /* a key directory that does not exist yet */

    context = "keys new directory";

    snprintf(sub, sizeof(sub), "%s/newdir", tmp);
    what = 0;
    err[0] = '\0';
    rc = ngx_rustdesk_keys_load_or_generate(sub, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, 0);
    CHECK_EQ(what, NGX_RUSTDESK_KEYS_GENERATED);
    CHECK_EQ(file_mode(sub), 0700);
    CHECK_EQ(count_entries(sub), 2);
    snprintf(path, sizeof(path), "%s/%s", sub, NGX_RUSTDESK_SK_FILE);
    CHECK_EQ(file_mode(path), 0600);
    CHECK(memcmp(kp2.pk, kp.pk, 32) != 0);      /* a fresh pair */

    /* a directory that cannot be created: under a regular file */

    context = "keys directory cannot be created";

    snprintf(path, sizeof(path), "%s/plainfile", tmp);
    CHECK_EQ(write_file(path, "x", 1, 0644), 0);
    snprintf(sub, sizeof(sub), "%s/plainfile/keys", tmp);
    err[0] = '\0';
    rc = ngx_rustdesk_keys_load_or_generate(sub, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, -1);
    CHECK(err[0] != '\0');

    /* a tiny error buffer is truncated, not overrun */

    {
        char  *tiny;

        tiny = malloc(8);
        if (tiny != NULL) {
            rc = ngx_rustdesk_keys_load_or_generate(sub, &kp2, &what, tiny, 8);
            CHECK_EQ(rc, -1);
            CHECK(strlen(tiny) == 7);
            free(tiny);
        }
    }

    /* the original pair is still what the directory holds */

    context = "keys final reload";

    what = 0xFF;
    rc = ngx_rustdesk_keys_load_or_generate(tmp, &kp2, &what, err,
                                            sizeof(err));
    CHECK_EQ(rc, 0);
    CHECK_EQ(what, 0);
    CHECK(memcmp(kp.sk, kp2.sk, 64) == 0);

}


/*
 * A failed from_secret_b64 leaves kp as it was: both a byte pattern and a
 * key pair loaded before (a reload that fails keeps the old key).
 */

static void
test_keys_secret_b64_untouched(const ngx_rustdesk_keypair_t *gen,
    const char *b64)
{
    int                     round;
    char                    bad[16][256];
    u_char                  sk[64];
    size_t                  i, n, lens[16];
    ngx_rustdesk_keypair_t  kp, before, other;

    context = "keys from_secret_b64 failure leaves kp alone";

    n = 0;

    /* malformed */

    strcpy(bad[n], "");
    lens[n++] = 0;
    strcpy(bad[n], " \n");
    lens[n++] = 2;
    strcpy(bad[n], "garbage!!");                 /* stops at the '!' */
    lens[n++] = 9;
    strcpy(bad[n], gen->pk_b64);                 /* 32 bytes, not 64 */
    lens[n++] = 44;

    memcpy(bad[n], b64, 89);                     /* 61 bytes */
    lens[n++] = 84;

    memcpy(bad[n], b64, 89);                     /* a bad char late on */
    bad[n][80] = '*';
    lens[n++] = 88;

    memcpy(bad[n], b64, 88);                     /* 67 bytes */
    memcpy(bad[n] + 88, "AAAA", 5);
    lens[n++] = 92;

    memcpy(bad[n], b64, 89);                     /* trailing junk */
    memcpy(bad[n] + 88, "!", 2);
    lens[n++] = 89;

    /* well-formed, but the public half is not the seed's */

    memcpy(sk, gen->sk, 64);
    sk[63] ^= 0x80;
    sodium_bin2base64(bad[n], sizeof(bad[n]), sk, 64,
                      sodium_base64_VARIANT_ORIGINAL);
    lens[n] = strlen(bad[n]);
    n++;

    memcpy(sk, gen->sk, 64);
    sk[0] ^= 0x01;                               /* the seed this time */
    sodium_bin2base64(bad[n], sizeof(bad[n]), sk, 64,
                      sodium_base64_VARIANT_ORIGINAL);
    lens[n] = strlen(bad[n]);
    n++;

    ngx_rustdesk_keys_generate(&other);          /* someone else's halves */
    memcpy(sk, gen->sk, 32);
    memcpy(sk + 32, other.pk, 32);
    sodium_bin2base64(bad[n], sizeof(bad[n]), sk, 64,
                      sodium_base64_VARIANT_ORIGINAL);
    lens[n] = strlen(bad[n]);
    n++;

    for (round = 0; round < 3; round++) {

        for (i = 0; i < n; i++) {

            switch (round) {

            case 0:
                memset(&kp, 0xA5, sizeof(kp));
                break;

            case 1:
                memset(&kp, 0x00, sizeof(kp));
                break;

            default:
                kp = other;
                break;
            }

            before = kp;

            CHECK_EQ(ngx_rustdesk_keys_from_secret_b64((u_char *) bad[i],
                                                       lens[i], &kp), -1);
            CHECK(memcmp(&kp, &before, sizeof(kp)) == 0);
        }
    }

    /* and the good key still loads over the pattern afterwards */

    memset(&kp, 0xA5, sizeof(kp));
    CHECK_EQ(ngx_rustdesk_keys_from_secret_b64((u_char *) b64, 88, &kp), 0);
    CHECK(memcmp(kp.sk, gen->sk, 64) == 0);
    CHECK(memcmp(kp.pk, gen->pk, 32) == 0);
    CHECK(strcmp(kp.pk_b64, gen->pk_b64) == 0);
}


static void
test_keys_secret_b64(void)
{
    char                    b64[128], bad[256];
    u_char                  sk[64];
    size_t                  len;
    ngx_rustdesk_keypair_t  kp, gen;

    context = "keys from_secret_b64";

    ngx_rustdesk_keys_generate(&gen);
    sodium_bin2base64(b64, sizeof(b64), gen.sk, 64,
                      sodium_base64_VARIANT_ORIGINAL);
    len = strlen(b64);
    CHECK_EQ(len, 88);

    memset(&kp, 0, sizeof(kp));
    CHECK_EQ(ngx_rustdesk_keys_from_secret_b64((u_char *) b64, len, &kp), 0);
    CHECK(strcmp(kp.pk_b64, gen.pk_b64) == 0);
    CHECK(memcmp(kp.pk, gen.pk, 32) == 0);
    CHECK(memcmp(kp.sk, gen.sk, 64) == 0);

    /* surrounded by white space */

    snprintf(bad, sizeof(bad), " %s\n", b64);
    memset(&kp, 0, sizeof(kp));
    CHECK_EQ(ngx_rustdesk_keys_from_secret_b64((u_char *) bad, strlen(bad),
                                               &kp), 0);
    CHECK(strcmp(kp.pk_b64, gen.pk_b64) == 0);

    /* a key that is not NUL-terminated: only len bytes count */

    memcpy(bad, b64, len);
    memcpy(bad + len, "AAAA", 5);
    CHECK_EQ(ngx_rustdesk_keys_from_secret_b64((u_char *) bad, len, &kp), 0);
    CHECK(strcmp(kp.pk_b64, gen.pk_b64) == 0);

    /* and what is not one */

    CHECK_EQ(ngx_rustdesk_keys_from_secret_b64((u_char *) "", 0, &kp), -1);
    CHECK_EQ(ngx_rustdesk_keys_from_secret_b64((u_char *) "-", 1, &kp), -1);
    CHECK_EQ(ngx_rustdesk_keys_from_secret_b64((u_char *) "_", 1, &kp), -1);
    CHECK_EQ(ngx_rustdesk_keys_from_secret_b64((u_char *) gen.pk_b64, 44,
                                               &kp), -1);
    CHECK_EQ(ngx_rustdesk_keys_from_secret_b64((u_char *) "garbage!!", 9,
                                               &kp), -1);
    CHECK_EQ(ngx_rustdesk_keys_from_secret_b64((u_char *) b64, len - 4,
                                               &kp), -1);

    memcpy(bad, b64, len + 1);
    bad[10] = '*';
    CHECK_EQ(ngx_rustdesk_keys_from_secret_b64((u_char *) bad, len, &kp), -1);

    /* 64 bytes whose public half does not belong to the seed */

    memcpy(sk, gen.sk, 64);
    sk[63] ^= 0x80;
    sodium_bin2base64(bad, sizeof(bad), sk, 64,
                      sodium_base64_VARIANT_ORIGINAL);
    CHECK_EQ(ngx_rustdesk_keys_from_secret_b64((u_char *) bad, strlen(bad),
                                               &kp), -1);

    test_keys_secret_b64_untouched(&gen, b64);
}


static void
test_keys_generate(void)
{
    int                     k, distinct;
    u_char                  pk[32], sk[64], bin[64];
    size_t                  bin_len;
    ngx_rustdesk_keypair_t  kp, first;

    context = "keys generate";

    ngx_rustdesk_keys_generate(&first);
    distinct = 1;

    for (k = 0; k < 200; k++) {
        ngx_rustdesk_keys_generate(&kp);

        CHECK_EQ(strlen(kp.pk_b64), 44);
        CHECK(strchr(kp.pk_b64, '/') == NULL);
        CHECK(strchr(kp.pk_b64, ':') == NULL);
        CHECK(memcmp(kp.sk + 32, kp.pk, 32) == 0);

        crypto_sign_seed_keypair(pk, sk, kp.sk);
        CHECK(memcmp(pk, kp.pk, 32) == 0);

        CHECK(sodium_base642bin(bin, sizeof(bin), kp.pk_b64, 44, NULL,
                                &bin_len, NULL,
                                sodium_base64_VARIANT_ORIGINAL) == 0
              && bin_len == 32 && memcmp(bin, kp.pk, 32) == 0);

        if (memcmp(kp.pk, first.pk, 32) == 0) {
            distinct = 0;
        }
    }

    CHECK(distinct);
}


/* ------------------------------------------------------------------ */
/* signed peer key                                                     */
/* ------------------------------------------------------------------ */


static size_t
put_varint(u_char *p, size_t v)
{
    size_t  n;

    n = 0;

    while (v >= 0x80) {
        p[n++] = (u_char) (v | 0x80);
        v >>= 7;
    }

    p[n++] = (u_char) v;

    return n;
}


/* IdPk{id, pk} by hand: field 1 (0x0a) and field 2 (0x12), both LEN */

static size_t
expect_idpk(u_char *out, const u_char *id, size_t id_len, const u_char *pk,
    size_t pk_len)
{
    size_t  n;

    n = 0;
    out[n++] = 0x0a;
    n += put_varint(out + n, id_len);
    memcpy(out + n, id, id_len);
    n += id_len;
    out[n++] = 0x12;
    n += put_varint(out + n, pk_len);
    memcpy(out + n, pk, pk_len);
    n += pk_len;

    return n;
}


static void
check_signed(const ngx_rustdesk_keypair_t *kp, const u_char *id,
    size_t id_len, const u_char *pk)
{
    char                    idz[512];
    u_char                  out[1024], msg[1024], exp[1024], sig[1024];
    size_t                  n, exp_len;
    unsigned long long      mlen, slen;
    Hbb__IdPk              *idpk;

    n = ngx_rustdesk_keys_sign_idpk(kp, id, id_len, pk, 32, out, sizeof(out));
    exp_len = expect_idpk(exp, id, id_len, pk, 32);

    CHECK_EQ(n, crypto_sign_BYTES + exp_len);

    if (n != crypto_sign_BYTES + exp_len) {
        return;
    }

    CHECK(memcmp(out + crypto_sign_BYTES, exp, exp_len) == 0);

    CHECK_EQ(crypto_sign_open(msg, &mlen, out, n, kp->pk), 0);
    CHECK_EQ(mlen, exp_len);
    CHECK(memcmp(msg, exp, exp_len) == 0);

    /* Ed25519 is deterministic: the same as signing the hand-built bytes */

    CHECK_EQ(crypto_sign(sig, &slen, exp, exp_len, kp->sk), 0);
    CHECK_EQ(slen, n);
    CHECK(memcmp(sig, out, n) == 0);

    idpk = hbb__id_pk__unpack(NULL, mlen, msg);
    CHECK(idpk != NULL);

    if (idpk != NULL) {
        memcpy(idz, id, id_len);
        idz[id_len] = '\0';

        CHECK(idpk->id != NULL && strcmp(idpk->id, idz) == 0);
        CHECK_EQ(idpk->pk.len, 32);
        CHECK(idpk->pk.len == 32 && memcmp(idpk->pk.data, pk, 32) == 0);

        hbb__id_pk__free_unpacked(idpk, NULL);
    }
}


static void
test_sign_idpk(void)
{
    u_char                  pk[32], id[300], out[1024], msg[1024];
    u_char                 *exact;
    size_t                  n, i;
    unsigned long long      mlen;
    ngx_rustdesk_keypair_t  kp, other;

    context = "sign idpk";

    ngx_rustdesk_keys_generate(&kp);
    ngx_rustdesk_keys_generate(&other);
    rnd_bytes(pk, 32);

    check_signed(&kp, (u_char *) "123456789", 9, pk);
    check_signed(&kp, (u_char *) "a", 1, pk);

    /* longer ids: 2-byte varint lengths, up to the 256-byte limit */

    for (i = 0; i < sizeof(id); i++) {
        id[i] = (u_char) ('a' + i % 26);
    }

    check_signed(&kp, id, 127, pk);
    check_signed(&kp, id, 128, pk);
    check_signed(&kp, id, 200, pk);
    check_signed(&kp, id, 256, pk);

    /* too long an id */

    context = "sign idpk limits";

    CHECK_EQ(ngx_rustdesk_keys_sign_idpk(&kp, id, 257, pk, 32, out,
                                         sizeof(out)), 0);
    CHECK_EQ(ngx_rustdesk_keys_sign_idpk(&kp, id, 300, pk, 32, out,
                                         sizeof(out)), 0);

    /* an id with a NUL in it cannot be a protobuf-c string: refused */

    context = "sign idpk NUL in id";

    CHECK_EQ(ngx_rustdesk_keys_sign_idpk(&kp, (u_char *) "1234\0" "5678", 9,
                                         pk, 32, out, sizeof(out)), 0);
    CHECK_EQ(ngx_rustdesk_keys_sign_idpk(&kp, (u_char *) "\0" "12345678", 9,
                                         pk, 32, out, sizeof(out)), 0);
    CHECK_EQ(ngx_rustdesk_keys_sign_idpk(&kp, (u_char *) "12345678", 9,
                                         pk, 32, out, sizeof(out)), 0);
    CHECK_EQ(ngx_rustdesk_keys_sign_idpk(&kp, (u_char *) "", 1,
                                         pk, 32, out, sizeof(out)), 0);

    id[255] = '\0';
    CHECK_EQ(ngx_rustdesk_keys_sign_idpk(&kp, id, 256, pk, 32, out,
                                         sizeof(out)), 0);
    id[255] = (u_char) ('a' + 255 % 26);
    id[0] = '\0';
    CHECK_EQ(ngx_rustdesk_keys_sign_idpk(&kp, id, 256, pk, 32, out,
                                         sizeof(out)), 0);
    id[0] = 'a';
    check_signed(&kp, id, 256, pk);             /* restored: signs again */

    /* the same bytes cut before the NUL are fine */

    check_signed(&kp, (u_char *) "1234\0" "5678", 4, pk);

    context = "sign idpk limits";

    /* out_size: exactly enough works, one byte less does not */

    n = ngx_rustdesk_keys_sign_idpk(&kp, (u_char *) "123456789", 9, pk, 32,
                                    out, sizeof(out));
    CHECK_EQ(n, 64 + 2 + 9 + 2 + 32);

    exact = malloc(n);
    if (exact == NULL) {
        CHECK(exact != NULL);
        return;
    }

    CHECK_EQ(ngx_rustdesk_keys_sign_idpk(&kp, (u_char *) "123456789", 9, pk,
                                         32, exact, n - 1), 0);
    CHECK_EQ(ngx_rustdesk_keys_sign_idpk(&kp, (u_char *) "123456789", 9, pk,
                                         32, exact, 0), 0);
    CHECK_EQ(ngx_rustdesk_keys_sign_idpk(&kp, (u_char *) "123456789", 9, pk,
                                         32, exact, n), n);
    CHECK(memcmp(exact, out, n) == 0);

    free(exact);

    /* tampering and the wrong key */

    context = "sign idpk tampered";

    CHECK_EQ(crypto_sign_open(msg, &mlen, out, n, kp.pk), 0);
    CHECK(crypto_sign_open(msg, &mlen, out, n, other.pk) != 0);

    out[0] ^= 0x01;                              /* signature */
    CHECK(crypto_sign_open(msg, &mlen, out, n, kp.pk) != 0);
    out[0] ^= 0x01;

    out[63] ^= 0x40;
    CHECK(crypto_sign_open(msg, &mlen, out, n, kp.pk) != 0);
    out[63] ^= 0x40;

    out[70] ^= 0x01;                             /* message: the id */
    CHECK(crypto_sign_open(msg, &mlen, out, n, kp.pk) != 0);
    out[70] ^= 0x01;

    out[n - 1] ^= 0x01;                          /* message: the pk */
    CHECK(crypto_sign_open(msg, &mlen, out, n, kp.pk) != 0);
    out[n - 1] ^= 0x01;

    CHECK_EQ(crypto_sign_open(msg, &mlen, out, n, kp.pk), 0);
}


static void
test_keys(void)
{
    char    tmp[] = "/tmp/rustdesk-unit-XXXXXX";
    mode_t  old;

    if (sodium_init() < 0) {
        context = "keys";
        CHECK(!"sodium_init failed");
        return;
    }

    old = umask(022);

    if (mkdtemp(tmp) == NULL) {
        context = "keys";
        CHECK(!"mkdtemp failed");
        umask(old);
        return;
    }

    test_keys_files(tmp);

    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

    context = "keys cleanup";
    CHECK(access(tmp, F_OK) != 0);

    umask(old);

    test_keys_secret_b64();
    test_keys_generate();
    test_sign_idpk();
}


/* ------------------------------------------------------------------ */
/* WebSocket codec (RFC 6455)                                          */
/* ------------------------------------------------------------------ */


#define WS_EV_MAX  256


/* what the decoder reports, in order, with a copy of each payload */

typedef struct {
    int          rc;
    unsigned     code;
    size_t       len;
    u_char      *data;
} ws_event_t;


typedef struct {
    ws_event_t   ev[WS_EV_MAX];
    size_t       n;
    size_t       overflow;      /* events past WS_EV_MAX */
    size_t       grows;         /* GROW answered */
    size_t       bad;           /* breaches of the contract */
    const char  *what;          /* the first one */
} ws_events_t;


static const char  *ws_rc_names[] = {
    "AGAIN", "MESSAGE", "PING", "PONG", "CLOSE", "GROW", "ERROR"
};


static const u_char  ws_rfc_mask[4] = { 0x37, 0xfa, 0x21, 0x3d };


static void
ws_events_reset(ws_events_t *e)
{
    memset(e, 0, sizeof(ws_events_t));
}


static void
ws_events_add(ws_events_t *e, int rc, unsigned code, const u_char *data,
    size_t len)
{
    ws_event_t  *ev;

    if (e->n == WS_EV_MAX) {
        e->overflow++;
        return;
    }

    ev = &e->ev[e->n++];

    ev->rc = rc;
    ev->code = code;
    ev->len = len;
    ev->data = malloc(len ? len : 1);

    if (ev->data == NULL) {
        ev->len = 0;
        e->bad++;
        e->what = "out of memory";
        return;
    }

    if (len) {
        memcpy(ev->data, data, len);
    }
}


static void
ws_events_free(ws_events_t *e)
{
    size_t  i;

    for (i = 0; i < e->n; i++) {
        free(e->ev[i].data);
    }

    e->n = 0;
}


static int
ws_events_equal(const ws_events_t *a, const ws_events_t *b)
{
    size_t  i;

    if (a->n != b->n || a->overflow != b->overflow) {
        return 0;
    }

    for (i = 0; i < a->n; i++) {
        if (a->ev[i].rc != b->ev[i].rc
            || a->ev[i].code != b->ev[i].code
            || a->ev[i].len != b->ev[i].len
            || memcmp(a->ev[i].data, b->ev[i].data, a->ev[i].len) != 0)
        {
            return 0;
        }
    }

    return 1;
}


static void
ws_events_print(const char *title, const ws_events_t *e)
{
    size_t  i, k;

    fprintf(stderr, "  %s: %zu event(s)%s\n", title, e->n,
            e->overflow ? " (and more)" : "");

    for (i = 0; i < e->n && i < 20; i++) {
        fprintf(stderr, "    %s code %u len %zu:",
                e->ev[i].rc >= 0 && e->ev[i].rc <= NGX_RUSTDESK_WS_ERROR
                ? ws_rc_names[e->ev[i].rc] : "?",
                e->ev[i].code, e->ev[i].len);

        for (k = 0; k < e->ev[i].len && k < 16; k++) {
            fprintf(stderr, " %02x", e->ev[i].data[k]);
        }

        fprintf(stderr, "%s\n", e->ev[i].len > 16 ? " ..." : "");
    }
}


static void
ws_hex_print(const char *title, const u_char *p, size_t len)
{
    size_t  i;

    fprintf(stderr, "  %s (%zu bytes):", title, len);

    for (i = 0; i < len && i < 400; i++) {
        fprintf(stderr, "%s%02x", i % 32 ? " " : "\n    ", p[i]);
    }

    fprintf(stderr, "%s\n", len > 400 ? " ..." : "");
}


static void
ws_breach(ws_events_t *e, const char *what)
{
    if (e->bad++ == 0) {
        e->what = what;
    }
}


/*
 * Feeds in[0 .. in_len) to a fresh decoder (first buffer of cap bytes,
 * messages up to max) in the given way, answering GROW with a buffer of
 * exactly d->need bytes, and records what comes out, up to the first
 * ERROR.  Every buffer is malloc()ed to its exact size, so that ASan sees
 * any access past it; the driver also checks the contract as it goes.
 */

static void
ws_run(const u_char *in, size_t in_len, int mode, size_t cap, size_t max,
    ws_events_t *e)
{
    int                          grew;
    size_t                       off, chunk, upto;
    u_char                      *copy, *buf, *nbuf, *pos, *last, *before;
    u_char                      *grew_pos;
    ngx_rustdesk_ws_rc_e         rc;
    ngx_rustdesk_ws_decoder_t    d;

    ws_events_reset(e);

    copy = malloc(in_len ? in_len : 1);
    buf = malloc(cap ? cap : 1);

    if (copy == NULL || buf == NULL) {
        ws_breach(e, "out of memory");
        free(copy);
        free(buf);
        return;
    }

    if (in_len) {
        memcpy(copy, in, in_len);
    }

    ngx_rustdesk_ws_decoder_init(&d, buf, cap, max);

    grew = 0;
    grew_pos = NULL;
    off = 0;
    upto = 1 + rnd() % 2000;

    while (off < in_len) {

        switch (mode) {

        case FEED_ALL:
            chunk = in_len;
            break;

        case FEED_BYTES:
            chunk = 1;
            break;

        default:
            chunk = 1 + rnd() % ((rnd() & 1) ? 7 : upto);
            break;
        }

        if (chunk > in_len - off) {
            chunk = in_len - off;
        }

        pos = copy + off;
        last = pos + chunk;

        for ( ;; ) {
            before = pos;

            rc = ngx_rustdesk_ws_decode(&d, &pos, last);

            if (pos < before || pos > last) {
                ws_breach(e, "*pos moved out of [pos, last]");
                goto done;
            }

            if (d.len > d.cap) {
                ws_breach(e, "d->len > d->cap");
                goto done;
            }

            if (d.ctl_len > sizeof(d.ctl)) {
                ws_breach(e, "d->ctl_len > 125");
                goto done;
            }

            if (rc != NGX_RUSTDESK_WS_GROW) {
                grew = 0;
            }

            switch (rc) {

            case NGX_RUSTDESK_WS_AGAIN:
                if (pos != last) {
                    ws_breach(e, "AGAIN with input left");
                }

                break;

            case NGX_RUSTDESK_WS_GROW:
                if (d.need <= d.cap) {
                    ws_breach(e, "GROW with need <= cap");
                    goto done;
                }

                if (d.need > max) {
                    ws_breach(e, "GROW with need > max");
                    goto done;
                }

                if (grew && pos == grew_pos) {
                    ws_breach(e, "GROW again after a big enough buffer");
                    goto done;
                }

                nbuf = malloc(d.need);
                if (nbuf == NULL) {
                    ws_breach(e, "out of memory");
                    goto done;
                }

                if (d.len) {
                    memcpy(nbuf, buf, d.len);
                }

                free(buf);
                buf = nbuf;

                ngx_rustdesk_ws_decoder_set_buf(&d, buf, d.need);

                e->grows++;
                grew = 1;
                grew_pos = pos;
                continue;

            case NGX_RUSTDESK_WS_MESSAGE:
                if (d.buf != buf) {
                    ws_breach(e, "MESSAGE not in the buffer given");
                    goto done;
                }

                if (d.len > max) {
                    ws_breach(e, "MESSAGE longer than max");
                }

                ws_events_add(e, rc, 0, buf, d.len);
                continue;

            case NGX_RUSTDESK_WS_PING:
            case NGX_RUSTDESK_WS_PONG:
                ws_events_add(e, rc, 0, d.ctl, d.ctl_len);
                continue;

            case NGX_RUSTDESK_WS_CLOSE:
                ws_events_add(e, rc, d.code, NULL, 0);
                continue;

            case NGX_RUSTDESK_WS_ERROR:
                if (d.reason == NULL) {
                    ws_breach(e, "ERROR without a reason");
                }

                ws_events_add(e, rc, d.code, NULL, 0);
                goto done;

            default:
                ws_breach(e, "an unknown return code");
                goto done;
            }

            break;
        }

        off += chunk;
    }

done:

    free(buf);
    free(copy);
}


static const char  *ws_mode_names[] = {
    "all at once", "byte by byte", "random chunks"
};


/*
 * Feeds a stream all at once, byte by byte and in random chunks (passes
 * times): each must give exactly the expected events.
 */

static void
ws_expect(const u_char *in, size_t in_len, size_t cap, size_t max,
    const ws_events_t *exp, int passes)
{
    int          mode, k, ok;
    ws_events_t  got;

    for (mode = FEED_ALL; mode <= FEED_RANDOM; mode++) {
        for (k = 0; k < (mode == FEED_RANDOM ? passes : 1); k++) {
            ws_run(in, in_len, mode, cap, max, &got);

            ok = ws_events_equal(&got, exp);

            CHECK(ok);
            CHECK_EQ(got.bad, 0);

            if (!ok || got.bad) {
                fprintf(stderr, "  [%s] fed %s, cap %zu, max %zu%s%s\n",
                        context, ws_mode_names[mode], cap, max,
                        got.bad ? ": " : "", got.bad ? got.what : "");
                ws_hex_print("input", in, in_len);
                ws_events_print("expected", exp);
                ws_events_print("got", &got);
            }

            ws_events_free(&got);

            if (!ok) {
                return;
            }
        }
    }
}


/* expects exactly one event */

static void
ws_expect1(const u_char *in, size_t in_len, size_t cap, size_t max, int rc,
    unsigned code, const void *data, size_t len)
{
    ws_events_t  exp;

    ws_events_reset(&exp);
    ws_events_add(&exp, rc, code, data, len);

    ws_expect(in, in_len, cap, max, &exp, 10);

    ws_events_free(&exp);
}


/*
 * A client frame: first byte b0 (FIN, RSV, opcode), masked with mask
 * unless it is NULL, the length in its shortest form or, if form is 126
 * or 127, in that one.  payload NULL: the header only.
 */

static size_t
ws_frame(u_char *out, u_char b0, const u_char *mask, const void *payload,
    uint64_t len, int form)
{
    int            i;
    size_t         n;
    uint64_t       k;
    const u_char  *src;

    out[0] = b0;
    n = 2;

    if (form == 127 || (form == 0 && len > 0xffff)) {
        out[1] = 127;

        for (i = 0; i < 8; i++) {
            out[n++] = (u_char) (len >> (56 - 8 * i));
        }

    } else if (form == 126 || (form == 0 && len > 125)) {
        out[1] = 126;
        out[n++] = (u_char) (len >> 8);
        out[n++] = (u_char) len;

    } else {
        out[1] = (u_char) len;
    }

    if (mask) {
        out[1] |= 0x80;
        memcpy(out + n, mask, 4);
        n += 4;
    }

    if (payload == NULL) {
        return n;
    }

    src = payload;

    for (k = 0; k < len; k++) {
        out[n + k] = src[k] ^ (mask ? mask[k & 3] : 0);
    }

    return n + (size_t) len;
}


static void
test_ws_rfc(void)
{
    size_t                      n, n1;
    u_char                     *big, *payload, *pos, buf[64], frame[300];
    ngx_rustdesk_ws_rc_e        rc;
    ngx_rustdesk_ws_decoder_t   d;

    /* RFC 6455 section 5.7, "A single-frame masked text message" */

    static u_char  text_hello[] = {
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
    };

    static u_char  binary_hello[] = {
        0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
    };

    /* "A fragmented unmasked text message", binary and masked */

    static u_char  fragmented[] = {
        0x02, 0x83, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d,
        0x80, 0x82, 0x37, 0xfa, 0x21, 0x3d, 0x5b, 0x95
    };

    /* "Unmasked Ping request and masked Ping response", both masked */

    static u_char  ping_hello[] = {
        0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
    };

    static u_char  pong_hello[] = {
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
    };

    /* the same "Hello" unmasked, as a server would send it */

    static u_char  unmasked_hello[] = {
        0x82, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f
    };

    context = "ws rfc 5.7 text";

    ngx_rustdesk_ws_decoder_init(&d, buf, sizeof(buf), 1024);
    pos = text_hello;
    rc = ngx_rustdesk_ws_decode(&d, &pos, text_hello + sizeof(text_hello));

    CHECK_EQ(rc, NGX_RUSTDESK_WS_ERROR);
    CHECK_EQ(d.code, NGX_RUSTDESK_WS_UNSUPPORTED);
    CHECK_EQ(d.code, 1003);
    CHECK(d.reason != NULL);

    ws_expect1(text_hello, sizeof(text_hello), 64, 1024,
               NGX_RUSTDESK_WS_ERROR, 1003, NULL, 0);

    context = "ws rfc 5.7 binary";

    ngx_rustdesk_ws_decoder_init(&d, buf, sizeof(buf), 1024);
    pos = binary_hello;
    rc = ngx_rustdesk_ws_decode(&d, &pos,
                                binary_hello + sizeof(binary_hello));

    CHECK_EQ(rc, NGX_RUSTDESK_WS_MESSAGE);
    CHECK_EQ(d.len, 5);
    CHECK(memcmp(buf, "Hello", 5) == 0);
    CHECK(d.buf == buf);
    CHECK(pos == binary_hello + sizeof(binary_hello));

    ws_expect1(binary_hello, sizeof(binary_hello), 64, 1024,
               NGX_RUSTDESK_WS_MESSAGE, 0, "Hello", 5);

    /* exactly as big as max and as the buffer */
    ws_expect1(binary_hello, sizeof(binary_hello), 5, 5,
               NGX_RUSTDESK_WS_MESSAGE, 0, "Hello", 5);

    context = "ws rfc 5.7 unmasked";

    ws_expect1(unmasked_hello, sizeof(unmasked_hello), 64, 1024,
               NGX_RUSTDESK_WS_ERROR, 1002, NULL, 0);

    context = "ws rfc 5.7 fragmented";

    ngx_rustdesk_ws_decoder_init(&d, buf, sizeof(buf), 1024);
    pos = fragmented;
    rc = ngx_rustdesk_ws_decode(&d, &pos, fragmented + sizeof(fragmented));

    CHECK_EQ(rc, NGX_RUSTDESK_WS_MESSAGE);
    CHECK_EQ(d.len, 5);
    CHECK(memcmp(buf, "Hello", 5) == 0);
    CHECK(pos == fragmented + sizeof(fragmented));

    /* the first frame alone: nothing yet, all of it taken */

    ngx_rustdesk_ws_decoder_init(&d, buf, sizeof(buf), 1024);
    pos = fragmented;
    rc = ngx_rustdesk_ws_decode(&d, &pos, fragmented + 9);

    CHECK_EQ(rc, NGX_RUSTDESK_WS_AGAIN);
    CHECK(pos == fragmented + 9);

    rc = ngx_rustdesk_ws_decode(&d, &pos, fragmented + sizeof(fragmented));

    CHECK_EQ(rc, NGX_RUSTDESK_WS_MESSAGE);
    CHECK_EQ(d.len, 5);
    CHECK(memcmp(buf, "Hello", 5) == 0);

    ws_expect1(fragmented, sizeof(fragmented), 64, 1024,
               NGX_RUSTDESK_WS_MESSAGE, 0, "Hello", 5);

    /* the buffer holds the first fragment only: GROW in between */
    ws_expect1(fragmented, sizeof(fragmented), 3, 1024,
               NGX_RUSTDESK_WS_MESSAGE, 0, "Hello", 5);

    context = "ws rfc 5.7 ping";

    ngx_rustdesk_ws_decoder_init(&d, buf, sizeof(buf), 1024);
    pos = ping_hello;
    rc = ngx_rustdesk_ws_decode(&d, &pos, ping_hello + sizeof(ping_hello));

    CHECK_EQ(rc, NGX_RUSTDESK_WS_PING);
    CHECK_EQ(d.ctl_len, 5);
    CHECK(memcmp(d.ctl, "Hello", 5) == 0);
    CHECK(pos == ping_hello + sizeof(ping_hello));

    ws_expect1(ping_hello, sizeof(ping_hello), 64, 1024,
               NGX_RUSTDESK_WS_PING, 0, "Hello", 5);

    /* a control frame needs no message buffer and ignores max */
    ws_expect1(ping_hello, sizeof(ping_hello), 1, 0,
               NGX_RUSTDESK_WS_PING, 0, "Hello", 5);

    context = "ws rfc 5.7 pong";

    ngx_rustdesk_ws_decoder_init(&d, buf, sizeof(buf), 1024);
    pos = pong_hello;
    rc = ngx_rustdesk_ws_decode(&d, &pos, pong_hello + sizeof(pong_hello));

    CHECK_EQ(rc, NGX_RUSTDESK_WS_PONG);
    CHECK_EQ(d.ctl_len, 5);
    CHECK(memcmp(d.ctl, "Hello", 5) == 0);
    CHECK(pos == pong_hello + sizeof(pong_hello));

    ws_expect1(pong_hello, sizeof(pong_hello), 64, 1024,
               NGX_RUSTDESK_WS_PONG, 0, "Hello", 5);

    /* "256 bytes binary message in a single unmasked frame", masked */

    context = "ws rfc 5.7 256 bytes";

    payload = malloc(65536);
    big = malloc(65536 + 14);

    if (payload == NULL || big == NULL) {
        CHECK(!"out of memory");
        free(payload);
        free(big);
        return;
    }

    rnd_bytes(payload, 65536);

    frame[0] = 0x82;
    frame[1] = 0xfe;
    frame[2] = 0x01;
    frame[3] = 0x00;
    memcpy(frame + 4, ws_rfc_mask, 4);

    for (n = 0; n < 256; n++) {
        frame[8 + n] = payload[n] ^ ws_rfc_mask[n & 3];
    }

    n1 = 8 + 256;

    CHECK_EQ(ws_frame(big, 0x82, ws_rfc_mask, payload, 256, 0), n1);
    CHECK(memcmp(big, frame, n1) == 0);

    ws_expect1(frame, n1, 256, 256, NGX_RUSTDESK_WS_MESSAGE, 0, payload,
               256);
    ws_expect1(frame, n1, 100, 1000, NGX_RUSTDESK_WS_MESSAGE, 0, payload,
               256);
    ws_expect1(frame, n1, 256, 255, NGX_RUSTDESK_WS_ERROR, 1009, NULL, 0);

    /* "64KiB binary message in a single unmasked frame", masked */

    context = "ws rfc 5.7 65536 bytes";

    big[0] = 0x82;
    big[1] = 0xff;
    big[2] = 0x00;
    big[3] = 0x00;
    big[4] = 0x00;
    big[5] = 0x00;
    big[6] = 0x00;
    big[7] = 0x01;
    big[8] = 0x00;
    big[9] = 0x00;
    memcpy(big + 10, ws_rfc_mask, 4);

    for (n = 0; n < 65536; n++) {
        big[14 + n] = payload[n] ^ ws_rfc_mask[n & 3];
    }

    ws_expect1(big, 14 + 65536, 65536, 65536, NGX_RUSTDESK_WS_MESSAGE, 0,
               payload, 65536);
    ws_expect1(big, 14 + 65536, 1000, 1 << 20, NGX_RUSTDESK_WS_MESSAGE, 0,
               payload, 65536);
    ws_expect1(big, 14 + 65536, 65536, 65535, NGX_RUSTDESK_WS_ERROR, 1009,
               NULL, 0);

    free(payload);
    free(big);
}


/*
 * Several frames in a row: a ping and a pong between the fragments of a
 * message, long forms, an empty message, then a close.
 */

static void
test_ws_chunking(void)
{
    int                         k;
    size_t                      n, i, total, ends[16];
    u_char                     *stream, *p300, *p70k, *msg70k, *buf, *pos;
    u_char                      p125[125];
    ws_events_t                 exp, got;
    ngx_rustdesk_ws_rc_e        rc;
    ngx_rustdesk_ws_decoder_t   d;

    static const u_char  m1[4] = { 0x01, 0x02, 0x03, 0x04 };
    static const u_char  m2[4] = { 0xff, 0x00, 0xa5, 0x5a };

    context = "ws chunking";

    stream = malloc(100000);
    p300 = malloc(300);
    p70k = malloc(70000);
    msg70k = malloc(70010);
    buf = malloc(1 << 17);

    if (stream == NULL || p300 == NULL || p70k == NULL || msg70k == NULL
        || buf == NULL)
    {
        CHECK(!"out of memory");
        goto done;
    }

    rnd_bytes(p300, 300);
    rnd_bytes(p70k, 70000);
    rnd_bytes(p125, 125);

    memcpy(msg70k, p70k, 70000);
    memcpy(msg70k + 70000, "0123456789", 10);

    n = 0;
    i = 0;

    n += ws_frame(stream + n, 0x02, m1, "Hel", 3, 0);
    n += ws_frame(stream + n, 0x89, m2, "ping!", 5, 0);
    ends[i++] = n;
    n += ws_frame(stream + n, 0x00, m2, "lo, ", 4, 0);
    n += ws_frame(stream + n, 0x8a, m1, NULL, 0, 0);
    ends[i++] = n;
    n += ws_frame(stream + n, 0x80, m1, "world", 5, 0);
    ends[i++] = n;
    n += ws_frame(stream + n, 0x82, m2, p300, 300, 0);
    ends[i++] = n;
    n += ws_frame(stream + n, 0x82, m1, NULL, 0, 0);
    ends[i++] = n;
    n += ws_frame(stream + n, 0x89, m1, p125, 125, 0);
    ends[i++] = n;
    n += ws_frame(stream + n, 0x02, m2, p70k, 70000, 0);
    n += ws_frame(stream + n, 0x80, m1, "0123456789", 10, 0);
    ends[i++] = n;
    n += ws_frame(stream + n, 0x88, m2, "\x03\xe8" "bye", 5, 0);
    ends[i++] = n;

    total = n;

    ws_events_reset(&exp);
    ws_events_add(&exp, NGX_RUSTDESK_WS_PING, 0, (u_char *) "ping!", 5);
    ws_events_add(&exp, NGX_RUSTDESK_WS_PONG, 0, NULL, 0);
    ws_events_add(&exp, NGX_RUSTDESK_WS_MESSAGE, 0,
                  (u_char *) "Hello, world", 12);
    ws_events_add(&exp, NGX_RUSTDESK_WS_MESSAGE, 0, p300, 300);
    ws_events_add(&exp, NGX_RUSTDESK_WS_MESSAGE, 0, NULL, 0);
    ws_events_add(&exp, NGX_RUSTDESK_WS_PING, 0, p125, 125);
    ws_events_add(&exp, NGX_RUSTDESK_WS_MESSAGE, 0, msg70k, 70010);
    ws_events_add(&exp, NGX_RUSTDESK_WS_CLOSE, 1000, NULL, 0);

    /* all at once, by hand: each event leaves *pos at its frame's end */

    ngx_rustdesk_ws_decoder_init(&d, buf, 1 << 17, 1 << 17);
    pos = stream;

    for (i = 0; i < exp.n; i++) {
        rc = ngx_rustdesk_ws_decode(&d, &pos, stream + total);

        CHECK_EQ(rc, exp.ev[i].rc);
        CHECK_EQ(pos - stream, ends[i]);

        if (rc == NGX_RUSTDESK_WS_MESSAGE) {
            CHECK_EQ(d.len, exp.ev[i].len);
            CHECK(d.len == exp.ev[i].len
                  && memcmp(buf, exp.ev[i].data, d.len) == 0);

        } else if (rc == NGX_RUSTDESK_WS_PING || rc == NGX_RUSTDESK_WS_PONG) {
            CHECK_EQ(d.ctl_len, exp.ev[i].len);
            CHECK(d.ctl_len == exp.ev[i].len
                  && memcmp(d.ctl, exp.ev[i].data, d.ctl_len) == 0);

        } else if (rc == NGX_RUSTDESK_WS_CLOSE) {
            CHECK_EQ(d.code, exp.ev[i].code);
        }
    }

    rc = ngx_rustdesk_ws_decode(&d, &pos, stream + total);
    CHECK_EQ(rc, NGX_RUSTDESK_WS_AGAIN);
    CHECK(pos == stream + total);

    /* one buffer big enough: no GROW, the same whatever the chunks */

    ws_expect(stream, total, 1 << 17, 1 << 17, &exp, 50);

    ws_run(stream, total, FEED_BYTES, 1 << 17, 1 << 17, &got);
    CHECK_EQ(got.grows, 0);
    ws_events_free(&got);

    /* a small buffer: the same events, through GROW */

    ws_expect(stream, total, 16, 70010, &exp, 50);

    ws_run(stream, total, FEED_ALL, 16, 70010, &got);
    CHECK(got.grows >= 2);
    ws_events_free(&got);

    /* max one byte short of the long message: the same, then 1009 */

    exp.ev[6].rc = NGX_RUSTDESK_WS_ERROR;
    exp.ev[6].code = NGX_RUSTDESK_WS_TOO_BIG;
    exp.ev[6].len = 0;
    free(exp.ev[7].data);
    exp.n = 7;

    ws_expect(stream, total, 16, 70009, &exp, 20);

    /* a prefix of the stream: the events of its whole frames only */

    for (k = 0; k < 20; k++) {
        n = rnd() % total;

        ws_run(stream, n, FEED_RANDOM, 16, 1 << 17, &got);

        for (i = 0; i < 8 && ends[i] <= n; i++) { /* void */ }

        CHECK_EQ(got.n, i);
        CHECK_EQ(got.bad, 0);
        ws_events_free(&got);
    }

    ws_events_free(&exp);

done:

    free(stream);
    free(p300);
    free(p70k);
    free(msg70k);
    free(buf);
}


static void
test_ws_grow(void)
{
    size_t                      n, n1;
    u_char                      small[16], *big, *pos, *mid;
    u_char                      in[400], payload[100], *exact;
    ngx_rustdesk_ws_rc_e        rc;
    ngx_rustdesk_ws_decoder_t   d;

    static const u_char  m[4] = { 0x11, 0x22, 0x33, 0x44 };

    context = "ws grow";

    rnd_bytes(payload, sizeof(payload));

    /* (a) a 100-byte message, a 16-byte buffer */

    n = ws_frame(in, 0x82, m, payload, 100, 0);
    CHECK_EQ(n, 106);

    ngx_rustdesk_ws_decoder_init(&d, small, sizeof(small), 1000);
    pos = in;
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);

    CHECK_EQ(rc, NGX_RUSTDESK_WS_GROW);
    CHECK_EQ(d.need, 100);
    CHECK_EQ(d.len, 0);
    CHECK(pos == in + 6);               /* the header taken, no payload */

    /* not grown: GROW again, nothing written */

    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);

    CHECK_EQ(rc, NGX_RUSTDESK_WS_GROW);
    CHECK_EQ(d.need, 100);
    CHECK(pos == in + 6);

    /* grown one byte short: GROW again */

    exact = malloc(99);
    if (exact == NULL) {
        CHECK(exact != NULL);
        return;
    }

    ngx_rustdesk_ws_decoder_set_buf(&d, exact, 99);
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);

    CHECK_EQ(rc, NGX_RUSTDESK_WS_GROW);
    CHECK_EQ(d.need, 100);
    CHECK(pos == in + 6);
    free(exact);

    big = malloc(100);
    if (big == NULL) {
        CHECK(big != NULL);
        return;
    }

    ngx_rustdesk_ws_decoder_set_buf(&d, big, 100);
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);

    CHECK_EQ(rc, NGX_RUSTDESK_WS_MESSAGE);
    CHECK_EQ(d.len, 100);
    CHECK(d.buf == big);
    CHECK(memcmp(big, payload, 100) == 0);
    CHECK(pos == in + n);

    /* the next, smaller message goes to the big buffer: no GROW */

    n1 = ws_frame(in, 0x82, m, "abc", 3, 0);
    pos = in;
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n1);

    CHECK_EQ(rc, NGX_RUSTDESK_WS_MESSAGE);
    CHECK_EQ(d.len, 3);
    CHECK(memcmp(big, "abc", 3) == 0);

    free(big);

    /* (b) fragmented: 10 bytes fit, the next 50 do not */

    n = ws_frame(in, 0x02, m, payload, 10, 0);
    mid = in + n;
    n += ws_frame(in + n, 0x80, m, payload + 10, 50, 0);

    ngx_rustdesk_ws_decoder_init(&d, small, sizeof(small), 1000);
    pos = in;
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);

    CHECK_EQ(rc, NGX_RUSTDESK_WS_GROW);
    CHECK_EQ(d.need, 60);
    CHECK_EQ(d.len, 10);
    CHECK(memcmp(small, payload, 10) == 0);
    CHECK(pos == mid + 6);

    big = malloc(60);
    if (big == NULL) {
        CHECK(big != NULL);
        return;
    }

    memcpy(big, small, d.len);
    ngx_rustdesk_ws_decoder_set_buf(&d, big, 60);
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);

    CHECK_EQ(rc, NGX_RUSTDESK_WS_MESSAGE);
    CHECK_EQ(d.len, 60);
    CHECK(memcmp(big, payload, 60) == 0);
    CHECK(pos == in + n);

    free(big);

    /* (c) the header ends the input: GROW with everything taken */

    n = ws_frame(in, 0x82, m, payload, 100, 0);

    ngx_rustdesk_ws_decoder_init(&d, small, sizeof(small), 100);
    pos = in;
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + 6);

    CHECK_EQ(rc, NGX_RUSTDESK_WS_GROW);
    CHECK_EQ(d.need, 100);
    CHECK(pos == in + 6);

    big = malloc(100);
    if (big == NULL) {
        CHECK(big != NULL);
        return;
    }

    ngx_rustdesk_ws_decoder_set_buf(&d, big, 100);

    rc = ngx_rustdesk_ws_decode(&d, &pos, in + 50);
    CHECK_EQ(rc, NGX_RUSTDESK_WS_AGAIN);
    CHECK(pos == in + 50);

    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);
    CHECK_EQ(rc, NGX_RUSTDESK_WS_MESSAGE);
    CHECK_EQ(d.len, 100);
    CHECK(memcmp(big, payload, 100) == 0);

    free(big);

    /* (d) a ping between the fragments, a buffer of 1: the driver grows */

    n = ws_frame(in, 0x02, m, payload, 10, 0);
    n += ws_frame(in + n, 0x89, m, "p", 1, 0);
    n += ws_frame(in + n, 0x00, m, payload + 10, 20, 0);
    n += ws_frame(in + n, 0x00, m, payload + 30, 0, 0);
    n += ws_frame(in + n, 0x80, m, payload + 30, 70, 0);

    {
        ws_events_t  exp;

        ws_events_reset(&exp);
        ws_events_add(&exp, NGX_RUSTDESK_WS_PING, 0, (u_char *) "p", 1);
        ws_events_add(&exp, NGX_RUSTDESK_WS_MESSAGE, 0, payload, 100);

        ws_expect(in, n, 1, 100, &exp, 50);
        ws_expect(in, n, 10, 100, &exp, 50);
        ws_expect(in, n, 100, 100, &exp, 10);

        ws_events_free(&exp);
    }
}


typedef struct {
    const char  *name;
    size_t       max;
    size_t       len;
    u_char       in[24];
    size_t       before;        /* events before the error (or close) */
    int          rc;            /* ERROR or CLOSE */
    unsigned     code;
} ws_error_vector_t;


#define M  0x01, 0x02, 0x03, 0x04


static void
test_ws_errors(void)
{
    size_t       i, k, n;
    u_char       in[200], ping[126];
    ws_events_t  got;

    static const ws_error_vector_t  vectors[] = {
        { "unmasked binary", 100, 7,
          { 0x82, 0x05, 'H', 'e', 'l', 'l', 'o' }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "unmasked empty binary", 100, 2, { 0x82, 0x00 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "unmasked ping", 100, 2, { 0x89, 0x00 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "unmasked close", 100, 4, { 0x88, 0x02, 0x03, 0xe8 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "RSV1", 100, 7, { 0xc2, 0x81, M, 0x00 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "RSV2", 100, 7, { 0xa2, 0x81, M, 0x00 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "RSV3", 100, 7, { 0x92, 0x81, M, 0x00 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "RSV on a ping", 100, 6, { 0xc9, 0x80, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "opcode 3", 100, 6, { 0x83, 0x80, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "opcode 7", 100, 6, { 0x87, 0x80, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "opcode 0xB", 100, 6, { 0x8b, 0x80, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "opcode 0xF", 100, 6, { 0x8f, 0x80, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "continuation without a start", 100, 7, { 0x80, 0x81, M, 0 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "continuation (FIN=0) without a start", 100, 7,
          { 0x00, 0x81, M, 0 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "continuation after a whole message", 100, 13,
          { 0x82, 0x80, M, 0x80, 0x81, M, 0 }, 1,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "binary inside a fragmented message", 100, 14,
          { 0x02, 0x81, M, 0x61, 0x82, 0x81, M, 0x62 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "binary (FIN=0) inside a fragmented message", 100, 14,
          { 0x02, 0x81, M, 0x61, 0x02, 0x81, M, 0x62 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "text", 100, 7, { 0x81, 0x81, M, 0x61 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1003 },
        { "text, FIN=0", 100, 7, { 0x01, 0x81, M, 0x61 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1003 },
        { "empty text", 100, 6, { 0x81, 0x80, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1003 },
        { "ping, FIN=0", 100, 6, { 0x09, 0x80, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "pong, FIN=0", 100, 6, { 0x0a, 0x80, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "close, FIN=0", 100, 6, { 0x08, 0x80, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "ping, 126 form", 100, 8, { 0x89, 0xfe, 0x00, 0x05, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "close, 127 form", 100, 14,
          { 0x88, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x02, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "over max", 5, 12, { 0x82, 0x86, M, 1, 2, 3, 4, 5, 6 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1009 },
        { "over max 0", 0, 7, { 0x82, 0x81, M, 1 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1009 },
        { "fragments over max", 5, 18,
          { 0x02, 0x83, M, 1, 2, 3, 0x80, 0x83, M, 4, 5, 6 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1009 },
        { "fragments over max, a ping between", 5, 24,
          { 0x02, 0x83, M, 1, 2, 3, 0x89, 0x80, M,
            0x00, 0x83, M, 4, 5, 6 }, 1,
          NGX_RUSTDESK_WS_ERROR, 1009 },
        { "126 form over max", 1000, 8, { 0x82, 0xfe, 0x03, 0xe9, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1009 },
        { "127 form, 2^40, over max", 1 << 20, 14,
          { 0x82, 0xff, 0, 0, 0x01, 0, 0, 0, 0, 0, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1009 },
        { "127 form, 2^63 - 1, over max", 1 << 20, 14,
          { 0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, M },
          0, NGX_RUSTDESK_WS_ERROR, 1009 },
        { "127 form, the top bit set", 1 << 20, 14,
          { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0x05, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "127 form, all ones", 1 << 20, 14,
          { 0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, M },
          0, NGX_RUSTDESK_WS_ERROR, 1002 },
        { "continuation, 127 form, the top bit set", 1 << 20, 21,
          { 0x02, 0x81, M, 0x61,
            0x80, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0x01, M }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "close of 1 byte", 100, 7, { 0x88, 0x81, M, 0x03 }, 0,
          NGX_RUSTDESK_WS_ERROR, 1002 },
        { "empty close", 100, 6, { 0x88, 0x80, M }, 0,
          NGX_RUSTDESK_WS_CLOSE, 1005 },
        { "close 1000 and a reason", 100, 11,
          { 0x88, 0x85, M, 0x03 ^ 1, 0xe8 ^ 2, 'b' ^ 3, 'y' ^ 4, 'e' ^ 1 },
          0, NGX_RUSTDESK_WS_CLOSE, 1000 },
        { "close inside a fragmented message", 100, 15,
          { 0x02, 0x81, M, 0x61, 0x88, 0x82, M, 0x03 ^ 1, 0xe9 ^ 2 }, 0,
          NGX_RUSTDESK_WS_CLOSE, 1001 },
        { "a message, then a text", 100, 13,
          { 0x82, 0x81, M, 0x61, 0x81, 0x80, M }, 1,
          NGX_RUSTDESK_WS_ERROR, 1003 },
    };

    /* close codes: the valid ones come back, the others are 1002 */

    static const struct {
        unsigned  code;
        int       valid;
    } codes[] = {
        { 1000, 1 }, { 1001, 1 }, { 1002, 1 }, { 1003, 1 }, { 1007, 1 },
        { 1008, 1 }, { 1009, 1 }, { 1010, 1 }, { 1011, 1 }, { 3000, 1 },
        { 3999, 1 }, { 4000, 1 }, { 4999, 1 },
        { 0, 0 }, { 1, 0 }, { 999, 0 }, { 1004, 0 }, { 1005, 0 },
        { 1006, 0 }, { 1015, 0 }, { 1016, 0 }, { 1100, 0 }, { 2000, 0 },
        { 2999, 0 }, { 5000, 0 }, { 0xffff, 0 },
    };

    static const u_char  m[4] = { M };

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        context = vectors[i].name;

        for (k = 0; k < 3; k++) {
            ws_run(vectors[i].in, vectors[i].len, (int) k, 16,
                   vectors[i].max, &got);

            CHECK_EQ(got.bad, 0);
            CHECK_EQ(got.n, vectors[i].before + 1);

            if (got.n == vectors[i].before + 1) {
                CHECK_EQ(got.ev[got.n - 1].rc, vectors[i].rc);
                CHECK_EQ(got.ev[got.n - 1].code, vectors[i].code);

            } else {
                ws_events_print(ws_mode_names[k], &got);
            }

            /* 1009 before any GROW: nothing is allocated for it */

            if (vectors[i].code == 1009) {
                CHECK_EQ(got.grows, 0);
            }

            ws_events_free(&got);
        }
    }

    /* the error is returned as soon as the first 2 bytes show it */

    {
        u_char                      two[2] = { 0x82, 0x05 }, *pos;
        ngx_rustdesk_ws_decoder_t   d;
        ngx_rustdesk_ws_rc_e        rc;

        context = "ws errors, early";

        ngx_rustdesk_ws_decoder_init(&d, in, sizeof(in), 100);
        pos = two;
        rc = ngx_rustdesk_ws_decode(&d, &pos, two + 2);

        CHECK_EQ(rc, NGX_RUSTDESK_WS_ERROR);
        CHECK_EQ(d.code, 1002);
        CHECK(d.reason != NULL);
    }

    context = "ws close codes";

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        u_char  cp[2];

        cp[0] = (u_char) (codes[i].code >> 8);
        cp[1] = (u_char) codes[i].code;

        n = ws_frame(in, 0x88, m, cp, 2, 0);

        if (codes[i].valid) {
            ws_expect1(in, n, 16, 100, NGX_RUSTDESK_WS_CLOSE, codes[i].code,
                       NULL, 0);

        } else {
            ws_expect1(in, n, 16, 100, NGX_RUSTDESK_WS_ERROR, 1002, NULL, 0);
        }
    }

    /* a close of 125 bytes is fine, 126 is not */

    context = "ws control frame sizes";

    memset(ping, 'x', sizeof(ping));
    ping[0] = 0x0f;
    ping[1] = 0xa0;                     /* 4000 */

    n = ws_frame(in, 0x88, m, ping, 125, 0);
    ws_expect1(in, n, 16, 100, NGX_RUSTDESK_WS_CLOSE, 4000, NULL, 0);

    n = ws_frame(in, 0x88, m, ping, 126, 0);
    ws_expect1(in, n, 16, 100, NGX_RUSTDESK_WS_ERROR, 1002, NULL, 0);

    n = ws_frame(in, 0x89, m, ping, 125, 0);
    ws_expect1(in, n, 16, 0, NGX_RUSTDESK_WS_PING, 0, ping, 125);

    n = ws_frame(in, 0x8a, m, ping, 125, 0);
    ws_expect1(in, n, 16, 0, NGX_RUSTDESK_WS_PONG, 0, ping, 125);

    n = ws_frame(in, 0x89, m, ping, 126, 0);
    ws_expect1(in, n, 16, 1000, NGX_RUSTDESK_WS_ERROR, 1002, NULL, 0);

    n = ws_frame(in, 0x8a, m, ping, 126, 0);
    ws_expect1(in, n, 16, 1000, NGX_RUSTDESK_WS_ERROR, 1002, NULL, 0);

    /* a ping of 5 bytes in the 126 form: the size check is on the form */

    n = ws_frame(in, 0x89, m, ping, 5, 126);
    ws_expect1(in, n, 16, 1000, NGX_RUSTDESK_WS_ERROR, 1002, NULL, 0);

    /* max is inclusive */

    context = "ws max";

    n = ws_frame(in, 0x82, m, ping, 100, 0);
    ws_expect1(in, n, 16, 100, NGX_RUSTDESK_WS_MESSAGE, 0, ping, 100);
    ws_expect1(in, n, 16, 99, NGX_RUSTDESK_WS_ERROR, 1009, NULL, 0);

    n = ws_frame(in, 0x02, m, ping, 50, 0);
    n += ws_frame(in + n, 0x80, m, ping + 50, 50, 0);
    ws_expect1(in, n, 16, 100, NGX_RUSTDESK_WS_MESSAGE, 0, ping, 100);
    ws_expect1(in, n, 16, 99, NGX_RUSTDESK_WS_ERROR, 1009, NULL, 0);
}

#undef M


static void
test_ws_messages(void)
{
    size_t                      n, n1, n2;
    u_char                      in[200], buf[64], *pos, *last;
    ws_events_t                 exp;
    ngx_rustdesk_ws_rc_e        rc;
    ngx_rustdesk_ws_decoder_t   d;

    static const u_char  m[4] = { 0xde, 0xad, 0xbe, 0xef };

    context = "ws empty message";

    n = ws_frame(in, 0x82, m, NULL, 0, 0);
    CHECK_EQ(n, 6);

    ngx_rustdesk_ws_decoder_init(&d, buf, sizeof(buf), 100);
    memset(buf, 0xaa, sizeof(buf));
    pos = in;
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);

    CHECK_EQ(rc, NGX_RUSTDESK_WS_MESSAGE);
    CHECK_EQ(d.len, 0);
    CHECK(pos == in + n);
    CHECK_EQ(buf[0], 0xaa);

    ws_expect1(in, n, 16, 100, NGX_RUSTDESK_WS_MESSAGE, 0, NULL, 0);
    ws_expect1(in, n, 16, 0, NGX_RUSTDESK_WS_MESSAGE, 0, NULL, 0);

    /* the empty message in the 126 and 127 forms */

    n = ws_frame(in, 0x82, m, NULL, 0, 126);
    ws_expect1(in, n, 16, 0, NGX_RUSTDESK_WS_MESSAGE, 0, NULL, 0);

    n = ws_frame(in, 0x82, m, NULL, 0, 127);
    ws_expect1(in, n, 16, 0, NGX_RUSTDESK_WS_MESSAGE, 0, NULL, 0);

    /* empty fragments */

    context = "ws empty fragments";

    n = ws_frame(in, 0x02, m, NULL, 0, 0);
    n += ws_frame(in + n, 0x00, m, NULL, 0, 0);
    n += ws_frame(in + n, 0x80, m, NULL, 0, 0);
    ws_expect1(in, n, 16, 0, NGX_RUSTDESK_WS_MESSAGE, 0, NULL, 0);

    n = ws_frame(in, 0x02, m, NULL, 0, 0);
    n += ws_frame(in + n, 0x00, m, "abc", 3, 0);
    n += ws_frame(in + n, 0x00, m, NULL, 0, 0);
    n += ws_frame(in + n, 0x80, m, NULL, 0, 0);
    ws_expect1(in, n, 16, 3, NGX_RUSTDESK_WS_MESSAGE, 0, "abc", 3);

    /* three empty messages back to back */

    n = ws_frame(in, 0x82, m, NULL, 0, 0);
    n += ws_frame(in + n, 0x82, m, NULL, 0, 0);
    n += ws_frame(in + n, 0x82, m, NULL, 0, 0);

    ws_events_reset(&exp);
    ws_events_add(&exp, NGX_RUSTDESK_WS_MESSAGE, 0, NULL, 0);
    ws_events_add(&exp, NGX_RUSTDESK_WS_MESSAGE, 0, NULL, 0);
    ws_events_add(&exp, NGX_RUSTDESK_WS_MESSAGE, 0, NULL, 0);
    ws_expect(in, n, 16, 100, &exp, 10);
    ws_events_free(&exp);

    /* consecutive messages: d->len starts again after each MESSAGE */

    context = "ws consecutive messages";

    n1 = ws_frame(in, 0x82, m, "abc", 3, 0);
    n2 = n1 + ws_frame(in + n1, 0x89, m, "P", 1, 0);
    n = n2 + ws_frame(in + n2, 0x82, m, "de", 2, 0);
    last = in + n;

    ngx_rustdesk_ws_decoder_init(&d, buf, sizeof(buf), 100);
    pos = in;

    rc = ngx_rustdesk_ws_decode(&d, &pos, last);
    CHECK_EQ(rc, NGX_RUSTDESK_WS_MESSAGE);
    CHECK_EQ(d.len, 3);
    CHECK(memcmp(buf, "abc", 3) == 0);
    CHECK(pos == in + n1);

    rc = ngx_rustdesk_ws_decode(&d, &pos, last);
    CHECK_EQ(rc, NGX_RUSTDESK_WS_PING);
    CHECK_EQ(d.ctl_len, 1);
    CHECK_EQ(d.ctl[0], 'P');
    CHECK_EQ(d.len, 0);
    CHECK(pos == in + n2);

    rc = ngx_rustdesk_ws_decode(&d, &pos, last);
    CHECK_EQ(rc, NGX_RUSTDESK_WS_MESSAGE);
    CHECK_EQ(d.len, 2);
    CHECK(memcmp(buf, "de", 2) == 0);
    CHECK(pos == last);

    rc = ngx_rustdesk_ws_decode(&d, &pos, last);
    CHECK_EQ(rc, NGX_RUSTDESK_WS_AGAIN);
    CHECK_EQ(d.len, 0);
    CHECK(pos == last);

    /* two messages whose sum is over max: each is under it */

    n = ws_frame(in, 0x82, m, "abcdef", 6, 0);
    n += ws_frame(in + n, 0x82, m, "ghijkl", 6, 0);

    ws_events_reset(&exp);
    ws_events_add(&exp, NGX_RUSTDESK_WS_MESSAGE, 0, (u_char *) "abcdef", 6);
    ws_events_add(&exp, NGX_RUSTDESK_WS_MESSAGE, 0, (u_char *) "ghijkl", 6);
    ws_expect(in, n, 6, 6, &exp, 20);
    ws_expect(in, n, 1, 6, &exp, 20);
    ws_events_free(&exp);

    /* a fragmented message after a whole one: no leftovers */

    n = ws_frame(in, 0x82, m, "abcdef", 6, 0);
    n += ws_frame(in + n, 0x02, m, "gh", 2, 0);
    n += ws_frame(in + n, 0x8a, m, "Q", 1, 0);
    n += ws_frame(in + n, 0x80, m, "ij", 2, 0);

    ws_events_reset(&exp);
    ws_events_add(&exp, NGX_RUSTDESK_WS_MESSAGE, 0, (u_char *) "abcdef", 6);
    ws_events_add(&exp, NGX_RUSTDESK_WS_PONG, 0, (u_char *) "Q", 1);
    ws_events_add(&exp, NGX_RUSTDESK_WS_MESSAGE, 0, (u_char *) "ghij", 4);
    ws_expect(in, n, 8, 6, &exp, 20);
    ws_events_free(&exp);
}


static void
test_ws_header(void)
{
    size_t    i, n, len, hn;
    u_char    out[NGX_RUSTDESK_WS_HEADER_MAX + 1], *frame, *payload;
    uint64_t  v;

    static const struct {
        unsigned  opcode;
        uint64_t  len;
        size_t    n;
        u_char    bytes[10];
    } vectors[] = {
        { 2, 0,           2, { 0x82, 0x00 } },
        { 2, 1,           2, { 0x82, 0x01 } },
        { 2, 125,         2, { 0x82, 0x7d } },
        { 2, 126,         4, { 0x82, 0x7e, 0x00, 0x7e } },
        { 2, 256,         4, { 0x82, 0x7e, 0x01, 0x00 } },
        { 2, 65535,       4, { 0x82, 0x7e, 0xff, 0xff } },
        { 2, 65536,      10, { 0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0, 0 } },
        { 2, 1ULL << 32, 10, { 0x82, 0x7f, 0, 0, 0, 0x01, 0, 0, 0, 0 } },
        { 2, 0x0102030405060708ULL, 10,
          { 0x82, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8 } },
        { 2, 0x7fffffffffffffffULL, 10,
          { 0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
        { 8, 2,           2, { 0x88, 0x02 } },
        { 9, 5,           2, { 0x89, 0x05 } },
        { 10, 125,        2, { 0x8a, 0x7d } },
        { 1, 126,         4, { 0x81, 0x7e, 0x00, 0x7e } },
        { 0, 3,           2, { 0x80, 0x03 } },
    };

    context = "ws header";

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        memset(out, 0xaa, sizeof(out));

        n = ngx_rustdesk_ws_header(out, vectors[i].opcode, vectors[i].len);

        CHECK_EQ(n, vectors[i].n);
        CHECK(n == vectors[i].n && memcmp(out, vectors[i].bytes, n) == 0);
        CHECK(n > NGX_RUSTDESK_WS_HEADER_MAX || out[n] == 0xaa);
    }

    /* random lengths of each size: a masked copy decodes to the payload */

    context = "ws header roundtrip";

    frame = malloc(70000 + 14);
    payload = malloc(70000);

    if (frame == NULL || payload == NULL) {
        CHECK(!"out of memory");
        free(frame);
        free(payload);
        return;
    }

    for (i = 0; i < 30; i++) {
        switch (i % 3) {
        case 0:
            len = rnd() % 126;
            break;
        case 1:
            len = 126 + rnd() % (65536 - 126);
            break;
        default:
            len = 65536 + rnd() % (70000 - 65536);
            break;
        }

        rnd_bytes(payload, len);

        hn = ngx_rustdesk_ws_header(frame, NGX_RUSTDESK_WS_BINARY, len);
        CHECK_EQ(hn, len <= 125 ? 2 : len <= 65535 ? 4 : 10);

        /* the length as written, read back */

        v = frame[1] & 0x7f;

        if (v == 126) {
            v = (frame[2] << 8) | frame[3];

        } else if (v == 127) {
            for (v = 0, n = 2; n < 10; n++) {
                v = (v << 8) | frame[n];
            }
        }

        CHECK_EQ(v, len);

        frame[1] |= 0x80;
        memcpy(frame + hn, ws_rfc_mask, 4);

        for (n = 0; n < len; n++) {
            frame[hn + 4 + n] = payload[n] ^ ws_rfc_mask[n & 3];
        }

        ws_expect1(frame, hn + 4 + len, 70000, 70000,
                   NGX_RUSTDESK_WS_MESSAGE, 0, payload, len);
    }

    free(frame);
    free(payload);
}


/* the upgrade request */

typedef struct {
    int      rc;
    int      status;
    size_t   size;
    int      has_key, has_real_ip, has_forwarded;
    size_t   key_len;
    char     key[128];
    char     real_ip[128];
    char     forwarded[128];
} ws_req_t;


static void
ws_req_str(char *dst, const unsigned char *p, size_t len,
    const unsigned char *base, size_t size)
{
    dst[0] = '\0';

    /* within the request */

    CHECK(p >= base && p + len <= base + size);

    if (p < base || p + len > base + size || len >= 128) {
        return;
    }

    memcpy(dst, p, len);
    dst[len] = '\0';
}


/* parses a copy of exactly len bytes (ASan sees any read past it) */

static void
ws_req_parse(const void *in, size_t len, ws_req_t *out)
{
    u_char                     *copy;
    ngx_rustdesk_ws_request_t   r;

    memset(out, 0, sizeof(ws_req_t));

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        CHECK(copy != NULL);
        return;
    }

    memcpy(copy, in, len);
    memset(&r, 0x5a, sizeof(r));

    out->rc = ngx_rustdesk_ws_parse_request(copy, len, &r);

    if (out->rc == 1) {
        out->status = r.status;
        out->size = r.size;

        CHECK(r.size <= len);
        CHECK(r.status == 0 || r.reason != NULL);

        if (r.key) {
            out->has_key = 1;
            out->key_len = r.key_len;
            ws_req_str(out->key, r.key, r.key_len, copy, r.size);
        }

        if (r.real_ip) {
            out->has_real_ip = 1;
            ws_req_str(out->real_ip, r.real_ip, r.real_ip_len, copy, r.size);
        }

        if (r.forwarded) {
            out->has_forwarded = 1;
            ws_req_str(out->forwarded, r.forwarded, r.forwarded_len, copy,
                       r.size);
        }
    }

    free(copy);
}


static void
ws_req_expect(const char *s, int status)
{
    ws_req_t  r;

    ws_req_parse(s, strlen(s), &r);

    CHECK_EQ(r.rc, 1);
    CHECK_EQ(r.status, status);
    CHECK_EQ(r.size, strlen(s));

    if (r.rc != 1 || r.status != status) {
        fprintf(stderr, "  [%s] request:\n%s", context, s);
    }
}


#define WS_REQ_LINE  "GET /chat HTTP/1.1\r\n"
#define WS_REQ_HOST  "Host: server.example.com\r\n"
#define WS_REQ_UPG   "Upgrade: websocket\r\n"
#define WS_REQ_CONN  "Connection: Upgrade\r\n"
#define WS_REQ_KEY   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define WS_REQ_VER   "Sec-WebSocket-Version: 13\r\n"
#define WS_REQ_TAIL  WS_REQ_UPG WS_REQ_CONN WS_REQ_KEY WS_REQ_VER "\r\n"


static void
test_ws_request(void)
{
    size_t    i, len;
    u_char    tmp[1024];
    ws_req_t  r;

    /* RFC 6455 section 1.3 */

    static const char  rfc[] =
        "GET /chat HTTP/1.1\r\n"
        "Host: server.example.com\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Origin: http://example.com\r\n"
        "Sec-WebSocket-Protocol: chat, superchat\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n";

    static const char  minimal[] =
        WS_REQ_LINE WS_REQ_HOST WS_REQ_TAIL;

    context = "ws request rfc 1.3";

    ws_req_parse(rfc, sizeof(rfc) - 1, &r);

    CHECK_EQ(r.rc, 1);
    CHECK_EQ(r.status, 0);
    CHECK_EQ(r.size, sizeof(rfc) - 1);
    CHECK(r.has_key && strcmp(r.key, "dGhlIHNhbXBsZSBub25jZQ==") == 0);
    CHECK(!r.has_real_ip);
    CHECK(!r.has_forwarded);

    ws_req_parse(minimal, sizeof(minimal) - 1, &r);

    CHECK_EQ(r.rc, 1);
    CHECK_EQ(r.status, 0);
    CHECK_EQ(r.size, sizeof(minimal) - 1);
    CHECK(r.has_key && strcmp(r.key, "dGhlIHNhbXBsZSBub25jZQ==") == 0);

    /* incomplete: every prefix */

    context = "ws request incomplete";

    for (len = 0; len < sizeof(rfc) - 1; len++) {
        ws_req_parse(rfc, len, &r);
        CHECK_EQ(r.rc, 0);
    }

    ws_req_parse("GET /chat HTTP/1.1\r\n\r", 21, &r);
    CHECK_EQ(r.rc, 0);

    ws_req_parse("GET /chat HTTP/1.1\n\n", 20, &r);
    CHECK_EQ(r.rc, 0);

    /* what follows the empty line (the first frame) is not the request's */

    context = "ws request and a frame";

    memcpy(tmp, rfc, sizeof(rfc) - 1);
    memcpy(tmp + sizeof(rfc) - 1, "\x82\x80\x01\x02\x03\x04\r\n\r\n", 10);

    ws_req_parse(tmp, sizeof(rfc) - 1 + 10, &r);

    CHECK_EQ(r.rc, 1);
    CHECK_EQ(r.status, 0);
    CHECK_EQ(r.size, sizeof(rfc) - 1);

    /* names in any case, spaces and tabs around values, any order */

    context = "ws request case and spaces";

    ws_req_expect("GET / HTTP/1.1\r\n"
                  "host: a\r\n"
                  "UPGRADE:WebSocket\r\n"
                  "connection:   upgrade   \r\n"
                  "sec-websocket-key:\tdGhlIHNhbXBsZSBub25jZQ==\t \r\n"
                  "SEC-WEBSOCKET-VERSION: 13 \r\n"
                  "\r\n", 0);

    {
        static const char  mixed[] =
            "GET / HTTP/1.1\r\n"
            "sEc-WeBsOcKeT-vErSiOn:13\r\n"
            "sec-websocket-key:  dGhlIHNhbXBsZSBub25jZQ==  \r\n"
            "cOnNeCtIoN: UPGRADE\r\n"
            "uPgRaDe: WEBSOCKET\r\n"
            "\r\n";

        ws_req_parse(mixed, sizeof(mixed) - 1, &r);
    }

    CHECK_EQ(r.rc, 1);
    CHECK_EQ(r.status, 0);
    CHECK(strcmp(r.key, "dGhlIHNhbXBsZSBub25jZQ==") == 0);

    /* HTTP/1.1 request line with a query, an absolute path */

    ws_req_expect("GET /ws?id=1&x=y HTTP/1.1\r\n" WS_REQ_TAIL, 0);
    ws_req_expect("GET http://example.com/ HTTP/1.1\r\n" WS_REQ_TAIL, 0);

    /* Connection as a list */

    context = "ws request connection list";

    ws_req_expect("GET / HTTP/1.1\r\n" WS_REQ_UPG
                  "Connection: keep-alive, Upgrade\r\n"
                  WS_REQ_KEY WS_REQ_VER "\r\n", 0);
    ws_req_expect("GET / HTTP/1.1\r\n" WS_REQ_UPG
                  "Connection: Upgrade,keep-alive\r\n"
                  WS_REQ_KEY WS_REQ_VER "\r\n", 0);
    ws_req_expect("GET / HTTP/1.1\r\n" WS_REQ_UPG
                  "Connection: keep-alive ,\tupgrade , close\r\n"
                  WS_REQ_KEY WS_REQ_VER "\r\n", 0);
    ws_req_expect("GET / HTTP/1.1\r\n" WS_REQ_UPG
                  "Connection: keep-alive\r\n"
                  WS_REQ_KEY WS_REQ_VER "\r\n", 400);
    ws_req_expect("GET / HTTP/1.1\r\n" WS_REQ_UPG
                  "Connection: upgrades, keep-upgrade\r\n"
                  WS_REQ_KEY WS_REQ_VER "\r\n", 400);
    ws_req_expect("GET / HTTP/1.1\r\n"
                  "Upgrade: h2c, websocket\r\n"
                  WS_REQ_CONN WS_REQ_KEY WS_REQ_VER "\r\n", 0);

    /* the method, the version */

    context = "ws request line";

    ws_req_expect("POST /chat HTTP/1.1\r\n" WS_REQ_TAIL, 405);
    ws_req_expect("HEAD /chat HTTP/1.1\r\n" WS_REQ_TAIL, 405);
    ws_req_expect("get /chat HTTP/1.1\r\n" WS_REQ_TAIL, 405);
    ws_req_expect("GET\r\n" WS_REQ_TAIL, 405);
    ws_req_expect("\r\n" WS_REQ_TAIL, 405);
    ws_req_expect("GET /chat HTTP/1.0\r\n" WS_REQ_TAIL, 400);
    ws_req_expect("GET /chat HTTP/2.0\r\n" WS_REQ_TAIL, 400);
    ws_req_expect("GET /chat\r\n" WS_REQ_TAIL, 400);
    ws_req_expect("GET HTTP/1.1\r\n" WS_REQ_TAIL, 400);
    ws_req_expect("GET /chat HTTP/1.1x\r\n" WS_REQ_TAIL, 400);
    ws_req_expect("GET /chat HTTP/1.\r\n" WS_REQ_TAIL, 400);

    /* the upgrade itself */

    context = "ws request upgrade";

    ws_req_expect(WS_REQ_LINE WS_REQ_CONN WS_REQ_KEY WS_REQ_VER "\r\n", 400);
    ws_req_expect(WS_REQ_LINE WS_REQ_UPG WS_REQ_KEY WS_REQ_VER "\r\n", 400);
    ws_req_expect(WS_REQ_LINE "Upgrade: h2c\r\n" WS_REQ_CONN WS_REQ_KEY
                  WS_REQ_VER "\r\n", 400);
    ws_req_expect(WS_REQ_LINE "Upgrade:\r\n" WS_REQ_CONN WS_REQ_KEY
                  WS_REQ_VER "\r\n", 400);
    ws_req_expect(WS_REQ_LINE "\r\n", 400);

    /* the key */

    context = "ws request key";

    ws_req_expect(WS_REQ_LINE WS_REQ_UPG WS_REQ_CONN WS_REQ_VER "\r\n", 400);
    ws_req_expect(WS_REQ_LINE WS_REQ_UPG WS_REQ_CONN
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n"
                  WS_REQ_VER "\r\n", 400);
    ws_req_expect(WS_REQ_LINE WS_REQ_UPG WS_REQ_CONN
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ===\r\n"
                  WS_REQ_VER "\r\n", 400);
    ws_req_expect(WS_REQ_LINE WS_REQ_UPG WS_REQ_CONN
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQAA\r\n"
                  WS_REQ_VER "\r\n", 400);
    ws_req_expect(WS_REQ_LINE WS_REQ_UPG WS_REQ_CONN
                  "Sec-WebSocket-Key:\r\n"
                  WS_REQ_VER "\r\n", 400);

    /*
     * RFC 6455 4.2.1 item 5: a base64 value that decodes to 16 bytes;
     * anything else MUST be refused (400).  24 bytes ending in "==" that
     * are not base64 are not such a value.
     */

    ws_req_expect(WS_REQ_LINE WS_REQ_UPG WS_REQ_CONN
                  "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n"
                  WS_REQ_VER "\r\n", 400);

    /* the version */

    context = "ws request version";

    ws_req_expect(WS_REQ_LINE WS_REQ_UPG WS_REQ_CONN WS_REQ_KEY
                  "Sec-WebSocket-Version: 8\r\n\r\n", 426);
    ws_req_expect(WS_REQ_LINE WS_REQ_UPG WS_REQ_CONN WS_REQ_KEY
                  "Sec-WebSocket-Version: 12\r\n\r\n", 426);
    ws_req_expect(WS_REQ_LINE WS_REQ_UPG WS_REQ_CONN WS_REQ_KEY
                  "Sec-WebSocket-Version: 130\r\n\r\n", 426);
    ws_req_expect(WS_REQ_LINE WS_REQ_UPG WS_REQ_CONN WS_REQ_KEY "\r\n", 426);

    /* the client's address through a proxy */

    context = "ws request addresses";

    ws_req_parse(WS_REQ_LINE "X-Real-IP: 198.51.100.7\r\n"
                 "X-Forwarded-For: 203.0.113.5, 10.0.0.1\r\n" WS_REQ_TAIL,
                 strlen(WS_REQ_LINE "X-Real-IP: 198.51.100.7\r\n"
                 "X-Forwarded-For: 203.0.113.5, 10.0.0.1\r\n" WS_REQ_TAIL),
                 &r);

    CHECK_EQ(r.rc, 1);
    CHECK_EQ(r.status, 0);
    CHECK(r.has_real_ip && strcmp(r.real_ip, "198.51.100.7") == 0);
    CHECK(r.has_forwarded && strcmp(r.forwarded, "10.0.0.1") == 0);

    /* the last address: the one the nearest (trusted) proxy added */

    {
        static const char  *xff[][2] = {
            { "x-forwarded-for: 203.0.113.5\r\n", "203.0.113.5" },
            { "X-Forwarded-For:203.0.113.5,10.0.0.1\r\n", "10.0.0.1" },
            { "X-Forwarded-For:  203.0.113.5 \t, 10.0.0.1 \r\n",
              "10.0.0.1" },
            { "X-Forwarded-For: 10.0.0.1, 2001:db8::1\r\n", "2001:db8::1" },
            { "X-FORWARDED-FOR: 203.0.113.5, 10.0.0.1, 10.0.0.2\r\n",
              "10.0.0.2" },
        };

        for (i = 0; i < sizeof(xff) / sizeof(xff[0]); i++) {
            len = (size_t) snprintf((char *) tmp, sizeof(tmp), "%s%s%s",
                                    WS_REQ_LINE, xff[i][0], WS_REQ_TAIL);

            ws_req_parse(tmp, len, &r);

            CHECK_EQ(r.rc, 1);
            CHECK_EQ(r.status, 0);
            CHECK(r.has_forwarded && strcmp(r.forwarded, xff[i][1]) == 0);
            CHECK(!r.has_real_ip);
        }
    }

    ws_req_parse(WS_REQ_LINE "x-real-ip:   2001:db8::7  \r\n" WS_REQ_TAIL,
                 strlen(WS_REQ_LINE "x-real-ip:   2001:db8::7  \r\n"
                        WS_REQ_TAIL), &r);

    CHECK_EQ(r.rc, 1);
    CHECK(r.has_real_ip && strcmp(r.real_ip, "2001:db8::7") == 0);
    CHECK(!r.has_forwarded);

    /* an address does not make a bad request good */

    ws_req_expect(WS_REQ_LINE "X-Real-IP: 198.51.100.7\r\n" WS_REQ_UPG
                  WS_REQ_KEY WS_REQ_VER "\r\n", 400);

    /* malformed header lines */

    context = "ws request malformed";

    ws_req_expect(WS_REQ_LINE "Host server.example.com\r\n" WS_REQ_TAIL, 400);
    ws_req_expect(WS_REQ_LINE WS_REQ_UPG WS_REQ_CONN WS_REQ_KEY WS_REQ_VER
                  "garbage\r\n\r\n", 400);
    ws_req_expect(WS_REQ_LINE ": no name\r\n" WS_REQ_TAIL, 400);
    ws_req_expect(WS_REQ_LINE " \r\n" WS_REQ_TAIL, 400);
}


/*
 * An independent decoder, straight from RFC 6455 section 5 and the
 * header's contract, working on the whole input: what a decoder fed in any
 * way must report.  An event needs the bytes that prove it: an error in
 * the first 2 bytes needs those 2, a length error the whole header, a
 * close code the whole frame.
 */

static int
ws_model_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003)
           || (code >= 1007 && code <= 1014)
           || (code >= 3000 && code <= 4999);
}


static void
ws_model(const u_char *in, size_t n, size_t max, ws_events_t *e)
{
    int        fragmented;
    size_t     off, hs, i, mlen;
    u_char     b0, b1, op, fin, ctl[125], *msg;
    unsigned   code;
    uint64_t   len;

    ws_events_reset(e);

    msg = malloc(n + 1);                /* no message is longer */
    if (msg == NULL) {
        e->bad++;
        return;
    }

    fragmented = 0;
    mlen = 0;
    off = 0;

#define ws_model_error(c)                                                     \
    { ws_events_add(e, NGX_RUSTDESK_WS_ERROR, c, NULL, 0); goto done; }

    for ( ;; ) {
        if (n - off < 2) {
            break;
        }

        b0 = in[off];
        b1 = in[off + 1];
        fin = b0 >> 7;
        op = b0 & 0x0f;

        if (b0 & 0x70) {
            ws_model_error(1002);
        }

        if (!(b1 & 0x80)) {
            ws_model_error(1002);
        }

        if (op == 0 && !fragmented) {
            ws_model_error(1002);
        }

        if (op == 1) {
            ws_model_error(1003);
        }

        if (op == 2 && fragmented) {
            ws_model_error(1002);
        }

        if (op >= 8 && op <= 10 && (!fin || (b1 & 0x7f) > 125)) {
            ws_model_error(1002);
        }

        if ((op > 2 && op < 8) || op > 10) {
            ws_model_error(1002);
        }

        hs = (b1 & 0x7f) == 126 ? 8 : (b1 & 0x7f) == 127 ? 14 : 6;

        if (n - off < hs) {
            break;
        }

        if ((b1 & 0x7f) == 126) {
            len = (in[off + 2] << 8) | in[off + 3];

        } else if ((b1 & 0x7f) == 127) {
            if (in[off + 2] & 0x80) {
                ws_model_error(1002);
            }

            for (len = 0, i = 2; i < 10; i++) {
                len = len * 256 + in[off + i];
            }

        } else {
            len = b1 & 0x7f;
        }

        if (op < 8 && (uint64_t) mlen + len > max) {
            ws_model_error(1009);
        }

        if (n - off - hs < len) {
            break;
        }

        /* the whole frame */

        for (i = 0; i < len; i++) {
            u_char  c = in[off + hs + i] ^ in[off + hs - 4 + (i % 4)];

            if (op < 8) {
                msg[mlen + i] = c;

            } else {
                ctl[i] = c;
            }
        }

        off += hs + (size_t) len;

        switch (op) {

        case 9:
            ws_events_add(e, NGX_RUSTDESK_WS_PING, 0, ctl, (size_t) len);
            break;

        case 10:
            ws_events_add(e, NGX_RUSTDESK_WS_PONG, 0, ctl, (size_t) len);
            break;

        case 8:
            if (len == 0) {
                ws_events_add(e, NGX_RUSTDESK_WS_CLOSE, 1005, NULL, 0);
                break;
            }

            if (len == 1) {
                ws_model_error(1002);
            }

            code = (ctl[0] << 8) | ctl[1];

            if (!ws_model_close_code_valid(code)) {
                ws_model_error(1002);
            }

            ws_events_add(e, NGX_RUSTDESK_WS_CLOSE, code, NULL, 0);
            break;

        default:
            mlen += (size_t) len;

            if (fin) {
                ws_events_add(e, NGX_RUSTDESK_WS_MESSAGE, 0, msg, mlen);
                mlen = 0;
                fragmented = 0;

            } else {
                fragmented = 1;
            }
        }
    }

#undef ws_model_error

done:

    free(msg);
}


/* a stream of mostly sound frames, then maybe cut and damaged */

static size_t
ws_random_stream(u_char *out, size_t size)
{
    int       form;
    size_t    n, k, frames, f, len, cut;
    u_char    b0, mask[4], payload[300];
    uint64_t  r;

    static const unsigned  codes[] = {
        1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1014, 1015,
        999, 0, 2999, 3000, 4999, 5000, 0xffff
    };

    n = 0;
    frames = 1 + rnd() % 8;

    for (f = 0; f < frames; f++) {
        r = rnd() % 24;

        if (r < 8) {
            b0 = 0x02;
        } else if (r < 12) {
            b0 = 0x00;
        } else if (r < 15) {
            b0 = 0x09;
        } else if (r < 17) {
            b0 = 0x0a;
        } else if (r < 19) {
            b0 = 0x08;
        } else if (r < 20) {
            b0 = 0x01;
        } else {
            b0 = rnd() % 16;
        }

        if (rnd() % 4 || b0 >= 8) {
            b0 |= 0x80;
        }

        if (rnd() % 40 == 0) {
            b0 |= (rnd() % 8) << 4;
        }

        r = rnd() % 16;
        len = r < 10 ? rnd() % 12 : r < 14 ? rnd() % 300 : 120 + rnd() % 10;

        form = 0;
        r = rnd() % 16;
        if (r == 0) {
            form = 126;
        } else if (r == 1) {
            form = 127;
        }

        rnd_bytes(payload, len);

        if ((b0 & 0x0f) == 8 && len >= 2 && rnd() % 4) {
            k = codes[rnd() % (sizeof(codes) / sizeof(codes[0]))];
            payload[0] = (u_char) (k >> 8);
            payload[1] = (u_char) k;
        }

        rnd_bytes(mask, 4);

        if (n + 14 + len > size) {
            break;
        }

        n += ws_frame(out + n, b0, rnd() % 40 ? mask : NULL, payload, len,
                      form);
    }

    /* cut */

    if (n && rnd() % 4 == 0) {
        cut = rnd() % n;
        n = cut;
    }

    /* damage */

    if (n && rnd() % 4 == 0) {
        for (k = 1 + rnd() % 3; k; k--) {
            out[rnd() % n] ^= (u_char) (1 << (rnd() % 8));
        }
    }

    return n;
}


static void
test_ws_garbage(void)
{
    int          mode;
    size_t       i, len, cap, max, mismatches, bad, events;
    u_char       in[4096];
    ws_events_t  exp, got;

    context = "ws garbage";

    mismatches = 0;
    bad = 0;
    events = 0;

    for (i = 0; i < 100000; i++) {

        if (i % 2) {
            len = rnd() % 200;
            rnd_bytes(in, len);

            /* often a plausible first frame header */

            if (len >= 2 && rnd() % 2) {
                in[0] &= 0x8f;
                in[1] |= 0x80;
            }

        } else {
            len = ws_random_stream(in, sizeof(in));
        }

        cap = rnd() % 3 ? 1 + rnd() % 64 : 1 + rnd() % 400;
        max = rnd() % 8 ? rnd() % 400 : 1 << 20;

        mode = i % 10 == 0 ? FEED_BYTES : i % 10 == 1 ? FEED_ALL
                                                      : FEED_RANDOM;

        ws_model(in, len, max, &exp);
        ws_run(in, len, mode, cap, max, &got);

        events += got.n;

        if (got.bad) {
            if (bad++ < 3) {
                fprintf(stderr, "  [%s] #%zu: %s (fed %s, cap %zu, "
                        "max %zu)\n", context, i, got.what,
                        ws_mode_names[mode], cap, max);
                ws_hex_print("input", in, len);
            }
        }

        if (!ws_events_equal(&exp, &got)) {
            if (mismatches++ < 3) {
                fprintf(stderr, "  [%s] #%zu: fed %s, cap %zu, max %zu\n",
                        context, i, ws_mode_names[mode], cap, max);
                ws_hex_print("input", in, len);
                ws_events_print("model", &exp);
                ws_events_print("decoder", &got);
            }
        }

        ws_events_free(&exp);
        ws_events_free(&got);
    }

    CHECK_EQ(bad, 0);
    CHECK_EQ(mismatches, 0);

    /* the streams are not all rejected at once */

    CHECK(events > 100000);
}


/* the upgrade request, damaged: no crash, no read past the input */

static void
test_ws_request_garbage(void)
{
    size_t     i, k, len, pos, ok, complete;
    u_char     in[1024];
    ws_req_t   r;

    static const char  base[] =
        "GET /chat HTTP/1.1\r\n"
        "Host: server.example.com\r\n"
        "Upgrade: websocket\r\n"
        "Connection: keep-alive, Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "X-Real-IP: 198.51.100.7\r\n"
        "X-Forwarded-For: 203.0.113.5, 10.0.0.1\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n";

    static const char  *bits[] = {
        "\r\n", "\r", "\n", ":", " ", ",", "\t", "\r\n\r\n", "==", "GET ",
        " HTTP/1.1"
    };

    context = "ws request garbage";

    ok = 0;
    complete = 0;

    for (i = 0; i < 20000; i++) {
        len = sizeof(base) - 1;
        memcpy(in, base, len);

        for (k = 1 + rnd() % 4; k; k--) {
            pos = rnd() % (len + 1);

            switch (rnd() % 4) {

            case 0:                     /* flip a byte */
                if (pos < len) {
                    in[pos] = (u_char) rnd();
                }
                break;

            case 1:                     /* delete some */
                if (pos < len) {
                    size_t  del = 1 + rnd() % 8;

                    if (del > len - pos) {
                        del = len - pos;
                    }

                    memmove(in + pos, in + pos + del, len - pos - del);
                    len -= del;
                }
                break;

            case 2:                     /* insert a piece of syntax */
                {
                    const char  *s = bits[rnd() % (sizeof(bits)
                                                  / sizeof(bits[0]))];
                    size_t       sl = strlen(s);

                    if (len + sl <= sizeof(in)) {
                        memmove(in + pos + sl, in + pos, len - pos);
                        memcpy(in + pos, s, sl);
                        len += sl;
                    }
                }
                break;

            default:                    /* cut */
                len = pos;
                break;
            }
        }

        ws_req_parse(in, len, &r);

        if (r.rc == 1) {
            complete++;

            if (r.status == 0) {
                ok++;
                CHECK_EQ(r.key_len, 24);
            }

            CHECK(r.status == 0 || r.status == 400 || r.status == 405
                  || r.status == 426);

        } else {
            CHECK_EQ(r.rc, 0);
        }
    }

    CHECK(complete > 1000);
    CHECK(ok > 100);
}


/*
 * The answer to each control event, as both server sides write it:
 * pong with the ping's payload, the close echoed (with or without its
 * code), a protocol error closed with its code.
 */

static void
test_ws_control(void)
{
    u_char                      in[64], buf[16];
    u_char                     *pos;
    size_t                      n;
    ngx_rustdesk_ws_reply_t     r;
    ngx_rustdesk_ws_rc_e        rc;
    ngx_rustdesk_ws_decoder_t   d;

    static const u_char  mask[4] = { 0x11, 0x22, 0x33, 0x44 };

    /* ping "abc": a pong "abc", the connection goes on */

    ngx_rustdesk_ws_decoder_init(&d, buf, sizeof(buf), 1024);
    n = ws_frame(in, 0x89, mask, "abc", 3, 0);
    pos = in;
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);
    CHECK_EQ(rc, NGX_RUSTDESK_WS_PING);

    ngx_rustdesk_ws_control(&d, rc, &r);
    CHECK_EQ(r.opcode, NGX_RUSTDESK_WS_PONG_FRAME);
    CHECK_EQ(r.len, 3);
    CHECK(memcmp(r.payload, "abc", 3) == 0);
    CHECK_EQ(r.end, 0);

    /* an empty ping: an empty pong */

    n = ws_frame(in, 0x89, mask, "", 0, 0);
    pos = in;
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);
    ngx_rustdesk_ws_control(&d, rc, &r);
    CHECK_EQ(r.opcode, NGX_RUSTDESK_WS_PONG_FRAME);
    CHECK_EQ(r.len, 0);
    CHECK_EQ(r.end, 0);

    /* a pong: nothing */

    n = ws_frame(in, 0x8a, mask, "x", 1, 0);
    pos = in;
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);
    CHECK_EQ(rc, NGX_RUSTDESK_WS_PONG);
    ngx_rustdesk_ws_control(&d, rc, &r);
    CHECK_EQ(r.opcode, 0);
    CHECK_EQ(r.end, 0);

    /* close 1001 with a reason: close 1001 back (the code only), the end */

    n = ws_frame(in, 0x88, mask, "\x03\xe9" "bye", 5, 0);
    pos = in;
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);
    CHECK_EQ(rc, NGX_RUSTDESK_WS_CLOSE);
    ngx_rustdesk_ws_control(&d, rc, &r);
    CHECK_EQ(r.opcode, NGX_RUSTDESK_WS_CLOSE_FRAME);
    CHECK_EQ(r.len, 2);
    CHECK(memcmp(r.payload, "\x03\xe9", 2) == 0);
    CHECK_EQ(r.end, 1);

    /* a close without a code: an empty close back */

    ngx_rustdesk_ws_decoder_init(&d, buf, sizeof(buf), 1024);
    n = ws_frame(in, 0x88, mask, "", 0, 0);
    pos = in;
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);
    CHECK_EQ(rc, NGX_RUSTDESK_WS_CLOSE);
    ngx_rustdesk_ws_control(&d, rc, &r);
    CHECK_EQ(r.opcode, NGX_RUSTDESK_WS_CLOSE_FRAME);
    CHECK_EQ(r.len, 0);
    CHECK_EQ(r.end, 1);

    /* a text message: close 1003, the end */

    ngx_rustdesk_ws_decoder_init(&d, buf, sizeof(buf), 1024);
    n = ws_frame(in, 0x81, mask, "t", 1, 0);
    pos = in;
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);
    CHECK_EQ(rc, NGX_RUSTDESK_WS_ERROR);
    ngx_rustdesk_ws_control(&d, rc, &r);
    CHECK_EQ(r.opcode, NGX_RUSTDESK_WS_CLOSE_FRAME);
    CHECK_EQ(r.len, 2);
    CHECK(memcmp(r.payload, "\x03\xeb", 2) == 0);
    CHECK_EQ(r.end, 2);

    /* a message is no control event */

    ngx_rustdesk_ws_decoder_init(&d, buf, sizeof(buf), 1024);
    n = ws_frame(in, 0x82, mask, "m", 1, 0);
    pos = in;
    rc = ngx_rustdesk_ws_decode(&d, &pos, in + n);
    CHECK_EQ(rc, NGX_RUSTDESK_WS_MESSAGE);
    ngx_rustdesk_ws_control(&d, rc, &r);
    CHECK_EQ(r.opcode, 0);
    CHECK_EQ(r.end, 0);
}


/*
 * The heartbeat read in place against protobuf-c: every RegisterPeer
 * protobuf-c packs (serial not negative) is read with the same id and
 * serial, and whatever the reader accepts of mutated and random bytes,
 * protobuf-c decodes to the same RegisterPeer.
 */

static size_t
hb_pack(const uint8_t *id, size_t id_len, int32_t serial, uint8_t *out)
{
    char                    idz[64];
    Hbb__RegisterPeer       rp;
    Hbb__RendezvousMessage  m;

    memcpy(idz, id, id_len);
    idz[id_len] = '\0';

    hbb__register_peer__init(&rp);
    rp.id = idz;
    rp.serial = serial;

    hbb__rendezvous_message__init(&m);
    m.union_case = HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PEER;
    m.register_peer = &rp;

    return hbb__rendezvous_message__pack(&m, out);
}


/* 1 when protobuf-c reads data as the RegisterPeer {id, serial}. */

static int
hb_protobuf_agrees(const uint8_t *data, size_t len, const uint8_t *id,
    size_t id_len, int32_t serial)
{
    int                      same;
    Hbb__RendezvousMessage  *m;

    m = hbb__rendezvous_message__unpack(NULL, len, data);

    if (m == NULL) {
        return 0;
    }

    same = m->union_case == HBB__RENDEZVOUS_MESSAGE__UNION_REGISTER_PEER
           && m->register_peer != NULL
           && memcmp(m->register_peer->id, id, id_len) == 0
           && m->register_peer->id[id_len] == '\0'
           && m->register_peer->serial == serial;

    hbb__rendezvous_message__free_unpacked(m, NULL);

    return same;
}


static const uint8_t  hb_bytes[] = {
    0x0a, 0x10, 0x18, 0x22, 0x80, 0x00, 0x01, 0x7f
};


static void
test_heartbeat_read(void)
{
    int             i, k, ok;
    size_t          len, id_len, got_len, n;
    int32_t         serial, got_serial;
    uint8_t         id[40], buf[128];
    const uint8_t  *got_id;

    context = "heartbeat_read";

    /* what real clients send: a 9-digit id, serial 0 (omitted) */

    len = hb_pack((const uint8_t *) "123456789", 9, 0, buf);
    CHECK_EQ(len, 13);
    CHECK_EQ(ngx_rustdesk_heartbeat_read(buf, len, &got_id, &got_len,
                                         &got_serial), 1);
    CHECK_EQ(got_len, 9);
    CHECK(memcmp(got_id, "123456789", 9) == 0);
    CHECK_EQ(got_serial, 0);

    for (i = 0; i < 200000; i++) {
        id_len = rnd() % sizeof(id);

        for (k = 0; k < (int) id_len; k++) {
            id[k] = (i & 1) ? '0' + rnd() % 10 : 1 + rnd() % 255;
        }

        switch (rnd() % 4) {
        case 0:
            serial = 0;
            break;
        case 1:
            serial = rnd() % 1000;
            break;
        case 2:
            serial = (int32_t) (rnd() & 0x7fffffff);
            break;
        default:
            serial = -(int32_t) (rnd() % 1000) - 1;
        }

        len = hb_pack(id, id_len, serial, buf);

        ok = ngx_rustdesk_heartbeat_read(buf, len, &got_id, &got_len,
                                         &got_serial);

        if (serial < 0) {
            CHECK_EQ(ok, 0);            /* 10-byte varint: the general way */
            continue;
        }

        CHECK_EQ(ok, 1);
        CHECK_EQ(got_len, id_len);
        CHECK(got_len == 0 || memcmp(got_id, id, got_len) == 0);
        CHECK_EQ(got_serial, serial);

        /* mutated: whatever is still read, protobuf-c reads the same */

        for (k = 0; k < 8; k++) {
            n = len;

            switch (rnd() % 4) {
            case 0:
                buf[rnd() % n] ^= 1 << (rnd() % 8);
                break;
            case 1:
                n = rnd() % (len + 1);
                break;
            case 2:
                if (n < sizeof(buf)) {
                    buf[n++] = rnd() & 0xff;
                }
                break;
            default:
                buf[rnd() % n] = rnd() & 0xff;
            }

            if (ngx_rustdesk_heartbeat_read(buf, n, &got_id, &got_len,
                                            &got_serial))
            {
                CHECK(hb_protobuf_agrees(buf, n, got_id, got_len,
                                         got_serial));
            }
        }
    }

    /* random bytes, most of them rejected, each acceptance checked */

    for (i = 0; i < 200000; i++) {
        n = 2 + rnd() % 20;
        buf[0] = 0x32;
        buf[1] = n - 2;

        for (k = 2; k < (int) n; k++) {
            buf[k] = (rnd() & 1) ? hb_bytes[rnd() % sizeof(hb_bytes)]
                                 : rnd() & 0xff;
        }

        if (ngx_rustdesk_heartbeat_read(buf, n, &got_id, &got_len,
                                        &got_serial))
        {
            CHECK(hb_protobuf_agrees(buf, n, got_id, got_len, got_serial));
        }
    }

    /* the same field twice, another field, the member not alone: not read */

    CHECK_EQ(ngx_rustdesk_heartbeat_read((const uint8_t *) "\x32\x06\x0a\x01"
             "1\x0a\x01" "2", 8, &got_id, &got_len, &got_serial), 0);
    CHECK_EQ(ngx_rustdesk_heartbeat_read((const uint8_t *) "\x32\x04\x10\x01"
             "\x10\x02", 6, &got_id, &got_len, &got_serial), 0);
    CHECK_EQ(ngx_rustdesk_heartbeat_read((const uint8_t *) "\x32\x02\x18\x01",
             4, &got_id, &got_len, &got_serial), 0);
    CHECK_EQ(ngx_rustdesk_heartbeat_read((const uint8_t *) "\x32\x00\x32\x00",
             4, &got_id, &got_len, &got_serial), 0);
    CHECK_EQ(ngx_rustdesk_heartbeat_read((const uint8_t *) "\x32", 1,
             &got_id, &got_len, &got_serial), 0);
}


int
main(void)
{
    test_frame_header();
    test_frame_roundtrip();
    test_frame_stream();
    test_frame_edge();
    test_frame_grow();

    test_addr_vectors();
    test_addr_v4_random();
    test_addr_v6();
    test_addr_normalize();
    test_addr_decode_bad();
    test_addr_now();

    test_keys();

    test_ws_rfc();
    test_ws_chunking();
    test_ws_grow();
    test_ws_errors();
    test_ws_messages();
    test_ws_header();
    test_ws_control();
    test_ws_request();
    test_ws_request_garbage();
    test_ws_garbage();

    test_heartbeat_read();

    printf("%lu passed, %lu failed\n", passed, failed);

    return failed ? 1 : 0;
}
