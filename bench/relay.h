/*
 * Shared by the relay load generators of bench/ (relay_throughput.c,
 * relay_pingpong.c, relay_memory.c, relay_ws.c): the two modes, their
 * common options and start-up, the RequestRelay a relay client sends first
 * (framed for TCP, PROTOCOL.md sections 2 and 7; one binary message for
 * WebSocket), relay and proxy_pass clients from loopback source addresses,
 * WebSocket clients (upgrade, masked frames, server frame headers), the
 * generator's own backend listener (for nginx's proxy_pass, the baseline)
 * and its epoll set, the data pattern, and the RSS of nginx's workers.
 *
 * A relay pair:   A --TCP--> relay <--TCP-- B   (both send RequestRelay{uuid})
 *                 A --WS---> relay <--WS--- B   (relay_ws)
 * the baseline:   A --TCP--> nginx proxy_pass --TCP--> backend (here)
 *                 with nginx's default proxy_buffer_size (16k), and, given
 *                 -e, with proxy_buffer_size equal to the relay's buffers
 *
 * Everything here talks to 127.0.0.0/8 only.
 */

#ifndef RELAY_H
#define RELAY_H

#include "bench.h"

#include <stdarg.h>
#include <sys/epoll.h>


/* RendezvousMessage.request_relay (common/rendezvous.proto) */
#define RM_REQUEST_RELAY       18
/* RequestRelay.uuid */
#define REQUEST_RELAY_UUID     2

#define PATTERN_PERIOD         65521    /* a prime: pairs' streams differ */

/*
 * The modes: the relay and its baselines, nginx's proxy_pass with its
 * default buffers and (M_PROXY_EQ, with -e) with buffers as large as the
 * relay's.  Both proxy_pass servers are in one nginx (-Q), with the same
 * backend.
 */
enum { M_PROXY = 0, M_RELAY = 1, M_PROXY_EQ = 2, M_MODES = 3 };

static const char  *mode_name[] __attribute__((unused))
                     = { "proxy_pass", "relay", "proxy_eq" };


/* the generator's options -r, -p, -B (all needed), -e, -P, -Q */
typedef struct {
    unsigned   relay_port;      /* -r: the relay */
    unsigned   proxy_port;      /* -p: nginx's proxy_pass to ... */
    unsigned   backend_port;    /* -B: ... this program */
    unsigned   proxy_eq_port;   /* -e: proxy_pass with equal buffers */
    char      *relay_pid;       /* -P: the relay's nginx.pid */
    char      *proxy_pid;       /* -Q: the proxy_pass nginx.pid */
} relay_opts_t;


static struct sockaddr_in   relay_addr, proxy_addr, proxy_eq_addr;
static int                  lfd = -1;       /* the backend listener */
static uint64_t             seed;           /* of this run's uuids, data */


/* A 36-character uuid (text form, as clients send) for pair i of a run. */
static inline void
relay_uuid(char *out, uint64_t run_seed, unsigned round, unsigned i)
{
    static const char  hex[] = "0123456789abcdef";
    uint64_t           s;
    unsigned           k;

    s = (run_seed ^ (0x9E3779B97F4A7C15ULL * (i + 1))
         ^ (0xC2B2AE3D27D4EB4FULL * (round + 1))) | 1;

    for (k = 0; k < 36; k++) {
        out[k] = (k == 8 || k == 13 || k == 18 || k == 23)
                 ? '-' : hex[rnd(&s) & 15];
    }

    out[36] = '\0';
}


/*
 * RendezvousMessage{request_relay: RequestRelay{uuid}} with the uuid of
 * pair i of that round, unframed (a WebSocket client sends it as one
 * binary message); its length (out: 128 bytes).
 */
static inline size_t
request_relay_msg(uint8_t *out, unsigned round, unsigned i)
{
    char     uuid[40];
    uint8_t  b[128], *p;

    relay_uuid(uuid, seed, round, i);
    p = pb_str(b, REQUEST_RELAY_UUID, uuid);
    return rm_wrap(out, RM_REQUEST_RELAY, b, p - b);
}


