/*
 * relay_scale: many relay pairs at a remote desktop's pace, the CPU the
 * nginx workers spend on them, against nginx's own stream proxy_pass with
 * as many connections carrying the same traffic.
 *
 *   relay_scale -r RELAY_PORT -p PROXY_PORT -B BACKEND_PORT
 *               [-e PROXY_EQ_PORT] [-n pairs] [-c chunk bytes]
 *               [-d seconds] [-u ramp-up ms] [-b batch]
 *               [-P relay.pid] [-Q proxy.pid]
 *
 * Relay: for each pair, B (from 127.61.x.y) connects to the relay and
 * sends a framed RequestRelay{uuid}, then A (from 127.60.x.y) does the
 * same.  Baseline: A connects to a stream server with `proxy_pass
 * 127.0.0.1:BACKEND_PORT', and this program, the backend, is B.  With -e,
 * a second baseline: the same through PROXY_EQ_PORT, whose
 * proxy_buffer_size is the relay's buffer size (in the same nginx).
 *
 * Set-up: pairs are made `batch' at a time (so that nginx's listen queue
 * never overflows).  A sends a hello (`SCH1', the pair number) right
 * behind its request; B (or the backend, which learns from it which pair
 * a connection is) answers with its own hello once it has A's; the pair
 * is up when A has B's.  Every pair stays connected for the whole mode.
 *
 * Traffic: each side sends one chunk of `chunk' bytes (22,500: 180 kbit/s)
 * a second: pair i's A at i/n of each second, its B half a second later,
 * so that the load is spread evenly over time.  A chunk is a 16-byte header
 * (`SCK1', pair, direction, sequence number) and a slice of the periodic
 * pattern that depends on all three; the receiver checks every byte and
 * times each chunk from the moment it was due to be sent until its last
 * byte arrived (so a sender that falls behind shows too).  After `ramp'
 * ms, the CPU time of the nginx workers (utime + stime of the children of
 * the master in the pid file) is measured for `seconds' seconds: cores =
 * CPU seconds / seconds.  Then the senders stop, every chunk sent must
 * arrive within 10 s, and all connections are closed.
 *
 * The modes run one after the other: proxy_pass, proxy_pass with equal
 * buffers (-e), the relay.  Each needs 2 descriptors per pair here (A and
 * B, or A and the backend's connection), more than one process may open
 * when RLIMIT_NOFILE's hard limit is 20,000 and there is no
 * CAP_SYS_RESOURCE to raise it: the A sides live in this process, the B
 * sides (and the backend listener) in a child, each with n + 128
 * descriptors.  The pairs' state and the figures are in shared memory;
 * the child takes its orders (make B's, start the clock, stop) over a
 * pipe, and both send by the same clock (CLOCK_MONOTONIC).
 *
 * Prints per mode: nginx cores, this program's cores, chunks and MB/s
 * delivered in the measured time against what was due, and the delivery
 * time of the chunks (p50, p99, max); then a RESULT line.
 */

#include "relay.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>


#define MAX_PAIRS    200000
#define HELLO        8
#define HDR          16
#define DRAIN_MS     10000
#define SETUP_MS     10000          /* for a batch's pairs to come up */
#define MS(n)        ((uint64_t) (n) * 1000000)

enum { T_A = 1, T_B, T_PEND, T_LISTEN, T_CMD };

/* the child's orders */
enum { C_MODE = 1, C_MAKE, C_GO, C_STOP, C_EXIT };


typedef struct {
    int        cmd;
    int        mode;
    unsigned   from, to;                    /* C_MAKE */
    uint64_t   t0, t_measure, t_end;        /* C_GO */
} cmd_t;


/* One end of a pair: A, or B (the relay's B, or a backend connection). */
typedef struct {
    int        fd;
    uint32_t   due;             /* chunks due so far */
    uint32_t   sent;            /* chunks sent completely */
    size_t     out;             /* bytes of chunk `sent' sent so far */
    uint32_t   got;             /* chunks received completely */
    size_t     in;              /* bytes of chunk `got' received so far */
    uint8_t    hello[HELLO];
    uint8_t    hello_got;
    uint8_t    bad;             /* wrong bytes: no longer checked */
    uint8_t    closed;          /* the end, or an error */
    uint8_t    pollout;         /* EPOLLOUT armed */
} end_t;


/* In shared memory: A's end is this process's, B's the child's. */
typedef struct {
    end_t      a, b;
    uint8_t    up;              /* A has B's hello */
} pair_t;


