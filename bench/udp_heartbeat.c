/*
 * udp_heartbeat: RegisterPeer heartbeats per second with many registered
 * peers, against nginx's own UDP "return" as the baseline.
 *
 *   udp_heartbeat -p RENDEZVOUS_PORT -b BASELINE_PORT [-n peers]
 *                 [-d seconds] [-r rounds] [-w window] [-P nginx.pid] [-R]
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
 *
 * With -R the baseline is another rendezvous server (another
 * configuration of it): the same peers are registered there too, from the
 * same addresses, so both get the same heartbeats of registered peers.
 */

#include "udp_hb.h"


static workers_t      workers;


static void
hb_print(hb_result_t *r)
{
    printf("  %-10s %9.0f answers/s  (%llu answers in %.2f s; %llu lost, "
           "%llu late, %llu bad, %llu stalls)", r->name,
           r->answers / r->seconds, (unsigned long long) r->answers,
           r->seconds,
           (unsigned long long) (r->all_sent - r->all_answers),
           (unsigned long long) r->late,
           (unsigned long long) r->bad, (unsigned long long) r->stalls);

    hb_print_cpu(&workers, r, 13, "answer");

    printf("\n");
}


int
main(int argc, char **argv)
{
    int                  c, round, rounds, both;
    unsigned             window, npeers;
    uint64_t             seed;
    double               seconds;
    const char          *pidfile;
    reg_t                reg, regb;
    udp_hb_t             hb;
    hb_result_t          rb, rr, sum_b, sum_r;
    struct sockaddr_in   rdv, base;
    unsigned             rdv_port = 0, base_port = 0;

    npeers = 100000;
    seconds = 2.5;
    rounds = 2;
    window = 128;
    pidfile = NULL;
    both = 0;

    while ((c = getopt(argc, argv, "p:b:n:d:r:w:P:R")) != -1) {
        switch (c) {
        case 'p': rdv_port = atoi(optarg); break;
        case 'b': base_port = atoi(optarg); break;
        case 'n': npeers = strtoul(optarg, NULL, 10); break;
        case 'd': seconds = atof(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 'w': window = strtoul(optarg, NULL, 10); break;
        case 'P': pidfile = optarg; break;
        case 'R': both = 1; break;
        default:
            fprintf(stderr, "usage: udp_heartbeat -p port -b port [-n peers] "
                    "[-d seconds] [-r rounds] [-w window] [-P pidfile] "
                    "[-R]\n");
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

    /* 1. register (with -R: the same peers on the baseline first) */

    if (both) {
        udp_hb_register(&regb, base, npeers, seed,
                        100000000 + (unsigned) (seed % 800000000));

        printf("registered %u of %u peers on the baseline port too\n",
               regb.n_ok, npeers);

        for (c = 0; c < (int) regb.nsrc; c++) {
            close(regb.fds[c]);
        }
    }

    udp_hb_register(&reg, rdv, npeers, seed,
                    100000000 + (unsigned) (seed % 800000000));

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

    udp_hb_init(&hb, &reg, &workers);

    udp_hb_drain(&hb, NULL, 0, 100);
    find_workers(pidfile, &workers);

    printf("heartbeats: %u peers, %u datagrams in flight, %d rounds of "
           "%.1f s per server, %u-byte datagrams, %d nginx workers\n",
           hb.nok, window, rounds, seconds, hb.msgs[hb.ok[0]].len,
           workers.n);

    /* 2. heartbeats, baseline and rendezvous in turn */

    memset(&sum_b, 0, sizeof(sum_b));
    memset(&sum_r, 0, sizeof(sum_r));
    sum_b.name = "baseline";
    sum_r.name = "rendezvous";

    for (round = 1; round <= rounds; round++) {
        printf(" round %d\n", round);

        /* with -R the baseline answers as a rendezvous server: checked so */
        udp_hb_run(&hb, &base, both, "baseline", window, seconds, 0.3, &seed,
                   &rb);
        hb_print(&rb);

        udp_hb_run(&hb, &rdv, 1, "rendezvous", window, seconds, 0.3, &seed,
                   &rr);
        hb_print(&rr);

        hb_add(&sum_b, &rb, workers.n);
        hb_add(&sum_r, &rr, workers.n);
    }

    printf(" total\n");
    hb_print(&sum_b);
    hb_print(&sum_r);

    printf("ratio rendezvous/baseline: %.2f\n",
           (sum_r.answers / sum_r.seconds) / (sum_b.answers / sum_b.seconds));

    printf("RESULT udp_heartbeat peers=%u rdv_rps=%.0f base_rps=%.0f "
           "ratio=%.3f rdv_lost=%llu base_lost=%llu rdv_bad=%llu "
           "rdv_cpu_us=%.2f base_cpu_us=%.2f\n",
           hb.nok, sum_r.answers / sum_r.seconds,
           sum_b.answers / sum_b.seconds,
           (sum_r.answers / sum_r.seconds) / (sum_b.answers / sum_b.seconds),
           (unsigned long long) (sum_r.all_sent - sum_r.all_answers),
           (unsigned long long) (sum_b.all_sent - sum_b.all_answers),
           (unsigned long long) sum_r.bad,
           workers.n ? sum_r.server_cpu * 1e6 / sum_r.answers : 0.0,
           workers.n ? sum_b.server_cpu * 1e6 / sum_b.answers : 0.0);

    udp_hb_close(&hb);

    return 0;
}
