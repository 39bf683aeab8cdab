/*
 * relay_throughput: bulk transfer through the relay against nginx's own
 * stream proxy_pass, one direction, over N pairs at once.
 *
 *   relay_throughput -r RELAY_PORT -p PROXY_PORT -B BACKEND_PORT
 *                    [-e PROXY_EQ_PORT] [-n pairs] [-d seconds] [-R rounds]
 *                    [-w warm-up ms] [-P relay.pid] [-Q proxy.pid]
 *
 * Relay: for each pair, B (from 127.51.x.y) connects to the relay and
 * sends a framed RequestRelay{uuid}, then A (from 127.50.x.y) does the
 * same with the same uuid, and from then on A sends raw bytes that B
 * receives.  Baseline: A connects to a stream server with `proxy_pass
 * 127.0.0.1:BACKEND_PORT' and sends the same bytes, which this program
 * receives on BACKEND_PORT (it is the backend).  With -e, a second
 * baseline: the same through the server on PROXY_EQ_PORT, whose
 * proxy_buffer_size is the relay's buffer size (nginx's default is 16k,
 * the relay's 64k), in the same nginx as the first.
 *
 * A's stream: an 8-byte header ("RLY1" and the pair number, little
 * endian), then a periodic pattern that starts at a pair-dependent offset.
 * The receiver checks every byte (memcmp), and that it is its own pair's
 * stream.  Each round runs `seconds' per mode (proxy_pass first, then
 * proxy_pass with equal buffers, then the relay); bytes are counted at the
 * receivers after the warm-up.  Then A
 * shuts down its writing side; the receiver must see every byte A sent and
 * then the end of the stream, and close; A must then see the end of its
 * connection (FIN propagated back) within 10 s.
 *
 * Prints MB/s (10^6 bytes/s) of each mode and the ratios of the relay to
 * each baseline, and the nginx workers' CPU time per GB (with -P and -Q).
 */

#include "relay.h"


#define MAX_PAIRS    4096
#define CHUNK        (64 * 1024)
#define DRAIN_MS     10000
#define MAGIC        "RLY1"

enum { T_SRC = 1, T_SINK, T_LISTEN };


typedef struct {
    int        fd;
    int        eof;             /* saw the end of the connection */
    int        shut;            /* shut down its writing side */
    uint64_t   sent;            /* pattern bytes, header not counted */
    size_t     hsent;           /* header bytes sent */
} src_t;


typedef struct {
    int        fd;
    int        pair;            /* -1: not known yet (proxy: header) */
    int        expect;          /* relay: its own pair, -1 any */
    int        eof;
    int        bad;
    uint8_t    hdr[8];
    size_t     hlen;
    uint64_t   recvd;
} sink_t;


typedef struct {
    uint64_t   bytes;           /* in the measured windows */
    double     secs;
    double     cpu;             /* nginx workers, in the windows */
    unsigned   bad;             /* wrong bytes, crossed streams */
    unsigned   short_;          /* fewer bytes than sent, at the end */
    unsigned   unfinished;      /* no end of stream within DRAIN_MS */
    unsigned   unexpected;      /* bytes to A, resets, failed connects */
    unsigned   connected;       /* pairs set up */
} stats_t;


static int                  ep;
static unsigned             npairs;
static src_t                srcs[MAX_PAIRS];
static sink_t               sinks[MAX_PAIRS * 2];
static unsigned             nsinks;
static uint8_t             *pattern;
static uint64_t             window_bytes;   /* counted while measuring */
static int                  measuring;


/* A receiver: B (expect: its pair) or a backend connection (-1: any). */
static void
sink_add(int fd, int expect)
{
    memset(&sinks[nsinks], 0, sizeof(sink_t));
    sinks[nsinks].fd = fd;
    sinks[nsinks].pair = -1;
    sinks[nsinks].expect = expect;
    ep_add(ep, fd, EPOLLIN, T_SINK, nsinks);
    nsinks++;
}


