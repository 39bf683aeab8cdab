/*
 * relay_pingpong: the round trip of a small message through the relay
 * against nginx's own stream proxy_pass.
 *
 *   relay_pingpong -r RELAY_PORT -p PROXY_PORT -B BACKEND_PORT
 *                  [-n pairs] [-N round trips] [-s size] [-R rounds]
 *
 * Relay: for each pair, B (from 127.53.x.y) connects to the relay and
 * sends a framed RequestRelay{uuid}, then A (from 127.52.x.y) does the
 * same; then A sends `size' bytes (64), B echoes them, and A times the
 * round trip from its send until it has all of them back.  Baseline: A
 * connects to a stream server with `proxy_pass 127.0.0.1:BACKEND_PORT' and
 * this program, the backend, echoes.  Either way a message crosses nginx
 * twice per round trip, and the echo is the same code.
 *
 * The n pairs run at once, one message in flight each; N round trips in
 * all per mode (N / n per pair), after 50 per pair of warm-up, split over
 * `rounds' rounds that alternate proxy_pass and relay.  Each answer must be
 * the message sent (pair, sequence number, filler).
 *
 * Prints p50, p90, p99 and max of both in microseconds, and the ratios.
 */

#include "relay.h"


#define MAX_PAIRS    1024
#define MAX_SIZE     4096
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
            fd = relay_client(&src, &proxy_addr, NULL, 0,
                              "relay_pingpong: A %u", i);
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


int
main(int argc, char **argv)
{
    double         p50[2], p99[2], mx[2];
    unsigned       total, rounds, per_pair, r, m, want;
    stats_t        st[2];
    relay_opts_t   o;
    relay_num_t    nums[] = { { 'n', &npairs }, { 'N', &total },
                              { 's', &size }, { 'R', &rounds },
                              { 0, NULL } };

    npairs = 1;
    total = 20000;
    size = 64;
    rounds = 4;

    if (relay_getopt(argc, argv, "r:p:B:n:N:s:R:", nums, &o) != 0
        || !relay_opts_ok(&o) || npairs < 1 || npairs > MAX_PAIRS
        || size < 12 || size > MAX_SIZE || rounds < 1
        || total < npairs * rounds)
    {
        goto usage;
    }

    per_pair = total / npairs / rounds;
    want = per_pair * npairs * rounds;

    if (relay_start(&o, 120 + rounds * 2 * (STALL_MS / 1000 + 5),
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

    for (m = 0; m < 2; m++) {
        st[m].rtt = calloc(want, sizeof(uint64_t));
        if (st[m].rtt == NULL) {
            die("calloc");
        }
    }

    printf("%u pair%s at once, %u-byte messages, %u round trips per mode "
           "(%u rounds, %u warm-up round trips per pair and round)\n",
           npairs, npairs > 1 ? "s" : "", size, want, rounds, WARM);

    for (r = 0; r < rounds; r++) {
        for (m = 0; m < 2; m++) {
            run_mode(m, r, per_pair, &st[m]);
        }
    }

    for (m = 0; m < 2; m++) {
        report(m, &st[m], want);

        p50[m] = st[m].n ? pct(st[m].rtt, st[m].n, 0.50) / 1e3 : 0;
        p99[m] = st[m].n ? pct(st[m].rtt, st[m].n, 0.99) / 1e3 : 0;
        mx[m] = st[m].n ? st[m].rtt[st[m].n - 1] / 1e3 : 0;
    }

    printf("RESULT relay_pingpong pairs=%u size=%u round_trips=%u "
           "relay_p50=%.1f relay_p99=%.1f relay_max=%.0f "
           "proxy_p50=%.1f proxy_p99=%.1f proxy_max=%.0f "
           "ratio_p50=%.2f ratio_p99=%.2f relay_problems=%u "
           "proxy_problems=%u\n",
           npairs, size, want, p50[M_RELAY], p99[M_RELAY], mx[M_RELAY],
           p50[M_PROXY], p99[M_PROXY], mx[M_PROXY],
           p50[M_PROXY] > 0 ? p50[M_RELAY] / p50[M_PROXY] : 0,
           p99[M_PROXY] > 0 ? p99[M_RELAY] / p99[M_PROXY] : 0,
           st[M_RELAY].bad + st[M_RELAY].failed + st[M_RELAY].stalled
           + (unsigned) (want - st[M_RELAY].n),
           st[M_PROXY].bad + st[M_PROXY].failed + st[M_PROXY].stalled
           + (unsigned) (want - st[M_PROXY].n));

    return 0;

usage:

    fprintf(stderr, "usage: relay_pingpong -r relay_port -p proxy_port "
            "-B backend_port [-n pairs] [-N round trips] [-s size] "
            "[-R rounds]\n");
    return 2;
}
