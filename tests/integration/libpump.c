/*
 * libpump.c: driving several libipcbus connections from one test thread,
 * the way a program with its own poll loop does.
 */
#include <config.h>

#include <poll.h>
#include <stdint.h>

#include "harness.h"
#include "libpump.h"

int lib_pump(ipcbus *const *cs, size_t n, int (*done)(void *), void *arg, int timeout_ms)
{
	uint64_t deadline = harness_now() + (uint64_t)timeout_ms;
	struct pollfd pf[LIB_PUMP_MAX];

	for (;;) {
		for (size_t i = 0; i < n; i++)
			ipcbus_dispatch(cs[i]);
		if (done && done(arg))
			return 0;
		uint64_t now = harness_now();
		if (now >= deadline)
			return done ? -1 : 0;
		int wait = (int)(deadline - now);
		for (size_t i = 0; i < n; i++) {
			pf[i] = (struct pollfd){.fd = ipcbus_fd(cs[i]), .events = POLLIN};
			int t = ipcbus_timeout(cs[i]);
			if (t >= 0 && t < wait)
				wait = t;
		}
		if (wait > 50)
			wait = 50;
		poll(pf, (nfds_t)n, wait);
	}
}
