/*
 * tr.c: the table of the library's transports, by URL kind (tr.h).  A new
 * transport is one file with its tr_ops and one line here.
 */
#include <config.h>

#include <stddef.h>

#include "tr.h"

static const struct tr_ops *const tr_all[] = {
	&tr_unix_ops,
	&tr_tcp_ops,
	&tr_tls_ops,
	&tr_udp_ops,
	&tr_sysv_ops,
};

const struct tr_ops *tr_find(enum url_kind kind)
{
	for (size_t i = 0; i < sizeof tr_all / sizeof tr_all[0]; i++)
		if (tr_all[i]->kind == kind)
			return tr_all[i];
	return NULL;
}

const char *tr_schemes(void)
{
	return "unix://, tcp://, tls://, udp://, sysv://";
}