/* a backend connection whose hello has not all come yet (proxy_pass) */
typedef struct {
    int        fd;
    uint8_t    hello[HELLO];
    uint8_t    got;
} pend_t;


/* One side's figures of one mode, in shared memory. */
typedef struct {
    unsigned   bad;             /* wrong bytes or hellos */
    unsigned   closed;          /* connections that ended early */
    unsigned   behind;          /* chunks a sender started late */
    uint64_t   due;             /* chunks due in the measured time */
    uint64_t   recvd;           /* chunks received in the measured time */
    double     self;            /* this side's CPU, in the measured time */
    size_t     ndelay;          /* delivery times (ns) in the side's array */
} side_t;


typedef struct {
    unsigned   made;            /* pairs up */
    unsigned   failed;          /* pairs that did not come up */
    unsigned   lost;            /* chunks sent but not received */
    double     secs;
    double     cpu;             /* nginx workers, in the measured time */
    double     worker_cpu[MAX_WORKERS];
    int        workers;
    side_t     side[2];         /* 0: A's (this process), 1: B's (child) */
    uint64_t  *delay;           /* both sides' delivery times, once merged */
    size_t     ndelay;
} stats_t;


static int                  ep = -1;
static int                  side;           /* 0: A's process, 1: B's */
static int                  cur_mode;
static unsigned             npairs;
static size_t               chunk;
static pair_t              *pairs;          /* shared */
static pend_t              *pend;
static unsigned             npend, maxpend;
static uint8_t             *pattern;
static uint64_t             t0, t_measure, t_end;
static int                  measuring, going;
static side_t              *cur;            /* shared */
static uint64_t            *delays[2];      /* shared, per side */
static size_t               maxdelay;
static int                  to_child = -1, from_child = -1;
static int                  cmd_rd = -1, ack_wr = -1;
static pid_t                child;
static side_t              *child_sides;    /* shared: per mode */


static void *
shared(size_t size)
{
    void  *p;

    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED) {
        die("mmap");
    }

    return p;
}


/* When chunk seq of pair i in direction dir (0: A -> B) is due. */
static uint64_t
due_at(unsigned i, unsigned dir, uint32_t seq)
{
    return t0 + (uint64_t) i * 1000000000ULL / npairs
           + (uint64_t) dir * 500000000ULL + (uint64_t) seq * 1000000000ULL;
}


static void
chunk_header(uint8_t *h, unsigned i, unsigned dir, uint32_t seq)
{
    memcpy(h, "SCK1", 4);
    memcpy(h + 4, &i, 4);
    memcpy(h + 8, &dir, 4);
    memcpy(h + 12, &seq, 4);
}


static const uint8_t *
chunk_body(unsigned i, unsigned dir, uint32_t seq)
{
    return pattern + (pattern_start(i) + dir * 4099
                      + (size_t) seq * (chunk - HDR)) % PATTERN_PERIOD;
}


static void
hello_make(uint8_t *h, unsigned i)
{
    memcpy(h, "SCH1", 4);
    memcpy(h + 4, &i, 4);
}


/*
 * Room for a whole chunk in the socket's send buffer, so that a chunk
 * leaves in one send: a loopback socket starts at 16 KiB (tcp_wmem) and
 * grows only with traffic, and a chunk cut in two waits for the
 * receiver's ACK in the middle.
 */
static void
sndbuf(int fd)
{
    int  n = (int) (chunk * 4);

    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &n, sizeof(n));
}


static void
want_out(end_t *e, unsigned type, unsigned i, int on)
{
    if (e->pollout != (unsigned) on) {
        e->pollout = (uint8_t) on;
        ep_mod(ep, e->fd, EPOLLIN | (on ? EPOLLOUT : 0), type, i);
    }
}


static void
end_close(end_t *e, int early)
{
    if (e->fd != -1) {
        if (early && !e->closed) {
            cur->closed++;
        }

        close(e->fd);
        e->fd = -1;
    }

    e->closed = 1;
}


