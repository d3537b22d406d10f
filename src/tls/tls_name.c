/* tls_name: what the data plane reads out of a parsed ClientHello besides
 * its server name: the ALPN protocols it offers, and both for a log line,
 * printable and bounded whatever bytes the client sent. */
#include <string.h>

#include "sluice/tls.h"

bool tls_is_grease(uint16_t v)
{
	return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

bool tls_alpn_next(const struct tls_hello *h, size_t *off, const uint8_t **name, size_t *n)
{
	/* tls_peek() checked every entry of the list */
	if (h->alpn == NULL || *off >= h->alpn_len)
		return false;
	*n = h->alpn[*off];
	*name = h->alpn + *off + 1;
	*off += 1 + *n;
	return true;
}

bool tls_alpn_offers(const struct tls_hello *h, const char *p, size_t n)
{
	const uint8_t *name;
	size_t off = 0, len;

	while (tls_alpn_next(h, &off, &name, &len))
		if (len == n && memcmp(name, p, n) == 0)
			return true;
	return false;
}

/* Bounded writer for log fields: keeps the last 3 bytes for "..." once
 * something did not fit. */
struct logw {
	char *out;
	size_t cap; /* bytes available, the NUL excluded */
	size_t len;
	bool cut;
};

static void logw_put(struct logw *w, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (w->len == w->cap) {
			w->cut = true;
			return;
		}
		w->out[w->len++] = (char)(c > 0x20 && c < 0x7f && c != ',' ? c : '?');
	}
}

static const char *logw_end(struct logw *w)
{
	if (w->cut && w->cap >= 3)
		memcpy(w->out + w->cap - 3, "...", 3);
	if (w->len == 0 && w->cap >= 1)
		w->out[w->len++] = '-';
	w->out[w->len] = '\0';
	return w->out;
}

const char *tls_log_sni(const struct tls_hello *h, char *out, size_t outlen)
{
	struct logw w = {out, outlen - 1, 0, false};

	if (h->has_sni)
		logw_put(&w, (const uint8_t *)h->sni, h->sni_len);
	return logw_end(&w);
}

const char *tls_log_alpn(const struct tls_hello *h, char *out, size_t outlen)
{
	struct logw w = {out, outlen - 1, 0, false};
	const uint8_t *name;
	size_t off = 0, n;
	bool first = true;

	while (tls_alpn_next(h, &off, &name, &n) && !w.cut) {
		if (n == 2 && tls_is_grease((uint16_t)(name[0] << 8 | name[1])))
			continue;
		if (!first) {
			if (w.len == w.cap) {
				w.cut = true;
				break;
			}
			w.out[w.len++] = ',';
		}
		logw_put(&w, name, n);
		first = false;
	}
	return logw_end(&w);
}
