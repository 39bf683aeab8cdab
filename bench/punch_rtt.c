/*
 * punch_rtt: the round trip of a punch-hole request, as A sees it, against
 * a TCP round trip to nginx's own "return" as the baseline.
 *
 *   punch_rtt -p RENDEZVOUS_PORT -b BASELINE_PORT -k id_ed25519.pub [-n flows]
 *             [-a As] [-B Bs]
 *
 * A flow (PROTOCOL.md section 6):
 *   A (TCP from 127.0.0.2, a kept connection)  --PunchHoleRequest-->  server
 *   server  --PunchHole (UDP)-->  B (registered from 127.0.1.x)
 *   B (a new TCP connection from its address)  --PunchHoleSent-->  server
 *   server  --PunchHoleResponse-->  A        (latency: A's send to this)
 * then B waits for the server to close its connection.  The flows are
 * sequential, over a pool of As (round robin) and Bs (each re-registers
 * every 5 s, outside the timed part, to stay online).
 *
 * The main port offers secure TCP (PROTOCOL.md section 8): right after
 * accept the server sends a KeyExchange.  Like a client that does not
 * want encryption, A and B do not answer it: they send their request and
 * stay plain.  A reads the offer when it connects (outside the timed
 * part); B's connection must carry nothing but the offer before its close.
 *
 * Baseline, the same number of times, from the same B addresses: connect
 * to a stream server with `return "x"', send a request of the size of a
 * PunchHoleRequest, read "x" and the close.
 *
 * Prints p50, p99 and max of both in microseconds.
 */

#include "bench.h"


#define MAX_A      64
#define MAX_B      250
#define WAIT_MS    1000
#define VERSION    "1.4.2"

#define RM_KEY_EXCHANGE  25
/* KeyExchange{keys: [signature (64) || box public key (32)]} */
#define OFFER_KEY_LEN    (64 + 32)


typedef struct {
    int                  fd;
    struct sockaddr_in   addr;          /* as the server sees it */
    uint8_t              buf[4096];
    size_t               len;
} a_t;


typedef struct {
    int                  udp;
    struct sockaddr_in   src;
    peer_t               pe;
    uint64_t             last_reg;
} b_t;


static struct sockaddr_in   server, baseline;
static char                 licence[128];
static size_t               offers, bad_offers;     /* KeyExchange at A */


static int
wait_fd(int fd, int ms)
{
    struct pollfd  pfd;

    pfd.fd = fd;
    pfd.events = POLLIN;

    return poll(&pfd, 1, ms) == 1;
}


static int
tcp_connect(struct sockaddr_in *src, struct sockaddr_in *to)
{
    int  fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        die("socket(tcp)");
    }

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (bind(fd, (struct sockaddr *) src, sizeof(*src)) == -1) {
        die("bind(tcp)");
    }

    if (connect(fd, (struct sockaddr *) to, sizeof(*to)) == -1) {
        close(fd);
        return -1;
    }

    return fd;
}


static void
send_all(int fd, const uint8_t *p, size_t len)
{
    ssize_t  n;

    while (len) {
        n = send(fd, p, len, MSG_NOSIGNAL);

        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }

            return;             /* seen as a failure by the reader */
        }

        p += n;
        len -= n;
    }
}


/*
 * The server's KeyExchange offer: KeyExchange{keys: [a signed box public
 * key]}.  Not verified (that takes the server's key and libsodium), only
 * its shape.
 */
static int
is_offer(const uint8_t *msg, size_t len)
{
    size_t           blen;
    pb_field_t       key;
    const uint8_t   *body;

    if (rm_member(msg, len, &body, &blen) != RM_KEY_EXCHANGE) {
        return 0;
    }

    return pb_get(body, blen, 1, &key) == 1 && key.wire == 2
           && key.len == OFFER_KEY_LEN;
}


/* The next frame on A's connection within ms: its length, 0 none. */
static size_t
a_frame(a_t *a, int ms, const uint8_t **msg)
{
    int              rc;
    size_t           plen, total;
    ssize_t          n;
    uint64_t         end;
    const uint8_t   *payload;
    static uint8_t   out[4096];

    end = now_ns() + (uint64_t) ms * 1000000;

    for ( ;; ) {
        rc = frame_parse(a->buf, a->len, sizeof(out), &payload, &plen, &total);

        if (rc < 0) {
            return 0;
        }

        if (rc == 1) {
            memcpy(out, payload, plen);
            memmove(a->buf, a->buf + total, a->len - total);
            a->len -= total;
            *msg = out;
            return plen ? plen : 1;
        }

        if (now_ns() >= end
            || !wait_fd(a->fd, (int) ((end - now_ns()) / 1000000) + 1))
        {
            return 0;
        }

        n = recv(a->fd, a->buf + a->len, sizeof(a->buf) - a->len, 0);

        if (n <= 0) {
            return 0;
        }

        a->len += n;
    }
}