/* Sends what is due on e (pair i, direction dir) as far as it goes. */
static void
end_send(end_t *e, unsigned type, unsigned i, unsigned dir)
{
    ssize_t        n;
    uint8_t        h[HDR];
    struct iovec   iov[2];
    struct msghdr  mh;

    while (e->fd != -1 && e->sent < e->due) {
        chunk_header(h, i, dir, e->sent);

        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = iov;

        if (e->out < HDR) {
            iov[0].iov_base = h + e->out;
            iov[0].iov_len = HDR - e->out;
            iov[1].iov_base = (void *) chunk_body(i, dir, e->sent);
            iov[1].iov_len = chunk - HDR;
            mh.msg_iovlen = 2;

        } else {
            iov[0].iov_base = (void *) (chunk_body(i, dir, e->sent)
                                        + (e->out - HDR));
            iov[0].iov_len = chunk - e->out;
            mh.msg_iovlen = 1;
        }

        n = sendmsg(e->fd, &mh, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                want_out(e, type, i, 1);
                return;
            }

            end_close(e, 1);
            return;
        }

        e->out += n;

        if (e->out < chunk) {
            want_out(e, type, i, 1);
            return;
        }

        e->out = 0;
        e->sent++;

        if (e->sent < e->due) {
            cur->behind++;          /* the next one is due already */
        }
    }

    want_out(e, type, i, 0);
}


/*
 * Bytes buf[0..n) arrived at e, from the other end of pair i, which sends
 * in direction dir: checked against the chunks it sends, each complete
 * chunk timed.
 */
static void
end_chunks(end_t *e, unsigned i, unsigned dir, const uint8_t *buf, size_t n)
{
    size_t     take, hp;
    uint8_t    h[HDR];
    uint64_t   now;

    while (n && !e->bad) {
        take = chunk - e->in < n ? chunk - e->in : n;

        if (e->in < HDR) {
            chunk_header(h, i, dir, e->got);
            hp = HDR - e->in < take ? HDR - e->in : take;

            if (memcmp(buf, h + e->in, hp) != 0) {
                goto bad;
            }

            if (take > hp
                && memcmp(buf + hp, chunk_body(i, dir, e->got), take - hp)
                   != 0)
            {
                goto bad;
            }

        } else if (memcmp(buf, chunk_body(i, dir, e->got) + (e->in - HDR),
                          take) != 0)
        {
            goto bad;
        }

        e->in += take;
        buf += take;
        n -= take;

        if (e->in == chunk) {
            now = now_ns();

            if (cur->ndelay < maxdelay) {
                delays[side][cur->ndelay++] = now - due_at(i, dir, e->got);
            }

            if (measuring) {
                cur->recvd++;
            }

            e->in = 0;
            e->got++;
        }
    }

    return;

bad:

    e->bad = 1;
    cur->bad++;
}


/* e is readable: hello first, then chunks. */
static void
end_read(end_t *e, unsigned type, unsigned i)
{
    size_t           off, take;
    ssize_t          n;
    uint8_t          want[HELLO];
    static uint8_t   buf[256 * 1024];

    for ( ;; ) {
        n = recv(e->fd, buf, sizeof(buf), 0);

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }

        if (n <= 0) {
            end_close(e, 1);
            return;
        }

        off = 0;

        if (e->hello_got < HELLO) {
            take = (size_t) (HELLO - e->hello_got);
            take = take < (size_t) n ? take : (size_t) n;
            memcpy(e->hello + e->hello_got, buf, take);
            e->hello_got += take;
            off = take;

            if (e->hello_got == HELLO) {
                hello_make(want, i);

                if (memcmp(e->hello, want, HELLO) != 0) {
                    e->bad = 1;
                    cur->bad++;

                } else if (type == T_A) {
                    pairs[i].up = 1;

                } else {
                    /* B: A's hello came, B answers with its own */
                    if (send_full(e->fd, want, HELLO) != 0) {
                        end_close(e, 1);
                        return;
                    }
                }
            }
        }

        if (!e->bad && off < (size_t) n) {
            /* A reads B's chunks (direction 1), B reads A's (0) */
            end_chunks(e, i, type == T_A ? 1 : 0, buf + off, n - off);
        }

        if ((size_t) n < sizeof(buf)) {
            return;
        }
    }
}


/* A backend connection from nginx (proxy_pass): pending until its hello. */
static void
pend_accept(void)
{
    int  fd;

    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC))
           != -1)
    {
        nodelay(fd);
        sndbuf(fd);

        if (npend == maxpend) {
            close(fd);
            cur->bad++;
            continue;
        }

        pend[npend].fd = fd;
        pend[npend].got = 0;
        ep_add(ep, fd, EPOLLIN, T_PEND, npend);
        npend++;
    }
}