static void
src_send(src_t *s, unsigned i)
{
    ssize_t   n;
    uint8_t   hdr[8];

    if (s->hsent < sizeof(hdr)) {
        memcpy(hdr, MAGIC, 4);
        hdr[4] = (uint8_t) i;
        hdr[5] = (uint8_t) (i >> 8);
        hdr[6] = (uint8_t) (i >> 16);
        hdr[7] = (uint8_t) (i >> 24);

        n = send(s->fd, hdr + s->hsent, sizeof(hdr) - s->hsent,
                 MSG_NOSIGNAL);
        if (n > 0) {
            s->hsent += n;
        }

        return;
    }

    n = send(s->fd, pattern + (pattern_start(i) + s->sent) % PATTERN_PERIOD,
             CHUNK, MSG_NOSIGNAL);

    if (n > 0) {
        s->sent += n;
    }
}


/* B or a backend connection is readable. */
static void
sink_read(sink_t *k, stats_t *st)
{
    ssize_t          n;
    size_t           off, take;
    uint32_t         pair;
    static uint8_t   buf[CHUNK];

    n = recv(k->fd, buf, sizeof(buf), 0);

    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            return;
        }

        st->unexpected++;
        n = 0;                      /* as the end */
    }

    if (n == 0) {
        k->eof = 1;
        close(k->fd);               /* FIN (relay: to be passed on to A) */
        k->fd = -1;
        return;
    }

    off = 0;

    if (k->hlen < sizeof(k->hdr)) {
        take = sizeof(k->hdr) - k->hlen;
        take = take < (size_t) n ? take : (size_t) n;
        memcpy(k->hdr + k->hlen, buf, take);
        k->hlen += take;
        off = take;

        if (k->hlen == sizeof(k->hdr)) {
            pair = k->hdr[4] | k->hdr[5] << 8 | k->hdr[6] << 16
                   | (uint32_t) k->hdr[7] << 24;

            if (memcmp(k->hdr, MAGIC, 4) != 0 || pair >= npairs
                || (k->expect >= 0 && pair != (uint32_t) k->expect))
            {
                k->bad = 1;
                st->bad++;
            } else {
                k->pair = (int) pair;
            }
        }
    }

    if (k->bad || off == (size_t) n) {
        return;                     /* a bad stream is read and dropped */
    }

    if (k->pair < 0) {
        return;
    }

    if (memcmp(buf + off, pattern + (pattern_start(k->pair) + k->recvd)
                                    % PATTERN_PERIOD, n - off) != 0)
    {
        k->bad = 1;
        st->bad++;
        return;
    }

    k->recvd += n - off;

    if (measuring) {
        window_bytes += n - off;
    }
}


/* Sets up the pairs of one mode: 0, or -1 when none could be. */
static int
setup(int mode, unsigned round, stats_t *st)
{
    int                  fd;
    unsigned             i, made = 0;
    size_t               len;
    uint8_t              req[128];
    struct sockaddr_in   a, b;

    nsinks = 0;

    for (i = 0; i < npairs; i++) {
        a = src_addr(50, i);
        b = src_addr(51, i);

        memset(&srcs[i], 0, sizeof(src_t));
        srcs[i].fd = -1;

        if (mode == M_RELAY) {
            len = request_relay(req, round, i);

            fd = relay_client(&b, &relay_addr, req, len,
                              "relay_throughput: B %u: connect or "
                              "RequestRelay", i);
            if (fd == -1) {
                st->unexpected++;
                continue;
            }

            nonblocking(fd);
            sink_add(fd, (int) i);

            fd = relay_client(&a, &relay_addr, req, len,
                              "relay_throughput: A %u: connect or "
                              "RequestRelay", i);

        } else {
            fd = relay_client(&a, mode_addr(mode), NULL, 0,
                              "relay_throughput: %s: A %u: connect",
                              mode_name[mode], i);
        }

        if (fd == -1) {
            st->unexpected++;
            continue;
        }

        srcs[i].fd = fd;
        nonblocking(fd);
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
        if (srcs[i].fd != -1 && !srcs[i].eof) {
            return 0;
        }
    }

    for (i = 0; i < nsinks; i++) {
        if (sinks[i].fd != -1) {
            return 0;
        }
    }

    return 1;
}


