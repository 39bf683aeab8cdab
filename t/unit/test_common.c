/*
 * Unit tests of common/: the frame codec, AddrMangle, the key files and
 * the signed peer key (PROTOCOL.md sections 2, 4 and 5).
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

    printf("%lu passed, %lu failed\n", passed, failed);

    return failed ? 1 : 0;
}
