/*
 * cluster: what the cluster mode costs.  Two hosts (nginx with the
 * rendezvous module on 127.0.0.1 and 127.0.0.2, the same port, both
 * `rustdesk_cluster' to one Redis), and a third nginx on 127.0.0.1 with
 * the same configuration but without `rustdesk_cluster'.
 *
 *   cluster -p HOSTS_PORT -o OFF_PORT -r REDIS_PORT -k id_ed25519.pub
 *           [-n punch flows] [-N peers] [-i heartbeat interval]
 *           [-d heartbeat seconds] [-m registrations] [-s rounds]
 *           [-t ttl] [-P host1.pid] [-O off.pid]
 *
 * 1. Punch round trip, same host against cross host, in turns: the flow
 *    of punch.h, A on a kept connection to host 1 from 127.0.0.2, B
 *    registered over UDP from 127.0.1.x on host 1 (same host) or on host 2
 *    (cross host: host 1 finds B in Redis and publishes the PunchHole on
 *    host 2's channel, host 2 sends it to B, B answers host 2, which
 *    passes the answer back through Redis); n flows of each kind, timed
 *    from A's send to A's answer.
 *
 * 2. Registration rate with the cluster on and off, in s interleaved
 *    rounds (on, off; every other round off, on): m new peers per round
 *    and side registered over UDP as the desktop client does it
 *    (RegisterPeer, answered request_pk true; RegisterPk, answered OK;
 *    RegisterPeer, answered request_pk false), 25 per source address, 64
 *    sources at once; peers registered per second, and the nginx workers'
 *    CPU per registration.
 *
 * 3. Redis commands per registration and memory per peer: Redis emptied
 *    (FLUSHDB: the keys of the rounds before go), then N new peers
 *    registered on host 1 the same way; the commands Redis ran (INFO
 *    commandstats, all but this program's INFO; a script counts as its
 *    EVAL and each command it runs) and used_memory before
 *    and after, divided by the peers registered; and MEMORY USAGE of the
 *    four keys of a sample of them (a peer's keys and values without
 *    Redis's hash tables, which double in size at powers of two).
 *
 * 4. Redis commands per heartbeat: those N peers each send a RegisterPeer
 *    every i seconds (spread evenly over the interval), for one interval
 *    unmeasured (so that every peer has a heartbeat before the measured
 *    time) and then d seconds measured.  A host writes an online peer to
 *    the directory once per refresh period (a third of the TTL, t) at a
 *    point of the period that depends on its id, so the expected figure is
 *    i / (t / 3): it depends on the interval, not on the rate.  Per
 *    heartbeat answered: one that the kernel dropped at a busy worker's
 *    socket never reached the host.
 *
 * Run in the order 1, 3, 4, 2: the peers of 2's rounds never heartbeat
 * again, and the hosts' removal of their entries once they are offline
 * (a script each) would land in 4's measurement.
 *
 * Prints a RESULT line.  Everything talks to 127.0.0.0/8 only.
 */

#include "punch.h"
#include "udp_hb.h"
#include "redis.h"


#define PUNCH_AS       4
#define PUNCH_BS       16              /* per host */
#define MAX_ROUNDS     100
#define REG_PER_IP     25
#define REG_WINDOW     64
#define HB_WAIT_S      10              /* for the hosts and the directory */

enum { SAME = 0, CROSS = 1 };
enum { ON = 0, OFF = 1 };


static struct sockaddr_in   host1, host2, off;
static uint64_t             seed;
static unsigned             first_id;
static workers_t            workers[2];         /* host 1, off */


/* Until each host has 2 workers and a listener connected to Redis. */
static int
wait_hosts(void)
{
    uint64_t  end;

    end = now_ns() + HB_WAIT_S * 1000000000ULL;

    while (now_ns() < end) {
        if (redis_clients("ngx_rustdesk:h1:") >= 3
            && redis_clients("ngx_rustdesk:h2:") >= 3)
        {
            return 0;
        }

        usleep(50000);
    }

    fprintf(stderr, "cluster: the hosts did not connect to redis within "
            "%d s\n", HB_WAIT_S);
    return -1;
}


