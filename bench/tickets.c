/*
 * tickets: what relay tickets cost.  Two nginx with the same configuration
 * (the rendezvous and the relay module in each) but for
 * `rustdesk_relay_tickets', off in one and on in the other; the punch-hole
 * round trip and the rate of whole relay flows in each, in interleaved
 * rounds.
 *
 *   tickets -p OFF_RENDEZVOUS -r OFF_RELAY -P ON_RENDEZVOUS -R ON_RELAY
 *           -k id_ed25519.pub [-n punch flows] [-m relay flows]
 *           [-c flows at once] [-s rounds] [-o off.pid] [-O on.pid]
 *
 * Punch: the flow of punch.h (A on a kept connection from 127.0.0.2,
 * PunchHoleRequest; B, registered over UDP from 127.0.1.x, gets PunchHole
 * and sends PunchHoleSent on a new connection; A gets PunchHoleResponse),
 * one after the other, timed from A's send to A's answer.
 *
 * A relay flow (PROTOCOL.md sections 6 and 7), as unmodified clients make
 * it; `c' of them at once, each with its own B:
 *
 *   A (a new connection from 127.70.x.y)  <--KeyExchange offer--  server
 *   A  --RequestRelay{id, uuid, relay_server, licence_key}-->  server
 *   server  --RequestRelay{uuid, socket_addr: A's} (UDP)-->  B
 *   B (a new connection from its address)  <--KeyExchange offer--  server
 *   B  --RelayResponse{socket_addr, uuid, relay_server, id}-->  server,
 *        which closes B's connection
 *   B  --RequestRelay{uuid}-->  relay (a new connection), and waits
 *   server  --RelayResponse{uuid, pk: B's key, signed}-->  A; A closes
 *   A  --RequestRelay{uuid} + 8 bytes-->  relay  --8 bytes-->  B
 *   B  --8 bytes-->  relay  --8 bytes-->  A: paired; A closes, and B once
 *        the relay has closed its side
 *
 * With tickets on, both relay connections need the ticket the rendezvous
 * left for the uuid; a refused one is closed at once, and its flow fails.
 * Every message is checked (the offers' shape, A's address at B, the uuid
 * and B's signed key at A, the bytes through the relay), and a flow that
 * is not through within FLOW_MS fails.  Rate: flows paired per second of
 * the run (from the first flow's start to the last one's end); a flow's
 * time: from A's connect to B's bytes at A.
 *
 * Each round runs the punch flows of both nginx (off, then on; every other
 * round on, then off), then the relay flows of both in the same order, so
 * that a busy spell of the machine hits both alike.  At the end a stranger
 * (a uuid nobody brokered) goes to each relay: "on" must close it at once,
 * "off" must keep it waiting (so the tickets were really on, and off).
 *
 * Prints, per nginx over all rounds: the punch round trip (p50, p99), the
 * relay flows' rate and time (p50, p99), the CPU time its workers (found
 * from the pid file, -o and -O) spent per relay flow, failures and their
 * reasons; and the on/off ratios round by round: min, median and max over
 * the rounds.
 */

#include "punch.h"
#include "relay.h"


#define MAX_FLOWS    250        /* at once: one B each, 127.0.1.1-250 */
#define MAX_ROUNDS   100
#define PUNCH_AS     4
#define PUNCH_BS     16
#define FLOW_MS      5000
#define HELLO        8
#define REG_NS       10000000000ULL     /* B registers again after 10 s */

#define RELAY_RESPONSE_PK     5         /* RelayResponse.pk */
#define RM_RELAY_RESPONSE     19

enum { OFF = 0, ON = 1 };

enum { T_A_RDV = 1, T_B_UDP, T_B_RDV, T_A_RLY, T_B_RLY };

/* a flow's steps done */
#define F_A_ASKED    0x01       /* A had the offer, sent RequestRelay */
#define F_B_HEARD    0x02       /* B had RequestRelay, is connecting */
#define F_B_ANSWERED 0x04       /* B had the offer, sent RelayResponse */
#define F_A_RELAY    0x08       /* A had RelayResponse, at the relay */
#define F_B_HELLO    0x10       /* B had A's bytes through the relay */
#define F_PAIRED     0x20       /* A had B's bytes */
#define F_B_RDV_END  0x40       /* the server closed B's connection */
#define F_B_RLY_END  0x80       /* the relay closed B's side */
#define F_DONE       (F_PAIRED | F_B_RDV_END | F_B_RLY_END)


