# docs/: man pages and the protocol and design notes (see Makefile.am)
dist_man_MANS += docs/ipcbusd.8 docs/ipcbus.1 docs/libipcbus.3 docs/ipcbus.conf.5
EXTRA_DIST += docs/protocol.md docs/design.md docs/legacy.md
