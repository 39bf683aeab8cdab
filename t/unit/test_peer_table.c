/*
 * Unit tests of the rendezvous server's peer table
 * (ngx_rustdesk_rendezvous/ngx_stream_rustdesk_rendezvous_table.c): the
 * hash index (lookups, deletion with backward shifts, wrap-around), the
 * pages of cells (a page back to the slab once empty), the sweep of the
 * eviction (bounded, leaves the busy record alone), the compaction of a
 * page (records move, their slots and IP change histories follow) and the
 * walk over the index in slices (each record once a round; its cost at
 * 1 M peers printed).
 *
 * Compiled with nginx's headers and against a small slab of its own (the
 * page and chunk allocator of ngx_slab.c, as the table sees it), so that
 * a zone can be filled and emptied exactly.  Same runner conventions as
 * test_common.c: the last line is "N passed, N failed".
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <sodium.h>

#include "ngx_stream_rustdesk_rendezvous_table.h"
#include "ngx_stream_rustdesk_rendezvous_peer.h"
#include "ngx_stream_rustdesk_rendezvous_history.h"


#define MAX_FAILURES_SHOWN  50

/*
 * The test's own mark of a peer, in its slot's registration time: it
 * follows the record only while the record knows its slot.
 */
#define MARK(p)  (ngx_rustdesk_table_peer_slot(&table, p)->last_reg)


static unsigned long  passed;
static unsigned long  failed;
static const char    *context = "";


static void
check(int ok, const char *expr, const char *file, int line)
{
    if (ok) {
        passed++;
        return;
    }

    failed++;

    if (failed <= MAX_FAILURES_SHOWN) {
        fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n",
                file, line, context, expr);
    }
}


static void
check_eq(unsigned long long a, unsigned long long b, const char *ea,
    const char *eb, const char *file, int line)
{
    if (a == b) {
        passed++;
        return;
    }

    failed++;

    if (failed <= MAX_FAILURES_SHOWN) {
        fprintf(stderr, "%s:%d: [%s] CHECK_EQ failed: %s == %s (%llu != %llu)"
                "\n", file, line, context, ea, eb, a, b);
    }
}


#define CHECK(expr)                                                         \
    check((expr) ? 1 : 0, #expr, __FILE__, __LINE__)

#define CHECK_EQ(a, b)                                                      \
    check_eq((unsigned long long) (a), (unsigned long long) (b), #a, #b,    \
             __FILE__, __LINE__)


static uint64_t  rng_state = 0x9E3779B97F4A7C15ULL;


static uint64_t
rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;

    return rng_state * 0x2545F4914F6CDD1DULL;
}


/* ------------------------------------------------------------------ */
/* a slab of test_npages pages, as the table uses nginx's               */

ngx_uint_t  ngx_pagesize = 4096;
ngx_uint_t  ngx_pagesize_shift = 12;


#define PAGE_FREE    0
#define PAGE_START   1                  /* of a run of whole pages */
#define PAGE_BUSY    2                  /* the rest of that run */
#define PAGE_CHUNKS  3                  /* small chunks of one size */


typedef struct {
    u_char       state;
    size_t       run;                   /* PAGE_START: pages */
    size_t       chunk;                 /* PAGE_CHUNKS: their size */
    ngx_uint_t   used;
    u_char      *free;                  /* list through the free chunks */
} test_page_t;


static u_char          *test_mem;       /* the pool head, then the pages */
static u_char          *test_start;
static test_page_t     *test_pages;
static size_t           test_npages;
static ngx_slab_pool_t *test_pool;


static void
test_slab_init(size_t npages)
{
    free(test_mem);
    free(test_pages);

    /* the pool head in a page of its own, as records refer to it */

    test_mem = aligned_alloc(ngx_pagesize, (npages + 1) * ngx_pagesize);
    test_pages = calloc(npages, sizeof(test_page_t));

    if (test_mem == NULL || test_pages == NULL) {
        perror("alloc");
        exit(2);
    }

    memset(test_mem, 0xa5, (npages + 1) * ngx_pagesize);

    test_pool = (ngx_slab_pool_t *) test_mem;
    test_start = test_mem + ngx_pagesize;
    test_npages = npages;
}


static size_t
test_slab_free_pages(void)
{
    size_t  i, n;

    for (i = 0, n = 0; i < test_npages; i++) {
        n += (test_pages[i].state == PAGE_FREE);
    }

    return n;
}


