/*
 * Shared by the generators that make punch-hole flows (punch_rtt.c,
 * tickets.c): the requester A on a kept TCP connection, the peer B
 * registered over UDP, one whole punch-hole flow (PROTOCOL.md section 6),
 * the server's KeyExchange offer on the main port (section 8), the
 * licence key clients present, and the signed key the server gives A.
 *
 * A flow:
 *   A (TCP, a kept connection)  --PunchHoleRequest-->  server
 *   server  --PunchHole (UDP)-->  B (registered from its own address)
 *   B (a new TCP connection from its address)  --PunchHoleSent-->  server
 *   server  --PunchHoleResponse-->  A        (latency: A's send to this)
 * then B waits for the server to close its connection.
 *
 * The main port offers secure TCP: right after accept the server sends a
 * KeyExchange.  Like a client that does not want encryption, A and B do
 * not answer it: they send their request and stay plain.  A reads the
 * offer when it connects (outside any timed part); B's connection must
 * carry nothing but the offer before its close.
 *
 * Each A and B belongs to one server (its `server'): a generator may talk
 * to several nginx at once.  Everything here talks to 127.0.0.0/8 only.
 */

#ifndef PUNCH_H
#define PUNCH_H

#include "bench.h"


#define PUNCH_WAIT_MS    1000
#define PUNCH_VERSION    "1.4.2"

#define RM_KEY_EXCHANGE  25
/* KeyExchange{keys: [signature (64) || box public key (32)]} */
#define OFFER_KEY_LEN    (64 + 32)


typedef struct {
    int                  fd;
    struct sockaddr_in   addr;          /* as the server sees it */
    struct sockaddr_in  *server;
    uint8_t              buf[4096];
    size_t               len;
} punch_a_t;


typedef struct {
    int                  udp;
    struct sockaddr_in   src;
    struct sockaddr_in  *server;
    peer_t               pe;
    uint64_t             last_reg;
} punch_b_t;


static char                 licence[128];
static size_t               offers, bad_offers;     /* KeyExchange at A */


static inline int
wait_fd(int fd, int ms)
{
    struct pollfd  pfd;

    pfd.fd = fd;
    pfd.events = POLLIN;

    return poll(&pfd, 1, ms) == 1;
}


/* The licence key clients present: the server's public key, from its file. */
static inline void
punch_licence(const char *keyfile)
{
    FILE  *f;

    f = fopen(keyfile, "r");
    if (f == NULL || fgets(licence, sizeof(licence), f) == NULL) {
        die(keyfile);
    }

    fclose(f);
    licence[strcspn(licence, "\r\n")] = '\0';
}


/*
 * The server's KeyExchange offer: KeyExchange{keys: [a signed box public
 * key]}.  Not verified (that takes the server's key and libsodium), only
 * its shape.
 */
static inline int
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


/*
 * B's key as the server gives it to A, signed: signature (64) || IdPk{1
 * id, 2 pk}.  1 when the field has that length.
 */
static inline int
signed_pk_ok(pb_field_t *pk, punch_b_t *b)
{
    return pk->wire == 2
           && pk->len == 64 + 2 + strlen(b->pe.id) + 2 + sizeof(b->pe.pk);
}


/* The next frame on A's connection within ms: its length, 0 none. */
static inline size_t
a_frame(punch_a_t *a, int ms, const uint8_t **msg)
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
 * nothing within PUNCH_WAIT_MS) is counted as a bad offer and A stays
 * plain.
 */
