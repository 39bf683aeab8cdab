/*
 * relay_ws: bulk transfer through the relay, WebSocket on both sides
 * against TCP on both sides, one direction, over N pairs at once, in the
 * same nginx.
 *
 *   relay_ws -r TCP_RELAY_PORT -W WS_RELAY_PORT [-n pairs] [-d seconds]
 *            [-R rounds] [-w warm-up ms] [-P nginx.pid]
 *
 * TCP (`rustdesk_relay;'): for each pair, B (from 127.57.x.y) connects and
 * sends a framed RequestRelay{uuid}, then A (from 127.56.x.y) does the
 * same with the same uuid; from then on A sends framed messages (PROTOCOL.md
 * section 2), which the relay passes on as bytes, and B reads them.
 *
 * WebSocket (`rustdesk_relay websocket;'): B (127.59.x.y), then A
 * (127.58.x.y), upgrade (HTTP/1.1, RFC 6455) and send the RequestRelay as
 * one masked binary message; then A sends masked binary messages, which
 * the relay decodes and sends to B as unmasked binary frames, one per
 * message.
 *
 * Both modes carry the same message stream: messages of 64 KiB, each a
 * 16-byte header ("RDM1", the pair, the message's number, little endian)
 * and 65,520 bytes of the periodic pattern, continuing where the pair's
 * previous message stopped.  A's WebSocket payload is masked with a key
 * that changes with each message; the masked pattern is made once, so
 * neither mode costs the sender more than a header per message.  B checks
 * every frame header (TCP: a frame of 64 KiB; WebSocket: FIN, binary,
 * unmasked, 64 KiB), and every payload byte (memcmp), so a message that is
 * wrong, crossed with another pair's, out of order, cut or merged with
 * another counts as a problem.
 *
 * Each round runs `seconds' per mode (TCP first, then WebSocket); payload
 * bytes are counted at the receivers after the warm-up: MB/s = 10^6 bytes
 * of payload per second.  Then A finishes the message it is sending and
 * ends: TCP, a shutdown of its writing side; WebSocket, a close frame
 * (1000).  B must get every message A sent and then the end of the
 * connection (WebSocket: a close frame before it is allowed), and closes;
 * A must then see the end of its connection within 10 s (WebSocket: after
 * its close code echoed, and nothing else).
 *
 * Prints MB/s of both and the ratio WS/TCP, and the nginx workers' CPU
 * time per GB of payload (with -P), and the generator's own.
 */

#include "relay.h"

#include <sys/uio.h>


#define MAX_PAIRS    4096
#define MSG          (64 * 1024)        /* payload of a message */
#define MHDR         16                 /* its own header */
#define BODY         (MSG - MHDR)       /* its pattern bytes */
#define RBUF         (256 * 1024)       /* one recv at B */
#define DRAIN_MS     10000
#define MAGIC        "RDM1"

enum { M_TCP = 0, M_WS = 1 };

static const char  *wmode_name[] = { "TCP<->TCP", "WS<->WS" };

enum { T_SRC = 1, T_SINK };


typedef struct {
    int        fd;
    int        eof;             /* saw the end of the connection */
    int        stopping;        /* the time is up: end after this message */
    int        shut;            /* sent its end (FIN, or the close frame) */
    uint64_t   msgs;            /* messages sent completely */
    size_t     off;             /* bytes sent of the current item */
    size_t     hlen;            /* the current item: hdr[0..hlen) ... */
    const uint8_t  *body;       /* ... then body[0..blen) */
    size_t     blen;
    uint8_t    hdr[WS_CLIENT_HDR + MHDR];
    size_t     inlen;           /* bytes of the close echo A got */
} src_t;


typedef struct {
    int        fd;
    int        eof;
    int        bad;
    int        closed;          /* got a close frame (WebSocket) */
    uint8_t    fh[16];          /* a frame header being read */
    size_t     fhlen;
    size_t     fhneed;          /* its size once known, else 0 */
    uint64_t   plen;            /* the current frame's payload */
    uint64_t   pgot;
    int        data;            /* it is a message (not a close frame) */
    uint8_t    mh[MHDR];        /* the message header expected */
    uint64_t   msgs;            /* whole messages received */
} sink_t;