/*
 * The first bytes both TCP relay clients of pair i send: the framed
 * RequestRelay of request_relay_msg(); its length (out: 128 bytes).
 */
static inline size_t
request_relay(uint8_t *out, unsigned round, unsigned i)
{
    size_t  len;

    len = request_relay_msg(out, round, i);
    return frame(out, out, len);
}


/*
 * A client of `to' from src, blocking: a relay client that has sent its
 * request req[0..len), or a proxy_pass client (req NULL).  Its fd, or -1
 * after a line "<fmt ...>: <error>" on stderr.
 */
static inline int __attribute__((format(printf, 5, 6)))
relay_client(struct sockaddr_in *src, struct sockaddr_in *to,
    const uint8_t *req, size_t len, const char *fmt, ...)
{
    int      fd, err;
    char     who[128];
    va_list  ap;

    fd = tcp_to(src, to);

    if (fd != -1 && (req == NULL || send_full(fd, req, len) == 0)) {
        return fd;
    }

    err = errno;

    va_start(ap, fmt);
    vsnprintf(who, sizeof(who), fmt, ap);
    va_end(ap);

    fprintf(stderr, "%s: %s\n", who, strerror(err));
    close_fd(&fd);
    return -1;
}


/* ------------------------------------------------------------------ */
/*
 * WebSocket clients (RFC 6455) of `rustdesk_relay websocket;': the
 * HTTP/1.1 upgrade, masked client frames, the server's (unmasked) frame
 * headers.  A relay client's first message is the RequestRelay of
 * request_relay_msg(), one binary message.
 */

#define WS_BINARY       0x2
#define WS_CLOSE        0x8
#define WS_PING         0x9
#define WS_PONG         0xA

/* RFC 6455 section 1.3's example key, and the answer it must get */
#define WS_KEY          "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT       "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define WS_CLIENT_HDR   14      /* the longest client frame header */


/*
 * A client frame's header (FIN set, masked with key[4]) for a payload of
 * len bytes at h (up to WS_CLIENT_HDR bytes): its length.
 */
static inline size_t
ws_client_header(uint8_t *h, unsigned opcode, uint64_t len,
    const uint8_t *key)
{
    size_t  n, i;

    h[0] = (uint8_t) (0x80 | opcode);

    if (len < 126) {
        h[1] = (uint8_t) (0x80 | len);
        n = 2;

    } else if (len < 65536) {
        h[1] = 0x80 | 126;
        h[2] = (uint8_t) (len >> 8);
        h[3] = (uint8_t) len;
        n = 4;

    } else {
        h[1] = 0x80 | 127;
        for (i = 0; i < 8; i++) {
            h[2 + i] = (uint8_t) (len >> (56 - 8 * i));
        }
        n = 10;
    }

    memcpy(h + n, key, 4);
    return n + 4;
}


/*
 * dst[j] = src[j] ^ key[(phase + j) % 4]: masking (and unmasking) of the
 * payload bytes from position `phase' on; dst may be src.
 */
static inline void
ws_mask(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *key,
    size_t phase)
{
    size_t  j;

    for (j = 0; j < len; j++) {
        dst[j] = src[j] ^ key[(phase + j) & 3];
    }
}


/* A whole masked client frame at out: its length (out: len + 14). */
static inline size_t
ws_client_frame(uint8_t *out, unsigned opcode, const uint8_t *payload,
    size_t len, const uint8_t *key)
{
    size_t  n;

    n = ws_client_header(out, opcode, len, key);
    ws_mask(out + n, payload, len, key, 0);
    return n + len;
}


/*
 * A server frame's header at h[0..have): its size once it is all there
 * (*opcode, *fin, *len set), 0 while more bytes are needed, -1 when it is
 * masked or has RSV bits (a server must not send those).
 */
