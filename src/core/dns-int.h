/* dns internals shared by dns_glue.c (refs, loading, named servers),
 * dns_source.c (`servers srv|dns` lines) and dns_show.c (show resolvers,
 * metrics, the DNS column of show servers, `server add` lookups). Only
 * src/core includes it. */
#ifndef SLUICE_DNS_INT_H
#define SLUICE_DNS_INT_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "core.h"
#include "sluice/conf-t.h"
#include "sluice/resolve.h"

#define DNS_LOOKUPS_MAX 64 /* `server add` lookups waiting for their client */

/* A resolvers block running: shared by the running configuration and a
 * load being prepared (refs counts them). */
struct core_dns_block {
	struct resolve_conf rc;
	struct resolve *r;
	unsigned refs;
};

enum dns_ref_kind {
	DNS_REF_SERVER, /* a server written with a host name */
	DNS_REF_SOURCE, /* a `servers srv|dns` line */
};

/* One name followed for the model (or for a file being loaded: prep).
 * Owned by its set. */
struct core_dns_ref {
	struct core_dns *d;
	enum dns_ref_kind kind;
	enum resolve_type type;
	struct core_dns_block *blk; /* its pool's block */
	struct resolve_watch *w;
	char pool[CONF_NAME_MAX];
	char server[CONF_NAME_MAX]; /* SERVER */
	char host[UTIL_HOST_MAX];
	uint16_t port;		  /* SERVER: its port; SOURCE dns: the line's */
	struct conf_discover src; /* SOURCE */
	bool from_file;		  /* SERVER: a line of the file (else added at runtime) */
	/* while its file is loaded */
	bool prep;
	const struct conf_server *cs; /* SERVER: in the file being loaded */
	uint64_t start_lookups;
	bool answered;
	/* SOURCE: the last "N records, limit L" logged */
	size_t logged_over;
};

struct dns_set {
	struct core_dns_ref **refs;
	size_t n, cap;
};

/* The names of a file being loaded. */
struct dns_prep {
	struct conf *nc;
	struct conf_errors *errs;
	struct core_dns_block **blocks; /* per nc->resolvers */
	size_t nblocks;
	struct dns_set set;
	size_t pending; /* refs without a fresh answer yet */
	ev_timer deadline;
	void (*done)(void *arg);
	void *arg;
	bool finished;
	char diff[1024]; /* named servers whose address the lookup changed */
};

/* A `server add` with a host name waiting for its answer. */
struct dns_lookup {
	uint64_t id;		    /* 0: free */
	struct core_dns_block *blk; /* the block w is on */
	struct resolve_watch *w;
	uint64_t lookups0, start_ms;
};

struct core_dns {
	struct core *c;
	struct core_dns_block **blocks; /* per c->conf->resolvers */
	size_t nblocks;
	struct dns_set run;
	struct dns_prep *prep;
	bool model_ready; /* the model was built: answers may change it */
	bool dirty;	  /* answers came while they could not be applied */
	ev_timer sweep;
	struct dns_lookup lookups[DNS_LOOKUPS_MAX];
	uint64_t lookup_seq;
};

/* dns_glue.c */
struct core_dns_block *core_dns_block_of(struct core_dns *d, const char *pool);
/* pool_remove_if()'s predicate for one server (arg). */
bool core_dns_is_server(void *arg, struct pool_server *s);
/* Replace s by a new server of its name at addr, keeping what the
 * operator set on it (admin state, weight); p must be frozen. Returns the
 * new server, or NULL with s kept (logged). */
struct pool_server *core_dns_replace(struct core *c, struct pool *p, struct pool_server *s,
				     const struct util_addr *addr);
void core_dns_resync_health(struct core *c);

/* dns_source.c: make the servers of a `servers` line match its answer. */
void core_dns_apply_source(struct core_dns *d, struct core_dns_ref *ref);
/* Take out the servers that left their answer once their connections
 * are over. */
void core_dns_sweep_gone(struct core_dns *d);

/* dns_show.c */
void core_dns_lookups_expire(struct core_dns *d);
/* Drop the lookups whose block a reload is about to free (their client
 * gets an error). */
void core_dns_lookups_drop_block(struct core_dns *d, const struct core_dns_block *blk);
void core_dns_lookups_free(struct core_dns *d);

#endif
