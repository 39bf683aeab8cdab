/*
 * relay_pingpong: the round trip of a small message through the relay
 * against nginx's own stream proxy_pass.
 *
 *   relay_pingpong -r RELAY_PORT -p PROXY_PORT -B BACKEND_PORT
 *                  [-e PROXY_EQ_PORT] [-n pairs] [-N round trips]
 *                  [-s size] [-R rounds]
 *
 * Relay: for each pair, B (from 127.53.x.y) connects to the relay and
 * sends a framed RequestRelay{uuid}, then A (from 127.52.x.y) does the
 * same; then A sends `size' bytes (64), B echoes them, and A times the
 * round trip from its send until it has all of them back.  Baseline: A
 * connects to a stream server with `proxy_pass 127.0.0.1:BACKEND_PORT' and
 * this program, the backend, echoes.  Either way a message crosses nginx
 * twice per round trip, and the echo is the same code.  With -e, a second
 * baseline: proxy_pass with proxy_buffer_size equal to the relay's
 * buffers (PROXY_EQ_PORT, in the same nginx as PROXY_PORT).
 *
 * The n pairs run at once, one message in flight each; N round trips in
 * all per mode (N / n per pair), split over `rounds' rounds, each after 50
 * round trips per pair of warm-up.  The modes are interleaved: each round
 * runs every mode once, in turn (relay, proxy_pass[, proxy_eq]), and every
 * other round in the reverse order, so that no mode always follows the
 * same one.  Each answer must be the message sent (pair, sequence number,
 * filler).
 *
 * Prints p50, p90, p99 and max of each mode over all rounds, in
 * microseconds, and the ratios of the relay's to each baseline's; and
 * the ratio of the p99s of each round: min, median and max over the
 * rounds (a busy machine moves single rounds, not the median).
 */

#include "relay.h"


#define MAX_PAIRS    1024
#define MAX_SIZE     4096
#define MAX_ROUNDS   100
#define WARM         50
#define STALL_MS     5000

enum { T_A = 1, T_ECHO, T_LISTEN };


typedef struct {
    int        fd;
    unsigned   done;            /* round trips completed */
    unsigned   want;            /* round trips to do, warm-up included */
    uint64_t   t;               /* send time of the message in flight */
    size_t     got;
    uint8_t    msg[MAX_SIZE];
    uint8_t    in[MAX_SIZE];
} a_t;


typedef struct {
    int        fd;
} echo_t;


typedef struct {
    uint64_t  *rtt;
    size_t     n;
    unsigned   bad;             /* wrong answers */
    unsigned   failed;          /* pairs that could not be set up */
    unsigned   stalled;         /* pairs without an answer for STALL_MS */
    double     p99[MAX_ROUNDS]; /* of each round, us; 0: no round trips */
} stats_t;


static int                  ep;
static unsigned             npairs, size;
static a_t                 *as;
static echo_t               echoes[MAX_PAIRS * 2];
static unsigned             nechoes;


static void
echo_add(int fd)
{
    if (nechoes == sizeof(echoes) / sizeof(echoes[0])) {
        close(fd);
        return;
    }

    echoes[nechoes].fd = fd;
    nonblocking(fd);
    ep_add(ep, fd, EPOLLIN, T_ECHO, nechoes);
    nechoes++;
}


/* A's next message: pair, sequence number, filler; sent, timed. */
static int
a_ping(a_t *a, unsigned i)
{
    unsigned  k;
    uint64_t  s;

    memcpy(a->msg, "PING", 4);
    memcpy(a->msg + 4, &i, 4);
    memcpy(a->msg + 8, &a->done, 4);

    s = seed ^ ((uint64_t) i << 32 | a->done);
    for (k = 12; k < size; k++) {
        a->msg[k] = (uint8_t) (rnd(&s) >> 56);
    }

    a->got = 0;
    a->t = now_ns();

    /* 64 bytes on an idle connection: sent at once, or it is broken */
    return send(a->fd, a->msg, size, MSG_NOSIGNAL) == (ssize_t) size ? 0 : -1;
}


