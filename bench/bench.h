/*
 * Shared by the load generators of bench/: a few hand-encoded protobuf
 * messages of rendezvous.proto (PROTOCOL.md section 3), the TCP frame
 * header (section 2), AddrMangle decoding (section 4), loopback source
 * addresses, blocking TCP clients, clocks, the CPU time of nginx worker
 * processes, percentiles of latencies, and the spread of ratios measured
 * round by round.
 *
 * Everything here talks to 127.0.0.0/8 only.
 */

#ifndef BENCH_H
#define BENCH_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>


/* RendezvousMessage union members used here */
#define RM_REGISTER_PEER           6
#define RM_REGISTER_PEER_RESPONSE  7
#define RM_PUNCH_HOLE_REQUEST      8
#define RM_PUNCH_HOLE              9
#define RM_PUNCH_HOLE_SENT         10
#define RM_PUNCH_HOLE_RESPONSE     11
#define RM_REGISTER_PK             15
#define RM_REGISTER_PK_RESPONSE    16

#define RESULT_OK            0
#define RESULT_UUID_MISMATCH 2
#define RESULT_TOO_FREQUENT  4
#define RESULT_SERVER_ERROR  7

#define PEERS_PER_IP_MAX     25     /* the IP blocker allows ~32 per 60 s */


static inline void
die(const char *what)
{
    perror(what);
    exit(2);
}


static inline uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + ts.tv_nsec;
}


/* xorshift64*: deterministic per seed, fast */
static inline uint64_t
rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}


/* The whole hard limit: a few thousand sockets are open at once. */
static inline void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}


/* A generator never outlives its budget, whatever the server does. */
static void
watchdog_fire(int sig)
{
    static const char msg[] = "bench: watchdog: time budget exceeded\n";

    (void) sig;
    (void) !write(2, msg, sizeof(msg) - 1);
    _exit(3);
}


static inline void
watchdog(unsigned seconds)
{
    signal(SIGALRM, watchdog_fire);
    alarm(seconds);
}


/*
 * Source address number k (0, 1, ...) in 127.<net>.0.0/16 and above:
 * 127.(net + k / 65024).(k / 254 % 256).(k % 254 + 1), never .0 or .255.
 */
static inline struct sockaddr_in
src_addr(unsigned net, unsigned k)
{
    struct sockaddr_in  sin;
    unsigned            hi, r;

    hi = k / (256 * 254);
    r = k % (256 * 254);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl((127u << 24) | ((net + hi) & 0xff) << 16
                                | (r / 254) << 8 | (r % 254 + 1));
    return sin;
}


static inline struct sockaddr_in
loopback(const char *ip, unsigned port)
{
    struct sockaddr_in  sin;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);

    if (inet_pton(AF_INET, ip, &sin.sin_addr) != 1
        || (ntohl(sin.sin_addr.s_addr) >> 24) != 127)
    {
        fprintf(stderr, "bench: %s is not a loopback address\n", ip);
        exit(2);
    }

    return sin;
}


/* A non-blocking UDP socket bound to a source address (port 0: any). */
static inline int
udp_socket(struct sockaddr_in *src)
{
    int  fd;

    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        die("socket(udp)");
    }

    if (bind(fd, (struct sockaddr *) src, sizeof(*src)) == -1) {
        die("bind(udp)");
    }

    return fd;
}


/* ------------------------------------------------------------------ */
/* TCP clients */

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
close_fd(int *fd)
{
    if (*fd != -1) {
        close(*fd);
        *fd = -1;
    }
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


/* ------------------------------------------------------------------ */
/* protobuf, the little that is needed */

static inline uint8_t *
pb_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t) (v | 0x80);
        v >>= 7;
    }

    *p++ = (uint8_t) v;
    return p;
}


static inline uint8_t *
pb_uint(uint8_t *p, unsigned field, uint64_t v)
{
    if (v == 0) {
        return p;                   /* proto3: defaults are not sent */
    }

    p = pb_varint(p, field << 3);
    return pb_varint(p, v);
}


static inline uint8_t *
pb_bytes(uint8_t *p, unsigned field, const void *data, size_t len)
{
    if (len == 0) {
        return p;
    }

    p = pb_varint(p, field << 3 | 2);
    p = pb_varint(p, len);
    memcpy(p, data, len);
    return p + len;
}


static inline uint8_t *
pb_str(uint8_t *p, unsigned field, const char *s)
{
    return pb_bytes(p, field, s, strlen(s));
}


/*
 * A RendezvousMessage whose union member `member' is the message body
 * [body, body + len): the whole message at out, its length returned.
 */
