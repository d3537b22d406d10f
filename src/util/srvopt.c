/* srvopt: the table of server options and the name rule shared by every
 * door that creates a server (config file, control socket, state file).
 * Each entry says the option's word, its value range and where in struct
 * util_srvopts it is stored; parsing, checking and writing all walk it. */
#include <stdio.h>
#include <string.h>

#include "sluice/srvopt.h"
#include "sluice/util.h"

enum srvopt_kind {
	SRVOPT_U32,   /* WORD N, N in [min, max] */
	SRVOPT_FLAG,  /* WORD alone */
	SRVOPT_PROXY, /* WORD v1|v2|none */
	SRVOPT_PROBE, /* WORD on|off|port N, N in [min, max] */
};

struct srvopt_def {
	const char *word;
	enum srvopt_kind kind;
	long min, max, dflt; /* U32 and PROBE's port */
	size_t off;	     /* of the field in struct util_srvopts */
	const char *value;   /* what follows the word, for messages */
};

#define SRVOPT_AT(o, d) ((void *)((char *)(o) + (d)->off))

static const struct srvopt_def srvopt_defs[] = {
    {"weight", SRVOPT_U32, 0, UTIL_SRV_WEIGHT_MAX, 1, offsetof(struct util_srvopts, weight), "N"},
    {"maxconn", SRVOPT_U32, 0, UTIL_SRV_MAXCONN_MAX, 0, offsetof(struct util_srvopts, maxconn),
     "N"},
    {"backup", SRVOPT_FLAG, 0, 0, 0, offsetof(struct util_srvopts, backup), NULL},
    {"send-proxy", SRVOPT_PROXY, 0, 0, 0, offsetof(struct util_srvopts, send_proxy), "v1|v2|none"},
    {"check", SRVOPT_PROBE, 1, 65535, 0, offsetof(struct util_srvopts, check), "on|off|port N"},
    {"agent", SRVOPT_PROBE, 1, 65535, 0, offsetof(struct util_srvopts, agent), "on|off|port N"},
};

static const char *const proxy_names[] = {
    [UTIL_PROXY_INHERIT] = "inherit",
    [UTIL_PROXY_NONE] = "none",
    [UTIL_PROXY_V1] = "v1",
    [UTIL_PROXY_V2] = "v2",
};

void util_srvopts_init(struct util_srvopts *o)
{
	memset(o, 0, sizeof(*o));
	o->send_proxy = UTIL_PROXY_INHERIT;
	for (size_t k = 0; k < UTIL_ARRAY_LEN(srvopt_defs); k++)
		if (srvopt_defs[k].kind == SRVOPT_U32)
			*(uint32_t *)SRVOPT_AT(o, &srvopt_defs[k]) = (uint32_t)srvopt_defs[k].dflt;
}

const char *util_proxy_proto_name(enum util_proxy_proto p)
{
	return (size_t)p < UTIL_ARRAY_LEN(proxy_names) ? proxy_names[p] : "?";
}

int util_proxy_proto_parse(const char *s, enum util_proxy_proto *out, char *err, size_t errlen)
{
	for (size_t k = UTIL_PROXY_NONE; k < UTIL_ARRAY_LEN(proxy_names); k++) {
		if (strcmp(s, proxy_names[k]) == 0) {
			*out = (enum util_proxy_proto)k;
			return 0;
		}
	}
	snprintf(err, errlen, "unknown PROXY protocol version '%s' (expected v1, v2 or none)", s);
	return -1;
}

/* The one wording of a value out of its range. */
static int range_error(const char *what, const char *text, long min, long max, char *err,
		       size_t errlen)
{
	snprintf(err, errlen, "%s '%s' out of range (expected an integer %ld-%ld)", what, text, min,
		 max);
	return -1;
}

static int unknown_option(const char *word, const char *extra, char *err, size_t errlen)
{
	char list[256];
	size_t off = 0;

	list[0] = '\0';
	for (size_t k = 0; k < UTIL_ARRAY_LEN(srvopt_defs); k++) {
		const struct srvopt_def *d = &srvopt_defs[k];

		util_bufprintf(list, sizeof(list), &off, "%s%s%s%s",
			       k == 0 ? "" : (k + 1 == UTIL_ARRAY_LEN(srvopt_defs) ? " or " : ", "),
			       d->word, d->value != NULL ? " " : "",
			       d->value != NULL ? d->value : "");
	}
	snprintf(err, errlen, "unknown server option '%s' (expected %s%s)", word, list,
		 extra != NULL ? extra : "");
	return -1;
}

/* WORD on|off|port N at words[*i]. */
static int parse_probe(const struct srvopt_def *d, const char *const *w, size_t n, size_t *i,
		       struct util_srvopt_probe *pr, char *err, size_t errlen)
{
	char what[32];
	long v;

	if (*i + 1 >= n) {
		snprintf(err, errlen, "'%s' needs a value (expected on, off or port N)", d->word);
		return -1;
	}
	(*i)++;
	if (strcmp(w[*i], "on") == 0 || strcmp(w[*i], "off") == 0) {
		pr->off = strcmp(w[*i], "off") == 0;
		pr->port = 0;
		return 0;
	}
	if (strcmp(w[*i], "port") != 0) {
		snprintf(err, errlen, "unknown %s option '%s' (expected on, off or port N)",
			 d->word, w[*i]);
		return -1;
	}
	snprintf(what, sizeof(what), "%s port", d->word);
	if (*i + 1 >= n) {
		snprintf(err, errlen, "'%s' needs a value", what);
		return -1;
	}
	(*i)++;
	if (util_parse_long(w[*i], d->min, d->max, &v) < 0)
		return range_error(what, w[*i], d->min, d->max, err, errlen);
	pr->off = false;
	pr->port = (uint16_t)v;
	return 0;
}

