/* peek: TLS routing before the connect. On a listener with routes a
 * session reads the client's first bytes into its c2s buffer, where they
 * stay to go upstream unchanged with whatever followed them, until
 * tls_peek() has a verdict; then the first route that matches picks the
 * session's pool, once, and session.c connects. The wait is bounded by the
 * buffer (16 KiB) and by timeout client-hello. session.c calls in at its
 * marked hooks; a session of a listener without routes never comes here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy-int.h"
#include "sluice/log.h"
#include "sluice/pool.h"
#include "sluice/proxy.h"
#include "sluice/tls.h"
#include "sluice/util.h"

#define LOG_SNI_MAX 254 /* a whole DNS name, else cut with "..." */
#define LOG_ALPN_MAX 96

/* A session's peek state. Owned by the session; freed when it closes. */
struct proxy_peek {
	uint64_t deadline_ms;		 /* accept + timeout client-hello */
	size_t need;			 /* call tls_peek() again once c2s holds this many bytes */
	struct proxy_route_stats *stats; /* reference, once routed */
	char tail[sizeof(" sni= alpn=") + LOG_SNI_MAX + LOG_ALPN_MAX];
};

/* A hello spread over records is put together here; one per worker
 * thread, used within one call. */
static __thread uint8_t scratch[TLS_HELLO_MAX];

struct proxy_route_stats *proxy_route_stats_new(void)
{
	struct proxy_route_stats *rs = calloc(1, sizeof(*rs));

	if (rs != NULL)
		atomic_init(&rs->refcnt, 1);
	return rs;
}

void proxy_route_stats_get(struct proxy_route_stats *rs)
{
	atomic_fetch_add_explicit(&rs->refcnt, 1, memory_order_relaxed);
}

void proxy_route_stats_put(struct proxy_route_stats *rs)
{
	if (rs != NULL && atomic_fetch_sub_explicit(&rs->refcnt, 1, memory_order_acq_rel) == 1)
		free(rs);
}

void proxy_peek_settings_free(struct proxy_fe_settings *st)
{
	for (size_t i = 0; i < st->nroutes; i++) {
		pool_put(st->routes[i].pool);
		proxy_route_stats_put(st->routes[i].stats);
	}
	free(st->routes);
	proxy_route_stats_put(st->default_stats);
}

static uint64_t now_ms(const struct proxy_session *s)
{
	return (uint64_t)(ev_now(s->w->loop) * 1000.0);
}

int proxy_peek_new(struct proxy_session *s, const struct proxy_fe_settings *st)
{
	struct proxy_peek *pk = malloc(sizeof(*pk));

	if (pk == NULL)
		return -1;
	pk->deadline_ms = s->start_ms + st->timeout_client_hello_ms;
	pk->need = 1;
	pk->stats = NULL;
	pk->tail[0] = '\0'; /* " sni=- alpn=-" until decide() knows better */
	s->peek = pk;
	return 0;
}

void proxy_peek_end(struct proxy_session *s)
{
	struct proxy_peek *pk = s->peek;

	if (pk == NULL)
		return;
	if (pk->stats != NULL) {
		atomic_fetch_sub_explicit(&pk->stats->active, 1, memory_order_relaxed);
		proxy_route_stats_put(pk->stats);
	}
	free(pk);
	s->peek = NULL;
}

const char *proxy_peek_log_tail(const struct proxy_session *s)
{
	if (s->peek == NULL)
		return "";
	return s->peek->tail[0] != '\0' ? s->peek->tail : " sni=- alpn=-";
}

/* The first route that takes this connection (r: tls_peek's verdict). */
static const struct proxy_route *match(const struct proxy_fe_settings *st, enum tls_peek_result r,
				       const struct tls_hello *h)
{
	for (size_t i = 0; i < st->nroutes; i++) {
		const struct proxy_route *rt = &st->routes[i];

		if (rt->kind == PROXY_ROUTE_NOT_TLS) {
			if (r == TLS_PEEK_NOT_TLS)
				return rt;
			continue;
		}
		if (r != TLS_PEEK_OK)
			continue;
		switch (rt->kind) {
		case PROXY_ROUTE_SNI:
			/* a name that is not a DNS name matches no route */
			if (!h->sni_valid ||
			    !util_dns_name_match(rt->sni, rt->sni_len, h->sni, h->sni_len))
				continue;
			break;
		case PROXY_ROUTE_ALPN:
			break;
		case PROXY_ROUTE_NO_SNI:
			if (h->has_sni)
				continue;
			break;
		case PROXY_ROUTE_NOT_TLS:
			continue;
		}
		if (rt->alpn_len == 0 || tls_alpn_offers(h, rt->alpn, rt->alpn_len))
			return rt;
	}
	return NULL;
}

/* Closed before a pool was chosen: count why. */
static void refuse(struct proxy_session *s, _Atomic uint64_t *counter, enum proxy_end end)
{
	atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
	proxy_session_close(s, end);
}

/* The verdict is in: pick the pool, or close. The settings are read now:
 * a reload since the accept applies to this connection. */
