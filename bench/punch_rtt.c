/*
 * punch_rtt: the round trip of a punch-hole request, as A sees it, against
 * a TCP round trip to nginx's own "return" as the baseline.
 *
 *   punch_rtt -p RENDEZVOUS_PORT -b BASELINE_PORT -k id_ed25519.pub [-n flows]
 *             [-a As] [-B Bs]
 *
 * The flow of punch.h: A (TCP from 127.0.0.2, a kept connection) sends
 * PunchHoleRequest, B (registered over UDP from 127.0.1.x) gets PunchHole
 * and sends PunchHoleSent on a new connection, A gets PunchHoleResponse
 * (latency: A's send to this), B's connection must carry nothing but the
 * server's KeyExchange offer before its close.  The flows are sequential,
 * over a pool of As (round robin) and Bs (each re-registers every 5 s,
 * outside the timed part, to stay online).
 *
 * Baseline, the same number of times, from the same B addresses: connect
 * to a stream server with `return "x"', send a request of the size of a
 * PunchHoleRequest, read "x" and the close.
 *
 * Prints p50, p99 and max of both in microseconds.
 */

#include "punch.h"


#define MAX_A      64
#define MAX_B      250


static struct sockaddr_in   server, baseline;


static uint64_t
baseline_rtt(punch_b_t *b, const uint8_t *req, size_t len)
{
    int                 fd;
    char                buf[64];
    size_t              got;
    ssize_t             n;
    uint64_t            t0;
    struct sockaddr_in  src;

    src = b->src;
    src.sin_port = 0;

    t0 = now_ns();

    fd = tcp_to(&src, &baseline);
    if (fd == -1) {
        return 0;
    }

    (void) send_full(fd, req, len);

    got = 0;

    while (got < sizeof(buf) && wait_fd(fd, PUNCH_WAIT_MS)) {
        n = recv(fd, buf + got, sizeof(buf) - got, 0);

        if (n <= 0) {
            break;
        }

        got += n;
    }

    close(fd);

    if (got != 1 || buf[0] != 'x') {
        return 0;
    }

    return now_ns() - t0;
}


