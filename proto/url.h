/*
 * url.h: transport URLs (DESIGN.md, Transports) and default addresses.
 *
 *   unix:///abs/path.sock[?mode=0660&group=NAME]
 *   tcp://[TOKEN@]host:port     udp://[TOKEN@]host:port   ([::1] for IPv6)
 *   tls://[TOKEN@]host:port[?ca=FILE&cert=FILE&key=FILE]
 *   sysv://KEY[?mode=0600][&qbytes=BYTES]   shm://KEY
 *                               (mode: the broker's queue, listen only; qbytes:
 *                               what a connection's queues are asked to hold)
 * KEY: 0x1234, a decimal number, /path (ftok(path, 1)) or /path:ID.
 * The token and the tls option values are percent-decoded (%26 for '&');
 * a tls option may be given once; cert= and key= go together.
 */
#ifndef IPCBUS_URL_H
#define IPCBUS_URL_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include <sys/types.h>
#include <sys/un.h>

/* The most ?qbytes= may ask (msg_qbytes is an int in the kernel). */
#define URL_QBYTES_MAX 0x7fffffffULL

enum url_kind { URL_UNIX = 1, URL_TCP, URL_UDP, URL_SYSV, URL_SHM, URL_TLS };

struct url {
	enum url_kind kind;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* unix */
	char host[256];                                           /* tcp, tls, udp */
	uint16_t port;
	char token[256]; /* percent-decoded; has_token */
	int has_token;
	long key;      /* sysv, shm: the key (from ftok for paths) */
	char keyspec[256]; /* sysv, shm: the KEY as written */
	unsigned mode; /* unix and sysv listen: ?mode= (has_mode) */
	int has_mode;
	unsigned long qbytes; /* sysv: ?qbytes= (has_qbytes), at most URL_QBYTES_MAX */
	int has_qbytes;
	char group[64]; /* unix listen: ?group= */
	/* tls: ?ca=, ?cert=, ?key= ("" when not given; the transport then
	 * looks at IPCBUS_TLS_CA, IPCBUS_TLS_CERT, IPCBUS_TLS_KEY) */
	char ca[1024];
	char cert[1024];
	char key_file[1024];
};

/* Parse s into *u.  0, or PROTO_EURL with a reason in err. */
int url_parse(const char *s, struct url *u, char *err, size_t errlen);

/* Parse a SysV KEY (0x.., decimal, /path, /path:ID); 0 or PROTO_EURL. */
int url_parse_key(const char *s, long *key, char *err, size_t errlen);

/* The broker's default listen URL for this user (DESIGN.md, Default
 * address).  0 or -ENAMETOOLONG. */
int url_default_listen(char *out, size_t n);

/* The URL a client uses without -u: $IPCBUS_URL, else the user's broker
 * socket when it exists, else the system broker's.  0 or -ENAMETOOLONG. */
int url_default_client(char *out, size_t n);

/* s for a message or a log: the TOKEN of tcp://TOKEN@host:port (tls,
 * udp too) is replaced by three stars; anything else is shown as it is.  Cut to n (n may be 0).
 * url_parse()'s reasons are redacted already. */
void url_redact(const char *s, char *out, size_t n);

/* Scheme name of a kind ("unix"). */
const char *url_scheme(enum url_kind kind);

#endif