typedef struct {
    int                  fd;
    size_t               len;
    uint8_t              buf[1024];
} conn_t;


typedef struct {
    unsigned             n;             /* in its run */
    unsigned             steps;
    int                  busy;
    uint64_t             t0;
    uint64_t             deadline;
    struct sockaddr_in   a_addr;
    conn_t               a_rdv, b_rdv, a_rly, b_rly;
    uint8_t              sa[32];        /* A's address as B heard it */
    size_t               sa_len;
    char                 uuid[40];
} flow_t;


typedef struct {
    const char          *name;
    struct sockaddr_in   rdv, relay;
    char                 relay_server[32];
    punch_a_t            as[PUNCH_AS];
    punch_b_t           *bs;

    uint64_t            *punch;         /* punch round trips, ns */
    size_t               npunch;
    size_t               punch_failed;
    size_t               not_closed;
    whys_t               punch_whys;
    double               punch_p50[MAX_ROUNDS], punch_p99[MAX_ROUNDS];

    uint64_t            *flow;          /* relay flow times, ns */
    size_t               paired;
    size_t               relay_failed;
    size_t               strays;        /* datagrams at B for no flow */
    whys_t               relay_whys;
    double               seconds;       /* of the relay runs */
    double               rate[MAX_ROUNDS];
    double               cpu;           /* workers' CPU, relay runs */
    workers_t            workers;
} side_t;


static side_t         sides[2];
static flow_t        *flows;
static unsigned       nflows;           /* at once */
static int            ep;


/* A new non-blocking connection of a flow, in the epoll set; -1 none. */
static int
conn_open(conn_t *c, struct sockaddr_in *src, struct sockaddr_in *to,
    unsigned type, unsigned slot)
{
    c->len = 0;
    c->fd = tcp_to(src, to);

    if (c->fd == -1) {
        return -1;
    }

    nonblocking(c->fd);
    ep_add(ep, c->fd, EPOLLIN, type, slot);

    return 0;
}


/* Reads what there is: 1 more bytes, 0 nothing yet, -1 closed or reset. */
static int
conn_read(conn_t *c)
{
    ssize_t  n;

    if (c->len == sizeof(c->buf)) {
        return -1;
    }

    n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);

    if (n > 0) {
        c->len += n;
        return 1;
    }

    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return 0;
    }

    return -1;
}


/*
 * The next frame on a rendezvous connection, past any KeyExchange offer
 * when skip_offer (else an offer is returned as it is): 1 with its
 * payload (copied to out), 0 none yet, -1 malformed.
 */
static int
conn_frame(conn_t *c, int skip_offer, uint8_t *out, size_t *len)
{
    int              rc;
    size_t           plen, total;
    const uint8_t   *payload;

    for ( ;; ) {
        rc = frame_parse(c->buf, c->len, sizeof(c->buf), &payload, &plen,
                         &total);
        if (rc != 1) {
            return rc;
        }

        memcpy(out, payload, plen);
        memmove(c->buf, c->buf + total, c->len - total);
        c->len -= total;
        *len = plen;

        if (skip_offer && is_offer(out, plen)) {
            offers++;
            continue;
        }

        return 1;
    }
}


static void
flow_end(flow_t *f)
{
    close_fd(&f->a_rdv.fd);
    close_fd(&f->b_rdv.fd);
    close_fd(&f->a_rly.fd);
    close_fd(&f->b_rly.fd);
    f->busy = 0;
}


static void
flow_fail(side_t *s, flow_t *f, const char *why)
{
    s->relay_failed++;
    why_count(&s->relay_whys, why);
    flow_end(f);
}


/* The 8 bytes A (who 'A') or B sends through the relay in flow n. */
static void
hello(uint8_t *out, int who, unsigned n)
{
    memcpy(out, who == 'A' ? "TKTA" : "TKTB", 4);
    memcpy(out + 4, &n, 4);
}


