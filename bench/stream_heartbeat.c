/*
 * stream_heartbeat: peers registered over TCP streams (PROTOCOL.md
 * section 8), against peers registered over UDP in the same nginx: the
 * workers' memory per idle registered stream, and empty-frame heartbeats
 * answered per second against RegisterPeer heartbeats over UDP.
 *
 *   stream_heartbeat -p RENDEZVOUS_PORT -P nginx.pid [-n streams]
 *                    [-u udp peers] [-d seconds] [-r rounds] [-w window]
 *                    [-k keep_alive] [-H hold]
 *
 * 1. memory at rest: the sum of VmRSS (and RssAnon, RssShmem, Pss) over
 *    the workers;
 * 2. the baseline: registers u peers over UDP (RegisterPk then
 *    RegisterPeer, 25 per source address of 127.10.0.0/16 and up, as
 *    udp_heartbeat does); `hold' seconds later, the memory again;
 * 3. opens n TCP connections to the same port (25 per source address of
 *    127.30.0.0/16 and up, `window' at a time), each sending a framed
 *    RegisterPk{id, uuid, pk 32 bytes} of a peer of its own (the
 *    KeyExchange the server offers first is skipped), and waits for
 *    RegisterPkResponse{OK, keep_alive}; every registered stream stays
 *    open and idle; `hold' seconds after the last one, the memory again.
 *    Bytes per peer = growth / peers registered, for each;
 * 4. in `rounds' rounds, for d seconds each, first over UDP, then over
 *    the streams: keeps `window' heartbeats in flight: UDP: a RegisterPeer
 *    for a random registered peer from the address it registered from
 *    (answered RegisterPeerResponse{request_pk: false}); streams: an empty
 *    frame (the byte 0x00) on the next stream of a shuffled round-robin
 *    order that has none outstanding (answered by an empty frame), and
 *    counts answers;
 * 5. one empty frame on every registered stream: how many are still
 *    there and answer, then closes them all.
 *
 * Prints both memory figures, heartbeats/s of each, the ratio, and the
 * CPU seconds the nginx workers and this generator used per heartbeat.
 * The server must not send anything unasked on a stream in this time, so
 * give it a rustdesk_keep_alive longer than the run (-k: the value the
 * RegisterPkResponse must carry, in seconds; 0: not checked).
 */

#include "udp_hb.h"
#include "relay.h"


#define RM_KEY_EXCHANGE      25

#define REG_WAIT_NS          (5 * 1000000000ULL)
#define STALL_NS             (1000 * 1000000ULL)
#define RBUF                 512

enum { T_NEW = 0, T_WAIT, T_OK, T_REFUSED, T_FAILED, T_CLOSED, T_BAD };


typedef struct {
    int         fd;
    uint8_t     state;
    uint8_t     stuck;          /* heartbeats taken as lost: not used */
    uint16_t    out;            /* heartbeats outstanding */
    uint16_t    len;            /* bytes in rbuf, while registering */
    uint8_t    *rbuf;
    uint64_t    started;
} stream_t;


static stream_t      *st;
static unsigned       nstreams;
static unsigned      *order;        /* registered streams, shuffled */
static unsigned       norder;
static unsigned       cursor;
static unsigned       inflight;
static int            sep = -1;     /* the streams' epoll set */

static reg_t          reg;          /* the UDP peers */
static udp_hb_t       uhb;          /* their heartbeats */

static workers_t      workers;
static unsigned       keep_alive_want;


/* ------------------------------------------------------------------ */
/* registration over TCP */

typedef struct {
    unsigned   ok;
    unsigned   results[16];         /* RegisterPkResponse results */
    unsigned   connect_failed;
    unsigned   closed;              /* by the server before the answer */
    unsigned   timed_out;
    unsigned   unexpected;          /* other messages, bad frames */
    unsigned   key_exchanges;
    unsigned   bad_keep_alive;
    int64_t    keep_alive;          /* of the last answer, -1: none */
    double     seconds;
} treg_t;