typedef struct {
    uint64_t   bytes;           /* payload in the measured windows */
    double     secs;
    double     cpu;             /* nginx workers, in the windows */
    double     self;            /* this program, in the windows */
    unsigned   bad;             /* wrong, crossed, cut messages or frames */
    unsigned   short_;          /* fewer messages than sent, at the end */
    unsigned   unfinished;      /* no end of stream within DRAIN_MS */
    unsigned   unexpected;      /* bytes to A, resets, no close echo */
    unsigned   connected;       /* pairs set up */
    uint64_t   msgs;            /* messages received, in all */
} stats_t;


static int                  ep;
static int                  mode;
static unsigned             npairs;
static src_t                srcs[MAX_PAIRS];
static sink_t               sinks[MAX_PAIRS];
static uint8_t             *pattern;        /* the pattern ... */
static uint8_t             *masked;         /* ... masked: ^ key[j % 4] */
static uint8_t              key[4];
static uint64_t             window_bytes;   /* counted while measuring */
static int                  measuring;
static struct sockaddr_in   ws_addr;


/* Where message `seq' of pair i takes up the pattern. */
static size_t
msg_offset(unsigned i, uint64_t seq)
{
    return (size_t) ((pattern_start(i) + seq % PATTERN_PERIOD * BODY)
                     % PATTERN_PERIOD);
}


static void
msg_header(uint8_t *h, unsigned i, uint64_t seq)
{
    unsigned  k;

    memcpy(h, MAGIC, 4);

    for (k = 0; k < 4; k++) {
        h[4 + k] = (uint8_t) (i >> (8 * k));
    }

    for (k = 0; k < 8; k++) {
        h[8 + k] = (uint8_t) (seq >> (8 * k));
    }
}


/* A's next item: message number s->msgs, or (ending) its end. */
static void
src_next(src_t *s, unsigned i)
{
    size_t   o, n;
    uint8_t  k[4], code[2];

    s->off = 0;

    if (s->stopping) {
        if (mode == M_TCP) {
            s->hlen = 0;                    /* the FIN */

        } else {
            code[0] = 1000 >> 8;
            code[1] = 1000 & 0xff;
            s->hlen = ws_client_frame(s->hdr, WS_CLOSE, code, 2, key);
        }

        s->blen = 0;
        s->body = NULL;
        return;
    }

    o = msg_offset(i, s->msgs);

    if (mode == M_TCP) {
        n = frame_header(s->hdr, MSG);
        msg_header(s->hdr + n, i, s->msgs);
        s->body = pattern + o;

    } else {
        /* the key for which masked[o ...] is the masked body: it starts
           at payload position MHDR, a multiple of 4 */
        k[0] = key[o & 3];
        k[1] = key[(o + 1) & 3];
        k[2] = key[(o + 2) & 3];
        k[3] = key[(o + 3) & 3];

        n = ws_client_header(s->hdr, WS_BINARY, MSG, k);
        msg_header(s->hdr + n, i, s->msgs);
        ws_mask(s->hdr + n, s->hdr + n, MHDR, k, 0);
        s->body = masked + o;
    }

    s->hlen = n + MHDR;
    s->blen = BODY;
}


/* A's end: FIN or close frame written; from now on A only reads. */
static void
src_shut(src_t *s, unsigned i)
{
    if (mode == M_TCP) {
        shutdown(s->fd, SHUT_WR);
    }

    s->shut = 1;
    ep_mod(ep, s->fd, EPOLLIN, T_SRC, i);
}