static void
pend_read(pend_t *p)
{
    ssize_t    n;
    uint32_t   i;
    uint8_t    want[HELLO];
    end_t     *b;

    n = recv(p->fd, p->hello + p->got, HELLO - p->got, 0);

    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }

    if (n <= 0) {
        close(p->fd);
        p->fd = -1;
        cur->closed++;
        return;
    }

    p->got += n;

    if (p->got < HELLO) {
        return;
    }

    memcpy(&i, p->hello + 4, 4);

    if (i < npairs) {
        hello_make(want, i);
    }

    if (i >= npairs || memcmp(p->hello, want, HELLO) != 0
        || pairs[i].b.fd != -1)
    {
        close(p->fd);
        p->fd = -1;
        cur->bad++;
        return;
    }

    /* it is pair i's B from now on */

    b = &pairs[i].b;
    b->fd = p->fd;
    b->hello_got = HELLO;
    memcpy(b->hello, p->hello, HELLO);
    p->fd = -1;

    ep_mod(ep, b->fd, EPOLLIN, T_B, i);

    if (send_full(b->fd, want, HELLO) != 0) {
        end_close(b, 1);
    }
}


static void child_command(void);


/*
 * The events of up to `ns' nanoseconds from now: a timeout finer than
 * epoll_wait's milliseconds, so that a sender wakes when its next chunk
 * is due, neither late nor spinning.
 */
static void
events(uint64_t ns)
{
    int                         n, e;
    end_t                      *en;
    unsigned                    type, idx;
    uint32_t                    ev;
    struct timespec             ts;
    static struct epoll_event   evs[1024];

    ts.tv_sec = (time_t) (ns / 1000000000);
    ts.tv_nsec = (long) (ns % 1000000000);

    n = epoll_pwait2(ep, evs, 1024, &ts, NULL);

    if (n < 0 && errno != EINTR) {
        die("epoll_wait");
    }

    for (e = 0; e < n; e++) {
        type = (unsigned) (evs[e].data.u64 >> 32);
        idx = (unsigned) evs[e].data.u64;
        ev = evs[e].events;

        switch (type) {

        case T_CMD:
            child_command();
            break;

        case T_LISTEN:
            pend_accept();
            break;

        case T_PEND:
            if (pend[idx].fd != -1) {
                pend_read(&pend[idx]);
            }
            break;

        case T_A:
        case T_B:
            en = type == T_A ? &pairs[idx].a : &pairs[idx].b;

            if (en->fd != -1 && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                end_read(en, type, idx);
            }

            if (en->fd != -1 && (ev & EPOLLOUT)) {
                end_send(en, type, idx, type == T_A ? 0 : 1);
            }

            break;
        }
    }
}


/*
 * The clock of this side's direction (0: A's chunks, 1: B's), from t0 to
 * t_end: what is due now is sent, in order of pairs; the nanoseconds
 * until the next is due (at most 10 ms).
 */
static unsigned   cursor;
static uint32_t   sec;
static uint64_t   next_due;

static void
clock_start(void)
{
    cursor = 0;
    sec = 0;
    next_due = due_at(0, side, 0);
    going = 1;
    measuring = 0;
}


static uint64_t
clock_tick(void)
{
    end_t     *e;
    uint64_t   now;
    unsigned   i;

    now = now_ns();

    if (!measuring && now >= t_measure && now < t_end) {
        measuring = 1;
        cur->self = -self_cpu();
    }

    if (now >= t_end) {
        if (measuring) {
            measuring = 0;
            cur->self += self_cpu();
        }

        going = 0;
        return MS(10);
    }

    while (next_due <= now) {
        i = cursor;
        e = side == 0 ? &pairs[i].a : &pairs[i].b;

        if (pairs[i].up && e->fd != -1) {
            e->due++;

            if (measuring) {
                cur->due++;
            }

            end_send(e, side == 0 ? T_A : T_B, i, side);
        }

        if (++cursor == npairs) {
            cursor = 0;
            sec++;
        }

        next_due = due_at(cursor, side, sec);
    }

    now = now_ns();

    return next_due <= now ? 0
           : next_due - now >= MS(10) ? MS(10) : next_due - now;
}


static void
side_reset(int mode)
{
    unsigned  i;

    cur_mode = mode;
    npend = 0;
    going = 0;
    measuring = 0;

    for (i = 0; i < npairs; i++) {
        if (side == 0) {
            memset(&pairs[i].a, 0, sizeof(end_t));
            pairs[i].a.fd = -1;
            pairs[i].up = 0;

        } else {
            memset(&pairs[i].b, 0, sizeof(end_t));
            pairs[i].b.fd = -1;
        }
    }
}


