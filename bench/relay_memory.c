/*
 * relay_memory: memory of nginx's workers per idle relay pair, against
 * nginx's own stream proxy_pass with as many idle proxied connections.
 *
 *   relay_memory -r RELAY_PORT -p PROXY_PORT -B BACKEND_PORT
 *                -P relay.pid -Q proxy.pid [-n pairs] [-b batch] [-H hold s]
 *
 * Baseline first: A (from 127.54.x.y) connects to a stream server with
 * `proxy_pass 127.0.0.1:BACKEND_PORT', and the backend (this program)
 * accepts nginx's connection; A sends 64 bytes (its pair number and a
 * filler), the backend checks them and answers 64 bytes, A checks those.
 * Then the relay: B (from 127.55.x.y) connects and sends a framed
 * RequestRelay{uuid}, A (from 127.54.x.y) the same, and the same 64-byte
 * exchange A -> B -> A goes through the pair.  Pairs are made in batches
 * (so that nginx's listen queue of 511 never overflows); every connection
 * stays open.
 *
 * The A sides live in this process, the B sides (or the backend's
 * connections) in a child: 10,000 pairs are 20,000 sockets, and without
 * CAP_SYS_RESOURCE one process cannot have more than the hard
 * RLIMIT_NOFILE (often 20,000 or less).
 *
 * Memory: the sum of VmRSS (and RssAnon, RssShmem, Pss) over the nginx
 * workers (children of the master in the pid file), read from /proc after
 * the instance has been idle, and again `hold' seconds after the last pair
 * was made.  Bytes per pair = growth / pairs made.  Then each pair
 * exchanges 64 bytes once more, to check that it is still there.
 *
 * Socket buffers and other kernel memory are not in RSS: the two setups
 * hold the same number of sockets (relay: 2 per pair in nginx and 2 here;
 * proxy_pass: 2 per connection in nginx, the client's and the backend's
 * here).
 */

#include "relay.h"

#include <sys/wait.h>


#define MSG          64
#define TIMEOUT_MS   5000
#define MAX_FAILED   20
#define MAX_BATCH    400

enum { C_MAKE = 1, C_CHECK, C_CLOSE, C_EXIT };


typedef struct {
    int        cmd;
    int        mode;
    unsigned   from, to;
    unsigned   round;
} cmd_t;


typedef struct {
    unsigned   made;            /* pairs that passed the first exchange */
    unsigned   alive;           /* ... and the second, after the hold */
    unsigned   failed;
    mem_t      before, after;
    int        workers;
    long       each_before[MAX_WORKERS], each_after[MAX_WORKERS];
} stats_t;


static int                 *fds;        /* A's here, B's in the child */
static unsigned             npairs;
static int                  to_child = -1, from_child = -1;
static pid_t                child;


static void
msg_make(uint8_t *m, unsigned i, unsigned dir, unsigned round)
{
    unsigned  k;
    uint64_t  s;

    memcpy(m, "MEM1", 4);
    memcpy(m + 4, &i, 4);
    m[8] = (uint8_t) dir;
    m[9] = (uint8_t) round;
    m[10] = m[11] = 0;

    s = seed ^ ((uint64_t) i << 20 | dir << 8 | round) ^ 0x5bd1e995;
    for (k = 12; k < MSG; k++) {
        m[k] = (uint8_t) (rnd(&s) >> 56);
    }
}


/* Milliseconds left until the deadline, at least 1 if any. */
static int
left_ms(uint64_t deadline)
{
    uint64_t  now = now_ns();

    return now >= deadline ? 0 : (int) ((deadline - now) / 1000000) + 1;
}


enum { S_WAIT = 0, S_OK = 1, S_CLOSED = -1, S_LATE = -2 };


/*
 * MSG bytes from each descriptor list[k] (k < n, -1: skipped) into
 * got + k * MSG, all at once (poll), until the deadline; whatever has
 * arrived by then counts.  state[k]: S_OK, S_CLOSED (the end or an error
 * first), S_LATE (not all in time), S_WAIT (skipped).
 */
