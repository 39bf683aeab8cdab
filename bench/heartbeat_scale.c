/*
 * heartbeat_scale: the nginx CPU time a RegisterPeer heartbeat costs with
 * many registered peers, against nginx's own UDP "return" in the same run;
 * with the time it took to register them, how many peers the zone holds
 * when full, and how long a reload takes with all of them in it.
 *
 *   heartbeat_scale -p RENDEZVOUS_PORT -b BASELINE_PORT -n peers
 *                   [-s sources] [-f] [-d seconds] [-r rounds] [-w window]
 *                   [-W window] [-P nginx.pid] [-L]
 *   heartbeat_scale -p RENDEZVOUS_PORT -T start_ns      (start time)
 *
 * 1. registers n peers with RegisterPk (a 9-digit id, a 36-byte uuid and a
 *    32-byte key each, as the desktop client sends), peer i from source
 *    i % sources: sources are addresses spread over 127.0.0.0/8 (never
 *    127.0.x.x), each with a port of its own, one socket each; at most
 *    -W RegisterPk in flight, one per source;
 * 2. with -f, goes on registering new peers until the zone is full (100
 *    SERVER_ERROR answers): the zone holds that many peers;
 * 3. `rounds' rounds of heartbeats, d seconds each, first to the baseline
 *    port, then to the rendezvous port: `window' datagrams in flight, each
 *    a RegisterPeer for a random registered peer from its source, which
 *    must be answered request_pk false (the baseline answers "x");
 *    nginx's workers' CPU time (/proc/PID/schedstat) per answer;
 * 4. with -L, SIGHUP to nginx's master: the time until the old workers
 *    are gone and the new ones answer, and then heartbeats of 1000 random
 *    peers, which must all be known still (the zone was kept).
 *
 * With -T, it only waits until the rendezvous port answers a RegisterPeer
 * and prints how long after start_ns (CLOCK_REALTIME, ns) that was.
 *
 * Everything talks to 127.0.0.0/8 only.  Prints a RESULT line.
 */

#include "bench.h"

#include <sys/epoll.h>


#define SCALE_REG_TIMEOUT_NS  (500 * 1000000ULL)
#define SCALE_STALL_NS        (20 * 1000000ULL)
#define SCALE_FULL_STOP       100
#define SCALE_SAMPLE          1000
#define SCALE_MAX_ROUNDS      30


typedef struct {
    unsigned       nsrc;
    int           *fds;                 /* per source */
    unsigned      *busy;                /* per source: peer + 1, 0: none */
    uint64_t      *sent;                /* per source: when */
    uint8_t       *ok;                  /* per peer: registered */
    unsigned       npeers;              /* peers tried */
    unsigned       n_ok;
    unsigned       n_full;
    unsigned       n_other;
    unsigned       n_retries;
    uint64_t       seed;
    unsigned       first_id;
    int            ep;
    struct sockaddr_in  server;
} scale_t;


typedef struct {
    const char    *name;
    uint64_t       answers;
    uint64_t       bad;
    uint64_t       stalls;
    double         seconds;
    double         cpu;                 /* nginx workers, seconds */
    uint64_t       minflt;              /* nginx workers' minor faults */
} round_t;


static workers_t  workers;


/* Source k: 127.a.b.c over the whole /8 but 127.0.x.x. */

static struct sockaddr_in
scale_src(unsigned k)
{
    struct sockaddr_in  sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl((127u << 24)
                                | (1 + k % 254) << 16
                                | ((k / 254) % 256) << 8
                                | (1 + (k / (254 * 256)) % 254));
    return sin;
}


static void
scale_send_pk(scale_t *s, unsigned src, unsigned i)
{
    size_t    len;
    peer_t    pe;
    uint8_t   buf[256];

    make_peer(&pe, s->seed, s->first_id, i);
    len = msg_register_pk(buf, pe.id, pe.uuid, sizeof(pe.uuid), pe.pk,
                          sizeof(pe.pk));

    if (sendto(s->fds[src], buf, len, 0, (struct sockaddr *) &s->server,
               sizeof(s->server)) < 0
        && errno != EAGAIN && errno != ENOBUFS)
    {
        die("sendto");
    }

    s->busy[src] = i + 1;
    s->sent[src] = now_ns();
}


