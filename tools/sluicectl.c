/* sluicectl: command-line client of sluice's control socket. Sends one
 * command, prints the reply (aligned tables or JSON), and exits 0 on
 * success, 1 on an error reply (printed on stderr), 2 when it cannot
 * connect or the daemon vanished. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/sluice/sluice.sock"

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: sluicectl [-s SOCKET] [--json] COMMAND ...\n"
	       "  -s SOCKET   control socket (default " DEFAULT_SOCKET ", or $SLUICE_SOCKET)\n"
	       "  --json      ask for a JSON reply\n"
	       "commands:\n"
	       "  show info | show listeners | show pools | show servers [POOL] | show metrics\n"
	       "  server ready|drain|maint POOL/SERVER\n"
	       "  server drain POOL/SERVER within DURATION\n"
	       "  server weight POOL/SERVER N\n"
	       "  server shutdown-sessions POOL/SERVER\n"
	       "  server add POOL NAME ADDRESS:PORT [weight N] [backup] [maxconn N] [check on|off] "
	       "[ready]\n"
	       "  server del POOL/SERVER [force]\n"
	       "  wait drained POOL/SERVER [TIMEOUT] | wait up POOL/SERVER [TIMEOUT]\n"
	       "  show announce | announce withdraw|restore NAME|all\n"
	       "  node drain [within DURATION] | node ready | wait idle [TIMEOUT]\n"
	       "  reload [check] | help\n");
}

static int connect_socket(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "sluicectl: socket path too long: %s\n", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "sluicectl: cannot connect to %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = getenv("SLUICE_SOCKET");
	char line[4200], *reply = NULL;
	size_t off = 0, len = 0, cap = 0;
	bool json = false;
	int i = 1, fd;

	if (path == NULL)
		path = DEFAULT_SOCKET;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i == argc) {
		usage(stdout);
		return 0;
	}
	if (json)
		off += (size_t)snprintf(line, sizeof(line), "json ");
	for (; i < argc; i++) {
		int n = snprintf(line + off, sizeof(line) - off, "%s%s", argv[i],
				 i + 1 < argc ? " " : "\n");

		if (n < 0 || (size_t)n >= sizeof(line) - off) {
			fprintf(stderr, "sluicectl: command too long\n");
			return 1;
		}
		off += (size_t)n;
	}
	fd = connect_socket(path);
	if (fd < 0)
		return 2;
	if (send_all(fd, line, off) < 0) {
		fprintf(stderr, "sluicectl: send failed: %s\n", strerror(errno));
		return 2;
	}
	/* a reply ends with an empty line */
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *r = realloc(reply, cap ? cap * 2 : 65536);

			if (r == NULL) {
				fprintf(stderr, "sluicectl: out of memory\n");
				return 2;
			}
			reply = r;
			cap = cap ? cap * 2 : 65536;
		}
		n = recv(fd, reply + len, cap - len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		reply[len] = '\0';
		if (len >= 2 && strcmp(reply + len - 2, "\n\n") == 0)
			break;
	}
	close(fd);
	if (len < 2 || strcmp(reply + len - 2, "\n\n") != 0) {
		fprintf(stderr, "sluicectl: the daemon closed the connection before replying\n");
		free(reply);
		return 2;
	}
	reply[len - 1] = '\0'; /* drop the terminating empty line */
	if (strncmp(reply, "error: ", 7) == 0) {
		fputs(reply, stderr);
		free(reply);
		return 1;
	}
	fputs(reply, stdout);
	free(reply);
	return 0;
}