static inline size_t
rm_wrap(uint8_t *out, unsigned member, const uint8_t *body, size_t len)
{
    uint8_t  *p;

    p = pb_varint(out, member << 3 | 2);
    p = pb_varint(p, len);
    memmove(p, body, len);
    return p + len - out;
}


/* One field of a message: its wire type, and value or bytes. */
typedef struct {
    unsigned        field;
    unsigned        wire;
    uint64_t        v;
    const uint8_t  *data;
    size_t          len;
} pb_field_t;


/* The next field from *p (< end): 1, 0 at the end, -1 malformed. */
static inline int
pb_next(const uint8_t **pp, const uint8_t *end, pb_field_t *f)
{
    const uint8_t  *p = *pp;
    uint64_t        key, v;
    unsigned        shift;

    if (p >= end) {
        return 0;
    }

#define PB_VARINT(out)                                                      \
    v = 0; shift = 0;                                                       \
    for ( ;; ) {                                                            \
        if (p >= end || shift > 63) return -1;                              \
        v |= (uint64_t) (*p & 0x7f) << shift;                               \
        if (!(*p++ & 0x80)) break;                                          \
        shift += 7;                                                         \
    }                                                                       \
    out = v

    PB_VARINT(key);

    f->field = (unsigned) (key >> 3);
    f->wire = key & 7;
    f->data = NULL;
    f->len = 0;
    f->v = 0;

    switch (f->wire) {
    case 0:
        PB_VARINT(f->v);
        break;
    case 1:
        if (end - p < 8) return -1;
        p += 8;
        break;
    case 2:
        PB_VARINT(f->len);
        if ((uint64_t) (end - p) < f->len) return -1;
        f->data = p;
        p += f->len;
        break;
    case 5:
        if (end - p < 4) return -1;
        p += 4;
        break;
    default:
        return -1;
    }

#undef PB_VARINT

    *pp = p;
    return 1;
}


/* The (last) occurrence of field in a message: 1 found, 0 not, -1 bad. */
static inline int
pb_get(const uint8_t *p, size_t len, unsigned field, pb_field_t *out)
{
    int             rc, found = 0;
    pb_field_t      f;
    const uint8_t  *end = p + len;

    while ((rc = pb_next(&p, end, &f)) == 1) {
        if (f.field == field) {
            *out = f;
            found = 1;
        }
    }

    return rc < 0 ? -1 : found;
}


/*
 * The union member of a RendezvousMessage: its number (0: none or
 * malformed), and its body in *body, *blen.
 */
static inline unsigned
rm_member(const uint8_t *p, size_t len, const uint8_t **body, size_t *blen)
{
    int             rc;
    unsigned        member = 0;
    pb_field_t      f;
    const uint8_t  *end = p + len;

    *body = NULL;
    *blen = 0;

    while ((rc = pb_next(&p, end, &f)) == 1) {
        if (f.wire == 2) {
            member = f.field;
            *body = f.data;
            *blen = f.len;
        }
    }

    return rc < 0 ? 0 : member;
}


/* RegisterPeer{id, serial} */
static inline size_t
msg_register_peer(uint8_t *out, const char *id, int32_t serial)
{
    uint8_t  b[128], *p;

    p = pb_str(b, 1, id);
    p = pb_uint(p, 2, (uint32_t) serial);
    return rm_wrap(out, RM_REGISTER_PEER, b, p - b);
}


/* RegisterPk{id, uuid, pk} */
static inline size_t
msg_register_pk(uint8_t *out, const char *id, const uint8_t *uuid,
    size_t uuid_len, const uint8_t *pk, size_t pk_len)
{
    uint8_t  b[512], *p;

    p = pb_str(b, 1, id);
    p = pb_bytes(p, 2, uuid, uuid_len);
    p = pb_bytes(p, 3, pk, pk_len);
    return rm_wrap(out, RM_REGISTER_PK, b, p - b);
}


/*
 * Peer number i of a run: a 9-digit id, a 36-character uuid (text form, as
 * the desktop client sends) and a 32-byte key, all derived from seed + i.
 */
typedef struct {
    char      id[16];
    uint8_t   uuid[36];
    uint8_t   pk[32];
} peer_t;


static inline void
make_peer(peer_t *pe, uint64_t seed, unsigned first_id, unsigned i)
{
    static const char  hex[] = "0123456789abcdef";
    uint64_t           s, r;
    unsigned           k;

    snprintf(pe->id, sizeof(pe->id), "%u", first_id + i);

    s = (seed ^ (0x9E3779B97F4A7C15ULL * (i + 1))) | 1;

    for (k = 0; k < 36; k++) {
        if (k == 8 || k == 13 || k == 18 || k == 23) {
            pe->uuid[k] = '-';
            continue;
        }

        pe->uuid[k] = hex[rnd(&s) & 15];
    }

    for (k = 0; k < 32; k += 8) {
        r = rnd(&s);
        memcpy(pe->pk + k, &r, 8);
    }
}