static void
run_mode(int mode, unsigned round, unsigned per_pair, stats_t *st)
{
    int                  n, e, fd;
    size_t               len;
    ssize_t              r;
    unsigned             i, type, idx, active;
    uint8_t              req[128], buf[MAX_SIZE * 4];
    uint64_t             last;
    struct sockaddr_in   src, b;
    struct epoll_event   evs[256];

    ep = mode_epoll(mode, T_LISTEN);
    nechoes = 0;

    /* the pairs */

    active = 0;

    for (i = 0; i < npairs; i++) {
        as[i].fd = -1;
        as[i].done = 0;
        as[i].want = per_pair + WARM;

        src = src_addr(52, i);

        if (mode == M_RELAY) {
            len = request_relay(req, round, i);

            b = src_addr(53, i);
            fd = relay_client(&b, &relay_addr, req, len,
                              "relay_pingpong: B %u", i);
            if (fd == -1) {
                st->failed++;
                continue;
            }

            echo_add(fd);

            fd = relay_client(&src, &relay_addr, req, len,
                              "relay_pingpong: A %u", i);

        } else {
            fd = relay_client(&src, mode_addr(mode), NULL, 0,
                              "relay_pingpong: %s: A %u", mode_name[mode], i);
        }

        if (fd == -1) {
            st->failed++;
            continue;
        }

        as[i].fd = fd;
        nonblocking(fd);
        ep_add(ep, fd, EPOLLIN, T_A, i);

        if (a_ping(&as[i], i) != 0) {
            st->failed++;
            close(fd);
            as[i].fd = -1;
            continue;
        }

        active++;
    }

    /* ping-pong until every pair is done or stalls */

    last = now_ns();

    while (active) {
        n = epoll_wait(ep, evs, 256, 100);

        if (n <= 0) {
            if (now_ns() - last > (uint64_t) STALL_MS * 1000000) {
                st->stalled += active;
                break;
            }
            continue;
        }

        last = now_ns();

        for (e = 0; e < n; e++) {
            type = (unsigned) (evs[e].data.u64 >> 32);
            idx = (unsigned) evs[e].data.u64;

            if (type == T_LISTEN) {
                fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (fd != -1) {
                    nodelay(fd);
                    echo_add(fd);
                }
                continue;
            }

            if (type == T_ECHO) {
                if (echoes[idx].fd == -1) {
                    continue;
                }

                r = recv(echoes[idx].fd, buf, sizeof(buf), 0);

                if (r > 0) {
                    if (send_full(echoes[idx].fd, buf, r) != 0) {
                        st->bad++;
                    }
                    continue;
                }

                if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                    continue;
                }

                close(echoes[idx].fd);
                echoes[idx].fd = -1;
                continue;
            }

            /* T_A */

            if (as[idx].fd == -1) {
                continue;
            }

            r = recv(as[idx].fd, as[idx].in + as[idx].got,
                     size - as[idx].got, 0);

            if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }

            if (r <= 0) {
                fprintf(stderr, "relay_pingpong: %s: A %u: connection "
                        "%s after %u round trips\n", mode_name[mode], idx,
                        r == 0 ? "closed" : strerror(errno), as[idx].done);
                st->bad++;
                close(as[idx].fd);
                as[idx].fd = -1;
                active--;
                continue;
            }

            as[idx].got += r;

            if (as[idx].got < size) {
                continue;
            }

            if (memcmp(as[idx].in, as[idx].msg, size) != 0) {
                st->bad++;
                close(as[idx].fd);
                as[idx].fd = -1;
                active--;
                continue;
            }

            if (as[idx].done >= WARM) {
                st->rtt[st->n++] = now_ns() - as[idx].t;
            }

            if (++as[idx].done == as[idx].want) {
                active--;
                continue;
            }

            if (a_ping(&as[idx], idx) != 0) {
                st->bad++;
                close(as[idx].fd);
                as[idx].fd = -1;
                active--;
            }
        }
    }

    for (i = 0; i < npairs; i++) {
        close_fd(&as[i].fd);
    }

    for (i = 0; i < nechoes; i++) {
        close_fd(&echoes[i].fd);
    }

    mode_epoll_close(ep, mode);
}