/*
 * A new A's first frame: the KeyExchange offer, counted; anything else (or
 * nothing within WAIT_MS) is counted as a bad offer and A stays plain.
 */
static void
a_offer(a_t *a)
{
    size_t          len;
    const uint8_t  *msg;

    len = a_frame(a, WAIT_MS, &msg);

    if (len > 1 && is_offer(msg, len)) {
        offers++;
    } else {
        bad_offers++;
    }
}


/*
 * The next message on A's connection within ms, past any KeyExchange
 * offer (A does not take it up): its length, 0 none.
 */
static size_t
a_read(a_t *a, int ms, const uint8_t **msg)
{
    size_t    len;
    uint64_t  end;
    int       left;

    end = now_ns() + (uint64_t) ms * 1000000;

    for ( ;; ) {
        left = (int) ((end > now_ns() ? end - now_ns() : 0) / 1000000);

        len = a_frame(a, left, msg);

        if (len > 1 && is_offer(*msg, len)) {
            offers++;
            continue;
        }

        return len;
    }
}


static int
a_open(a_t *a)
{
    socklen_t           len;
    struct sockaddr_in  src;

    src = loopback("127.0.0.2", 0);

    a->fd = tcp_connect(&src, &server);
    a->len = 0;

    if (a->fd == -1) {
        return -1;
    }

    len = sizeof(a->addr);
    getsockname(a->fd, (struct sockaddr *) &a->addr, &len);

    /* the KeyExchange the server offers at once, read here, not timed */
    a_offer(a);

    return 0;
}


/* One request and answer over UDP from B's socket (registration). */
static int
b_udp_exchange(b_t *b, const uint8_t *msg, size_t len, unsigned want,
    pb_field_t *result, unsigned result_field)
{
    int              tries;
    size_t           blen;
    ssize_t          n;
    uint64_t         end;
    const uint8_t   *body;
    uint8_t          buf[2048];

    for (tries = 0; tries < 5; tries++) {
        sendto(b->udp, msg, len, 0, (struct sockaddr *) &server,
               sizeof(server));

        end = now_ns() + 300000000ULL;

        while (now_ns() < end) {
            if (!wait_fd(b->udp, 50)) {
                continue;
            }

            n = recv(b->udp, buf, sizeof(buf), MSG_DONTWAIT);

            if (n > 0 && rm_member(buf, n, &body, &blen) == want) {
                if (pb_get(body, blen, result_field, result) != 1) {
                    result->v = 0;
                }

                return 0;
            }
        }
    }

    return -1;
}


static int
b_register(b_t *b, int with_pk)
{
    size_t      len;
    uint8_t     msg[512];
    pb_field_t  f;

    if (with_pk) {
        len = msg_register_pk(msg, b->pe.id, b->pe.uuid, sizeof(b->pe.uuid),
                              b->pe.pk, sizeof(b->pe.pk));

        if (b_udp_exchange(b, msg, len, RM_REGISTER_PK_RESPONSE, &f, 1) != 0
            || f.v != RESULT_OK)
        {
            fprintf(stderr, "punch_rtt: RegisterPk of %s failed\n", b->pe.id);
            return -1;
        }
    }

    len = msg_register_peer(msg, b->pe.id, 0);

    if (b_udp_exchange(b, msg, len, RM_REGISTER_PEER_RESPONSE, &f, 2) != 0
        || f.v != 0)
    {
        fprintf(stderr, "punch_rtt: RegisterPeer of %s failed\n", b->pe.id);
        return -1;
    }

    b->last_reg = now_ns();
    return 0;
}


