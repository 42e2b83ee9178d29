/*
 * libpump.h: what the integration tests that use libipcbus share.
 */
#ifndef IPCBUS_TESTS_LIBPUMP_H
#define IPCBUS_TESTS_LIBPUMP_H

#include <stddef.h>

#include "ipcbus.h"

#define LIB_PUMP_MAX 8

/* Wait on every connection's descriptor (n <= LIB_PUMP_MAX) and dispatch
 * them all, until done(arg) (NULL: for the whole time) or timeout_ms.
 * 0 when done (or without done), -1 on timeout. */
int lib_pump(ipcbus *const *cs, size_t n, int (*done)(void *), void *arg, int timeout_ms);

#endif
