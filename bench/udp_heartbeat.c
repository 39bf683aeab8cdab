/*
 * udp_heartbeat: RegisterPeer heartbeats per second with many registered
 * peers, against nginx's own UDP "return" as the baseline.
 *
 *   udp_heartbeat -p RENDEZVOUS_PORT -b BASELINE_PORT [-n peers]
 *                 [-d seconds] [-r rounds] [-w window] [-P nginx.pid]
 *
 * 1. registers n peers on the rendezvous port (RegisterPk then RegisterPeer,
 *    25 per source address of 127.10.0.0/16 and up);
 * 2. in `rounds' rounds, for d seconds each, first to the baseline port,
 *    then to the rendezvous port: keeps `window' datagrams in flight, each
 *    a RegisterPeer for a random registered peer from the address it
 *    registered from (same bytes to both servers), and counts answers.
 *    A window that gets no answer for 20 ms is taken as lost and refilled.
 *
 * Prints answers/s of each, the ratio, and the CPU seconds the nginx
 * workers and this generator used per answer (with -P).
 */

#include "udp_reg.h"


typedef struct {
    uint8_t   len;
    uint8_t   data[23];
} hb_msg_t;


typedef struct {
    const char  *name;
    uint64_t     answers;           /* in the measured time */
    uint64_t     sent;              /* in the measured time */
    uint64_t     all_sent;          /* with warm-up */
    uint64_t     all_answers;       /* with warm-up and late ones */
    uint64_t     late;              /* after the end, while draining */
    uint64_t     bad;               /* not the expected answer */
    uint64_t     stalls;            /* windows taken as lost */
    double       seconds;
    double       server_cpu;
    double       client_cpu;
    double       worker_cpu[MAX_WORKERS];
} hb_result_t;


static int           *fds;
static unsigned       per_ip = PEERS_PER_IP_MAX;
static unsigned      *okv;          /* registered peers */
static unsigned       nok;
static hb_msg_t      *msgs;         /* per peer */
static workers_t      workers;


static int
hb_check(int rendezvous, const uint8_t *buf, ssize_t len)
{
    if (rendezvous) {
        /* RegisterPeerResponse{request_pk: false}: 3a 00 */
        return len == 2 && buf[0] == (RM_REGISTER_PEER_RESPONSE << 3 | 2)
               && buf[1] == 0;
    }

    return len == 1 && buf[0] == 'x';
}


static void
hb_drain(int ep, hb_result_t *res, int rendezvous, int ms)
{
    int                  i, n;
    ssize_t              len;
    uint64_t             end;
    struct epoll_event   evs[256];
    uint8_t              buf[2048];

    end = now_ns() + (uint64_t) ms * 1000000;

    while (now_ns() < end) {
        n = epoll_wait(ep, evs, 256, 10);

        for (i = 0; i < n; i++) {
            while ((len = recv(fds[evs[i].data.u32], buf, sizeof(buf),
                               MSG_DONTWAIT)) >= 0)
            {
                if (res) {
                    res->late++;
                    res->all_answers++;
                    res->bad += !hb_check(rendezvous, buf, len);
                }
            }
        }
    }
}


static void
hb_run(int ep, struct sockaddr_in *to, int rendezvous, unsigned window,
    double seconds, double warmup, uint64_t *seed, hb_result_t *res)
{
    int                  i, n, inflight, measuring;
    ssize_t              len;
    unsigned             p;
    uint64_t             now, start, end, last_answer;
    int                  w;
    double               cpu0, self0, each0[MAX_WORKERS];
    struct epoll_event   evs[512];
    uint8_t              buf[2048];

    memset(res, 0, sizeof(*res));
    res->name = rendezvous ? "rendezvous" : "baseline";

    inflight = 0;
    measuring = 0;
    cpu0 = self0 = 0;

    now = now_ns();
    start = now + (uint64_t) (warmup * 1e9);
    end = start + (uint64_t) (seconds * 1e9);
    last_answer = now;

    while (now < end) {
        if (!measuring && now >= start) {
            measuring = 1;
            res->answers = 0;
            res->sent = 0;
            res->bad = 0;
            res->stalls = 0;
            cpu0 = workers_cpu(&workers, each0);
            self0 = self_cpu();
            start = now;
        }

        while (inflight < (int) window) {
            p = okv[rnd(seed) % nok];

            if (sendto(fds[p / per_ip], msgs[p].data, msgs[p].len, 0,
                       (struct sockaddr *) to, sizeof(*to)) < 0)
            {
                if (errno != EAGAIN && errno != ENOBUFS) {
                    die("sendto");
                }

                break;
            }

            inflight++;
            res->sent++;
            res->all_sent++;
        }

        n = epoll_wait(ep, evs, 512, 5);

        if (n == -1 && errno != EINTR) {
            die("epoll_wait");
        }

        now = now_ns();

        for (i = 0; i < n; i++) {
            while ((len = recv(fds[evs[i].data.u32], buf, sizeof(buf),
                               MSG_DONTWAIT)) >= 0)
            {
                res->answers++;
                res->all_answers++;
                res->bad += !hb_check(rendezvous, buf, len);

                if (inflight > 0) {
                    inflight--;
                }

                last_answer = now;
            }
        }

        if (n <= 0 && inflight > 0 && now - last_answer > 20000000) {
            res->stalls++;
            inflight = 0;
            last_answer = now;
        }
    }

    res->seconds = (now - start) / 1e9;
    res->server_cpu = workers_cpu(&workers, res->worker_cpu) - cpu0;

    for (w = 0; w < workers.n; w++) {
        res->worker_cpu[w] -= each0[w];
    }
    res->client_cpu = self_cpu() - self0;

    hb_drain(ep, res, rendezvous, 200);
}


