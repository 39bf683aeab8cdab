/*
 * Registration of many peers over UDP, as clients do it: RegisterPk{id,
 * uuid, pk} from the peer's address, answered by RegisterPkResponse, and
 * optionally a RegisterPeer heartbeat after it (answered request_pk
 * false when the key is known).  With `ask', a new peer first sends a
 * RegisterPeer, as the desktop client does, answered request_pk true
 * (the server does not know its key yet), and then its RegisterPk.
 *
 * The IP blocker refuses a source IP after about 30 RegisterPk within
 * 60 s, so the peers are spread over many source addresses of
 * 127.<net>.0.0/16 and up, per_ip peers each (one socket per address).
 * A window of sources is active at once, each registering its peers one
 * after the other; lost datagrams are sent again after a timeout.
 */

#ifndef UDP_REG_H
#define UDP_REG_H

#include "bench.h"

#include <sys/epoll.h>


#define REG_TIMEOUT_NS   (300 * 1000000ULL)
#define REG_TRIES        6


typedef struct {
    /* what to do */
    struct sockaddr_in   server;
    unsigned             npeers;        /* at most this many peers */
    unsigned             per_ip;        /* peers per source address */
    unsigned             net;           /* sources from 127.<net>.0.1 */
    unsigned             window;        /* sources registering at once */
    int                  heartbeat;     /* RegisterPeer after RegisterPk */
    int                  ask;           /* RegisterPeer before RegisterPk */
    int                  keep_open;     /* sockets stay open afterwards */
    unsigned             full_stop;     /* stop after this many SERVER_ERROR */
    double               max_seconds;
    uint64_t             seed;
    unsigned             first_id;

    /* results */
    unsigned             nsrc;
    int                 *fds;           /* per source, if keep_open */
    uint8_t             *ok;            /* per peer: registered */
    unsigned             n_ok;
    unsigned             n_sent;
    unsigned             n_retries;
    unsigned             n_given_up;
    unsigned             n_request_pk;  /* heartbeat still asked for a key */
    unsigned             n_not_asked;   /* ask: a new peer not asked one */
    unsigned             results[16];   /* RegisterPkResponse results */
    unsigned             first_full;    /* peers OK when the 1st error came */
    double               seconds;
} reg_t;


typedef struct {
    int                  k;             /* source, -1: free slot */
    int                  fd;
    unsigned             j;             /* peer of the source */
    int                  step;          /* 0: RegisterPk, 1: RegisterPeer,
                                           2: RegisterPeer before its key */
    int                  tries;
    uint64_t             sent;
} reg_slot_t;


static void
reg_send(reg_t *r, reg_slot_t *s)
{
    size_t    len;
    peer_t    pe;
    uint8_t   buf[512];

    make_peer(&pe, r->seed, r->first_id, s->k * r->per_ip + s->j);

    if (s->step == 0) {
        len = msg_register_pk(buf, pe.id, pe.uuid, sizeof(pe.uuid), pe.pk,
                              sizeof(pe.pk));
    } else {
        len = msg_register_peer(buf, pe.id, 0);
    }

    if (sendto(s->fd, buf, len, 0, (struct sockaddr *) &r->server,
               sizeof(r->server)) != (ssize_t) len)
    {
        /* counts as a loss: sent again after the timeout */
        if (errno != EAGAIN && errno != ENOBUFS) {
            die("sendto");
        }
    }

    r->n_sent++;
    s->sent = now_ns();
}


/* The next peer of the slot's source, or the next source: 0 when none. */
static int
reg_next(reg_t *r, reg_slot_t *s, unsigned *next_src, int ep)
{
    struct epoll_event  ev;
    struct sockaddr_in  src;

    if (s->k >= 0) {
        s->j++;

        if (s->j < r->per_ip && s->k * r->per_ip + s->j < r->npeers) {
            s->step = r->ask ? 2 : 0;
            s->tries = 0;
            reg_send(r, s);
            return 1;
        }

        /* this source is done */

        epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);

        if (r->keep_open) {
            r->fds[s->k] = s->fd;
        } else {
            close(s->fd);
        }

        s->k = -1;
    }

    if (*next_src >= r->nsrc) {
        return 0;
    }

    s->k = (int) (*next_src)++;
    s->j = 0;
    s->step = r->ask ? 2 : 0;
    s->tries = 0;

    src = src_addr(r->net, s->k);
    s->fd = udp_socket(&src);

    ev.events = EPOLLIN;
    ev.data.ptr = s;

    if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) == -1) {
        die("epoll_ctl");
    }

    reg_send(r, s);
    return 1;
}


