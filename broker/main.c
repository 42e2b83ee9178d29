/*
 * main.c: ipcbusd's command line, configuration and daemonizing; the rest
 * is broker_init() and broker_run().
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "proto.h"
#include "url.h"

static void main_usage(FILE *f)
{
	fprintf(f,
		"usage: ipcbusd [-c FILE] [-l URL]... [-b URL]... [-d] [-p PIDFILE] [-t] [-v]... [-V] [-h]\n"
		"  -c FILE     configuration file (ipcbus.conf(5))\n"
		"  -l URL      listen on URL too (repeatable), e.g. unix:///run/ipcbus/ipcbus.sock\n"
		"  -b URL      bridge to the broker at URL (tcp:// or tls://; repeatable): every\n"
		"              channel but $SYS.> crosses, both ways\n"
		"  -d          daemonize; the parent exits 0 once the broker is listening\n"
		"  -p PIDFILE  write the pid there (overrides the file's pidfile)\n"
		"  -t          check the configuration and exit (0: good)\n"
		"  -v          more log detail (repeatable)\n"
		"  -V          print the version and exit\n"
		"  -h          this help\n"
		"Without -l or listen lines: the default socket (as root unix:///run/ipcbus/ipcbus.sock,\n"
		"else under $XDG_RUNTIME_DIR/ipcbus/ or /tmp/ipcbus-UID/).\n");
}

/* Fork; the parent waits until the child says it is ready (exit 0) or dies
 * (exit 1).  Returns the write end of the ready pipe in the child. */
static int main_daemonize(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		perror("ipcbusd: pipe");
		exit(1);
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("ipcbusd: fork");
		exit(1);
	}
	if (pid > 0) {
		char ok;
		close(p[1]);
		ssize_t n;
		while ((n = read(p[0], &ok, 1)) < 0 && errno == EINTR)
			;
		_exit(n == 1 ? 0 : 1);
	}
	close(p[0]);
	if (setsid() < 0)
		perror("ipcbusd: setsid");
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		if (null > 1)
			close(null);
	}
	if (chdir("/") < 0) {
	}
	return p[1];
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct conf cfg;
	struct broker b;
	const char *file = NULL, *pidfile = NULL;
	const char *listen[CONF_MAX_LISTEN], *bridges[CONF_MAX_BRIDGES];
	size_t nlisten = 0, nbridges = 0;
	int daemonize = 0, check = 0, verbose = 0, ch;

	conf_init(&cfg);
	while ((ch = getopt_long(argc, argv, "c:l:b:dp:tvVh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': file = optarg; break;
		case 'l':
			if (nlisten == CONF_MAX_LISTEN) {
				fprintf(stderr, "ipcbusd: too many -l (at most %d)\n", CONF_MAX_LISTEN);
				return 2;
			}
			listen[nlisten++] = optarg;
			break;
		case 'b':
			if (nbridges == CONF_MAX_BRIDGES) {
				fprintf(stderr, "ipcbusd: too many -b (at most %d)\n", CONF_MAX_BRIDGES);
				return 2;
			}
			bridges[nbridges++] = optarg;
			break;
		case 'd': daemonize = 1; break;
		case 'p': pidfile = optarg; break;
		case 't': check = 1; break;
		case 'v': verbose++; break;
		case 'V': printf("ipcbusd %s (protocol %d)\n", PACKAGE_VERSION, PROTO_VERSION); return 0;
		case 'h': main_usage(stdout); return 0;
		default: main_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ipcbusd: unexpected argument '%s'\n", argv[optind]);
		main_usage(stderr);
		return 2;
	}

	int errors = 0;
	if (file) {
		int rc = conf_load(&cfg, file, stderr);
		if (rc < 0)
			return 1;
		errors += rc;
	}
	for (size_t i = 0; i < nlisten; i++) {
		char why[512];
		if (conf_add_listen(&cfg, listen[i], why, sizeof why) < 0) {
			fprintf(stderr, "-l %s: %s\n", listen[i], why);
			errors++;
		}
	}
	for (size_t i = 0; i < nbridges; i++) {
		char why[512], shown[300];
		if (conf_add_bridge(&cfg, bridges[i], NULL, 0, why, sizeof why) < 0) {
			url_redact(bridges[i], shown, sizeof shown);
			fprintf(stderr, "-b %s: %s\n", shown, why);
			errors++;
		}
	}
	if (pidfile) {
		if (pidfile[0] != '/') {
			fprintf(stderr, "-p %s: the pidfile needs an absolute path\n", pidfile);
			errors++;
		} else {
			free(cfg.pidfile);
			cfg.pidfile = strdup(pidfile);
		}
	}
	if (cfg.nlisten == 0) {
		char def[300], why[512];
		if (url_default_listen(def, sizeof def) < 0 ||
		    conf_add_listen(&cfg, def, why, sizeof why) < 0) {
			fprintf(stderr, "ipcbusd: no usable default address\n");
			errors++;
		}
	}
	if (cfg.log) {
		/* what log_open() will refuse (a symbolic link, a hard link...) */
		char why[320];
		if (log_check(cfg.log, why, sizeof why) < 0) {
			fprintf(stderr, "ipcbusd: %s\n", why);
			errors++;
		}
	}
	if (errors) {
		conf_fini(&cfg);
		return 1;
	}
	if (check) {
		printf("configuration %s is good\n", file ? file : "(built-in defaults)");
		conf_fini(&cfg);
		return 0;
	}

	memset(&b, 0, sizeof b);
	log_init(&b.log);
	b.log.level = LOG_LVL_INFO + verbose;
	if (cfg.log) {
		int rc = log_open(&b.log, cfg.log);
		if (rc < 0) {
			fprintf(stderr, "ipcbusd: %s\n", b.log.why);
			conf_fini(&cfg);
			return 1;
		}
	}
	int detach_log = daemonize && !cfg.log;
	int ready_fd = daemonize ? main_daemonize() : -1;
	b.log.tee_stderr = 1; /* until ready */
	int rc = broker_init(&b, &cfg);
	b.ready_fd = ready_fd;
	b.detach_log = detach_log;
	if (rc == 0)
		rc = broker_run(&b);
	else if (ready_fd >= 0)
		close(ready_fd);
	broker_fini(&b);
	log_close(&b.log);
	return rc == 0 ? 0 : 1;
}
