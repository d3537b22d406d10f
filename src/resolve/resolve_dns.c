/* resolve_dns: read a DNS reply (RFC 1035 section 4) for one question:
 * the records of the asked type that belong to the question's name,
 * following its CNAME chain inside the reply, with the least TTL of the
 * chain; and the addresses the reply gives for other names (an SRV
 * answer's targets). Pure and bounded: every read is checked against the
 * message's length, name pointers only point backwards, chains and record
 * counts are capped. c-ares 1.18 gives no TTL for SRV records, so sluice
 * reads the replies itself. Called by resolve.c; fuzzed. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/resolve.h"
#include "sluice/util.h"

#define DNS_HDR 12
#define DNS_MAX_JUMPS 64 /* name pointers followed for one name */
#define DNS_MAX_CHAIN 16 /* CNAMEs followed from the question's name */

/* One resource record of the answer or additional section. */
struct dns_rr {
	uint16_t type;
	bool answer; /* from the answer section (else the additional one) */
	uint32_t ttl;
	char owner[RESOLVE_NAME_MAX];
	char target[RESOLVE_NAME_MAX]; /* CNAME, SRV */
	uint8_t ip[16];
	uint16_t priority, weight, port; /* SRV */
};

struct dns_reader {
	const uint8_t *msg;
	size_t len;
};

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static bool label_char_ok(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '_';
}

/* Decode the name at *off into out (lower case, labels joined by '.', no
 * final dot; the root is ""). *off moves past the name where it is
 * written (not where a pointer leads). Returns 1, 0 when the name is
 * readable but holds characters a host name cannot have (out is then
 * unusable), or -1 when the message is malformed. */
static int read_name(const struct dns_reader *r, size_t *off, char *out)
{
	size_t pos = *off, n = 0, limit = *off;
	int jumps = 0, ok = 1;
	bool jumped = false;

	for (;;) {
		uint8_t l;

		if (pos >= r->len)
			return -1;
		l = r->msg[pos];
		if ((l & 0xC0) == 0xC0) {
			size_t to;

			if (pos + 1 >= r->len || ++jumps > DNS_MAX_JUMPS)
				return -1;
			to = (size_t)(rd16(r->msg + pos) & 0x3FFF);
			/* backwards only: a pointer cannot make a loop */
			if (to >= limit)
				return -1;
			if (!jumped)
				*off = pos + 2;
			jumped = true;
			limit = to;
			pos = to;
			continue;
		}
		if ((l & 0xC0) != 0)
			return -1; /* the extended label types of RFC 6891 are not names */
		pos++;
		if (l == 0)
			break;
		if (pos + l > r->len || n + l + 1 >= RESOLVE_NAME_MAX)
			return -1;
		if (n > 0)
			out[n++] = '.';
		for (uint8_t i = 0; i < l; i++) {
			uint8_t ch = r->msg[pos + i];

			if (!label_char_ok(ch))
				ok = 0;
			out[n++] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
		}
		pos += l;
	}
	out[n] = '\0';
	if (!jumped)
		*off = pos;
	return ok;
}

/* Read one resource record at *off. Returns 1 (rr filled), 0 (skipped:
 * a type or class not wanted, or a name sluice cannot use) or -1
 * (malformed). */
