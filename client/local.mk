# client/: libipcbus, the one public header and the library sources.
lib_LTLIBRARIES += client/libipcbus.la
include_HEADERS += client/ipcbus.h
client_libipcbus_la_SOURCES = \
	client/client.h \
	client/conn.c \
	client/defpath.c client/defpath.h \
	client/idmap.c client/idmap.h \
	client/msg.c \
	client/pub.c \
	client/req.c \
	client/sub.c
client_libipcbus_la_LIBADD = proto/libipcbusproto.la $(PROTOBUF_C_LIBS)
client_libipcbus_la_LDFLAGS = $(AM_LDFLAGS) -no-undefined -version-info 0:0:0 \
	-export-symbols-regex '^ipcbus_[a-z]'