/* The punch-hole flow: latency in ns, 0 on failure (why in *why). */
static uint64_t
flow(a_t *a, b_t *b, uint64_t *leg1, const char **why, int *b_open)
{
    int                  bfd;
    size_t               len, blen, mlen;
    ssize_t              n;
    uint64_t             t0, t1, t2;
    socklen_t            slen;
    pb_field_t           sa, relay, nat, pk, fail;
    const uint8_t       *body, *msg;
    struct sockaddr_in   bsrc, bseen, got;
    uint8_t              out[1024], body_buf[1024], *p, dgram[2048];

    *b_open = -1;

    /* A: PunchHoleRequest{id, nat_type, licence_key, version} */

    p = pb_str(body_buf, 1, b->pe.id);
    p = pb_uint(p, 2, 1);                       /* ASYMMETRIC */
    p = pb_str(p, 3, licence);
    p = pb_str(p, 6, VERSION);
    len = rm_wrap(out, RM_PUNCH_HOLE_REQUEST, body_buf, p - body_buf);
    len = frame(out, out, len);

    t0 = now_ns();
    send_all(a->fd, out, len);

    /* B: PunchHole over UDP */

    for ( ;; ) {
        if (!wait_fd(b->udp, WAIT_MS)) {
            *why = "B got no PunchHole";
            return 0;
        }

        n = recv(b->udp, dgram, sizeof(dgram), MSG_DONTWAIT);

        if (n > 0 && rm_member(dgram, n, &body, &blen) == RM_PUNCH_HOLE) {
            break;
        }
    }

    t1 = now_ns();

    if (pb_get(body, blen, 1, &sa) != 1) {
        *why = "PunchHole without socket_addr";
        return 0;
    }

    if (addr_demangle(sa.data, sa.len, &got) != 0
        || got.sin_addr.s_addr != a->addr.sin_addr.s_addr
        || got.sin_port != a->addr.sin_port)
    {
        *why = "PunchHole with another address than A's";
        return 0;
    }

    if (pb_get(body, blen, 2, &relay) != 1) {
        relay.data = NULL;
        relay.len = 0;
    }

    if (pb_get(body, blen, 3, &nat) != 1) {
        nat.v = 0;
    }

    /* B: PunchHoleSent on a new connection from its address */

    p = pb_bytes(body_buf, 1, sa.data, sa.len);
    p = pb_str(p, 2, b->pe.id);
    p = pb_bytes(p, 3, relay.data, relay.len);
    p = pb_uint(p, 4, nat.v);
    p = pb_str(p, 5, VERSION);
    len = rm_wrap(out, RM_PUNCH_HOLE_SENT, body_buf, p - body_buf);
    len = frame(out, out, len);

    bsrc = b->src;
    bsrc.sin_port = 0;

    bfd = tcp_connect(&bsrc, &server);
    if (bfd == -1) {
        *why = "B could not connect";
        return 0;
    }

    slen = sizeof(bseen);
    getsockname(bfd, (struct sockaddr *) &bseen, &slen);

    send_all(bfd, out, len);
    *b_open = bfd;

    /* A: PunchHoleResponse{socket_addr: B's, pk: signed, ...} */

    mlen = a_read(a, WAIT_MS, &msg);
    t2 = now_ns();

    if (mlen == 0) {
        *why = "A got no answer";
        return 0;
    }

    if (rm_member(msg, mlen, &body, &blen) != RM_PUNCH_HOLE_RESPONSE) {
        *why = "A got another message than PunchHoleResponse";
        return 0;
    }

    if (pb_get(body, blen, 3, &fail) == 1 && fail.v != 0) {
        *why = "PunchHoleResponse with a failure";
        return 0;
    }

    if (pb_get(body, blen, 1, &sa) != 1
        || addr_demangle(sa.data, sa.len, &got) != 0
        || got.sin_addr.s_addr != bseen.sin_addr.s_addr
        || got.sin_port != bseen.sin_port)
    {
        *why = "PunchHoleResponse without B's address";
        return 0;
    }

    /* signature (64) || IdPk{1 id, 2 pk} */
    if (pb_get(body, blen, 2, &pk) != 1
        || pk.len != 64 + 2 + strlen(b->pe.id) + 2 + sizeof(b->pe.pk))
    {
        *why = "PunchHoleResponse without a signed key";
        return 0;
    }

    *leg1 = t1 - t0;
    return t2 - t0;
}


/*
 * B's connection: the server closes it after PunchHoleSent, having sent
 * nothing but its KeyExchange offer (B stayed plain).  1 when so.
 */
static int
b_closed(int fd)
{
    int              rc, closed = 0;
    size_t           len, plen, total;
    ssize_t          n;
    uint64_t         end;
    const uint8_t   *payload;
    uint8_t          buf[1024];

    len = 0;
    end = now_ns() + (uint64_t) WAIT_MS * 1000000;

    while (now_ns() < end
           && wait_fd(fd, (int) ((end - now_ns()) / 1000000) + 1))
    {
        n = recv(fd, buf + len, sizeof(buf) - len, 0);

        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            closed = 1;
            break;
        }

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }

        len += n;

        /* complete frames: offers are skipped, anything else is wrong */

        while ((rc = frame_parse(buf, len, sizeof(buf), &payload, &plen,
                                 &total)) == 1)
        {
            if (!is_offer(payload, plen)) {
                close(fd);
                return 0;
            }

            memmove(buf, buf + total, len - total);
            len -= total;
        }

        if (rc < 0 || len == sizeof(buf)) {
            break;
        }
    }

    close(fd);
    return closed && len == 0;
}