static void
hb_print(hb_result_t *r)
{
    int  w;

    printf("  %-10s %9.0f answers/s  (%llu answers in %.2f s; %llu lost, "
           "%llu late, %llu bad, %llu stalls)", r->name,
           r->answers / r->seconds, (unsigned long long) r->answers,
           r->seconds,
           (unsigned long long) (r->all_sent - r->all_answers),
           (unsigned long long) r->late,
           (unsigned long long) r->bad, (unsigned long long) r->stalls);

    if (workers.n && r->answers) {
        printf("\n             CPU per answer: nginx workers %.2f us, "
               "generator %.2f us; workers busy",
               r->server_cpu * 1e6 / r->answers,
               r->client_cpu * 1e6 / r->answers);

        for (w = 0; w < workers.n; w++) {
            printf(" %.0f%%", r->worker_cpu[w] * 100 / r->seconds);
        }
    }

    printf("\n");
}


int
main(int argc, char **argv)
{
    int                  c, ep, round, rounds, i;
    unsigned             window, npeers, k;
    uint64_t             seed;
    double               seconds;
    const char          *pidfile;
    reg_t                reg;
    peer_t               pe;
    hb_result_t          rb, rr, sum_b, sum_r;
    struct epoll_event   ev;
    struct sockaddr_in   rdv, base;
    unsigned             rdv_port = 0, base_port = 0;

    npeers = 100000;
    seconds = 2.5;
    rounds = 2;
    window = 128;
    pidfile = NULL;

    while ((c = getopt(argc, argv, "p:b:n:d:r:w:P:")) != -1) {
        switch (c) {
        case 'p': rdv_port = atoi(optarg); break;
        case 'b': base_port = atoi(optarg); break;
        case 'n': npeers = strtoul(optarg, NULL, 10); break;
        case 'd': seconds = atof(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 'w': window = strtoul(optarg, NULL, 10); break;
        case 'P': pidfile = optarg; break;
        default:
            fprintf(stderr, "usage: udp_heartbeat -p port -b port [-n peers] "
                    "[-d seconds] [-r rounds] [-w window] [-P pidfile]\n");
            return 2;
        }
    }

    if (rdv_port == 0 || base_port == 0 || npeers == 0 || window == 0
        || seconds <= 0 || seconds > 30 || rounds < 1 || rounds > 10)
    {
        fprintf(stderr, "usage: udp_heartbeat -p port -b port [-n peers] "
                    "[-d seconds] [-r rounds] [-w window] [-P pidfile]\n");
        return 2;
    }

    watchdog(150);
    raise_nofile();
    setvbuf(stdout, NULL, _IOLBF, 0);

    rdv = loopback("127.0.0.1", rdv_port);
    base = loopback("127.0.0.1", base_port);

    seed = (uint64_t) time(NULL) * 2654435761u ^ (uint64_t) getpid();

    /* 1. register */

    memset(&reg, 0, sizeof(reg));
    reg.server = rdv;
    reg.npeers = npeers;
    reg.per_ip = per_ip;
    reg.net = 10;
    reg.window = 64;
    reg.heartbeat = 1;
    reg.keep_open = 1;
    reg.max_seconds = 60;
    reg.seed = seed;
    reg.first_id = 100000000 + (unsigned) (seed % 800000000);

    reg_run(&reg);

    printf("registered %u of %u peers from %u source addresses in %.1f s "
           "(%u datagrams, %u retries, %u given up, %u TOO_FREQUENT, "
           "%u UUID_MISMATCH, %u SERVER_ERROR, %u heartbeats asking for a key)\n",
           reg.n_ok, npeers, reg.nsrc, reg.seconds, reg.n_sent,
           reg.n_retries, reg.n_given_up, reg.results[RESULT_TOO_FREQUENT],
           reg.results[RESULT_UUID_MISMATCH],
           reg.results[RESULT_SERVER_ERROR], reg.n_request_pk);

    if (reg.n_ok == 0) {
        fprintf(stderr, "udp_heartbeat: no peer registered\n");
        return 1;
    }

    /* the registered peers, their sockets and datagrams */

    fds = reg.fds;
    okv = malloc(reg.n_ok * sizeof(unsigned));
    msgs = calloc(npeers, sizeof(hb_msg_t));

    if (okv == NULL || msgs == NULL) {
        die("malloc");
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1) {
        die("epoll_create1");
    }

    for (k = 0; k < reg.nsrc; k++) {
        if (fds[k] == -1) {
            continue;
        }

        ev.events = EPOLLIN;
        ev.data.u32 = k;

        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[k], &ev) == -1) {
            die("epoll_ctl");
        }
    }

    for (k = 0; k < npeers; k++) {
        if (reg.ok[k] && fds[k / per_ip] != -1) {
            okv[nok++] = k;
            make_peer(&pe, reg.seed, reg.first_id, k);
            msgs[k].len = (uint8_t) msg_register_peer(msgs[k].data, pe.id, 0);
        }
    }

    hb_drain(ep, NULL, 0, 100);
    find_workers(pidfile, &workers);

    printf("heartbeats: %u peers, %u datagrams in flight, %d rounds of "
           "%.1f s per server, %u-byte datagrams, %d nginx workers\n",
           nok, window, rounds, seconds, msgs[okv[0]].len, workers.n);

    /* 2. heartbeats, baseline and rendezvous in turn */

    memset(&sum_b, 0, sizeof(sum_b));
    memset(&sum_r, 0, sizeof(sum_r));
    sum_b.name = "baseline";
    sum_r.name = "rendezvous";

    for (round = 1; round <= rounds; round++) {
        printf(" round %d\n", round);

        hb_run(ep, &base, 0, window, seconds, 0.3, &seed, &rb);
        hb_print(&rb);

        hb_run(ep, &rdv, 1, window, seconds, 0.3, &seed, &rr);
        hb_print(&rr);

#define ADD(f) sum_b.f += rb.f; sum_r.f += rr.f
        ADD(answers); ADD(sent); ADD(all_sent); ADD(all_answers); ADD(late); ADD(bad); ADD(stalls);
        ADD(seconds); ADD(server_cpu); ADD(client_cpu);

        for (i = 0; i < workers.n; i++) {
            ADD(worker_cpu[i]);
        }

#undef ADD
    }

    printf(" total\n");
    hb_print(&sum_b);
    hb_print(&sum_r);

    printf("ratio rendezvous/baseline: %.2f\n",
           (sum_r.answers / sum_r.seconds) / (sum_b.answers / sum_b.seconds));

    printf("RESULT udp_heartbeat peers=%u rdv_rps=%.0f base_rps=%.0f "
           "ratio=%.3f rdv_lost=%llu base_lost=%llu rdv_bad=%llu "
           "rdv_cpu_us=%.2f base_cpu_us=%.2f\n",
           nok, sum_r.answers / sum_r.seconds, sum_b.answers / sum_b.seconds,
           (sum_r.answers / sum_r.seconds) / (sum_b.answers / sum_b.seconds),
           (unsigned long long) (sum_r.all_sent - sum_r.all_answers),
           (unsigned long long) (sum_b.all_sent - sum_b.all_answers),
           (unsigned long long) sum_r.bad,
           workers.n ? sum_r.server_cpu * 1e6 / sum_r.answers : 0.0,
           workers.n ? sum_b.server_cpu * 1e6 / sum_b.answers : 0.0);

    for (i = 0; i < (int) reg.nsrc; i++) {
        if (fds[i] != -1) {
            close(fds[i]);
        }
    }

    return 0;
}