static void
flow_start(side_t *s, unsigned slot, unsigned n, unsigned run)
{
    socklen_t            len;
    flow_t              *f = &flows[slot];
    punch_b_t           *b = &s->bs[slot];
    struct sockaddr_in   src;

    /* B stays online: registered again, between two of its flows */

    if (now_ns() - b->last_reg > REG_NS && b_register(b, 0) != 0) {
        exit(1);
    }

    memset(f, 0, sizeof(flow_t));
    f->a_rdv.fd = f->b_rdv.fd = f->a_rly.fd = f->b_rly.fd = -1;
    f->n = n;
    f->busy = 1;
    relay_uuid(f->uuid, seed, run, n);

    f->t0 = now_ns();
    f->deadline = f->t0 + FLOW_MS * 1000000ULL;

    src = src_addr(70, n % 16384);

    if (conn_open(&f->a_rdv, &src, &s->rdv, T_A_RDV, slot) != 0) {
        flow_fail(s, f, "A could not connect to the rendezvous");
        return;
    }

    len = sizeof(f->a_addr);
    getsockname(f->a_rdv.fd, (struct sockaddr *) &f->a_addr, &len);
}


/*
 * A client's first message on a rendezvous connection, as unmodified
 * clients send it: once the server's KeyExchange offer has come (and is
 * not taken up), the message `member' with this body, framed.  1 sent, 0
 * no offer yet, -1 the flow failed.
 */
static int
offer_then_send(side_t *s, flow_t *f, conn_t *c, int end, unsigned member,
    const uint8_t *body, size_t blen, int who)
{
    int      rc;
    size_t   len;
    uint8_t  msg[1024];

    rc = conn_frame(c, 0, msg, &len);

    if (rc == 0 && !end) {
        return 0;
    }

    if (rc != 1 || !is_offer(msg, len)) {
        bad_offers++;
        flow_fail(s, f, who == 'A' ? "A's first frame was not the offer"
                                   : "B's first frame was not the offer");
        return -1;
    }

    offers++;

    len = rm_wrap(msg, member, body, blen);
    len = frame(msg, msg, len);

    if (send_full(c->fd, msg, len) != 0) {
        flow_fail(s, f, who == 'A' ? "A could not send RequestRelay"
                                   : "B could not send RelayResponse");
        return -1;
    }

    return 1;
}


/* A's rendezvous connection: the offer, then RelayResponse. */
static void
on_a_rdv(side_t *s, flow_t *f, unsigned run)
{
    int                  rc;
    size_t               len, blen;
    pb_field_t           uuid, pk;
    punch_b_t           *b;
    const uint8_t       *body;
    struct sockaddr_in   src;
    uint8_t              msg[1024], out[1024], *p;

    b = &s->bs[f - flows];

    if (conn_read(&f->a_rdv) < 0) {
        flow_fail(s, f, "the rendezvous closed A's connection");
        return;
    }

    if (!(f->steps & F_A_ASKED)) {

        /* RequestRelay{id, uuid, relay_server, licence_key} */

        p = pb_str(out, 1, b->pe.id);
        p = pb_str(p, REQUEST_RELAY_UUID, f->uuid);
        p = pb_str(p, 4, s->relay_server);
        p = pb_str(p, 6, licence);

        if (offer_then_send(s, f, &f->a_rdv, 0, RM_REQUEST_RELAY, out,
                            p - out, 'A')
            != 1)
        {
            return;
        }

        f->steps |= F_A_ASKED;
    }

    rc = conn_frame(&f->a_rdv, 1, msg, &len);

    if (rc == 0) {
        return;
    }

    if (rc < 0 || rm_member(msg, len, &body, &blen) != RM_RELAY_RESPONSE) {
        flow_fail(s, f, "A got another message than RelayResponse");
        return;
    }

    if (pb_get(body, blen, REQUEST_RELAY_UUID, &uuid) != 1
        || uuid.len != strlen(f->uuid)
        || memcmp(uuid.data, f->uuid, uuid.len) != 0)
    {
        flow_fail(s, f, "RelayResponse for another uuid");
        return;
    }

    if (pb_get(body, blen, RELAY_RESPONSE_PK, &pk) != 1
        || !signed_pk_ok(&pk, b))
    {
        flow_fail(s, f, "RelayResponse without B's signed key");
        return;
    }

    if (!(f->steps & F_B_ANSWERED)) {
        flow_fail(s, f, "RelayResponse before B sent it");
        return;
    }

    /* A leaves the rendezvous and goes to the relay, from its address */

    close_fd(&f->a_rdv.fd);

    src = f->a_addr;
    src.sin_port = 0;
    len = request_relay(msg, run, f->n);
    hello(msg + len, 'A', f->n);

    if (conn_open(&f->a_rly, &src, &s->relay, T_A_RLY, f - flows) != 0
        || send_full(f->a_rly.fd, msg, len + HELLO) != 0)
    {
        flow_fail(s, f, "A could not connect to the relay");
        return;
    }

    f->steps |= F_A_RELAY;
}


