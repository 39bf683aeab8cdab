/*
 * The peer table's index and cells in the shared zone.
 *
 * The index is an array of slots made with the zone, sized for as many
 * peers as the zone could ever hold, at most 70% full: linear probing
 * from the slot the id's hash falls on, a slot holding the hash and the
 * record's offset, so that a lookup compares the id of one record only
 * (unless two ids share all 32 bits).  The slot also holds what a
 * heartbeat reads and writes (the registration time and the heartbeat's
 * key), and each record the number of its slot, kept as slots shift.
 * The hash is SipHash keyed with random bytes of the zone's own, so
 * nobody can choose ids that pile up in one place.  A deleted slot is
 * filled by shifting the run that follows it back (no tombstones).
 *
 * Records live in cells of three sizes carved from slab pages, with the
 * page's head in its first 64 bytes: a real client's record fits the
 * smallest (25 to a 4 KiB page).  Each page keeps its free cells in a
 * list; the pages of a size with a free cell are in a queue, and all
 * pages in another, which the sweep of the eviction walks round.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include <sodium.h>

#include "ngx_stream_rustdesk_rendezvous_table.h"
#include "ngx_stream_rustdesk_rendezvous_peer.h"
#include "ngx_stream_rustdesk_rendezvous_history.h"


#define NGX_RUSTDESK_TABLE_LOAD      70        /* % of the slots at most */


static void ngx_rustdesk_table_page_free(ngx_rustdesk_table_t *t,
    ngx_slab_pool_t *pool, ngx_rustdesk_cell_page_t *page);
static ngx_rustdesk_slot_t *ngx_rustdesk_table_slot(ngx_rustdesk_table_t *t,
    ngx_slab_pool_t *pool, ngx_rustdesk_peer_t *p);


static size_t  ngx_rustdesk_cell_sizes[NGX_RUSTDESK_CELL_CLASSES] = {
    NGX_RUSTDESK_PEER_CELL, 320, 704
};


#define ngx_rustdesk_table_home(t, h)                                        \
    ((ngx_uint_t) (((uint64_t) (h) * (t)->nslots) >> 32))

#define ngx_rustdesk_cell_page(p)                                            \
    ((ngx_rustdesk_cell_page_t *) ((uintptr_t) (p) & ~(ngx_pagesize - 1)))

#define ngx_rustdesk_cell_next(p)  (*(uint16_t *) (p))

#define ngx_rustdesk_cell_index(page, p)                                     \
    (((u_char *) (p) - (u_char *) (page) - NGX_RUSTDESK_CELL_PAGE_HEAD)      \
     / ngx_rustdesk_cell_sizes[(page)->cls])


/*
 * As many slots as would keep the index 70% full in a zone of nothing but
 * peers in the smallest cells: slots * (0.7 * cell cost + slot) = size.
 */

ngx_int_t
ngx_rustdesk_table_init(ngx_rustdesk_table_t *t, ngx_slab_pool_t *pool,
    size_t size, ngx_uint_t fresh)
{
    ngx_uint_t  i, ncells;

    ngx_memzero(t, sizeof(ngx_rustdesk_table_t));

    ngx_queue_init(&t->pages);
    t->hand = &t->pages;

    for (i = 0; i < NGX_RUSTDESK_CELL_CLASSES; i++) {
        ngx_queue_init(&t->cells[i].partial);
    }

    randombytes_buf(t->key, NGX_RUSTDESK_TABLE_KEY);

    ncells = (ngx_pagesize - NGX_RUSTDESK_CELL_PAGE_HEAD)
             / NGX_RUSTDESK_PEER_CELL;

    t->nslots = (ngx_uint_t) ((uint64_t) size * ncells * 100
                              / (NGX_RUSTDESK_TABLE_LOAD * ngx_pagesize
                                 + sizeof(ngx_rustdesk_slot_t) * 100
                                   * ncells));

    t->nslots = ngx_max(t->nslots, 16);
    t->max = t->nslots * NGX_RUSTDESK_TABLE_LOAD / 100;

    /*
     * The slab hands out the pages of a new pool untouched (but where it
     * junks memory for debugging), and new shared memory is all zeroes:
     * zeroing an index of 100 MB and more again would touch every page of
     * it at start (0.5 s more at 10 M peers), and keep it in the master.
     */

#if (NGX_DEBUG_MALLOC || NGX_HAVE_DEBUG_MALLOC)
    fresh = 0;
#endif

    t->slots = ngx_slab_alloc(pool, t->nslots * sizeof(ngx_rustdesk_slot_t));
    if (t->slots == NULL) {
        return NGX_ERROR;
    }

    if (!fresh) {
        ngx_memzero(t->slots, t->nslots * sizeof(ngx_rustdesk_slot_t));
    }

    return NGX_OK;
}


