/*
 * The memory of the rendezvous server's peer table, in the shared zone
 * (DESIGN.md "Processes and state"): an open-addressing hash index of the
 * peers by id, sized when the zone is made, and the pages of cells the
 * peer records live in.
 *
 * A lookup reads one slot of the index and then the record it names, so
 * its cost does not grow with the number of peers; a steady heartbeat
 * reads and writes its slot only (ngx_rustdesk_table_find_beat).  Cells
 * come in a few sizes, many to a slab page; a page whose cells are all free
 * goes back to the slab at once, so that the IP blocker, the waiting
 * requesters and the histories can use it.  Everything here is called
 * with the zone's mutex held.
 */

#ifndef _NGX_STREAM_RUSTDESK_RENDEZVOUS_TABLE_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RENDEZVOUS_TABLE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_ip.h"


#define NGX_RUSTDESK_CELL_CLASSES    3
#define NGX_RUSTDESK_CELL_PAGE_HEAD  64        /* cells start here */
#define NGX_RUSTDESK_TABLE_KEY       16        /* SipHash key */

/*
 * References in the zone are 32-bit offsets from its start in units of 8
 * bytes (every record and slab chunk is 8-aligned): a zone of at most
 * 32 GiB.
 */
#define NGX_RUSTDESK_ZONE_MAX        ((size_t) 8 << 32)

#define ngx_rustdesk_zone_ref(pool, p)                                       \
    ((uint32_t) (((u_char *) (p) - (u_char *) (pool)) >> 3))
#define ngx_rustdesk_zone_ptr(pool, ref)                                     \
    ((void *) ((u_char *) (pool) + ((size_t) (ref) << 3)))


typedef struct ngx_rustdesk_peer_s  ngx_rustdesk_peer_t;


/* Frees p if it may go, and says so: 1, else 0 (p stays). */
typedef ngx_uint_t (*ngx_rustdesk_table_evict_pt)(void *data,
    ngx_rustdesk_peer_t *p);

/* Looks at p (frees nothing): 1 to stop the walk after p, else 0. */
typedef ngx_uint_t (*ngx_rustdesk_table_visit_pt)(void *data,
    ngx_rustdesk_peer_t *p);


/*
 * A slot of the index: the id's hash and its record (0: an empty slot),
 * and what a heartbeat needs, so that a steady one touches no record
 * (ngx_rustdesk_peer_register): the peer's registration time, and beat,
 * the keyed hash of its id and UDP address while a RegisterPeer from that
 * address would change nothing of the record but the time (0: it would).
 * The record knows its slot (ngx_rustdesk_table_peer_slot).
 */
typedef struct {
    uint32_t             hash;
    uint32_t             ref;
    uint64_t             beat;
    ngx_msec_t           last_reg;          /* 0: not registered yet */
} ngx_rustdesk_slot_t;


/*
 * The head of a page of cells.  A free cell has id_len 0; its first two
 * bytes hold the next free cell's number + 1.
 */
typedef struct {
    ngx_queue_t          queue;             /* in the table's pages */
    ngx_queue_t          partial;           /* in its class's, if room */
    uint16_t             free;              /* first free cell + 1, 0: none */
    uint16_t             used;
    uint16_t             ncells;
    uint16_t             cls;
} ngx_rustdesk_cell_page_t;


/* The pages of one cell size that have a free cell. */
typedef struct {
    ngx_queue_t          partial;
    ngx_uint_t           npages;            /* all of this size */
    ngx_uint_t           nfree;             /* free cells in them */
} ngx_rustdesk_cells_t;


typedef struct {
    ngx_rustdesk_slot_t  *slots;
    ngx_uint_t            nslots;
    ngx_uint_t            max;              /* entries at most (70%) */
    ngx_uint_t            n;
    ngx_queue_t           pages;            /* in the sweep's order */
    ngx_queue_t          *hand;             /* where the sweep goes on */
    ngx_uint_t            npages;
    ngx_rustdesk_peer_t  *busy;             /* eviction leaves it alone */
    ngx_rustdesk_cells_t  cells[NGX_RUSTDESK_CELL_CLASSES];
    u_char                key[NGX_RUSTDESK_TABLE_KEY];
} ngx_rustdesk_table_t;


/*
 * Sizes the index for a zone of size bytes, from the slab: NGX_ERROR.
 * With fresh, the pool was just made in new shared memory, whose pages
 * the kernel gives as zeroes: the index is not zeroed again.
 */
ngx_int_t ngx_rustdesk_table_init(ngx_rustdesk_table_t *t,
    ngx_slab_pool_t *pool, size_t size, ngx_uint_t fresh);

/*
 * The id's 64-bit hash, keyed with the zone's own key; its low 32 bits are
 * the id's hash in the index (ngx_rustdesk_table_hash); no lock needed.
 */
