/*
 * Shared by the relay load generators of bench/ (relay_throughput.c,
 * relay_pingpong.c, relay_memory.c): the framed RequestRelay a relay
 * client sends first (PROTOCOL.md sections 2 and 7), TCP sockets from
 * loopback source addresses, the generator's own backend listener (for
 * nginx's proxy_pass, the baseline), and the RSS of nginx's workers.
 *
 * A relay pair:   A --TCP--> relay <--TCP-- B   (both send RequestRelay{uuid})
 * the baseline:   A --TCP--> nginx proxy_pass --TCP--> backend (here)
 *
 * Everything here talks to 127.0.0.0/8 only.
 */

#ifndef RELAY_H
#define RELAY_H

#include "bench.h"

#include <sys/epoll.h>


/* RendezvousMessage.request_relay (common/rendezvous.proto) */
#define RM_REQUEST_RELAY       18
/* RequestRelay.uuid */
#define REQUEST_RELAY_UUID     2

#define PATTERN_PERIOD         65521    /* a prime: pairs' streams differ */


/* A 36-character uuid (text form, as clients send) for pair i of a run. */
static inline void
relay_uuid(char *out, uint64_t seed, unsigned round, unsigned i)
{
    static const char  hex[] = "0123456789abcdef";
    uint64_t           s;
    unsigned           k;

    s = (seed ^ (0x9E3779B97F4A7C15ULL * (i + 1))
         ^ (0xC2B2AE3D27D4EB4FULL * (round + 1))) | 1;

    for (k = 0; k < 36; k++) {
        out[k] = (k == 8 || k == 13 || k == 18 || k == 23)
                 ? '-' : hex[rnd(&s) & 15];
    }

    out[36] = '\0';
}


/*
 * The first bytes a relay client sends: a framed RendezvousMessage
 * {request_relay: RequestRelay{uuid}}; its length.
 */
static inline size_t
request_relay(uint8_t *out, const char *uuid)
{
    uint8_t  b[128], *p;
    size_t   len;

    p = pb_str(b, REQUEST_RELAY_UUID, uuid);
    len = rm_wrap(out, RM_REQUEST_RELAY, b, p - b);
    return frame(out, out, len);
}


static inline void
nonblocking(int fd)
{
    int  fl;

    fl = fcntl(fd, F_GETFL);
    if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1) {
        die("fcntl");
    }
}


static inline void
nodelay(int fd)
{
    int  one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}


static inline void
recv_timeout(int fd, int ms)
{
    struct timeval  tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}


/*
 * A blocking TCP connection from src (its port chosen at connect time, so
 * that many sockets can share a source address) to `to'; -1 on failure.
 */
static inline int
tcp_to(struct sockaddr_in *src, struct sockaddr_in *to)
{
    int  fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        die("socket(tcp)");
    }

    nodelay(fd);

    if (src) {
#ifdef IP_BIND_ADDRESS_NO_PORT
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
        if (bind(fd, (struct sockaddr *) src, sizeof(*src)) == -1) {
            die("bind(tcp)");
        }
    }

    (void) one;

    if (connect(fd, (struct sockaddr *) to, sizeof(*to)) == -1) {
        close(fd);
        return -1;
    }

    return fd;
}


static inline int
send_full(int fd, const void *buf, size_t len)
{
    ssize_t        n;
    const uint8_t *p = buf;

    while (len) {
        n = send(fd, p, len, MSG_NOSIGNAL);

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }

            return -1;
        }

        p += n;
        len -= n;
    }

    return 0;
}


/* Exactly len bytes (blocking socket, with its receive timeout): 0, -1. */
static inline int
recv_full(int fd, void *buf, size_t len)
{
    ssize_t   n;
    uint8_t  *p = buf;

    while (len) {
        n = recv(fd, p, len, 0);

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }

            return -1;
        }

        p += n;
        len -= n;
    }

    return 0;
}


