/* health_tls: the OpenSSL side of tls and https checks: shared client
 * contexts (verification settings, CA file), and non-blocking handshake,
 * read and write for one checker. The only file besides health_check.c's
 * callers that knows OpenSSL; everything runs in the control thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "health-int.h"
#include "sluice/util.h"

/* A client context shared by the checkers of a pool. Owner: reference
 * counted (core holds one while building, each checker one). */
struct health_tls {
	SSL_CTX *ctx;
	unsigned refcnt; /* control thread only */
	bool verify;
};

/* Describe the newest OpenSSL error (and clear the queue). */
static void ssl_err(char *buf, size_t len, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	if (r != NULL)
		snprintf(buf, len, "%s: %s", what, r);
	else if (e != 0)
		snprintf(buf, len, "%s: error %lx", what, e);
	else
		snprintf(buf, len, "%s", what);
	ERR_clear_error();
}

struct health_tls *health_tls_new(bool verify, const char *ca_file, char *err, size_t errlen)
{
	struct health_tls *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ERR_clear_error();
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (t->ctx == NULL) {
		ssl_err(err, errlen, "cannot create a TLS context");
		free(t);
		return NULL;
	}
	t->refcnt = 1;
	t->verify = verify;
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	/* a server that closes without close_notify has still answered */
	SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(t->ctx,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(t->ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	if (verify) {
		int ok = ca_file != NULL && ca_file[0] != '\0'
			     ? SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL)
			     : SSL_CTX_set_default_verify_paths(t->ctx);

		if (ok != 1) {
			char what[300];

			snprintf(what, sizeof(what), "cannot load CA file %s",
				 ca_file != NULL && ca_file[0] != '\0' ? ca_file : "(default)");
			ssl_err(err, errlen, what);
			SSL_CTX_free(t->ctx);
			free(t);
			return NULL;
		}
	}
	return t;
}

void health_tls_get(struct health_tls *t)
{
	t->refcnt++;
}

void health_tls_put(struct health_tls *t)
{
	if (t == NULL || --t->refcnt > 0)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

int health_tls_start(struct health_checker *chk, char *cause, size_t len)
{
	struct health_tls *t = chk->conf.tls;
	const char *name = chk->conf.verify_name[0] != '\0' ? chk->conf.verify_name : chk->conf.sni;
	SSL *ssl;

	ERR_clear_error();
	ssl = SSL_new(t->ctx);
	if (ssl == NULL) {
		ssl_err(cause, len, "TLS setup failed");
		return -1;
	}
	chk->ssl = ssl;
	if (SSL_set_fd(ssl, chk->fd) != 1 ||
	    (chk->conf.sni[0] != '\0' && SSL_set_tlsext_host_name(ssl, chk->conf.sni) != 1)) {
		ssl_err(cause, len, "TLS setup failed");
		return -1;
	}
	if (t->verify && name[0] != '\0') {
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, name) != 1) {
			ssl_err(cause, len, "TLS setup failed");
			return -1;
		}
	}
	SSL_set_connect_state(ssl);
	return 0;
}

/* Map an SSL_get_error() result: 0 would block (io armed), -1 error. */
static int ssl_wait(struct health_checker *chk, int rc, const char *what, char *cause, size_t len)
{
	SSL *ssl = chk->ssl;
	int e = SSL_get_error(ssl, rc);
	long vr;

	switch (e) {
	case SSL_ERROR_WANT_READ:
		health_want(chk, EV_READ);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		health_want(chk, EV_WRITE);
		return 0;
	case SSL_ERROR_SSL:
		vr = SSL_get_verify_result(ssl);
		if (vr != X509_V_OK) {
			snprintf(cause, len, "TLS certificate verify failed: %s",
				 X509_verify_cert_error_string(vr));
			ERR_clear_error();
			return -1;
		}
		ssl_err(cause, len, what);
		return -1;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_last_error() != 0) {
			ssl_err(cause, len, what);
		} else {
			snprintf(cause, len, "%s: %s", what,
				 errno != 0 ? strerror(errno) : "connection closed");
		}
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		snprintf(cause, len, "%s: connection closed", what);
		ERR_clear_error();
		return -1;
	default:
		ssl_err(cause, len, what);
		return -1;
	}
}

int health_tls_handshake(struct health_checker *chk, char *cause, size_t len)
{
	int rc;

	ERR_clear_error();
	errno = 0;
	rc = SSL_do_handshake(chk->ssl);
	if (rc == 1)
		return 1;
	return ssl_wait(chk, rc, "TLS handshake failed", cause, len);
}

ssize_t health_tls_read(struct health_checker *chk, char *buf, size_t n, char *cause, size_t len)
{
	size_t got = 0;
	int rc;

	ERR_clear_error();
	errno = 0;
	rc = SSL_read_ex(chk->ssl, buf, n, &got);
	if (rc == 1)
		return (ssize_t)got;
	if (SSL_get_error(chk->ssl, rc) == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return -2;
	}
	return ssl_wait(chk, rc, "TLS read failed", cause, len);
}

ssize_t health_tls_write(struct health_checker *chk, const char *buf, size_t n, char *cause,
			 size_t len)
{
	size_t done = 0;
	int rc;

	ERR_clear_error();
	errno = 0;
	rc = SSL_write_ex(chk->ssl, buf, n, &done);
	if (rc == 1)
		return (ssize_t)done;
	return ssl_wait(chk, rc, "TLS write failed", cause, len);
}

void health_tls_end(struct health_checker *chk)
{
	SSL_free(chk->ssl);
	chk->ssl = NULL;
	ERR_clear_error();
}

const char *health_tls_version(char *buf, size_t len)
{
	snprintf(buf, len, "%s (built with %s)", OpenSSL_version(OPENSSL_VERSION),
		 OPENSSL_VERSION_TEXT);
	return buf;
}
