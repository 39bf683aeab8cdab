/*
 * The rendezvous server's compact addresses (ngx_rustdesk_ip_t: from and
 * to a sockaddr, as text, compared) and its trees keyed by crc32: the
 * insert walk they share and the trees keyed by address.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stream_rustdesk_rendezvous_ip.h"


static ngx_int_t ngx_rustdesk_ip_node_cmp(ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *temp);


void
ngx_rustdesk_ip_from_sockaddr(ngx_rustdesk_ip_t *ip, struct sockaddr *sa,
    socklen_t len)
{
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;

    ngx_memzero(ip, sizeof(ngx_rustdesk_ip_t));

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        ip->family = AF_INET;
        ip->port = ntohs(sin->sin_port);
        ngx_memcpy(ip->addr, &sin->sin_addr, 4);
        break;

    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        ip->port = ntohs(sin6->sin6_port);

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            ip->family = AF_INET;
            ngx_memcpy(ip->addr, &sin6->sin6_addr.s6_addr[12], 4);

        } else {
            ip->family = AF_INET6;
            ngx_memcpy(ip->addr, &sin6->sin6_addr, 16);
        }

        break;
    }
}


socklen_t
ngx_rustdesk_ip_to_sockaddr(ngx_rustdesk_ip_t *ip, struct sockaddr_storage *ss)
{
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;

    ngx_memzero(ss, sizeof(struct sockaddr_storage));

    if (ip->family == AF_INET6) {
        sin6 = (struct sockaddr_in6 *) ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(ip->port);
        ngx_memcpy(&sin6->sin6_addr, ip->addr, 16);
        return sizeof(struct sockaddr_in6);
    }

    sin = (struct sockaddr_in *) ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(ip->port);
    ngx_memcpy(&sin->sin_addr, ip->addr, 4);
    return sizeof(struct sockaddr_in);
}


size_t
ngx_rustdesk_ip_text(ngx_rustdesk_ip_t *ip, u_char *buf, size_t len)
{
    if (ip->family == 0) {
        return 0;
    }

    return ngx_inet_ntop(ip->family, ip->addr, buf, len);
}


ngx_uint_t
ngx_rustdesk_ip_is_loopback(ngx_rustdesk_ip_t *ip)
{
    static u_char  lo6[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };

    if (ip->family == AF_INET) {
        return ip->addr[0] == 127;
    }

    return ip->family == AF_INET6 && ngx_memcmp(ip->addr, lo6, 16) == 0;
}


ngx_int_t
ngx_rustdesk_ip_cmp(ngx_rustdesk_ip_t *a, ngx_rustdesk_ip_t *b,
    ngx_uint_t with_port)
{
    if (a->family != b->family) {
        return 1;
    }

    if (with_port && a->port != b->port) {
        return 1;
    }

    return ngx_memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) != 0;
}


/*
 * cmp is called only between nodes of equal crc32, which is rare: the
 * walk itself costs what each tree's own copy of it did.  Lookups do not
 * come here (ngx_rustdesk_ip_lookup() and the peer table's own).
 */

void
ngx_rustdesk_rbtree_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel, ngx_rustdesk_rbtree_cmp_pt cmp)
{
    ngx_rbtree_node_t  **p;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            p = (cmp(node, temp) < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* address-keyed trees: ordered by crc32, then by the address itself */

void
ngx_rustdesk_ip_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rustdesk_rbtree_insert(temp, node, sentinel, ngx_rustdesk_ip_node_cmp);
}


static ngx_int_t
ngx_rustdesk_ip_node_cmp(ngx_rbtree_node_t *node, ngx_rbtree_node_t *temp)
{
    ngx_rustdesk_ip_node_t  *n, *t;

    n = (ngx_rustdesk_ip_node_t *) node;
    t = (ngx_rustdesk_ip_node_t *) temp;

    return ngx_memcmp(&n->ip, &t->ip, sizeof(ngx_rustdesk_ip_t));
}


ngx_rustdesk_ip_node_t *
ngx_rustdesk_ip_lookup(ngx_rbtree_t *tree, ngx_rustdesk_ip_t *ip,
    uint32_t hash)
{
    ngx_int_t                rc;
    ngx_rbtree_node_t       *node, *sentinel;
    ngx_rustdesk_ip_node_t  *n;

    node = tree->root;
    sentinel = tree->sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        n = (ngx_rustdesk_ip_node_t *) node;

        rc = ngx_memcmp(ip, &n->ip, sizeof(ngx_rustdesk_ip_t));
        if (rc == 0) {
            return n;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}