/* Until peer id is in the directory. */
static int
wait_directory(const char *id)
{
    char         key[64], *v;
    uint64_t     end;
    const char  *argv[2];

    snprintf(key, sizeof(key), "rustdesk:peer:%s", id);
    argv[0] = "GET";
    argv[1] = key;

    end = now_ns() + HB_WAIT_S * 1000000000ULL;

    while (now_ns() < end) {
        v = redis_cmd(2, argv);

        if (v && strstr(v, " h2 ")) {
            return 0;
        }

        usleep(10000);
    }

    fprintf(stderr, "cluster: peer %s is not in the directory as h2's\n", id);
    return -1;
}


/* ------------------------------------------------------------------ */
/* 1. punch round trip */

typedef struct {
    const char   *name;
    punch_b_t     bs[PUNCH_BS];
    uint64_t     *rtt;
    uint64_t     *leg1;
    size_t        n;
    size_t        failed;
    size_t        not_closed;
    whys_t        whys;
} punch_kind_t;


static int
punch(unsigned flows, punch_kind_t *kinds)
{
    int            i, k;
    uint64_t       t, l1;
    unsigned       w;
    punch_a_t      as[PUNCH_AS];
    punch_b_t     *b;
    punch_kind_t  *pk;

    for (k = SAME; k <= CROSS; k++) {
        pk = &kinds[k];
        pk->rtt = calloc(flows, sizeof(uint64_t));
        pk->leg1 = calloc(flows, sizeof(uint64_t));

        if (pk->rtt == NULL || pk->leg1 == NULL) {
            die("calloc");
        }

        /* same host: 127.0.1.1-16 on host 1; cross: 127.0.1.17-32 on 2 */

        for (i = 0; i < PUNCH_BS; i++) {
            if (b_init(&pk->bs[i], k == SAME ? &host1 : &host2, seed,
                       first_id, k * PUNCH_BS + i) != 0)
            {
                return -1;
            }
        }
    }

    for (i = 0; i < PUNCH_BS; i++) {
        if (wait_directory(kinds[CROSS].bs[i].pe.id) != 0) {
            return -1;
        }
    }

    for (i = 0; i < PUNCH_AS; i++) {
        as[i].server = &host1;

        if (a_open(&as[i]) != 0) {
            die("connect (A)");
        }
    }

    printf("punch: %u flows of each kind in turns, %d As on host 1 from "
           "127.0.0.2, %d Bs on host 1 (same host) and %d on host 2 "
           "(cross host)\n", flows, PUNCH_AS, PUNCH_BS, PUNCH_BS);

    for (w = 0; w < 2 * flows; w++) {
        pk = &kinds[w % 2];
        b = &pk->bs[w / 2 % PUNCH_BS];

        if (now_ns() - b->last_reg > 5000000000ULL && b_register(b, 0) != 0) {
            return -1;
        }

        t = punch_flow_checked(&as[w % PUNCH_AS], b, &l1, &pk->whys,
                               &pk->not_closed);

        if (t) {
            pk->rtt[pk->n] = t;
            pk->leg1[pk->n] = l1;
            pk->n++;

        } else {
            pk->failed++;
        }
    }

    for (i = 0; i < PUNCH_AS; i++) {
        close(as[i].fd);
    }

    for (k = SAME; k <= CROSS; k++) {
        pk = &kinds[k];

        printf("  %s: failed flows: %zu", pk->name, pk->failed);
        why_print(&pk->whys);
        printf("; B connections not closed by the server (or with more "
               "than the KeyExchange offer): %zu\n", pk->not_closed);

        if (pk->n == 0) {
            fprintf(stderr, "cluster: no %s punch flow succeeded\n",
                    pk->name);
            return -1;
        }

        print_pct(pk->name, pk->rtt, pk->n);
        print_pct("  to B", pk->leg1, pk->n);
    }

    return 0;
}


/* ------------------------------------------------------------------ */
/* 2, 3: registrations */

/*
 * n new peers registered on `to' as the desktop client does, from
 * 127.<net>.0.0/16 and up; ids from first_id + `ids'.
 */
static void
registrations(reg_t *r, struct sockaddr_in *to, unsigned n, unsigned net,
    unsigned ids, int keep_open)
{
    memset(r, 0, sizeof(*r));
    r->server = *to;
    r->npeers = n;
    r->per_ip = REG_PER_IP;
    r->net = net;
    r->window = REG_WINDOW;
    r->heartbeat = 1;
    r->ask = 1;
    r->keep_open = keep_open;
    r->max_seconds = 120;
    r->seed = seed;
    r->first_id = first_id + ids;

    reg_run(r);
}


