/*
 * chan.h: channel names and subscription patterns (DESIGN.md, Semantics).
 *
 * A channel is tokens of [A-Za-z0-9_-] separated by '.', at most 255 bytes.
 * The first token may begin with '$' (the broker's own channels) or be
 * `_INBOX` (reply inboxes).  A pattern may use `*` for one token and `>` as
 * its last token for one or more tokens; a wildcard in the first token does
 * not match `$...` or `_INBOX...` channels, and a pattern on _INBOX must name
 * its inbox (a literal second token) to be allowed.
 */
#ifndef IPCBUS_CHAN_H
#define IPCBUS_CHAN_H

#include "proto.h"

#include <stddef.h>

#define CHAN_MAX 255

/* 0 when s[0..len) is a valid channel name, else PROTO_ECHANNEL. */
int chan_valid_name(const char *s, size_t len);

/* 0 when s[0..len) is a valid pattern, else PROTO_ECHANNEL. */
int chan_valid_pattern(const char *s, size_t len);

/* 1 when the channel is reserved for the broker ($...): clients may not
 * publish on it. */
int chan_is_system(const char *s, size_t len);

/* 1 when the first token is _INBOX. */
int chan_is_inbox(const char *s, size_t len);

/* 1 when the valid pattern s[0..len) reads inboxes it does not name: its
 * first token is _INBOX and its second a wildcard (`_INBOX.*...`,
 * `_INBOX.>`), so it would receive other clients' replies.  The broker
 * refuses such a SUB (E_PERMISSION).  A wildcard first token never matches
 * _INBOX channels (chan_match), so every other pattern names its inboxes. */
int chan_is_inbox_wildcard(const char *s, size_t len);

/* 1 when q[0..len) is a valid queue group name: 1-255 of A-Z a-z 0-9 _ -
 * . (the router and the interest table hold it NUL-terminated). */
int chan_valid_queue(const char *q, size_t len);

/* 1 when the valid pattern matches the valid channel name.  The router uses
 * its own index; this is the reference the tests compare it with. */
int chan_match(const char *pat, size_t plen, const char *name, size_t nlen);

/* 1 when some channel matches both patterns (valid ones). */
int chan_overlap(const char *a, size_t alen, const char *b, size_t blen);

#endif
