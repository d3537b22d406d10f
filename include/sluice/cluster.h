/* cluster: second-chance forwarding between sluice nodes with eBPF. Loads
 * the tc ingress program (src/cluster/bpf), attaches it to the uplinks and
 * the cluster interface, and fills its maps: served addresses, peer MACs,
 * the heartbeat. The only libbpf user; core drives it from the control
 * thread. Errors: 0 / -1 with a message in the caller's buffer. */
#ifndef SLUICE_CLUSTER_H
#define SLUICE_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/cluster-t.h"
#include "sluice/util-t.h"

struct cluster;

/* Load and verify the program and fill its maps (served addresses
 * included) for s, deciding how it will be attached (auto: tcx where the
 * kernel has it). Nothing is attached: no packet sees it yet, so a
 * reload prepares with this and can still drop it with cluster_close().
 * Peers start unknown: nothing is forwarded until cluster_set_peer()
 * gives a MAC. Returns the handle (caller owns it), or NULL with err (no
 * CAP_BPF, no BPF, no tcx for attach tcx, verifier log tail...). */
struct cluster *cluster_load(const struct cluster_setup *s, char *err, size_t errlen);

/* Attach c (from cluster_load) to every interface of its setup, after
 * removing a tc filter a crashed sluice may have left there. pred (may be
 * NULL) is the running one c replaces: its tc filters are replaced in
 * place (tcx links stack), so there is never a moment without a program;
 * the caller then closes pred with c as its successor. All or nothing: on
 * failure nothing of c stays attached (pred's filters are put back), c
 * stays loaded, and err says why. Returns 0 or -1. */
int cluster_attach(struct cluster *c, const struct cluster *pred, char *err, size_t errlen);

/* cluster_load() and cluster_attach() in one (NULL with err when either
 * fails; nothing of it stays then). Returns the handle (caller owns it). */
struct cluster *cluster_open(const struct cluster_setup *s, const struct cluster *pred, char *err,
			     size_t errlen);

/* Detach (when attached) and free. successor (may be NULL, or c itself after a binary
 * upgrade) is what replaced c: its tc filters took c's place under the same
 * handle, so they stay where it is attached. NULL c is allowed. */
void cluster_close(struct cluster *c, const struct cluster *successor);

/* "tcx" or "tc": how it is attached. */
const char *cluster_attach_name(const struct cluster *c);

/* Replace the served addresses (listening address and port; an unspecified
 * address serves every address). Returns 0, or -1 with err (too many). */
int cluster_set_served(struct cluster *c, const struct util_addr *addrs, size_t n, char *err,
		       size_t errlen);

/* The MAC of peer idx (< npeers), or NULL while it is unknown. */
void cluster_set_peer(struct cluster *c, size_t idx, const uint8_t *mac);

/* Tell the program this process is alive (tc mode: call at least every
 * second; a no-op for tcx). */
void cluster_heartbeat(struct cluster *c);

/* Read the counters. Returns 0 or -1. */
int cluster_stats(const struct cluster *c, struct cluster_stats *out);

/* Forwarded flows whose client has repeated one segment at least
 * min_repeats times over at least min_ms: at most max into out; each is
 * reported once per episode. Returns how many. */
size_t cluster_slow_flows(struct cluster *c, uint32_t min_repeats, uint64_t min_ms,
			  struct cluster_slow_flow *out, size_t max);

/* The program's descriptor, for tests that run it on crafted packets
 * (BPF_PROG_TEST_RUN); the handle keeps ownership. */
int cluster_prog_fd(const struct cluster *c);

/* The kernel's id of the program (bpftool prog show id N), 0 if unknown. */
uint32_t cluster_prog_id(const struct cluster *c);

/* "libbpf 1.1" for sluice --version. Returns buf. */
const char *cluster_libbpf_version(char *buf, size_t len);

#endif
