/*
 * zone_memory: shared memory per registered peer.
 *
 *   zone_memory -p RENDEZVOUS_PORT -z ZONE_BYTES [-i peers_per_ip]
 *               [-e error.log] [-r record_bytes]
 *
 * Registers peers with RegisterPk as real clients do (a 9-digit id, a
 * 36-byte uuid, a 32-byte key), per_ip of them from each source address
 * of 127.20.0.0/16 and up, until the server has answered SERVER_ERROR
 * (a zone full of online peers refuses new ones) 100 times, or the
 * server's log says the zone is full.  All of it takes a few seconds, far
 * less than the 30 s a peer stays online, so nothing can be evicted.
 *
 * bytes per peer = zone size / peers accepted (RegisterPk answered OK).
 * With per_ip 1 every peer also costs an IP blocker entry, as when each
 * client comes from its own address.
 */

#include "udp_reg.h"


/*
 * The peer count of the server's "zone full" warning, or -1: "... is full
 * of online peers (N) ..." or "... it holds N peers, all online ...".
 */
static long
log_full(const char *path)
{
    FILE        *f;
    char         line[2048], *p;
    long         n = -1;
    unsigned     i;
    const char  *marks[] = { "full of online peers (", "it holds " };

    if (path == NULL || (f = fopen(path, "r")) == NULL) {
        return -1;
    }

    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "[warn]") == NULL || strstr(line, "zone") == NULL) {
            continue;
        }

        for (i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
            p = strstr(line, marks[i]);

            if (p) {
                n = strtol(p + strlen(marks[i]), NULL, 10);
                break;
            }
        }
    }

    fclose(f);
    return n;
}


int
main(int argc, char **argv)
{
    int                  c, stopped;
    long                 logged;
    double               zone;
    unsigned             per_ip, port = 0, record = 0;
    uint64_t             seed;
    const char          *errlog;
    reg_t                reg;

    zone = 0;
    per_ip = PEERS_PER_IP_MAX;
    errlog = NULL;

    while ((c = getopt(argc, argv, "p:z:i:e:r:")) != -1) {
        switch (c) {
        case 'p': port = atoi(optarg); break;
        case 'z': zone = atof(optarg); break;
        case 'i': per_ip = strtoul(optarg, NULL, 10); break;
        case 'e': errlog = optarg; break;
        case 'r': record = strtoul(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: zone_memory -p port -z zone_bytes "
                    "[-i peers_per_ip] [-e error.log] [-r record_bytes]\n");
            return 2;
        }
    }

    if (port == 0 || zone < 1024 * 1024 || zone > 1024.0 * 1024 * 1024
        || per_ip < 1 || per_ip > PEERS_PER_IP_MAX)
    {
        fprintf(stderr, "usage: zone_memory -p port -z zone_bytes "
                    "[-i peers_per_ip] [-e error.log] [-r record_bytes]\n");
        return 2;
    }

    watchdog(60);
    raise_nofile();
    setvbuf(stdout, NULL, _IOLBF, 0);

    seed = (uint64_t) time(NULL) * 2654435761u ^ (uint64_t) getpid();

    memset(&reg, 0, sizeof(reg));
    reg.server = loopback("127.0.0.1", port);
    reg.npeers = (unsigned) (zone / 64);        /* more than can fit */
    reg.per_ip = per_ip;
    reg.net = 20;
    reg.window = 64;
    reg.heartbeat = 0;
    reg.keep_open = 0;
    reg.full_stop = 100;
    reg.max_seconds = 25;                       /* < 30 s: all stay online */
    reg.seed = seed;
    reg.first_id = 100000000 + (unsigned) (seed % 800000000);

    stopped = reg_run(&reg);
    logged = log_full(errlog);

    printf("%u peers accepted in %.1f s (%u RegisterPk, %u retries, "
           "%u given up, %u SERVER_ERROR, %u TOO_FREQUENT, "
           "first SERVER_ERROR after %u)\n",
           reg.n_ok, reg.seconds, reg.n_sent, reg.n_retries, reg.n_given_up,
           reg.results[RESULT_SERVER_ERROR], reg.results[RESULT_TOO_FREQUENT],
           reg.first_full);

    if (logged >= 0) {
        printf("error.log: zone full of online peers at %ld peers\n", logged);
    } else {
        printf("error.log: no \"zone is full\" line\n");
    }

    if (!stopped || reg.n_ok == 0) {
        printf("the zone never filled up: no figure\n");
        printf("RESULT zone_memory zone=%.0f peers=%u bytes_per_peer=n/a "
               "record=%u full=0\n", zone, reg.n_ok, record);
        return 1;
    }

    printf("%.0f bytes of zone / %u peers = %.1f bytes per peer",
           zone, reg.n_ok, zone / reg.n_ok);

    if (record) {
        printf(" (one peer record: %u bytes)", record);
    }

    printf("\n");

    printf("RESULT zone_memory zone=%.0f peers=%u bytes_per_peer=%.1f "
           "record=%u full=1 logged=%ld server_errors=%u\n",
           zone, reg.n_ok, zone / reg.n_ok, record, logged,
           reg.results[RESULT_SERVER_ERROR]);

    return 0;
}
