/*
 * ipcbus.h: the client library of the ipcbus message broker.
 *
 * A connection (ipcbus *) publishes, subscribes and makes requests over one
 * broker URL.  It is used from one thread at a time; the library starts no
 * threads for socket transports and never touches the program's signal
 * handling (writes use MSG_NOSIGNAL).
 *
 * Two ways to drive it:
 *   - blocking: ipcbus_wait(), ipcbus_next(), ipcbus_request(), ipcbus_flush()
 *     run the connection until their condition or timeout;
 *   - in the program's own loop: poll ipcbus_fd() for reading (it stays the
 *     same descriptor across reconnects), call ipcbus_dispatch() when it is
 *     readable, and call ipcbus_dispatch() again after ipcbus_timeout()
 *     milliseconds at the latest (keepalive, reconnect, request timeouts).
 *
 * Errors: every function that can fail returns 0 (or a count) on success and
 * a negative code on failure: -errno for system errors, or one of the
 * IPCBUS_E* codes below.  ipcbus_strerror() names any of them; for errors the
 * broker reported, ipcbus_last_error() gives the broker's own text.  The
 * library never prints and never exits.
 *
 * Callbacks may call any function of the library on their own connection,
 * blocking ones included, except ipcbus_close().  Blocking calls return
 * -EINTR when a signal interrupts them (the program decides whether to go
 * on); a timeout of -1 means none.
 *
 * Ownership: strings and buffers passed in are borrowed for the call only
 * (the library copies what it keeps).  An ipcbus_msg handed to a callback is
 * borrowed for the callback only; ipcbus_msg_dup() makes a copy the caller
 * owns and frees with ipcbus_msg_free().
 */
#ifndef IPCBUS_H
#define IPCBUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define IPCBUS_API __attribute__((visibility("default")))
#else
#define IPCBUS_API
#endif

#define IPCBUS_PROTOCOL_VERSION 1

/* Error codes of ipcbus itself; system errors are -errno (all > -1000). */
enum {
	IPCBUS_ETIMEOUT = -1001,      /* the timeout ran out */
	IPCBUS_ENORESPONDERS = -1002, /* a request nobody is subscribed to */
	IPCBUS_EDISCONNECTED = -1003, /* the connection to the broker is down */
	IPCBUS_EPROTO = -1004,        /* the peer sent bytes that do not decode */
	IPCBUS_ESERVER = -1005,       /* the broker refused: ipcbus_last_error() says why
				       * (for ipcbus_connect: IPCBUS_EV_CONNECT_FAILED) */
	IPCBUS_ECLOSED = -1006,       /* closed for good (fatal ERR, or ipcbus_close) */
	IPCBUS_EBUFFER = -1007,       /* disconnected and the outgoing buffer is full */
	IPCBUS_ETOOBIG = -1008,       /* payload or headers over the broker's limit */
	IPCBUS_EURL = -1009,          /* a URL that does not parse, or an unknown scheme */
	IPCBUS_EVERSION = -1010,      /* the broker speaks another protocol version */
	IPCBUS_ECHANNEL = -1011,      /* an invalid channel name or pattern */
	IPCBUS_EFRAME = -1012,        /* a frame over the frame limit */
	IPCBUS_ENOSUB = -1013,        /* no such subscription */
	IPCBUS_EPERM = -1014,         /* denied (ACL, reserved channel, bad token) */
	IPCBUS_EAGAIN = -1015,        /* nothing there yet (ipcbus_next with timeout 0) */
	IPCBUS_EUNSAFE = -1016,       /* a default socket (or its folder) that another user
				       * owns or may write to, or a $IPCBUS_TOKEN_FILE that
				       * others may read: ipcbus_connect refused it */
	IPCBUS_ETLS = -1017,          /* TLS failed: the broker's certificate not accepted
				       * (untrusted, expired, for another name), ours
				       * refused or missing, a peer that does not speak
				       * TLS, or a CA, certificate or key file that cannot
				       * be used; the text says which */
};

/* Name of any code returned by this library (never NULL). */
IPCBUS_API const char *ipcbus_strerror(int err);

typedef struct ipcbus ipcbus;

/* One header: key and value are bytes (not NUL-terminated in received
 * messages; NUL-terminated strings are fine when sending, with len 0 meaning
 * strlen -- see ipcbus_publish_ex). */
typedef struct ipcbus_header {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
} ipcbus_header;

/* A received message.  In a callback every pointer is borrowed and valid
 * until the callback returns. */