static void
stream_close(stream_t *s, int state)
{
    if (s->fd != -1) {
        epoll_ctl(sep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }

    free(s->rbuf);
    s->rbuf = NULL;
    s->state = (uint8_t) state;
}


/* Stream i: connected from its source address, RegisterPk sent. */
static int
stream_start(unsigned i, uint64_t run_seed, unsigned first_id, treg_t *tr)
{
    int                  fd;
    size_t               len;
    peer_t               pe;
    stream_t            *s = &st[i];
    uint8_t              msg[512];
    struct epoll_event   ev;
    struct sockaddr_in   src;

    src = src_addr(30, i / PEERS_PER_IP_MAX);
    fd = tcp_to(&src, &reg.server);

    if (fd == -1) {
        if (tr->connect_failed++ < 5) {
            fprintf(stderr, "stream_heartbeat: connect %u: %s\n", i,
                    strerror(errno));
        }

        s->state = T_FAILED;
        return -1;
    }

    make_peer(&pe, run_seed, first_id, i);
    len = msg_register_pk(msg, pe.id, pe.uuid, sizeof(pe.uuid), pe.pk,
                          sizeof(pe.pk));
    len = frame(msg, msg, len);

    if (send_full(fd, msg, len) != 0) {
        tr->connect_failed++;
        close(fd);
        s->state = T_FAILED;
        return -1;
    }

    nonblocking(fd);

    s->fd = fd;
    s->state = T_WAIT;
    s->len = 0;
    s->rbuf = malloc(RBUF);
    s->started = now_ns();

    if (s->rbuf == NULL) {
        die("malloc");
    }

    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u32 = i;

    if (epoll_ctl(sep, EPOLL_CTL_ADD, fd, &ev) == -1) {
        die("epoll_ctl");
    }

    return 0;
}


/* What arrived on stream i while it waits: 1 when it is done with. */
static int
stream_reg_read(unsigned i, treg_t *tr)
{
    int              rc, done = 0;
    size_t           plen, total, blen;
    ssize_t          n;
    unsigned         member;
    stream_t        *s = &st[i];
    pb_field_t       f;
    const uint8_t   *payload, *body;

    for ( ;; ) {
        n = recv(s->fd, s->rbuf + s->len, RBUF - s->len, 0);

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            tr->closed++;
            stream_close(s, T_CLOSED);
            return 1;
        }

        if (n < 0) {
            return 0;
        }

        s->len += n;

        for ( ;; ) {
            rc = frame_parse(s->rbuf, s->len, RBUF, &payload, &plen, &total);

            if (rc == 0) {
                if (s->len == RBUF) {
                    rc = -1;            /* a frame larger than we take */
                } else {
                    break;
                }
            }

            if (rc < 0) {
                tr->unexpected++;
                stream_close(s, T_BAD);
                return 1;
            }

            member = plen ? rm_member(payload, plen, &body, &blen) : 0;

            if (member == RM_KEY_EXCHANGE) {
                tr->key_exchanges++;

            } else if (member == RM_REGISTER_PK_RESPONSE && !done) {
                rc = pb_get(body, blen, 1, &f);
                f.v = (rc == 1) ? f.v : 0;          /* absent: OK */
                tr->results[f.v < 16 ? f.v : 15]++;

                if (f.v == RESULT_OK) {
                    rc = pb_get(body, blen, 2, &f);
                    tr->keep_alive = (rc == 1) ? (int32_t) f.v : 0;

                    if (keep_alive_want
                        && tr->keep_alive != (int64_t) keep_alive_want)
                    {
                        tr->bad_keep_alive++;
                    }

                    tr->ok++;
                    s->state = T_OK;

                } else {
                    s->state = T_REFUSED;
                }

                done = 1;

            } else {
                tr->unexpected++;
            }

            memmove(s->rbuf, s->rbuf + total, s->len - total);
            s->len -= total;
        }

        if (done) {
            if (s->state != T_OK || s->len) {
                if (s->len) {
                    tr->unexpected++;
                }
                stream_close(s, s->state == T_OK ? T_BAD : T_REFUSED);

            } else {
                free(s->rbuf);
                s->rbuf = NULL;
            }

            return 1;
        }
    }
}


