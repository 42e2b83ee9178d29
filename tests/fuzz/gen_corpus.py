#!/usr/bin/env python3
# gen_corpus.py: writes the seed corpora of fuzz_url, fuzz_conf and
# fuzz_broker (tests/fuzz/corpus-url, corpus-conf, corpus-broker).  The seeds
# are committed; run this again after changing the input format of a target
# or adding a directive or a scheme:
#
#   python3 tests/fuzz/gen_corpus.py [TESTS_FUZZ_DIR]
#
# Python 3 alone, no protobuf package: the few frames are encoded by hand
# (proto/ipcbus.proto, field numbers as in proto/frame.h).  The corpus of
# fuzz_frame (tests/fuzz/corpus) is not written here.
import os
import sys

HERE = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))


def write(folder, name, data):
    path = os.path.join(HERE, folder)
    os.makedirs(path, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(path, name), "wb") as f:
        f.write(data)


# ---- fuzz_url: one URL of every scheme and option ----
URLS = {
    "unix": "unix:///tmp/ipcbus/ipcbus.sock",
    "unix-opts": "unix:///run/ipcbus/b.sock?mode=0660&group=root",
    "unix-mode": "unix:///s?mode=600",
    "tcp": "tcp://127.0.0.1:4222",
    "tcp-token": "tcp://s3cret@host:4222",
    "tcp-pct": "tcp://a%40b%3Ac%25d%2fe%20f@localhost:9",
    "tcp-ipv6": "tcp://[::1]:4222",
    "udp": "udp://tok@[fe80::1]:65535",
    "sysv-hex": "sysv://0x1234",
    "sysv-dec": "sysv://4660",
    "sysv-path": "sysv:///tmp",
    "shm-path-id": "shm:///tmp:7",
    "bad-scheme": "http://example.com/",
    "long-path": "sysv:///" + "p" * 4100 + ":3",
    "long-unix": "unix:///" + "u" * 120,
}
for name, url in URLS.items():
    write("corpus-url", name, url)

# ---- fuzz_conf: every directive, quoting, comments, errors ----
write("corpus-conf", "all", """\
# every directive of ipcbus.conf(5) this version reads
listen unix:///tmp/ipcbus-fuzz/a.sock
listen "unix:///tmp/ipcbus fuzz/b.sock?mode=0660"   # quoted: a space inside
max-payload 64k
max-header-bytes 4k
max-pending 1M
max-subscriptions 100
max-connections 10
max-memory 1G
drain-timeout 0
ping-interval 50
slow-consumer disconnect
pidfile /tmp/ipcbusd.pid
log /tmp/ipcbusd.log
""")
write("corpus-conf", "small", "max-payload 1\nslow-consumer drop\nlog stderr\n")
write("corpus-conf", "quotes", 'pidfile "/tmp/a \\"b\\" \\\\c#d"\nlog syslog\n')
write("corpus-conf", "errors", """\
max-payload 0
max-payload 2G
ping-interval 10
max-pending 2M
max-memory 1M
listen tcp://127.0.0.1:4222
bridge tcp://peer:4222 a.>
token secret
listen unix:///tmp/x.sock?group=no-such-group-here
nonsense
"unterminated
log relative/path
""")
write("corpus-conf", "many-listen",
      "".join("listen unix:///tmp/ipcbus-fuzz/%d.sock\n" % i for i in range(33)))
write("corpus-conf", "overflow", "max-payload 18014398509481984k\nmax-memory 99999999999999999999\n"
      "log /%s/x\n" % ("d" * 4100))
write("corpus-conf", "nul", b"max-payload 1k\nlisten unix:///a\x00b\n\r\n")
write("corpus-conf", "sysv-lines", """\
sysv-in 0x1234 1 legacy.in
sysv-in 0x1234 2 legacy.two mode=0600 keep qbytes=1M
sysv-out legacy.> 0x1235 7 mode=0640 remove wait=50 backlog=64k qbytes=0
sysv-out x 0x1235 7 mode=0640 remove wait=1 qbytes=0
sysv-in 0x1235 7 back
sysv-in 0x1235 0 any remove mode=0640 qbytes=0
sysv-in 4660 1 dup
sysv-out a 0x1236 0
sysv-in /tmp:2 0 path.key
""")

# ---- fuzz_broker: frame sequences over fake connections ----
# op byte = (action << 2) | slot; actions as enum fuzz_op in fuzz_broker.c.
# In each loop turn the driver runs its records first, then the connections
# that were readable when the turn began read; the answers go out in the
# turn's before-sleep step.  So bytes fed in one turn are read in the next
# (in the same one only when that connection was readable already), and a
# frame that must be handled before another connection's frame needs two
# TURNs between them.
FEED, DGRAM, TURN, EOF, STALL, WMAX, RCHUNK, CONNECT, KILL, SIGNAL, ROUTE = range(11)
HELLO_T, PUB_T, SUB_T, UNSUB_T, PING_T, PONG_T = 1, 3, 4, 5, 7, 8


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def fvar(field, v):
    return varint(field << 3) + varint(v)


def fbytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(field << 3 | 2) + varint(len(b)) + b


def frame(ftype, id=None, channel=None, reply_to=None, payload=None, headers=(),
          sid=None, queue=None, hello=None):
    body = fvar(1, ftype)
    if id is not None:
        body += fvar(2, id)
    if channel is not None:
        body += fbytes(3, channel)
    if reply_to is not None:
        body += fbytes(4, reply_to)
    if payload is not None:
        body += fbytes(5, payload)
    for k, v in headers:
        body += fbytes(6, fbytes(1, k) + fbytes(2, v))
    if sid is not None:
        body += fvar(7, sid)
    if queue is not None:
        body += fbytes(8, queue)
    if hello is not None:
        body += fbytes(9, hello)
    return body


def hello(version=1, name="fuzz", pid=42):
    return frame(HELLO_T, id=1, hello=fvar(1, version) + fbytes(2, name) + fvar(3, pid))


def stream(*frames):
    return b"".join(varint(len(f)) + f for f in frames)


def op(action, slot, arg=None):
    b = bytes([(action << 2) | slot])
    if arg is None:
        return b
    if isinstance(arg, int):
        return b + bytes([arg])
    if isinstance(arg, str):
        arg = arg.encode()
    return b + bytes([len(arg)]) + arg


def feed(slot, data):
    """FEED records of at most 255 bytes each."""
    out = b""
    for i in range(0, len(data), 255):
        out += op(FEED, slot, data[i:i + 255])
    return out


def turn():
    return op(TURN, 0)


# 0: default limits; 1: slow-consumer disconnect; 2: small limits;
# 4: max-connections 3
seeds = {}

# HELLO on every connection, SUBs with patterns and queue groups, a PUB that
# fans out, PING, UNSUB
seeds["pubsub"] = bytes([0]) + b"".join(feed(i, stream(hello(name="c%d" % i))) for i in range(4)) \
    + turn() \
    + feed(1, stream(frame(SUB_T, id=2, channel="a.*", sid=1),
                     frame(SUB_T, id=3, channel="a.>", sid=2))) \
    + feed(2, stream(frame(SUB_T, id=2, channel="a.b", sid=7, queue="q"))) \
    + feed(3, stream(frame(SUB_T, id=2, channel="*.b", sid=9, queue="q"))) \
    + turn() \
    + op(ROUTE, 0, "a.b") \
    + turn() + feed(0, stream(frame(PUB_T, id=5, channel="a.b", payload="hello", headers=[("k", "v")]),
                     frame(PUB_T, id=6, channel="a.b", reply_to="_INBOX.abc", payload=""),
                     frame(PING_T, id=7))) \
    + turn() \
    + feed(1, stream(frame(UNSUB_T, id=4, sid=1), frame(PONG_T))) \
    + feed(0, stream(frame(PUB_T, id=8, channel="a.b.c", payload="x" * 300))) \
    + turn() + op(ROUTE, 0, "a.b.c")

# requests with nobody listening; errors that keep the connection
seeds["errors"] = bytes([0]) + feed(0, stream(
    hello(),
    frame(PUB_T, id=2, channel="no.one", reply_to="_INBOX.x", payload="?"),
    frame(PUB_T, id=3, channel="$SYS.x", payload="no"),
    frame(PUB_T, id=4, channel="bad..name", payload="no"),
    frame(SUB_T, id=5, channel="a.>.b", sid=1),
    frame(SUB_T, id=6, channel="a", sid=1),
    frame(SUB_T, id=7, channel="b", sid=1),
    frame(SUB_T, id=8, channel="c"),
    frame(SUB_T, id=9, channel="d", sid=2, queue="bad queue"),
    frame(UNSUB_T, id=10, sid=99),
    frame(PUB_T, id=11, channel="a", payload="x", sid=3),
)) + turn()

# fatal errors: a frame before HELLO, a bad version, HELLO twice, a frame the
# client may not send, bytes that do not decode, a frame over the limit
seeds["fatal"] = bytes([0]) \
    + feed(0, stream(frame(PING_T, id=1))) \
    + feed(1, stream(hello(version=99))) \
    + feed(2, stream(hello(), hello())) \
    + feed(3, stream(hello(), frame(2, id=3))) \
    + turn() + turn() \
    + op(CONNECT, 0) + feed(0, stream(hello()) + b"\x03\xff\xff\xff") \
    + op(CONNECT, 1) + feed(1, varint(1 << 22)) \
    + turn()