uint64_t
ngx_rustdesk_table_id_hash(ngx_rustdesk_table_t *t, u_char *id, size_t len)
{
    uint64_t  h;

    (void) crypto_shorthash((u_char *) &h, id, len, t->key);

    return h;
}


/*
 * The key hashes the id's own 64-bit hash with the address, port
 * included: an address that changes (or a port) is another key.
 */

uint64_t
ngx_rustdesk_table_beat(ngx_rustdesk_table_t *t, uint64_t id_hash,
    ngx_rustdesk_ip_t *addr)
{
    u_char    buf[8 + 4 + 16];
    uint64_t  h;

    ngx_memcpy(buf, &id_hash, 8);

    buf[8] = addr->family;
    buf[9] = 0;
    ngx_memcpy(&buf[10], &addr->port, 2);
    ngx_memzero(&buf[12], 16);
    ngx_memcpy(&buf[12], addr->addr, addr->family == AF_INET ? 4 : 16);

    (void) crypto_shorthash((u_char *) &h, buf, sizeof(buf), t->key);

    return h ? h : 1;
}


ngx_rustdesk_slot_t *
ngx_rustdesk_table_find_beat(ngx_rustdesk_table_t *t, uint32_t hash,
    uint64_t beat)
{
    ngx_uint_t            i;
    ngx_rustdesk_slot_t  *s;

    i = ngx_rustdesk_table_home(t, hash);

    for ( ;; ) {
        s = &t->slots[i];

        if (s->ref == 0) {
            return NULL;
        }

        if (s->hash == hash && s->beat == beat) {
            return s;
        }

        if (++i == t->nslots) {
            i = 0;
        }
    }
}


ngx_rustdesk_peer_t *
ngx_rustdesk_table_find(ngx_rustdesk_table_t *t, ngx_slab_pool_t *pool,
    u_char *id, size_t len, uint32_t hash)
{
    ngx_uint_t            i;
    ngx_rustdesk_slot_t  *s;
    ngx_rustdesk_peer_t  *p;

    i = ngx_rustdesk_table_home(t, hash);

    for ( ;; ) {
        s = &t->slots[i];

        if (s->ref == 0) {
            return NULL;
        }

        if (s->hash == hash) {
            p = ngx_rustdesk_zone_ptr(pool, s->ref);

            if (p->id_len == len
                && ngx_memcmp(ngx_rustdesk_peer_id_data(p), id, len) == 0)
            {
                return p;
            }
        }

        if (++i == t->nslots) {
            i = 0;
        }
    }
}


ngx_int_t
ngx_rustdesk_table_insert(ngx_rustdesk_table_t *t, ngx_slab_pool_t *pool,
    ngx_rustdesk_peer_t *p, uint32_t hash)
{
    ngx_uint_t  i;

    if (t->n >= t->max) {
        return NGX_DECLINED;
    }

    i = ngx_rustdesk_table_home(t, hash);

    while (t->slots[i].ref) {
        if (++i == t->nslots) {
            i = 0;
        }
    }

    t->slots[i].hash = hash;
    t->slots[i].ref = ngx_rustdesk_zone_ref(pool, p);
    t->slots[i].beat = 0;
    t->slots[i].last_reg = 0;
    p->slot = (uint32_t) i;
    t->n++;

    return NGX_OK;
}


