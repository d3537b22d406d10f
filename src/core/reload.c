/* reload: configuration reload on SIGHUP or from the control socket.
 * Not available yet: answers so, and changes nothing. */
#include <stdio.h>

#include "core.h"

int core_reload_hook(void *arg, bool check_only, char *msg, size_t len)
{
	(void)arg;
	(void)check_only;
	snprintf(msg, len, "reload is not implemented yet");
	return -1;
}
