# tests/fuzz/: see Makefile.am