/* A is writable: one sendmsg of the rest of its current item. */
static void
src_send(src_t *s, unsigned i, stats_t *st)
{
    int            cnt;
    ssize_t        n;
    struct iovec   iov[2];
    struct msghdr  mh;

    if (s->hlen == 0 && s->blen == 0) {
        src_shut(s, i);                 /* TCP: the FIN */
        return;
    }

    cnt = 0;

    if (s->off < s->hlen) {
        iov[cnt].iov_base = s->hdr + s->off;
        iov[cnt].iov_len = s->hlen - s->off;
        cnt++;
    }

    if (s->blen) {
        iov[cnt].iov_base = (void *) (s->body + (s->off < s->hlen
                                                 ? 0 : s->off - s->hlen));
        iov[cnt].iov_len = s->blen - (s->off < s->hlen ? 0
                                                       : s->off - s->hlen);
        cnt++;
    }

    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = iov;
    mh.msg_iovlen = cnt;

    n = sendmsg(s->fd, &mh, MSG_NOSIGNAL);

    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            return;
        }

        st->unexpected++;               /* reset while sending */
        s->eof = 1;
        ep_mod(ep, s->fd, 0, T_SRC, i);
        return;
    }

    s->off += n;

    if (s->off < s->hlen + s->blen) {
        return;
    }

    if (s->blen == 0) {
        src_shut(s, i);                 /* WebSocket: the close frame */
        return;
    }

    s->msgs++;
    src_next(s, i);
}


/* A, after its end: the close echo (WebSocket) and the end. */
static void
src_read(src_t *s, unsigned i, stats_t *st)
{
    char     c[4096];
    ssize_t  r;
    static const uint8_t  echo[4] = { 0x88, 0x02, 1000 >> 8, 1000 & 0xff };

    r = recv(s->fd, c, sizeof(c), 0);

    if (r > 0) {
        if (mode == M_TCP || s->inlen + r > sizeof(echo)
            || memcmp(echo + s->inlen, c, r) != 0)
        {
            st->unexpected++;           /* the server sends A nothing else */
            s->inlen = sizeof(echo) + 1;
            return;
        }

        s->inlen += r;
        return;
    }

    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }

    if (r < 0) {
        st->unexpected++;               /* reset */

    } else if (mode == M_WS && s->inlen != sizeof(echo)) {
        st->unexpected++;               /* no (or a wrong) close echo */
    }

    s->eof = 1;
    ep_mod(ep, s->fd, 0, T_SRC, i);
}


/* A frame header is complete at B: 0, or -1 when it is wrong. */
static int
sink_frame(sink_t *k, unsigned i)
{
    int       fin, n;
    unsigned  opcode;
    uint64_t  len;
    uint32_t  v;

    k->pgot = 0;
    k->data = 0;

    if (mode == M_TCP) {
        v = k->fh[0] | k->fh[1] << 8 | (uint32_t) k->fh[2] << 16;
        len = v >> 2;

        if (k->fhlen != 3 || len != MSG) {
            return -1;
        }

        k->plen = len;
        k->data = 1;
        msg_header(k->mh, i, k->msgs);
        return 0;
    }

    n = ws_server_header(k->fh, k->fhlen, &opcode, &fin, &len);

    if (n <= 0 || k->closed) {
        return -1;                      /* nothing may follow a close */
    }

    if (opcode == WS_CLOSE) {
        if (!fin || len > 125) {
            return -1;
        }

        k->closed = 1;
        k->plen = len;
        return 0;
    }

    if (opcode != WS_BINARY || !fin || len != MSG) {
        return -1;
    }

    k->plen = len;
    k->data = 1;
    msg_header(k->mh, i, k->msgs);
    return 0;
}