/*
 * Peers [from, to) registered, at most `window' in flight; with full_stop,
 * until that many SERVER_ERROR answers (the zone is full).  Returns the
 * seconds it took.
 */

static double
scale_register(scale_t *s, unsigned from, unsigned to, unsigned window,
    unsigned full_stop)
{
    int                  i, n;
    ssize_t              len;
    size_t               blen;
    unsigned             next, inflight, src, peer, member;
    uint64_t             start, now, last_check;
    pb_field_t           f;
    const uint8_t       *body;
    struct epoll_event   evs[512];
    uint8_t              buf[2048];

    start = now_ns();
    last_check = start;
    next = from;
    inflight = 0;

    for ( ;; ) {
        while (inflight < window && next < to) {
            src = next % s->nsrc;

            if (s->busy[src]) {
                break;
            }

            scale_send_pk(s, src, next++);
            inflight++;
        }

        if (inflight == 0 && (next >= to || (full_stop
                                             && s->n_full >= full_stop)))
        {
            break;
        }

        n = epoll_wait(s->ep, evs, 512, 10);

        if (n == -1 && errno != EINTR) {
            die("epoll_wait");
        }

        for (i = 0; i < n; i++) {
            src = evs[i].data.u32;

            while ((len = recv(s->fds[src], buf, sizeof(buf), MSG_DONTWAIT))
                   >= 0)
            {
                member = rm_member(buf, len, &body, &blen);

                if (member != RM_REGISTER_PK_RESPONSE || s->busy[src] == 0) {
                    continue;           /* a late answer to a retry */
                }

                peer = s->busy[src] - 1;
                s->busy[src] = 0;
                inflight--;

                f.v = 0;
                if (pb_get(body, blen, 1, &f) != 1) {
                    f.v = RESULT_OK;    /* absent: OK */
                }

                if (f.v == RESULT_OK) {
                    s->ok[peer] = 1;
                    s->n_ok++;

                } else if (f.v == RESULT_SERVER_ERROR) {
                    s->n_full++;

                } else {
                    s->n_other++;
                }
            }
        }

        if (full_stop && s->n_full >= full_stop) {
            to = next;                  /* the ones in flight, no more */
        }

        now = now_ns();

        if (now - last_check < SCALE_REG_TIMEOUT_NS / 4) {
            continue;
        }

        last_check = now;

        for (src = 0; src < s->nsrc; src++) {
            if (s->busy[src] && now - s->sent[src] > SCALE_REG_TIMEOUT_NS) {
                s->n_retries++;
                scale_send_pk(s, src, s->busy[src] - 1);
            }
        }
    }

    return (now_ns() - start) / 1e9;
}


/* RegisterPeer{id of peer i} at buf: its length. */

static size_t
scale_heartbeat(scale_t *s, unsigned i, uint8_t *buf)
{
    char  id[16];

    snprintf(id, sizeof(id), "%u", s->first_id + i);

    return msg_register_peer(buf, id, 0);
}


static int
scale_answer_ok(int rendezvous, const uint8_t *buf, ssize_t len)
{
    if (rendezvous) {
        /* RegisterPeerResponse{request_pk: false} */
        return len == 2 && buf[0] == (RM_REGISTER_PEER_RESPONSE << 3 | 2)
               && buf[1] == 0;
    }

    return len == 1 && buf[0] == 'x';
}


/* Answers still on the way, thrown away (or counted bad into r). */