static void
stream_register(uint64_t run_seed, unsigned first_id, unsigned window,
    treg_t *tr)
{
    int                  i, n;
    unsigned             next, pending, head, k;
    uint64_t             start, now;
    stream_t            *s;
    struct epoll_event   evs[512];

    memset(tr, 0, sizeof(*tr));
    tr->keep_alive = -1;

    start = now_ns();
    next = 0;
    pending = 0;
    head = 0;           /* the oldest stream that may still wait */

    while (next < nstreams || pending > 0) {
        while (pending < window && next < nstreams) {
            pending += stream_start(next, run_seed, first_id, tr) == 0;
            next++;
        }

        n = epoll_wait(sep, evs, 512, 20);

        if (n == -1 && errno != EINTR) {
            die("epoll_wait");
        }

        for (i = 0; i < n; i++) {
            k = evs[i].data.u32;

            if (st[k].state == T_WAIT && stream_reg_read(k, tr)) {
                pending--;
            }
        }

        now = now_ns();

        while (head < next
               && (st[head].state != T_WAIT
                   || now - st[head].started > REG_WAIT_NS))
        {
            s = &st[head];

            if (s->state == T_WAIT) {
                if (tr->timed_out++ < 5) {
                    fprintf(stderr, "stream_heartbeat: stream %u: no "
                            "RegisterPkResponse in %llu s\n", head,
                            (unsigned long long) (REG_WAIT_NS / 1000000000));
                }

                stream_close(s, T_FAILED);
                pending--;
            }

            head++;
        }
    }

    tr->seconds = (now_ns() - start) / 1e9;
}


/* ------------------------------------------------------------------ */
/* heartbeats */

/* The next stream to send a heartbeat on, -1 if none is free. */
static int
stream_pick(void)
{
    unsigned   tries;
    stream_t  *s;

    for (tries = 0; tries < norder; tries++) {
        s = &st[order[cursor]];
        cursor = (cursor + 1) % norder;

        if (s->state == T_OK && !s->stuck && s->out == 0) {
            return (int) (s - st);
        }
    }

    return -1;
}


/* Answers on stream k: every byte must be an empty frame (0x00). */
static void
stream_hb_read(unsigned k, hb_result_t *res, int measuring, uint64_t *last)
{
    ssize_t    n, j;
    stream_t  *s = &st[k];
    uint8_t    buf[256];

    while (s->state == T_OK) {
        n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }

        if (n <= 0) {
            res->closed++;
            inflight -= s->stuck ? 0 : s->out;
            stream_close(s, T_CLOSED);
            return;
        }

        *last = now_ns();

        for (j = 0; j < n; j++) {
            if (buf[j] != 0) {
                /* not an empty frame: nothing else is expected here */
                res->bad++;
                inflight -= s->stuck ? 0 : s->out;
                stream_close(s, T_BAD);
                return;
            }

            if (s->out == 0) {
                res->unasked++;         /* the server's ping? */
                continue;
            }

            s->out--;
            res->all_answers++;
            res->answers += measuring;

            if (!s->stuck) {
                inflight--;
            }
        }
    }
}


/* Heartbeats still outstanding after a stall: taken as lost. */
static void
streams_stall(hb_result_t *res)
{
    unsigned  i;

    res->stalls++;

    for (i = 0; i < nstreams; i++) {
        if (st[i].state == T_OK && st[i].out && !st[i].stuck) {
            st[i].stuck = 1;
        }
    }

    inflight = 0;
}