/* B's UDP socket: RequestRelay for its flow. */
static void
on_b_udp(side_t *s, unsigned slot)
{
    ssize_t              n;
    size_t               blen;
    flow_t              *f = &flows[slot];
    punch_b_t           *b = &s->bs[slot];
    pb_field_t           uuid, sa;
    const uint8_t       *body;
    struct sockaddr_in   src, got;
    uint8_t              dgram[2048];

    while ((n = recv(b->udp, dgram, sizeof(dgram), MSG_DONTWAIT)) > 0) {

        if (!f->busy || (f->steps & F_B_HEARD)
            || rm_member(dgram, n, &body, &blen) != RM_REQUEST_RELAY
            || pb_get(body, blen, REQUEST_RELAY_UUID, &uuid) != 1
            || uuid.len != strlen(f->uuid)
            || memcmp(uuid.data, f->uuid, uuid.len) != 0)
        {
            s->strays++;            /* a late one, of a failed flow */
            continue;
        }

        if (pb_get(body, blen, 3, &sa) != 1 || sa.len > sizeof(f->sa)
            || addr_demangle(sa.data, sa.len, &got) != 0
            || got.sin_addr.s_addr != f->a_addr.sin_addr.s_addr
            || got.sin_port != f->a_addr.sin_port)
        {
            flow_fail(s, f, "RequestRelay at B without A's address");
            return;
        }

        memcpy(f->sa, sa.data, sa.len);
        f->sa_len = sa.len;
        f->steps |= F_B_HEARD;

        src = b->src;
        src.sin_port = 0;

        if (conn_open(&f->b_rdv, &src, &s->rdv, T_B_RDV, slot) != 0) {
            flow_fail(s, f, "B could not connect to the rendezvous");
            return;
        }
    }
}


/*
 * One of B's connections once B has said all: nothing more may come on it
 * (it holds `len' bytes) but the server's close, which ends it (step).
 */
static void
b_end(side_t *s, flow_t *f, conn_t *c, size_t len, int end, unsigned step,
    const char *why)
{
    if (c->len != len) {
        flow_fail(s, f, why);
        return;
    }

    if (end) {
        close_fd(&c->fd);
        f->steps |= step;
    }
}


/*
 * B's rendezvous connection: the offer, then RelayResponse sent, B to the
 * relay at once; then nothing but the server's close.
 */
static void
on_b_rdv(side_t *s, flow_t *f, unsigned run)
{
    int                  end;
    size_t               len;
    punch_b_t           *b;
    struct sockaddr_in   src;
    uint8_t              msg[1024], out[1024], *p;

    b = &s->bs[f - flows];
    end = conn_read(&f->b_rdv) < 0;

    if (!(f->steps & F_B_ANSWERED)) {

        /* RelayResponse{socket_addr, uuid, relay_server, id, version} */

        p = pb_bytes(out, 1, f->sa, f->sa_len);
        p = pb_str(p, 2, f->uuid);
        p = pb_str(p, 3, s->relay_server);
        p = pb_str(p, 4, b->pe.id);
        p = pb_str(p, 7, PUNCH_VERSION);

        if (offer_then_send(s, f, &f->b_rdv, end, RM_RELAY_RESPONSE, out,
                            p - out, 'B')
            != 1)
        {
            return;
        }

        f->steps |= F_B_ANSWERED;

        src = b->src;
        src.sin_port = 0;
        len = request_relay(msg, run, f->n);

        if (conn_open(&f->b_rly, &src, &s->relay, T_B_RLY, f - flows) != 0
            || send_full(f->b_rly.fd, msg, len) != 0)
        {
            flow_fail(s, f, "B could not connect to the relay");
            return;
        }
    }

    b_end(s, f, &f->b_rdv, 0, end, F_B_RDV_END,
          "B got more than the offer from the rendezvous");
}


/*
 * The 8 bytes of `who' (A or B) in flow f, through the relay on c: 1 when
 * they came (and nothing more), 0 not all yet, -1 the flow failed.
 */
