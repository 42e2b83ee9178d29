# proto/: the schema, generated protobuf-c code and the framing shared by the
# broker and the client library.
noinst_LTLIBRARIES += proto/libipcbusproto.la
# (PROTO_SRC is also compiled into the fuzz targets, with their flags)
PROTO_SRC = \
	proto/buf.c proto/buf.h \
	proto/frame.c proto/frame.h \
	proto/chan.c proto/chan.h \
	proto/url.c proto/url.h \
	proto/hash.c proto/hash.h \
	proto/proto.h \
	proto/tls.c proto/tls.h \
	proto/net.c proto/net.h \
	proto/sysv.c proto/sysv.h
proto_libipcbusproto_la_SOURCES = $(PROTO_SRC)
nodist_proto_libipcbusproto_la_SOURCES = proto/ipcbus.pb-c.c proto/ipcbus.pb-c.h
proto_libipcbusproto_la_CPPFLAGS = $(AM_CPPFLAGS) $(OPENSSL_CFLAGS)
proto_libipcbusproto_la_LIBADD = $(PROTOBUF_C_LIBS) $(OPENSSL_LIBS)
EXTRA_DIST += proto/ipcbus.proto

BUILT_SOURCES += proto/ipcbus.pb-c.c proto/ipcbus.pb-c.h
CLEANFILES += proto/ipcbus.pb-c.c proto/ipcbus.pb-c.h

# protoc-c writes both files at once; the .h depends on the .c.
proto/ipcbus.pb-c.c: $(srcdir)/proto/ipcbus.proto
	$(AM_V_GEN)$(MKDIR_P) proto && \
	$(PROTOC_C) --proto_path=$(srcdir)/proto --c_out=proto $(srcdir)/proto/ipcbus.proto
proto/ipcbus.pb-c.h: proto/ipcbus.pb-c.c
	@:
