# client/cli/: the ipcbus command.  Only ipcbus.h is used from the library.
bin_PROGRAMS += client/ipcbus
client_ipcbus_SOURCES = \
	client/cli/cli.h \
	client/cli/main.c \
	client/cli/common.c \
	client/cli/pub.c \
	client/cli/sub.c \
	client/cli/req.c \
	client/cli/bench.c client/cli/bench.h \
	client/cli/bench_pubsub.c \
	client/cli/bench_req.c \
	client/cli/reply.c \
	client/cli/exec.c client/cli/exec.h
client_ipcbus_CPPFLAGS = $(CLIENT_CPPFLAGS)
client_ipcbus_LDADD = client/libipcbus.la -lm