static void *
test_pages_alloc(size_t n)
{
    size_t  i, k;

    for (i = 0; i + n <= test_npages; i++) {
        for (k = 0; k < n && test_pages[i + k].state == PAGE_FREE; k++) {
            /* void */
        }

        if (k < n) {
            i += k;
            continue;
        }

        test_pages[i].state = PAGE_START;
        test_pages[i].run = n;

        for (k = 1; k < n; k++) {
            test_pages[i + k].state = PAGE_BUSY;
        }

        return test_start + i * ngx_pagesize;
    }

    return NULL;
}


void *
ngx_slab_alloc_locked(ngx_slab_pool_t *pool, size_t size)
{
    u_char       *p, *c;
    size_t        chunk, i;
    test_page_t  *pg;

    if (size > ngx_pagesize / 2) {
        return test_pages_alloc((size + ngx_pagesize - 1) / ngx_pagesize);
    }

    for (chunk = 8; chunk < size; chunk <<= 1) { /* void */ }

    for (i = 0; i < test_npages; i++) {
        pg = &test_pages[i];

        if (pg->state == PAGE_CHUNKS && pg->chunk == chunk && pg->free) {
            c = pg->free;
            pg->free = *(u_char **) c;
            pg->used++;
            return c;
        }
    }

    p = test_pages_alloc(1);
    if (p == NULL) {
        return NULL;
    }

    pg = &test_pages[(p - test_start) / ngx_pagesize];
    pg->state = PAGE_CHUNKS;
    pg->chunk = chunk;
    pg->used = 1;
    pg->free = NULL;

    for (i = ngx_pagesize / chunk - 1; i > 0; i--) {
        c = p + i * chunk;
        *(u_char **) c = pg->free;
        pg->free = c;
    }

    return p;
}


void *
ngx_slab_alloc(ngx_slab_pool_t *pool, size_t size)
{
    return ngx_slab_alloc_locked(pool, size);
}


void
ngx_slab_free_locked(ngx_slab_pool_t *pool, void *p)
{
    size_t        i, k;
    test_page_t  *pg;

    i = ((u_char *) p - test_start) / ngx_pagesize;
    pg = &test_pages[i];

    if (pg->state == PAGE_CHUNKS) {
        *(u_char **) p = pg->free;
        pg->free = p;

        if (--pg->used == 0) {
            pg->state = PAGE_FREE;
        }

        return;
    }

    CHECK(pg->state == PAGE_START
          && (u_char *) p == test_start + i * ngx_pagesize);

    for (k = 0; k < pg->run; k++) {
        test_pages[i + k].state = PAGE_FREE;
    }
}


/* ------------------------------------------------------------------ */
/* records                                                              */

static ngx_rustdesk_table_t  table;


static void
make_id(u_char *id, size_t *len, ngx_uint_t i, ngx_uint_t long_id)
{
    *len = snprintf((char *) id, 32, "%lu", (unsigned long) (100000000 + i));

    if (long_id) {
        /* a record for the bigger cells */
        ngx_memset(id + *len, 'x', 60);
        *len += 60;
    }
}


/* A record for peer i (id, 36-byte uuid, 32-byte key), in the index. */
static ngx_rustdesk_peer_t *
add_peer(ngx_uint_t i, ngx_uint_t long_id)
{
    u_char               id[100];
    size_t               len, size;
    ngx_rustdesk_peer_t  *p;

    make_id(id, &len, i, long_id);

    size = offsetof(ngx_rustdesk_peer_t, data) + len + 36 + 32;

    p = ngx_rustdesk_table_cell_alloc(&table, test_pool, size);
    if (p == NULL) {
        return NULL;
    }

    ngx_memzero(p, offsetof(ngx_rustdesk_peer_t, data));
    p->id_len = (u_char) len;
    p->uuid_len = 36;
    p->pk_len = 32;
    ngx_memcpy(ngx_rustdesk_peer_id_data(p), id, len);
    ngx_memset(ngx_rustdesk_peer_uuid_data(p), 'u', 36);
    ngx_memset(ngx_rustdesk_peer_pk_data(p), (u_char) i, 32);

    if (ngx_rustdesk_table_insert(&table, test_pool, p,
                                  ngx_rustdesk_table_hash(&table, id, len))
        != NGX_OK)
    {
        ngx_rustdesk_table_cell_free(&table, test_pool, p);
        return NULL;
    }

    MARK(p) = i;

    return p;
}