static inline int
ws_server_header(const uint8_t *h, size_t have, unsigned *opcode, int *fin,
    uint64_t *len)
{
    size_t    need, i;
    uint64_t  v;

    if (have < 2) {
        return 0;
    }

    if ((h[0] & 0x70) || (h[1] & 0x80)) {
        return -1;
    }

    v = h[1] & 0x7f;
    need = v == 127 ? 10 : v == 126 ? 4 : 2;

    if (have < need) {
        return 0;
    }

    if (need > 2) {
        v = 0;
        for (i = 2; i < need; i++) {
            v = v << 8 | h[i];
        }
    }

    *opcode = h[0] & 0x0f;
    *fin = !!(h[0] & 0x80);
    *len = v;
    return (int) need;
}


/*
 * The upgrade on a blocking connection to `to': the request (GET, any
 * path), then the answer up to its empty line, which must be a 101 with
 * the right Sec-WebSocket-Accept and nothing after it.  0, or -1 with
 * errno set (EPROTO: a wrong answer).
 */
static inline int
ws_upgrade(int fd, struct sockaddr_in *to)
{
    int       len;
    char      req[256], ans[1024], *end;
    size_t    got;
    ssize_t   n;

    len = snprintf(req, sizeof(req),
                   "GET /ws/relay HTTP/1.1\r\n"
                   "Host: 127.0.0.1:%u\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Key: " WS_KEY "\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "\r\n", (unsigned) ntohs(to->sin_port));

    if (send_full(fd, req, len) != 0) {
        return -1;
    }

    got = 0;

    for ( ;; ) {
        n = recv(fd, ans + got, sizeof(ans) - 1 - got, 0);

        if (n < 0 && errno == EINTR) {
            continue;
        }

        if (n <= 0) {
            if (n == 0) {
                errno = ECONNRESET;
            }
            return -1;
        }

        got += n;
        ans[got] = '\0';

        end = strstr(ans, "\r\n\r\n");

        if (end) {
            break;
        }

        if (got == sizeof(ans) - 1) {
            errno = EPROTO;
            return -1;
        }
    }

    if (strncmp(ans, "HTTP/1.1 101 ", 13) != 0
        || strcasestr(ans, "\r\nSec-WebSocket-Accept: " WS_ACCEPT "\r\n")
           == NULL
        || (size_t) (end + 4 - ans) != got)
    {
        errno = EPROTO;
        return -1;
    }

    return 0;
}


/*
 * A WebSocket relay client of `to' from src, blocking: upgraded, and its
 * RequestRelay msg[0..len) sent as one masked binary message.  Its fd, or
 * -1 after a line "<fmt ...>: <error>" on stderr.
 */
static inline int __attribute__((format(printf, 6, 7)))
ws_relay_client(struct sockaddr_in *src, struct sockaddr_in *to,
    const uint8_t *msg, size_t len, const uint8_t *key, const char *fmt, ...)
{
    int      fd, err;
    char     who[128];
    size_t   n;
    uint8_t  f[128 + WS_CLIENT_HDR];
    va_list  ap;

    fd = tcp_to(src, to);

    if (fd != -1 && len <= 128 && ws_upgrade(fd, to) == 0) {
        n = ws_client_frame(f, WS_BINARY, msg, len, key);

        if (send_full(fd, f, n) == 0) {
            return fd;
        }
    }

    err = errno;

    va_start(ap, fmt);
    vsnprintf(who, sizeof(who), fmt, ap);
    va_end(ap);

    fprintf(stderr, "%s: %s\n", who, strerror(err));
    close_fd(&fd);
    return -1;
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


/*
 * epoll: an event's data is the descriptor's type (the generator's own
 * numbers) and its index in the generator's table.
 */

static inline void
ep_add(int ep, int fd, uint32_t events, unsigned type, unsigned idx)
{
    struct epoll_event  ev;

    ev.events = events;
    ev.data.u64 = (uint64_t) type << 32 | idx;

    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
        die("epoll_ctl(add)");
    }
}


static inline void
ep_mod(int ep, int fd, uint32_t events, unsigned type, unsigned idx)
{
    struct epoll_event  ev;

    ev.events = events;
    ev.data.u64 = (uint64_t) type << 32 | idx;

    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}


/*
 * The epoll set of one mode's run: for either proxy_pass, with the backend
 * listener as type listen_type.
 */
static inline int
mode_epoll(int mode, unsigned listen_type)
{
    int  ep;

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1) {
        die("epoll_create1");
    }

    if (mode != M_RELAY) {
        ep_add(ep, lfd, EPOLLIN, listen_type, 0);
    }

    return ep;
}