static int
hello_in(side_t *s, flow_t *f, conn_t *c, int who, int end)
{
    uint8_t  want[HELLO];

    if (c->len < HELLO) {
        if (end) {
            flow_fail(s, f, who == 'A' ? "the relay closed B before pairing"
                                       : "the relay closed A before pairing");
            return -1;
        }

        return 0;
    }

    hello(want, who, f->n);

    if (c->len != HELLO || memcmp(c->buf, want, HELLO) != 0) {
        flow_fail(s, f, who == 'A' ? "B got other bytes than A's"
                                   : "A got other bytes than B's");
        return -1;
    }

    return 1;
}


/* B's relay side: A's bytes, answered; then the relay's close. */
static void
on_b_rly(side_t *s, flow_t *f)
{
    int      end;
    uint8_t  out[HELLO];

    end = conn_read(&f->b_rly) < 0;

    if (!(f->steps & F_B_HELLO)) {
        if (hello_in(s, f, &f->b_rly, 'A', end) != 1) {
            return;
        }

        hello(out, 'B', f->n);

        if (send_full(f->b_rly.fd, out, HELLO) != 0) {
            flow_fail(s, f, "B could not answer through the relay");
            return;
        }

        f->steps |= F_B_HELLO;
    }

    b_end(s, f, &f->b_rly, HELLO, end, F_B_RLY_END,
          "B got more bytes than A sent");
}


/* A's relay side: B's bytes: paired; A closes. */
static void
on_a_rly(side_t *s, flow_t *f)
{
    int  end;

    end = conn_read(&f->a_rly) < 0;

    if (hello_in(s, f, &f->a_rly, 'B', end) != 1) {
        return;
    }

    s->flow[s->paired++] = now_ns() - f->t0;
    f->steps |= F_PAIRED;
    close_fd(&f->a_rly.fd);
}


/*
 * `count' relay flows of one nginx, nflows at once: the seconds from the
 * first start to the last end.
 */
static double
relay_run(side_t *s, unsigned count, unsigned run)
{
    int                  i, n;
    unsigned             started, live, slot, type;
    uint64_t             t0, now, last_check;
    flow_t              *f;
    uint8_t              dgram[2048];
    struct epoll_event   ev[256];

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1) {
        die("epoll_create1");
    }

    for (slot = 0; slot < nflows; slot++) {
        /* what came since: nothing of this run's */
        while (recv(s->bs[slot].udp, dgram, sizeof(dgram), MSG_DONTWAIT)
               > 0)
        {
            /* void */
        }

        ep_add(ep, s->bs[slot].udp, EPOLLIN, T_B_UDP, slot);
        flows[slot].busy = 0;
    }

    t0 = now_ns();
    last_check = t0;
    started = live = 0;

    for ( ;; ) {
        /* free slots take the next flows */

        live = 0;

        for (slot = 0; slot < nflows; slot++) {
            if (!flows[slot].busy && started < count) {
                flow_start(s, slot, started++, run);
            }

            live += flows[slot].busy;
        }

        if (live == 0 && started == count) {
            break;
        }

        n = epoll_wait(ep, ev, sizeof(ev) / sizeof(ev[0]), 100);

        for (i = 0; i < n; i++) {
            type = ev[i].data.u64 >> 32;
            slot = (unsigned) ev[i].data.u64;
            f = &flows[slot];

            if (type == T_B_UDP) {
                on_b_udp(s, slot);
                continue;
            }

            /* an event of a connection closed meanwhile */

            if (!f->busy
                || (type == T_A_RDV && f->a_rdv.fd == -1)
                || (type == T_B_RDV && f->b_rdv.fd == -1)
                || (type == T_A_RLY && f->a_rly.fd == -1)
                || (type == T_B_RLY && f->b_rly.fd == -1))
            {
                continue;
            }

            switch (type) {
            case T_A_RDV: on_a_rdv(s, f, run); break;
            case T_B_RDV: on_b_rdv(s, f, run); break;
            case T_A_RLY: on_a_rly(s, f); break;
            case T_B_RLY: on_b_rly(s, f); break;
            }

            if (f->busy && (f->steps & F_DONE) == F_DONE) {
                flow_end(f);
            }
        }

        now = now_ns();

        if (now - last_check < 100000000ULL) {
            continue;
        }

        last_check = now;

        for (slot = 0; slot < nflows; slot++) {
            f = &flows[slot];

            if (f->busy && now > f->deadline) {
                flow_fail(s, f,
                          !(f->steps & F_B_HEARD) ? "timeout: B got no "
                                                    "RequestRelay"
                          : !(f->steps & F_B_ANSWERED) ? "timeout: B got "
                                                         "no offer"
                          : !(f->steps & F_A_RELAY) ? "timeout: A got no "
                                                      "RelayResponse"
                          : !(f->steps & F_PAIRED) ? "timeout: no pairing"
                          : "timeout: a side was not closed");
            }
        }
    }

    now = now_ns();

    for (slot = 0; slot < nflows; slot++) {
        epoll_ctl(ep, EPOLL_CTL_DEL, s->bs[slot].udp, NULL);
    }

    close(ep);

    return (now - t0) / 1e9;
}


