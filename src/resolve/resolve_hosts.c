/* resolve_hosts: names from /etc/hosts, read the way glibc does for a
 * name with several lines (every address, in file order), which c-ares
 * 1.18's ares_gethostbyname_file does not (it stops at the first line).
 * Used by the system's resolvers (a block without nameservers) before
 * any DNS query. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "resolve-int.h"
#include "sluice/resolve.h"
#include "sluice/util.h"

static const char *hosts_path = "/etc/hosts";

void resolve_set_hosts_path(const char *path)
{
	hosts_path = path;
}

static int localhost(struct util_addr *out, size_t max)
{
	size_t n = 0;

	if (n < max && util_addr_parse_host("127.0.0.1", &out[n]) == 0)
		n++;
	if (n < max && util_addr_parse_host("::1", &out[n]) == 0)
		n++;
	return (int)n;
}

int resolve_hosts_lookup(const char *name, struct util_addr *out, size_t max)
{
	char line[1024];
	size_t n = 0;
	FILE *f = fopen(hosts_path, "re");

	if (f == NULL) {
		if (errno != ENOENT)
			return -1;
		return strcasecmp(name, "localhost") == 0 ? localhost(out, max) : 0;
	}
	while (n < max && fgets(line, sizeof(line), f) != NULL) {
		char *p = line, *w;
		struct util_addr a;
		bool first = true, named = false;

		line[strcspn(line, "#\n")] = '\0';
		/* words separated by blanks: the address, then its names */
		while (!named && *(p += strspn(p, " \t")) != '\0') {
			w = p;
			p += strcspn(p, " \t");
			if (*p != '\0')
				*p++ = '\0';
			if (first && util_addr_parse_host(w, &a) < 0)
				break;
			named = !first && strcasecmp(w, name) == 0;
			first = false;
		}
		if (named)
			out[n++] = a;
	}
	fclose(f);
	if (n == 0 && strcasecmp(name, "localhost") == 0)
		return localhost(out, max);
	return (int)n;
}