/*
 * The slot is emptied, and the run after it shifted back into it as far
 * as each entry's home slot allows (Knuth's algorithm R), so that every
 * entry stays reachable from its home without a gap.
 */

void
ngx_rustdesk_table_delete(ngx_rustdesk_table_t *t, ngx_slab_pool_t *pool,
    ngx_rustdesk_peer_t *p)
{
    ngx_uint_t            i, j, k;
    ngx_rustdesk_slot_t  *s;

    s = ngx_rustdesk_table_slot(t, pool, p);
    if (s == NULL) {
        return;
    }

    i = s - t->slots;
    j = i;

    for ( ;; ) {
        if (++j == t->nslots) {
            j = 0;
        }

        if (t->slots[j].ref == 0) {
            break;
        }

        k = ngx_rustdesk_table_home(t, t->slots[j].hash);

        /* an entry whose home is cyclically in (i, j] cannot move to i */

        if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j)) {
            continue;
        }

        t->slots[i] = t->slots[j];
        ((ngx_rustdesk_peer_t *) ngx_rustdesk_zone_ptr(pool,
                                      t->slots[i].ref))->slot = (uint32_t) i;
        i = j;
    }

    ngx_memzero(&t->slots[i], sizeof(ngx_rustdesk_slot_t));
    t->n--;
}


ngx_uint_t
ngx_rustdesk_table_walk(ngx_rustdesk_table_t *t, ngx_slab_pool_t *pool,
    ngx_uint_t *slot, ngx_uint_t n, ngx_rustdesk_table_visit_pt visit,
    void *data)
{
    ngx_uint_t  i, k;

    i = *slot < t->nslots ? *slot : 0;

    for (k = 0; k < n; k++) {
        if (t->slots[i].ref
            && visit(data, ngx_rustdesk_zone_ptr(pool, t->slots[i].ref)))
        {
            k++;
            i++;
            break;
        }

        i++;

        if (i == t->nslots) {
            i = 0;
        }
    }

    *slot = i < t->nslots ? i : 0;

    return k;
}


void
ngx_rustdesk_table_moved(ngx_rustdesk_table_t *t, ngx_slab_pool_t *pool,
    ngx_rustdesk_peer_t *p, ngx_rustdesk_peer_t *np)
{
    ngx_rustdesk_slot_t       *s;
    ngx_rustdesk_ip_change_t  *c;

    s = ngx_rustdesk_table_slot(t, pool, p);
    if (s) {
        s->ref = ngx_rustdesk_zone_ref(pool, np);
    }

    if (np->ip_change) {
        c = ngx_rustdesk_zone_ptr(pool, np->ip_change);
        c->peer = np;
    }
}


/* p's slot; NULL if p is not in the index (yet). */

static ngx_rustdesk_slot_t *
ngx_rustdesk_table_slot(ngx_rustdesk_table_t *t, ngx_slab_pool_t *pool,
    ngx_rustdesk_peer_t *p)
{
    if (p->slot < t->nslots
        && t->slots[p->slot].ref == ngx_rustdesk_zone_ref(pool, p))
    {
        return &t->slots[p->slot];
    }

    return NULL;
}


ngx_int_t
ngx_rustdesk_table_cell_class(size_t size)
{
    ngx_int_t  i;

    for (i = 0; i < NGX_RUSTDESK_CELL_CLASSES; i++) {
        if (size <= ngx_rustdesk_cell_sizes[i]) {
            return i;
        }
    }

    return -1;
}


size_t
ngx_rustdesk_table_cell_room(ngx_rustdesk_peer_t *p)
{
    return ngx_rustdesk_cell_sizes[ngx_rustdesk_cell_page(p)->cls];
}