/*
 * The relay's p99 over base's, round by round: min, median (the mean of
 * the middle two for an even count) and max into r[0..2]; 0 when a round
 * has none.
 */
static void
round_ratios(stats_t *relay, stats_t *base, unsigned rounds, double *r)
{
    double    v[MAX_ROUNDS];
    unsigned  k;

    for (k = 0; k < rounds; k++) {
        if (relay->p99[k] <= 0 || base->p99[k] <= 0) {
            r[0] = r[1] = r[2] = 0;
            return;
        }

        v[k] = relay->p99[k] / base->p99[k];
    }

    spread(v, rounds, r);
}


static void
report(int mode, stats_t *st, unsigned want)
{
    uint64_t  *v = st->rtt;
    size_t     n = st->n;

    if (n == 0) {
        printf("  %-10s no round trips\n", mode_name[mode]);

    } else {
        print_pct(mode_name[mode], v, n);
    }

    if (st->bad || st->failed || st->stalled || n != want) {
        printf("  %-10s PROBLEMS: %zu of %u round trips; pairs not set up "
               "%u; wrong answers or closed connections %u; pairs stalled "
               "(no answer within %d s) %u\n", mode_name[mode], n, want,
               st->failed, st->bad, STALL_MS / 1000, st->stalled);
    }
}


static unsigned
problems(stats_t *st, unsigned want)
{
    return st->bad + st->failed + st->stalled + (unsigned) (want - st->n);
}


