/* forwarded.h - the client's address behind trusted proxies, from X-Forwarded-For.
 *
 * Each proxy appends the address its connection came from, so the header reads
 * "client, proxy1, proxy2" and our TCP peer is the last proxy. Only what trusted proxies
 * appended can be believed: anything left of the first untrusted hop is whatever the client
 * wrote. So the client is the right-most address that is not itself a trusted proxy; when every
 * hop is trusted (traffic from inside), the left-most. Several X-Forwarded-For headers are one
 * list, in order. Ports ("192.0.2.1:5060", "[2001:db8::1]:80") are ignored; an entry that is not
 * an address ("unknown", garbage) ends the walk at the hop right of it, which is trusted. */
#ifndef TRILEMMA_NET_FORWARDED_H
#define TRILEMMA_NET_FORWARDED_H

#include <stdbool.h>

#include "base/cidr.h"
#include "net/http_parser.h"

/* The client of a request that arrived from `peer`, a trusted proxy: *out is set (to peer when
 * the request has no X-Forwarded-For). Returns true when X-Forwarded-For was present. Pure: no
 * allocation, no system call. */
bool forwarded_client(const struct cidr_list *trusted, const struct http_request *req,
                      const struct in6_addr *peer, struct in6_addr *out);

#endif
