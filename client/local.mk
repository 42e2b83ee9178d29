# client/: see Makefile.am