/* `count' punch flows of one nginx, one after the other. */
static void
punch_run(side_t *s, unsigned count)
{
    unsigned    w;
    uint64_t    t, leg1;
    punch_a_t  *a;
    punch_b_t  *b;

    for (w = 0; w < count; w++) {
        a = &s->as[w % PUNCH_AS];
        b = &s->bs[w % PUNCH_BS];

        if (now_ns() - b->last_reg > REG_NS && b_register(b, 0) != 0) {
            exit(1);
        }

        t = punch_flow_checked(a, b, &leg1, &s->punch_whys, &s->not_closed);

        if (t) {
            s->punch[s->npunch++] = t;

        } else {
            s->punch_failed++;
        }
    }
}


/*
 * A relay connection with a uuid nobody brokered: 1 if the relay closed
 * it within ms, 0 if it kept it waiting.
 */
static int
stranger_closed(side_t *s, int ms)
{
    int                  fd, closed;
    char                 buf[64];
    size_t               len;
    uint8_t              msg[128], b[64], *p;
    struct sockaddr_in   src;

    p = pb_str(b, REQUEST_RELAY_UUID, "stranger-not-brokered");
    len = rm_wrap(msg, RM_REQUEST_RELAY, b, p - b);
    len = frame(msg, msg, len);

    src = loopback("127.0.0.3", 0);
    fd = tcp_to(&src, &s->relay);

    if (fd == -1 || send_full(fd, msg, len) != 0) {
        close_fd(&fd);
        return 1;
    }

    closed = wait_fd(fd, ms) && recv(fd, buf, sizeof(buf), 0) <= 0;
    close(fd);

    return closed;
}


/* on[k] / off[k] for each round, spread into r[0..2]; 0s when one is 0. */
static void
ratios(const double *on, const double *off, unsigned rounds, double *r)
{
    double    v[MAX_ROUNDS];
    unsigned  k;

    for (k = 0; k < rounds; k++) {
        if (on[k] <= 0 || off[k] <= 0) {
            r[0] = r[1] = r[2] = 0;
            return;
        }

        v[k] = on[k] / off[k];
    }

    spread(v, rounds, r);
}


/* The workers' CPU seconds per relay flow paired. */
static double
cpu_per_flow(side_t *s)
{
    return s->paired ? s->cpu / s->paired : 0;
}


static void
report(side_t *s, unsigned punch_want, unsigned relay_want)
{
    printf("tickets %s:\n", s->name);

    if (s->npunch) {
        print_pct("punch", s->punch, s->npunch);
    }

    if (s->paired) {
        print_pct("relay flow", s->flow, s->paired);
    }

    printf("  %zu relay flows paired in %.2f s: %.0f/s; nginx workers' CPU "
           "%.0f us a flow\n", s->paired, s->seconds,
           s->seconds > 0 ? s->paired / s->seconds : 0,
           cpu_per_flow(s) * 1e6);

    if (s->punch_failed || s->not_closed || s->npunch != punch_want) {
        printf("  %-10s PROBLEMS: %zu of %u punch flows; failed %zu",
               s->name, s->npunch, punch_want, s->punch_failed);
        why_print(&s->punch_whys);
        printf("; B connections not closed by the server (or with more "
               "than the KeyExchange offer): %zu\n", s->not_closed);
    }

    if (s->relay_failed || s->paired != relay_want) {
        printf("  %-10s PROBLEMS: %zu of %u relay flows paired; failed %zu",
               s->name, s->paired, relay_want, s->relay_failed);
        why_print(&s->relay_whys);
        printf("\n");
    }

    if (s->strays) {
        printf("  %zu datagrams at B for no flow of theirs (late ones of "
               "failed flows)\n", s->strays);
    }
}