/* B is readable. */
static void
sink_read(sink_t *k, unsigned i, stats_t *st)
{
    size_t           take, pos, cmp;
    ssize_t          n;
    uint64_t         at;
    static uint8_t   buf[RBUF];

    n = recv(k->fd, buf, sizeof(buf), 0);

    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            return;
        }

        st->unexpected++;
        n = 0;                          /* as the end */
    }

    if (n == 0) {
        k->eof = 1;
        close(k->fd);                   /* FIN: passed on to A */
        k->fd = -1;
        return;
    }

    if (k->bad) {
        return;                         /* a bad stream is read and dropped */
    }

    pos = 0;

    while (pos < (size_t) n) {

        if (k->fhneed == 0 || k->fhlen < k->fhneed) {
            /* a frame header: TCP 1-4 bytes (ours: 3), WebSocket 2-10 */

            k->fh[k->fhlen++] = buf[pos++];

            if (k->fhneed == 0) {
                if (mode == M_TCP) {
                    k->fhneed = (k->fh[0] & 3) + 1;

                } else if (k->fhlen == 2) {
                    k->fhneed = (k->fh[1] & 0x7f) == 127 ? 10
                                : (k->fh[1] & 0x7f) == 126 ? 4 : 2;
                }
            }

            if (k->fhneed == 0 || k->fhlen < k->fhneed) {
                continue;
            }

            if (sink_frame(k, i) != 0) {
                goto bad;
            }

            if (k->plen > 0) {
                continue;
            }
        }

        /* the payload */

        take = (size_t) (k->plen - k->pgot);
        take = take < (size_t) n - pos ? take : (size_t) n - pos;

        if (k->data) {
            at = k->pgot;
            cmp = 0;

            if (at < MHDR) {
                cmp = take < MHDR - at ? take : MHDR - at;

                if (memcmp(buf + pos, k->mh + at, cmp) != 0) {
                    goto bad;
                }
            }

            if (take > cmp
                && memcmp(buf + pos + cmp,
                          pattern + msg_offset(i, k->msgs) + (at + cmp - MHDR),
                          take - cmp) != 0)
            {
                goto bad;
            }

            if (measuring) {
                window_bytes += take;
            }
        }

        pos += take;
        k->pgot += take;

        if (k->pgot == k->plen) {
            if (k->data) {
                k->msgs++;
                st->msgs++;
            }

            k->fhlen = 0;
            k->fhneed = 0;
        }
    }

    return;

bad:

    k->bad = 1;
    st->bad++;
}


/* Sets up the pairs of the mode: 0, or -1 when none could be. */
static int
setup(unsigned round, stats_t *st)
{
    int                  fd;
    unsigned             i, made = 0, id;
    size_t               len;
    uint8_t              req[128];
    struct sockaddr_in   a, b;

    /* each round and mode has its own uuids */
    id = round * 2 + mode;

    for (i = 0; i < npairs; i++) {
        memset(&srcs[i], 0, sizeof(src_t));
        memset(&sinks[i], 0, sizeof(sink_t));
        srcs[i].fd = -1;
        sinks[i].fd = -1;

        if (mode == M_TCP) {
            a = src_addr(56, i);
            b = src_addr(57, i);
            len = request_relay(req, id, i);

            fd = relay_client(&b, &relay_addr, req, len,
                              "relay_ws: TCP B %u: connect or RequestRelay",
                              i);

        } else {
            a = src_addr(58, i);
            b = src_addr(59, i);
            len = request_relay_msg(req, id, i);

            fd = ws_relay_client(&b, &ws_addr, req, len, key,
                                 "relay_ws: WS B %u: connect, upgrade or "
                                 "RequestRelay", i);
        }

        if (fd == -1) {
            st->unexpected++;
            continue;
        }

        sinks[i].fd = fd;
        nonblocking(fd);
        ep_add(ep, fd, EPOLLIN, T_SINK, i);

        if (mode == M_TCP) {
            fd = relay_client(&a, &relay_addr, req, len,
                              "relay_ws: TCP A %u: connect or RequestRelay",
                              i);
        } else {
            fd = ws_relay_client(&a, &ws_addr, req, len, key,
                                 "relay_ws: WS A %u: connect, upgrade or "
                                 "RequestRelay", i);
        }

        if (fd == -1) {
            st->unexpected++;
            close_fd(&sinks[i].fd);
            continue;
        }

        srcs[i].fd = fd;
        nonblocking(fd);
        src_next(&srcs[i], i);
        ep_add(ep, fd, EPOLLOUT, T_SRC, i);
        st->connected++;
        made++;
    }

    return made ? 0 : -1;
}


static int
all_done(void)
{
    unsigned  i;

    for (i = 0; i < npairs; i++) {
        if ((srcs[i].fd != -1 && !srcs[i].eof) || sinks[i].fd != -1) {
            return 0;
        }
    }

    return 1;
}