/* This side's connections closed, its epoll set too. */
static void
side_close(void)
{
    unsigned  i;

    for (i = 0; i < npairs; i++) {
        end_close(side == 0 ? &pairs[i].a : &pairs[i].b, 0);
    }

    for (i = 0; i < npend; i++) {
        if (pend[i].fd != -1) {
            close(pend[i].fd);
            pend[i].fd = -1;
        }
    }
}


/* ------------------------------------------------------------------ */
/* the child: B sides (relay) or the backend's connections (proxy_pass) */

static void
ack(void)
{
    char  c = 'k';

    if (write(ack_wr, &c, 1) != 1) {
        _exit(1);
    }
}


static void
b_make(unsigned from, unsigned to)
{
    int                  fd;
    size_t               len;
    uint8_t              req[128];
    unsigned             i;
    struct sockaddr_in   b;

    for (i = from; i < to; i++) {
        len = request_relay(req, 0, i);
        b = src_addr(61, i);

        fd = relay_client(&b, &relay_addr, req, len,
                          "relay_scale: relay: B %u", i);
        if (fd == -1) {
            continue;
        }

        nonblocking(fd);
        sndbuf(fd);
        pairs[i].b.fd = fd;
        ep_add(ep, fd, EPOLLIN, T_B, i);
    }
}


static void
child_command(void)
{
    cmd_t  c;

    if (read(cmd_rd, &c, sizeof(c)) != sizeof(c)) {
        _exit(0);                       /* the parent is gone */
    }

    switch (c.cmd) {

    case C_MODE:
        if (ep != -1) {
            side_close();
            epoll_ctl(ep, EPOLL_CTL_DEL, cmd_rd, NULL);
            mode_epoll_close(ep, cur_mode);
        }

        side_reset(c.mode);
        cur = &child_sides[c.mode];
        memset(cur, 0, sizeof(side_t));
        ep = mode_epoll(c.mode, T_LISTEN);
        ep_add(ep, cmd_rd, EPOLLIN, T_CMD, 0);
        break;

    case C_MAKE:
        b_make(c.from, c.to);
        break;

    case C_GO:
        t0 = c.t0;
        t_measure = c.t_measure;
        t_end = c.t_end;
        clock_start();
        break;

    case C_STOP:
        going = 0;
        side_close();
        break;

    default:
        _exit(0);
    }

    ack();
}


static void
child_loop(void)
{
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1) {
        die("epoll_create1");
    }

    ep_add(ep, cmd_rd, EPOLLIN, T_CMD, 0);
    cur_mode = M_RELAY;                 /* no listener in this set */

    for ( ;; ) {
        events(going ? clock_tick() : MS(100));
    }
}


/* ------------------------------------------------------------------ */
/* this process: the A sides */

static void
order(int cmd, int mode, unsigned from, unsigned to)
{
    char   c;
    cmd_t  o;

    memset(&o, 0, sizeof(o));
    o.cmd = cmd;
    o.mode = mode;
    o.from = from;
    o.to = to;
    o.t0 = t0;
    o.t_measure = t_measure;
    o.t_end = t_end;

    if (write(to_child, &o, sizeof(o)) != sizeof(o)
        || read(from_child, &c, 1) != 1)
    {
        fprintf(stderr, "relay_scale: the child died\n");
        exit(1);
    }
}


/* Makes pairs [from, to) and waits for them to come up. */
static void
make_batch(int mode, unsigned from, unsigned to)
{
    int                  fd;
    size_t               len;
    uint8_t              req[128 + HELLO];
    uint64_t             deadline;
    unsigned             i, up;
    struct sockaddr_in   a;

    if (mode == M_RELAY) {
        order(C_MAKE, mode, from, to);      /* the B's first */
    }

    for (i = from; i < to; i++) {
        a = src_addr(60, i);
        len = mode == M_RELAY ? request_relay(req, 0, i) : 0;

        /* A: its request (relay) and its hello in one write */
        hello_make(req + len, i);

        fd = relay_client(&a, mode_addr(mode), req, len + HELLO,
                          "relay_scale: %s: A %u", mode_name[mode], i);
        if (fd == -1) {
            continue;
        }

        nonblocking(fd);
        sndbuf(fd);
        pairs[i].a.fd = fd;
        ep_add(ep, fd, EPOLLIN, T_A, i);
    }

    deadline = now_ns() + (uint64_t) SETUP_MS * 1000000;

    for ( ;; ) {
        for (up = 0, i = from; i < to; i++) {
            up += pairs[i].up;
        }

        if (up == to - from || now_ns() >= deadline) {
            break;
        }

        events(MS(10));
    }
}