# a slow consumer (small limits) that stalls, then reads a few bytes a call
slow = bytes([2]) + feed(0, stream(hello())) + feed(1, stream(hello(), frame(SUB_T, channel="s.>", sid=1))) \
    + op(STALL, 1) + turn() + turn()
for i in range(12):
    slow += feed(0, stream(frame(PUB_T, channel="s.x", payload="y" * 200)))
# reads take at most 512 bytes of a connection a turn
slow += turn() * 8 + op(STALL, 1) + op(WMAX, 1, 100) + turn() * 2
seeds["slow-drop"] = slow
seeds["slow-disconnect"] = bytes([3]) + slow[1:]

# datagrams, small read chunks, a full broker, EOF, a failing transport,
# SIGHUP then SIGTERM (drain)
seeds["misc"] = bytes([4]) \
    + op(DGRAM, 0, hello()) + op(DGRAM, 0, frame(SUB_T, channel="d.*", sid=3)) \
    + op(RCHUNK, 1, 0) + feed(1, stream(hello(), frame(PUB_T, channel="d.x", payload="dg"))) \
    + turn() + turn() + op(CONNECT, 3) + op(EOF, 0) + op(KILL, 1) + turn() + turn() \
    + op(CONNECT, 0) + op(CONNECT, 3) + op(SIGNAL, 0, 1) + turn() \
    + feed(2, stream(hello(), frame(PING_T, id=5))) + op(SIGNAL, 0, 0) + turn()

# a slow consumer that reads 5 bytes a turn: disconnected while a frame is
# half written (the half must be completed before the ERR)
partial = bytes([3]) + feed(0, stream(hello())) + feed(1, stream(hello(), frame(SUB_T, channel="s.>", sid=1))) \
    + op(WMAX, 1, 5) + turn() + turn()
for i in range(12):
    partial += feed(0, stream(frame(PUB_T, channel="s.x", payload="z" * 200)))
seeds["slow-partial"] = partial + turn() * 8 + op(WMAX, 1, 0) + turn() * 2

# a client that asks and never reads the answers: ERRs pile up past
# max-pending and the control slack (conn_overflow), small limits
flood = stream(*[frame(PUB_T, channel="a", sid=1)] * 560)
seeds["control-flood"] = bytes([2]) + feed(0, stream(hello())) + op(STALL, 0) + turn() * 2 \
    + feed(0, flood) + turn() * 12

# many subscriptions and unsubscriptions on one connection (the sid table
# grows, fills with tombstones, rehashes), queue groups across patterns
subs = [frame(SUB_T, channel=p, sid=i, queue=("g" if i % 3 == 0 else None))
        for i, p in enumerate(["x.*", "x.>", "*.y", "x.y", ">", "*.*", "x.y.>", "$SYS.>"] * 1)]
unsubs = [frame(UNSUB_T, sid=i) for i in range(0, 8, 2)]
seeds["subs"] = bytes([0]) + feed(0, stream(hello())) + feed(1, stream(hello())) + turn() \
    + feed(1, stream(*subs)) + turn() * 2 + op(ROUTE, 0, "x.y") + op(ROUTE, 0, "$SYS.x") \
    + feed(0, stream(frame(PUB_T, channel="x.y", payload="1"))) + turn() \
    + feed(1, stream(*unsubs) + stream(*[frame(SUB_T, channel="x.%d" % i, sid=100 + i) for i in range(20)])) \
    + turn() * 2 + op(ROUTE, 0, "x.y") + op(ROUTE, 0, "x.7") \
    + feed(0, stream(frame(PUB_T, channel="x.y", payload="2"), frame(PUB_T, channel="x.7", payload="3"))) \
    + turn()

# small limits: a payload, headers and a frame over them, one SUB too many
seeds["limits"] = bytes([2]) + feed(0, stream(hello())) + feed(1, stream(hello())) + turn() * 2 \
    + feed(1, stream(*[frame(SUB_T, channel="l.%d" % i, sid=i) for i in range(9)])) + turn() * 2 \
    + feed(0, stream(frame(PUB_T, id=2, channel="l.1", payload="p" * 257),
                     frame(PUB_T, id=3, channel="l.1", payload="h", headers=[("key", "v" * 70)]),
                     frame(PUB_T, id=4, channel="l.2", payload="ok", headers=[("a", "b"), ("c", "")]))) \
    + turn() * 2 + feed(0, varint(2000) + b"\x08") + turn()

for name, data in seeds.items():
    write("corpus-broker", name, data)