static void
run_mode(unsigned round, unsigned seconds, unsigned warm_ms, workers_t *w,
    stats_t *st)
{
    int                  n, e;
    double               cpu0 = 0, self0 = 0;
    unsigned             i, type, idx;
    uint64_t             t0, t_warm, t_end, t_drain, now, bytes0;
    struct epoll_event   evs[256];

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1) {
        die("epoll_create1");
    }

    window_bytes = 0;
    measuring = 0;

    if (setup(round, st) != 0) {
        close(ep);
        return;
    }

    t0 = now_ns();
    t_warm = t0 + (uint64_t) warm_ms * 1000000;
    t_end = t0 + (uint64_t) seconds * 1000000000;
    t_drain = 0;
    bytes0 = 0;

    for ( ;; ) {
        now = now_ns();

        if (!measuring && t_drain == 0 && now >= t_warm) {
            measuring = 1;
            bytes0 = window_bytes;
            cpu0 = workers_cpu(w, NULL);
            self0 = self_cpu();
        }

        if (t_drain == 0 && now >= t_end) {
            measuring = 0;
            st->bytes += window_bytes - bytes0;
            st->secs += (now - t_warm) / 1e9;
            st->cpu += workers_cpu(w, NULL) - cpu0;
            st->self += self_cpu() - self0;

            /* each A ends after the message it is sending */

            for (i = 0; i < npairs; i++) {
                if (srcs[i].fd == -1 || srcs[i].eof) {
                    continue;
                }

                srcs[i].stopping = 1;

                if (srcs[i].off == 0) {
                    src_next(&srcs[i], i);
                }
            }

            t_drain = now + (uint64_t) DRAIN_MS * 1000000;
        }

        if (t_drain && (all_done() || now >= t_drain)) {
            break;
        }

        n = epoll_wait(ep, evs, 256, 10);

        for (e = 0; e < n; e++) {
            type = (unsigned) (evs[e].data.u64 >> 32);
            idx = (unsigned) evs[e].data.u64;

            if (type == T_SINK) {
                if (sinks[idx].fd != -1) {
                    sink_read(&sinks[idx], idx, st);
                }
                continue;
            }

            /* T_SRC */

            if (srcs[idx].fd == -1 || srcs[idx].eof) {
                continue;
            }

            if (srcs[idx].shut) {
                src_read(&srcs[idx], idx, st);
                continue;
            }

            if (evs[e].events & (EPOLLERR | EPOLLHUP)) {
                /* reset while sending: the other side went away */
                st->unexpected++;
                srcs[idx].eof = 1;
                ep_mod(ep, srcs[idx].fd, 0, T_SRC, idx);
                continue;
            }

            src_send(&srcs[idx], idx, st);
        }
    }

    /* the end: every message arrived, and both ends saw the close */

    for (i = 0; i < npairs; i++) {
        if (srcs[i].fd == -1) {
            continue;                   /* never set up */
        }

        if (!srcs[i].eof) {
            st->unfinished++;
        }

        if (sinks[i].fd != -1) {
            st->unfinished++;
        }

        if (!sinks[i].bad
            && (sinks[i].msgs != srcs[i].msgs || sinks[i].fhlen != 0))
        {
            if (st->short_ == 0) {
                fprintf(stderr, "relay_ws: %s pair %u: %llu of %llu "
                        "messages arrived (and %llu bytes of the next)\n",
                        wmode_name[mode], i,
                        (unsigned long long) sinks[i].msgs,
                        (unsigned long long) srcs[i].msgs,
                        (unsigned long long) (sinks[i].fhlen
                                              ? sinks[i].fhlen
                                                + sinks[i].pgot
                                              : 0));
            }

            st->short_++;
        }
    }

    for (i = 0; i < npairs; i++) {
        close_fd(&srcs[i].fd);
        close_fd(&sinks[i].fd);
    }

    close(ep);
}


static unsigned
problems(stats_t *st, unsigned rounds)
{
    return st->bad + st->short_ + st->unfinished + st->unexpected
           + (npairs * rounds - st->connected);
}