/* ------------------------------------------------------------------ */
/* TCP frames (PROTOCOL.md section 2) */

static inline size_t
frame_header(uint8_t *h, size_t len)
{
    uint32_t  v;
    size_t    n, i;

    if (len <= 0x3f) {
        n = 1;
    } else if (len <= 0x3fff) {
        n = 2;
    } else if (len <= 0x3fffff) {
        n = 3;
    } else {
        n = 4;
    }

    v = (uint32_t) (len << 2) | (uint32_t) (n - 1);

    for (i = 0; i < n; i++) {
        h[i] = (uint8_t) (v >> (8 * i));
    }

    return n;
}


/* One message framed at out: its total length. */
static inline size_t
frame(uint8_t *out, const uint8_t *msg, size_t len)
{
    size_t   n;
    uint8_t  h[4];

    n = frame_header(h, len);
    memmove(out + n, msg, len);         /* msg may be out itself */
    memcpy(out, h, n);
    return n + len;
}


/*
 * A complete frame at the start of buf[0..len): 1 with its payload,
 * 0 incomplete, -1 larger than max.
 */
static inline int
frame_parse(const uint8_t *buf, size_t len, size_t max, const uint8_t **payload,
    size_t *plen, size_t *total)
{
    size_t    n, i;
    uint32_t  v;

    if (len == 0) {
        return 0;
    }

    n = (buf[0] & 3) + 1;

    if (len < n) {
        return 0;
    }

    v = 0;
    for (i = 0; i < n; i++) {
        v |= (uint32_t) buf[i] << (8 * i);
    }

    v >>= 2;

    if (v > max) {
        return -1;
    }

    if (len < n + v) {
        return 0;
    }

    *payload = buf + n;
    *plen = v;
    *total = n + v;
    return 1;
}


/* ------------------------------------------------------------------ */
/* AddrMangle (PROTOCOL.md section 4): IPv4 only here */

static inline int
addr_demangle(const uint8_t *b, size_t n, struct sockaddr_in *out)
{
    int          i;
    uint8_t      pad[16];
    uint32_t     tm, ip;
    __uint128_t  v;

    if (n > 16) {
        return -1;
    }

    memset(pad, 0, sizeof(pad));
    memcpy(pad, b, n);

    v = 0;
    for (i = 15; i >= 0; i--) {
        v = v << 8 | pad[i];
    }

    tm = (uint32_t) (v >> 17);
    ip = (uint32_t) (v >> 49) - tm;

    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t) ((uint32_t) (v & 0xffffff)
                                      - (tm & 0xffff)));
    /* the octets of a little-endian u32, in order */
    out->sin_addr.s_addr = htonl((ip & 0xff) << 24 | (ip >> 8 & 0xff) << 16
                                 | (ip >> 16 & 0xff) << 8 | ip >> 24);
    return 0;
}


/* ------------------------------------------------------------------ */
/* CPU time of nginx's workers (children of the master in pidfile) */

#define MAX_WORKERS 16

typedef struct {
    int       n;
    pid_t     pid[MAX_WORKERS];
} workers_t;


static inline pid_t
read_pidfile(const char *path)
{
    FILE  *f;
    long   pid = 0;

    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }

    if (fscanf(f, "%ld", &pid) != 1) {
        pid = 0;
    }

    fclose(f);
    return (pid_t) pid;
}


/*
 * The fields of /proc/PID/stat after "pid (comm) " (state ppid pgrp ...)
 * into buf: a pointer to them, NULL if the process is gone.
 */
static inline char *
stat_fields(pid_t pid, char *buf, size_t size)
{
    FILE  *f;
    char   path[64], *p;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);

    f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }

    p = fgets(buf, size, f);
    fclose(f);

    if (p == NULL || (p = strrchr(buf, ')')) == NULL) {
        return NULL;
    }

    return p + 2;
}


static inline int
read_stat(pid_t pid, pid_t *ppid, unsigned long long *ticks)
{
    char                *p, buf[1024];
    unsigned long long   ut, st;
    int                  pp;

    p = stat_fields(pid, buf, sizeof(buf));

    /* state ppid ... utime stime (fields 14, 15) */
    if (p == NULL
        || sscanf(p, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                  &pp, &ut, &st) != 3)
    {
        return -1;
    }

    *ppid = pp;
    *ticks = ut + st;
    return 0;
}


