/*
 * RegisterPeer heartbeats over UDP from peers registered by reg_run(), as
 * udp_heartbeat and stream_heartbeat send them: `window' datagrams kept in
 * flight, each a RegisterPeer for a random registered peer from the
 * address it registered from, and the answers counted, with the CPU time
 * the nginx workers and this generator used meanwhile.
 *
 * hb_result_t, hb_cpu_start(), hb_cpu_end(), hb_add() and hb_print_cpu()
 * serve heartbeats of other kinds too (stream_heartbeat's over TCP).
 */

#ifndef UDP_HB_H
#define UDP_HB_H

#include "udp_reg.h"


#define HB_UDP_STALL_NS   (20 * 1000000ULL)   /* silent: a window lost */


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
    uint64_t     unasked;           /* streams: an empty frame none asked */
    uint64_t     stalls;            /* windows taken as lost */
    uint64_t     closed;            /* streams the server closed */
    double       seconds;
    double       server_cpu;
    double       client_cpu;
    double       worker_cpu[MAX_WORKERS];
} hb_result_t;


/* CPU seconds used so far, at the start of the measured time */
typedef struct {
    double       server;
    double       client;
    double       each[MAX_WORKERS];
} hb_cpu_t;


typedef struct {
    reg_t       *reg;               /* the registration: server, fds */
    workers_t   *workers;
    int          ep;                /* reg->fds, data.u32: the source */
    unsigned    *ok;                /* registered peers with a socket */
    unsigned     nok;
    hb_msg_t    *msgs;              /* per peer: its RegisterPeer */
} udp_hb_t;


static inline void
hb_cpu_start(workers_t *w, hb_cpu_t *c)
{
    c->server = workers_cpu(w, c->each);
    c->client = self_cpu();
}


static inline void
hb_cpu_end(workers_t *w, const hb_cpu_t *c, hb_result_t *res)
{
    int  i;

    res->server_cpu = workers_cpu(w, res->worker_cpu) - c->server;

    for (i = 0; i < w->n; i++) {
        res->worker_cpu[i] -= c->each[i];
    }

    res->client_cpu = self_cpu() - c->client;
}


/* One round's figures added to the sums over the rounds. */
static inline void
hb_add(hb_result_t *sum, const hb_result_t *r, int nworkers)
{
    int  i;

    sum->answers += r->answers;
    sum->sent += r->sent;
    sum->all_sent += r->all_sent;
    sum->all_answers += r->all_answers;
    sum->late += r->late;
    sum->bad += r->bad;
    sum->unasked += r->unasked;
    sum->stalls += r->stalls;
    sum->closed += r->closed;
    sum->seconds += r->seconds;
    sum->server_cpu += r->server_cpu;
    sum->client_cpu += r->client_cpu;

    for (i = 0; i < nworkers; i++) {
        sum->worker_cpu[i] += r->worker_cpu[i];
    }
}


/*
 * The second line of a result, if there are workers and answers:
 * "CPU per <what>: nginx workers .. us, generator .. us; workers busy ..%",
 * indented by `indent' spaces; the line is not ended.
 */
static inline void
hb_print_cpu(workers_t *w, const hb_result_t *r, int indent, const char *what)
{
    int  i;

    if (w->n == 0 || r->answers == 0) {
        return;
    }

    printf("\n%*sCPU per %s: nginx workers %.2f us, generator %.2f us; "
           "workers busy", indent, "", what,
           r->server_cpu * 1e6 / r->answers,
           r->client_cpu * 1e6 / r->answers);

    for (i = 0; i < w->n; i++) {
        printf(" %.0f%%", r->worker_cpu[i] * 100 / r->seconds);
    }
}


/*
 * npeers peers registered over UDP from 127.10.0.0/16 and up, each sending
 * a RegisterPeer after its RegisterPk; the sockets stay open.
 */
static inline void
udp_hb_register(reg_t *reg, struct sockaddr_in server, unsigned npeers,
    uint64_t seed, unsigned first_id)
{
    memset(reg, 0, sizeof(*reg));
    reg->server = server;
    reg->npeers = npeers;
    reg->per_ip = PEERS_PER_IP_MAX;
    reg->net = 10;
    reg->window = 64;
    reg->heartbeat = 1;
    reg->keep_open = 1;
    reg->max_seconds = 60;
    reg->seed = seed;
    reg->first_id = first_id;

    reg_run(reg);
}


/*
 * The registered peers of reg whose source socket is open, a RegisterPeer
 * ready for each, and the sockets in an epoll set of their own.
 */
