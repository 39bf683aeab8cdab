/*
 * Forwarding a pair (PROTOCOL.md sections 2 and 7): when both sides are
 * plain TCP, bytes go through unchanged (with a WebSocket side, messages
 * do: ngx_stream_rustdesk_relay_message.c).  Each side has a buffer for what was
 * read from it and not yet written to the other; it is taken from this
 * worker's free list when bytes arrive and given back when it drains, so
 * an idle pair holds none.  Reads are limited by the pair's bucket
 * (single, or limit when blacklisted or downgraded), by the total bucket
 * all workers share, and to a few buffers a side in one event: the rest
 * waits for the next cycle of the event loop, so that no client has a
 * worker to itself.  A tick once a second checks idleness, the lists,
 * downgrading, and publishes usage for the console.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "ngx_stream_rustdesk_relay_module.h"


#define NGX_RUSTDESK_RELAY_TICK   1000
#define NGX_RUSTDESK_RELAY_BURST  10       /* a tenth of a second */
#define NGX_RUSTDESK_RELAY_MIN_BURST  16384
#define NGX_RUSTDESK_RELAY_MIN_RATE   1000     /* bytes per second */
#define NGX_RUSTDESK_RELAY_READS  16       /* buffers a side in one event */


static void ngx_stream_rustdesk_relay_read(ngx_event_t *rev);
static void ngx_stream_rustdesk_relay_write(ngx_event_t *wev);
static void ngx_stream_rustdesk_relay_process(
    ngx_stream_rustdesk_relay_pair_t *p);
static void ngx_stream_rustdesk_relay_release(
    ngx_stream_rustdesk_relay_side_t *side);
static ngx_int_t ngx_stream_rustdesk_relay_move(
    ngx_stream_rustdesk_relay_pair_t *p, ngx_stream_rustdesk_relay_side_t *src,
    ngx_stream_rustdesk_relay_side_t *dst);
static void ngx_stream_rustdesk_relay_tick(ngx_event_t *ev);
static ngx_int_t ngx_stream_rustdesk_relay_lists(
    ngx_stream_rustdesk_relay_pair_t *p);
static void ngx_stream_rustdesk_relay_close(
    ngx_stream_rustdesk_relay_pair_t *p, const char *why, const char *result);
static void ngx_stream_rustdesk_relay_finalize_quiet(
    ngx_stream_rustdesk_relay_side_t *side);


#define NGX_RUSTDESK_RELAY_SPARE  64       /* buffers kept for reuse */


/* this worker's spare buffers, linked through b->shadow */
static ngx_buf_t   *ngx_stream_rustdesk_relay_free;
static ngx_uint_t   ngx_stream_rustdesk_relay_nfree;
static size_t       ngx_stream_rustdesk_relay_buffer_size;


