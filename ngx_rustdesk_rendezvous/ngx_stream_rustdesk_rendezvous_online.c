/*
 * The count of peers online, per second of registration
 * (ngx_stream_rustdesk_rendezvous_online.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_online.h"


static void ngx_rustdesk_online_add(ngx_rustdesk_online_t *o,
    ngx_uint_t live, ngx_msec_t last_reg, ngx_int_t delta);
static ngx_uint_t ngx_rustdesk_online_sum(ngx_rustdesk_online_t *o,
    ngx_uint_t live, uint32_t now, ngx_msec_t ttl);


ngx_int_t
ngx_rustdesk_online_init(ngx_rustdesk_online_t *o, ngx_slab_pool_t *pool,
    size_t zone_size)
{
    size_t      size;
    ngx_uint_t  i, slots;

    slots = NGX_RUSTDESK_ONLINE_SLOTS_MIN;

    while (slots < NGX_RUSTDESK_ONLINE_SLOTS_MAX
           && 2 * slots * 2 * sizeof(ngx_rustdesk_online_slot_t)
              <= zone_size / 64)
    {
        slots *= 2;
    }

    size = slots * sizeof(ngx_rustdesk_online_slot_t);

    for (i = 0; i < 2; i++) {
        o->ring[i] = ngx_slab_calloc(pool, size);
        if (o->ring[i] == NULL) {
            return NGX_ERROR;
        }
    }

    o->mask = slots - 1;

    return NGX_OK;
}


void
ngx_rustdesk_online_move(ngx_rustdesk_online_t *o, ngx_msec_t was,
    ngx_uint_t was_live, ngx_msec_t last_reg, ngx_uint_t live)
{
    /* a heartbeat within the same second changes no count */

    if (was_live == live && was / 1000 == last_reg / 1000
        && was != 0 && last_reg != 0)
    {
        return;
    }

    if (was) {
        ngx_rustdesk_online_add(o, was_live, was, -1);
    }

    if (last_reg) {
        ngx_rustdesk_online_add(o, live, last_reg, 1);
    }
}


ngx_uint_t
ngx_rustdesk_online_count(ngx_rustdesk_online_t *o, ngx_msec_t now,
    ngx_msec_t udp_ttl, ngx_msec_t stream_ttl)
{
    uint32_t  second;

    second = (uint32_t) (now / 1000);

    return ngx_rustdesk_online_sum(o, 0, second, udp_ttl)
           + ngx_rustdesk_online_sum(o, 1, second, ngx_max(udp_ttl,
                                                          stream_ttl));
}


/*
 * A slot holds one second at a time: a registration in a later second
 * takes the slot over, and a peer counted in the second it held before
 * finds it taken and has nothing to take back.
 */

static void
ngx_rustdesk_online_add(ngx_rustdesk_online_t *o, ngx_uint_t live,
    ngx_msec_t last_reg, ngx_int_t delta)
{
    uint32_t                     second;
    ngx_rustdesk_online_slot_t  *s;

    second = (uint32_t) (last_reg / 1000);
    s = &o->ring[live][second & o->mask];

    if (delta > 0) {
        if (s->second != second) {
            s->second = second;
            s->n = 0;
        }

        s->n++;

    } else if (s->second == second && s->n) {
        s->n--;
    }
}


static ngx_uint_t
ngx_rustdesk_online_sum(ngx_rustdesk_online_t *o, ngx_uint_t live,
    uint32_t now, ngx_msec_t ttl)
{
    int32_t                      age, window;
    ngx_uint_t                   i, n;
    ngx_rustdesk_online_slot_t  *s;

    /*
     * a second counts while any of it is within ttl; a second or two
     * ahead is another worker's clock, a little ahead of this one's
     */

    window = (int32_t) ((ttl + 999) / 1000);

    if (window > (int32_t) o->mask - 2) {
        window = (int32_t) o->mask - 2;
    }

    n = 0;
    s = o->ring[live];

    for (i = 0; i <= o->mask; i++) {
        if (s[i].n == 0) {
            continue;
        }

        age = (int32_t) (now - s[i].second);

        if (age >= -2 && age <= window) {
            n += s[i].n;
        }
    }

    return n;
}
