# broker/: the daemon.  Everything but main.c is a convenience library, so
# the tests link the modules directly.
noinst_LTLIBRARIES += broker/libipcbusd.la
# (BROKER_SRC is also compiled into the fuzz targets, with their flags)
BROKER_SRC = \
	broker/auth.c broker/auth.h \
	broker/bridge.c broker/bridge.h broker/bridge_int.h \
	broker/bridge_line.c \
	broker/interest.c broker/interest.h \
	broker/route.c broker/route.h \
	broker/rawq.c broker/rawq.h broker/rawq_int.h \
	broker/rawq_in.c \
	broker/rawq_out.c \
	broker/seen.c broker/seen.h \
	broker/broker.c broker/broker.h \
	broker/conf.c broker/conf.h \
	broker/conn.c broker/conn_sub.c broker/conn.h \
	broker/outq.c broker/outq.h \
	broker/handle.c \
	broker/log.c broker/log.h \
	broker/loop.c broker/loop.h \
	broker/router.c broker/router.h \
	broker/transport.c broker/transport.h \
	broker/tr_stream.c \
	broker/tr_unix.c \
	broker/tr_tcp.c \
	broker/tr_tls.c \
	broker/tr_udp.c \
	broker/tr_sysv.c broker/tr_sysv.h \
	broker/sysv_hello.c \
	broker/sysv_thread.c
broker_libipcbusd_la_SOURCES = $(BROKER_SRC)
broker_libipcbusd_la_CPPFLAGS = $(BROKER_CPPFLAGS)
broker_libipcbusd_la_LIBADD = proto/libipcbusproto.la $(PROTOBUF_C_LIBS)

sbin_PROGRAMS += broker/ipcbusd
broker_ipcbusd_SOURCES = broker/main.c
broker_ipcbusd_CPPFLAGS = $(BROKER_CPPFLAGS)
broker_ipcbusd_LDADD = broker/libipcbusd.la