static void decide(struct proxy_session *s, enum tls_peek_result r, const struct tls_hello *h)
{
	struct proxy_fe_settings *st = atomic_load_explicit(&s->fe->settings, memory_order_acquire);
	struct proxy_peek_counters *pc = &s->fe->peek;
	struct proxy_peek *pk = s->peek;
	const struct proxy_route *rt = match(st, r, h);
	struct proxy_route_stats *stats = rt != NULL ? rt->stats : st->default_stats;
	struct pool *pool = rt != NULL ? rt->pool : st->pool;
	char sni[LOG_SNI_MAX + 1], alpn[LOG_ALPN_MAX + 1];

	if (r == TLS_PEEK_OK && log_enabled(LOGL_INFO))
		snprintf(pk->tail, sizeof(pk->tail), " sni=%s alpn=%s",
			 tls_log_sni(h, sni, sizeof(sni)), tls_log_alpn(h, alpn, sizeof(alpn)));
	if (st->nroutes == 0) {
		/* a reload took the routes away meanwhile: go where new
		 * connections go */
		rt = NULL;
		stats = NULL;
		r = TLS_PEEK_OK;
	}
	if (r == TLS_PEEK_BAD) {
		if (log_enabled(LOGL_INFO)) {
			char cbuf[UTIL_ADDR_STRLEN];

			log_info("conn %s %s: bad ClientHello: %s", s->fe->name,
				 util_addr_fmt(&s->client, cbuf, sizeof(cbuf)), h->reason);
		}
		refuse(s, &pc->bad_hello, PROXY_END_BAD_HELLO);
		return;
	}
	if (rt == NULL && (r == TLS_PEEK_NOT_TLS || pool == NULL)) {
		if (r == TLS_PEEK_NOT_TLS)
			refuse(s, &pc->not_tls, PROXY_END_NOT_TLS);
		else
			refuse(s, &pc->no_route, PROXY_END_NO_ROUTE);
		return;
	}
	s->pool = pool;
	pool_get(pool);
	if (stats != NULL) {
		pk->stats = stats;
		proxy_route_stats_get(stats);
		atomic_fetch_add_explicit(&stats->active, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&stats->total, 1, memory_order_relaxed);
	}
	proxy_session_routed(s);
}

/* Ask the parser about what c2s holds, when enough came since last time. */
static void look(struct proxy_session *s)
{
	struct proxy_dir *d = &s->c2s;
	struct tls_hello h;
	enum tls_peek_result r;

	if (d->len < s->peek->need)
		return;
	r = tls_peek((const uint8_t *)d->buf->data + d->off, d->len, s->w->e->conf.bufsize, scratch,
		     &h);
	if (r == TLS_PEEK_INCOMPLETE) {
		s->peek->need = h.need;
		return;
	}
	decide(s, r, &h);
}

static bool would_block(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* No buffer for the hello (the bufmem ceiling or malloc): a client whose
 * bytes wait ends with end=no-memory, as in the relay, rather than keep a
 * readable socket spinning until timeout client-hello; one that has sent
 * nothing yet needs no buffer and waits. */
static void no_buffer(struct proxy_session *s)
{
	char c;
	ssize_t n = recv(s->cfd, &c, 1, MSG_PEEK);

	if (n > 0)
		proxy_session_no_memory(s);
	else if (n == 0 || !would_block())
		refuse(s, &s->fe->peek.client_gone,
		       n == 0 ? PROXY_END_CLIENT_CLOSED : PROXY_END_CLIENT_RESET);
}

void proxy_peek_read(struct proxy_session *s)
{
	struct proxy_dir *d = &s->c2s;
	uint32_t room;
	ssize_t n;

	if (d->buf == NULL) {
		d->buf = UTIL_FAULT("peek_buf") ? NULL : proxy_buf_get(s->w);
		if (d->buf == NULL) {
			no_buffer(s);
			return;
		}
		d->off = PROXY_BUF_SLACK;
		d->len = 0;
	}
	/* look() wants all of the buffer before it calls a hello too large */
	room = s->w->e->conf.bufsize - d->len;
	n = recv(s->cfd, d->buf->data + d->off + d->len, room, 0);
	if (n < 0 && would_block()) {
		if (d->len == 0) {
			/* a client that sent nothing yet holds no buffer */
			proxy_buf_put(s->w, d->buf);
			d->buf = NULL;
		}
		return;
	}
	if (n <= 0) {
		refuse(s, &s->fe->peek.client_gone,
		       n == 0 ? PROXY_END_CLIENT_CLOSED : PROXY_END_CLIENT_RESET);
		return;
	}
	d->len += (uint32_t)n;
	d->bytes += (uint64_t)n;
	s->last_ms = now_ms(s);
	look(s);
}

void proxy_peek_begin(struct proxy_session *s)
{
	struct proxy_dir *d = &s->c2s;
	uint64_t now = now_ms(s);

	s->state = PROXY_ST_PEEK;
	ev_timer_stop(s->w->loop, &s->timer);
	ev_timer_set(
	    &s->timer,
	    s->peek->deadline_ms > now ? (double)(s->peek->deadline_ms - now) / 1000.0 : 0.0, 0.0);
	ev_timer_start(s->w->loop, &s->timer);
	if (d->buf != NULL && d->off != PROXY_BUF_SLACK) {
		/* what followed a PROXY header: the hello starts the buffer */
		memmove(d->buf->data + PROXY_BUF_SLACK, d->buf->data + d->off, d->len);
		d->off = PROXY_BUF_SLACK;
	}
	proxy_session_update_io(s);
	/* clients speak first: their hello is often there already */
	if (d->len > 0)
		look(s);
	else
		proxy_peek_read(s);
}

void proxy_peek_timeout(struct proxy_session *s)
{
	refuse(s, &s->fe->peek.timeouts, PROXY_END_HELLO_TIMEOUT);
}