static double
p_us(uint64_t *v, size_t n, double p)
{
    return n ? pct(v, n, p) / 1e3 : 0;
}


int
main(int argc, char **argv)
{
    int          c, k, order[2], stranger_on, stranger_off;
    char        *pid[2];
    size_t       from;
    double       cpu0, secs, pr50[3], pr99[3], rr[3];
    unsigned     punch_n, relay_n, rounds, r, i, port[4], per_punch,
                 per_relay, first_id;
    side_t      *s;
    const char  *keyfile;

    punch_n = 10000;
    relay_n = 20000;
    nflows = 32;
    rounds = 10;
    keyfile = NULL;
    memset(port, 0, sizeof(port));
    pid[OFF] = pid[ON] = NULL;

    while ((c = getopt(argc, argv, "p:r:P:R:k:n:m:c:s:o:O:")) != -1) {
        switch (c) {
        case 'p': port[0] = atoi(optarg); break;
        case 'r': port[1] = atoi(optarg); break;
        case 'P': port[2] = atoi(optarg); break;
        case 'R': port[3] = atoi(optarg); break;
        case 'k': keyfile = optarg; break;
        case 'n': punch_n = strtoul(optarg, NULL, 10); break;
        case 'm': relay_n = strtoul(optarg, NULL, 10); break;
        case 'c': nflows = strtoul(optarg, NULL, 10); break;
        case 's': rounds = strtoul(optarg, NULL, 10); break;
        case 'o': pid[OFF] = optarg; break;
        case 'O': pid[ON] = optarg; break;
        default: goto usage;
        }
    }

    if (!port[0] || !port[1] || !port[2] || !port[3] || keyfile == NULL
        || rounds < 1 || rounds > MAX_ROUNDS || nflows < 1
        || nflows > MAX_FLOWS || punch_n < rounds || relay_n < rounds
        || punch_n > 1000000 || relay_n > 10000000)
    {
        goto usage;
    }

    per_punch = punch_n / rounds;
    per_relay = relay_n / rounds;
    punch_n = per_punch * rounds;
    relay_n = per_relay * rounds;

    watchdog(120 + rounds * 2 * (per_punch / 1000 + per_relay / 100 + 10));
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();

    punch_licence(keyfile);

    seed = (uint64_t) time(NULL) * 2654435761u ^ (uint64_t) getpid() << 20;
    first_id = 100000000 + (unsigned) (seed % 800000000);

    flows = calloc(MAX_FLOWS, sizeof(flow_t));
    if (flows == NULL) {
        die("calloc");
    }

    /* each nginx: its As and Bs (the same addresses), its own peers */

    for (k = OFF; k <= ON; k++) {
        s = &sides[k];
        s->name = k == ON ? "on" : "off";
        s->rdv = loopback("127.0.0.1", port[k * 2]);
        s->relay = loopback("127.0.0.1", port[k * 2 + 1]);
        snprintf(s->relay_server, sizeof(s->relay_server), "127.0.0.1:%u",
                 port[k * 2 + 1]);

        s->bs = calloc(MAX_FLOWS, sizeof(punch_b_t));
        s->punch = calloc(punch_n, sizeof(uint64_t));
        s->flow = calloc(relay_n, sizeof(uint64_t));

        if (s->bs == NULL || s->punch == NULL || s->flow == NULL) {
            die("calloc");
        }

        for (i = 0; i < (nflows > PUNCH_BS ? nflows : PUNCH_BS); i++) {
            if (b_init(&s->bs[i], &s->rdv, seed, first_id + k * 1000, i)
                != 0)
            {
                return 1;
            }
        }

        for (i = 0; i < PUNCH_AS; i++) {
            s->as[i].server = &s->rdv;

            if (a_open(&s->as[i]) != 0) {
                die("connect (A)");
            }
        }

        find_workers(pid[k], &s->workers);
    }

    printf("tickets off and on, %u interleaved rounds: %u punch flows per "
           "nginx (one at a time, %d As, %d Bs), %u relay flows per nginx "
           "(%u at once, one B each)\n", rounds, punch_n, PUNCH_AS, PUNCH_BS,
           relay_n, nflows);

    for (r = 0; r < rounds; r++) {
        order[0] = r % 2 ? ON : OFF;
        order[1] = r % 2 ? OFF : ON;

        for (k = 0; k < 2; k++) {
            s = &sides[order[k]];
            from = s->npunch;
            punch_run(s, per_punch);
            s->punch_p50[r] = pct_of(s->punch + from, s->npunch - from, 0.5)
                              / 1e3;
            s->punch_p99[r] = pct_of(s->punch + from, s->npunch - from, 0.99)
                              / 1e3;
        }

        for (k = 0; k < 2; k++) {
            s = &sides[order[k]];
            from = s->paired;
            cpu0 = workers_cpu(&s->workers, NULL);
            secs = relay_run(s, per_relay, r * 2 + order[k]);
            s->cpu += workers_cpu(&s->workers, NULL) - cpu0;
            s->seconds += secs;
            s->rate[r] = (s->paired - from) / secs;
        }
    }

    stranger_on = stranger_closed(&sides[ON], 1000);
    stranger_off = !stranger_closed(&sides[OFF], 300);

    for (k = OFF; k <= ON; k++) {
        report(&sides[k], punch_n, relay_n);
    }

    printf("a relay request with a uuid nobody brokered: %s with tickets "
           "on, %s with tickets off\n",
           stranger_on ? "refused" : "NOT REFUSED",
           stranger_off ? "kept waiting" : "CLOSED");
    printf("KeyExchange offers read by A and B: %zu; connections without "
           "one: %zu\n", offers, bad_offers);

    ratios(sides[ON].punch_p50, sides[OFF].punch_p50, rounds, pr50);
    ratios(sides[ON].punch_p99, sides[OFF].punch_p99, rounds, pr99);
    ratios(sides[ON].rate, sides[OFF].rate, rounds, rr);

    printf("on / off, per round: punch p50 min %.2f, median %.2f, max %.2f; "
           "punch p99 %.2f, %.2f, %.2f; relay flows/s %.2f, %.2f, %.2f "
           "(%u rounds)\n", pr50[0], pr50[1], pr50[2], pr99[0], pr99[1],
           pr99[2], rr[0], rr[1], rr[2], rounds);

    printf("RESULT tickets punch_flows=%u relay_flows=%u at_once=%u "
           "rounds=%u",
           punch_n, relay_n, nflows, rounds);

    for (k = OFF; k <= ON; k++) {
        s = &sides[k];
        printf(" %s_punch_p50=%.1f %s_punch_p99=%.1f %s_flow_p50=%.1f "
               "%s_flow_p99=%.1f %s_pairs_s=%.0f %s_cpu_us=%.1f "
               "%s_paired=%zu %s_punch_failed=%zu %s_relay_failed=%zu "
               "%s_not_closed=%zu",
               s->name, p_us(s->punch, s->npunch, 0.5),
               s->name, p_us(s->punch, s->npunch, 0.99),
               s->name, p_us(s->flow, s->paired, 0.5),
               s->name, p_us(s->flow, s->paired, 0.99),
               s->name, s->seconds > 0 ? s->paired / s->seconds : 0,
               s->name, cpu_per_flow(s) * 1e6,
               s->name, s->paired, s->name, punch_n - s->npunch,
               s->name, relay_n - s->paired,
               s->name, s->not_closed);
    }

    printf(" ratio_punch_p50_min=%.2f ratio_punch_p50_med=%.2f "
           "ratio_punch_p50_max=%.2f ratio_punch_p99_min=%.2f "
           "ratio_punch_p99_med=%.2f ratio_punch_p99_max=%.2f "
           "ratio_pairs_min=%.2f ratio_pairs_med=%.2f ratio_pairs_max=%.2f "
           "ratio_cpu=%.3f stranger_refused_on=%d stranger_waits_off=%d "
           "no_offer=%zu\n",
           pr50[0], pr50[1], pr50[2], pr99[0], pr99[1], pr99[2],
           rr[0], rr[1], rr[2],
           cpu_per_flow(&sides[OFF]) > 0
           ? cpu_per_flow(&sides[ON]) / cpu_per_flow(&sides[OFF]) : 0,
           stranger_on, stranger_off, bad_offers);

    return 0;

usage:

    fprintf(stderr, "usage: tickets -p off_rendezvous -r off_relay "
            "-P on_rendezvous -R on_relay -k keyfile [-n punch flows] "
            "[-m relay flows] [-c at once] [-s rounds] [-o off.pid] "
            "[-O on.pid]\n");
    return 2;
}
