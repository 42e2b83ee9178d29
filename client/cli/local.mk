# client/cli/: see Makefile.am