static inline void
find_workers(const char *pidfile, workers_t *w)
{
    DIR                 *d;
    pid_t                master, pid, ppid;
    struct dirent       *de;
    unsigned long long   t;

    w->n = 0;

    if (pidfile == NULL || (master = read_pidfile(pidfile)) == 0) {
        return;
    }

    d = opendir("/proc");
    if (d == NULL) {
        return;
    }

    while ((de = readdir(d)) != NULL && w->n < MAX_WORKERS) {
        pid = (pid_t) atoi(de->d_name);

        if (pid > 0 && read_stat(pid, &ppid, &t) == 0 && ppid == master) {
            w->pid[w->n++] = pid;
        }
    }

    closedir(d);
}


/*
 * Seconds of CPU used so far by all workers (clock ticks resolution), and
 * by each in each[] if not NULL.
 */
static inline double
workers_cpu(workers_t *w, double *each)
{
    int                  i;
    pid_t                ppid;
    unsigned long long   t, sum = 0;

    for (i = 0; i < w->n; i++) {
        t = 0;

        if (read_stat(w->pid[i], &ppid, &t) == 0) {
            sum += t;
        }

        if (each) {
            each[i] = (double) t / (double) sysconf(_SC_CLK_TCK);
        }
    }

    return (double) sum / (double) sysconf(_SC_CLK_TCK);
}


/*
 * Seconds of CPU the workers used so far, to the ns (schedstat), else in
 * clock ticks.
 */
static inline double
workers_cpu_ns(workers_t *w)
{
    int      i;
    FILE    *f;
    double   sum;
    char     path[64];
    unsigned long long  ns;

    sum = 0;

    for (i = 0; i < w->n; i++) {
        snprintf(path, sizeof(path), "/proc/%d/schedstat", (int) w->pid[i]);

        f = fopen(path, "r");

        if (f && fscanf(f, "%llu", &ns) == 1) {
            sum += ns / 1e9;
            fclose(f);
            continue;
        }

        if (f) {
            fclose(f);
        }

        return workers_cpu(w, NULL);
    }

    return sum;
}


/*
 * Minor page faults the workers took so far (/proc/PID/stat field 10): a
 * worker maps each page of a shared zone on its first touch of it.
 */
static inline unsigned long long
workers_minflt(workers_t *w)
{
    int                  i;
    char                *p, buf[1024];
    unsigned long long   n, sum;

    sum = 0;

    for (i = 0; i < w->n; i++) {
        p = stat_fields(w->pid[i], buf, sizeof(buf));

        /* state ppid pgrp session tty tpgid flags minflt (field 10) */
        if (p != NULL
            && sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %llu", &n) == 1)
        {
            sum += n;
        }
    }

    return sum;
}


static inline double
self_cpu(void)
{
    struct rusage  ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
           + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}


/* ------------------------------------------------------------------ */
/* latencies in ns: percentiles */

static inline int
cmp_u64(const void *a, const void *b)
{
    uint64_t  x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return x < y ? -1 : x > y;
}


/* The p-quantile (0..1) of a sorted array of n > 0 values. */
static inline uint64_t
pct(const uint64_t *v, size_t n, double p)
{
    size_t  i;

    i = (size_t) (p * (n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}


/* Sorts v[0..n) (n > 0) and prints its p50, p90, p99 and max in us. */
static inline void
print_pct(const char *name, uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(uint64_t), cmp_u64);

    printf("  %-10s p50 %7.1f us  p90 %7.1f us  p99 %7.1f us  "
           "max %8.1f us  (%zu samples)\n", name,
           pct(v, n, 0.50) / 1e3, pct(v, n, 0.90) / 1e3,
           pct(v, n, 0.99) / 1e3, v[n - 1] / 1e3, n);
}


/*
 * The p-quantile of v[0..n), left in its order (a copy is sorted); 0 when
 * n is 0.
 */
static inline uint64_t
pct_of(const uint64_t *v, size_t n, double p)
{
    uint64_t  *copy, r;

    if (n == 0) {
        return 0;
    }

    copy = malloc(n * sizeof(uint64_t));
    if (copy == NULL) {
        die("malloc");
    }

    memcpy(copy, v, n * sizeof(uint64_t));
    qsort(copy, n, sizeof(uint64_t), cmp_u64);
    r = pct(copy, n, p);
    free(copy);

    return r;
}


static inline int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


/*
 * Min, median (the mean of the middle two for an even count) and max of
 * v[0..n) (n > 0; sorted in place) into r[0..2]: how ratios measured
 * round by round spread.
 */
static inline void
spread(double *v, unsigned n, double *r)
{
    qsort(v, n, sizeof(double), cmp_double);

    r[0] = v[0];
    r[1] = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    r[2] = v[n - 1];
}


#endif /* BENCH_H */
