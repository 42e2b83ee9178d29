/*
 * conf.h: the configuration: built-in defaults, the file (ipcbus.conf(5))
 * and the command line on top.
 */
#ifndef IPCBUS_CONF_H
#define IPCBUS_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONF_MAX_LISTEN 32
#define CONF_MAX_TOKENS 64
#define CONF_MAX_BRIDGES 32
#define CONF_MAX_BRIDGE_PATTERNS 64
#define CONF_MAX_BRIDGE_ALLOW 64
#define CONF_MAX_SYSV 64
/* A token's secret: at least this long, so guessing is hopeless. */
#define CONF_TOKEN_MIN 16

enum { SLOW_DROP = 0, SLOW_DISCONNECT = 1 };

struct conf {
	char *listen[CONF_MAX_LISTEN]; /* URLs, owned */
	size_t nlisten;
	uint64_t max_payload;      /* 1 MiB */
	uint64_t max_header_bytes; /* 64 KiB */
	uint64_t max_pending;      /* 64 MiB */
	uint64_t max_subscriptions; /* 10,000 */
	uint64_t max_connections;  /* 10,000 */
	uint64_t max_memory;       /* 1 GiB */
	uint64_t drain_timeout;    /* ms, 5000 */
	uint64_t ping_interval;    /* ms, 30000; 0 disables keepalive */
	int slow_consumer;         /* SLOW_DROP */
	char *pidfile;             /* owned, or NULL */
	char *log;                 /* "stderr", "syslog" or a path; owned, or NULL */
	/* `token [NAME] SECRET`: required from network clients; a named one
	 * is the identity token:NAME (name NULL for the unnamed one) */
	struct conf_token {
		char *name;
		char *secret;
		size_t len;
	} tokens[CONF_MAX_TOKENS];
	size_t ntokens;
	char *tls_cert, *tls_key, *tls_ca; /* files, owned, or NULL */
	/* `bridge URL [PATTERN]...`: a peer broker this one dials (tcp, tls);
	 * no patterns: every channel (but $SYS) */
	struct conf_bridge {
		char *url;
		char **patterns;
		size_t npatterns;
	} bridges[CONF_MAX_BRIDGES];
	size_t nbridges;
	/* `bridge-allow IDENTITY...`: who may bridge where clients are
	 * authenticated (token:NAME, token, cert:CN) */
	char *bridge_allow[CONF_MAX_BRIDGE_ALLOW];
	size_t nbridge_allow;
	/* `sysv-in KEY MTYPE CHANNEL [OPTION]...` and `sysv-out PATTERN KEY
	 * MTYPE [OPTION]...`: raw bridges to SysV queues (rawq.c) */
	struct conf_sysv {
		int out;           /* sysv-out; else sysv-in */
		char *key_text;    /* KEY as written, for the log */
		long key;          /* parsed (ftok done) */
		long mtype;        /* in: 0 (any type) or the type; out: >= 1 */
		char *channel;     /* in: the channel; out: the pattern */
		unsigned mode;     /* of a queue the broker creates: 0600 */
		int remove;        /* remove the queue at stop (default: keep) */
		uint64_t wait_ms;  /* out: longest wait for room in the queue (1000) */
		uint64_t backlog;  /* out: bytes that may wait for room (1M) */
		uint64_t qbytes;   /* raise msg_qbytes to this (1M); 0: leave it */
	} sysv[CONF_MAX_SYSV];
	size_t nsysv;
	int has_secrets;           /* a token or tls-key line: the file must not
				    * be readable by others */
	/* which single-valued directives the file set (to refuse repeats) */
	uint32_t seen;
};

/* Built-in defaults. */
void conf_init(struct conf *c);
void conf_fini(struct conf *c);

/* Read a configuration file into c.  Each error is printed to err as
 * "FILE:LINE: reason".  Returns the number of errors (0: good), or -errno
 * when the file cannot be read (also printed). */
int conf_load(struct conf *c, const char *path, FILE *err);

/* Parse one line (without its newline): the unit the file reader and the
 * tests use.  0, or -1 with the reason in why. */
int conf_line(struct conf *c, char *line, char *why, size_t whylen);

/* Add a listen URL (from -l or the file).  0 or -1 with why. */
int conf_add_listen(struct conf *c, const char *url, char *why, size_t whylen);

/* Add a bridge line (from -b or the file): URL and its patterns.  0 or -1
 * with why. */
int conf_add_bridge(struct conf *c, const char *url, char *const *patterns, size_t n, char *why,
		    size_t whylen);

/* Parse a size with an optional k, M or G suffix (powers of 1024).  0/-1. */
int conf_parse_size(const char *s, uint64_t *out);

#endif