int util_srvopt_parse(const char *const *words, size_t n, size_t *i, struct util_srvopts *o,
		      const char *extra, char *err, size_t errlen)
{
	const struct srvopt_def *d = NULL;
	long v;

	for (size_t k = 0; k < UTIL_ARRAY_LEN(srvopt_defs) && d == NULL; k++)
		if (strcmp(words[*i], srvopt_defs[k].word) == 0)
			d = &srvopt_defs[k];
	if (d == NULL)
		return unknown_option(words[*i], extra, err, errlen);
	switch (d->kind) {
	case SRVOPT_FLAG:
		*(bool *)SRVOPT_AT(o, d) = true;
		return 0;
	case SRVOPT_PROBE:
		return parse_probe(d, words, n, i, SRVOPT_AT(o, d), err, errlen);
	case SRVOPT_U32:
	case SRVOPT_PROXY:
		break;
	}
	if (*i + 1 >= n) {
		snprintf(err, errlen, "'%s' needs a value", d->word);
		return -1;
	}
	(*i)++;
	if (d->kind == SRVOPT_PROXY)
		return util_proxy_proto_parse(words[*i], SRVOPT_AT(o, d), err, errlen);
	if (util_parse_long(words[*i], d->min, d->max, &v) < 0)
		return range_error(d->word, words[*i], d->min, d->max, err, errlen);
	*(uint32_t *)SRVOPT_AT(o, d) = (uint32_t)v;
	return 0;
}

int util_srvopts_check(const struct util_srvopts *o, char *err, size_t errlen)
{
	for (size_t k = 0; k < UTIL_ARRAY_LEN(srvopt_defs); k++) {
		const struct srvopt_def *d = &srvopt_defs[k];
		const struct util_srvopt_probe *pr;
		uint32_t v;
		char text[24];

		switch (d->kind) {
		case SRVOPT_U32:
			v = *(const uint32_t *)SRVOPT_AT(o, d);
			snprintf(text, sizeof(text), "%u", v);
			if ((long)v < d->min || (long)v > d->max)
				return range_error(d->word, text, d->min, d->max, err, errlen);
			break;
		case SRVOPT_PROBE:
			pr = SRVOPT_AT(o, d);
			if (pr->off && pr->port != 0) {
				snprintf(err, errlen, "'%s off' and '%s port' together", d->word,
					 d->word);
				return -1;
			}
			break;
		case SRVOPT_PROXY:
			if ((size_t)o->send_proxy >= UTIL_ARRAY_LEN(proxy_names)) {
				snprintf(err, errlen, "bad send-proxy value %d",
					 (int)o->send_proxy);
				return -1;
			}
			break;
		case SRVOPT_FLAG:
			break;
		}
	}
	return 0;
}

bool util_srvopts_equal(const struct util_srvopts *a, const struct util_srvopts *b)
{
	for (size_t k = 0; k < UTIL_ARRAY_LEN(srvopt_defs); k++) {
		const struct srvopt_def *d = &srvopt_defs[k];
		const struct util_srvopt_probe *pa = SRVOPT_AT(a, d), *pb = SRVOPT_AT(b, d);
		bool same = true;

		switch (d->kind) {
		case SRVOPT_U32:
			same = *(const uint32_t *)SRVOPT_AT(a, d) ==
			       *(const uint32_t *)SRVOPT_AT(b, d);
			break;
		case SRVOPT_FLAG:
			same = *(const bool *)SRVOPT_AT(a, d) == *(const bool *)SRVOPT_AT(b, d);
			break;
		case SRVOPT_PROXY:
			same = a->send_proxy == b->send_proxy;
			break;
		case SRVOPT_PROBE:
			same = pa->off == pb->off && pa->port == pb->port;
			break;
		}
		if (!same)
			return false;
	}
	return true;
}

void util_srvopts_format(const struct util_srvopts *o, char *buf, size_t len, size_t *off)
{
	for (size_t k = 0; k < UTIL_ARRAY_LEN(srvopt_defs); k++) {
		const struct srvopt_def *d = &srvopt_defs[k];
		const struct util_srvopt_probe *pr;
		uint32_t v;

		switch (d->kind) {
		case SRVOPT_U32:
			v = *(const uint32_t *)SRVOPT_AT(o, d);
			if ((long)v != d->dflt)
				util_bufprintf(buf, len, off, " %s %u", d->word, v);
			break;
		case SRVOPT_FLAG:
			if (*(const bool *)SRVOPT_AT(o, d))
				util_bufprintf(buf, len, off, " %s", d->word);
			break;
		case SRVOPT_PROXY:
			if (o->send_proxy != UTIL_PROXY_INHERIT)
				util_bufprintf(buf, len, off, " %s %s", d->word,
					       util_proxy_proto_name(o->send_proxy));
			break;
		case SRVOPT_PROBE:
			pr = SRVOPT_AT(o, d);
			if (pr->off)
				util_bufprintf(buf, len, off, " %s off", d->word);
			else if (pr->port != 0)
				util_bufprintf(buf, len, off, " %s port %u", d->word, pr->port);
			break;
		}
	}
}

int util_name_check(const char *what, const char *s, size_t len, char *err, size_t errlen)
{
	size_t n = strlen(s);

	if (n == 0 || n >= UTIL_NAME_MAX || n != len ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n) {
		snprintf(err, errlen,
			 "bad %s name '%s' (expected 1-%d letters, digits, '-', '_', '.')", what, s,
			 UTIL_NAME_MAX - 1);
		return -1;
	}
	return 0;
}
