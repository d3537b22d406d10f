/* Unit tests for the util hash index (hmap.h) and the server option table
 * (srvopt.h): the index against a plain array under random adds and
 * removals (removal by backward shift must keep every other entry
 * reachable), and options written by util_srvopts_format read back equal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sluice/hmap.h"
#include "sluice/srvopt.h"
#include "sluice/util.h"

#define NKEYS 5000

static char names[NKEYS][16];

static const char *key_of(const void *arg, uintptr_t val)
{
	(void)arg;
	return names[val];
}

static void test_hmap_random(void **state)
{
	struct util_hmap m = {0};
	bool in[NKEYS] = {false};
	uint64_t rng = 42;
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i < NKEYS; i++)
		snprintf(names[i], sizeof(names[i]), "s%zu", i);
	for (int step = 0; step < 200000; step++) {
		size_t k = util_rand64(&rng) % NKEYS;
		uintptr_t v;

		if (!in[k]) {
			assert_int_equal(util_hmap_add(&m, names[k], k), 0);
			in[k] = true;
			n++;
		} else if (util_rand64(&rng) % 2 == 0) {
			assert_true(util_hmap_del(&m, names[k], k));
			in[k] = false;
			n--;
		}
		if (step % 997 == 0) {
			for (size_t j = 0; j < NKEYS; j++) {
				bool got = util_hmap_get(&m, names[j], key_of, NULL, &v);

				assert_int_equal(got, in[j]);
				if (got)
					assert_int_equal(v, j);
			}
			assert_int_equal(m.n, n);
			assert_true(m.n <= m.cap / 2);
		}
	}
	/* removing an entry by another value removes nothing */
	for (size_t j = 0; j < NKEYS; j++)
		if (in[j])
			assert_false(util_hmap_del(&m, names[j], j + 1));
	util_hmap_free(&m);
	assert_false(util_hmap_get(&m, "s1", key_of, NULL, &(uintptr_t){0}));
}

/* Split s in place at spaces into w (at most max words). */
static size_t split(char *s, const char **w, size_t max)
{
	size_t n = 0;

	while (*s != '\0' && n < max) {
		while (*s == ' ')
			*s++ = '\0';
		if (*s == '\0')
			break;
		w[n++] = s;
		while (*s != '\0' && *s != ' ')
			s++;
	}
	return n;
}

static void parse_all(const char *line, struct util_srvopts *o)
{
	char copy[128], err[200];
	const char *w[16];
	size_t n;

	util_strlcpy(copy, line, sizeof(copy));
	n = split(copy, w, 16);
	util_srvopts_init(o);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(util_srvopt_parse(w, n, &i, o, NULL, err, sizeof(err)), 0);
	assert_int_equal(util_srvopts_check(o, err, sizeof(err)), 0);
}

static void test_srvopts_roundtrip(void **state)
{
	static const char *const lines[] = {
	    "",
	    "weight 0",
	    "weight 256 maxconn 1000000 backup",
	    "send-proxy v1 check off agent port 9",
	    "maxconn 7 send-proxy none check port 65535 agent off",
	};

	(void)state;
	for (size_t t = 0; t < UTIL_ARRAY_LEN(lines); t++) {
		struct util_srvopts a, b;
		char out[128];
		size_t off = 0;

		parse_all(lines[t], &a);
		out[0] = '\0';
		util_srvopts_format(&a, out, sizeof(out), &off);
		/* written back as it was read (defaults left out) */
		assert_string_equal(out[0] == ' ' ? out + 1 : out, lines[t]);
		parse_all(out, &b);
		assert_true(util_srvopts_equal(&a, &b));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hmap_random),
	    cmocka_unit_test(test_srvopts_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
