/*
 * test_chan.c: channel names and patterns: what is valid (DESIGN.md,
 * Semantics) and what matches what, on the edge cases where NATS, MQTT and
 * a careless implementation disagree.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "chan.h"
#include "chan_cases.h"
#include "ipcbus.h"
#include "unit.h"

struct valid_case {
	const char *s;
	int name, pattern; /* 1 when valid as such */
};

static const struct valid_case valid_cases[] = {
	{"a", 1, 1},
	{"a.b.c", 1, 1},
	{"A-z_0.9", 1, 1},
	{"-", 1, 1},
	{"_", 1, 1},
	{"", 0, 0},
	{".", 0, 0},
	{".a", 0, 0},
	{"a.", 0, 0},
	{"a..b", 0, 0}, /* an empty token: `*` can never match one */
	{"..", 0, 0},
	{"$SYS", 1, 1},
	{"$SYS.x", 1, 1},
	{"$a", 1, 1},
	{"$", 0, 0},
	{"$.a", 0, 0},
	{"$$a", 0, 0},
	{"a.$b", 0, 0}, /* '$' only begins the first token */
	{"a$", 0, 0},
	{"_INBOX", 1, 1},
	{"_INBOX.abc", 1, 1},
	{"*", 0, 1},
	{">", 0, 1},
	{"a.*", 0, 1},
	{"*.a", 0, 1},
	{"a.>", 0, 1},
	{"*.>", 0, 1},
	{"*.*.*", 0, 1},
	{"$SYS.>", 0, 1},
	{"$SYS.*", 0, 1},
	{">.a", 0, 0}, /* '>' only last */
	{"a.>.b", 0, 0},
	{">.>", 0, 0},
	{"a*", 0, 0},
	{"*a", 0, 0},
	{"a.b*", 0, 0},
	{"a>", 0, 0},
	{">a", 0, 0},
	{"**", 0, 0},
	{">>", 0, 0},
	{"$*", 0, 0},
	{"$>", 0, 0},
	{"a b", 0, 0},
	{"a/b", 0, 0},
	{"a+b", 0, 0},
	{"a#", 0, 0},
	{"a\tb", 0, 0},
	{"caf\xc3\xa9", 0, 0},
	{"\xff", 0, 0},
};

static void test_valid_table(void)
{
	for (size_t i = 0; i < UNIT_NELEM(valid_cases); i++) {
		const struct valid_case *c = &valid_cases[i];
		size_t n = strlen(c->s);
		int name = chan_valid_name(c->s, n) == 0;
		int pat = chan_valid_pattern(c->s, n) == 0;
		if (name != c->name || pat != c->pattern)
			fprintf(stderr, "\"%s\": name %d (want %d), pattern %d (want %d)\n", c->s,
				name, c->name, pat, c->pattern);
		CU_ASSERT_EQUAL(name, c->name);
		CU_ASSERT_EQUAL(pat, c->pattern);
	}
	/* the error is the documented code */
	CU_ASSERT_EQUAL(chan_valid_name("a..b", 4), IPCBUS_ECHANNEL);
	CU_ASSERT_EQUAL(chan_valid_pattern(">.a", 3), IPCBUS_ECHANNEL);
	CU_ASSERT_EQUAL(chan_valid_name(NULL, 0), IPCBUS_ECHANNEL);
}

static void test_nul(void)
{
	CU_ASSERT_NOT_EQUAL(chan_valid_name("a\0b", 3), 0);
	CU_ASSERT_NOT_EQUAL(chan_valid_name("a\0", 2), 0);
	CU_ASSERT_NOT_EQUAL(chan_valid_name("\0", 1), 0);
	CU_ASSERT_NOT_EQUAL(chan_valid_pattern("a.\0", 3), 0);
	CU_ASSERT_NOT_EQUAL(chan_valid_pattern("*\0", 2), 0);
	/* the length counts, not a NUL terminator */
	CU_ASSERT_EQUAL(chan_valid_name("ab.c", 2), 0);
	CU_ASSERT_NOT_EQUAL(chan_valid_name("ab.c", 3), 0);
}

