/* conf_route: TLS routes of a listen block (`route sni|alpn|no-sni|not-tls
 * ... pool POOL;`, `timeout client-hello`): parsing, pool names, and the
 * warnings for a route that an earlier one always takes first. Pure data:
 * the data plane's matching follows the same rules (first match wins). */
#include <stdlib.h>
#include <string.h>

#include "conf-int.h"
#include "sluice/conf.h"
#include "sluice/util.h"

#define CONF_CLIENT_HELLO_DEFAULT_MS 5000

/* A server name: a DNS name or "*." and one, ASCII (an internationalised
 * name in its A-label form), case folded, one trailing dot dropped. */
static int arg_server_name(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, char *out)
{
	const char *s = st->args[i].text;
	size_t n = st->args[i].len, skip = 0;

	for (size_t k = 0; k < n; k++) {
		if ((unsigned char)s[k] >= 0x80) {
			conf_error_arg(ctx, st, i,
				       "server name '%s' is not ASCII: write an internationalised "
				       "name in its A-label form (xn--...)",
				       s);
			return -1;
		}
	}
	if (n > 1 && s[n - 1] == '.')
		n--;
	if (n >= 2 && s[0] == '*' && s[1] == '.')
		skip = 2;
	if (!util_dns_name_valid(s + skip, n - skip) || n >= CONF_ROUTE_NAME_MAX) {
		conf_error_arg(ctx, st, i,
			       "bad server name '%s' (expected a DNS name such as api.example.com, "
			       "or *.example.com for one label more)",
			       s);
		return -1;
	}
	for (size_t k = 0; k < n; k++)
		out[k] = (char)(s[k] >= 'A' && s[k] <= 'Z' ? s[k] + ('a' - 'A') : s[k]);
	out[n] = '\0';
	return 0;
}

/* An ALPN protocol id as clients send it: 1-255 printable bytes. */
static int arg_alpn(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, char *out)
{
	const char *s = st->args[i].text;
	size_t n = st->args[i].len;
	bool ok = n > 0 && n < CONF_ALPN_MAX;

	for (size_t k = 0; ok && k < n; k++)
		ok = s[k] > 0x20 && s[k] < 0x7f;
	if (!ok) {
		conf_error_arg(
		    ctx, st, i,
		    "bad ALPN protocol '%s' (expected 1-255 printable characters such as "
		    "h2, http/1.1 or acme-tls/1)",
		    s);
		return -1;
	}
	memcpy(out, s, n + 1);
	return 0;
}

/* route sni NAME [alpn PROTO] pool POOL | route alpn PROTO pool POOL |
 * route no-sni pool POOL | route not-tls pool POOL */
int conf_route_kw(struct conf_ctx *ctx, const struct conf_stmt *st, struct conf_listen *l)
{
	struct conf_route r = {.where = {st->args[0].line, st->args[0].col}};
	const char *kind = st->args[1].text;
	struct conf_route *arr;
	size_t i = 2;

	if (strcmp(kind, "sni") == 0) {
		r.kind = CONF_ROUTE_SNI;
		if (arg_server_name(ctx, st, i++, r.sni) < 0)
			return -1;
		if (i < st->nargs && strcmp(st->args[i].text, "alpn") == 0) {
			if (i + 1 >= st->nargs || arg_alpn(ctx, st, i + 1, r.alpn) < 0) {
				if (i + 1 >= st->nargs)
					conf_error_arg(ctx, st, i, "'alpn' needs a protocol");
				return -1;
			}
			i += 2;
		}
	} else if (strcmp(kind, "alpn") == 0) {
		r.kind = CONF_ROUTE_ALPN;
		if (arg_alpn(ctx, st, i++, r.alpn) < 0)
			return -1;
	} else if (strcmp(kind, "no-sni") == 0) {
		r.kind = CONF_ROUTE_NO_SNI;
	} else if (strcmp(kind, "not-tls") == 0) {
		r.kind = CONF_ROUTE_NOT_TLS;
	} else {
		conf_error_arg(
		    ctx, st, 1,
		    "unknown route '%s' (expected sni NAME, alpn PROTO, no-sni or not-tls)", kind);
		return -1;
	}
	if (i + 2 < st->nargs && strcmp(st->args[i].text, "pool") == 0) {
		conf_error_arg(ctx, st, i + 2, "unexpected '%s' after the pool name (expected ';')",
			       st->args[i + 2].text);
		return -1;
	}
	if (i + 2 != st->nargs || strcmp(st->args[i].text, "pool") != 0) {
		conf_error_arg(ctx, st, UTIL_MIN(i, st->nargs - 1),
			       "expected 'pool NAME;' to end the route (route %s%s ... pool POOL;)",
			       kind,
			       r.kind == CONF_ROUTE_SNI	   ? " NAME [alpn PROTO]"
			       : r.kind == CONF_ROUTE_ALPN ? " PROTO"
							   : "");
		return -1;
	}
	if (conf_arg_name(ctx, st, i + 1, "pool", r.pool_name) < 0)
		return -1;
	r.pool_where.line = st->args[i + 1].line;
	r.pool_where.col = st->args[i + 1].col;
	if (l->nroutes >= CONF_MAX_ROUTES) {
		conf_error_arg(ctx, st, 0, "too many routes in listen '%s' (at most %d)", l->name,
			       CONF_MAX_ROUTES);
		return -1;
	}
	arr = realloc(l->routes, (l->nroutes + 1) * sizeof(*arr));
	if (arr == NULL)
		return -1;
	l->routes = arr;
	arr[l->nroutes++] = r;
	return 0;
}