static ngx_rustdesk_peer_t *
find_peer(ngx_uint_t i, ngx_uint_t long_id)
{
    u_char  id[100];
    size_t  len;

    make_id(id, &len, i, long_id);

    return ngx_rustdesk_table_find(&table, test_pool, id, len,
                                   ngx_rustdesk_table_hash(&table, id, len));
}


static void
del_peer(ngx_rustdesk_peer_t *p)
{
    ngx_rustdesk_table_delete(&table, test_pool, p);
    ngx_rustdesk_table_cell_free(&table, test_pool, p);
}


/* The record of peer i is found, and is its own. */
static int
peer_ok(ngx_uint_t i, ngx_uint_t long_id)
{
    ngx_rustdesk_peer_t  *p;

    p = find_peer(i, long_id);

    return p != NULL
           && MARK(p) == i
           && p->uuid_len == 36 && p->pk_len == 32
           && ngx_rustdesk_peer_pk_data(p)[31] == (u_char) i;
}


/* ------------------------------------------------------------------ */
/* the index                                                            */

static void
test_index(void)
{
    ngx_uint_t            i, n, round, found;
    ngx_uint_t            order[2000];
    ngx_rustdesk_peer_t  *p;
    u_char                present[2000];

    context = "index";

    /* a small index: long runs, wrap-around, every deletion checked */

    for (round = 0; round < 40; round++) {
        test_slab_init(256);

        CHECK(ngx_rustdesk_table_init(&table, test_pool, 16384, 0) == NGX_OK);
        CHECK(table.nslots >= 16 && table.nslots < 200);
        CHECK_EQ(table.max, table.nslots * 70 / 100);

        for (n = 0; n < table.max; n++) {
            CHECK(add_peer(round * 1000 + n, 0) != NULL);
        }

        CHECK_EQ(table.n, table.max);

        /* one more is refused: the index is at its load */
        CHECK(add_peer(round * 1000 + n, 0) == NULL);

        for (i = 0; i < n; i++) {
            order[i] = i;
            present[i] = 1;
        }

        for (i = n - 1; i > 0; i--) {
            ngx_uint_t  j, tmp;

            j = rnd() % (i + 1);
            tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }

        for (i = 0; i < n; i++) {
            p = find_peer(round * 1000 + order[i], 0);
            CHECK(p != NULL);

            if (p == NULL) {
                continue;
            }

            del_peer(p);
            present[order[i]] = 0;

            /* everything left is still reachable, the rest is not */

            for (found = 0; found < n; found++) {
                if (present[found]) {
                    CHECK(peer_ok(round * 1000 + found, 0));

                } else {
                    CHECK(find_peer(round * 1000 + found, 0) == NULL);
                }
            }
        }

        CHECK_EQ(table.n, 0);
        CHECK_EQ(table.npages, 0);

        for (i = 0; i < table.nslots; i++) {
            CHECK_EQ(table.slots[i].ref, 0);
        }
    }

    /* a bigger one: insert, delete half, insert again */

    test_slab_init(2048);
    CHECK(ngx_rustdesk_table_init(&table, test_pool, 1024 * 1024, 0) == NGX_OK);

    for (i = 0; i < 2000; i++) {
        CHECK(add_peer(i, i % 7 == 0) != NULL);
    }

    for (i = 0; i < 2000; i += 2) {
        p = find_peer(i, i % 7 == 0);
        CHECK(p != NULL);
        if (p) {
            del_peer(p);
        }
    }

    for (i = 0; i < 2000; i++) {
        if (i % 2) {
            CHECK(peer_ok(i, i % 7 == 0));
        } else {
            CHECK(find_peer(i, i % 7 == 0) == NULL);
        }
    }

    for (i = 0; i < 2000; i += 2) {
        CHECK(add_peer(i, i % 7 == 0) != NULL);
    }

    for (found = 0, i = 0; i < 2000; i++) {
        found += peer_ok(i, i % 7 == 0);
    }

    CHECK_EQ(found, 2000);
    CHECK_EQ(table.n, 2000);

    /* an id of another length or one byte off is another id */
    CHECK(find_peer(2000, 0) == NULL);
    CHECK(find_peer(1, 1) == NULL);
}