/*
 * The end of a mode's run, once the generator has closed its connections:
 * closes the epoll set, and any backend connection accepted after the end
 * (not ours to keep).
 */
static inline void
mode_epoll_close(int ep, int mode)
{
    int  fd;

    if (mode != M_RELAY) {
        epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);

        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) != -1) {
            close(fd);
        }
    }

    close(ep);
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


/* One of a generator's own options: -c N, a number into *v. */
typedef struct {
    int        c;
    unsigned  *v;
} relay_num_t;


/*
 * The options (getopt's optstring) into o, and the generator's own
 * numbers (nums, up to c == 0) into their variables: 0, or -1 on an
 * unknown option.
 */
static inline int
relay_getopt(int argc, char **argv, const char *optstring,
    const relay_num_t *nums, relay_opts_t *o)
{
    int                 c;
    const relay_num_t  *n;

    memset(o, 0, sizeof(*o));

    while ((c = getopt(argc, argv, optstring)) != -1) {
        switch (c) {
        case 'r': o->relay_port = atoi(optarg); continue;
        case 'p': o->proxy_port = atoi(optarg); continue;
        case 'B': o->backend_port = atoi(optarg); continue;
        case 'e': o->proxy_eq_port = atoi(optarg); continue;
        case 'P': o->relay_pid = optarg; continue;
        case 'Q': o->proxy_pid = optarg; continue;
        }

        for (n = nums; n->c != 0 && n->c != c; n++) { /* void */ }

        if (n->c == 0) {
            return -1;
        }

        *n->v = atoi(optarg);
    }

    return 0;
}


/* -r, -p and -B given */
static inline int
relay_opts_ok(relay_opts_t *o)
{
    return o->relay_port && o->proxy_port && o->backend_port;
}


/*
 * The modes a generator runs, in their order within a round: proxy_pass,
 * proxy_pass with equal buffers (with -e), the relay.  Their number.
 */
static inline unsigned
relay_modes(relay_opts_t *o, int *modes)
{
    unsigned  n = 0;

    modes[n++] = M_PROXY;

    if (o->proxy_eq_port) {
        modes[n++] = M_PROXY_EQ;
    }

    modes[n++] = M_RELAY;
    return n;
}


/* Where A connects in a mode. */
static inline struct sockaddr_in *
mode_addr(int mode)
{
    return mode == M_RELAY ? &relay_addr
           : mode == M_PROXY_EQ ? &proxy_eq_addr : &proxy_addr;
}


/*
 * A generator's start: a watchdog of `seconds', stdout by lines, no
 * SIGPIPE, `files' descriptors, the addresses of the relay and of
 * proxy_pass, the seed.  0, or -1 when the files cannot be had.
 */
static inline int
relay_start(relay_opts_t *o, unsigned seconds, rlim_t files)
{
    watchdog(seconds);
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    if (nofile_at_least(files) != 0) {
        return -1;
    }

    relay_addr = loopback("127.0.0.1", o->relay_port);
    proxy_addr = loopback("127.0.0.1", o->proxy_port);

    if (o->proxy_eq_port) {
        proxy_eq_addr = loopback("127.0.0.1", o->proxy_eq_port);
    }

    seed = (uint64_t) time(NULL) * 2654435761u ^ (uint64_t) getpid() << 20;
    return 0;
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


#endif /* RELAY_H */