/* "sni api.example.com alpn h2", "alpn acme-tls/1", "no-sni", "not-tls" */
static const char *describe(const struct conf_route *r, char *buf, size_t len)
{
	size_t off = 0;

	switch (r->kind) {
	case CONF_ROUTE_SNI:
		util_bufprintf(buf, len, &off, "sni %s", r->sni);
		break;
	case CONF_ROUTE_ALPN:
		break;
	case CONF_ROUTE_NO_SNI:
		util_bufprintf(buf, len, &off, "no-sni");
		break;
	case CONF_ROUTE_NOT_TLS:
		util_bufprintf(buf, len, &off, "not-tls");
		break;
	}
	if (r->alpn[0] != '\0')
		util_bufprintf(buf, len, &off, "%salpn %s", off ? " " : "", r->alpn);
	return buf;
}

/* Does a take every connection b would (a comes first in the file)? */
static bool covers(const struct conf_route *a, const struct conf_route *b)
{
	bool alpn = a->alpn[0] == '\0' || strcmp(a->alpn, b->alpn) == 0;

	switch (a->kind) {
	case CONF_ROUTE_SNI:
		return b->kind == CONF_ROUTE_SNI && alpn &&
		       util_dns_name_match(a->sni, strlen(a->sni), b->sni, strlen(b->sni));
	case CONF_ROUTE_ALPN:
		return (b->kind == CONF_ROUTE_ALPN || b->kind == CONF_ROUTE_SNI) && alpn;
	case CONF_ROUTE_NO_SNI:
	case CONF_ROUTE_NOT_TLS:
		return b->kind == a->kind;
	}
	return false;
}

static void validate_listen(struct conf_ctx *ctx, struct conf *c, struct conf_listen *l)
{
	for (size_t i = 0; i < l->nroutes; i++) {
		struct conf_route *r = &l->routes[i];
		const struct conf_pool *p = conf_find_pool(c, r->pool_name);

		if (p == NULL)
			conf_error(ctx, r->pool_where.line, r->pool_where.col, r->pool_name,
				   "pool '%s' does not exist", r->pool_name);
		else
			r->pool = (size_t)(p - c->pools);
		for (size_t k = 0; k < i; k++) {
			char a[CONF_ROUTE_NAME_MAX + CONF_ALPN_MAX + 16], b[sizeof(a)];

			if (!covers(&l->routes[k], r))
				continue;
			conf_warning(ctx, c, r->where.line, r->where.col, NULL,
				     "route %s can never match: route %s at line %u comes first "
				     "and takes all its connections",
				     describe(r, b, sizeof(b)),
				     describe(&l->routes[k], a, sizeof(a)),
				     l->routes[k].where.line);
			break;
		}
	}
	if (l->nroutes == 0 && l->timeout_client_hello_ms != 0)
		conf_warning(ctx, c, l->where.line, l->where.col, l->name,
			     "listen '%s': timeout client-hello has no effect without a route",
			     l->name);
	if (l->timeout_client_hello_ms == 0)
		l->timeout_client_hello_ms = CONF_CLIENT_HELLO_DEFAULT_MS;
}

void conf_route_validate(struct conf_ctx *ctx, struct conf *c)
{
	for (size_t i = 0; i < c->nlistens; i++)
		validate_listen(ctx, c, &c->listens[i]);
}
