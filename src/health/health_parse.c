/* health_parse: pure parsers of what backends send to checks (HTTP status
 * line, expect matching, agent replies) and the rise/fall state machine.
 * No I/O, no libev, no OpenSSL: unit-tested and fuzzed on their own. Every
 * input is untrusted and bounded by the length given. */
#include <string.h>

#include "sluice/health.h"
#include "sluice/util.h"

const char *health_type_name(enum health_type t)
{
	switch (t) {
	case HEALTH_TCP:
		return "tcp";
	case HEALTH_EXPECT:
		return "expect";
	case HEALTH_HTTP:
		return "http";
	case HEALTH_TLS:
		return "tls";
	case HEALTH_HTTPS:
		return "https";
	case HEALTH_AGENT:
		return "agent";
	}
	return "?";
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 9112 section 4: status-line = HTTP-version SP status-code SP
 * [reason-phrase] CRLF; HTTP-version = "HTTP/" DIGIT "." DIGIT. We accept a
 * bare LF and a missing reason (with or without its SP), as servers do. */
int health_http_status(const char *buf, size_t len, int *code)
{
	static const char prefix[] = "HTTP/1.";
	const char *eol = memchr(buf, '\n', len);
	size_t n = eol != NULL ? (size_t)(eol - buf) : len;

	/* reject early what can never become a status line */
	for (size_t i = 0; i < UTIL_MIN(n, sizeof(prefix) - 1); i++)
		if (buf[i] != prefix[i])
			return -1;
	if (eol == NULL)
		return len >= HEALTH_RBUF ? -1 : 0;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	/* "HTTP/1.x NNN" is 12 bytes */
	if (n < 12 || !is_digit(buf[7]) || buf[8] != ' ' || !is_digit(buf[9]) ||
	    !is_digit(buf[10]) || !is_digit(buf[11]))
		return -1;
	if (n > 12 && buf[12] != ' ')
		return -1;
	for (size_t i = 13; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];

		/* reason-phrase = *( HTAB / SP / VCHAR / obs-text ) */
		if (c != '\t' && (c < 0x20 || c == 0x7f))
			return -1;
	}
	*code = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	if (*code < 100)
		return -1;
	return 1;
}

bool health_status_match(const struct health_status_range *r, size_t n, int code)
{
	for (size_t i = 0; i < n; i++)
		if (code >= r[i].lo && code <= r[i].hi)
			return true;
	return false;
}

bool health_expect_match(const char *buf, size_t len, const char *pat, size_t patlen)
{
	if (patlen == 0 || patlen > len)
		return false;
	return memmem(buf, len, pat, patlen) != NULL;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool word_is(const char *w, size_t n, const char *kw)
{
	size_t k = strlen(kw);

	if (n != k)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(w[i]) != kw[i])
			return false;
	return true;
}

/* "N%" with N 0-256 (HAProxy caps agent weights at 256% of the initial). */
static int parse_pct(const char *w, size_t n, uint32_t *out)
{
	uint32_t v = 0;

	if (n < 2 || n > 4 || w[n - 1] != '%')
		return -1;
	for (size_t i = 0; i + 1 < n; i++) {
		if (!is_digit(w[i]))
			return -1;
		v = v * 10 + (uint32_t)(w[i] - '0');
	}
	if (v > 256)
		return -1;
	*out = v;
	return 0;
}

static void set_reason(struct health_agent_reply *out, const char *s, size_t n)
{
	size_t k = 0;

	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < n && k + 1 < sizeof(out->reason); i++) {
		unsigned char c = (unsigned char)s[i];

		out->reason[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out->reason[k] = '\0';
}

int health_agent_parse(const char *buf, size_t len, struct health_agent_reply *out)
{
	const char *eol = memchr(buf, '\n', len);
	size_t n = eol != NULL ? (size_t)(eol - buf) : len, i = 0;
	bool known = false;

	memset(out, 0, sizeof(*out));
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	while (i < n) {
		size_t start;

		if (buf[i] == ' ' || buf[i] == '\t' || buf[i] == ',') {
			i++;
			continue;
		}
		if (buf[i] == '#') {
			set_reason(out, buf + i + 1, n - i - 1);
			break;
		}
		start = i;
		while (i < n && buf[i] != ' ' && buf[i] != '\t' && buf[i] != ',' && buf[i] != '#')
			i++;
		const char *w = buf + start;
		size_t wl = i - start;

		if (wl > 0 && w[wl - 1] == '%') {
			if (parse_pct(w, wl, &out->weight_pct) < 0)
				return -1;
			out->has_weight = true;
		} else if (word_is(w, wl, "ready")) {
			out->admin = HEALTH_AGENT_READY;
		} else if (word_is(w, wl, "drain")) {
			out->admin = HEALTH_AGENT_DRAIN;
		} else if (word_is(w, wl, "maint")) {
			out->admin = HEALTH_AGENT_MAINT;
		} else if (word_is(w, wl, "up")) {
			out->state = HEALTH_AGENT_UP;
		} else if (word_is(w, wl, "down") || word_is(w, wl, "fail") ||
			   word_is(w, wl, "stopped")) {
			out->state = HEALTH_AGENT_DOWN;
		} else if (wl > 8 && word_is(w, 8, "maxconn:")) {
			/* understood, not applied */
		} else {
			continue; /* unknown words are ignored, as HAProxy does */
		}
		known = true;
	}
	return known ? 0 : -1;
}

const char *health_escape(const char *s, size_t len, char *out, size_t cap)
{
	size_t k = 0;

	if (cap == 0)
		return out;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[5];
		size_t tl;

		if (c == '\r' || c == '\n' || c == '\t') {
			tmp[0] = '\\';
			tmp[1] = c == '\r' ? 'r' : c == '\n' ? 'n' : 't';
			tl = 2;
		} else if (c == '\\' || c == '"') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			tl = 2;
		} else if (c < 0x20 || c >= 0x7f) {
			static const char hex[] = "0123456789abcdef";

			tmp[0] = '\\';
			tmp[1] = 'x';
			tmp[2] = hex[c >> 4];
			tmp[3] = hex[c & 15];
			tl = 4;
		} else {
			tmp[0] = (char)c;
			tl = 1;
		}
		if (k + tl + 1 > cap)
			break;
		memcpy(out + k, tmp, tl);
		k += tl;
	}
	out[k] = '\0';
	return out;
}

void health_rf_init(struct health_rf *rf, uint32_t rise, uint32_t fall, bool up)
{
	rf->rise = rise > 0 ? rise : 1;
	rf->fall = fall > 0 ? fall : 1;
	rf->good = rf->bad = 0;
	rf->up = up;
}

enum health_rf_event health_rf_update(struct health_rf *rf, bool ok)
{
	if (rf->up) {
		if (ok) {
			rf->bad = 0;
			return HEALTH_RF_NONE;
		}
		if (++rf->bad < rf->fall)
			return HEALTH_RF_NONE;
		rf->up = false;
		rf->good = 0;
		return HEALTH_RF_WENT_DOWN;
	}
	if (!ok) {
		rf->good = 0;
		return HEALTH_RF_NONE;
	}
	if (++rf->good < rf->rise)
		return HEALTH_RF_NONE;
	rf->up = true;
	rf->bad = 0;
	return HEALTH_RF_WENT_UP;
}

void health_rf_force_down(struct health_rf *rf)
{
	rf->up = false;
	rf->good = rf->bad = 0;
}
