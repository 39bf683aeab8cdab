/*
 * Peer address encoding, "AddrMangle" (PROTOCOL.md section 4).
 *
 * Plain C, no nginx symbols: the unit tests link it on its own.
 */

#ifndef _NGX_RUSTDESK_ADDR_H_INCLUDED_
#define _NGX_RUSTDESK_ADDR_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>


#define NGX_RUSTDESK_ADDR_MAX_LEN  18


/*
 * Encodes an AF_INET or AF_INET6 address into out (room for
 * NGX_RUSTDESK_ADDR_MAX_LEN bytes) with the given time stamp (microseconds
 * truncated to 32 bits); v4-mapped IPv6 is encoded as IPv4.  Returns the
 * length, 0 for another family.
 */
size_t ngx_rustdesk_addr_encode_at(const struct sockaddr *sa, uint32_t tm,
    u_char *out);

/* The same with the current time, as the reference does. */
size_t ngx_rustdesk_addr_encode(const struct sockaddr *sa, u_char *out);

/*
 * Decodes into *sin or *sin6 (the caller passes a sockaddr_storage) and
 * returns its length.  18 bytes are IPv6; up to 16 bytes are mangled IPv4;
 * any other length decodes to 0.0.0.0:0, "unspecified", as the reference
 * does, and returns 0.
 */
socklen_t ngx_rustdesk_addr_decode(const u_char *in, size_t len,
    struct sockaddr_storage *ss);

/* Turns a v4-mapped IPv6 address into IPv4 in place; returns the length. */
socklen_t ngx_rustdesk_addr_normalize(struct sockaddr_storage *ss,
    socklen_t len);


#endif /* _NGX_RUSTDESK_ADDR_H_INCLUDED_ */