int
main(int argc, char **argv)
{
    int            modes[M_MODES], mode;
    size_t         from;
    double         p50[M_MODES], p99[M_MODES], mx[M_MODES];
    double         rr[3], rr_eq[3];
    unsigned       total, rounds, per_pair, r, m, k, want, nmodes;
    stats_t        st[M_MODES];
    relay_opts_t   o;
    relay_num_t    nums[] = { { 'n', &npairs }, { 'N', &total },
                              { 's', &size }, { 'R', &rounds },
                              { 0, NULL } };

    npairs = 1;
    total = 20000;
    size = 64;
    rounds = 10;

    if (relay_getopt(argc, argv, "r:p:B:e:n:N:s:R:", nums, &o) != 0
        || !relay_opts_ok(&o) || npairs < 1 || npairs > MAX_PAIRS
        || size < 12 || size > MAX_SIZE || rounds < 1
        || rounds > MAX_ROUNDS || total < npairs * rounds)
    {
        goto usage;
    }

    per_pair = total / npairs / rounds;
    want = per_pair * npairs * rounds;

    /* the relay first, then the baselines */
    nmodes = relay_modes(&o, modes);
    memmove(modes + 1, modes, (nmodes - 1) * sizeof(int));
    modes[0] = M_RELAY;

    if (relay_start(&o, 120 + rounds * nmodes * (STALL_MS / 1000 + 5),
                    npairs * 4 + 64) != 0)
    {
        fprintf(stderr, "relay_pingpong: cannot open %u files\n",
                npairs * 4 + 64);
        return 2;
    }

    lfd = backend_listen(o.backend_port);
    nonblocking(lfd);

    as = calloc(npairs, sizeof(a_t));
    if (as == NULL) {
        die("calloc");
    }

    memset(st, 0, sizeof(st));

    for (m = 0; m < M_MODES; m++) {
        st[m].rtt = calloc(want, sizeof(uint64_t));
        if (st[m].rtt == NULL) {
            die("calloc");
        }
    }

    printf("%u pair%s at once, %u-byte messages, %u round trips per mode "
           "in %u interleaved rounds (%u warm-up round trips per pair and "
           "round)%s\n", npairs, npairs > 1 ? "s" : "", size, want, rounds,
           WARM, o.proxy_eq_port ? "; proxy_eq: proxy_pass with "
                                   "proxy_buffer_size = the relay's buffers"
                                 : "");

    for (r = 0; r < rounds; r++) {
        for (k = 0; k < nmodes; k++) {
            mode = modes[r % 2 ? nmodes - 1 - k : k];
            from = st[mode].n;
            run_mode(mode, r, per_pair, &st[mode]);
            st[mode].p99[r] = pct_of(st[mode].rtt + from,
                                     st[mode].n - from, 0.99) / 1e3;
        }
    }

    memset(p50, 0, sizeof(p50));
    memset(p99, 0, sizeof(p99));
    memset(mx, 0, sizeof(mx));

    for (k = 0; k < nmodes; k++) {
        m = modes[k];
        report(m, &st[m], want);

        p50[m] = st[m].n ? pct(st[m].rtt, st[m].n, 0.50) / 1e3 : 0;
        p99[m] = st[m].n ? pct(st[m].rtt, st[m].n, 0.99) / 1e3 : 0;
        mx[m] = st[m].n ? st[m].rtt[st[m].n - 1] / 1e3 : 0;
    }

    round_ratios(&st[M_RELAY], &st[M_PROXY], rounds, rr);
    printf("  p99 relay / proxy_pass, per round: min %.2f, median %.2f, "
           "max %.2f (%u rounds)\n", rr[0], rr[1], rr[2], rounds);

    if (o.proxy_eq_port) {
        round_ratios(&st[M_RELAY], &st[M_PROXY_EQ], rounds, rr_eq);
        printf("  p99 relay / proxy_eq, per round:   min %.2f, median %.2f, "
               "max %.2f (%u rounds)\n", rr_eq[0], rr_eq[1], rr_eq[2],
               rounds);
    }

    printf("RESULT relay_pingpong pairs=%u size=%u round_trips=%u "
           "rounds=%u relay_p50=%.1f relay_p99=%.1f relay_max=%.0f "
           "proxy_p50=%.1f proxy_p99=%.1f proxy_max=%.0f "
           "ratio_p50=%.2f ratio_p99=%.2f ratio_p99_min=%.2f "
           "ratio_p99_med=%.2f ratio_p99_max=%.2f relay_problems=%u "
           "proxy_problems=%u",
           npairs, size, want, rounds, p50[M_RELAY], p99[M_RELAY],
           mx[M_RELAY], p50[M_PROXY], p99[M_PROXY], mx[M_PROXY],
           p50[M_PROXY] > 0 ? p50[M_RELAY] / p50[M_PROXY] : 0,
           p99[M_PROXY] > 0 ? p99[M_RELAY] / p99[M_PROXY] : 0,
           rr[0], rr[1], rr[2],
           problems(&st[M_RELAY], want), problems(&st[M_PROXY], want));

    if (o.proxy_eq_port) {
        printf(" proxy_eq_p50=%.1f proxy_eq_p99=%.1f proxy_eq_max=%.0f "
               "ratio_eq_p50=%.2f ratio_eq_p99=%.2f ratio_eq_p99_min=%.2f "
               "ratio_eq_p99_med=%.2f ratio_eq_p99_max=%.2f "
               "proxy_eq_problems=%u",
               p50[M_PROXY_EQ], p99[M_PROXY_EQ], mx[M_PROXY_EQ],
               p50[M_PROXY_EQ] > 0 ? p50[M_RELAY] / p50[M_PROXY_EQ] : 0,
               p99[M_PROXY_EQ] > 0 ? p99[M_RELAY] / p99[M_PROXY_EQ] : 0,
               rr_eq[0], rr_eq[1], rr_eq[2],
               problems(&st[M_PROXY_EQ], want));
    }

    printf("\n");

    return 0;

usage:

    fprintf(stderr, "usage: relay_pingpong -r relay_port -p proxy_port "
            "-B backend_port [-e proxy_eq_port] [-n pairs] "
            "[-N round trips] [-s size] [-R rounds]\n");
    return 2;
}