static void
collect(const int *list, unsigned n, uint8_t *got, int *state,
    uint64_t deadline)
{
    int             ms, r, last;
    ssize_t         len;
    unsigned        j, k, np;
    static size_t   have[MAX_BATCH];
    static unsigned idx[MAX_BATCH];
    struct pollfd   pfd[MAX_BATCH];

    for (k = 0; k < n; k++) {
        state[k] = list[k] == -1 ? S_CLOSED : S_WAIT;
        have[k] = 0;
    }

    for ( ;; ) {
        np = 0;

        for (k = 0; k < n; k++) {
            if (state[k] == S_WAIT) {
                pfd[np].fd = list[k];
                pfd[np].events = POLLIN;
                pfd[np].revents = 0;
                idx[np++] = k;
            }
        }

        if (np == 0) {
            break;
        }

        ms = left_ms(deadline);
        last = (ms == 0);

        r = poll(pfd, np, ms);

        if (r < 0 && errno != EINTR) {
            die("poll");
        }

        for (j = 0; r > 0 && j < np; j++) {
            if (pfd[j].revents == 0) {
                continue;
            }

            k = idx[j];
            len = recv(list[k], got + k * MSG + have[k], MSG - have[k],
                       MSG_DONTWAIT);

            if (len > 0) {
                have[k] += len;

                if (have[k] == MSG) {
                    state[k] = S_OK;
                }

            } else if (len == 0 || (errno != EAGAIN && errno != EINTR)) {
                state[k] = S_CLOSED;
            }
        }

        if (last) {
            for (k = 0; k < n; k++) {
                if (state[k] == S_WAIT) {
                    state[k] = S_LATE;
                }
            }

            break;
        }
    }

    /* skipped ones: back to "not there" for the caller */
    for (k = 0; k < n; k++) {
        if (list[k] == -1) {
            state[k] = S_WAIT;
        }
    }
}


/* At most 10 lines of complaints per process. */
static int
complain(void)
{
    static int  n;

    return n++ < 10;
}


static const char *
why(int state)
{
    return state == S_OK ? "wrong data" : state == S_LATE ? "nothing in time"
                                                         : "a close or an error";
}


/* A backend connection from nginx before the deadline: its fd, or -1. */
static int
backend_accept(uint64_t deadline)
{
    int            ms;
    struct pollfd  pfd;

    pfd.fd = lfd;
    pfd.events = POLLIN;

    ms = left_ms(deadline);

    if (ms == 0 || poll(&pfd, 1, ms) != 1) {
        errno = EAGAIN;
        return -1;
    }

    return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}


/*
 * Checks the messages of pairs [from, to) that collect() put in got and
 * state (dir 0: A's, at B; 1: B's answer, at A): the pairs whose message
 * is missing or wrong are closed, with a complaint; their number.
 */
static unsigned
check_got(int mode, unsigned from, unsigned to, unsigned round, unsigned dir,
    const uint8_t *got, const int *state)
{
    uint8_t   want[MSG];
    unsigned  i, k, failed = 0;

    for (i = from; i < to; i++) {
        k = i - from;

        if (fds[i] == -1) {
            continue;
        }

        msg_make(want, i, dir, round);

        if (state[k] != S_OK || memcmp(got + k * MSG, want, MSG) != 0) {
            if (complain()) {
                fprintf(stderr, "relay_memory: %s: pair %u: %s got %s\n",
                        mode_name[mode], i, dir ? "A" : "B", why(state[k]));
            }
            close_fd(&fds[i]);
            failed++;
        }
    }

    return failed;
}


/*
 * Message dir (0: A's, 1: B's answer) of round to each open pair of
 * [from, to); a pair it cannot be sent to is closed.  The number of those,
 * and in *sent (if not NULL) the number sent.
 */
