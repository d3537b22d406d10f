/* ctl_http: the metrics door's request parser (RFC 9112 request line and
 * header fields, nothing else). Pure: it looks at the bytes received so
 * far and says whether to wait for more or how to answer, so a client
 * that sends garbage is answered at the first byte that cannot start a
 * valid request. Used by ctl_server.c; unit-tested and fuzzed alone. */
#include <string.h>
#include <strings.h>

#include "ctl-int.h"

/* RFC 9110 5.6.2 tchar */
static bool is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Visible characters of a request target (RFC 9112 3.2: no spaces, no
 * controls). */
static bool is_vchar(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f;
}

/* A line ends at LF, with an optional CR before it (RFC 9112 2.2 lets a
 * server accept a bare LF). Returns the length without the line end, or
 * -1 when the line is not complete yet; *next is where the next starts. */
static long line_end(const char *p, size_t len, size_t *next)
{
	const char *nl = memchr(p, '\n', len);
	size_t n;

	if (nl == NULL)
		return -1;
	n = (size_t)(nl - p);
	*next = n + 1;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	return (long)n;
}

/* Does an Accept-Encoding value (RFC 9110 12.5.3) accept gzip? A token
 * "gzip" (or "x-gzip", or "*") whose weight is not zero. */
static bool accepts_gzip(const char *v, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t s, e, q;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		for (s = i; i < n && v[i] != ',' && v[i] != ';' && v[i] != ' ' && v[i] != '\t'; i++)
			;
		e = i;
		for (q = i; i < n && v[i] != ','; i++)
			;
		/* ";q=0", ";q=0.0", ";q=0.000": refused */
		bool zero = false;
		for (size_t k = q; k + 3 <= i; k++)
			if ((v[k] == 'q' || v[k] == 'Q') && v[k + 1] == '=' && v[k + 2] == '0') {
				zero = true;
				for (size_t z = k + 3; z < i && v[z] != ' ' && v[z] != '\t'; z++)
					if (v[z] != '.' && v[z] != '0')
						zero = false;
			}
		if (!zero && ((e - s == 4 && strncasecmp(v + s, "gzip", 4) == 0) ||
			      (e - s == 6 && strncasecmp(v + s, "x-gzip", 6) == 0) ||
			      (e - s == 1 && v[s] == '*')))
			return true;
	}
	return false;
}

/* The request line: METHOD SP TARGET SP HTTP/1.x, checked as a prefix
 * while it is incomplete. Returns CTL_HTTP_MORE, CTL_HTTP_OK (then
 * *used is its length with the line end) or CTL_HTTP_BAD. */
static enum ctl_http_status request_line(const char *p, size_t len, struct ctl_http_req *req,
					 size_t *used)
{
	static const char version[] = "HTTP/1.";
	size_t i, m, t, v, next = 0;
	long end = line_end(p, len, &next);
	size_t n = end < 0 ? len : (size_t)end;

	/* an incomplete line may end with the CR of its CRLF; any other CR
	 * fails the character checks below */
	if (end < 0 && n > 0 && p[n - 1] == '\r')
		n--;

	for (m = 0; m < n && is_tchar((unsigned char)p[m]); m++)
		;
	if (m < n && (m == 0 || p[m] != ' '))
		return CTL_HTTP_BAD;
	i = m + 1;
	for (t = i; t < n && is_vchar((unsigned char)p[t]); t++)
		;
	if (t < n && (t == i || p[t] != ' '))
		return CTL_HTTP_BAD;
	for (v = t + 1; v < n && v - (t + 1) < sizeof(version) - 1; v++)
		if (p[v] != version[v - (t + 1)])
			return CTL_HTTP_BAD;
	if (v < n && (p[v] < '0' || p[v] > '9' || v + 1 != n))
		return CTL_HTTP_BAD;
	if (end < 0)
		return CTL_HTTP_MORE;
	if (m >= n || t >= n || v >= n)
		return CTL_HTTP_BAD;
	req->head = m == 4 && memcmp(p, "HEAD", 4) == 0;
	req->method_ok = req->head || (m == 3 && memcmp(p, "GET", 3) == 0);
	/* the path, with or without a query */
	req->path_ok = (t - i == 8 && memcmp(p + i, "/metrics", 8) == 0) ||
		       (t - i > 8 && memcmp(p + i, "/metrics?", 9) == 0);
	*used = next;
	return CTL_HTTP_OK;
}

enum ctl_http_status ctl_http_parse(const char *buf, size_t len, size_t max,
				    struct ctl_http_req *req)
{
	size_t off = 0, next = 0;
	enum ctl_http_status st;

	memset(req, 0, sizeof(*req));
	if (memchr(buf, '\0', len) != NULL)
		return CTL_HTTP_BAD;
	st = request_line(buf, len, req, &off);
	if (st != CTL_HTTP_OK)
		return st == CTL_HTTP_MORE && len >= max ? CTL_HTTP_BAD : st;
	/* header fields: NAME ":" value, up to an empty line */
	for (;;) {
		const char *p = buf + off;
		long n = line_end(p, len - off, &next);
		size_t k;

		if (n < 0)
			return len >= max ? CTL_HTTP_BAD : CTL_HTTP_MORE;
		if (n == 0)
			break;
		for (k = 0; k < (size_t)n && is_tchar((unsigned char)p[k]); k++)
			;
		/* no space before the colon, no obs-fold (RFC 9112 5.1, 5.2) */
		if (k == 0 || k == (size_t)n || p[k] != ':')
			return CTL_HTTP_BAD;
		size_t colon = k;

		for (k++; k < (size_t)n; k++)
			if (((unsigned char)p[k] < 0x20 && p[k] != '\t') || p[k] == 0x7f)
				return CTL_HTTP_BAD;
		if (colon == 15 && strncasecmp(p, "accept-encoding", 15) == 0 &&
		    accepts_gzip(p + colon + 1, (size_t)n - colon - 1))
			req->gzip = true;
		off += next;
	}
	if (!req->method_ok)
		return CTL_HTTP_METHOD;
	return req->path_ok ? CTL_HTTP_OK : CTL_HTTP_NOT_FOUND;
}