static int read_rr(const struct dns_reader *r, size_t *off, struct dns_rr *rr)
{
	int owner_ok = read_name(r, off, rr->owner);
	uint16_t type, cls, rdlen;
	size_t rd;
	int ok;

	if (owner_ok < 0 || *off + 10 > r->len)
		return -1;
	type = rd16(r->msg + *off);
	cls = rd16(r->msg + *off + 2);
	rr->ttl = rd32(r->msg + *off + 4);
	if (rr->ttl > 0x7FFFFFFF) /* RFC 2181 section 8: a TTL above 2^31 - 1 is zero */
		rr->ttl = 0;
	rdlen = rd16(r->msg + *off + 8);
	rd = *off + 10;
	if (rd + rdlen > r->len)
		return -1;
	*off = rd + rdlen;
	rr->type = type;
	if (cls != 1 || owner_ok == 0)
		return 0;
	switch (type) {
	case RESOLVE_DNS_A:
		if (rdlen != 4)
			return -1;
		memcpy(rr->ip, r->msg + rd, 4);
		return 1;
	case RESOLVE_DNS_AAAA:
		if (rdlen != 16)
			return -1;
		memcpy(rr->ip, r->msg + rd, 16);
		return 1;
	case RESOLVE_DNS_CNAME: {
		size_t t = rd;

		ok = read_name(r, &t, rr->target);
		if (ok < 0 || t != rd + rdlen)
			return -1;
		return ok;
	}
	case RESOLVE_DNS_SRV: {
		size_t t = rd + 6;

		if (rdlen < 7)
			return -1;
		rr->priority = rd16(r->msg + rd);
		rr->weight = rd16(r->msg + rd + 2);
		rr->port = rd16(r->msg + rd + 4);
		ok = read_name(r, &t, rr->target);
		if (ok < 0 || t != rd + rdlen)
			return -1;
		return ok;
	}
	default:
		return 0;
	}
}

static void rr_addr(const struct dns_rr *rr, struct util_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (rr->type == RESOLVE_DNS_A) {
		a->u.in4.sin_family = AF_INET;
		memcpy(&a->u.in4.sin_addr, rr->ip, 4);
		a->len = sizeof(a->u.in4);
	} else {
		a->u.in6.sin6_family = AF_INET6;
		memcpy(&a->u.in6.sin6_addr, rr->ip, 16);
		a->len = sizeof(a->u.in6);
	}
}

static enum resolve_error rcode_error(uint16_t rcode)
{
	switch (rcode) {
	case 0:
		return RESOLVE_ERR_NONE;
	case 1:
		return RESOLVE_ERR_BADRESP; /* FORMERR: our query, as the server read it */
	case 2:
		return RESOLVE_ERR_SERVFAIL;
	case 3:
		return RESOLVE_ERR_NXDOMAIN;
	case 5:
		return RESOLVE_ERR_REFUSED;
	default:
		return RESOLVE_ERR_OTHER;
	}
}

/* Records of type for name: copied into out (growing it), counted. */
static int collect(const struct dns_rr *rrs, size_t n, uint16_t type, const char *name,
		   uint32_t chain_ttl, size_t max, struct resolve_dns_result *out)
{
	size_t want = 0;

	for (size_t i = 0; i < n; i++)
		want += rrs[i].answer && rrs[i].type == type && strcmp(rrs[i].owner, name) == 0;
	if (want == 0)
		return 0;
	if (want > max) {
		out->skipped += want - max;
		want = max;
	}
	out->recs = calloc(want, sizeof(*out->recs));
	if (out->recs == NULL)
		return -1;
	for (size_t i = 0; i < n && out->nrecs < want; i++) {
		struct resolve_rec *rec;

		if (!rrs[i].answer || rrs[i].type != type || strcmp(rrs[i].owner, name) != 0)
			continue;
		if (type == RESOLVE_DNS_SRV && rrs[i].target[0] == '\0') {
			out->skipped++; /* "." : the service is decidedly not there */
			continue;
		}
		rec = &out->recs[out->nrecs++];
		rec->ttl = UTIL_MIN(rrs[i].ttl, chain_ttl);
		if (type == RESOLVE_DNS_SRV) {
			/* addr waits for the target's address */
			rec->priority = rrs[i].priority;
			rec->weight = rrs[i].weight;
			rec->port = rrs[i].port;
			util_strlcpy(rec->target, rrs[i].target, sizeof(rec->target));
		} else {
			rr_addr(&rrs[i], &rec->addr);
		}
	}
	for (size_t i = 0; i < out->nrecs; i++)
		out->ttl = i == 0 ? out->recs[i].ttl : UTIL_MIN(out->ttl, out->recs[i].ttl);
	return 0;
}