uint64_t ngx_rustdesk_table_id_hash(ngx_rustdesk_table_t *t, u_char *id,
    size_t len);

#define ngx_rustdesk_table_hash(t, id, len)                                  \
    ((uint32_t) ngx_rustdesk_table_id_hash(t, id, len))

ngx_rustdesk_peer_t *ngx_rustdesk_table_find(ngx_rustdesk_table_t *t,
    ngx_slab_pool_t *pool, u_char *id, size_t len, uint32_t hash);

/*
 * The heartbeat's key of the id of id_hash (ngx_rustdesk_table_id_hash)
 * from addr (never 0); no lock needed.
 */
uint64_t ngx_rustdesk_table_beat(ngx_rustdesk_table_t *t, uint64_t id_hash,
    ngx_rustdesk_ip_t *addr);

/*
 * The slot of the id of hash whose beat is beat, NULL if none; the record
 * is not read (two ids share hash and beat with a chance of 2^-96).
 */
ngx_rustdesk_slot_t *ngx_rustdesk_table_find_beat(ngx_rustdesk_table_t *t,
    uint32_t hash, uint64_t beat);

/* The slot of a record in the index. */
#define ngx_rustdesk_table_peer_slot(t, p)  (&(t)->slots[(p)->slot])

/* NGX_DECLINED: the index holds as many as it may. */
ngx_int_t ngx_rustdesk_table_insert(ngx_rustdesk_table_t *t,
    ngx_slab_pool_t *pool, ngx_rustdesk_peer_t *p, uint32_t hash);
void ngx_rustdesk_table_delete(ngx_rustdesk_table_t *t,
    ngx_slab_pool_t *pool, ngx_rustdesk_peer_t *p);

/* The record p moved to np (its id and IP change history follow). */
void ngx_rustdesk_table_moved(ngx_rustdesk_table_t *t,
    ngx_slab_pool_t *pool, ngx_rustdesk_peer_t *p, ngx_rustdesk_peer_t *np);

/*
 * A cell for a record of size bytes: from a page with room, else from a
 * new slab page; NULL when neither is there (nothing is evicted here).
 */
ngx_rustdesk_peer_t *ngx_rustdesk_table_cell_alloc(ngx_rustdesk_table_t *t,
    ngx_slab_pool_t *pool, size_t size);
void ngx_rustdesk_table_cell_free(ngx_rustdesk_table_t *t,
    ngx_slab_pool_t *pool, ngx_rustdesk_peer_t *p);

/* The room of p's cell; the cell class of a record of size (-1: none). */
size_t ngx_rustdesk_table_cell_room(ngx_rustdesk_peer_t *p);
ngx_int_t ngx_rustdesk_table_cell_class(size_t size);

/*
 * Visits the records of at most n slots of the index from *slot on, in
 * the order of the slots, until visit() says stop; *slot is where the
 * next walk goes on (0 again after the last slot).  A record that moves
 * meanwhile (a delete shifts records back) may be missed by one round
 * or seen twice.  Returns the slots looked at.
 */
ngx_uint_t ngx_rustdesk_table_walk(ngx_rustdesk_table_t *t,
    ngx_slab_pool_t *pool, ngx_uint_t *slot, ngx_uint_t n,
    ngx_rustdesk_table_visit_pt visit, void *data);

/*
 * For the sweep: the page at the hand, which moves on to the next (in a
 * circle); NULL if there is no page.
 */
ngx_rustdesk_cell_page_t *ngx_rustdesk_table_sweep_page(
    ngx_rustdesk_table_t *t);
ngx_rustdesk_peer_t *ngx_rustdesk_table_page_cell(
    ngx_rustdesk_cell_page_t *page, ngx_uint_t i);

/*
 * Evicts what evict() lets go from the next npages pages, round the
 * pages from where it stopped last, until a cell for a record of size
 * bytes is free, or, with size 0, a whole page is back in the slab;
 * returns how many records went or moved.
 */
ngx_uint_t ngx_rustdesk_table_sweep(ngx_rustdesk_table_t *t,
    ngx_slab_pool_t *pool, size_t size, ngx_uint_t npages,
    ngx_rustdesk_table_evict_pt evict, void *data);

/*
 * Moves the records of page into free cells of other pages of its size,
 * if they have enough, and gives the page back to the slab: 1, else 0.
 * A page holding t->busy stays.
 */
ngx_uint_t ngx_rustdesk_table_compact(ngx_rustdesk_table_t *t,
    ngx_slab_pool_t *pool, ngx_rustdesk_cell_page_t *page);


#endif /* _NGX_STREAM_RUSTDESK_RENDEZVOUS_TABLE_H_INCLUDED_ */
