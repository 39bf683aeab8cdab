/*
 * Addresses in the rendezvous server: the compact address type that the
 * zone, the worker channel and the database hold, and the trees keyed by
 * crc32 that the peer table and the address-keyed entries (IP blocker,
 * waiting requesters) are ordered in.
 */

#ifndef _NGX_STREAM_RUSTDESK_RENDEZVOUS_IP_H_INCLUDED_
#define _NGX_STREAM_RUSTDESK_RENDEZVOUS_IP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* An IP address and port, compact and comparable (v4-mapped made v4). */
typedef struct {
    u_char               family;            /* 0: none */
    u_char               pad;
    uint16_t             port;
    u_char               addr[16];
} ngx_rustdesk_ip_t;


/* The head of the address-keyed entries (IP blocker, waiting requesters). */
typedef struct {
    ngx_rbtree_node_t    node;              /* key: crc32 of the address */
    ngx_queue_t          queue;
    ngx_rustdesk_ip_t    ip;
} ngx_rustdesk_ip_node_t;


/* The order of two nodes of equal key: < 0 puts node left of temp. */
typedef ngx_int_t (*ngx_rustdesk_rbtree_cmp_pt)(ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *temp);


void ngx_rustdesk_ip_from_sockaddr(ngx_rustdesk_ip_t *ip,
    struct sockaddr *sa, socklen_t len);
socklen_t ngx_rustdesk_ip_to_sockaddr(ngx_rustdesk_ip_t *ip,
    struct sockaddr_storage *ss);
size_t ngx_rustdesk_ip_text(ngx_rustdesk_ip_t *ip, u_char *buf, size_t len);
ngx_uint_t ngx_rustdesk_ip_is_loopback(ngx_rustdesk_ip_t *ip);

/* 0: the same IP (and port, with_port), else 1. */
ngx_int_t ngx_rustdesk_ip_cmp(ngx_rustdesk_ip_t *a, ngx_rustdesk_ip_t *b,
    ngx_uint_t with_port);

/*
 * The insert walk of the trees keyed by crc32 (node.key): ordered by the
 * key, then, between equal keys, by cmp, as ngx_str_rbtree_insert_value.
 * Each tree's insert function (ngx_rbtree_init) calls it with its cmp.
 */
void ngx_rustdesk_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel,
    ngx_rustdesk_rbtree_cmp_pt cmp);

/*
 * Trees keyed by address (node.key = crc32 of the whole ngx_rustdesk_ip_t)
 * whose entries start as ngx_rustdesk_ip_node_t; in the zone, under its
 * lock, or in a worker's own memory.
 */
void ngx_rustdesk_ip_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
ngx_rustdesk_ip_node_t *ngx_rustdesk_ip_lookup(ngx_rbtree_t *tree,
    ngx_rustdesk_ip_t *ip, uint32_t hash);


#endif /* _NGX_STREAM_RUSTDESK_RENDEZVOUS_IP_H_INCLUDED_ */
