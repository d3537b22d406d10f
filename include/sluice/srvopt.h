/* srvopt (util): the rules every door that creates a server shares: the
 * configuration file (conf's `server` line), `server add` on the control
 * socket and the state file (ctl). One table of options (name, value range,
 * where it is stored) and one name rule, so the same words get the same
 * verdict and the same message wherever they come from. Pure: plain data,
 * no allocation. */
#ifndef SLUICE_SRVOPT_H
#define SLUICE_SRVOPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Names of pools, servers, listeners, VRRP instances: with the NUL. */
#define UTIL_NAME_MAX 64

#define UTIL_SRV_WEIGHT_MAX 256
#define UTIL_SRV_MAXCONN_MAX 1000000

/* PROXY protocol towards a server; INHERIT: the pool's setting. */
enum util_proxy_proto {
	UTIL_PROXY_INHERIT,
	UTIL_PROXY_NONE,
	UTIL_PROXY_V1,
	UTIL_PROXY_V2,
};

/* `check` or `agent` of one server: off, or another port (0: the pool's). */
struct util_srvopt_probe {
	bool off;
	uint16_t port;
};

/* The options of a server as written (file, control socket, state file). */
struct util_srvopts {
	uint32_t weight;  /* 0-256, default 1; 0 takes no new connections */
	uint32_t maxconn; /* 0 (default): unlimited */
	bool backup;
	enum util_proxy_proto send_proxy;
	struct util_srvopt_probe check, agent;
};

/* The defaults: weight 1, everything else off or the pool's. */
void util_srvopts_init(struct util_srvopts *o);

/* Parse the option that starts at words[*i] (of n) into o. Returns 0 with
 * *i at its last word, or -1 with a message in err and *i at the word at
 * fault. An unknown word is an error whose "expected ..." list names every
 * option, followed by extra when not NULL (a door's own words: ", or
 * ready"). */
int util_srvopt_parse(const char *const *words, size_t n, size_t *i, struct util_srvopts *o,
		      const char *extra, char *err, size_t errlen);

/* Check values that did not come through util_srvopt_parse (a struct built
 * by code): the same ranges and messages. Returns 0 or -1 with err. */
int util_srvopts_check(const struct util_srvopts *o, char *err, size_t errlen);

/* Do a and b hold the same options? */
bool util_srvopts_equal(const struct util_srvopts *a, const struct util_srvopts *b);

/* Append " WORD VALUE" for each option of o that is not a default, in the
 * syntax util_srvopt_parse reads, to buf at *off (as util_bufprintf). */
void util_srvopts_format(const struct util_srvopts *o, char *buf, size_t len, size_t *off);

/* "v1", "v2", "none" or "inherit". */
const char *util_proxy_proto_name(enum util_proxy_proto p);
/* Parse v1, v2 or none. Returns 0, or -1 with a message in err. */
int util_proxy_proto_parse(const char *s, enum util_proxy_proto *out, char *err, size_t errlen);

/* Is s (len bytes: a NUL inside is refused) a good name: 1 to
 * UTIL_NAME_MAX - 1 letters, digits, '-', '_' or '.'? Returns 0, or -1
 * with "bad WHAT name '...' (expected ...)" in err. */
int util_name_check(const char *what, const char *s, size_t len, char *err, size_t errlen);

#endif