/* What went wrong in a registration run, for the problems: 0 none. */
static unsigned
reg_failures(reg_t *r, const char *what)
{
    unsigned  bad;

    bad = (r->npeers - r->n_ok) + r->n_request_pk + r->n_not_asked;

    if (bad) {
        printf("  %s: %u of %u registered (%u given up), %u RegisterPeer "
               "not asked for a key before it, %u asked after\n", what,
               r->n_ok, r->npeers, r->n_given_up, r->n_not_asked,
               r->n_request_pk);
    }

    return bad;
}


typedef struct {
    double     rate[MAX_ROUNDS];
    double     seconds;
    double     cpu;
    double     redis_cpu;
    unsigned   ok;
    unsigned   bad;
} rate_side_t;


static void
rate_rounds(unsigned m, unsigned rounds, rate_side_t *sides, double *ratio)
{
    int           j, k;
    double        cpu0, v[MAX_ROUNDS];
    reg_t         r;
    unsigned      i;
    rate_side_t  *s;
    redis_info_t  ri0, ri1;

    printf("registration rate: %u rounds, %u new peers per round on each "
           "side (host 1 with the cluster, the same nginx without), %d "
           "sources at once\n", rounds, m, REG_WINDOW);

    for (i = 0; i < rounds; i++) {
        for (j = 0; j < 2; j++) {
            k = (i % 2) ? 1 - j : j;
            s = &sides[k];

            (void) redis_info(&ri0);
            cpu0 = workers_cpu_ns(&workers[k]);
            registrations(&r, k == ON ? &host1 : &off, m, 40 + i,
                          1000000 * (1 + 2 * i + k), 0);
            s->cpu += workers_cpu_ns(&workers[k]) - cpu0;
            (void) redis_info(&ri1);
            s->redis_cpu += ri1.cpu - ri0.cpu;

            s->rate[i] = r.seconds > 0 ? r.n_ok / r.seconds : 0;
            s->seconds += r.seconds;
            s->ok += r.n_ok;
            s->bad += reg_failures(&r, k == ON ? "cluster on" : "cluster off");

            free(r.fds);
            free(r.ok);
        }

        v[i] = sides[OFF].rate[i] > 0
               ? sides[ON].rate[i] / sides[OFF].rate[i] : 0;
    }

    spread(v, rounds, ratio);

    for (k = ON; k <= OFF; k++) {
        s = &sides[k];
        printf("  cluster %-3s %8.0f registrations/s (%u in %.2f s), "
               "CPU per registration: nginx workers %.1f us, Redis %.1f us\n",
               k == ON ? "on" : "off", s->seconds > 0 ? s->ok / s->seconds : 0,
               s->ok, s->seconds, s->ok ? s->cpu * 1e6 / s->ok : 0,
               s->ok ? s->redis_cpu * 1e6 / s->ok : 0);
    }

    printf("  on / off, per round: min %.2f, median %.2f, max %.2f\n",
           ratio[0], ratio[1], ratio[2]);
}


/*
 * The mean MEMORY USAGE of a peer's keys (the directory entry and the
 * peer record: uuid, key, created_at) for up to `sample' peers of r,
 * spread over them: bytes per peer, 0 if none.
 */

static const char  *cluster_key_kinds[] = { "peer", "uuid", "pk", "created" };

static double
key_bytes(reg_t *r, unsigned sample)
{
    char          key[64], *v;
    peer_t        pe;
    unsigned      i, n, kind;
    const char   *argv[3];
    unsigned long long  sum;

    argv[0] = "MEMORY";
    argv[1] = "USAGE";
    argv[2] = key;

    sum = 0;
    n = 0;

    for (i = 0; i < r->npeers && n < sample; i += r->npeers / sample + 1) {
        if (!r->ok[i]) {
            continue;
        }

        make_peer(&pe, r->seed, r->first_id, i);

        for (kind = 0;
             kind < sizeof(cluster_key_kinds) / sizeof(cluster_key_kinds[0]);
             kind++)
        {
            snprintf(key, sizeof(key), "rustdesk:%s:%s",
                     cluster_key_kinds[kind], pe.id);

            v = redis_cmd(3, argv);
            if (v == NULL || v[0] < '0' || v[0] > '9') {
                return 0;
            }

            sum += strtoull(v, NULL, 10);
        }

        n++;
    }

    return n ? (double) sum / n : 0;
}