static inline void
udp_hb_init(udp_hb_t *hb, reg_t *reg, workers_t *workers)
{
    unsigned             k;
    peer_t               pe;
    struct epoll_event   ev;

    hb->reg = reg;
    hb->workers = workers;
    hb->nok = 0;
    hb->ok = malloc(reg->npeers * sizeof(unsigned));
    hb->msgs = calloc(reg->npeers, sizeof(hb_msg_t));

    if (hb->ok == NULL || hb->msgs == NULL) {
        die("malloc");
    }

    hb->ep = epoll_create1(EPOLL_CLOEXEC);
    if (hb->ep == -1) {
        die("epoll_create1");
    }

    for (k = 0; k < reg->nsrc; k++) {
        if (reg->fds[k] == -1) {
            continue;
        }

        ev.events = EPOLLIN;
        ev.data.u32 = k;

        if (epoll_ctl(hb->ep, EPOLL_CTL_ADD, reg->fds[k], &ev) == -1) {
            die("epoll_ctl");
        }
    }

    for (k = 0; k < reg->npeers; k++) {
        if (reg->ok[k] && reg->fds[k / reg->per_ip] != -1) {
            hb->ok[hb->nok++] = k;
            make_peer(&pe, reg->seed, reg->first_id, k);
            hb->msgs[k].len = (uint8_t) msg_register_peer(hb->msgs[k].data,
                                                          pe.id, 0);
        }
    }
}


static inline void
udp_hb_close(udp_hb_t *hb)
{
    unsigned  k;

    for (k = 0; k < hb->reg->nsrc; k++) {
        if (hb->reg->fds[k] != -1) {
            close(hb->reg->fds[k]);
            hb->reg->fds[k] = -1;
        }
    }

    close(hb->ep);
    hb->ep = -1;
}


/*
 * rendezvous: the answer is RegisterPeerResponse{request_pk: false};
 * otherwise nginx's "return x" baseline.
 */
static inline int
udp_hb_check(int rendezvous, const uint8_t *buf, ssize_t len)
{
    if (rendezvous) {
        /* RegisterPeerResponse{request_pk: false}: 3a 00 */
        return len == 2 && buf[0] == (RM_REGISTER_PEER_RESPONSE << 3 | 2)
               && buf[1] == 0;
    }

    return len == 1 && buf[0] == 'x';
}


/*
 * Answers on the sockets for ms: with res, counted into it as late ones,
 * and no longer than until every datagram sent has its answer (nothing
 * more can come then); without, only thrown away.
 */
static inline void
udp_hb_drain(udp_hb_t *hb, hb_result_t *res, int rendezvous, int ms)
{
    int                  i, n;
    ssize_t              len;
    uint64_t             end;
    struct epoll_event   evs[256];
    uint8_t              buf[2048];

    end = now_ns() + (uint64_t) ms * 1000000;

    while (now_ns() < end) {
        n = epoll_wait(hb->ep, evs, 256, 10);

        for (i = 0; i < n; i++) {
            while ((len = recv(hb->reg->fds[evs[i].data.u32], buf,
                               sizeof(buf), MSG_DONTWAIT)) >= 0)
            {
                if (res) {
                    res->late++;
                    res->all_answers++;
                    res->bad += !udp_hb_check(rendezvous, buf, len);
                }
            }
        }

        if (res && res->all_answers >= res->all_sent) {
            break;
        }
    }
}


/*
 * Heartbeats to `to' for warmup + seconds, the figures of the last
 * `seconds' into res, then up to 1 s for the late answers (it ends as soon
 * as every datagram sent has its answer: on a busy machine an answer can
 * be late by more than 200 ms, and "lost" must mean lost).
 */
static inline void
udp_hb_run(udp_hb_t *hb, struct sockaddr_in *to, int rendezvous,
    const char *name, unsigned window, double seconds, double warmup,
    uint64_t *seed, hb_result_t *res)
{
    int                  i, n, measuring;
    ssize_t              len;
    unsigned             p, inflight;
    uint64_t             now, start, end, last_answer;
    hb_cpu_t             cpu;
    struct epoll_event   evs[512];
    uint8_t              buf[2048];

    memset(res, 0, sizeof(*res));
    res->name = name;

    inflight = 0;
    measuring = 0;
    memset(&cpu, 0, sizeof(cpu));

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
            hb_cpu_start(hb->workers, &cpu);
            start = now;
        }

        while (inflight < window) {
            p = hb->ok[rnd(seed) % hb->nok];

            if (sendto(hb->reg->fds[p / hb->reg->per_ip], hb->msgs[p].data,
                       hb->msgs[p].len, 0, (struct sockaddr *) to,
                       sizeof(*to)) < 0)
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

        n = epoll_wait(hb->ep, evs, 512, 5);

        if (n == -1 && errno != EINTR) {
            die("epoll_wait");
        }

        now = now_ns();

        for (i = 0; i < n; i++) {
            while ((len = recv(hb->reg->fds[evs[i].data.u32], buf,
                               sizeof(buf), MSG_DONTWAIT)) >= 0)
            {
                res->answers++;
                res->all_answers++;
                res->bad += !udp_hb_check(rendezvous, buf, len);

                if (inflight > 0) {
                    inflight--;
                }

                last_answer = now;
            }
        }

        /* datagrams are lost now and then: a silent window is refilled */
        if (n <= 0 && inflight > 0 && now - last_answer > HB_UDP_STALL_NS) {
            res->stalls++;
            inflight = 0;
            last_answer = now;
        }
    }

    res->seconds = (now - start) / 1e9;
    hb_cpu_end(hb->workers, &cpu, res);

    udp_hb_drain(hb, res, rendezvous, 1000);
}


#endif /* UDP_HB_H */
