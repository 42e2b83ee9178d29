/*
 * fakebroker.h: a broker of a few functions for the library's unit tests,
 * over a Unix socket or loopback TCP.  A test reads the client's frames and
 * writes MSG and ERR frames by hand, step by step, and drives the client
 * with ipcbus_dispatch() in the same thread; only a handshake that
 * ipcbus_connect() waits for runs in a short-lived thread.  A real broker
 * could not be told to misbehave, nor asked what a HELLO carried.
 */
#ifndef IPCBUS_TESTS_FAKEBROKER_H
#define IPCBUS_TESTS_FAKEBROKER_H

#include <stdint.h>
#include <sys/un.h>

#include "buf.h"
#include "frame.h"
#include "ipcbus.h"

#define WAIT_MS 2000 /* the most one step waits for the other side */
#define STR_MAX 256

struct fb {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* unix; "" for tcp */
	char host[64]; /* tcp: "127.0.0.1", "::1" */
	int port;      /* tcp: the ephemeral port */
	char url[300]; /* unix://path or tcp://host:port ([::1] bracketed), no token */
	int lfd;       /* listening socket */
	int fd;        /* the accepted connection, or -1 */
	struct buf in; /* bytes read from fd */
	int hs_err;    /* what the handshake thread found wrong, or 0 */
	/* the last HELLO */
	int hellos;    /* HELLOs answered so far */
	int hello_has_token;
	char hello_token[STR_MAX];
	char hello_name[STR_MAX];
};

/* A frame the client sent, copied out of the read buffer. */
struct fb_frame {
	int type;
	int has_id, has_sid, has_reply_to;
	uint64_t id, sid;
	char channel[STR_MAX];
	char reply_to[STR_MAX];
	char payload[STR_MAX];
};

/* Listen on a new socket in folder dir (b0.sock, b1.sock, ...), or on host
 * with an ephemeral port.  0 or a negative code (nothing to stop then). */
int fb_start(struct fb *b, const char *dir);
int fb_start_tcp(struct fb *b, const char *host);
/* Close the accepted connection (the broker "goes away"); keep listening. */
void fb_drop(struct fb *b);
/* Close everything (and remove the socket file). */
void fb_stop(struct fb *b);

/* Next whole frame from the client as a view into b->in (valid until the
 * next read): 1, 0 when none came within timeout_ms, -EPIPE at EOF, or
 * another negative code. */
int fb_raw(struct fb *b, struct frame *f, int timeout_ms);
/* fb_raw(), copied into *out. */
int fb_next(struct fb *b, struct fb_frame *out, int timeout_ms);
/* Write and free o. */
int fb_send(struct fb *b, struct buf *o);
/* A MSG to subscription sid, as the broker delivers it. */
int fb_msg(struct fb *b, uint64_t sid, const char *channel, const char *payload);
/* An ERR with the flags as given (-1: the field left out). */
int fb_err_flags(struct fb *b, uint64_t id, int code, int fatal, int closing,
		 const char *text);
int fb_err(struct fb *b, uint64_t id, int code);
/* Accept a client (within timeout_ms) and answer its HELLO with a WELCOME,
 * recording what the HELLO carried.  0 or a negative code. */
int fb_handshake(struct fb *b, int timeout_ms);
/* Connect a client to url (b listening already) while a thread does the
 * handshake.  0 and *c, or a negative code (*c NULL; b still listening). */
int fb_connect_url(struct fb *b, const char *url, ipcbus **c, const ipcbus_opts *opts);
/* fb_start(b, dir), then fb_connect_url(b->url): 0, or a negative code and
 * nothing left to clean up. */
int fb_connect(struct fb *b, const char *dir, ipcbus **c, const ipcbus_opts *opts);

#endif
