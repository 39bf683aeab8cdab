/*
 * A UDP heartbeat read without allocations (PROTOCOL.md section 3): the
 * RegisterPeer a registered client sends every 12 to 15 s is by far the
 * most frequent datagram, and in its usual shape (the RendezvousMessage's
 * register_peer member and nothing else; id, then serial, each at most
 * once, the serial not negative) it is read here in place.  Anything
 * else, well formed or not, is left to protobuf-c, which decides the same
 * way for the shapes read here (t/unit/test_common.c compares the two).
 *
 * Plain C, no nginx: the unit tests link it alone.
 */

#ifndef _NGX_RUSTDESK_HEARTBEAT_H_INCLUDED_
#define _NGX_RUSTDESK_HEARTBEAT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/*
 * 1 and *id (into data), *id_len and *serial set: a RegisterPeer of the
 * usual shape; 0: anything else (decode it the general way).
 */
int ngx_rustdesk_heartbeat_read(const uint8_t *data, size_t len,
    const uint8_t **id, size_t *id_len, int32_t *serial);


#endif /* _NGX_RUSTDESK_HEARTBEAT_H_INCLUDED_ */