static void
run_mode(int mode, unsigned round, unsigned seconds, unsigned warm_ms,
    workers_t *w, stats_t *st)
{
    int                  n, e, fd;
    char                 c[4096];
    double               cpu0 = 0;
    ssize_t              r;
    unsigned             i, type, idx, connected0;
    uint64_t             t0, t_warm, t_end, t_drain, now, bytes0;
    struct epoll_event   evs[256];

    ep = mode_epoll(mode, T_LISTEN);

    window_bytes = 0;
    measuring = 0;
    connected0 = st->connected;

    if (setup(mode, round, st) != 0) {
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
        }

        if (t_drain == 0 && now >= t_end) {
            measuring = 0;
            st->bytes += window_bytes - bytes0;
            st->secs += (now - t_warm) / 1e9;
            st->cpu += workers_cpu(w, NULL) - cpu0;

            for (i = 0; i < npairs; i++) {
                if (srcs[i].fd != -1) {
                    shutdown(srcs[i].fd, SHUT_WR);
                    srcs[i].shut = 1;
                    ep_mod(ep, srcs[i].fd, EPOLLIN, T_SRC, i);
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

            if (type == T_LISTEN) {
                fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd == -1) {
                    continue;
                }

                if (nsinks == sizeof(sinks) / sizeof(sinks[0])) {
                    close(fd);
                    st->unexpected++;
                    continue;
                }

                sink_add(fd, -1);
                continue;
            }

            if (type == T_SINK) {
                if (sinks[idx].fd != -1) {
                    sink_read(&sinks[idx], st);
                }
                continue;
            }

            /* T_SRC */

            if (srcs[idx].fd == -1 || srcs[idx].eof) {
                continue;
            }

            if (!srcs[idx].shut) {
                if (evs[e].events & (EPOLLERR | EPOLLHUP)) {
                    /* reset while sending: the other side went away */
                    st->unexpected++;
                    srcs[idx].eof = 1;
                    ep_mod(ep, srcs[idx].fd, 0, T_SRC, idx);
                    continue;
                }

                src_send(&srcs[idx], idx);
                continue;
            }

            r = recv(srcs[idx].fd, c, sizeof(c), 0);

            if (r > 0) {
                st->unexpected++;   /* the server never sends to A */
                continue;
            }

            if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }

            if (r < 0) {
                st->unexpected++;   /* reset */
            }

            srcs[idx].eof = 1;
            ep_mod(ep, srcs[idx].fd, 0, T_SRC, idx);
        }
    }

    /* the end: every pair's bytes arrived, and both ends saw the close */

    for (i = 0; i < npairs; i++) {
        if (srcs[i].fd != -1 && !srcs[i].eof) {
            st->unfinished++;
        }
    }

    for (i = 0; i < nsinks; i++) {
        if (sinks[i].fd != -1) {
            st->unfinished++;
        }

        if (!sinks[i].bad && sinks[i].pair >= 0
            && sinks[i].recvd != srcs[sinks[i].pair].sent)
        {
            st->short_++;
        }
    }

    if (nsinks < st->connected - connected0) {
        /* connections that never reached the backend or B */
        st->unfinished += st->connected - connected0 - nsinks;
    }

    for (i = 0; i < npairs; i++) {
        close_fd(&srcs[i].fd);
    }

    for (i = 0; i < nsinks; i++) {
        close_fd(&sinks[i].fd);
    }

    mode_epoll_close(ep, mode);
}


static void
print_stats(int mode, stats_t *st, unsigned rounds)
{
    double  mbs;

    mbs = st->secs > 0 ? st->bytes / st->secs / 1e6 : 0;

    printf("  %-10s %9.1f MB/s  (%.2f GB in %.1f s; nginx CPU %.2f s per GB)"
           "\n", mode_name[mode], mbs, st->bytes / 1e9, st->secs,
           st->bytes ? st->cpu / (st->bytes / 1e9) : 0);

    if (st->bad || st->short_ || st->unfinished || st->unexpected
        || st->connected != npairs * rounds)
    {
        printf("  %-10s PROBLEMS: %u of %u pairs set up; wrong or crossed "
               "streams %u; short %u; no end of stream within %d s %u; "
               "unexpected (bytes to A, resets, failed connects) %u\n",
               mode_name[mode], st->connected, npairs * rounds, st->bad,
               st->short_, DRAIN_MS / 1000, st->unfinished, st->unexpected);
    }
}


/* Problems of a mode, for the RESULT line. */
static unsigned
problems(stats_t *st, unsigned rounds)
{
    return st->bad + st->short_ + st->unfinished + st->unexpected
           + (npairs * rounds - st->connected);
}


