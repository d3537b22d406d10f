/* krelay_glue: core's side of the kernel relay (src/cluster/krelay.c):
 * loads it when the configuration first asks for it, at start (before the
 * privilege drop) or at a reload, and hands it to the engine. Control
 * thread only. */
#include <stdio.h>

#include "core.h"
#include "sluice/conf.h"
#include "sluice/krelay.h"
#include "sluice/log.h"
#include "sluice/proxy.h"

bool core_krelay_used(const struct conf *nc)
{
	for (size_t i = 0; i < nc->nlistens; i++)
		if (nc->listens[i].relay != CONF_RELAY_USER)
			return true;
	return false;
}

int core_krelay_prepare(struct core *c, const struct conf *nc, char *err, size_t errlen)
{
	char why[384];
	const struct conf_listen *strict = NULL;

	if (c->krelay != NULL || !core_krelay_used(nc))
		return 0;
	if (!c->bpf_allowed)
		snprintf(why, sizeof(why),
			 "kernel relay: CAP_BPF was dropped at start (the configuration then used "
			 "neither the kernel relay nor a cluster block): restart to use it");
	else
		c->krelay = krelay_open(c->maxconn, c->nworkers, why, sizeof(why));
	if (c->krelay != NULL) {
		proxy_engine_set_krelay(c->engine, c->krelay);
		log_notice("kernel relay loaded: room for %u connections", c->maxconn);
		return 0;
	}
	for (size_t i = 0; i < nc->nlistens && strict == NULL; i++)
		if (nc->listens[i].relay == CONF_RELAY_KERNEL)
			strict = &nc->listens[i];
	if (strict != NULL) {
		snprintf(err, errlen, "listen %s: relay kernel: %s", strict->name, why);
		return -1;
	}
	log_warn("relay auto: %s; the user-space relay serves every connection", why);
	return 0;
}

void core_krelay_free(struct core *c)
{
	krelay_close(c->krelay);
	c->krelay = NULL;
}