/* Every chunk sent has arrived (or the other end is gone). */
static int
all_arrived(void)
{
    unsigned  i;
    pair_t   *p;

    for (i = 0; i < npairs; i++) {
        p = &pairs[i];

        if (!p->up) {
            continue;
        }

        if ((p->a.fd != -1 && !p->a.bad && p->b.fd != -1 && !p->b.bad
             && (p->a.sent < p->a.due || p->b.got < p->a.due
                 || p->b.sent < p->b.due || p->a.got < p->b.due)))
        {
            return 0;
        }
    }

    return 1;
}


static void
run_mode(int mode, unsigned batch, unsigned seconds, unsigned ramp_ms,
    const char *pidfile, stats_t *st, side_t *cs)
{
    int        k;
    double     cpu0, each0[MAX_WORKERS];
    uint64_t   now, t_drain, start, t_cpu0;
    unsigned   i, from, to;
    pair_t    *p;
    workers_t  w;

    side_reset(mode);
    cur = &st->side[0];

    /* the child's side: its figures for this mode where it keeps them */
    order(C_MODE, mode, 0, 0);

    find_workers(pidfile, &w);
    st->workers = w.n;

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1) {
        die("epoll_create1");
    }

    /* set-up */

    start = now_ns();

    for (from = 0; from < npairs; from = to) {
        to = from + batch < npairs ? from + batch : npairs;
        make_batch(mode, from, to);
    }

    for (i = 0; i < npairs; i++) {
        if (pairs[i].up && pairs[i].a.fd != -1 && pairs[i].b.fd != -1) {
            st->made++;
        } else {
            st->failed++;
        }
    }

    printf("  %-10s %u pairs up in %.1f s", mode_name[mode], st->made,
           (now_ns() - start) / 1e9);

    if (st->failed) {
        printf(", %u not", st->failed);
    }

    printf("\n");

    /* traffic: the schedule from t0 on, measured after the ramp-up */

    t0 = now_ns() + 20000000;
    t_measure = t0 + (uint64_t) ramp_ms * 1000000;
    t_end = t_measure + (uint64_t) seconds * 1000000000;

    order(C_GO, mode, 0, 0);
    clock_start();

    cpu0 = 0;
    t_cpu0 = 0;
    memset(each0, 0, sizeof(each0));

    while (going) {
        if (t_cpu0 == 0 && now_ns() >= t_measure) {
            cpu0 = workers_cpu(&w, each0);
            t_cpu0 = now_ns();
        }

        events(clock_tick());
    }

    now = now_ns();
    st->secs = t_cpu0 ? (now - t_cpu0) / 1e9 : 0;
    st->cpu = workers_cpu(&w, st->worker_cpu) - cpu0;

    for (k = 0; k < w.n; k++) {
        st->worker_cpu[k] -= each0[k];
    }

    /* every chunk sent arrives; the child keeps serving its side */

    t_drain = now_ns() + (uint64_t) DRAIN_MS * 1000000;

    while (!all_arrived() && now_ns() < t_drain) {
        events(MS(10));
    }

    for (i = 0; i < npairs; i++) {
        p = &pairs[i];

        if (p->up && !p->a.bad && !p->b.bad) {
            st->lost += (p->a.due - p->b.got) + (p->b.due - p->a.got);
        }
    }

    /* the end: the child closes its side, this process A's */

    order(C_STOP, mode, 0, 0);
    side_close();
    close(ep);
    ep = -1;

    st->side[1] = *cs;

    /* both sides' delivery times, for the percentiles */

    st->ndelay = st->side[0].ndelay + st->side[1].ndelay;
    st->delay = malloc((st->ndelay + 1) * sizeof(uint64_t));

    if (st->delay == NULL) {
        die("malloc");
    }

    memcpy(st->delay, delays[0], st->side[0].ndelay * sizeof(uint64_t));
    memcpy(st->delay + st->side[0].ndelay, delays[1],
           st->side[1].ndelay * sizeof(uint64_t));

    /* the server's side of the closes, before the next mode */
    usleep(500000);
}


static double
self_cores(stats_t *st)
{
    return st->secs > 0 ? (st->side[0].self + st->side[1].self) / st->secs
                        : 0;
}


static double
per_s(stats_t *st, uint64_t v)
{
    return st->secs > 0 ? v / st->secs : 0;
}


static unsigned
problems(stats_t *st)
{
    return st->failed + st->lost + st->side[0].bad + st->side[1].bad
           + st->side[0].closed + st->side[1].closed;
}


