/*
 * transport.c: the table of transports by URL scheme.
 */
#include <config.h>

#include <stddef.h>

#include "transport.h"

const struct transport *transport_find(enum url_kind kind)
{
	switch (kind) {
	case URL_UNIX: return &transport_unix;
	case URL_TCP: return &transport_tcp;
	case URL_TLS: return &transport_tls;
	case URL_UDP: return &transport_udp;
	case URL_SYSV: return &transport_sysv;
	default: return NULL; /* shm: not in this version */
	}
}
