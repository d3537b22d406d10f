/* libFuzzer target: the ClientHello peek on untrusted client bytes. Besides
 * the sanitizers' checks: an answer's fields stay inside the input, a
 * prefix never contradicts the whole (it waits or says the same), an OK
 * hello parses the same from its own bytes, and following need ends. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/tls.h"

#define MAX 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t scratch[TLS_HELLO_MAX];

static void check_fields(const uint8_t *data, size_t len, enum tls_peek_result r,
			 const struct tls_hello *h)
{
	char buf[64];
	const uint8_t *name;
	size_t off = 0, n;

	if (r == TLS_PEEK_INCOMPLETE && (h->need <= len || h->need > MAX))
		abort();
	if ((r == TLS_PEEK_BAD || r == TLS_PEEK_NOT_TLS) && h->reason == NULL)
		abort();
	if (r != TLS_PEEK_OK)
		return;
	if (h->end == 0 || h->end > len || h->sni_len > TLS_SNI_MAX || h->sni[h->sni_len] != '\0')
		abort();
	if (h->alpn != NULL && !(h->alpn >= data && h->alpn + h->alpn_len <= data + len) &&
	    !(h->alpn >= scratch && h->alpn + h->alpn_len <= scratch + sizeof(scratch)))
		abort();
	while (tls_alpn_next(h, &off, &name, &n))
		if (n == 0 || off > h->alpn_len)
			abort();
	tls_log_sni(h, buf, sizeof(buf));
	tls_log_alpn(h, buf, sizeof(buf));
	if (strlen(buf) >= sizeof(buf))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_hello h, p;
	size_t len = size < MAX ? size : MAX;
	enum tls_peek_result r = tls_peek(data, len, MAX, scratch, &h), rp;
	const size_t cuts[] = { len / 2, len > 0 ? len - 1 : 0, 5, 1 };

	check_fields(data, len, r, &h);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		if (cuts[i] >= len)
			continue;
		rp = tls_peek(data, cuts[i], MAX, scratch, &p);
		check_fields(data, cuts[i], rp, &p);
		if (r != TLS_PEEK_INCOMPLETE && rp != TLS_PEEK_INCOMPLETE && rp != r)
			abort();
	}
	if (r == TLS_PEEK_OK) {
		char sni[TLS_SNI_MAX + 1];
		uint16_t sni_len = h.sni_len;

		memcpy(sni, h.sni, sizeof(sni));
		if (tls_peek(data, h.end, MAX, scratch, &p) != TLS_PEEK_OK || p.sni_len != sni_len ||
		    memcmp(p.sni, sni, sni_len) != 0)
			abort();
	}
	if (len <= 2048) {
		/* the data plane's way: call again only once need bytes are in */
		size_t have = 0, calls = 0;

		while ((rp = tls_peek(data, have, MAX, scratch, &p)) == TLS_PEEK_INCOMPLETE &&
		       p.need <= len) {
			have = p.need;
			if (++calls > 2 * len + 2)
				abort();
		}
		if (rp != TLS_PEEK_INCOMPLETE && rp != r)
			abort();
	}
	return 0;
}