static void
report(int mode, stats_t *st)
{
    int       k;
    uint64_t  recvd, due;

    recvd = st->side[0].recvd + st->side[1].recvd;
    due = st->side[0].due + st->side[1].due;

    printf("  %-10s nginx workers %.3f cores (busy", mode_name[mode],
           st->secs > 0 ? st->cpu / st->secs : 0);

    for (k = 0; k < st->workers; k++) {
        printf(" %.0f%%", st->secs > 0 ? st->worker_cpu[k] * 100 / st->secs
                                       : 0);
    }

    printf("), this program %.3f cores; %.0f chunks/s delivered of %.0f "
           "due, %.1f MB/s\n", self_cores(st), per_s(st, recvd),
           per_s(st, due), per_s(st, recvd) * chunk / 1e6);

    if (st->ndelay) {
        print_pct("  delivery", st->delay, st->ndelay);
    }

    if (problems(st)) {
        printf("  %-10s PROBLEMS: %u of %u pairs up; wrong bytes or hellos "
               "%u; connections ended early %u; chunks sent and not "
               "received within %d s %u\n", mode_name[mode], st->made,
               npairs, st->side[0].bad + st->side[1].bad,
               st->side[0].closed + st->side[1].closed, DRAIN_MS / 1000,
               st->lost);
    }

    if (st->side[0].behind + st->side[1].behind) {
        printf("  %-10s %u chunks started late (the one before was not all "
               "sent yet)\n", mode_name[mode],
               st->side[0].behind + st->side[1].behind);
    }
}


static double
cores(stats_t *st)
{
    return st->secs > 0 ? st->cpu / st->secs : 0;
}


static double
delay_pct(stats_t *st, double p)
{
    return st->ndelay ? pct(st->delay, st->ndelay, p) / 1e6 : 0;
}


static uint64_t
due_all(stats_t *st)
{
    return st->side[0].due + st->side[1].due;
}


static uint64_t
recvd_all(stats_t *st)
{
    return st->side[0].recvd + st->side[1].recvd;
}


static unsigned
behind(stats_t *st)
{
    return st->side[0].behind + st->side[1].behind;
}


static void
stop_child(void)
{
    if (child > 0) {
        close(to_child);
        waitpid(child, NULL, 0);
        child = 0;
    }
}


