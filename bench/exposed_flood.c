/*
 * bench/exposed's TCP flood: connections to 127.0.0.1 ports in turn, each
 * sending one request and then either resetting at once (-m rst: the
 * WebSocket upgrade + RST attack) or waiting for the server to close it
 * (-m wait: the unticketed RequestRelay flood).
 *
 *   exposed_flood -p PORT [-p PORT...] -n COUNT [-r PER_SECOND] -f FILE
 *                 [-u OFFSET:LEN] [-m rst|wait] [-w WINDOW] [-t MS]
 *                 [-s SOURCE]
 *
 * -f: the request's bytes; -u: that many bytes at that offset are
 * replaced by random hex digits in each connection's copy (a uuid);
 * -r: connections started per second (0: as fast as the window allows);
 * -w: connections in flight at most; -t: how long a "wait" connection
 * waits for the server's close; -s: the source address (127/8), default
 * 127.0.0.1.
 *
 * Prints: RESULT started= connected= connect_failed= sent= closed_by_server=
 * open_at_timeout= seconds= rate= most_in_flight= (connections started and
 * not yet reset or closed, at most)
 */

#include "bench.h"

#include <sys/epoll.h>

#define MAX_PORTS  8

enum { ST_CONNECTING = 1, ST_WAITING };

typedef struct {
    int        state;
    uint64_t   deadline;
} conn_t;


int
main(int argc, char **argv)
{
    int                 ports[MAX_PORTS], nports = 0, opt, rst = 1, ep;
    int                 fd, i, n, err, window = 512, wait_ms = 2000, burst;
    int                 bound = 0, one = 1;
    unsigned long       count = 0, rate = 0;
    unsigned long       started = 0, connected = 0, failed = 0, sent = 0;
    unsigned long       closed = 0, kept = 0, inflight = 0, most = 0;
    size_t              len, uoff = 0, ulen = 0, j;
    char               *file = NULL, buf[4096];
    uint8_t             req[65536], copy[65536];
    uint64_t            t0, now, scanned = 0, seed = 0x9e3779b97f4a7c15ULL;
    conn_t             *conns;
    socklen_t           sl;
    FILE               *f;
    struct linger       lg = { 1, 0 };
    struct epoll_event  ev, evs[1024];
    struct sockaddr_in  sin, src;
    struct rlimit       rl;

    while ((opt = getopt(argc, argv, "p:n:r:f:u:m:w:t:s:")) != -1) {
        switch (opt) {
        case 'p':
            if (nports < MAX_PORTS) {
                ports[nports++] = atoi(optarg);
            }
            break;
        case 'n': count = strtoul(optarg, NULL, 10); break;
        case 'r': rate = strtoul(optarg, NULL, 10); break;
        case 'f': file = optarg; break;
        case 'u':
            uoff = strtoul(optarg, NULL, 10);
            ulen = strchr(optarg, ':') ? strtoul(strchr(optarg, ':') + 1,
                                                 NULL, 10) : 0;
            break;
        case 'm': rst = strcmp(optarg, "wait") != 0; break;
        case 'w': window = atoi(optarg); break;
        case 't': wait_ms = atoi(optarg); break;
        case 's': src = loopback(optarg, 0); bound = 1; break;
        default:
            fprintf(stderr, "usage: see the top of exposed_flood.c\n");
            return 2;
        }
    }

    if (nports == 0 || count == 0 || file == NULL) {
        fprintf(stderr, "exposed_flood: -p, -n and -f are needed\n");
        return 2;
    }

    f = fopen(file, "r");
    if (f == NULL) {
        die(file);
    }
    len = fread(req, 1, sizeof(req), f);
    fclose(f);

    if (uoff + ulen > len) {
        fprintf(stderr, "exposed_flood: -u beyond the request\n");
        return 2;
    }

    raise_nofile();
    watchdog(120);
    signal(SIGPIPE, SIG_IGN);

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0
        && (rlim_t) window + 64 > rl.rlim_cur)
    {
        window = (int) rl.rlim_cur - 64;
    }

    conns = calloc(rl.rlim_cur + 1, sizeof(conn_t));
    ep = epoll_create1(0);
    if (conns == NULL || ep == -1) {
        die("epoll");
    }

    t0 = now_ns();

    while (started < count || inflight > 0) {
        now = now_ns();

        /*
         * start what the rate and the window allow, 64 at a time, so that
         * each connection sends its request as soon as it is connected
         */

        burst = 0;

        while (started < count && inflight < (unsigned long) window
               && burst++ < 64
               && (rate == 0
                   || (now - t0) * rate >= started * 1000000000ULL))
        {
            sin = loopback("127.0.0.1", ports[started % nports]);
            started++;

            fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (fd == -1) {
                failed++;
                continue;
            }

            /* a source address without taking a port before connect() */

            if (bound) {
                setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                           sizeof(one));
            }

            if ((bound
                 && bind(fd, (struct sockaddr *) &src, sizeof(src)) == -1)
                || (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
                    && errno != EINPROGRESS))
            {
                failed++;
                close(fd);
                continue;
            }

            conns[fd].state = ST_CONNECTING;
            conns[fd].deadline = now + (uint64_t) wait_ms * 1000000;
            ev.events = EPOLLOUT;
            ev.data.fd = fd;
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            inflight++;

            if (inflight > most) {
                most = inflight;
            }
        }

        n = epoll_wait(ep, evs, 1024, 1);

        for (i = 0; i < n; i++) {
            fd = evs[i].data.fd;

            if (conns[fd].state == ST_CONNECTING) {
                err = 0;
                sl = sizeof(err);
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl);

                if (err != 0) {
                    failed++;
                    goto done;
                }

                connected++;
                memcpy(copy, req, len);
                for (j = 0; j < ulen; j++) {
                    copy[uoff + j] = "0123456789abcdef"[rnd(&seed) & 15];
                }

                if (write(fd, copy, len) == (ssize_t) len) {
                    sent++;
                }

                if (rst) {
                    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
                    goto done;
                }

                conns[fd].state = ST_WAITING;
                ev.events = EPOLLIN;
                ev.data.fd = fd;
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                continue;
            }

            /* ST_WAITING: anything but data is the server's close */

            if (read(fd, buf, sizeof(buf)) > 0) {
                continue;
            }

            closed++;

        done:

            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            close(fd);
            conns[fd].state = 0;
            inflight--;
        }

        /* connections past their deadline: counted and closed */

        now = now_ns();

        if (inflight > 0 && now - scanned > 100000000) {
            scanned = now;

            for (fd = 0; fd < (int) rl.rlim_cur; fd++) {
                if (conns[fd].state == 0 || conns[fd].deadline > now) {
                    continue;
                }

                if (conns[fd].state == ST_WAITING) {
                    kept++;
                } else {
                    failed++;
                }

                setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
                conns[fd].state = 0;
                inflight--;
            }
        }
    }

    now = now_ns();

    printf("RESULT started=%lu connected=%lu connect_failed=%lu sent=%lu"
           " closed_by_server=%lu open_at_timeout=%lu seconds=%.3f"
           " rate=%.0f most_in_flight=%lu\n", started, connected, failed,
           sent, closed, kept, (now - t0) / 1e9,
           started / ((now - t0) / 1e9), most);

    return 0;
}