void
ngx_stream_rustdesk_relay_start(ngx_stream_rustdesk_relay_pair_t *p)
{
    u_char                             addr[NGX_SOCKADDR_STRLEN];
    size_t                             len, n;
    ngx_uint_t                         i;
    ngx_connection_t                  *c;
    ngx_rustdesk_relay_zone_t         *z;
    ngx_stream_rustdesk_relay_side_t  *side[2];

    z = p->conf->zone;
    side[0] = p->a;
    side[1] = p->b;

    for (i = 0; i < 2; i++) {
        c = side[i]->connection;

        side[i]->pair = p;
        c->data = side[i];
        c->idle = 0;
        c->log->action = "relaying";

        c->read->handler = ngx_stream_rustdesk_relay_read;
        c->write->handler = ngx_stream_rustdesk_relay_write;

        if (c->ssl) {
            /* decrypted bytes may wait in the TLS layer, not the socket */
            c->read->ready = 1;
        }

        (void) ngx_tcp_nodelay(c);

        if (side[i]->buf) {
            /* what came right after the request */
            n = side[i]->buf->last - side[i]->buf->pos;
            p->total += n;

            if (i == 0) {
                p->from_a += n;

            } else {
                p->from_b += n;
            }
        }
    }

    /* raw bytes between two TCP clients, messages with a WebSocket one */

    if (!p->pipe && (p->a->ws || p->b->ws)) {
        p->messages = 1;

        for (i = 0; i < 2; i++) {
            if (ngx_stream_rustdesk_relay_message_init(side[i],
                                                NGX_RUSTDESK_RELAY_MESSAGE_MAX)
                != NGX_OK)
            {
                ngx_stream_rustdesk_relay_close_side(p->b);
                ngx_stream_rustdesk_relay_close_side(p->a);
                return;
            }
        }
    }

    p->start = ngx_current_msec;
    p->last_traffic = p->start;
    p->last_tick = p->start;
    p->tokens_last = p->start;

    /* a TLS client's carrier (pipe) is not a pair: its real pair counts */

    if (!p->pipe) {
        ngx_stream_rustdesk_relay_count(NGX_RUSTDESK_RELAY_S_PAIRS, 1);
        ngx_stream_rustdesk_relay_count(NGX_RUSTDESK_RELAY_S_PAIRS_ACTIVE, 1);
        ngx_stream_rustdesk_relay_count(NGX_RUSTDESK_RELAY_S_BYTES, p->total);
    }

    /* the usage line is the second one's, as hbbr keeps it */

    if (!p->pipe) {
        c = p->b->connection;
        len = ngx_sock_ntop(c->sockaddr, c->socklen, addr, NGX_SOCKADDR_STRLEN,
                            1);
        p->usage = ngx_rustdesk_relay_usage_add(z, addr, len);
    }

    /* the lists as they are now: a waiter may have been listed meanwhile */

    if (ngx_stream_rustdesk_relay_lists(p) != NGX_OK) {
        return;
    }

    p->tick.handler = ngx_stream_rustdesk_relay_tick;
    p->tick.data = p;
    p->tick.log = p->a->connection->log;

    /* not cancelable: a graceful shutdown lets live relays finish */
    ngx_add_timer(&p->tick, NGX_RUSTDESK_RELAY_TICK);

    ngx_stream_rustdesk_relay_process(p);
}


static void
ngx_stream_rustdesk_relay_read(ngx_event_t *rev)
{
    ngx_connection_t                  *c;
    ngx_stream_rustdesk_relay_side_t  *side;

    c = rev->data;
    side = c->data;

    if (c->close) {
        /* worker_shutdown_timeout */
        ngx_stream_rustdesk_relay_close(side->pair, " at shutdown",
                                        "shutdown");
        return;
    }

    if (rev->timedout) {
        /* a bandwidth delay is over */
        rev->timedout = 0;
        rev->delayed = 0;
    }

    ngx_stream_rustdesk_relay_process(side->pair);
}


static void
ngx_stream_rustdesk_relay_write(ngx_event_t *wev)
{
    ngx_connection_t                  *c;
    ngx_stream_rustdesk_relay_side_t  *side;

    c = wev->data;
    side = c->data;

    ngx_stream_rustdesk_relay_process(side->pair);
}


static void
ngx_stream_rustdesk_relay_process(ngx_stream_rustdesk_relay_pair_t *p)
{
    ngx_int_t                          rc;
    ngx_uint_t                         i;
    ngx_connection_t                  *c;
    ngx_stream_rustdesk_relay_side_t  *side[2];

    side[0] = p->a;
    side[1] = p->b;

    rc = ngx_stream_rustdesk_relay_move(p, p->a, p->b);

    if (rc == NGX_OK) {
        rc = ngx_stream_rustdesk_relay_move(p, p->b, p->a);
    }

    if (p->messages) {
        if (rc == NGX_OK) {
            /* b's own output (a pong) came after the a->b pass wrote */
            rc = ngx_stream_rustdesk_relay_message_write(p->b);

            if (rc == NGX_AGAIN) {
                rc = NGX_OK;
            }
        }

        if (rc != NGX_OK) {
            ngx_stream_rustdesk_relay_message_flush(p->a);
            ngx_stream_rustdesk_relay_message_flush(p->b);
        }

        if (rc == NGX_DONE) {
            ngx_stream_rustdesk_relay_close(p, "", "paired");
            return;
        }
    }

    if (rc != NGX_OK) {
        ngx_stream_rustdesk_relay_close(p, " on an error", "error");
        return;
    }

    if (p->a->shut && p->b->shut) {
        /* both sent FIN, both FINs passed on */
        ngx_stream_rustdesk_relay_close(p, "", "paired");
        return;
    }

    for (i = 0; i < 2; i++) {
        c = side[i]->connection;

        if (!side[i]->eof
            && ngx_handle_read_event(c->read, 0) != NGX_OK)
        {
            ngx_stream_rustdesk_relay_close(p, " on an error", "error");
            return;
        }

        if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
            ngx_stream_rustdesk_relay_close(p, " on an error", "error");
            return;
        }
    }
}