static unsigned
send_msgs(unsigned from, unsigned to, unsigned dir, unsigned round,
    unsigned *sent)
{
    uint8_t   m[MSG];
    unsigned  i, failed = 0, ok = 0;

    for (i = from; i < to; i++) {
        if (fds[i] == -1) {
            continue;
        }

        msg_make(m, i, dir, round);

        if (send_full(fds[i], m, MSG) != 0) {
            close_fd(&fds[i]);
            failed++;
            continue;
        }

        ok++;
    }

    if (sent) {
        *sent = ok;
    }

    return failed;
}


/* ------------------------------------------------------------------ */
/* the child: B sides (relay) or the backend's connections (proxy_pass) */

/*
 * Pairs [from, to): receive A's message, check it, answer; proxy_pass
 * first time: accept the backend's connections, known by the pair number
 * they carry.  The number of pairs answered.
 */
static unsigned
b_serve(int mode, unsigned from, unsigned to, unsigned round, int accept)
{
    int             fd;
    uint8_t        *m, want[MSG];
    uint64_t        deadline;
    unsigned        k, n, ok, pair;
    static int      list[MAX_BATCH], state[MAX_BATCH];
    static uint8_t  got[MAX_BATCH * MSG];

    deadline = now_ns() + (uint64_t) TIMEOUT_MS * 1000000;
    n = to - from;

    if (accept) {
        for (k = 0; k < n; k++) {
            fd = backend_accept(deadline);

            if (fd == -1) {
                fprintf(stderr, "relay_memory: proxy_pass: %u of %u "
                        "connections reached the backend\n", k, n);
                break;
            }

            list[k] = fd;
        }

        n = k;
        collect(list, n, got, state, deadline);

        for (k = 0; k < n; k++) {
            m = got + k * MSG;
            memcpy(&pair, m + 4, 4);

            if (state[k] == S_OK) {
                msg_make(want, pair, 0, round);
            }

            if (state[k] != S_OK || pair < from || pair >= to
                || fds[pair] != -1 || memcmp(m, want, MSG) != 0)
            {
                if (complain()) {
                    fprintf(stderr, "relay_memory: proxy_pass: the backend "
                            "got %s\n", why(state[k]));
                }
                close(list[k]);
                continue;
            }

            fds[pair] = list[k];
        }

    } else {
        collect(fds + from, n, got, state, deadline);
        check_got(mode, from, to, round, 0, got, state);
    }

    send_msgs(from, to, 1, round, &ok);
    return ok;
}


static void
b_make(int mode, unsigned from, unsigned to)
{
    size_t               len;
    uint8_t              req[128];
    unsigned             i;
    struct sockaddr_in   src;

    for (i = from; i < to; i++) {
        fds[i] = -1;

        if (mode != M_RELAY) {
            continue;
        }

        len = request_relay(req, 0, i);
        src = src_addr(55, i);
        fds[i] = relay_client(&src, &relay_addr, req, len,
                              "relay_memory: relay: B %u", i);
    }
}


static void
child_loop(int rd, int wr)
{
    cmd_t     c;
    unsigned  i, ok;

    for ( ;; ) {
        if (read(rd, &c, sizeof(c)) != sizeof(c)) {
            _exit(0);                   /* the parent is gone */
        }

        ok = 0;

        switch (c.cmd) {
        case C_MAKE:
            b_make(c.mode, c.from, c.to);
            ok = b_serve(c.mode, c.from, c.to, c.round, c.mode == M_PROXY);
            break;

        case C_CHECK:
            ok = b_serve(c.mode, c.from, c.to, c.round, 0);
            break;

        case C_CLOSE:
            for (i = 0; i < npairs; i++) {
                close_fd(&fds[i]);
            }
            break;

        default:
            _exit(0);
        }

        if (write(wr, &ok, sizeof(ok)) != sizeof(ok)) {
            _exit(1);
        }
    }
}


static void
ask_child(int cmd, int mode, unsigned from, unsigned to, unsigned round)
{
    cmd_t  c;

    c.cmd = cmd;
    c.mode = mode;
    c.from = from;
    c.to = to;
    c.round = round;

    if (write(to_child, &c, sizeof(c)) != sizeof(c)) {
        die("write(child)");
    }
}


