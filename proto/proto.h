/*
 * proto.h: the protocol's constants that proto/ and the broker need: the
 * protocol version and the error codes proto/ returns.
 *
 * Programs get the same values from the public header client/ipcbus.h
 * (PROTO_VERSION, IPCBUS_E*); client/msg.c checks at compile time
 * that the two agree.  proto/ and broker/ never include ipcbus.h, so the
 * layering holds by construction: the library depends on proto/, never
 * the other way round.
 */
#ifndef IPCBUS_PROTO_H
#define IPCBUS_PROTO_H

/* Bumped for every incompatible change (docs/protocol.md, Evolution). */
#define PROTO_VERSION 1

enum {
	PROTO_EPROTO = -1004,   /* bytes that do not decode */
	PROTO_EURL = -1009,     /* a URL that does not parse */
	PROTO_ECHANNEL = -1011, /* an invalid channel name or pattern */
	PROTO_EFRAME = -1012,   /* a frame over the frame limit */
};

#endif