static void
stream_run(unsigned window, double seconds, double warmup, hb_result_t *res)
{
    int                  i, n, k, phase;
    uint64_t             now, start, end, last_answer, at_end;
    hb_cpu_t             cpu;
    struct epoll_event   evs[512];
    static const uint8_t empty = 0;

    memset(res, 0, sizeof(*res));
    res->name = "stream";

    phase = 0;                          /* 0 warm-up, 1 measuring, 2 end */
    memset(&cpu, 0, sizeof(cpu));
    at_end = 0;

    now = now_ns();
    start = now + (uint64_t) (warmup * 1e9);
    end = start + (uint64_t) (seconds * 1e9);
    last_answer = now;

    for ( ;; ) {
        if (phase == 0 && now >= start) {
            phase = 1;
            res->answers = 0;
            hb_cpu_start(&workers, &cpu);
            start = now;
        }

        if (phase == 1 && now >= end) {
            phase = 2;
            res->seconds = (now - start) / 1e9;
            hb_cpu_end(&workers, &cpu, res);
            at_end = res->all_answers;
        }

        if (phase == 2 && (inflight == 0 || now - end > STALL_NS)) {
            break;
        }

        while (phase < 2 && inflight < window && (k = stream_pick()) >= 0) {
            if (send(st[k].fd, &empty, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
                /* the read side will see the close */
                break;
            }

            st[k].out++;
            inflight++;
            res->all_sent++;
        }

        n = epoll_wait(sep, evs, 512, 5);

        if (n == -1 && errno != EINTR) {
            die("epoll_wait");
        }

        for (i = 0; i < n; i++) {
            stream_hb_read(evs[i].data.u32, res, phase == 1, &last_answer);
        }

        now = now_ns();

        /* TCP loses nothing: a silent second means the server dropped them */
        if (inflight > 0 && now - last_answer > STALL_NS) {
            streams_stall(res);
            last_answer = now;
        }
    }

    res->late = res->all_answers - at_end;
}


static void
hb_print(hb_result_t *r)
{
    printf("  %-7s %9.0f heartbeats/s  (%llu answered in %.2f s; %llu lost, "
           "%llu late, %llu bad, %llu stalls", r->name,
           r->answers / r->seconds, (unsigned long long) r->answers,
           r->seconds,
           (unsigned long long) (r->all_sent - r->all_answers),
           (unsigned long long) r->late,
           (unsigned long long) r->bad, (unsigned long long) r->stalls);

    if (r->closed || r->unasked) {
        printf("; %llu streams closed by the server, %llu empty frames "
               "unasked", (unsigned long long) r->closed,
               (unsigned long long) r->unasked);
    }

    printf(")");

    hb_print_cpu(&workers, r, 10, "heartbeat");

    printf("\n");
}


/*
 * An empty frame on every registered stream, `window' at a time: how many
 * answer within 5 s (the others are closed).
 */
static unsigned
streams_alive(unsigned window, hb_result_t *res)
{
    int                  i, n;
    unsigned             k, next, alive;
    uint64_t             deadline, last;
    struct epoll_event   evs[512];
    static const uint8_t empty = 0;

    memset(res, 0, sizeof(*res));

    /* what the heartbeat rounds left behind, answered or not */
    inflight = 0;

    for (k = 0; k < nstreams; k++) {
        st[k].out = 0;
        st[k].stuck = 0;
    }

    next = 0;
    alive = 0;
    deadline = now_ns() + 5 * 1000000000ULL;

    for ( ;; ) {
        while (inflight < window && next < nstreams) {
            k = next++;

            if (st[k].state != T_OK) {
                continue;
            }

            if (send(st[k].fd, &empty, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
                stream_close(&st[k], T_CLOSED);
                res->closed++;
                continue;
            }

            st[k].out = 1;
            inflight++;
        }

        if (inflight == 0 && next >= nstreams) {
            break;
        }

        if (now_ns() > deadline) {
            break;
        }

        n = epoll_wait(sep, evs, 512, 10);

        for (i = 0; i < n; i++) {
            k = evs[i].data.u32;
            stream_hb_read(k, res, 0, &last);

            if (st[k].state == T_OK && st[k].out == 0 && !st[k].stuck) {
                alive++;
                st[k].stuck = 1;        /* answered: not counted again */
            }
        }
    }

    for (k = 0; k < nstreams; k++) {
        if (st[k].state == T_OK && !st[k].stuck) {
            stream_close(&st[k], T_FAILED);
        }
    }

    return alive;
}


/* ------------------------------------------------------------------ */

static const char *
result_name(unsigned r)
{
    static const char  *names[] = { "OK", "1?", "UUID_MISMATCH", "ID_EXISTS",
                                    "TOO_FREQUENT", "INVALID_ID_FORMAT",
                                    "NOT_SUPPORT", "SERVER_ERROR",
                                    "NOT_DEPLOYED" };

    return r < sizeof(names) / sizeof(names[0]) ? names[r] : "other";
}


static double
per_peer(long before_kb, long after_kb, unsigned peers)
{
    return peers ? (after_kb - before_kb) * 1024.0 / peers : 0;
}


static void
mem_print(const char *what, mem_t *a, mem_t *b, unsigned peers)
{
    printf("  %-7s %u peers: VmRSS of %d workers %ld -> %ld kB: %.0f bytes "
           "per peer; RssAnon %.0f, RssShmem %.0f, Pss %.0f\n", what, peers,
           workers.n, a->rss_kb, b->rss_kb,
           per_peer(a->rss_kb, b->rss_kb, peers),
           per_peer(a->anon_kb, b->anon_kb, peers),
           per_peer(a->shmem_kb, b->shmem_kb, peers),
           a->pss_kb < 0 || b->pss_kb < 0 ? 0
           : per_peer(a->pss_kb, b->pss_kb, peers));
}


static void
usage(void)
{
    fprintf(stderr, "usage: stream_heartbeat -p port -P pidfile [-n streams] "
            "[-u udp peers] [-d seconds] [-r rounds] [-w window] "
            "[-k keep_alive] [-H hold]\n");
    exit(2);
}


int
main(int argc, char **argv)
{
    int                  c, round, rounds, i;
    unsigned             window, udp_peers, k, hold, rdv_port, alive, refused;
    uint64_t             hb_seed, run_seed;
    double               seconds;
    const char          *pidfile;
    mem_t                m0, m1, m2;
    treg_t               tr;
    hb_result_t          ru, rs, sum_u, sum_s, ra;

    nstreams = 10000;
    udp_peers = 0;
    seconds = 3;
    rounds = 3;
    window = 128;
    hold = 2;
    rdv_port = 0;
    pidfile = NULL;

    while ((c = getopt(argc, argv, "p:P:n:u:d:r:w:k:H:")) != -1) {
        switch (c) {
        case 'p': rdv_port = atoi(optarg); break;
        case 'P': pidfile = optarg; break;
        case 'n': nstreams = strtoul(optarg, NULL, 10); break;
        case 'u': udp_peers = strtoul(optarg, NULL, 10); break;
        case 'd': seconds = atof(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 'w': window = strtoul(optarg, NULL, 10); break;
        case 'k': keep_alive_want = strtoul(optarg, NULL, 10); break;
        case 'H': hold = strtoul(optarg, NULL, 10); break;
        default: usage();
        }
    }

    if (udp_peers == 0) {
        udp_peers = nstreams;
    }

    if (rdv_port == 0 || pidfile == NULL || nstreams == 0
        || nstreams > 1000000 || window == 0 || window > 65535
        || seconds <= 0 || seconds > 30 || rounds < 1 || rounds > 10
        || hold > 30)
    {
        usage();
    }

    watchdog(200);
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    if (nofile_at_least((rlim_t) nstreams + udp_peers / PEERS_PER_IP_MAX
                        + 256) != 0)
    {
        fprintf(stderr, "stream_heartbeat: cannot open %u files "
                "(RLIMIT_NOFILE)\n",
                nstreams + udp_peers / PEERS_PER_IP_MAX + 256);
        return 2;
    }

    run_seed = (uint64_t) time(NULL) * 2654435761u ^ (uint64_t) getpid();
    hb_seed = run_seed ^ 0x5851F42D4C957F2DULL;

    find_workers(pidfile, &workers);

    if (workers.n == 0) {
        fprintf(stderr, "stream_heartbeat: no workers for %s\n", pidfile);
        return 1;
    }

    /* 1. memory at rest */

    usleep(500000);
    m0 = workers_mem(&workers, NULL);

    /* 2. the baseline: peers registered over UDP */

    udp_hb_register(&reg, loopback("127.0.0.1", rdv_port), udp_peers,
                    run_seed, 100000000 + (unsigned) (run_seed % 400000000));

    printf("UDP: registered %u of %u peers from %u source addresses in "
           "%.1f s (%u retries, %u given up, %u TOO_FREQUENT, "
           "%u UUID_MISMATCH, %u SERVER_ERROR, %u heartbeats asking for a "
           "key)\n", reg.n_ok, udp_peers, reg.nsrc, reg.seconds,
           reg.n_retries, reg.n_given_up, reg.results[RESULT_TOO_FREQUENT],
           reg.results[RESULT_UUID_MISMATCH],
           reg.results[RESULT_SERVER_ERROR], reg.n_request_pk);

    udp_hb_init(&uhb, &reg, &workers);

    sep = epoll_create1(EPOLL_CLOEXEC);
    if (sep == -1) {
        die("epoll_create1");
    }

    udp_hb_drain(&uhb, NULL, 1, 100);
    sleep(hold);
    m1 = workers_mem(&workers, NULL);

    /* 3. peers registered over TCP streams, held open */

    st = calloc(nstreams, sizeof(stream_t));
    order = malloc(nstreams * sizeof(unsigned));

    if (st == NULL || order == NULL) {
        die("calloc");
    }

    for (k = 0; k < nstreams; k++) {
        st[k].fd = -1;
    }

    stream_register(run_seed ^ 0xA0761D6478BD642FULL,
                    reg.first_id + 500000000, window < 256 ? 256 : window,
                    &tr);

    printf("TCP: registered %u of %u streams from %u source addresses in "
           "%.1f s (%u connects failed, %u closed before the answer, "
           "%u timed out, %u other answers or bad frames, %u KeyExchange "
           "offers skipped; answers:",
           tr.ok, nstreams,
           (nstreams + PEERS_PER_IP_MAX - 1) / PEERS_PER_IP_MAX, tr.seconds,
           tr.connect_failed, tr.closed, tr.timed_out, tr.unexpected,
           tr.key_exchanges);

    for (k = 0; k < 16; k++) {
        if (tr.results[k]) {
            printf(" %u %s", tr.results[k], result_name(k));
        }
    }

    printf("); keep_alive %lld s%s\n", (long long) tr.keep_alive,
           tr.bad_keep_alive ? " (NOT the configured value in some answers)"
                             : "");

    sleep(hold);
    m2 = workers_mem(&workers, NULL);

    printf("memory of the workers (%u s after the last registration):\n",
           hold);
    mem_print("udp", &m0, &m1, reg.n_ok);
    mem_print("stream", &m1, &m2, tr.ok);

    /* 4. heartbeats, UDP and streams in turn */

    for (k = 0; k < nstreams; k++) {
        if (st[k].state == T_OK) {
            order[norder++] = k;
        }
    }

    for (k = norder; k > 1; k--) {          /* Fisher-Yates */
        i = (int) (rnd(&hb_seed) % k);
        c = (int) order[k - 1];
        order[k - 1] = order[i];
        order[i] = (unsigned) c;
    }

    memset(&sum_u, 0, sizeof(sum_u));
    memset(&sum_s, 0, sizeof(sum_s));
    sum_u.name = "udp";
    sum_s.name = "stream";

    if (uhb.nok == 0 || norder == 0) {
        fprintf(stderr, "stream_heartbeat: %u UDP peers, %u streams "
                "registered: no heartbeats\n", uhb.nok, norder);
        goto result;
    }

    printf("heartbeats: %u UDP peers, %u streams, %u in flight, %d rounds "
           "of %.1f s each, %d nginx workers\n", uhb.nok, norder, window,
           rounds, seconds, workers.n);

    for (round = 1; round <= rounds; round++) {
        printf(" round %d\n", round);

        udp_hb_run(&uhb, &reg.server, 1, "udp", window, seconds, 0.3,
                   &hb_seed, &ru);
        hb_print(&ru);

        stream_run(window, seconds, 0.3, &rs);
        hb_print(&rs);

        hb_add(&sum_u, &ru, workers.n);
        hb_add(&sum_s, &rs, workers.n);
    }

    printf(" total\n");
    hb_print(&sum_u);
    hb_print(&sum_s);
    printf("ratio stream/udp: %.2f\n", (sum_s.answers / sum_s.seconds)
                                       / (sum_u.answers / sum_u.seconds));

result:

    /* 5. every stream still there? */

    alive = streams_alive(512, &ra);

    printf("an empty frame on each of the %u registered streams: %u "
           "answered%s\n", tr.ok, alive,
           ra.bad || ra.closed ? " (and some closed or answered wrong)" : "");

    for (k = 0; k < nstreams; k++) {
        stream_close(&st[k], st[k].state);
    }

    udp_hb_close(&uhb);

    for (refused = 0, k = 1; k < 16; k++) {
        refused += tr.results[k];
    }

#define RATE(r) ((r).seconds > 0 ? (r).answers / (r).seconds : 0)
#define CPU(r) (workers.n && (r).answers ? (r).server_cpu * 1e6 / (r).answers \
                                         : 0)

    printf("RESULT stream_heartbeat streams=%u registered=%u udp_peers=%u "
           "stream_bpp=%.0f udp_bpp=%.0f mem_ratio=%.2f "
           "stream_pss_bpp=%.0f udp_pss_bpp=%.0f "
           "stream_anon_bpp=%.0f stream_shmem_bpp=%.0f "
           "stream_hbps=%.0f udp_hbps=%.0f ratio=%.3f "
           "stream_cpu_us=%.2f udp_cpu_us=%.2f "
           "stream_lost=%llu stream_bad=%llu stream_unasked=%llu "
           "stream_closed=%llu udp_lost=%llu udp_bad=%llu "
           "alive=%u keep_alive=%lld bad_keep_alive=%u refused=%u "
           "failed=%u\n",
           nstreams, tr.ok, uhb.nok,
           per_peer(m1.rss_kb, m2.rss_kb, tr.ok),
           per_peer(m0.rss_kb, m1.rss_kb, reg.n_ok),
           per_peer(m0.rss_kb, m1.rss_kb, reg.n_ok) > 0
           ? per_peer(m1.rss_kb, m2.rss_kb, tr.ok)
             / per_peer(m0.rss_kb, m1.rss_kb, reg.n_ok) : 0,
           m1.pss_kb < 0 || m2.pss_kb < 0 ? 0
           : per_peer(m1.pss_kb, m2.pss_kb, tr.ok),
           m0.pss_kb < 0 || m1.pss_kb < 0 ? 0
           : per_peer(m0.pss_kb, m1.pss_kb, reg.n_ok),
           per_peer(m1.anon_kb, m2.anon_kb, tr.ok),
           per_peer(m1.shmem_kb, m2.shmem_kb, tr.ok),
           RATE(sum_s), RATE(sum_u),
           RATE(sum_u) > 0 ? RATE(sum_s) / RATE(sum_u) : 0,
           CPU(sum_s), CPU(sum_u),
           (unsigned long long) (sum_s.all_sent - sum_s.all_answers),
           (unsigned long long) sum_s.bad,
           (unsigned long long) sum_s.unasked,
           (unsigned long long) (sum_s.closed + ra.closed),
           (unsigned long long) (sum_u.all_sent - sum_u.all_answers),
           (unsigned long long) sum_u.bad,
           alive, (long long) tr.keep_alive, tr.bad_keep_alive,
           refused,
           tr.connect_failed + tr.closed + tr.timed_out + tr.unexpected);

    return 0;
}