static unsigned
child_answer(void)
{
    unsigned  ok;

    if (read(from_child, &ok, sizeof(ok)) != sizeof(ok)) {
        fprintf(stderr, "relay_memory: the child died\n");
        exit(1);
    }

    return ok;
}


/* ------------------------------------------------------------------ */
/* this process: the A sides */

/* Pairs [from, to): A's message out, B's answer back; pairs that failed. */
static unsigned
a_exchange(int mode, unsigned from, unsigned to, unsigned round)
{
    uint64_t        deadline;
    unsigned        failed;
    static int      state[MAX_BATCH];
    static uint8_t  got[MAX_BATCH * MSG];

    failed = send_msgs(from, to, 0, round, NULL);

    /* the child's own deadline, and some time for its answers */
    deadline = now_ns() + (uint64_t) (TIMEOUT_MS + 2000) * 1000000;

    collect(fds + from, to - from, got, state, deadline);

    return failed + check_got(mode, from, to, round, 1, got, state);
}


static void
run_mode(int mode, unsigned batch, unsigned hold, const char *pidfile,
    stats_t *st)
{
    size_t               len;
    uint8_t              req[128];
    unsigned             i, from, to, failed;
    workers_t            w;
    struct sockaddr_in   src;

    find_workers(pidfile, &w);
    st->workers = w.n;

    if (w.n == 0) {
        fprintf(stderr, "relay_memory: no workers for %s\n", pidfile);
        return;
    }

    usleep(500000);
    st->before = workers_mem(&w, st->each_before);

    failed = 0;

    for (from = 0; from < npairs && failed <= MAX_FAILED; from = to) {
        to = from + batch < npairs ? from + batch : npairs;

        ask_child(C_MAKE, mode, from, to, 0);

        for (i = from; i < to; i++) {
            src = src_addr(54, i);

            if (mode == M_RELAY) {
                len = request_relay(req, 0, i);
                fds[i] = relay_client(&src, &relay_addr, req, len,
                                      "relay_memory: relay: A %u", i);
            } else {
                fds[i] = relay_client(&src, &proxy_addr, NULL, 0,
                                      "relay_memory: proxy_pass: A %u", i);
            }

            failed += fds[i] == -1;
        }

        failed += a_exchange(mode, from, to, 0);
        child_answer();
    }

    for (i = 0; i < npairs; i++) {
        st->made += i < from && fds[i] != -1;
    }

    st->failed = failed;

    sleep(hold);
    st->after = workers_mem(&w, st->each_after);

    /* still there? */

    for (i = 0; i < from; i += batch) {
        to = i + batch < from ? i + batch : from;
        ask_child(C_CHECK, mode, i, to, 1);
        a_exchange(mode, i, to, 1);
        child_answer();
    }

    for (i = 0; i < from; i++) {
        st->alive += fds[i] != -1;
        close_fd(&fds[i]);
    }

    ask_child(C_CLOSE, mode, 0, 0, 0);
    child_answer();

    /* the server's side of the closes, before the next mode */
    usleep(500000);
}


static double
per_pair(long before_kb, long after_kb, unsigned pairs)
{
    return pairs ? (after_kb - before_kb) * 1024.0 / pairs : 0;
}


static double
bpp(stats_t *st)
{
    return per_pair(st->before.rss_kb, st->after.rss_kb, st->made);
}


static double
pss_bpp(stats_t *st)
{
    return st->before.pss_kb < 0 || st->after.pss_kb < 0 ? 0
           : per_pair(st->before.pss_kb, st->after.pss_kb, st->made);
}