/* ------------------------------------------------------------------ */
/* cells and pages                                                      */

static void
test_cells(void)
{
    size_t                free0, room;
    ngx_uint_t            i, n, cls;
    ngx_rustdesk_peer_t  *p, **all;

    context = "cells";

    CHECK_EQ(ngx_rustdesk_table_cell_class(offsetof(ngx_rustdesk_peer_t,
                                                    data) + 10 + 36 + 32), 0);
    CHECK_EQ(offsetof(ngx_rustdesk_peer_t, data) + 10 + 36 + 32, 155);
    CHECK_EQ(ngx_rustdesk_table_cell_class(161), 1);
    CHECK_EQ(ngx_rustdesk_table_cell_class(offsetof(ngx_rustdesk_peer_t, data)
                                           + NGX_RUSTDESK_ID_MAX
                                           + 2 * NGX_RUSTDESK_BLOB_MAX), 2);
    CHECK_EQ(ngx_rustdesk_table_cell_class(705), -1);

    for (cls = 0; cls < NGX_RUSTDESK_CELL_CLASSES; cls++) {
        test_slab_init(64);
        CHECK(ngx_rustdesk_table_init(&table, test_pool, 64 * 4096, 0)
              == NGX_OK);

        free0 = test_slab_free_pages();
        room = (cls == 0) ? 150 : (cls == 1) ? 300 : 600;

        all = calloc(free0 * 32, sizeof(ngx_rustdesk_peer_t *));

        /* cells until the slab has no page left */

        for (n = 0; ; n++) {
            p = ngx_rustdesk_table_cell_alloc(&table, test_pool, room);
            if (p == NULL) {
                break;
            }

            CHECK(((uintptr_t) p & 7) == 0);
            CHECK_EQ(ngx_rustdesk_table_cell_room(p),
                     cls == 0 ? 160 : cls == 1 ? 320 : 704);
            ngx_memset(p, 0x5a, room);      /* the whole room is the cell's */
            p->id_len = 1;
            all[n] = p;
        }

        CHECK_EQ(test_slab_free_pages(), 0);
        CHECK_EQ(n, free0 * (cls == 0 ? 25 : cls == 1 ? 12 : 5));
        CHECK_EQ(table.npages, free0);
        CHECK_EQ(table.cells[cls].nfree, 0);

        /* every cell distinct and intact */

        for (i = 0; i < n; i++) {
            CHECK(all[i]->id_len == 1 && ((u_char *) all[i])[room - 1] == 0x5a);
        }

        /* a page goes back to the slab as its last cell is freed */

        for (i = 0; i < n; i++) {
            ngx_rustdesk_table_cell_free(&table, test_pool, all[i]);

            if ((i + 1) % (cls == 0 ? 25 : cls == 1 ? 12 : 5) == 0) {
                CHECK_EQ(test_slab_free_pages(),
                         (i + 1) / (cls == 0 ? 25 : cls == 1 ? 12 : 5));
            }
        }

        CHECK_EQ(test_slab_free_pages(), free0);
        CHECK_EQ(table.npages, 0);
        CHECK_EQ(table.cells[cls].nfree, 0);
        CHECK(ngx_queue_empty(&table.cells[cls].partial));

        /* and a freed page serves other allocations */

        p = ngx_slab_alloc_locked(test_pool, 64);
        CHECK(p != NULL);
        ngx_slab_free_locked(test_pool, p);

        free(all);
    }
}


/* ------------------------------------------------------------------ */
/* the sweep and the compaction                                         */

typedef struct {
    ngx_uint_t  offline_below;          /* last_reg below: may go */
    ngx_uint_t  offered;
    ngx_uint_t  evicted;
} test_evict_t;


static ngx_uint_t
test_evict(void *data, ngx_rustdesk_peer_t *p)
{
    test_evict_t  *te = data;

    te->offered++;

    if (MARK(p) >= te->offline_below) {
        return 0;
    }

    te->evicted++;
    del_peer(p);

    return 1;
}