static void
scale_drain(scale_t *s, int ms)
{
    int                  i, n;
    uint64_t             end;
    struct epoll_event   evs[512];
    uint8_t              buf[2048];

    end = now_ns() + (uint64_t) ms * 1000000;

    while (now_ns() < end) {
        n = epoll_wait(s->ep, evs, 512, 10);

        for (i = 0; i < n; i++) {
            while (recv(s->fds[evs[i].data.u32], buf, sizeof(buf),
                        MSG_DONTWAIT) >= 0)
            {
                /* void */
            }
        }
    }
}


/*
 * Heartbeats of random registered peers to `to' for warmup + seconds,
 * `window' in flight; the figures of the last `seconds' into r.
 */

static void
scale_run(scale_t *s, unsigned *reg, unsigned nreg, struct sockaddr_in *to,
    int rendezvous, unsigned window, double seconds, round_t *r)
{
    int                  i, n, measuring;
    size_t               len;
    ssize_t              rlen;
    unsigned             p, inflight;
    uint64_t             now, start, end, last_answer;
    double               cpu0;
    uint64_t             flt0;
    struct epoll_event   evs[512];
    uint8_t              buf[2048], msg[64];

    memset(r, 0, sizeof(*r));
    r->name = rendezvous ? "rendezvous" : "return";

    inflight = 0;
    measuring = 0;
    cpu0 = 0;
    flt0 = 0;

    now = now_ns();
    start = now + 300000000ULL;         /* 0.3 s of warm-up */
    end = start + (uint64_t) (seconds * 1e9);
    last_answer = now;

    while (now < end) {
        if (!measuring && now >= start) {
            measuring = 1;
            r->answers = 0;
            r->bad = 0;
            r->stalls = 0;
            cpu0 = workers_cpu_ns(&workers);
            flt0 = workers_minflt(&workers);
            start = now;
        }

        while (inflight < window) {
            p = reg[rnd(&s->seed) % nreg];
            len = scale_heartbeat(s, p, msg);

            if (sendto(s->fds[p % s->nsrc], msg, len, 0,
                       (struct sockaddr *) to, sizeof(*to)) < 0)
            {
                if (errno != EAGAIN && errno != ENOBUFS) {
                    die("sendto");
                }

                break;
            }

            inflight++;
        }

        n = epoll_wait(s->ep, evs, 512, 5);

        if (n == -1 && errno != EINTR) {
            die("epoll_wait");
        }

        now = now_ns();

        for (i = 0; i < n; i++) {
            while ((rlen = recv(s->fds[evs[i].data.u32], buf, sizeof(buf),
                                MSG_DONTWAIT)) >= 0)
            {
                r->answers++;
                r->bad += !scale_answer_ok(rendezvous, buf, rlen);

                if (inflight > 0) {
                    inflight--;
                }

                last_answer = now;
            }
        }

        if (n <= 0 && inflight > 0 && now - last_answer > SCALE_STALL_NS) {
            r->stalls++;
            inflight = 0;
            last_answer = now;
        }
    }

    r->seconds = (now - start) / 1e9;
    r->cpu = workers_cpu_ns(&workers) - cpu0;
    r->minflt = workers_minflt(&workers) - flt0;

    scale_drain(s, 200);
}


/*
 * Heartbeats of `count' random registered peers, one at a time, each
 * waited for (1 s, 3 tries): how many were answered request_pk false.
 */

static unsigned
scale_sample(scale_t *s, unsigned *reg, unsigned nreg, unsigned count)
{
    int                  n, tries;
    size_t               len;
    ssize_t              rlen;
    unsigned             k, p, good;
    uint8_t              buf[2048], msg[64];
    struct epoll_event   ev;

    good = 0;

    for (k = 0; k < count; k++) {
        p = reg[rnd(&s->seed) % nreg];
        len = scale_heartbeat(s, p, msg);

        for (tries = 0; tries < 3; tries++) {
            if (sendto(s->fds[p % s->nsrc], msg, len, 0,
                       (struct sockaddr *) &s->server, sizeof(s->server))
                < 0)
            {
                die("sendto");
            }

            n = epoll_wait(s->ep, &ev, 1, 1000);

            if (n == 1) {
                rlen = recv(s->fds[ev.data.u32], buf, sizeof(buf),
                            MSG_DONTWAIT);
                good += (ev.data.u32 == p % s->nsrc
                         && scale_answer_ok(1, buf, rlen));
                break;
            }
        }
    }

    return good;
}


