/*
 * chan.c: validation and matching of channel names and patterns.
 */
#include <config.h>

#include <string.h>

#include "chan.h"
#include "proto.h"

static int chan_tokch(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* Validate; wild = 1 allows `*` and a final `>`. */
static int chan_check(const char *s, size_t len, int wild)
{
	size_t i = 0, tok = 0;

	if (!s || len == 0 || len > CHAN_MAX)
		return PROTO_ECHANNEL;
	while (i <= len) {
		size_t start = i;
		while (i < len && s[i] != '.')
			i++;
		size_t n = i - start;
		const char *t = s + start;
		if (n == 0)
			return PROTO_ECHANNEL; /* empty token */
		if (wild && n == 1 && (t[0] == '*' || t[0] == '>')) {
			if (t[0] == '>' && i != len)
				return PROTO_ECHANNEL; /* '>' only last */
		} else {
			size_t j = 0;
			if (tok == 0 && t[0] == '$') {
				if (n == 1)
					return PROTO_ECHANNEL;
				j = 1;
			}
			for (; j < n; j++)
				if (!chan_tokch((unsigned char)t[j]))
					return PROTO_ECHANNEL;
		}
		tok++;
		i++; /* past the '.' (or past the end) */
	}
	return 0;
}

int chan_valid_name(const char *s, size_t len)
{
	return chan_check(s, len, 0);
}

int chan_valid_pattern(const char *s, size_t len)
{
	return chan_check(s, len, 1);
}

int chan_is_system(const char *s, size_t len)
{
	return len > 0 && s[0] == '$';
}

int chan_is_inbox(const char *s, size_t len)
{
	return len >= 6 && memcmp(s, "_INBOX", 6) == 0 && (len == 6 || s[6] == '.');
}

int chan_is_inbox_wildcard(const char *s, size_t len)
{
	/* in a valid pattern `*` and `>` are whole tokens: one byte after
	 * "_INBOX." tells */
	return chan_is_inbox(s, len) && len > 7 && (s[7] == '*' || s[7] == '>');
}

int chan_match(const char *pat, size_t plen, const char *name, size_t nlen)
{
	size_t pi = 0, ni = 0;
	int first = 1;

	for (;;) {
		size_t ps = pi, ns = ni;
		while (pi < plen && pat[pi] != '.')
			pi++;
		while (ni < nlen && name[ni] != '.')
			ni++;
		size_t pn = pi - ps, nn = ni - ns;
		int wild = pn == 1 && (pat[ps] == '*' || pat[ps] == '>');
		if (first && wild && (chan_is_system(name, nlen) || chan_is_inbox(name, nlen)))
			return 0;
		if (pn == 1 && pat[ps] == '>')
			return ns < nlen || nn > 0; /* one or more tokens left */
		if (ns >= nlen && nn == 0)
			return 0; /* name ended, pattern did not */
		if (!(pn == 1 && pat[ps] == '*') && (pn != nn || memcmp(pat + ps, name + ns, pn)))
			return 0;
		first = 0;
		int pend = pi >= plen, nend = ni >= nlen;
		if (pend || nend)
			return pend && nend;
		pi++;
		ni++;
	}
}

/* The next token of p from *i: its start and length; *i moves past it. */
static size_t chan_token(const char *p, size_t len, size_t *i, const char **tok)
{
	size_t s = *i;
	while (*i < len && p[*i] != '.')
		(*i)++;
	*tok = p + s;
	size_t n = *i - s;
	if (*i < len)
		(*i)++; /* the dot */
	return n;
}

/* A first token a wildcard does not match: `$...` or `_INBOX`. */
static int chan_first_special(const char *t, size_t n)
{
	return (n > 0 && t[0] == '$') || (n == 6 && memcmp(t, "_INBOX", 6) == 0);
}

int chan_overlap(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i = 0, j = 0;
	int first = 1;

	for (;;) {
		int aend = i >= alen, bend = j >= blen;
		if (aend || bend)
			return aend && bend;
		const char *ta, *tb;
		size_t na = chan_token(a, alen, &i, &ta), nb = chan_token(b, blen, &j, &tb);
		int wa = na == 1 && (ta[0] == '*' || ta[0] == '>');
		int wb = nb == 1 && (tb[0] == '*' || tb[0] == '>');
		if (first && ((wa && !wb && chan_first_special(tb, nb)) ||
			      (wb && !wa && chan_first_special(ta, na))))
			return 0;
		first = 0;
		if ((na == 1 && ta[0] == '>') || (nb == 1 && tb[0] == '>'))
			return 1;
		if (wa || wb)
			continue;
		if (na != nb || memcmp(ta, tb, na) != 0)
			return 0;
	}
}

int chan_valid_queue(const char *q, size_t len)
{
	if (len == 0 || len > 255)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)q[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
			return 0;
	}
	return 1;
}