static void
test_sweep(void)
{
    size_t                     free0;
    uint32_t                   ref;
    ngx_uint_t                 i, n, total, moved;
    test_evict_t               te;
    ngx_rustdesk_peer_t       *p, *busy;
    ngx_rustdesk_ip_change_t  *c;
    ngx_rustdesk_cell_page_t  *page;

    context = "sweep";

    test_slab_init(128);
    CHECK(ngx_rustdesk_table_init(&table, test_pool, 128 * 4096, 0) == NGX_OK);
    free0 = test_slab_free_pages();

    /* a zone full of peers, none of which may go */

    for (total = 0; add_peer(total, 0); total++) { /* void */ }

    CHECK_EQ(test_slab_free_pages(), 0);
    CHECK_EQ(total, free0 * 25);

    ngx_memzero(&te, sizeof(te));
    te.offline_below = 0;

    n = ngx_rustdesk_table_sweep(&table, test_pool, 0, 4, test_evict, &te);

    CHECK_EQ(n, 0);
    CHECK_EQ(te.offered, 4 * 25);        /* bounded: four pages */

    /* a cell: the first page of offline peers makes room */

    ngx_memzero(&te, sizeof(te));
    te.offline_below = total;

    n = ngx_rustdesk_table_sweep(&table, test_pool, 150, 4, test_evict, &te);

    CHECK_EQ(n, 25);                      /* one page, every peer of it */
    CHECK_EQ(te.offered, 25);
    CHECK_EQ(test_slab_free_pages(), 1);

    /* the busy record stays, and so does its page */

    busy = NULL;

    for (i = 0; i < total && busy == NULL; i++) {
        busy = find_peer(i, 0);
    }

    CHECK(busy != NULL);
    table.busy = busy;

    for (i = 0; i < free0; i++) {
        ngx_memzero(&te, sizeof(te));
        te.offline_below = total;
        (void) ngx_rustdesk_table_sweep(&table, test_pool, 0, 1, test_evict,
                                        &te);
        CHECK(te.offered <= 25);
    }

    CHECK_EQ(table.n, 1);
    CHECK(find_peer(MARK(busy), 0) == busy);
    CHECK_EQ(test_slab_free_pages(), free0 - 1);

    table.busy = NULL;
    del_peer(busy);

    CHECK_EQ(table.n, 0);
    CHECK_EQ(test_slab_free_pages(), free0);

    /*
     * compaction: pages with a few online peers each, nothing offline; a
     * page is asked for, and the peers of one page move into the free
     * cells of others
     */

    test_slab_init(128);
    CHECK(ngx_rustdesk_table_init(&table, test_pool, 128 * 4096, 0) == NGX_OK);

    for (total = 0; add_peer(total, 0); total++) { /* void */ }

    /* 5 of each page's 25 stay */

    for (i = 0; i < total; i++) {
        if (i % 25 >= 5) {
            del_peer(find_peer(i, 0));
        }
    }

    CHECK_EQ(test_slab_free_pages(), 0);
    CHECK_EQ(table.n, total / 5);

    /* no page for anything else: the zone is full */

    c = ngx_slab_alloc_locked(test_pool, sizeof(ngx_rustdesk_ip_change_t));
    CHECK(c == NULL);

    ngx_memzero(&te, sizeof(te));
    te.offline_below = 0;

    n = ngx_rustdesk_table_sweep(&table, test_pool, 0, 4, test_evict, &te);

    CHECK_EQ(n, 1);
    CHECK_EQ(te.evicted, 0);
    CHECK(te.offered <= 4 * 25);
    CHECK_EQ(test_slab_free_pages(), 1);
    CHECK_EQ(table.n, total / 5);

    /* every peer is still there, its record intact */

    for (moved = 0, i = 0; i < total; i++) {
        if (i % 25 < 5) {
            moved += peer_ok(i, 0);
        }
    }

    CHECK_EQ(moved, total / 5);

    /* a record moved takes its IP change history along */

    c = ngx_slab_alloc_locked(test_pool, sizeof(ngx_rustdesk_ip_change_t));
    CHECK(c != NULL);

    p = find_peer(total - 25, 0);
    CHECK(p != NULL);

    if (c && p) {
        ngx_memzero(c, sizeof(ngx_rustdesk_ip_change_t));
        c->peer = p;
        p->ip_change = ngx_rustdesk_zone_ref(test_pool, c);
        ref = p->ip_change;
        CHECK(ngx_rustdesk_zone_ptr(test_pool, ref) == c);

        page = (ngx_rustdesk_cell_page_t *) ((uintptr_t) p
                                             & ~(ngx_pagesize - 1));
        CHECK(ngx_rustdesk_table_compact(&table, test_pool, page) == 1);

        p = find_peer(total - 25, 0);
        CHECK(p != NULL && p->ip_change == ref && c->peer == p);
        CHECK((ngx_rustdesk_cell_page_t *) ((uintptr_t) p
                                            & ~(ngx_pagesize - 1)) != page);
        CHECK(peer_ok(total - 25, 0));
    }

    /* a page with the busy record is not moved */

    p = find_peer(total - 50, 0);
    CHECK(p != NULL);

    if (p) {
        table.busy = p;
        page = (ngx_rustdesk_cell_page_t *) ((uintptr_t) p
                                             & ~(ngx_pagesize - 1));
        CHECK(ngx_rustdesk_table_compact(&table, test_pool, page) == 0);
        CHECK(find_peer(total - 50, 0) == p);
        table.busy = NULL;
    }

    /*
     * a page needs as many free cells elsewhere as it has peers: the first
     * page keeps 5, the second has 4 free cells, then the third one more
     */

    test_slab_init(64);
    CHECK(ngx_rustdesk_table_init(&table, test_pool, 64 * 4096, 0) == NGX_OK);

    for (total = 0; add_peer(total, 0); total++) { /* void */ }

    for (i = 5; i < 25; i++) {
        del_peer(find_peer(i, 0));
    }

    for (i = 25; i < 29; i++) {
        del_peer(find_peer(i, 0));
    }

    p = find_peer(0, 0);
    page = (ngx_rustdesk_cell_page_t *) ((uintptr_t) p & ~(ngx_pagesize - 1));

    CHECK_EQ(table.cells[0].nfree, 24);
    CHECK(ngx_rustdesk_table_compact(&table, test_pool, page) == 0);
    CHECK(find_peer(0, 0) == p);
    CHECK_EQ(table.cells[0].nfree, 24);

    del_peer(find_peer(50, 0));

    CHECK(ngx_rustdesk_table_compact(&table, test_pool, page) == 1);
    CHECK_EQ(table.cells[0].nfree, 0);
    CHECK_EQ(test_slab_free_pages(), 1);

    for (moved = 0, i = 0; i < 5; i++) {
        moved += peer_ok(i, 0);
    }

    CHECK_EQ(moved, 5);
    CHECK_EQ(table.n, total - 25);
}