static void
report(int mode, stats_t *st)
{
    int  i;

    printf("  %-10s %u pairs: VmRSS of %d workers %ld -> %ld kB: "
           "%.0f bytes per pair\n", mode_name[mode], st->made, st->workers,
           st->before.rss_kb, st->after.rss_kb, bpp(st));

    printf("  %-10s   per pair: RssAnon %.0f, RssShmem %.0f, Pss %.0f "
           "bytes; VmRSS kB per worker:", mode_name[mode],
           per_pair(st->before.anon_kb, st->after.anon_kb, st->made),
           per_pair(st->before.shmem_kb, st->after.shmem_kb, st->made),
           pss_bpp(st));

    for (i = 0; i < st->workers; i++) {
        printf(" %ld->%ld", st->each_before[i], st->each_after[i]);
    }

    printf("\n");

    if (st->made != npairs || st->alive != st->made || st->failed) {
        printf("  %-10s PROBLEMS: %u of %u pairs made (%u failures), %u "
               "still working after the hold\n", mode_name[mode], st->made,
               npairs, st->failed, st->alive);
    }
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
    int            down[2], up[2];
    unsigned       batch, hold;
    stats_t        st[2];
    relay_opts_t   o;
    relay_num_t    nums[] = { { 'n', &npairs }, { 'b', &batch },
                              { 'H', &hold }, { 0, NULL } };

    npairs = 10000;
    batch = 100;
    hold = 2;

    if (relay_getopt(argc, argv, "r:p:B:n:b:H:P:Q:", nums, &o) != 0
        || !relay_opts_ok(&o) || o.relay_pid == NULL || o.proxy_pid == NULL
        || npairs < 1 || npairs > 200000 || batch < 1 || batch > MAX_BATCH)
    {
        goto usage;
    }

    if (relay_start(&o, 240, (rlim_t) npairs + 64) != 0) {
        fprintf(stderr, "relay_memory: cannot open %u files (RLIMIT_NOFILE)"
                "\n", npairs + 64);
        return 2;
    }

    fds = calloc(npairs, sizeof(int));
    if (fds == NULL) {
        die("calloc");
    }

    memset(fds, 0xff, npairs * sizeof(int));       /* all -1 */

    if (pipe(down) == -1 || pipe(up) == -1) {
        die("pipe");
    }

    child = fork();

    if (child == -1) {
        die("fork");
    }

    if (child == 0) {
        close(down[1]);
        close(up[0]);
        lfd = backend_listen(o.backend_port);
        child_loop(down[0], up[1]);
        _exit(0);
    }

    close(down[0]);
    close(up[1]);
    to_child = down[1];
    from_child = up[0];

    memset(st, 0, sizeof(st));

    printf("%u idle pairs per mode, made in batches of %u, measured %u s "
           "after the last\n", npairs, batch, hold);

    run_mode(M_PROXY, batch, hold, o.proxy_pid, &st[M_PROXY]);
    report(M_PROXY, &st[M_PROXY]);

    run_mode(M_RELAY, batch, hold, o.relay_pid, &st[M_RELAY]);
    report(M_RELAY, &st[M_RELAY]);

    stop_child();

    printf("RESULT relay_memory pairs=%u relay_made=%u proxy_made=%u "
           "relay_bpp=%.0f proxy_bpp=%.0f ratio=%.2f "
           "relay_pss_bpp=%.0f proxy_pss_bpp=%.0f "
           "relay_alive=%u proxy_alive=%u relay_failed=%u proxy_failed=%u\n",
           npairs, st[M_RELAY].made, st[M_PROXY].made,
           bpp(&st[M_RELAY]), bpp(&st[M_PROXY]),
           bpp(&st[M_PROXY]) > 0 ? bpp(&st[M_RELAY]) / bpp(&st[M_PROXY]) : 0,
           pss_bpp(&st[M_RELAY]), pss_bpp(&st[M_PROXY]),
           st[M_RELAY].alive, st[M_PROXY].alive, st[M_RELAY].failed,
           st[M_PROXY].failed);

    return 0;

usage:

    fprintf(stderr, "usage: relay_memory -r relay_port -p proxy_port "
            "-B backend_port -P relay.pid -Q proxy.pid [-n pairs] "
            "[-b batch] [-H hold seconds]\n");
    return 2;
}