/* The generator's backend for nginx's proxy_pass: 127.0.0.1:port. */
static inline int
backend_listen(unsigned port)
{
    int                 fd, one = 1;
    struct sockaddr_in  sin;

    sin = loopback("127.0.0.1", port);

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        die("socket(backend)");
    }

    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1) {
        die("bind(backend)");
    }

    if (listen(fd, 4096) == -1) {
        die("listen(backend)");
    }

    return fd;
}


/* RLIMIT_NOFILE of at least n (as root beyond the hard limit): 0, -1. */
static inline int
nofile_at_least(rlim_t n)
{
    struct rlimit  rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        return -1;
    }

    if (rl.rlim_cur >= n) {
        return 0;
    }

    if (rl.rlim_max < n) {
        rl.rlim_max = n;           /* needs CAP_SYS_RESOURCE */
    }

    rl.rlim_cur = n;

    if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
        return 0;
    }

    raise_nofile();
    getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur >= n ? 0 : -1;
}


/*
 * The byte pattern of the data streams: pattern[j] for j < PERIOD + extra,
 * periodic, so that any PERIOD-aligned window of up to `extra' bytes can be
 * sent or compared at once.  Pair i's stream starts at offset
 * pattern_start(i).
 */
static inline uint8_t *
pattern_make(size_t extra)
{
    size_t     j;
    uint8_t   *p;
    uint64_t   s = 0x243F6A8885A308D3ULL;

    p = malloc(PATTERN_PERIOD + extra);
    if (p == NULL) {
        die("malloc");
    }

    for (j = 0; j < PATTERN_PERIOD; j++) {
        p[j] = (uint8_t) (rnd(&s) >> 56);
    }

    for (j = PATTERN_PERIOD; j < PATTERN_PERIOD + extra; j++) {
        p[j] = p[j - PATTERN_PERIOD];
    }

    return p;
}


static inline size_t
pattern_start(unsigned i)
{
    return ((size_t) i * 7919 + 13) % PATTERN_PERIOD;
}


/* ------------------------------------------------------------------ */
/* memory of nginx's workers, from /proc/PID/status and smaps_rollup */

typedef struct {
    long    rss_kb;         /* VmRSS */
    long    anon_kb;        /* RssAnon */
    long    shmem_kb;       /* RssShmem */
    long    pss_kb;         /* Pss (smaps_rollup), -1 unknown */
} mem_t;


static inline long
proc_kb(pid_t pid, const char *file, const char *key)
{
    FILE    *f;
    char     path[64], line[256];
    long     v = -1;
    size_t   klen = strlen(key);

    snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);

    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }

    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }

    fclose(f);
    return v;
}


/* The sum over the workers; each worker's VmRSS in each[] if not NULL. */
static inline mem_t
workers_mem(workers_t *w, long *each)
{
    int     i;
    long    v;
    mem_t   m;

    memset(&m, 0, sizeof(m));

    for (i = 0; i < w->n; i++) {
        v = proc_kb(w->pid[i], "status", "VmRSS");
        m.rss_kb += v > 0 ? v : 0;

        if (each) {
            each[i] = v;
        }

        v = proc_kb(w->pid[i], "status", "RssAnon");
        m.anon_kb += v > 0 ? v : 0;

        v = proc_kb(w->pid[i], "status", "RssShmem");
        m.shmem_kb += v > 0 ? v : 0;

        v = proc_kb(w->pid[i], "smaps_rollup", "Pss");

        if (v < 0 || m.pss_kb < 0) {
            m.pss_kb = -1;
        } else {
            m.pss_kb += v;
        }
    }

    return m;
}


/* Percentiles of a sorted array of ns. */
static inline int
cmp_u64(const void *a, const void *b)
{
    uint64_t  x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return x < y ? -1 : x > y;
}


static inline uint64_t
pct(const uint64_t *v, size_t n, double p)
{
    size_t  i;

    i = (size_t) (p * (n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}


#endif /* RELAY_H */