/* How many of the old workers are still among the workers found. */

static int
scale_old_left(pid_t *old, int nold)
{
    int  i, k, left;

    left = 0;

    for (i = 0; i < nold; i++) {
        for (k = 0; k < workers.n; k++) {
            if (old[i] == workers.pid[k]) {
                left++;
            }
        }
    }

    return left;
}


/* -T: waits until the port answers, prints how long since start_ns. */

static int
scale_started(struct sockaddr_in *server, unsigned long long start_ns)
{
    int                  fd;
    ssize_t              len;
    uint8_t              msg[64], buf[256];
    struct timespec      ts;
    struct pollfd        pfd;
    struct sockaddr_in   src;
    unsigned long long   now;

    src = scale_src(0);
    fd = udp_socket(&src);
    len = msg_register_peer(msg, "123456789", 0);

    for ( ;; ) {
        (void) sendto(fd, msg, len, 0, (struct sockaddr *) server,
                      sizeof(*server));

        pfd.fd = fd;
        pfd.events = POLLIN;

        if (poll(&pfd, 1, 2) == 1 && recv(fd, buf, sizeof(buf), 0) > 0) {
            break;
        }
    }

    clock_gettime(CLOCK_REALTIME, &ts);
    now = (unsigned long long) ts.tv_sec * 1000000000ULL + ts.tv_nsec;

    printf("answering %.3f s after the start\n", (now - start_ns) / 1e9);
    printf("RESULT heartbeat_scale_start seconds=%.3f\n",
           (now - start_ns) / 1e9);

    close(fd);
    return 0;
}


static void
usage(void)
{
    fprintf(stderr, "usage: heartbeat_scale -p port -b port -n peers "
            "[-s sources] [-f] [-d seconds] [-r rounds] [-w window] "
            "[-W window] [-P pidfile] [-L]\n"
            "       heartbeat_scale -p port -T start_ns\n");
    exit(2);
}