static void
print_stats(int m, stats_t *st, unsigned rounds)
{
    double  mbs, gb;

    mbs = st->secs > 0 ? st->bytes / st->secs / 1e6 : 0;
    gb = st->bytes / 1e9;

    printf("  %-10s %9.1f MB/s  (%.2f GB in %.1f s; nginx CPU %.2f s per GB, "
           "this program's %.2f; %llu messages)\n", wmode_name[m], mbs, gb,
           st->secs, gb > 0 ? st->cpu / gb : 0, gb > 0 ? st->self / gb : 0,
           (unsigned long long) st->msgs);

    if (problems(st, rounds)) {
        printf("  %-10s PROBLEMS: %u of %u pairs set up; wrong, crossed or "
               "cut messages %u; short %u; no end of stream within %d s %u; "
               "unexpected (bytes to A, no close echo, resets, failed "
               "connects) %u\n", wmode_name[m], st->connected, npairs * rounds,
               st->bad, st->short_, DRAIN_MS / 1000, st->unfinished,
               st->unexpected);
    }
}


int
main(int argc, char **argv)
{
    double         mbs[2];
    unsigned       seconds, rounds, warm_ms, ws_port, r, m;
    size_t         j;
    uint64_t       s;
    stats_t        st[2];
    workers_t      w;
    relay_opts_t   o;
    relay_num_t    nums[] = { { 'n', &npairs }, { 'd', &seconds },
                              { 'R', &rounds }, { 'w', &warm_ms },
                              { 'W', &ws_port }, { 0, NULL } };

    npairs = 1;
    seconds = 3;
    rounds = 2;
    warm_ms = 500;
    ws_port = 0;

    if (relay_getopt(argc, argv, "r:W:n:d:R:w:P:", nums, &o) != 0
        || o.relay_port == 0 || ws_port == 0 || npairs < 1
        || npairs > MAX_PAIRS || seconds < 1 || rounds < 1
        || warm_ms >= seconds * 1000)
    {
        goto usage;
    }

    if (relay_start(&o, rounds * 2 * (seconds + DRAIN_MS / 1000 + 10) + 30,
                    npairs * 2 + 64) != 0)
    {
        fprintf(stderr, "relay_ws: cannot open %u files\n", npairs * 2 + 64);
        return 2;
    }

    ws_addr = loopback("127.0.0.1", ws_port);

    /* the pattern, and the pattern masked with this run's key */

    pattern = pattern_make(MSG);
    masked = malloc(PATTERN_PERIOD + MSG);
    if (masked == NULL) {
        die("malloc");
    }

    s = seed | 1;
    for (j = 0; j < 4; j++) {
        key[j] = (uint8_t) (rnd(&s) >> 56) | 1;     /* no zero byte */
    }

    ws_mask(masked, pattern, PATTERN_PERIOD + MSG, key, 0);

    find_workers(o.relay_pid, &w);

    memset(st, 0, sizeof(st));

    printf("%u pair%s, A -> B only, messages of %u bytes, %u round%s of "
           "%u s per mode (%u ms warm-up)\n", npairs, npairs > 1 ? "s" : "",
           MSG, rounds, rounds > 1 ? "s" : "", seconds, warm_ms);

    for (r = 0; r < rounds; r++) {
        for (m = 0; m < 2; m++) {
            mode = (int) m;
            run_mode(r, seconds, warm_ms, &w, &st[m]);
        }
    }

    for (m = 0; m < 2; m++) {
        print_stats((int) m, &st[m], rounds);
        mbs[m] = st[m].secs > 0 ? st[m].bytes / st[m].secs / 1e6 : 0;
    }

    printf("RESULT relay_ws pairs=%u ws_mbs=%.1f tcp_mbs=%.1f ratio=%.2f "
           "ws_cpu_per_gb=%.2f tcp_cpu_per_gb=%.2f ws_problems=%u "
           "tcp_problems=%u\n",
           npairs, mbs[M_WS], mbs[M_TCP],
           mbs[M_TCP] > 0 ? mbs[M_WS] / mbs[M_TCP] : 0,
           st[M_WS].bytes ? st[M_WS].cpu / (st[M_WS].bytes / 1e9) : 0,
           st[M_TCP].bytes ? st[M_TCP].cpu / (st[M_TCP].bytes / 1e9) : 0,
           problems(&st[M_WS], rounds), problems(&st[M_TCP], rounds));

    return 0;

usage:

    fprintf(stderr, "usage: relay_ws -r tcp_relay_port -W ws_relay_port "
            "[-n pairs] [-d seconds] [-R rounds] [-w warm-up ms] "
            "[-P nginx.pid]\n");
    return 2;
}