static uint64_t
baseline_rtt(b_t *b, const uint8_t *req, size_t len)
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

    fd = tcp_connect(&src, &baseline);
    if (fd == -1) {
        return 0;
    }

    send_all(fd, req, len);

    got = 0;

    while (got < sizeof(buf) && wait_fd(fd, WAIT_MS)) {
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
    int            c, i, na, nb, b_open;
    FILE          *f;
    size_t         len, nr, nbase, nfail, nbase_fail, not_closed;
    uint64_t       seed, *rtt, *leg1, *base, t, l1;
    unsigned       flows, first_id, rdv_port = 0, base_port = 0;
    const char    *keyfile, *why;
    a_t           *as;
    b_t           *bs;
    uint8_t        req[1024], body[1024], *p;
    char           whys[8][64];
    unsigned       nwhy[8], w;

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

    /* the licence key clients present: the server's public key */

    f = fopen(keyfile, "r");
    if (f == NULL || fgets(licence, sizeof(licence), f) == NULL) {
        die(keyfile);
    }

    fclose(f);
    licence[strcspn(licence, "\r\n")] = '\0';

    seed = (uint64_t) time(NULL) * 2654435761u ^ (uint64_t) getpid();
    first_id = 100000000 + (unsigned) (seed % 800000000);

    /* Bs: registered from 127.0.1.1 and up, one each */

    bs = calloc(nb, sizeof(b_t));
    as = calloc(na, sizeof(a_t));
    rtt = calloc(flows, sizeof(uint64_t));
    leg1 = calloc(flows, sizeof(uint64_t));
    base = calloc(flows, sizeof(uint64_t));

    if (bs == NULL || as == NULL || rtt == NULL || leg1 == NULL
        || base == NULL)
    {
        die("calloc");
    }

    for (i = 0; i < nb; i++) {
        bs[i].src = loopback("127.0.1.1", 0);
        bs[i].src.sin_addr.s_addr = htonl(ntohl(bs[i].src.sin_addr.s_addr)
                                          + i);
        bs[i].udp = udp_socket(&bs[i].src);
        make_peer(&bs[i].pe, seed, first_id, i);

        if (b_register(&bs[i], 1) != 0) {
            return 1;
        }
    }

    for (i = 0; i < na; i++) {
        if (a_open(&as[i]) != 0) {
            die("connect (A)");
        }
    }

    printf("%u flows, %d As on kept connections from 127.0.0.2, "
           "%d Bs from 127.0.1.1-%d\n", flows, na, nb, nb);

    /* punch flows */

    nr = nfail = not_closed = 0;
    memset(nwhy, 0, sizeof(nwhy));

    for (w = 0; w < flows; w++) {
        a_t  *a = &as[w % na];
        b_t  *b = &bs[w % nb];

        if (now_ns() - b->last_reg > 5000000000ULL && b_register(b, 0) != 0) {
            return 1;
        }

        why = NULL;
        t = flow(a, b, &l1, &why, &b_open);

        if (t) {
            rtt[nr] = t;
            leg1[nr] = l1;
            nr++;

        } else {
            nfail++;

            for (i = 0; i < 8; i++) {
                if (nwhy[i] == 0) {
                    snprintf(whys[i], sizeof(whys[i]), "%s", why);
                }

                if (strcmp(whys[i], why) == 0) {
                    nwhy[i]++;
                    break;
                }
            }

            /* a fresh A: the old one may still get a late answer */
            close(a->fd);

            if (a_open(a) != 0) {
                die("connect (A)");
            }

            /* and whatever else B was sent */
            while (recv(b->udp, body, sizeof(body), MSG_DONTWAIT) > 0) {
                /* void */
            }
        }

        if (b_open != -1 && !b_closed(b_open)) {
            not_closed++;
        }
    }

    /* baseline: connect, send, read "x" and the close */

    p = pb_str(body, 1, bs[0].pe.id);
    p = pb_uint(p, 2, 1);
    p = pb_str(p, 3, licence);
    p = pb_str(p, 6, VERSION);
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
    for (i = 0; i < 8 && nwhy[i]; i++) {
        printf("%s%s: %u", i ? ", " : " (", whys[i], nwhy[i]);
    }
    printf("%s; B connections not closed by the server (or with more than "
           "the KeyExchange offer): %zu; baseline failures: %zu\n",
           nfail ? ")" : "", not_closed, nbase_fail);
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