static void test_length(void)
{
	char s[CHAN_MAX + 2];

	memset(s, 'a', sizeof s);
	CU_ASSERT_EQUAL(chan_valid_name(s, CHAN_MAX), 0);
	CU_ASSERT_NOT_EQUAL(chan_valid_name(s, CHAN_MAX + 1), 0);
	CU_ASSERT_EQUAL(chan_valid_pattern(s, CHAN_MAX), 0);
	CU_ASSERT_NOT_EQUAL(chan_valid_pattern(s, CHAN_MAX + 1), 0);
	/* 255 bytes of one-letter tokens: 128 tokens, still valid */
	for (size_t i = 1; i < CHAN_MAX; i += 2)
		s[i] = '.';
	CU_ASSERT_EQUAL(chan_valid_name(s, CHAN_MAX), 0);
	CU_ASSERT_NOT_EQUAL(chan_valid_name(s, CHAN_MAX + 1), 0);
	s[CHAN_MAX - 1] = '>';
	CU_ASSERT_EQUAL(chan_valid_pattern(s, CHAN_MAX), 0);
	CU_ASSERT_NOT_EQUAL(chan_valid_name(s, CHAN_MAX), 0);
}

static void test_match_table(void)
{
	for (size_t i = 0; i < UNIT_NELEM(chan_match_cases); i++) {
		const struct chan_match_case *c = &chan_match_cases[i];
		size_t pn = strlen(c->pat), nn = strlen(c->name);
		/* the table itself must hold valid input only */
		CU_ASSERT_EQUAL(chan_valid_pattern(c->pat, pn), 0);
		CU_ASSERT_EQUAL(chan_valid_name(c->name, nn), 0);
		int m = chan_match(c->pat, pn, c->name, nn);
		if (m != c->match)
			fprintf(stderr, "chan_match(\"%s\", \"%s\") = %d, want %d\n", c->pat,
				c->name, m, c->match);
		CU_ASSERT_EQUAL(m, c->match);
	}
}

static void test_system_inbox(void)
{
	CU_ASSERT_TRUE(chan_is_system("$SYS", 4));
	CU_ASSERT_TRUE(chan_is_system("$SYS.x", 6));
	CU_ASSERT_FALSE(chan_is_system("SYS", 3));
	CU_ASSERT_FALSE(chan_is_system("", 0));
	CU_ASSERT_TRUE(chan_is_inbox("_INBOX", 6));
	CU_ASSERT_TRUE(chan_is_inbox("_INBOX.abc", 10));
	CU_ASSERT_FALSE(chan_is_inbox("_INBOXY", 7));
	CU_ASSERT_FALSE(chan_is_inbox("_INBO", 5));
	CU_ASSERT_FALSE(chan_is_inbox("a._INBOX", 8));
}

/* A pattern on _INBOX must name its inbox: a wildcard second token would
 * read every client's replies (the broker refuses it with E_PERMISSION). */
static void test_inbox_wildcard(void)
{
	static const struct {
		const char *pat;
		int wild;
	} cases[] = {
		{"_INBOX.*", 1},
		{"_INBOX.>", 1},
		{"_INBOX.*.>", 1},
		{"_INBOX.*.x", 1},
		{"_INBOX.*.*", 1},
		{"_INBOX.abc.>", 0}, /* the library's own inbox subscription */
		{"_INBOX.abc.*", 0},
		{"_INBOX.abc", 0},
		{"_INBOX.abc.1", 0},
		{"_INBOX", 0},        /* the channel _INBOX itself: nobody's inbox */
		{"_INBOXY.*", 0},     /* not an inbox */
		{"_INBOXY.>", 0},
		{"x._INBOX.>", 0},
		{">", 0},             /* wildcard first tokens never see inboxes */
		{"*.>", 0},
		{"*.*", 0},
		{"$SYS.>", 0},
	};
	for (size_t i = 0; i < UNIT_NELEM(cases); i++) {
		size_t n = strlen(cases[i].pat);
		CU_ASSERT_EQUAL(chan_valid_pattern(cases[i].pat, n), 0);
		int got = chan_is_inbox_wildcard(cases[i].pat, n);
		if (got != cases[i].wild)
			fprintf(stderr, "chan_is_inbox_wildcard(\"%s\") = %d, want %d\n",
				cases[i].pat, got, cases[i].wild);
		CU_ASSERT_EQUAL(got, cases[i].wild);
	}
	/* so no allowed pattern matches two clients' inboxes */
	static const char *const allowed[] = {">", "*", "*.*", "*.>", "*.*.>", "_INBOX.a.>",
					      "_INBOX.a.*", "_INBOX.a", "_INBOX"};
	for (size_t i = 0; i < UNIT_NELEM(allowed); i++) {
		const char *p = allowed[i];
		int a = chan_match(p, strlen(p), "_INBOX.a.1", 10);
		int b = chan_match(p, strlen(p), "_INBOX.b.1", 10);
		CU_ASSERT_FALSE(a && b);
		CU_ASSERT_FALSE(chan_is_inbox_wildcard(p, strlen(p)));
	}
}