ngx_rustdesk_peer_t *
ngx_rustdesk_table_page_cell(ngx_rustdesk_cell_page_t *page, ngx_uint_t i)
{
    return (ngx_rustdesk_peer_t *) ((u_char *) page
                                    + NGX_RUSTDESK_CELL_PAGE_HEAD
                                    + i * ngx_rustdesk_cell_sizes[page->cls]);
}


ngx_rustdesk_peer_t *
ngx_rustdesk_table_cell_alloc(ngx_rustdesk_table_t *t, ngx_slab_pool_t *pool,
    size_t size)
{
    ngx_int_t                  cls;
    ngx_uint_t                 i, n;
    ngx_queue_t               *q;
    ngx_rustdesk_peer_t       *p;
    ngx_rustdesk_cells_t      *cells;
    ngx_rustdesk_cell_page_t  *page;

    cls = ngx_rustdesk_table_cell_class(size);
    if (cls < 0) {
        return NULL;
    }

    cells = &t->cells[cls];

    if (ngx_queue_empty(&cells->partial)) {
        page = ngx_slab_alloc_locked(pool, ngx_pagesize);
        if (page == NULL) {
            return NULL;
        }

        n = (ngx_pagesize - NGX_RUSTDESK_CELL_PAGE_HEAD)
            / ngx_rustdesk_cell_sizes[cls];

        page->cls = (uint16_t) cls;
        page->ncells = (uint16_t) n;
        page->used = 0;
        page->free = 1;

        for (i = 0; i < n; i++) {
            p = ngx_rustdesk_table_page_cell(page, i);
            p->id_len = 0;
            ngx_rustdesk_cell_next(p) = (uint16_t) (i + 1 < n ? i + 2 : 0);
        }

        ngx_queue_insert_tail(&t->pages, &page->queue);
        ngx_queue_insert_tail(&cells->partial, &page->partial);
        t->npages++;
        cells->npages++;
        cells->nfree += n;
    }

    q = ngx_queue_head(&cells->partial);
    page = ngx_queue_data(q, ngx_rustdesk_cell_page_t, partial);

    p = ngx_rustdesk_table_page_cell(page, page->free - 1);
    page->free = ngx_rustdesk_cell_next(p);
    page->used++;
    cells->nfree--;

    if (page->free == 0) {
        ngx_queue_remove(&page->partial);
    }

    return p;
}


void
ngx_rustdesk_table_cell_free(ngx_rustdesk_table_t *t, ngx_slab_pool_t *pool,
    ngx_rustdesk_peer_t *p)
{
    ngx_rustdesk_cells_t      *cells;
    ngx_rustdesk_cell_page_t  *page;

    page = ngx_rustdesk_cell_page(p);
    cells = &t->cells[page->cls];

    p->id_len = 0;
    ngx_rustdesk_cell_next(p) = page->free;

    if (page->free == 0) {
        ngx_queue_insert_tail(&cells->partial, &page->partial);
    }

    page->free = (uint16_t) (ngx_rustdesk_cell_index(page, p) + 1);
    page->used--;
    cells->nfree++;

    if (page->used == 0) {
        /* the whole page goes back: anything may use it now */
        ngx_queue_remove(&page->partial);
        cells->nfree -= page->ncells;
        ngx_rustdesk_table_page_free(t, pool, page);
    }
}


static void
ngx_rustdesk_table_page_free(ngx_rustdesk_table_t *t, ngx_slab_pool_t *pool,
    ngx_rustdesk_cell_page_t *page)
{
    if (t->hand == &page->queue) {
        t->hand = ngx_queue_next(t->hand);
    }

    ngx_queue_remove(&page->queue);
    t->npages--;
    t->cells[page->cls].npages--;

    ngx_slab_free_locked(pool, page);
}


