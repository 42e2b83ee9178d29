# client/: libipcbus, the one public header and the library sources.
lib_LTLIBRARIES += client/libipcbus.la
include_HEADERS += client/ipcbus.h
client_libipcbus_la_SOURCES = \
	client/client.h \
	client/conn.c client/conn_in.c client/conn_wait.c \
	client/defpath.c client/defpath.h \
	client/idmap.c client/idmap.h \
	client/msg.c \
	client/pub.c \
	client/req.c \
	client/sub.c \
	client/tr.c client/tr.h \
	client/tr_stream.c \
	client/tr_unix.c \
	client/tr_tcp.c \
	client/tr_tls.c \
	client/tr_udp.c \
	client/tr_sysv.c \
	client/dgram.c
# 1:0:0: ipcbus_opts begins with a size field (libipcbus.3, OPTIONS)
client_libipcbus_la_LIBADD = proto/libipcbusproto.la $(PROTOBUF_C_LIBS)
client_libipcbus_la_LDFLAGS = $(AM_LDFLAGS) -no-undefined -version-info 1:0:0 \
	-export-symbols-regex '^ipcbus_[a-z]'
client_libipcbus_la_CPPFLAGS = $(CLIENT_CPPFLAGS)