int
main(int argc, char **argv)
{
    int            modes[M_MODES], down[2], up[2];
    unsigned       batch, seconds, ramp_ms, m, nmodes, chunk_arg;
    stats_t        st[M_MODES];
    relay_opts_t   o;
    relay_num_t    nums[] = { { 'n', &npairs }, { 'c', &chunk_arg },
                              { 'd', &seconds }, { 'u', &ramp_ms },
                              { 'b', &batch }, { 0, NULL } };

    npairs = 10000;
    chunk_arg = 22500;
    seconds = 10;
    ramp_ms = 2000;
    batch = 100;

    if (relay_getopt(argc, argv, "r:p:B:e:n:c:d:u:b:P:Q:", nums, &o) != 0
        || !relay_opts_ok(&o) || o.relay_pid == NULL || o.proxy_pid == NULL
        || npairs < 1 || npairs > MAX_PAIRS || chunk_arg < HDR + 1
        || chunk_arg > 1024 * 1024 || seconds < 1 || seconds > 600
        || ramp_ms > 60000 || batch < 1 || batch > 400)
    {
        goto usage;
    }

    chunk = chunk_arg;
    nmodes = relay_modes(&o, modes);

    /* each process holds one end of each pair */
    if (relay_start(&o, nmodes * (seconds + ramp_ms / 1000 + DRAIN_MS / 1000
                                  + 30 + npairs / batch * SETUP_MS / 1000)
                        + 30,
                    (rlim_t) npairs + 128) != 0)
    {
        fprintf(stderr, "relay_scale: cannot open %u files (RLIMIT_NOFILE)"
                "\n", npairs + 128);
        return 2;
    }

    pattern = pattern_make(chunk);

    pairs = shared((size_t) npairs * sizeof(pair_t));
    child_sides = shared(M_MODES * sizeof(side_t));
    maxdelay = (size_t) npairs * (seconds + ramp_ms / 1000 + 3);
    delays[0] = shared(maxdelay * sizeof(uint64_t));
    delays[1] = shared(maxdelay * sizeof(uint64_t));

    if (pipe(down) == -1 || pipe(up) == -1) {
        die("pipe");
    }

    child = fork();

    if (child == -1) {
        die("fork");
    }

    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        watchdog(nmodes * (seconds + ramp_ms / 1000 + DRAIN_MS / 1000 + 30
                           + npairs / batch * SETUP_MS / 1000) + 60);
        close(down[1]);
        close(up[0]);
        cmd_rd = down[0];
        ack_wr = up[1];
        side = 1;
        maxpend = npairs + 64;
        pend = calloc(maxpend, sizeof(pend_t));
        if (pend == NULL) {
            die("calloc");
        }
        cur = child_sides;              /* per mode from C_MODE on */
        lfd = backend_listen(o.backend_port);
        nonblocking(lfd);
        child_loop();
        _exit(0);
    }

    close(down[0]);
    close(up[1]);
    to_child = down[1];
    from_child = up[0];
    side = 0;

    memset(st, 0, sizeof(st));

    printf("%u pairs, one %zu-byte chunk a second each way (%.0f kbit/s "
           "per pair and direction), %u s measured after %u ms; pairs made "
           "%u at a time%s\n", npairs, chunk, chunk * 8 / 1e3, seconds,
           ramp_ms, batch,
           o.proxy_eq_port ? "; proxy_eq: proxy_pass with "
                             "proxy_buffer_size = the relay's buffers" : "");

    for (m = 0; m < nmodes; m++) {
        run_mode(modes[m], batch, seconds, ramp_ms,
                 modes[m] == M_RELAY ? o.relay_pid : o.proxy_pid,
                 &st[modes[m]], &child_sides[modes[m]]);
        report(modes[m], &st[modes[m]]);
    }

    stop_child();

    printf("RESULT relay_scale pairs=%u chunk=%zu seconds=%u "
           "relay_made=%u proxy_made=%u "
           "relay_cores=%.3f proxy_cores=%.3f ratio=%.2f "
           "relay_delay_p50_ms=%.2f relay_delay_p99_ms=%.2f "
           "proxy_delay_p50_ms=%.2f proxy_delay_p99_ms=%.2f "
           "relay_chunks_per_s=%.0f proxy_chunks_per_s=%.0f due_per_s=%.0f "
           "relay_behind=%u proxy_behind=%u "
           "relay_problems=%u proxy_problems=%u",
           npairs, chunk, seconds, st[M_RELAY].made, st[M_PROXY].made,
           cores(&st[M_RELAY]), cores(&st[M_PROXY]),
           cores(&st[M_PROXY]) > 0
           ? cores(&st[M_RELAY]) / cores(&st[M_PROXY]) : 0,
           delay_pct(&st[M_RELAY], 0.5), delay_pct(&st[M_RELAY], 0.99),
           delay_pct(&st[M_PROXY], 0.5), delay_pct(&st[M_PROXY], 0.99),
           per_s(&st[M_RELAY], recvd_all(&st[M_RELAY])),
           per_s(&st[M_PROXY], recvd_all(&st[M_PROXY])),
           per_s(&st[M_RELAY], due_all(&st[M_RELAY])),
           behind(&st[M_RELAY]), behind(&st[M_PROXY]),
           problems(&st[M_RELAY]), problems(&st[M_PROXY]));

    if (o.proxy_eq_port) {
        printf(" proxy_eq_made=%u proxy_eq_cores=%.3f ratio_eq=%.2f "
               "proxy_eq_delay_p50_ms=%.2f proxy_eq_delay_p99_ms=%.2f "
               "proxy_eq_chunks_per_s=%.0f proxy_eq_behind=%u "
               "proxy_eq_problems=%u",
               st[M_PROXY_EQ].made, cores(&st[M_PROXY_EQ]),
               cores(&st[M_PROXY_EQ]) > 0
               ? cores(&st[M_RELAY]) / cores(&st[M_PROXY_EQ]) : 0,
               delay_pct(&st[M_PROXY_EQ], 0.5),
               delay_pct(&st[M_PROXY_EQ], 0.99),
               per_s(&st[M_PROXY_EQ], recvd_all(&st[M_PROXY_EQ])),
               behind(&st[M_PROXY_EQ]), problems(&st[M_PROXY_EQ]));
    }

    printf("\n");

    return 0;

usage:

    fprintf(stderr, "usage: relay_scale -r relay_port -p proxy_port "
            "-B backend_port -P relay.pid -Q proxy.pid [-e proxy_eq_port] "
            "[-n pairs] [-c chunk bytes] [-d seconds] [-u ramp-up ms] "
            "[-b batch]\n");
    return 2;
}
