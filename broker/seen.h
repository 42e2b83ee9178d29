/*
 * seen.h: which forwarded messages this broker has already seen, per
 * origin broker: the highest number and a window of the SEEN_WINDOW
 * before it.  A message at or below the window's start, or one whose bit
 * is set, is a duplicate.  At most SEEN_ORIGINS origins are remembered;
 * the one heard from least recently is forgotten first.
 */
#ifndef IPCBUS_SEEN_H
#define IPCBUS_SEEN_H

#include <stddef.h>
#include <stdint.h>

#define SEEN_WINDOW 1024
#define SEEN_ORIGINS 1024
#define SEEN_ID_MAX 64

struct seen;

struct seen *seen_new(void);
void seen_free(struct seen *s);

/* Record (origin, seq): 1 when it is new, 0 when it is a duplicate or too
 * old to tell, -ENOMEM. */
int seen_check(struct seen *s, const uint8_t *origin, size_t len, uint64_t seq);

/* Origins remembered. */
size_t seen_count(const struct seen *s);

#endif