/* ------------------------------------------------------------------ */
/* 4. heartbeats at a client's pace */

typedef struct {
    uint64_t   sent;
    uint64_t   answers;
    uint64_t   bad;
} pace_t;


static void
pace_recv(udp_hb_t *hb, pace_t *p, int ms)
{
    int                  i, n;
    ssize_t              len;
    struct epoll_event   evs[512];
    uint8_t              buf[2048];

    n = epoll_wait(hb->ep, evs, 512, ms);

    for (i = 0; i < n; i++) {
        while ((len = recv(hb->reg->fds[evs[i].data.u32], buf, sizeof(buf),
                           MSG_DONTWAIT)) >= 0)
        {
            p->answers++;
            p->bad += !udp_hb_check(1, buf, len);
        }
    }
}


/*
 * Heartbeats of every peer of hb, each every `interval' seconds, spread
 * evenly, from *next (the heartbeats sent so far) for `seconds'.
 */
static void
pace(udp_hb_t *hb, double interval, double seconds, uint64_t start,
    uint64_t *next, pace_t *p)
{
    unsigned   k;
    uint64_t   now, end, due;

    end = now_ns() + (uint64_t) (seconds * 1e9);

    for ( ;; ) {
        now = now_ns();

        if (now >= end) {
            break;
        }

        for ( ;; ) {
            due = start + (uint64_t) (*next * interval * 1e9 / hb->nok);

            if (due > now || due >= end) {
                break;
            }

            k = hb->ok[*next % hb->nok];

            if (sendto(hb->reg->fds[k / hb->reg->per_ip], hb->msgs[k].data,
                       hb->msgs[k].len, 0, (struct sockaddr *) &host1,
                       sizeof(host1)) < 0
                && errno != EAGAIN && errno != ENOBUFS)
            {
                die("sendto");
            }

            (*next)++;
            p->sent++;
        }

        pace_recv(hb, p, 1);
    }
}


/* ------------------------------------------------------------------ */

static double
p_us(uint64_t *v, size_t n, double p)
{
    return n ? pct(v, n, p) / 1e3 : 0;     /* v sorted by print_pct */
}