/*
 * Moves what src sends to dst until one of them must wait, or src has had
 * its reads for this event: its bytes as they are, or, in a pair with a
 * WebSocket side (p->messages), each of its messages framed for dst
 * (ngx_stream_rustdesk_relay_message_decode).  A FIN from src becomes a
 * shutdown of dst's writing once everything before it is written
 * (half-close, PROTOCOL.md section 7); in a pair of messages it ends the
 * pair (NGX_DONE), as does a WebSocket close: a framed stream cannot be
 * half-closed message by message.
 */

static ngx_int_t
ngx_stream_rustdesk_relay_move(ngx_stream_rustdesk_relay_pair_t *p,
    ngx_stream_rustdesk_relay_side_t *src,
    ngx_stream_rustdesk_relay_side_t *dst)
{
    ngx_int_t          rc;
    ngx_uint_t         reads;
    ngx_connection_t  *dc;

    dc = dst->connection;
    reads = 0;

    for ( ;; ) {

        /* what dst is owed: src's input itself, or dst's own output */

        if (p->messages) {
            rc = ngx_stream_rustdesk_relay_message_write(dst);

        } else {
            rc = ngx_stream_rustdesk_relay_send(dc, src->buf);
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_AGAIN) {
            break;
        }

        if (!p->messages && src->buf) {
            (void) ngx_stream_rustdesk_relay_buf_drained(&src->buf);
        }

        if (p->messages) {
            /* what src sent, decoded into dst's output */

            rc = ngx_stream_rustdesk_relay_message_decode(p, src, dst);

            if (rc == NGX_ERROR || rc == NGX_DONE) {
                return rc;
            }

            if (dst->out && dst->out->pos < dst->out->last) {
                continue;
            }

            if (src->held) {
                /* unreachable: an empty output always takes a message */
                break;
            }
        }

        if (src->eof) {
            if (p->messages) {
                return NGX_DONE;
            }

            if (!src->shut) {
                src->shut = 1;

                if (shutdown(dc->fd, SHUT_WR) == -1) {
                    ngx_log_debug0(NGX_LOG_DEBUG_STREAM, dc->log,
                                   ngx_socket_errno, "shutdown() failed");
                }
            }

            break;
        }

        if (p->messages && src->buf) {
            /* the decoders take all the input they are given: it is empty */
            (void) ngx_stream_rustdesk_relay_buf_drained(&src->buf);
        }

        if (reads++ == NGX_RUSTDESK_RELAY_READS) {
            /* the rest in the next cycle, after the other connections */
            ngx_post_event(src->connection->read, &ngx_posted_next_events);
            break;
        }

        rc = ngx_stream_rustdesk_relay_recv(p, src);

        if (rc == NGX_AGAIN) {
            break;
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    ngx_stream_rustdesk_relay_release(src);

    return NGX_OK;
}


/*
 * Reads from src as much as the limits allow into src->buf (taken from
 * the free list if it has none).  NGX_OK: bytes came; NGX_DONE: src sent
 * FIN; NGX_AGAIN: nothing now (not ready, or delayed by a limit: a timer
 * on its read event brings it back); NGX_ERROR.
 */

ngx_int_t
ngx_stream_rustdesk_relay_recv(ngx_stream_rustdesk_relay_pair_t *p,
    ngx_stream_rustdesk_relay_side_t *src)
{
    size_t             size;
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_msec_t         delay;
    ngx_connection_t  *sc;

    sc = src->connection;

    if (!sc->read->ready || sc->read->delayed) {
        return NGX_AGAIN;
    }

    size = ngx_stream_rustdesk_relay_allow(p, &delay);

    if (size == 0) {
        sc->read->delayed = 1;
        ngx_add_timer(sc->read, delay);
        return NGX_AGAIN;
    }

    b = src->buf;

    if (b == NULL) {
        b = ngx_stream_rustdesk_relay_buf_get(0);
        if (b == NULL) {
            return NGX_ERROR;
        }

        src->buf = b;
    }

    size = ngx_min(size, (size_t) (b->end - b->last));

    n = sc->recv(sc, b->last, size);

    if (n == NGX_AGAIN || n == NGX_ERROR) {
        return n;
    }

    if (n == 0) {
        src->eof = 1;
        return NGX_DONE;
    }

    b->last += n;
    ngx_stream_rustdesk_relay_account(p, n);

    if (src == p->a) {
        p->from_a += n;

    } else {
        p->from_b += n;
    }

    return NGX_OK;
}


/*
 * Writes what b holds to c: NGX_OK when all is written (or there was
 * nothing), NGX_AGAIN when c must be waited for, NGX_ERROR.
 */

ngx_int_t
ngx_stream_rustdesk_relay_send(ngx_connection_t *c, ngx_buf_t *b)
{
    ssize_t  n;

    if (b == NULL || b->pos == b->last) {
        return NGX_OK;
    }

    n = c->send(c, b->pos, b->last - b->pos);

    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (n > 0) {
        b->pos += n;
    }

    return (b->pos < b->last) ? NGX_AGAIN : NGX_OK;
}


/* An empty buffer goes back to the free list. */

static void
ngx_stream_rustdesk_relay_release(ngx_stream_rustdesk_relay_side_t *side)
{
    ngx_buf_t  *b;

    b = side->buf;

    if (b && b->pos == b->last) {
        ngx_stream_rustdesk_relay_buf_put(b);
        side->buf = NULL;
    }
}


void
ngx_stream_rustdesk_relay_account(ngx_stream_rustdesk_relay_pair_t *p,
    size_t n)
{
    p->total += n;
    p->second += n;
    p->last_traffic = ngx_current_msec;

    if (p->bits) {
        p->tokens -= (int64_t) n * 1000;
    }

    if (!p->pipe) {
        ngx_rustdesk_relay_total_consume(p->conf->zone, n);
        ngx_stream_rustdesk_relay_count(NGX_RUSTDESK_RELAY_S_BYTES, n);
    }
}


/*
 * How many bytes the pair may read now, from its own bucket and the
 * shared one; 0 and *delay (ms) when it must wait.  Both directions
 * together count against the pair's rate, as in hbbr.
 */

size_t
ngx_stream_rustdesk_relay_allow(ngx_stream_rustdesk_relay_pair_t *p,
    ngx_msec_t *delay)
{
    size_t                        size, total;
    int64_t                       rate, burst;
    uint64_t                      bits;
    ngx_msec_t                    now;
    ngx_msec_int_t                elapsed;
    ngx_rustdesk_relay_limits_t  *limits;

    if (p->pipe) {
        return SIZE_MAX;
    }

    now = ngx_current_msec;
    limits = ngx_rustdesk_relay_limits(p->conf->zone);

    bits = (p->blacklisted || p->downgraded) ? limits->limit : limits->single;
    size = SIZE_MAX;

    if (bits != p->bits) {
        /* a new limit (console, lists, downgrade) starts a new bucket */
        p->bits = bits;
        p->tokens = 0;
        p->tokens_last = now;
    }

    if (bits) {
        /* tokens are in thousandths of a byte: no time is lost to rounding */

        rate = ngx_max(bits / 8, NGX_RUSTDESK_RELAY_MIN_RATE);
        burst = ngx_max(rate / NGX_RUSTDESK_RELAY_BURST,
                        NGX_RUSTDESK_RELAY_MIN_BURST) * 1000;

        elapsed = (ngx_msec_int_t) (now - p->tokens_last);

        if (elapsed > 0) {
            p->tokens += rate * ngx_min(elapsed, 1000);
            p->tokens_last = now;
        }

        if (p->tokens > burst) {
            p->tokens = burst;
        }

        if (p->tokens < 1000) {
            *delay = (ngx_msec_t) ((1000 - p->tokens) / rate) + 1;
            return 0;
        }

        size = (size_t) (p->tokens / 1000);
    }

    total = ngx_rustdesk_relay_total_allow(p->conf->zone, now, delay);

    return ngx_min(size, total);
}


static void
ngx_stream_rustdesk_relay_tick(ngx_event_t *ev)
{
    uint64_t                          speed, limit;
    ngx_msec_t                        now, elapsed, interval;
    ngx_rustdesk_relay_zone_t        *z;
    ngx_rustdesk_relay_limits_t       limits;
    ngx_stream_rustdesk_relay_pair_t *p;

    p = ev->data;
    z = p->conf->zone;
    now = ngx_current_msec;

    if (now - p->last_traffic >= p->conf->idle_timeout) {
        ngx_log_error(NGX_LOG_INFO, p->a->connection->log, 0,
                      "rustdesk: relay \"%V\" idle for %M ms",
                      &p->a->uuid, now - p->last_traffic);
        ngx_stream_rustdesk_relay_close(p, " as idle", "idle_timeout");
        return;
    }

    if (z->sh->lists_version != p->lists_version
        && ngx_stream_rustdesk_relay_lists(p) != NGX_OK)
    {
        return;
    }

    elapsed = now - p->start;
    interval = now - p->last_tick;

    speed = interval ? p->second * 8 / interval : 0;      /* bit/ms = kb/s */

    if (speed > p->highest) {
        p->highest = speed;
    }

    p->second = 0;
    p->last_tick = now;

    if (p->usage) {
        ngx_rustdesk_relay_usage_update(z, p->usage, now, elapsed,
                                        p->total * 8, p->highest, speed);
    }

    /* downgrade: a lifetime average above threshold x single (hbbr's) */

    limits = *ngx_rustdesk_relay_limits(z);

    if (!p->downgraded && !p->pipe && limits.single && elapsed > limits.start_check) {
        limit = limits.single / 1000 * limits.threshold / 100;    /* bit/ms */

        if (p->total * 8 > elapsed * limit) {
            p->downgraded = 1;
            ngx_stream_rustdesk_relay_count(
                                NGX_RUSTDESK_RELAY_S_LIMITED_DOWNGRADE, 1);

            ngx_log_error(NGX_LOG_INFO, p->a->connection->log, 0,
                          "rustdesk: relay \"%V\" downgraded, above %uL bit/ms "
                          "in %M ms", &p->a->uuid, limit, elapsed);
        }
    }

    ngx_add_timer(ev, NGX_RUSTDESK_RELAY_TICK);
}


/*
 * Applies the lists to the pair: NGX_DECLINED when an IP of it is
 * blocklisted (the pair is closed then), NGX_OK otherwise.
 */

static ngx_int_t
ngx_stream_rustdesk_relay_lists(ngx_stream_rustdesk_relay_pair_t *p)
{
    ngx_uint_t                         i;
    ngx_rustdesk_relay_zone_t         *z;
    ngx_stream_rustdesk_relay_side_t  *side[2];

    z = p->conf->zone;
    side[0] = p->a;
    side[1] = p->b;

    p->lists_version = z->sh->lists_version;
    p->blacklisted = 0;

    for (i = 0; i < 2; i++) {
        if (ngx_rustdesk_relay_list_has(z, NGX_RUSTDESK_BLOCKLIST,
                                        &side[i]->ip))
        {
            ngx_log_error(NGX_LOG_INFO, p->a->connection->log, 0,
                          "rustdesk: %V blocked", &side[i]->ip);
            ngx_stream_rustdesk_relay_close(p, " as blocked", "blocked");
            return NGX_DECLINED;
        }

        if (ngx_rustdesk_relay_list_has(z, NGX_RUSTDESK_BLACKLIST,
                                        &side[i]->ip))
        {
            p->blacklisted = 1;
        }
    }

    if (p->blacklisted && !p->was_blacklisted && !p->pipe) {
        /* counted once a pair, however often the lists change */
        p->was_blacklisted = 1;
        ngx_stream_rustdesk_relay_count(NGX_RUSTDESK_RELAY_S_LIMITED_BLACKLIST,
                                        1);
    }

    return NGX_OK;
}


/*
 * The pair ends: one log line, a's, tells of both sides (b's session, if
 * b has one here, ends quietly).
 */

static void
ngx_stream_rustdesk_relay_close(ngx_stream_rustdesk_relay_pair_t *p,
    const char *why, const char *result)
{
    if (p->closed) {
        return;
    }

    p->closed = 1;
    p->end = ngx_current_msec;
    p->a->result = result;

    if (p->tick.timer_set) {
        ngx_del_timer(&p->tick);
    }

    if (p->tick.posted) {
        ngx_delete_posted_event(&p->tick);
    }

    if (p->usage) {
        ngx_rustdesk_relay_usage_free(p->conf->zone, p->usage);
        p->usage = NULL;
    }

    if (!p->pipe) {
        ngx_stream_rustdesk_relay_count(NGX_RUSTDESK_RELAY_S_PAIRS_ACTIVE, -1);
    }

    ngx_log_error(NGX_LOG_INFO, p->a->connection->log, 0,
                  "rustdesk: relay \"%V\" closed%s, %uL bytes in %M ms",
                  &p->a->uuid, why, p->total, ngx_current_msec - p->start);

    /* b first: the pair lives in a's pool */
    ngx_stream_rustdesk_relay_close_side(p->b);
    ngx_stream_rustdesk_relay_close_side(p->a);
}


void
ngx_stream_rustdesk_relay_close_side(ngx_stream_rustdesk_relay_side_t *side)
{
    ngx_pool_t        *pool;
    ngx_connection_t  *c;

    ngx_stream_rustdesk_relay_unwait(side);
    ngx_stream_rustdesk_relay_message_free(side);

    if (side->buf) {
        ngx_stream_rustdesk_relay_buf_put(side->buf);
        side->buf = NULL;
    }

    if (side->session) {
        if (side->quiet) {
            ngx_stream_rustdesk_relay_finalize_quiet(side);
            return;
        }

        ngx_stream_finalize_session(side->session, NGX_STREAM_OK);
        return;
    }

    c = side->connection;
    pool = c->pool;

    ngx_close_connection(c);
    ngx_destroy_pool(pool);
}


/*
 * A session whose partner's log line tells of it ends without a line of
 * its own: nginx's log phase finds, for this session alone, the log
 * module's configuration without access_log (as created, unmerged).
 */

static void
ngx_stream_rustdesk_relay_finalize_quiet(ngx_stream_rustdesk_relay_side_t *side)
{
    void                                  **srv_conf;
    ngx_stream_session_t                   *s;
    ngx_stream_rustdesk_relay_main_conf_t  *lmcf;

    s = side->session;
    lmcf = ngx_stream_get_module_main_conf(s, ngx_stream_rustdesk_relay_module);

    srv_conf = ngx_palloc(s->connection->pool,
                          ngx_stream_max_module * sizeof(void *));

    if (srv_conf && lmcf->unlogged) {
        ngx_memcpy(srv_conf, s->srv_conf,
                   ngx_stream_max_module * sizeof(void *));
        srv_conf[ngx_stream_log_module.ctx_index] = lmcf->unlogged;
        s->srv_conf = srv_conf;
    }

    ngx_stream_finalize_session(s, NGX_STREAM_OK);
}


void
ngx_stream_rustdesk_relay_buf_init(size_t size)
{
    ngx_stream_rustdesk_relay_buffer_size = size;
}


/*
 * size: at least this many bytes (0: the configured buffer size; a size
 * below it gets exactly that, for the few bytes that follow a request).
 */

ngx_buf_t *
ngx_stream_rustdesk_relay_buf_get(size_t size)
{
    ngx_buf_t  *b;

    if (size == 0) {
        size = ngx_stream_rustdesk_relay_buffer_size;
    }

    b = ngx_stream_rustdesk_relay_free;

    if (b && size == ngx_stream_rustdesk_relay_buffer_size) {
        ngx_stream_rustdesk_relay_nfree--;
        ngx_stream_rustdesk_relay_free = b->shadow;
        b->shadow = NULL;
        b->pos = b->start;
        b->last = b->start;
        return b;
    }

    b = ngx_alloc(sizeof(ngx_buf_t) + size, ngx_cycle->log);
    if (b == NULL) {
        return NULL;
    }

    ngx_memzero(b, sizeof(ngx_buf_t));

    b->start = (u_char *) b + sizeof(ngx_buf_t);
    b->end = b->start + size;
    b->pos = b->start;
    b->last = b->start;
    b->temporary = 1;

    return b;
}


void
ngx_stream_rustdesk_relay_buf_put(ngx_buf_t *b)
{
    if ((size_t) (b->end - b->start) != ngx_stream_rustdesk_relay_buffer_size
        || ngx_stream_rustdesk_relay_nfree >= NGX_RUSTDESK_RELAY_SPARE)
    {
        ngx_free(b);
        return;
    }

    b->shadow = ngx_stream_rustdesk_relay_free;
    ngx_stream_rustdesk_relay_free = b;
    ngx_stream_rustdesk_relay_nfree++;
}


/*
 * After its bytes are written: a standard buffer is kept for the next
 * read, a small one (the bytes after a request) is let go.
 */

ngx_buf_t *
ngx_stream_rustdesk_relay_buf_drained(ngx_buf_t **bp)
{
    ngx_buf_t  *b;

    b = *bp;

    if ((size_t) (b->end - b->start) != ngx_stream_rustdesk_relay_buffer_size)
    {
        ngx_free(b);
        *bp = NULL;
        return NULL;
    }

    b->pos = b->start;
    b->last = b->start;

    return b;
}