static double
cpu_per_gb(stats_t *st)
{
    return st->bytes ? st->cpu / (st->bytes / 1e9) : 0;
}


int
main(int argc, char **argv)
{
    int            modes[M_MODES];
    double         mbs[M_MODES];
    unsigned       seconds, rounds, warm_ms, r, m, nmodes;
    stats_t        st[M_MODES];
    workers_t      w[M_MODES];
    relay_opts_t   o;
    relay_num_t    nums[] = { { 'n', &npairs }, { 'd', &seconds },
                              { 'R', &rounds }, { 'w', &warm_ms },
                              { 0, NULL } };

    npairs = 1;
    seconds = 3;
    rounds = 2;
    warm_ms = 500;

    if (relay_getopt(argc, argv, "r:p:B:e:n:d:R:w:P:Q:", nums, &o) != 0
        || !relay_opts_ok(&o) || npairs < 1 || npairs > MAX_PAIRS
        || seconds < 1 || rounds < 1 || warm_ms >= seconds * 1000)
    {
        goto usage;
    }

    nmodes = relay_modes(&o, modes);

    if (relay_start(&o, rounds * nmodes * (seconds + DRAIN_MS / 1000 + 10)
                        + 30,
                    npairs * 4 + 64) != 0)
    {
        fprintf(stderr, "relay_throughput: cannot open %u files\n",
                npairs * 4 + 64);
        return 2;
    }

    lfd = backend_listen(o.backend_port);
    nonblocking(lfd);

    pattern = pattern_make(CHUNK);

    find_workers(o.proxy_pid, &w[M_PROXY]);
    find_workers(o.proxy_pid, &w[M_PROXY_EQ]);
    find_workers(o.relay_pid, &w[M_RELAY]);

    memset(st, 0, sizeof(st));
    memset(mbs, 0, sizeof(mbs));

    printf("%u pair%s, A -> B only, %u round%s of %u s per mode "
           "(%u ms warm-up)%s\n", npairs, npairs > 1 ? "s" : "", rounds,
           rounds > 1 ? "s" : "", seconds, warm_ms,
           o.proxy_eq_port ? "; proxy_eq: proxy_pass with "
                             "proxy_buffer_size = the relay's buffers" : "");

    for (r = 0; r < rounds; r++) {
        for (m = 0; m < nmodes; m++) {
            run_mode(modes[m], r, seconds, warm_ms, &w[modes[m]],
                     &st[modes[m]]);
        }
    }

    for (m = 0; m < nmodes; m++) {
        print_stats(modes[m], &st[modes[m]], rounds);
        mbs[modes[m]] = st[modes[m]].secs > 0
                        ? st[modes[m]].bytes / st[modes[m]].secs / 1e6 : 0;
    }

    printf("RESULT relay_throughput pairs=%u relay_mbs=%.1f proxy_mbs=%.1f "
           "ratio=%.2f relay_cpu_per_gb=%.2f proxy_cpu_per_gb=%.2f "
           "relay_problems=%u proxy_problems=%u",
           npairs, mbs[M_RELAY], mbs[M_PROXY],
           mbs[M_PROXY] > 0 ? mbs[M_RELAY] / mbs[M_PROXY] : 0,
           cpu_per_gb(&st[M_RELAY]), cpu_per_gb(&st[M_PROXY]),
           problems(&st[M_RELAY], rounds), problems(&st[M_PROXY], rounds));

    if (o.proxy_eq_port) {
        printf(" proxy_eq_mbs=%.1f ratio_eq=%.2f proxy_eq_cpu_per_gb=%.2f "
               "proxy_eq_problems=%u", mbs[M_PROXY_EQ],
               mbs[M_PROXY_EQ] > 0 ? mbs[M_RELAY] / mbs[M_PROXY_EQ] : 0,
               cpu_per_gb(&st[M_PROXY_EQ]),
               problems(&st[M_PROXY_EQ], rounds));
    }

    printf("\n");

    return 0;

usage:

    fprintf(stderr, "usage: relay_throughput -r relay_port -p proxy_port "
            "-B backend_port [-e proxy_eq_port] [-n pairs] [-d seconds] "
            "[-R rounds] "
            "[-w warm-up ms] [-P relay.pid] [-Q proxy.pid]\n");
    return 2;
}