/* The sweep goes round: every page is seen once per lap of the hand. */

static void
test_sweep_round(void)
{
    ngx_uint_t      i, total, pages;
    test_evict_t    te;

    context = "sweep round";

    test_slab_init(64);
    CHECK(ngx_rustdesk_table_init(&table, test_pool, 64 * 4096, 0) == NGX_OK);

    for (total = 0; add_peer(total, 0); total++) { /* void */ }

    pages = table.npages;

    /* a lap with nothing to evict: each sweep sees its one page */

    for (i = 0; i < pages; i++) {
        ngx_memzero(&te, sizeof(te));
        CHECK_EQ(ngx_rustdesk_table_sweep(&table, test_pool, 150, 1,
                                          test_evict, &te), 0);
        CHECK_EQ(te.offered, 25);
    }

    /* then all may go: a lap of one page per sweep takes every page */

    for (i = 0; i < pages; i++) {
        ngx_memzero(&te, sizeof(te));
        te.offline_below = total;
        CHECK_EQ(ngx_rustdesk_table_sweep(&table, test_pool, 150, 1,
                                          test_evict, &te), 25);
    }

    CHECK_EQ(table.n, 0);
    CHECK_EQ(table.npages, 0);
}


/* The walk's visitor: counts each record, stops after stop_after. */

typedef struct {
    ngx_uint_t      seen;
    ngx_uint_t      stop_after;         /* 0: never */
    ngx_uint_t      offline;            /* last_reg below this */
    ngx_uint_t      found;
    u_char         *count;              /* per peer, NULL: none */
} test_walk_t;


static ngx_uint_t
test_visit(void *data, ngx_rustdesk_peer_t *p)
{
    test_walk_t  *tw = data;

    tw->seen++;

    if (tw->count) {
        tw->count[MARK(p)]++;
    }

    /* what the cluster's removal looks at: a flag and the time */

    if (p->published && MARK(p) < tw->offline) {
        tw->found++;
    }

    return tw->stop_after && tw->seen == tw->stop_after;
}