typedef struct ipcbus_msg {
	const char *channel;     /* not NUL-terminated; channel_len bytes */
	size_t channel_len;
	const char *reply_to;    /* NULL when the message is not a request */
	size_t reply_to_len;
	const void *data;
	size_t len;
	const ipcbus_header *headers;
	size_t nheaders;
	uint64_t sid;            /* the subscription it was delivered to */
} ipcbus_msg;

/* Events reported through ipcbus_opts.on_event. */
enum {
	IPCBUS_EV_DISCONNECTED = 1, /* err, text say why; reconnecting unless the
				     * broker's ERR was fatal (its `fatal` flag) */
	IPCBUS_EV_RECONNECTED = 2,  /* subscriptions were restored */
	IPCBUS_EV_ERROR = 3,        /* the broker refused a frame: err, text */
	IPCBUS_EV_CLOSED = 4,       /* closed for good: err, text */
	IPCBUS_EV_CONNECT_FAILED = 5, /* ipcbus_connect() fails with err; text says why
				       * (the broker's reason, or what the library found) */
};

typedef void (*ipcbus_event_cb)(void *arg, int event, int err, const char *text);
typedef void (*ipcbus_msg_cb)(void *arg, const ipcbus_msg *msg);
/* status: 0 and a reply; IPCBUS_ETIMEOUT, IPCBUS_ENORESPONDERS,
 * IPCBUS_EDISCONNECTED or another error, and reply NULL. */
typedef void (*ipcbus_reply_cb)(void *arg, int status, const ipcbus_msg *reply);

/* Connection options; a zero field means its default.
 *
 * The struct grows at the end as the library gains options, so that a
 * program keeps working with a newer library and gets a clear error from an
 * older one: start from IPCBUS_OPTS_INIT, which sets size to the struct's
 * size in the header the program is built with, then set fields:
 *
 *     ipcbus_opts o = IPCBUS_OPTS_INIT;
 *     o.name = "worker";
 *
 * size 0 (a struct zeroed by `= {0}` or memset) is fine too: it means the
 * fields up to event_arg, which every version has.  A library older than the
 * header refuses (ipcbus_connect: -E2BIG, with a text through on_event) a
 * struct that sets a field it does not know, instead of ignoring it; fields
 * left zero are no trouble. */
typedef struct ipcbus_opts {
	size_t size;                  /* sizeof(ipcbus_opts): IPCBUS_OPTS_INIT sets it */
	const char *name;             /* client name in the broker's logs */
	const char *token;            /* for tcp/udp (later tls) brokers, when the URL has none;
				       * else $IPCBUS_TOKEN, else $IPCBUS_TOKEN_FILE's
				       * first line.  Never sent over unix:// */
	int connect_timeout_ms;       /* default 5000 */
	int no_reconnect;             /* 1: after a disconnect, stay closed */
	size_t reconnect_buffer;      /* bytes kept while disconnected; default 8 MiB */
	int reconnect_min_ms;         /* first backoff; default 50 */
	int reconnect_max_ms;         /* backoff ceiling; default 2000 */
	int no_delay;                 /* 1: every publish is written at once */
	size_t max_queued;            /* bytes held for ipcbus_next(); default 64 MiB */
	ipcbus_event_cb on_event;     /* may be NULL */
	void *event_arg;
	/* new options go here, at the end */
} ipcbus_opts;

#if defined(__cplusplus)
#define IPCBUS_OPTS_INIT {sizeof(ipcbus_opts)}
#else
#define IPCBUS_OPTS_INIT {.size = sizeof(ipcbus_opts)}
#endif

