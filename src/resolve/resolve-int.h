/* resolve internals shared by resolve.c (c-ares on the loop) and
 * resolve_hosts.c (/etc/hosts). Only src/resolve includes it. */
#ifndef SLUICE_RESOLVE_INT_H
#define SLUICE_RESOLVE_INT_H

#include <stddef.h>

#include "sluice/util-t.h"

/* Every address the hosts file gives name (as a line's first name or an
 * alias, case-insensitive), in file order, at most max. localhost, when
 * the file does not name it, is 127.0.0.1 and ::1 (RFC 6761 section 6.3).
 * Returns the count, 0 when the name is not there (or there is no file),
 * -1 when the file cannot be read. Blocking file I/O of a local file. */
int resolve_hosts_lookup(const char *name, struct util_addr *out, size_t max);

#endif