static double
test_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


/*
 * Slices of the index, from where the last one stopped: a round of the
 * slots sees every record once, whatever the slices and early stops; at
 * 1 M peers, what a slice of 1024 slots costs (the cluster's removal
 * holds the zone's mutex for one).
 */

static void
test_walk(void)
{
    u_char       *count;
    double        t0, took;
    ngx_uint_t    i, n, total, slot, walked, slices;
    test_walk_t   tw;

    context = "walk";

    test_slab_init(64);
    CHECK(ngx_rustdesk_table_init(&table, test_pool, 64 * 4096, 0) == NGX_OK);

    for (total = 0; add_peer(total, 0); total++) { /* void */ }

    count = calloc(total, 1);
    if (count == NULL) {
        perror("calloc");
        exit(2);
    }

    /* slices of 7 slots, a stop after every 3 records: one round */

    ngx_memzero(&tw, sizeof(tw));
    tw.count = count;
    slot = 0;
    walked = 0;

    while (walked < table.nslots) {
        tw.seen = 0;
        tw.stop_after = 3;
        n = ngx_rustdesk_table_walk(&table, test_pool, &slot,
                                    ngx_min(7, table.nslots - walked),
                                    test_visit, &tw);
        CHECK(n >= 1 && n <= 7);
        walked += n;
    }

    CHECK_EQ(slot, 0);

    for (i = 0, n = 0; i < total; i++) {
        n += (count[i] == 1);
    }

    CHECK_EQ(n, total);

    /* a round in one slice: back where it started */

    ngx_memzero(count, total);
    ngx_memzero(&tw, sizeof(tw));
    tw.count = count;
    slot = 5;

    CHECK_EQ(ngx_rustdesk_table_walk(&table, test_pool, &slot, table.nslots,
                                     test_visit, &tw), table.nslots);
    CHECK_EQ(slot, 5);
    CHECK_EQ(tw.seen, total);

    free(count);

    /* 1 M peers, a tenth of them published and offline */

    test_slab_init(1000000 / 25 + 16000);
    CHECK(ngx_rustdesk_table_init(&table, test_pool,
                                  (1000000 / 25 + 16000) * 4096, 0) == NGX_OK);

    for (total = 0; total < 1000000 && add_peer(total, 0); total++) {
        if (total % 10 == 0) {
            find_peer(total, 0)->published = 1;
        }
    }

    CHECK_EQ(total, 1000000);

    ngx_memzero(&tw, sizeof(tw));
    tw.offline = total;
    slot = 0;
    slices = (table.nslots + 1023) / 1024;

    t0 = test_now();

    for (i = 0; i < slices; i++) {
        (void) ngx_rustdesk_table_walk(&table, test_pool, &slot,
                                       ngx_min(1024, table.nslots - i * 1024),
                                       test_visit, &tw);
    }

    took = test_now() - t0;

    CHECK_EQ(tw.seen, total);
    CHECK_EQ(tw.found, total / 10);

    printf("walk: 1 M peers in %lu slots: a round %.1f ms, a slice of 1024 "
           "slots %.1f us (this build's flags)\n",
           (unsigned long) table.nslots, took * 1000, took * 1e6 / slices);
}

/*
 * The heartbeat's key: the slot of the id that has it set for an address
 * is found by id and address alone, through deletions that shift the
 * slots; another port, another address or another id's key finds nothing.
 */

/* the key of id i from 10.0.0.host:port */

static uint64_t
beat_at(ngx_uint_t i, uint16_t port, u_char host)
{
    u_char             id[100];
    size_t             len;
    ngx_rustdesk_ip_t  addr;

    make_id(id, &len, i, 0);

    ngx_memzero(&addr, sizeof(addr));
    addr.family = AF_INET;
    addr.port = port;
    addr.addr[0] = 10;
    addr.addr[3] = host;

    return ngx_rustdesk_table_beat(&table,
                                   ngx_rustdesk_table_id_hash(&table, id, len),
                                   &addr);
}


static uint64_t
beat_of(ngx_uint_t i, uint16_t port)
{
    return beat_at(i, port, (u_char) i);
}


