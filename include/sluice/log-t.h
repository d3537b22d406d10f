/* log types: levels and the rate limiter state. */
#ifndef SLUICE_LOG_T_H
#define SLUICE_LOG_T_H

#include <stdint.h>

enum log_level {
	LOGL_ERR = 0,
	LOGL_WARNING,
	LOGL_NOTICE,
	LOGL_INFO,
	LOGL_DEBUG,
};

/* Allows `burst` messages per second; counts what it suppressed.
 * Owned by whoever logs (one per error site); zero-initialise. */
struct log_ratelimit {
	uint64_t window_ms;
	uint32_t count;
	uint32_t suppressed;
};

#endif