static inline void
a_offer(punch_a_t *a)
{
    size_t          len;
    const uint8_t  *msg;

    len = a_frame(a, PUNCH_WAIT_MS, &msg);

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
static inline size_t
a_read(punch_a_t *a, int ms, const uint8_t **msg)
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


/* A's kept connection to its server, from 127.0.0.2; its offer read. */
static inline int
a_open(punch_a_t *a)
{
    socklen_t           len;
    struct sockaddr_in  src;

    src = loopback("127.0.0.2", 0);

    a->fd = tcp_to(&src, a->server);
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
static inline int
b_udp_exchange(punch_b_t *b, const uint8_t *msg, size_t len, unsigned want,
    pb_field_t *result, unsigned result_field)
{
    int              tries;
    size_t           blen;
    ssize_t          n;
    uint64_t         end;
    const uint8_t   *body;
    uint8_t          buf[2048];

    for (tries = 0; tries < 5; tries++) {
        sendto(b->udp, msg, len, 0, (struct sockaddr *) b->server,
               sizeof(*b->server));

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


/* B's RegisterPk (with_pk) and RegisterPeer: 0, or -1 said on stderr. */
static inline int
b_register(punch_b_t *b, int with_pk)
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
            fprintf(stderr, "bench: RegisterPk of %s failed\n", b->pe.id);
            return -1;
        }
    }

    len = msg_register_peer(msg, b->pe.id, 0);

    if (b_udp_exchange(b, msg, len, RM_REGISTER_PEER_RESPONSE, &f, 2) != 0
        || f.v != 0)
    {
        fprintf(stderr, "bench: RegisterPeer of %s failed\n", b->pe.id);
        return -1;
    }

    b->last_reg = now_ns();
    return 0;
}


/*
 * B number i of a server: a UDP socket from 127.0.1.(i + 1), peer i of
 * the run (seed, first_id), registered with its key.  0, or -1.
 */
static inline int
b_init(punch_b_t *b, struct sockaddr_in *server, uint64_t seed,
    unsigned first_id, unsigned i)
{
    b->server = server;
    b->src = loopback("127.0.1.1", 0);
    b->src.sin_addr.s_addr = htonl(ntohl(b->src.sin_addr.s_addr) + i);
    b->udp = udp_socket(&b->src);
    make_peer(&b->pe, seed, first_id, i);

    return b_register(b, 1);
}


/* The punch-hole flow: latency in ns, 0 on failure (why in *why). */
static inline uint64_t
punch_flow(punch_a_t *a, punch_b_t *b, uint64_t *leg1, const char **why,
    int *b_open)
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
    p = pb_str(p, 6, PUNCH_VERSION);
    len = rm_wrap(out, RM_PUNCH_HOLE_REQUEST, body_buf, p - body_buf);
    len = frame(out, out, len);

    t0 = now_ns();
    (void) send_full(a->fd, out, len);

    /* B: PunchHole over UDP */

    for ( ;; ) {
        if (!wait_fd(b->udp, PUNCH_WAIT_MS)) {
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
    p = pb_str(p, 5, PUNCH_VERSION);
    len = rm_wrap(out, RM_PUNCH_HOLE_SENT, body_buf, p - body_buf);
    len = frame(out, out, len);

    bsrc = b->src;
    bsrc.sin_port = 0;

    bfd = tcp_to(&bsrc, b->server);
    if (bfd == -1) {
        *why = "B could not connect";
        return 0;
    }

    slen = sizeof(bseen);
    getsockname(bfd, (struct sockaddr *) &bseen, &slen);

    (void) send_full(bfd, out, len);
    *b_open = bfd;

    /* A: PunchHoleResponse{socket_addr: B's, pk: signed, ...} */

    mlen = a_read(a, PUNCH_WAIT_MS, &msg);
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

    if (pb_get(body, blen, 2, &pk) != 1 || !signed_pk_ok(&pk, b)) {
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
static inline int
b_closed(int fd)
{
    int              rc, closed = 0;
    size_t           len, plen, total;
    ssize_t          n;
    uint64_t         end;
    const uint8_t   *payload;
    uint8_t          buf[1024];

    len = 0;
    end = now_ns() + (uint64_t) PUNCH_WAIT_MS * 1000000;

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


/* A failure's reason counted among up to 8 kinds. */
typedef struct {
    char      why[8][64];
    unsigned  n[8];
} whys_t;


static inline void
why_count(whys_t *w, const char *why)
{
    int  i;

    for (i = 0; i < 8; i++) {
        if (w->n[i] == 0) {
            snprintf(w->why[i], sizeof(w->why[i]), "%s", why);
        }

        if (strcmp(w->why[i], why) == 0) {
            w->n[i]++;
            return;
        }
    }
}


/* " (why: n, why: n)" after a count of failures, or nothing. */
static inline void
why_print(whys_t *w)
{
    int  i;

    for (i = 0; i < 8 && w->n[i]; i++) {
        printf("%s%s: %u", i ? ", " : " (", w->why[i], w->n[i]);
    }

    if (w->n[0]) {
        printf(")");
    }
}


/*
 * One flow of A and B, then B's connection checked: the latency (0 on a
 * failure, counted in w, with a fresh A and B's socket drained).
 * *not_closed counts B connections the server left open or wrote to.
 */
static inline uint64_t
punch_flow_checked(punch_a_t *a, punch_b_t *b, uint64_t *leg1, whys_t *w,
    size_t *not_closed)
{
    int          b_open;
    uint8_t      buf[1024];
    uint64_t     t;
    const char  *why;

    why = NULL;
    t = punch_flow(a, b, leg1, &why, &b_open);

    if (t == 0) {
        why_count(w, why);

        /* a fresh A: the old one may still get a late answer */
        close(a->fd);

        if (a_open(a) != 0) {
            die("connect (A)");
        }

        /* and whatever else B was sent */
        while (recv(b->udp, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
            /* void */
        }
    }

    if (b_open != -1 && !b_closed(b_open)) {
        (*not_closed)++;
    }

    return t;
}


#endif /* PUNCH_H */