/* Addresses for names other than the chain's (SRV targets' glue). */
static int collect_glue(const struct dns_rr *rrs, size_t n, size_t max,
			struct resolve_dns_result *out)
{
	size_t want = 0;

	for (size_t i = 0; i < n; i++)
		want += rrs[i].type == RESOLVE_DNS_A || rrs[i].type == RESOLVE_DNS_AAAA;
	want = UTIL_MIN(want, max);
	if (want == 0)
		return 0;
	out->glue = calloc(want, sizeof(*out->glue));
	if (out->glue == NULL)
		return -1;
	for (size_t i = 0; i < n && out->nglue < want; i++) {
		struct resolve_dns_glue *g;

		if (rrs[i].type != RESOLVE_DNS_A && rrs[i].type != RESOLVE_DNS_AAAA)
			continue;
		g = &out->glue[out->nglue++];
		util_strlcpy(g->name, rrs[i].owner, sizeof(g->name));
		rr_addr(&rrs[i], &g->addr);
		g->ttl = rrs[i].ttl;
	}
	return 0;
}

int resolve_dns_read(const uint8_t *msg, size_t len, uint16_t qtype, size_t max,
		     struct resolve_dns_result *out)
{
	struct dns_reader r = {.msg = msg, .len = len};
	char qname[RESOLVE_NAME_MAX], chain[DNS_MAX_CHAIN + 1][RESOLVE_NAME_MAX];
	struct dns_rr *rrs = NULL;
	size_t off = DNS_HDR, nrr = 0, total, nchain = 1;
	uint16_t qd, an, ns, ar, flags;
	uint32_t chain_ttl = UINT32_MAX;
	const char *cur;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	out->err = RESOLVE_ERR_BADRESP;
	if (len < DNS_HDR)
		return -1;
	flags = rd16(msg + 2);
	qd = rd16(msg + 4);
	an = rd16(msg + 6);
	ns = rd16(msg + 8);
	ar = rd16(msg + 10);
	out->rcode = flags & 0x0F;
	out->truncated = (flags & 0x0200) != 0;
	if (!(flags & 0x8000) || qd != 1)
		return -1; /* not a reply, or not to one question */
	if (read_name(&r, &off, qname) < 0 || off + 4 > len || rd16(msg + off) != qtype)
		return -1;
	off += 4;
	/* every record is at least 11 bytes: the counts cannot make us
	 * allocate more than the message can hold */
	total = (size_t)an + ns + ar;
	if (total > (len - off) / 11 + 1)
		total = (len - off) / 11 + 1;
	rrs = calloc(total + 1, sizeof(*rrs));
	if (rrs == NULL) {
		out->err = RESOLVE_ERR_NOMEM;
		return -1;
	}
	for (size_t i = 0; i < (size_t)an + ns + ar; i++) {
		struct dns_rr *rr = &rrs[nrr];
		int got;

		if (off >= len && i >= an)
			break; /* a truncated reply may lack its last sections */
		got = read_rr(&r, &off, rr);
		if (got < 0)
			goto out;
		/* the authority section says nothing about addresses */
		rr->answer = i < an;
		if (got == 1 && (i < an || i >= (size_t)an + ns) && nrr < total)
			nrr++;
		else if (got == 0 && (rr->type == qtype || rr->type == RESOLVE_DNS_CNAME))
			out->skipped++;
	}
	out->err = rcode_error(out->rcode);
	rc = 0;
	if (out->err != RESOLVE_ERR_NONE)
		goto out;
	/* the question's name, then along its CNAMEs (answer section only) */
	util_strlcpy(chain[0], qname, sizeof(chain[0]));
	cur = chain[0];
	for (;;) {
		const struct dns_rr *cn = NULL;
		bool any = false;

		for (size_t i = 0; i < nrr && !any; i++)
			any =
			    rrs[i].answer && rrs[i].type == qtype && strcmp(rrs[i].owner, cur) == 0;
		if (any) {
			if (collect(rrs, nrr, qtype, cur, chain_ttl, max, out) < 0) {
				out->err = RESOLVE_ERR_NOMEM;
				rc = -1;
				goto out;
			}
			out->err = out->nrecs > 0 ? RESOLVE_ERR_NONE : RESOLVE_ERR_NODATA;
			break;
		}
		for (size_t i = 0; i < nrr && cn == NULL; i++)
			if (rrs[i].answer && rrs[i].type == RESOLVE_DNS_CNAME &&
			    strcmp(rrs[i].owner, cur) == 0)
				cn = &rrs[i];
		if (cn == NULL) {
			out->err = nchain > 1 ? RESOLVE_ERR_CNAME_END : RESOLVE_ERR_NODATA;
			break;
		}
		chain_ttl = UTIL_MIN(chain_ttl, cn->ttl);
		for (size_t k = 0; k < nchain; k++) {
			if (strcmp(chain[k], cn->target) == 0) {
				out->err = RESOLVE_ERR_CNAME_LOOP;
				goto done;
			}
		}
		if (nchain > DNS_MAX_CHAIN) {
			out->err = RESOLVE_ERR_CNAME_LOOP; /* as good as one */
			break;
		}
		util_strlcpy(chain[nchain], cn->target, sizeof(chain[0]));
		cur = chain[nchain++];
	}
done:
	if (qtype == RESOLVE_DNS_SRV && out->nrecs > 0 && collect_glue(rrs, nrr, max, out) < 0) {
		out->err = RESOLVE_ERR_NOMEM;
		rc = -1;
	}
out:
	free(rrs);
	if (rc < 0 && out->err == RESOLVE_ERR_NONE)
		out->err = RESOLVE_ERR_BADRESP;
	return rc;
}