ngx_rustdesk_cell_page_t *
ngx_rustdesk_table_sweep_page(ngx_rustdesk_table_t *t)
{
    ngx_queue_t  *q;

    if (ngx_queue_empty(&t->pages)) {
        return NULL;
    }

    q = t->hand;

    if (q == &t->pages) {
        q = ngx_queue_head(&t->pages);
    }

    t->hand = ngx_queue_next(q);

    return ngx_queue_data(q, ngx_rustdesk_cell_page_t, queue);
}


ngx_uint_t
ngx_rustdesk_table_compact(ngx_rustdesk_table_t *t, ngx_slab_pool_t *pool,
    ngx_rustdesk_cell_page_t *page)
{
    size_t                 size;
    ngx_uint_t             i, room;
    ngx_rustdesk_peer_t   *p, *np;
    ngx_rustdesk_cells_t  *cells;

    cells = &t->cells[page->cls];
    room = cells->nfree;

    if (page->free) {
        room -= page->ncells - page->used;
    }

    if (room < page->used
        || (t->busy && ngx_rustdesk_cell_page(t->busy) == page))
    {
        return 0;
    }

    /* out of the pages with room, so that no record moves into it */

    if (page->free) {
        ngx_queue_remove(&page->partial);
        cells->nfree -= page->ncells - page->used;
        page->free = 0;
    }

    size = ngx_rustdesk_cell_sizes[page->cls];

    for (i = 0; i < page->ncells; i++) {
        p = ngx_rustdesk_table_page_cell(page, i);

        if (p->id_len == 0) {
            continue;
        }

        np = ngx_rustdesk_table_cell_alloc(t, pool, size);

        ngx_memcpy(np, p, size);
        ngx_rustdesk_table_moved(t, pool, p, np);
    }

    ngx_rustdesk_table_page_free(t, pool, page);

    return 1;
}


/*
 * The sweep: page after page of cells from where the last one stopped,
 * each peer offered to evict() (which frees it if it may go), until there
 * is what is wanted or npages pages were seen: a free cell for a record
 * of size bytes, or a whole page back in the slab (size 0, for anything
 * else).  Evictions that leave a page with peers empty it anyway when
 * free cells of other pages can take them: the page seen with the fewest
 * peers is moved out, at once for a page, at the end for a cell (which
 * then comes from the page freed).  Returns how many peers went or moved
 * out of a page; t->busy is left alone.
 */

ngx_uint_t
ngx_rustdesk_table_sweep(ngx_rustdesk_table_t *t, ngx_slab_pool_t *pool,
    size_t size, ngx_uint_t npages, ngx_rustdesk_table_evict_pt evict,
    void *data)
{
    ngx_int_t                  cls;
    ngx_uint_t                 i, k, n, pages, last;
    ngx_rustdesk_peer_t       *p;
    ngx_rustdesk_cell_page_t  *page, *emptiest;

    cls = size ? ngx_rustdesk_table_cell_class(size) : -1;

    n = 0;
    pages = t->npages;
    emptiest = NULL;

    for (k = 0; k < npages && k < pages; k++) {

        page = ngx_rustdesk_table_sweep_page(t);
        if (page == NULL) {
            break;
        }

        last = 0;

        for (i = 0; i < page->ncells; i++) {
            p = ngx_rustdesk_table_page_cell(page, i);

            if (p->id_len == 0 || p == t->busy) {
                continue;
            }

            /* the last peer of a page takes the page with it */
            last = (page->used == 1);

            if (evict(data, p)) {
                n++;

                if (last) {
                    break;
                }
            }

            last = 0;
        }

        if (last) {
            /* a page is back in the slab: anything may use it */
            return n;
        }

        if (cls >= 0 && t->cells[cls].nfree) {
            return n;
        }

        if (emptiest && emptiest->used <= page->used) {
            continue;
        }

        if (cls < 0 && ngx_rustdesk_table_compact(t, pool, page)) {
            return n + 1;
        }

        emptiest = page;
    }

    /* the free cells of later pages may be enough now */

    if (emptiest && ngx_rustdesk_table_compact(t, pool, emptiest)) {
        n++;
    }

    return n;
}