int
main(int argc, char **argv)
{
    int                  c, round, rounds, fill, reload, k;
    char                *pidfile;
    double               seconds, reg_seconds, fill_seconds, reload_seconds;
    unsigned             i, npeers, nsrc, window, reg_window, nreg, good;
    unsigned            *reg;
    uint64_t             t0;
    pid_t                master, old[MAX_WORKERS];
    int                  nold;
    scale_t              s;
    round_t              rb, rr, sum_b, sum_r;
    double               ratio[SCALE_MAX_ROUNDS], sp[3];
    struct sockaddr_in   base, src;
    struct epoll_event   ev;
    unsigned             rdv_port = 0, base_port = 0;
    unsigned long long   start_ns = 0;

    npeers = 0;
    nsrc = 0;
    seconds = 3;
    rounds = 3;
    window = 128;
    reg_window = 128;
    fill = 0;
    reload = 0;
    pidfile = NULL;

    while ((c = getopt(argc, argv, "p:b:n:s:fd:r:w:W:P:LT:")) != -1) {
        switch (c) {
        case 'p': rdv_port = atoi(optarg); break;
        case 'b': base_port = atoi(optarg); break;
        case 'n': npeers = strtoul(optarg, NULL, 10); break;
        case 's': nsrc = strtoul(optarg, NULL, 10); break;
        case 'f': fill = 1; break;
        case 'd': seconds = atof(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 'w': window = strtoul(optarg, NULL, 10); break;
        case 'W': reg_window = strtoul(optarg, NULL, 10); break;
        case 'P': pidfile = optarg; break;
        case 'L': reload = 1; break;
        case 'T': start_ns = strtoull(optarg, NULL, 10); break;
        default: usage();
        }
    }

    setvbuf(stdout, NULL, _IOLBF, 0);

    if (rdv_port == 0) {
        usage();
    }

    memset(&s, 0, sizeof(s));
    s.server = loopback("127.0.0.1", rdv_port);

    if (start_ns) {
        watchdog(60);
        return scale_started(&s.server, start_ns);
    }

    if (base_port == 0 || npeers == 0 || window == 0 || reg_window == 0
        || seconds <= 0 || seconds > 30
        || rounds < 1 || rounds > SCALE_MAX_ROUNDS)
    {
        usage();
    }

    /* 25 peers a source up to 10,000 sources, then more a source */

    if (nsrc == 0) {
        nsrc = (npeers + 24) / 25;
        nsrc = nsrc > 10000 ? 10000 : nsrc;
    }

    watchdog(1800);
    raise_nofile();

    base = loopback("127.0.0.1", base_port);

    s.seed = (uint64_t) time(NULL) * 2654435761u ^ (uint64_t) getpid();
    s.first_id = 100000000 + (unsigned) (s.seed % 400000000);
    s.nsrc = nsrc;
    s.npeers = fill ? npeers * 2 + 20000 : npeers;
    s.fds = calloc(nsrc, sizeof(int));
    s.busy = calloc(nsrc, sizeof(unsigned));
    s.sent = calloc(nsrc, sizeof(uint64_t));
    s.ok = calloc(s.npeers, 1);

    if (s.fds == NULL || s.busy == NULL || s.sent == NULL || s.ok == NULL) {
        die("calloc");
    }

    s.ep = epoll_create1(EPOLL_CLOEXEC);
    if (s.ep == -1) {
        die("epoll_create1");
    }

    for (i = 0; i < nsrc; i++) {
        src = scale_src(i);
        s.fds[i] = udp_socket(&src);

        ev.events = EPOLLIN;
        ev.data.u32 = i;

        if (epoll_ctl(s.ep, EPOLL_CTL_ADD, s.fds[i], &ev) == -1) {
            die("epoll_ctl");
        }
    }

    /* 1. registration */

    reg_window = reg_window > nsrc ? nsrc : reg_window;

    reg_seconds = scale_register(&s, 0, npeers, reg_window, 0);

    printf("registered %u of %u peers in %.1f s (%.0f/s) from %u sources, "
           "%u in flight (%u retries, %u SERVER_ERROR, %u other answers)\n",
           s.n_ok, npeers, reg_seconds, s.n_ok / reg_seconds, nsrc,
           reg_window, s.n_retries, s.n_full, s.n_other);

    /* 2. the zone filled */

    fill_seconds = 0;

    if (fill) {
        fill_seconds = scale_register(&s, npeers, s.npeers, reg_window,
                                      SCALE_FULL_STOP);

        printf("zone full at %u peers (%.1f s more, %u SERVER_ERROR)\n",
               s.n_ok, fill_seconds, s.n_full);

        if (s.n_full < SCALE_FULL_STOP) {
            printf("the zone never filled up: no figure for it\n");
        }
    }

    if (s.n_ok == 0) {
        fprintf(stderr, "heartbeat_scale: no peer registered\n");
        return 1;
    }

    reg = malloc(s.n_ok * sizeof(unsigned));
    if (reg == NULL) {
        die("malloc");
    }

    for (nreg = 0, i = 0; i < s.npeers; i++) {
        if (s.ok[i]) {
            reg[nreg++] = i;
        }
    }

    scale_drain(&s, 200);
    find_workers(pidfile, &workers);

    /* 3. heartbeats */

    printf("heartbeats: %u peers, %u in flight, %d rounds of %.1f s per "
           "server, %d nginx workers\n", nreg, window, rounds, seconds,
           workers.n);

    memset(&sum_b, 0, sizeof(sum_b));
    memset(&sum_r, 0, sizeof(sum_r));

    for (round = 1; round <= rounds; round++) {
        scale_run(&s, reg, nreg, &base, 0, window, seconds, &rb);
        scale_run(&s, reg, nreg, &s.server, 1, window, seconds, &rr);

        ratio[round - 1] = (rr.cpu / rr.answers) / (rb.cpu / rb.answers);

        printf(" round %d: return %.0f/s %.2f us, rendezvous %.0f/s %.2f us"
               " (%llu bad, %llu stalls, %.3f page faults per heartbeat):"
               " ratio %.3f\n", round,
               rb.answers / rb.seconds, rb.cpu * 1e6 / rb.answers,
               rr.answers / rr.seconds, rr.cpu * 1e6 / rr.answers,
               (unsigned long long) rr.bad,
               (unsigned long long) (rr.stalls + rb.stalls),
               (double) rr.minflt / rr.answers, ratio[round - 1]);

        sum_b.answers += rb.answers;
        sum_b.seconds += rb.seconds;
        sum_b.cpu += rb.cpu;
        sum_b.bad += rb.bad;
        sum_r.answers += rr.answers;
        sum_r.seconds += rr.seconds;
        sum_r.cpu += rr.cpu;
        sum_r.bad += rr.bad;
    }

    printf(" total: return %.2f us, rendezvous %.2f us per heartbeat "
           "(nginx CPU): ratio %.3f\n", sum_b.cpu * 1e6 / sum_b.answers,
           sum_r.cpu * 1e6 / sum_r.answers,
           (sum_r.cpu / sum_r.answers) / (sum_b.cpu / sum_b.answers));

    /* the rounds' ratios: the baseline alone varies by 10-30 % between
     * rounds on a shared machine, the median is the figure */

    spread(ratio, rounds, sp);

    printf(" ratio of the rounds: min %.3f, median %.3f, max %.3f\n",
           sp[0], sp[1], sp[2]);

    /* 4. reload */

    reload_seconds = -1;
    good = 0;

    if (reload && pidfile && (master = read_pidfile(pidfile)) > 0) {
        nold = workers.n;

        for (k = 0; k < nold; k++) {
            old[k] = workers.pid[k];
        }

        t0 = now_ns();

        if (kill(master, SIGHUP) == -1) {
            die("kill");
        }

        /* the old workers gone, as many new ones there */

        for ( ;; ) {
            find_workers(pidfile, &workers);

            if (workers.n >= nold && scale_old_left(old, nold) == 0) {
                break;
            }

            if (now_ns() - t0 > 60 * 1000000000ULL) {
                printf("reload: old workers still there after 60 s\n");
                break;
            }

            usleep(1000);
        }

        good = scale_sample(&s, reg, nreg, 1);
        reload_seconds = (now_ns() - t0) / 1e9;
        good += scale_sample(&s, reg, nreg, SCALE_SAMPLE - 1);

        printf("reload with %u peers: %.3f s until new workers answer; "
               "%u of %u random peers still known\n", nreg, reload_seconds,
               good, SCALE_SAMPLE);
    }

    printf("RESULT heartbeat_scale peers=%u rdv_us=%.3f base_us=%.3f "
           "ratio=%.3f ratio_min=%.3f ratio_median=%.3f ratio_max=%.3f "
           "reg_seconds=%.1f reg_peers=%u fill_seconds=%.1f "
           "full=%d rdv_bad=%llu reload_seconds=%.3f reload_known=%u\n",
           nreg, sum_r.cpu * 1e6 / sum_r.answers,
           sum_b.cpu * 1e6 / sum_b.answers,
           (sum_r.cpu / sum_r.answers) / (sum_b.cpu / sum_b.answers),
           sp[0], sp[1], sp[2], reg_seconds, npeers, fill_seconds,
           fill && s.n_full >= SCALE_FULL_STOP,
           (unsigned long long) sum_r.bad, reload_seconds, good);

    return 0;
}
