/*
 * chan_cases.h: the table of pattern/channel matches shared by test_chan
 * (against chan_match, the reference) and test_router (against the trie),
 * so that both implementations are held to the same edge cases.
 */
#ifndef IPCBUS_TESTS_CHAN_CASES_H
#define IPCBUS_TESTS_CHAN_CASES_H

struct chan_match_case {
	const char *pat;
	const char *name;
	int match;
};

static const struct chan_match_case chan_match_cases[] = {
	{"a", "a", 1},
	{"a", "b", 0},
	{"a", "ab", 0},
	{"ab", "a", 0},
	{"A", "a", 0},
	{"a", "a.b", 0},
	{"a.b", "a", 0},
	{"a.b", "a.b", 1},
	{"a.b.c", "a.b.c", 1},
	{"a.b.c", "a.b.d", 0},
	{"a.>", "a", 0},
	{"a.>", "a.b", 1},
	{"a.>", "a.b.c", 1},
	{"a.>", "b.c", 0},
	{"*", "a", 1},
	{"*", "a.b", 0},
	{"*.*", "a.b", 1},
	{"*.*", "a", 0},
	{"*.*", "a.b.c", 0},
	{"*.b", "a.b", 1},
	{"*.b", "a.c", 0},
	{"a.*", "a", 0},
	{"a.*", "a.b", 1},
	{"a.*.c", "a.b.c", 1},
	{"a.*.c", "a.b.d", 0},
	{"a.*.>", "a.b", 0},
	{"a.*.>", "a.b.c", 1},
	{"a.*.>", "a.b.c.d", 1},
	{"*.>", "a", 0},
	{"*.>", "a.b", 1},
	{">", "a", 1},
	{">", "a.b.c", 1},
	/* the broker's channels and inboxes escape first-token wildcards */
	{">", "$SYS", 0},
	{">", "$SYS.x", 0},
	{"*", "$SYS", 0},
	{"*.x", "$SYS.x", 0},
	{"*.>", "$SYS.x", 0},
	{"$SYS.>", "$SYS.x", 1},
	{"$SYS.>", "$SYS.x.y", 1},
	{"$SYS.*", "$SYS.x", 1},
	{"$SYS.x", "$SYS.x", 1},
	{"$SYS", "$SYS", 1},
	{"$SYS.>", "$SYSX.x", 0},
	{">", "_INBOX.x", 0},
	{"*", "_INBOX", 0},
	{"*.x", "_INBOX.x", 0},
	{"*.*", "_INBOX.abc", 0},
	{"_INBOX.*", "_INBOX.abc", 1},
	{"_INBOX.>", "_INBOX.a.b", 1},
	{"_INBOX.abc", "_INBOX.abc", 1},
	{"_INBOX.*", "_INBOX.abc.d", 0},
	/* what clients may subscribe to: their own inbox, named */
	{"_INBOX.abc.>", "_INBOX.abc.1", 1},
	{"_INBOX.abc.>", "_INBOX.abd.1", 0},
	{"_INBOX.abc.>", "_INBOX.abc", 0},
	{"_INBOX.abc.*", "_INBOX.abc.1", 1},
	{"*.*.>", "_INBOX.abc.1", 0},
	{"*.abc.>", "_INBOX.abc.1", 0},
	/* only the exact first token _INBOX is an inbox */
	{"*.x", "_INBOXY.x", 1},
	{">", "_INBOXY", 1},
	{"*", "_INBOX_", 1},
	{">", "x._INBOX", 1},
	{"a.>", "a._INBOX", 1},
	{"-", "-", 1},
	{"a-b_c", "a-b_c", 1},
};

#endif