/* Connect to url; NULL means $IPCBUS_URL, else the default address (the
 * user's socket when it exists, else the system broker's).  URLs:
 * unix:///path/to/socket, tcp://[TOKEN@]host:port (tcp://[::1]:port for
 * IPv6; a host name is resolved at every attempt and its addresses tried in
 * turn; the lookup blocks, a numeric address never does) and
 * udp://[TOKEN@]host:port (one frame per datagram: datagrams may be lost;
 * SUB, UNSUB and flush are resent until answered, the session's lease is
 * kept by PINGs that ipcbus_timeout() schedules, and the limits are those
 * of one datagram: libipcbus(3), UDP).  opts may be NULL
 * (every default).  Blocks until the broker welcomed the connection or
 * opts->connect_timeout_ms ran out.  Returns 0 and *out, or a negative code
 * (nothing to free); just before a failure returns, opts->on_event gets
 * IPCBUS_EV_CONNECT_FAILED with the code and a text (the broker's own, e.g.
 * "the broker is full (max-connections 10)", or what went wrong).  Besides
 * the codes of the broker and the system: IPCBUS_EURL (a URL that does not
 * parse, or a scheme this library does not speak yet), IPCBUS_EUNSAFE (see
 * below; also a $IPCBUS_TOKEN_FILE that others may read), -E2BIG (opts sets
 * an option this library does not know), -EINVAL (opts->size smaller than
 * any layout; no event then).
 *
 * The token (tcp and udp, and tls when it comes; never sent over unix://,
 * where the socket's permissions decide) is the URL's TOKEN
 * (percent-decoded), else opts->token, else $IPCBUS_TOKEN, else the first
 * line (without its line end) of the file $IPCBUS_TOKEN_FILE names, so the
 * secret stays out of `ps` and the environment.  That file is read again at
 * every connection attempt, so a reconnect uses a rotated token; it must be a
 * regular file that others cannot read or write (group may: a service
 * group), else IPCBUS_EUNSAFE.
 *
 * A default address (url NULL and no $IPCBUS_URL) is a name that another
 * local user may have made first, so before each connect to it the library
 * checks that the socket and its folder belong to the user (the system
 * broker's: to root, or the user), that neither is a symbolic link, and that
 * the folder (and its parent, unless sticky) is not writable by group or
 * others; else IPCBUS_EUNSAFE, the text naming the path and the reason.  An
 * explicit url or $IPCBUS_URL is the caller's choice and is not checked. */
IPCBUS_API int ipcbus_connect(ipcbus **out, const char *url, const ipcbus_opts *opts);

/* Write what is buffered (best effort, without waiting), then close and
 * free.  Pending requests get IPCBUS_ECLOSED.  NULL does nothing. */
IPCBUS_API void ipcbus_close(ipcbus *c);

/* The URL the connection uses (resolved default included).  Borrowed. */
IPCBUS_API const char *ipcbus_url(const ipcbus *c);

/* The broker's text of the last error it reported (or why the connection
 * was lost), or "" */
IPCBUS_API const char *ipcbus_last_error(const ipcbus *c);

/* 1 while connected and welcomed, 0 otherwise. */
IPCBUS_API int ipcbus_connected(const ipcbus *c);

/* Publish.  The frame is buffered and written by the next dispatch, flush or
 * blocking call (at once with opts.no_delay, or when the buffer is large).
 * A publisher more than 4 MiB ahead of its socket waits (in poll) until the
 * broker takes more: back-pressure instead of unbounded memory.
 * Returns 0, IPCBUS_ECHANNEL, IPCBUS_EPERM (a `$...` channel: the
 * broker's own), IPCBUS_ETOOBIG, IPCBUS_EBUFFER (disconnected and the buffer
 * is full), IPCBUS_ECLOSED.  Refusals by the broker arrive
 * later: as IPCBUS_EV_ERROR and as the result of the next ipcbus_flush(). */
IPCBUS_API int ipcbus_publish(ipcbus *c, const char *channel, const void *data, size_t len);

/* Publish with headers and an optional reply channel (NULL for none).  A
 * header whose key_len (value_len) is 0 takes strlen(key) (strlen(value));
 * an empty value needs value "" with value_len 0, which is the same. */
IPCBUS_API int ipcbus_publish_ex(ipcbus *c, const char *channel, const char *reply_to,
				 const ipcbus_header *headers, size_t nheaders,
				 const void *data, size_t len);

/* Subscribe to pattern (`*` one token, `>` the rest), optionally in a queue
 * group (NULL for none).  cb is called from dispatch for each message; with
 * cb NULL the messages are queued for ipcbus_next().  *sid receives the
 * subscription id (may be NULL).  The SUB is sent at once; the broker's
 * refusal (bad pattern, too many subscriptions) comes as IPCBUS_EV_ERROR and
 * from the next ipcbus_flush().  Returns 0 or a negative code. */
IPCBUS_API int ipcbus_subscribe(ipcbus *c, const char *pattern, const char *queue,
				ipcbus_msg_cb cb, void *arg, uint64_t *sid);

/* Remove a subscription.  0 or IPCBUS_ENOSUB. */
IPCBUS_API int ipcbus_unsubscribe(ipcbus *c, uint64_t sid);