int
main(int argc, char **argv)
{
    int                  c, k;
    char                 list[1024], reg_list[1024];
    double               interval, seconds, ttl, ratio[3], expected, kb,
                         per_hb;
    uint64_t             start, next;
    unsigned             flows, npeers, m, rounds, port, off_port;
    const char          *keyfile, *pidfile[2];
    const char          *flush[] = { "FLUSHDB" };
    reg_t                reg;
    pace_t               warm, meas;
    udp_hb_t             hb;
    rate_side_t          sides[2];
    punch_kind_t         kinds[2];
    redis_info_t         i0, i1, h0, h1;
    unsigned long long   reg_cmds, hb_cmds;
    long long            mem;

    port = off_port = 0;
    keyfile = NULL;
    flows = 5000;
    npeers = 100000;
    interval = 12;
    seconds = 24;
    m = 5000;
    rounds = 10;
    ttl = 900;
    pidfile[ON] = pidfile[OFF] = NULL;

    while ((c = getopt(argc, argv, "p:o:r:k:n:N:i:d:m:s:t:P:O:")) != -1) {
        switch (c) {
        case 'p': port = atoi(optarg); break;
        case 'o': off_port = atoi(optarg); break;
        case 'r': redis_port = atoi(optarg); break;
        case 'k': keyfile = optarg; break;
        case 'n': flows = strtoul(optarg, NULL, 10); break;
        case 'N': npeers = strtoul(optarg, NULL, 10); break;
        case 'i': interval = atof(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'm': m = strtoul(optarg, NULL, 10); break;
        case 's': rounds = strtoul(optarg, NULL, 10); break;
        case 't': ttl = atof(optarg); break;
        case 'P': pidfile[ON] = optarg; break;
        case 'O': pidfile[OFF] = optarg; break;
        default: goto usage;
        }
    }

    if (port == 0 || off_port == 0 || redis_port == 0 || keyfile == NULL
        || flows == 0 || flows > 1000000 || npeers == 0 || npeers > 1000000
        || m == 0 || m > 1000000 || rounds == 0 || rounds > MAX_ROUNDS
        || interval <= 0 || seconds <= 0 || ttl < 3)
    {
        goto usage;
    }

    /* the phases, and as much again for a slow machine */
    watchdog(120 + 2 * (unsigned) (interval + seconds));
    setvbuf(stdout, NULL, _IOLBF, 0);
    raise_nofile();

    host1 = loopback("127.0.0.1", port);
    host2 = loopback("127.0.0.2", port);
    off = loopback("127.0.0.1", off_port);

    punch_licence(keyfile);

    /* ids: punch Bs, rate rounds (a million each), then the N peers */
    seed = (uint64_t) time(NULL) * 2654435761u ^ (uint64_t) getpid();
    first_id = 100000000 + (unsigned) (seed % 500000000);

    find_workers(pidfile[ON], &workers[ON]);
    find_workers(pidfile[OFF], &workers[OFF]);

    if (wait_hosts() != 0) {
        return 1;
    }

    /* 1 */

    memset(kinds, 0, sizeof(kinds));
    kinds[SAME].name = "same host";
    kinds[CROSS].name = "cross host";

    if (punch(flows, kinds) != 0) {
        return 1;
    }

    printf("  cross-host p99 %.0f us: the aim (under 2 ms on loopback) is "
           "%s\n", p_us(kinds[CROSS].rtt, kinds[CROSS].n, 0.99),
           p_us(kinds[CROSS].rtt, kinds[CROSS].n, 0.99) < 2000
           ? "met" : "NOT met");

    memset(sides, 0, sizeof(sides));

    /*
     * 3 and 4 before 2: the rate rounds' peers never heartbeat again, and
     * 30 s later the hosts remove their entries from the directory (one
     * script each), which 4 would count as its own
     */

    /* 3: from an empty Redis, as a cluster's first day */

    if (redis_cmd(1, flush) == NULL) {
        fprintf(stderr, "cluster: FLUSHDB failed\n");
        return 1;
    }

    if (redis_quiet(&i0) != 0) {
        return 1;
    }

    registrations(&reg, &host1, npeers, 10, 300000000, 1);

    if (redis_quiet(&i1) != 0) {
        return 1;
    }

    reg_cmds = redis_delta(&i0, &i1, reg_list, sizeof(reg_list));
    mem = (long long) (i1.used_memory - i0.used_memory);

    kb = key_bytes(&reg, 200);

    printf("registrations: %u new peers on host 1 in %.2f s (%u RegisterPk "
           "answered OK): %llu Redis commands (%s), %.2f per registration\n"
           "  Redis used_memory +%lld bytes, keys +%llu: %.1f bytes per "
           "peer; its four keys' MEMORY USAGE: %.1f bytes (mean of up to "
           "200 peers)\n",
           npeers, reg.seconds, reg.n_ok, reg_cmds, reg_list,
           reg.n_ok ? (double) reg_cmds / reg.n_ok : 0, mem,
           i1.keys - i0.keys, reg.n_ok ? (double) mem / reg.n_ok : 0, kb);

    sides[ON].bad += reg_failures(&reg, "registrations");

    /* 4 */

    udp_hb_init(&hb, &reg, &workers[ON]);

    if (hb.nok == 0) {
        fprintf(stderr, "cluster: no peer registered\n");
        return 1;
    }

    printf("heartbeats: %u peers, one RegisterPeer each every %.1f s "
           "(%.0f/s), %.1f s unmeasured, then %.1f s measured\n", hb.nok,
           interval, hb.nok / interval, interval, seconds);

    memset(&warm, 0, sizeof(warm));
    memset(&meas, 0, sizeof(meas));
    next = 0;
    start = now_ns();

    pace(&hb, interval, interval, start, &next, &warm);

    if (redis_info(&h0) != 0) {
        return 1;
    }

    pace(&hb, interval, seconds, start, &next, &meas);

    /* the answers and commands of the last heartbeats, then INFO */

    for (k = 0; k < 200 && meas.answers < meas.sent; k++) {
        pace_recv(&hb, &meas, 1);
    }

    if (redis_info(&h1) != 0) {
        return 1;
    }

    hb_cmds = redis_delta(&h0, &h1, list, sizeof(list));
    expected = interval / (ttl / 3);
    per_hb = meas.answers ? (double) hb_cmds / meas.answers : 0;

    printf("  %llu heartbeats sent, %llu answered (%llu wrong): %llu "
           "Redis commands (%s), %.4f per heartbeat answered (expected "
           "%.4f: one write per peer per %.0f s refresh period)\n",
           (unsigned long long) meas.sent, (unsigned long long) meas.answers,
           (unsigned long long) meas.bad, hb_cmds, list, per_hb, expected,
           ttl / 3);
    printf("  a million peers at this pace: %.0f Redis commands/s; the aim "
           "(below 0.05 per heartbeat) is %s\n", 1e6 / interval * per_hb,
           meas.answers && per_hb < 0.05 ? "met" : "NOT met");

    udp_hb_close(&hb);

    /* 2 */

    rate_rounds(m, rounds, sides, ratio);

    printf("RESULT cluster flows=%u", flows);

    for (k = SAME; k <= CROSS; k++) {
        printf(" %s_p50=%.0f %s_p99=%.0f %s_failed=%zu %s_not_closed=%zu",
               k == SAME ? "same" : "cross",
               p_us(kinds[k].rtt, kinds[k].n, 0.5),
               k == SAME ? "same" : "cross",
               p_us(kinds[k].rtt, kinds[k].n, 0.99),
               k == SAME ? "same" : "cross", kinds[k].failed,
               k == SAME ? "same" : "cross", kinds[k].not_closed);
    }

    printf(" ratio_p50=%.2f ratio_p99=%.2f",
           p_us(kinds[SAME].rtt, kinds[SAME].n, 0.5) > 0
           ? p_us(kinds[CROSS].rtt, kinds[CROSS].n, 0.5)
             / p_us(kinds[SAME].rtt, kinds[SAME].n, 0.5) : 0,
           p_us(kinds[SAME].rtt, kinds[SAME].n, 0.99) > 0
           ? p_us(kinds[CROSS].rtt, kinds[CROSS].n, 0.99)
             / p_us(kinds[SAME].rtt, kinds[SAME].n, 0.99) : 0);

    printf(" on_regs_s=%.0f off_regs_s=%.0f ratio_regs_min=%.2f "
           "ratio_regs_med=%.2f ratio_regs_max=%.2f on_cpu_us=%.1f "
           "off_cpu_us=%.1f redis_cpu_us=%.1f reg_failed=%u",
           sides[ON].seconds > 0 ? sides[ON].ok / sides[ON].seconds : 0,
           sides[OFF].seconds > 0 ? sides[OFF].ok / sides[OFF].seconds : 0,
           ratio[0], ratio[1], ratio[2],
           sides[ON].ok ? sides[ON].cpu * 1e6 / sides[ON].ok : 0,
           sides[OFF].ok ? sides[OFF].cpu * 1e6 / sides[OFF].ok : 0,
           sides[ON].ok ? sides[ON].redis_cpu * 1e6 / sides[ON].ok : 0,
           sides[ON].bad + sides[OFF].bad);

    printf(" peers=%u cmds_per_reg=%.2f bytes_per_peer=%.1f "
           "key_bytes=%.1f hb_sent=%llu hb_lost=%llu hb_bad=%llu "
           "cmds_per_hb=%.4f expected_per_hb=%.4f no_offer=%zu\n",
           reg.n_ok, reg.n_ok ? (double) reg_cmds / reg.n_ok : 0,
           reg.n_ok ? (double) mem / reg.n_ok : 0, kb,
           (unsigned long long) meas.sent,
           (unsigned long long) (meas.sent > meas.answers
                                 ? meas.sent - meas.answers : 0),
           (unsigned long long) meas.bad,
           per_hb, expected, bad_offers);

    return 0;

usage:

    fprintf(stderr, "usage: cluster -p hosts_port -o off_port -r redis_port "
            "-k keyfile [-n punch flows] [-N peers] [-i interval] "
            "[-d seconds] [-m registrations] [-s rounds] [-t ttl] "
            "[-P host1.pid] [-O off.pid]\n");
    return 2;
}