/* chan_overlap: is there a channel both patterns match?  Checked against
 * chan_match over a set of channels, and by cases. */
static void test_overlap(void)
{
	static const struct {
		const char *a, *b;
		int want;
	} cases[] = {
		{"a.b", "a.b", 1}, {"a.b", "a.c", 0}, {"a.*", "a.b", 1}, {"a.>", "a.b.c", 1},
		{"a.>", "a", 0}, {"*", "a.b", 0}, {">", "a.b", 1}, {"*.b", "a.*", 1},
		{"*.b", "a.c", 0}, {"a.*.c", "a.>", 1}, {"a.*", "a.b.c", 0}, {">", "$SYS.x", 0},
		{"*.x", "$SYS.x", 0}, {"$SYS.>", "$SYS.x", 1}, {">", "_INBOX.a", 0},
		{"_INBOX.a.>", "_INBOX.a.b", 1}, {"a.b.>", "a.*", 0}, {"a.b.>", "a.*.c", 1},
		{">", ">", 1}, {"*", "*", 1}, {"*", "*.*", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *a = cases[i].a, *b = cases[i].b;
		int got = chan_overlap(a, strlen(a), b, strlen(b));
		int rev = chan_overlap(b, strlen(b), a, strlen(a));
		if (got != cases[i].want || rev != cases[i].want)
			fprintf(stderr, "\n  overlap('%s', '%s') = %d/%d, want %d\n", a, b, got, rev,
				cases[i].want);
		CU_ASSERT_EQUAL(got, cases[i].want);
		CU_ASSERT_EQUAL(rev, cases[i].want);
	}
	/* against chan_match: a witness channel means overlap */
	static const char *const pats[] = {"a", "a.b", "a.*", "a.>", "*", "*.b", ">", "*.*.c",
					   "a.b.c", "$SYS.>", "_INBOX.q.>", "b.>"};
	static const char *const names[] = {"a", "a.b", "a.c", "a.b.c", "b", "b.b", "x.y.c",
					    "$SYS.a", "_INBOX.q.r", "a.b.c.d", "b.x"};
	for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++)
		for (size_t j = 0; j < sizeof pats / sizeof pats[0]; j++) {
			int witness = 0;
			for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
				witness |= chan_match(pats[i], strlen(pats[i]), names[k], strlen(names[k])) &&
					   chan_match(pats[j], strlen(pats[j]), names[k], strlen(names[k]));
			if (witness)
				CU_ASSERT(chan_overlap(pats[i], strlen(pats[i]), pats[j], strlen(pats[j])));
		}
}

static void test_queue(void)
{
	char big[257];
	memset(big, 'q', sizeof big);
	CU_ASSERT(chan_valid_queue("g", 1));
	CU_ASSERT(chan_valid_queue("A-z_0.9", 7));
	CU_ASSERT(chan_valid_queue(big, 255));
	CU_ASSERT(!chan_valid_queue(big, 256));
	CU_ASSERT(!chan_valid_queue("", 0));
	CU_ASSERT(!chan_valid_queue("g\0a", 3)); /* held NUL-terminated */
	CU_ASSERT(!chan_valid_queue("g h", 3));
	CU_ASSERT(!chan_valid_queue("g*", 2));
}

int main(void)
{
	static const struct unit_case cases[] = {
		{"valid names and patterns", test_valid_table},
		{"NUL bytes", test_nul},
		{"255 bytes", test_length},
		{"match table", test_match_table},
		{"system and inbox channels", test_system_inbox},
		{"inbox patterns name their inbox", test_inbox_wildcard},
		{"pattern overlap", test_overlap},
		{"queue group names", test_queue},
	};
	return unit_run("chan", cases, UNIT_NELEM(cases));
}