int
main(int argc, char **argv)
{
    int            c, i, na, nb;
    size_t         len, nr, nbase, nfail, nbase_fail, not_closed;
    uint64_t       seed, *rtt, *leg1, *base, t, l1;
    unsigned       flows, first_id, rdv_port = 0, base_port = 0, w;
    const char    *keyfile;
    whys_t         whys;
    punch_a_t     *as;
    punch_b_t     *bs;
    uint8_t        req[1024], body[1024], *p;

    flows = 10000;
    na = 4;
    nb = 16;
    keyfile = NULL;

    while ((c = getopt(argc, argv, "p:b:n:k:a:B:")) != -1) {
        switch (c) {
        case 'p': rdv_port = atoi(optarg); break;
        case 'b': base_port = atoi(optarg); break;
        case 'n': flows = strtoul(optarg, NULL, 10); break;
        case 'k': keyfile = optarg; break;
        case 'a': na = atoi(optarg); break;
        case 'B': nb = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: punch_rtt -p port -b port -k keyfile "
                    "[-n flows] [-a As] [-B Bs]\n");
            return 2;
        }
    }

    if (rdv_port == 0 || base_port == 0 || keyfile == NULL || flows == 0
        || flows > 1000000 || na < 1 || na > MAX_A || nb < 1 || nb > MAX_B)
    {
        fprintf(stderr, "usage: punch_rtt -p port -b port -k keyfile "
                    "[-n flows] [-a As] [-B Bs]\n");
        return 2;
    }

    watchdog(120);
    setvbuf(stdout, NULL, _IOLBF, 0);

    server = loopback("127.0.0.1", rdv_port);
    baseline = loopback("127.0.0.1", base_port);

    punch_licence(keyfile);

    seed = (uint64_t) time(NULL) * 2654435761u ^ (uint64_t) getpid();
    first_id = 100000000 + (unsigned) (seed % 800000000);

    /* Bs: registered from 127.0.1.1 and up, one each */

    bs = calloc(nb, sizeof(punch_b_t));
    as = calloc(na, sizeof(punch_a_t));
    rtt = calloc(flows, sizeof(uint64_t));
    leg1 = calloc(flows, sizeof(uint64_t));
    base = calloc(flows, sizeof(uint64_t));

    if (bs == NULL || as == NULL || rtt == NULL || leg1 == NULL
        || base == NULL)
    {
        die("calloc");
    }

    for (i = 0; i < nb; i++) {
        if (b_init(&bs[i], &server, seed, first_id, i) != 0) {
            return 1;
        }
    }

    for (i = 0; i < na; i++) {
        as[i].server = &server;

        if (a_open(&as[i]) != 0) {
            die("connect (A)");
        }
    }

    printf("%u flows, %d As on kept connections from 127.0.0.2, "
           "%d Bs from 127.0.1.1-%d\n", flows, na, nb, nb);

    /* punch flows */

    nr = nfail = not_closed = 0;
    memset(&whys, 0, sizeof(whys));

    for (w = 0; w < flows; w++) {
        punch_a_t  *a = &as[w % na];
        punch_b_t  *b = &bs[w % nb];

        if (now_ns() - b->last_reg > 5000000000ULL && b_register(b, 0) != 0) {
            return 1;
        }

        t = punch_flow_checked(a, b, &l1, &whys, &not_closed);

        if (t) {
            rtt[nr] = t;
            leg1[nr] = l1;
            nr++;

        } else {
            nfail++;
        }
    }

    /* baseline: connect, send, read "x" and the close */

    p = pb_str(body, 1, bs[0].pe.id);
    p = pb_uint(p, 2, 1);
    p = pb_str(p, 3, licence);
    p = pb_str(p, 6, PUNCH_VERSION);
    len = rm_wrap(req, RM_PUNCH_HOLE_REQUEST, body, p - body);
    len = frame(req, req, len);

    nbase = nbase_fail = 0;

    for (w = 0; w < flows; w++) {
        t = baseline_rtt(&bs[w % nb], req, len);

        if (t) {
            base[nbase++] = t;
        } else {
            nbase_fail++;
        }
    }

    printf("failed flows: %zu", nfail);
    why_print(&whys);
    printf("; B connections not closed by the server (or with more than "
           "the KeyExchange offer): %zu; baseline failures: %zu\n",
           not_closed, nbase_fail);
    printf("KeyExchange offers read at A: %zu; A connections without one: "
           "%zu\n", offers, bad_offers);

    if (nr == 0 || nbase == 0) {
        fprintf(stderr, "punch_rtt: %zu flows, %zu baseline round trips "
                "succeeded\n", nr, nbase);
        return 1;
    }

    printf("A's request to A's answer (whole flow, B's work included):\n");
    print_pct("rendezvous", rtt, nr);
    print_pct("  to B", leg1, nr);
    printf("connect + request + answer + close to `return':\n");
    print_pct("baseline", base, nbase);

    printf("RESULT punch_rtt flows=%u failed=%zu not_closed=%zu "
           "rdv_p50=%.0f rdv_p99=%.0f rdv_max=%.0f "
           "base_p50=%.0f base_p99=%.0f base_max=%.0f "
           "ratio_p50=%.2f ratio_p99=%.2f base_failed=%zu no_offer=%zu\n",
           flows, nfail, not_closed,
           pct(rtt, nr, 0.5) / 1e3, pct(rtt, nr, 0.99) / 1e3,
           rtt[nr - 1] / 1e3,
           pct(base, nbase, 0.5) / 1e3, pct(base, nbase, 0.99) / 1e3,
           base[nbase - 1] / 1e3,
           (double) pct(rtt, nr, 0.5) / pct(base, nbase, 0.5),
           (double) pct(rtt, nr, 0.99) / pct(base, nbase, 0.99),
           nbase_fail, bad_offers);

    return 0;
}
