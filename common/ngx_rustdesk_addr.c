/*
 * AddrMangle (PROTOCOL.md section 4).  For IPv4, with tm the time stamp
 * and ip the four octets read as a little-endian u32:
 *
 *     v = ((ip + tm) << 49) | (tm << 17) | (port + (tm & 0xFFFF))
 *
 * as a 128-bit number written little-endian without its trailing zero
 * bytes.  The three parts never overlap: port + (tm & 0xFFFF) < 2^17.
 */

#include <string.h>
#include <sys/time.h>

#include "ngx_rustdesk_addr.h"


typedef unsigned __int128  ngx_rustdesk_u128_t;


static int
ngx_rustdesk_addr_is_v4mapped(const struct in6_addr *a)
{
    static const u_char  prefix[12] = {
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
    };

    return memcmp(a->s6_addr, prefix, sizeof(prefix)) == 0;
}


size_t
ngx_rustdesk_addr_encode_at(const struct sockaddr *sa, uint32_t tm,
    u_char *out)
{
    size_t                      n;
    uint16_t                    port;
    uint32_t                    ip;
    const u_char               *octets;
    ngx_rustdesk_u128_t         v;
    const struct sockaddr_in   *sin;
    const struct sockaddr_in6  *sin6;

    switch (sa->sa_family) {

    case AF_INET:
        sin = (const struct sockaddr_in *) sa;
        octets = (const u_char *) &sin->sin_addr.s_addr;
        port = ntohs(sin->sin_port);
        break;

    case AF_INET6:
        sin6 = (const struct sockaddr_in6 *) sa;
        port = ntohs(sin6->sin6_port);

        if (ngx_rustdesk_addr_is_v4mapped(&sin6->sin6_addr)) {
            octets = &sin6->sin6_addr.s6_addr[12];
            break;
        }

        memcpy(out, sin6->sin6_addr.s6_addr, 16);
        out[16] = (u_char) (port & 0xff);
        out[17] = (u_char) (port >> 8);
        return 18;

    default:
        return 0;
    }

    ip = (uint32_t) octets[0]
         | (uint32_t) octets[1] << 8
         | (uint32_t) octets[2] << 16
         | (uint32_t) octets[3] << 24;

    v = (((ngx_rustdesk_u128_t) ip + tm) << 49)
        | ((ngx_rustdesk_u128_t) tm << 17)
        | ((ngx_rustdesk_u128_t) port + (tm & 0xFFFF));

    for (n = 0; v; n++) {
        out[n] = (u_char) (v & 0xff);
        v >>= 8;
    }

    return n;
}


size_t
ngx_rustdesk_addr_encode(const struct sockaddr *sa, u_char *out)
{
    uint64_t        us;
    struct timeval  tv;

    gettimeofday(&tv, NULL);
    us = (uint64_t) tv.tv_sec * 1000000 + (uint64_t) tv.tv_usec;

    return ngx_rustdesk_addr_encode_at(sa, (uint32_t) us, out);
}


socklen_t
ngx_rustdesk_addr_decode(const u_char *in, size_t len,
    struct sockaddr_storage *ss)
{
    size_t                i;
    u_char               *octets;
    uint32_t              tm, ip;
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;
    ngx_rustdesk_u128_t   v;

    memset(ss, 0, sizeof(struct sockaddr_storage));

    sin = (struct sockaddr_in *) ss;

    if (len == 18) {
        sin6 = (struct sockaddr_in6 *) ss;
        sin6->sin6_family = AF_INET6;
        memcpy(sin6->sin6_addr.s6_addr, in, 16);
        sin6->sin6_port = htons((uint16_t) (in[16] | in[17] << 8));
        return sizeof(struct sockaddr_in6);
    }

    sin->sin_family = AF_INET;

    if (len > 16) {
        return 0;
    }

    v = 0;

    for (i = len; i > 0; i--) {
        v = (v << 8) | in[i - 1];
    }

    tm = (uint32_t) (v >> 17);
    ip = (uint32_t) (v >> 49) - tm;

    octets = (u_char *) &sin->sin_addr.s_addr;
    octets[0] = (u_char) ip;
    octets[1] = (u_char) (ip >> 8);
    octets[2] = (u_char) (ip >> 16);
    octets[3] = (u_char) (ip >> 24);

    sin->sin_port = htons((uint16_t) ((uint32_t) (v & 0xFFFFFF)
                                      - (tm & 0xFFFF)));

    return sizeof(struct sockaddr_in);
}


socklen_t
ngx_rustdesk_addr_normalize(struct sockaddr_storage *ss, socklen_t len)
{
    in_port_t             port;
    struct in_addr        a4;
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;

    if (ss->ss_family != AF_INET6) {
        return len;
    }

    sin6 = (struct sockaddr_in6 *) ss;

    if (!ngx_rustdesk_addr_is_v4mapped(&sin6->sin6_addr)) {
        return len;
    }

    port = sin6->sin6_port;
    memcpy(&a4, &sin6->sin6_addr.s6_addr[12], 4);

    sin = (struct sockaddr_in *) ss;
    memset(sin, 0, sizeof(struct sockaddr_in6));
    sin->sin_family = AF_INET;
    sin->sin_port = port;
    sin->sin_addr = a4;

    return sizeof(struct sockaddr_in);
}
