/* conf_lex: turns configuration text into a tree of statements (words ended
 * by ';' or followed by a { block }). Knows no keyword: structure errors only
 * (unterminated block or string, stray '}', missing ';' at end of file).
 * Every token keeps its line and column for diagnostics. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf-int.h"
#include "sluice/conf.h"
#include "sluice/util.h"

#define CONF_MAX_DEPTH 8
#define CONF_MAX_TOKEN 4096

struct lexer {
	struct conf_ctx *ctx;
	const char *p, *end;
	uint32_t line, col;
	bool failed;
};

/* Append "FILE:LINE:COL: KIND: MSG (near 'TOK')" to list. */
static void add_msg(struct conf_errors *list, const char *file, const char *kind, uint32_t line,
		    uint32_t col, const char *near, const char *fmt, va_list ap)
    __attribute__((format(printf, 7, 0)));
static void add_msg(struct conf_errors *list, const char *file, const char *kind, uint32_t line,
		    uint32_t col, const char *near, const char *fmt, va_list ap)
{
	char msg[512], full[1024];
	size_t off = 0;

	if (list->n >= CONF_MAX_ERRORS) {
		list->truncated = true;
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (line == 0) /* about the file as a whole */
		util_bufprintf(full, sizeof(full), &off, "%s: %s: %s", file, kind, msg);
	else
		util_bufprintf(full, sizeof(full), &off, "%s:%u:%u: %s: %s", file, line, col, kind,
			       msg);
	if (near != NULL) {
		char shown[48];
		size_t i;

		/* show the token printable and short */
		for (i = 0; near[i] != '\0' && i < sizeof(shown) - 4; i++)
			shown[i] = (near[i] >= 0x20 && near[i] < 0x7f) ? near[i] : '?';
		shown[i] = '\0';
		if (near[i] != '\0')
			util_strlcpy(shown + i, "...", sizeof(shown) - i);
		util_bufprintf(full, sizeof(full), &off, " (near '%s')", shown);
	}
	list->msgs[list->n] = strdup(full);
	if (list->msgs[list->n] != NULL)
		list->n++;
}

void conf_error(struct conf_ctx *ctx, uint32_t line, uint32_t col, const char *near,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_msg(ctx->errs, ctx->file, "error", line, col, near, fmt, ap);
	va_end(ap);
}

void conf_warning(struct conf_ctx *ctx, struct conf *c, uint32_t line, uint32_t col,
		  const char *near, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_msg(&c->warnings, ctx->file, "warning", line, col, near, fmt, ap);
	va_end(ap);
}

void conf_errors_add(struct conf_errors *errs, const char *file, const struct conf_where *w,
		     const char *near, const char *msg)
{
	struct conf_ctx ctx = {.file = file, .errs = errs};

	conf_error(&ctx, w->line, w->col, near, "%s", msg);
}

void conf_errors_add_text(struct conf_errors *errs, const char *text)
{
	if (errs->n >= CONF_MAX_ERRORS) {
		errs->truncated = true;
		return;
	}
	errs->msgs[errs->n] = strdup(text);
	if (errs->msgs[errs->n] != NULL)
		errs->n++;
}

void conf_error_arg(struct conf_ctx *ctx, const struct conf_stmt *st, size_t i, const char *fmt,
		    ...)
{
	char msg[512];
	va_list ap;

	if (i >= st->nargs)
		i = st->nargs - 1;
	if (st->break_at > 0 && i >= st->break_at) {
		const struct conf_tok *prev = &st->args[st->break_at - 1];

		conf_error(ctx, prev->line, prev->col + (uint32_t)strlen(prev->text), prev->text,
			   "expected ';' after '%s'", prev->text);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conf_error(ctx, st->args[i].line, st->args[i].col, st->args[i].text, "%s", msg);
}

void *conf_grow(struct conf_ctx *ctx, uint32_t line, uint32_t col, void *arr, size_t n, size_t size)
{
	void *a;

	if (n != 0 && (n & (n - 1)) != 0)
		return arr; /* not a power of two: there is room */
	a = n <= SIZE_MAX / 2 / size ? realloc(arr, (n == 0 ? 1 : 2 * n) * size) : NULL;
	if (a == NULL)
		conf_error(ctx, line, col, NULL, "out of memory");
	return a;
}

void conf_errors_clear(struct conf_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->msgs[i]);
	memset(errs, 0, sizeof(*errs));
}

static void lex_advance(struct lexer *lx)
{
	if (*lx->p == '\n') {
		lx->line++;
		lx->col = 1;
	} else {
		lx->col++;
	}
	lx->p++;
}

/* Skip blanks and # comments. */
static void lex_skip(struct lexer *lx)
{
	while (lx->p < lx->end) {
		if (*lx->p == '#') {
			while (lx->p < lx->end && *lx->p != '\n')
				lex_advance(lx);
		} else if (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r') {
			lex_advance(lx);
		} else {
			break;
		}
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Read a quoted string into buf, resolving \" \\ \r \n \t \xNN.
 * Returns its length, or -1 after reporting an error. */
static long lex_string(struct lexer *lx, char *buf, uint32_t line, uint32_t col)
{
	size_t n = 0;

	lex_advance(lx); /* opening quote */
	while (lx->p < lx->end && *lx->p != '"') {
		char c = *lx->p;

		if (c == '\n') {
			break;
		} else if (c == '\\') {
			int hi, lo;

			lex_advance(lx);
			if (lx->p >= lx->end)
				break;
			switch (*lx->p) {
			case 'n':
				c = '\n';
				break;
			case 'r':
				c = '\r';
				break;
			case 't':
				c = '\t';
				break;
			case '\\':
				c = '\\';
				break;
			case '"':
				c = '"';
				break;
			case 'x':
				if (lx->end - lx->p < 3 || (hi = hexval(lx->p[1])) < 0 ||
				    (lo = hexval(lx->p[2])) < 0) {
					conf_error(lx->ctx, lx->line, lx->col, NULL,
						   "expected two hex digits after \\x");
					return -1;
				}
				c = (char)(hi * 16 + lo);
				lex_advance(lx);
				lex_advance(lx);
				break;
			default:
				conf_error(lx->ctx, lx->line, lx->col, NULL,
					   "unknown escape '\\%c' (expected \\r \\n \\t \\\\ \\\" "
					   "or \\xNN)",
					   *lx->p >= 0x20 && *lx->p < 0x7f ? *lx->p : '?');
				return -1;
			}
		}
		if (n >= CONF_MAX_TOKEN - 1) {
			conf_error(lx->ctx, line, col, NULL, "string longer than %d bytes",
				   CONF_MAX_TOKEN - 1);
			return -1;
		}
		buf[n++] = c;
		lex_advance(lx);
	}
	if (lx->p >= lx->end || *lx->p != '"') {
		conf_error(lx->ctx, line, col, NULL, "unterminated string (expected '\"')");
		return -1;
	}
	lex_advance(lx);
	buf[n] = '\0';
	return (long)n;
}

static bool is_word_char(char c)
{
	return c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != ';' && c != '{' &&
	       c != '}' && c != '#' && c != '"';
}

/* Read one word or string token. Returns 0 or -1 after reporting. */
static int lex_token(struct lexer *lx, struct conf_tok *tok)
{
	char buf[CONF_MAX_TOKEN];
	long n = 0;

	tok->line = lx->line;
	tok->col = lx->col;
	tok->quoted = *lx->p == '"';
	if (tok->quoted) {
		n = lex_string(lx, buf, tok->line, tok->col);
		if (n < 0)
			return -1;
	} else {
		while (lx->p < lx->end && is_word_char(*lx->p)) {
			if ((unsigned char)*lx->p < 0x20 || *lx->p == 0x7f) {
				conf_error(lx->ctx, lx->line, lx->col, NULL,
					   "control character 0x%02x in configuration",
					   (unsigned char)*lx->p);
				return -1;
			}
			if (n >= CONF_MAX_TOKEN - 1) {
				conf_error(lx->ctx, tok->line, tok->col, NULL,
					   "word longer than %d bytes", CONF_MAX_TOKEN - 1);
				return -1;
			}
			buf[n++] = *lx->p;
			lex_advance(lx);
		}
		buf[n] = '\0';
	}
	tok->text = malloc((size_t)n + 1);
	if (tok->text == NULL) {
		conf_error(lx->ctx, tok->line, tok->col, NULL, "out of memory");
		return -1;
	}
	memcpy(tok->text, buf, (size_t)n + 1);
	tok->len = (size_t)n;
	return 0;
}

static int stmt_push_arg(struct lexer *lx, struct conf_stmt *st, const struct conf_tok *tok)
{
	struct conf_tok *a =
	    conf_grow(lx->ctx, tok->line, tok->col, st->args, st->nargs, sizeof(*a));

	if (a == NULL)
		return -1;
	st->args = a;
	if (st->nargs > 0 && st->break_at == 0 && tok->line > a[st->nargs - 1].line)
		st->break_at = st->nargs;
	a[st->nargs++] = *tok;
	return 0;
}

static struct conf_stmt *stmt_push_kid(struct lexer *lx, struct conf_stmt *parent)
{
	struct conf_stmt *k =
	    conf_grow(lx->ctx, lx->line, lx->col, parent->kids, parent->nkids, sizeof(*k));

	if (k == NULL)
		return NULL;
	parent->kids = k;
	memset(&k[parent->nkids], 0, sizeof(*k));
	return &k[parent->nkids++];
}

/* Parse statements into parent until '}' (depth > 0) or end of text. */
static int lex_block(struct lexer *lx, struct conf_stmt *parent, int depth, uint32_t open_line,
		     uint32_t open_col)
{
	for (;;) {
		struct conf_stmt *st;

		lex_skip(lx);
		if (lx->p >= lx->end) {
			if (depth > 0) {
				conf_error(lx->ctx, open_line, open_col, NULL,
					   "unterminated block (expected '}' before end of file)");
				return -1;
			}
			return 0;
		}
		if (*lx->p == '}') {
			if (depth == 0) {
				conf_error(lx->ctx, lx->line, lx->col, "}",
					   "unexpected '}' (no block is open)");
				return -1;
			}
			parent->end_line = lx->line;
			parent->end_col = lx->col;
			lex_advance(lx);
			return 0;
		}
		if (*lx->p == ';' || *lx->p == '{') {
			conf_error(lx->ctx, lx->line, lx->col, NULL,
				   "expected a keyword before '%c'", *lx->p);
			return -1;
		}
		st = stmt_push_kid(lx, parent);
		if (st == NULL)
			return -1;
		for (;;) {
			struct conf_tok tok = {0};

			lex_skip(lx);
			if (lx->p >= lx->end) {
				const struct conf_tok *last = &st->args[st->nargs - 1];

				conf_error(lx->ctx, last->line,
					   last->col + (uint32_t)strlen(last->text), last->text,
					   "expected ';' after '%s' before end of file",
					   last->text);
				return -1;
			}
			if (*lx->p == ';') {
				st->end_line = lx->line;
				st->end_col = lx->col;
				lex_advance(lx);
				break;
			}
			if (*lx->p == '{') {
				uint32_t l = lx->line, c = lx->col;

				if (depth + 1 >= CONF_MAX_DEPTH) {
					conf_error(lx->ctx, l, c, NULL, "blocks nested too deep");
					return -1;
				}
				lex_advance(lx);
				st->has_block = true;
				if (lex_block(lx, st, depth + 1, l, c) < 0)
					return -1;
				break;
			}
			if (*lx->p == '}') {
				const struct conf_tok *last = &st->args[st->nargs - 1];

				conf_error(lx->ctx, last->line,
					   last->col + (uint32_t)strlen(last->text), last->text,
					   "expected ';' after '%s'", last->text);
				return -1;
			}
			if (lex_token(lx, &tok) < 0 || stmt_push_arg(lx, st, &tok) < 0) {
				free(tok.text);
				return -1;
			}
		}
	}
}

/* Free what a statement owns, not the statement itself (kids live in arrays). */
static void stmt_release(struct conf_stmt *st)
{
	for (size_t i = 0; i < st->nargs; i++)
		free(st->args[i].text);
	free(st->args);
	for (size_t i = 0; i < st->nkids; i++)
		stmt_release(&st->kids[i]);
	free(st->kids);
}

void conf_stmt_free(struct conf_stmt *st)
{
	if (st == NULL)
		return;
	stmt_release(st);
	free(st);
}

struct conf_stmt *conf_lex(struct conf_ctx *ctx, const char *text, size_t len)
{
	struct lexer lx = {.ctx = ctx, .p = text, .end = text + len, .line = 1, .col = 1};
	struct conf_stmt *root = calloc(1, sizeof(*root));

	if (root == NULL) {
		conf_error(ctx, 1, 1, NULL, "out of memory");
		return NULL;
	}
	if (memchr(text, '\0', len) != NULL) {
		const char *z = memchr(text, '\0', len);
		uint32_t line = 1;

		for (const char *q = text; q < z; q++)
			line += *q == '\n';
		conf_error(ctx, line, 1, NULL, "NUL byte in configuration");
		free(root);
		return NULL;
	}
	if (lex_block(&lx, root, 0, 1, 1) < 0) {
		conf_stmt_free(root);
		return NULL;
	}
	return root;
}