/* 0: done; 1: stopped early (zone full, or out of time). */
static int
reg_run(reg_t *r)
{
    int                  ep, i, n, active, stop, rc;
    ssize_t              len;
    size_t               blen;
    unsigned             next_src, member, errors;
    uint64_t             start, now, deadline;
    pb_field_t           f;
    reg_slot_t          *slots, *s;
    const uint8_t       *body;
    struct epoll_event   evs[256];
    uint8_t              buf[2048];

    r->nsrc = (r->npeers + r->per_ip - 1) / r->per_ip;
    r->fds = calloc(r->nsrc, sizeof(int));
    r->ok = calloc(r->npeers, 1);
    slots = calloc(r->window, sizeof(reg_slot_t));

    if (r->fds == NULL || r->ok == NULL || slots == NULL) {
        die("calloc");
    }

    for (i = 0; i < (int) r->nsrc; i++) {
        r->fds[i] = -1;
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1) {
        die("epoll_create1");
    }

    start = now_ns();
    deadline = start + (uint64_t) (r->max_seconds * 1e9);
    next_src = 0;
    active = 0;
    errors = 0;
    stop = 0;

    for (i = 0; i < (int) r->window; i++) {
        slots[i].k = -1;
        active += reg_next(r, &slots[i], &next_src, ep);
    }

    while (active > 0) {
        n = epoll_wait(ep, evs, 256, 10);

        if (n == -1 && errno != EINTR) {
            die("epoll_wait");
        }

        for (i = 0; i < n; i++) {
            s = evs[i].data.ptr;

            for ( ;; ) {
                len = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);

                if (len < 0) {
                    break;
                }

                member = rm_member(buf, len, &body, &blen);

                if (s->step == 0 && member == RM_REGISTER_PK_RESPONSE) {
                    rc = pb_get(body, blen, 1, &f);
                    f.v = (rc == 1) ? f.v : 0;   /* absent: OK */

                    r->results[f.v < 16 ? f.v : 15]++;

                    if (f.v == RESULT_OK) {
                        r->ok[s->k * r->per_ip + s->j] = 1;
                        r->n_ok++;

                        if (r->heartbeat) {
                            s->step = 1;
                            s->tries = 0;
                            reg_send(r, s);
                            continue;
                        }

                    } else if (f.v == RESULT_SERVER_ERROR) {
                        if (errors++ == 0) {
                            r->first_full = r->n_ok;
                        }

                        if (r->full_stop && errors >= r->full_stop) {
                            stop = 1;
                        }
                    }

                } else if (s->step == 2
                           && member == RM_REGISTER_PEER_RESPONSE)
                {
                    if (pb_get(body, blen, 2, &f) != 1 || f.v == 0) {
                        r->n_not_asked++;
                    }

                    s->step = 0;
                    s->tries = 0;
                    reg_send(r, s);
                    continue;

                } else if (s->step == 1
                           && member == RM_REGISTER_PEER_RESPONSE)
                {
                    if (pb_get(body, blen, 2, &f) == 1 && f.v) {
                        r->n_request_pk++;
                    }

                } else {
                    continue;   /* late answer to a retry: not for now */
                }

                if (stop) {
                    break;
                }

                if (!reg_next(r, s, &next_src, ep)) {
                    active--;
                    break;
                }
            }

            if (stop) {
                break;
            }
        }

        now = now_ns();

        if (stop || now > deadline) {
            stop = 1;
            break;
        }

        for (i = 0; i < (int) r->window; i++) {
            s = &slots[i];

            if (s->k < 0 || now - s->sent < REG_TIMEOUT_NS) {
                continue;
            }

            if (++s->tries < REG_TRIES) {
                r->n_retries++;
                reg_send(r, s);
                continue;
            }

            r->n_given_up++;

            if (!reg_next(r, s, &next_src, ep)) {
                active--;
            }
        }
    }

    /* sources still active when stopped */

    for (i = 0; i < (int) r->window; i++) {
        if (slots[i].k >= 0) {
            if (r->keep_open) {
                r->fds[slots[i].k] = slots[i].fd;
            } else {
                close(slots[i].fd);
            }
        }
    }

    close(ep);
    free(slots);

    r->seconds = (now_ns() - start) / 1e9;

    return stop;
}


#endif /* UDP_REG_H */