/* Write everything buffered and wait for one broker round trip, so the
 * broker has processed all of it (over udp://: what of it arrived; the
 * flush also waits for the answers to the SUBs and UNSUBs made before it,
 * so the subscriptions are in place).  Returns 0, or the first error the broker
 * reported since the previous flush (IPCBUS_ESERVER etc., with
 * ipcbus_last_error()), IPCBUS_ETIMEOUT, IPCBUS_EDISCONNECTED. */
IPCBUS_API int ipcbus_flush(ipcbus *c, int timeout_ms);

/* Pollable descriptor (POLLIN), the same for the connection's lifetime. */
IPCBUS_API int ipcbus_fd(const ipcbus *c);

/* Milliseconds until ipcbus_dispatch() must be called again at the latest,
 * or -1 when nothing is scheduled. */
IPCBUS_API int ipcbus_timeout(const ipcbus *c);

/* Do the work that is due without blocking: read and handle what arrived
 * (calling message and reply callbacks), run timers, reconnect, write
 * buffered output.  Returns the number of messages delivered, or a negative
 * code when the connection is closed for good. */
IPCBUS_API int ipcbus_dispatch(ipcbus *c);

/* Block up to timeout_ms (-1: forever) and dispatch until at least one
 * message or reply was delivered.  Returns the count delivered,
 * IPCBUS_ETIMEOUT, or a negative code when closed for good. */
IPCBUS_API int ipcbus_wait(ipcbus *c, int timeout_ms);

/* Next message of the subscriptions made with cb NULL, waiting up to
 * timeout_ms (-1: forever; 0: IPCBUS_EAGAIN when none is queued).  *out is
 * owned by the caller: ipcbus_msg_free() it.  The queue holds at most
 * opts.max_queued bytes; past that messages are dropped and one
 * IPCBUS_EV_ERROR with IPCBUS_EBUFFER says so. */
IPCBUS_API int ipcbus_next(ipcbus *c, ipcbus_msg **out, int timeout_ms);

/* Copy a message (its channel, reply_to, headers and data) into one block
 * the caller owns.  NULL when out of memory. */
IPCBUS_API ipcbus_msg *ipcbus_msg_dup(const ipcbus_msg *m);
/* Free a copy; NULL does nothing. */
IPCBUS_API void ipcbus_msg_free(ipcbus_msg *m);

/* First header named key (NUL-terminated): its value and length, or NULL. */
IPCBUS_API const char *ipcbus_msg_header(const ipcbus_msg *m, const char *key, size_t *len);

/* Request/reply.  The library holds one inbox subscription per connection
 * (`_INBOX.<random>.>`) and matches replies to requests by id, so many
 * requests may be in flight at once.
 *
 * Blocking form: returns 0 and *reply (caller owns: ipcbus_msg_free), or
 * IPCBUS_ETIMEOUT, IPCBUS_ENORESPONDERS (nothing subscribed, answered at
 * once), IPCBUS_EDISCONNECTED (the connection dropped, or was down when
 * called), or another negative code.  Other subscriptions' callbacks may run
 * while it waits. */
IPCBUS_API int ipcbus_request(ipcbus *c, const char *channel,
			      const ipcbus_header *headers, size_t nheaders,
			      const void *data, size_t len, int timeout_ms,
			      ipcbus_msg **reply);

/* Asynchronous form: cb is called exactly once from a later dispatch (or
 * from ipcbus_close with IPCBUS_ECLOSED) with the reply or the error.
 * Returns 0 when sent (cb will be called) or a negative code (cb will not). */
IPCBUS_API int ipcbus_request_async(ipcbus *c, const char *channel,
				    const ipcbus_header *headers, size_t nheaders,
				    const void *data, size_t len, int timeout_ms,
				    ipcbus_reply_cb cb, void *arg);

/* Answer a request: publish to its reply_to.  req may be the message of a
 * callback (borrowed) or a copy from ipcbus_msg_dup(), so a request can be
 * answered after its callback returned: the caller owns the copy until it
 * frees it, and the requester waits only until its own timeout.
 * IPCBUS_EINVAL-like -EINVAL when req has no reply_to. */
IPCBUS_API int ipcbus_respond(ipcbus *c, const ipcbus_msg *req,
			      const ipcbus_header *headers, size_t nheaders,
			      const void *data, size_t len);

/* Limits the broker announced (0 before the first WELCOME). */
IPCBUS_API uint64_t ipcbus_max_payload(const ipcbus *c);

/* Library version string, e.g. "0.1.0". */
IPCBUS_API const char *ipcbus_version(void);

#ifdef __cplusplus
}
#endif
#endif