void resolve_dns_result_free(struct resolve_dns_result *r)
{
	free(r->recs);
	free(r->glue);
	memset(r, 0, sizeof(*r));
}

const char *resolve_error_name(enum resolve_error e)
{
	switch (e) {
	case RESOLVE_ERR_NONE:
		return "ok";
	case RESOLVE_ERR_NXDOMAIN:
		return "NXDOMAIN";
	case RESOLVE_ERR_NODATA:
		return "no record of that type";
	case RESOLVE_ERR_CNAME_LOOP:
		return "CNAME loop";
	case RESOLVE_ERR_CNAME_END:
		return "CNAME chain without a record";
	case RESOLVE_ERR_NO_TARGET:
		return "no SRV target has an address";
	case RESOLVE_ERR_TIMEOUT:
		return "timeout";
	case RESOLVE_ERR_SERVFAIL:
		return "SERVFAIL";
	case RESOLVE_ERR_REFUSED:
		return "REFUSED";
	case RESOLVE_ERR_BADRESP:
		return "malformed reply";
	case RESOLVE_ERR_UNREACH:
		return "server unreachable";
	case RESOLVE_ERR_NOMEM:
		return "out of memory";
	case RESOLVE_ERR_OTHER:
		return "DNS error";
	}
	return "?";
}

enum resolve_hold_kind resolve_error_hold(enum resolve_error e)
{
	switch (e) {
	case RESOLVE_ERR_NXDOMAIN:
	case RESOLVE_ERR_NODATA:
	case RESOLVE_ERR_CNAME_LOOP:
	case RESOLVE_ERR_CNAME_END:
	case RESOLVE_ERR_NO_TARGET:
		return RESOLVE_HOLD_NX;
	case RESOLVE_ERR_NONE:
	case RESOLVE_ERR_TIMEOUT:
	case RESOLVE_ERR_SERVFAIL:
	case RESOLVE_ERR_REFUSED:
	case RESOLVE_ERR_BADRESP:
	case RESOLVE_ERR_UNREACH:
	case RESOLVE_ERR_NOMEM:
	case RESOLVE_ERR_OTHER:
		break;
	}
	return RESOLVE_HOLD_TIMEOUT;
}