static ngx_rustdesk_slot_t *
find_beat(ngx_uint_t i, uint16_t port)
{
    u_char  id[100];
    size_t  len;

    make_id(id, &len, i, 0);

    return ngx_rustdesk_table_find_beat(&table,
                                        ngx_rustdesk_table_hash(&table, id,
                                                                len),
                                        beat_of(i, port));
}


static void
test_beat(void)
{
    ngx_uint_t            i, n, round;
    ngx_rustdesk_slot_t  *s;
    ngx_rustdesk_peer_t  *p;
    u_char                present[200];

    context = "beat";

    for (round = 0; round < 20; round++) {
        test_slab_init(256);
        CHECK(ngx_rustdesk_table_init(&table, test_pool, 16384, 0) == NGX_OK);

        for (n = 0; n < table.max && n < 200; n++) {
            p = add_peer(round * 1000 + n, 0);
            CHECK(p != NULL);

            if (p == NULL) {
                break;
            }

            present[n] = 1;

            /* a slot's key is 0 until set: nothing finds it */
            CHECK(find_beat(round * 1000 + n, 7) == NULL);

            /* every other peer's key set, the rest left 0 */
            if (n % 2 == 0) {
                ngx_rustdesk_table_peer_slot(&table, p)->beat =
                                              beat_of(round * 1000 + n, 7);
            }
        }

        for (i = 0; i < n; i++) {
            if (rnd() % 3 == 0) {
                del_peer(find_peer(round * 1000 + i, 0));
                present[i] = 0;
            }
        }

        for (i = 0; i < n; i++) {
            s = find_beat(round * 1000 + i, 7);

            if (present[i] && i % 2 == 0) {
                p = find_peer(round * 1000 + i, 0);
                CHECK(s != NULL && p != NULL
                      && s->ref == ngx_rustdesk_zone_ref(test_pool, p)
                      && s == ngx_rustdesk_table_peer_slot(&table, p));

            } else {
                CHECK(s == NULL);
            }

            CHECK(find_beat(round * 1000 + i, 8) == NULL);
        }

        /* another id from the same address and port */
        CHECK(beat_of(round * 1000, 7) != beat_of(round * 1000 + 256, 7));
        CHECK(beat_of(round * 1000, 7) != 0);

        /* the same id from another address, or another port */
        CHECK(beat_at(round * 1000, 7, 1) != beat_at(round * 1000, 7, 2));
        CHECK(beat_at(round * 1000, 7, 1) != beat_at(round * 1000, 8, 1));
    }
}


/*
 * A zone's index is not zeroed again when the zone is new (its memory all
 * zeroes from the kernel), and is zeroed otherwise; a new index works.
 */

static void
test_fresh(void)
{
    ngx_uint_t  i, zero;

    context = "fresh";

    /* memory the slab has used before (here: junk): zeroed */

    test_slab_init(64);
    CHECK(ngx_rustdesk_table_init(&table, test_pool, 64 * 4096, 0) == NGX_OK);

    for (i = 0, zero = 0; i < table.nslots; i++) {
        zero += (table.slots[i].ref == 0 && table.slots[i].hash == 0);
    }

    CHECK_EQ(zero, table.nslots);

    /* fresh: left as it is; the junk stays, nothing touched it */

    test_slab_init(64);
    CHECK(ngx_rustdesk_table_init(&table, test_pool, 64 * 4096, 1) == NGX_OK);
    CHECK_EQ(table.slots[0].ref, 0xa5a5a5a5);
    CHECK_EQ(table.slots[table.nslots - 1].hash, 0xa5a5a5a5);

    /* new shared memory, all zeroes: a working index */

    test_slab_init(64);
    memset(test_mem, 0, 65 * ngx_pagesize);
    CHECK(ngx_rustdesk_table_init(&table, test_pool, 64 * 4096, 1) == NGX_OK);

    for (i = 0; i < 100; i++) {
        CHECK(add_peer(i, 0) != NULL);
    }

    for (i = 0; i < 100; i++) {
        CHECK(find_peer(i, 0) != NULL);
    }

    CHECK(find_peer(100, 0) == NULL);
    CHECK_EQ(table.n, 100);
}


int
main(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        return 2;
    }

    test_index();
    test_cells();
    test_sweep();
    test_sweep_round();
    test_walk();
    test_fresh();
    test_beat();

    printf("%lu passed, %lu failed\n", passed, failed);

    return failed ? 1 : 0;
}
