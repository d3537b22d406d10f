/* conf types: the validated, immutable description of a configuration file.
 * Built by conf_parse(), owned by the caller, freed with conf_free(); nothing
 * in it points into the runtime model. */
#ifndef SLUICE_CONF_T_H
#define SLUICE_CONF_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/hmap.h"
#include "sluice/log-t.h"
#include "sluice/srvopt.h"
#include "sluice/util-t.h"

#define CONF_NAME_MAX UTIL_NAME_MAX
#define CONF_MAX_ERRORS 20
/* Maglev table slots: 65537 by default as Envoy, at most Envoy's limit
 * (20 MB per table of 4-byte slots). */
#define CONF_MAGLEV_TABLE_DEFAULT 65537
#define CONF_MAGLEV_TABLE_MAX 5000011

enum conf_balance {
	CONF_BALANCE_ROUNDROBIN,
	CONF_BALANCE_LEASTCONN,
	CONF_BALANCE_RANDOM,
	CONF_BALANCE_MAGLEV,
	CONF_BALANCE_FIRST,
};

/* Where a statement came from, for messages about it after parsing. */
struct conf_where {
	uint32_t line;
	uint32_t col;
};

/* ---- health checks (parsed by conf_check.c) ---- */

#define CONF_CHECK_STR_MAX 256	 /* send, expect, path, host, sni, verify-name */
#define CONF_CHECK_PATH_MAX 1024 /* ca file */
#define CONF_CHECK_MAX_STATUS 8

enum conf_check_type {
	CONF_CHECK_NONE, /* no check block: servers are always up */
	CONF_CHECK_TCP,
	CONF_CHECK_EXPECT,
	CONF_CHECK_HTTP,
	CONF_CHECK_TLS,
	CONF_CHECK_HTTPS,
};

enum conf_on_down {
	CONF_ON_DOWN_KEEP,     /* open connections continue */
	CONF_ON_DOWN_SHUTDOWN, /* close the server's open connections */
};

struct conf_status_range {
	uint16_t lo, hi;
};

/* A pool's `check` block: the defaults of its servers. Plain data; the
 * strings may hold NUL bytes where a length is given. */
struct conf_check {
	enum conf_check_type type;
	uint64_t interval_ms, timeout_ms;
	uint32_t rise, fall;
	uint32_t jitter_pct; /* 0-50 */
	uint16_t port;	     /* 0: the server's port */
	char send[CONF_CHECK_STR_MAX];
	size_t send_len;
	char expect[CONF_CHECK_STR_MAX];
	size_t expect_len;
	char path[CONF_CHECK_STR_MAX];
	char host[CONF_CHECK_STR_MAX]; /* "": no Host header */
	struct conf_status_range status[CONF_CHECK_MAX_STATUS];
	size_t nstatus;
	char sni[CONF_CHECK_STR_MAX]; /* "": no SNI */
	bool verify;
	char ca[CONF_CHECK_PATH_MAX];	      /* "": the system's default CA paths */
	char verify_name[CONF_CHECK_STR_MAX]; /* "": the sni name */
	struct conf_where where;
};

/* Health settings of a pool: active check, agent, passive, slow start. */
struct conf_pool_health {
	struct conf_check check;
	uint16_t agent_port; /* 0: no agent check */
	uint64_t agent_interval_ms, agent_timeout_ms;
	uint32_t observe_errors; /* 0: passive checking off */
	bool observe_set;	 /* written explicitly (validated against the check) */
	struct conf_where observe_where;
	uint64_t slowstart_ms; /* 0: off */
	enum conf_on_down on_down;
};

struct conf_server {
	char name[CONF_NAME_MAX];
	struct util_addr addr;	  /* len 0 until a host name is resolved */
	char host[UTIL_HOST_MAX]; /* written as a host name: "" when numeric */
	uint16_t port;		  /* with host */
	struct conf_where addr_where;
	/* weight, maxconn, backup, send-proxy, check and agent: the table
	 * that `server add` and the state file use too (srvopt.h) */
	struct util_srvopts opts;
	struct conf_where where;
};

/* ---- DNS (conf_resolvers.c) ---- */

#define CONF_RESOLVERS_MAX_NS 8	     /* as RESOLVE_MAX_NAMESERVERS */
#define CONF_DISCOVER_MAX 16	     /* `servers` lines in one pool */
#define CONF_DISCOVER_LIMIT_MAX 4096 /* as RESOLVE_MAX_RECORDS */

/* `resolvers NAME { ... }`; the block named "default" (written or not)
 * serves the pools that name none. Without nameserver lines it is the
 * system's configuration (/etc/hosts, then /etc/resolv.conf). */
struct conf_resolvers {
	char name[CONF_NAME_MAX];
	struct util_addr nameservers[CONF_RESOLVERS_MAX_NS]; /* port 53 unless written */
	size_t nnameservers;
	uint64_t timeout_ms; /* first attempt (c-ares doubles it each round) */
	uint32_t attempts;
	uint64_t hold_valid_ms, hold_nx_ms, hold_timeout_ms;
	uint64_t ttl_min_ms, ttl_max_ms; /* accepted-ttl */
	bool written;			 /* from the file (the implicit default is not) */
	struct conf_where where;
};

enum conf_discover_kind {
	CONF_DISCOVER_DNS, /* every A/AAAA record of a name, at one port */
	CONF_DISCOVER_SRV, /* the targets of an SRV name, at their ports */
};

/* `servers srv NAME [limit N] [weight-from-srv] [OPTION ...];` or
 * `servers dns NAME port N [limit N] [OPTION ...];`: servers that DNS
 * answers fill in and take away. */
struct conf_discover {
	enum conf_discover_kind kind;
	char name[UTIL_HOST_MAX];
	uint16_t port;	/* dns */
	uint32_t limit; /* most servers it makes */
	bool weight_from_srv;
	struct util_srvopts opts; /* of every server it makes */
	struct conf_where where;
};

struct conf_pool {
	char name[CONF_NAME_MAX];
	enum conf_balance balance;
	enum util_proxy_proto send_proxy; /* never INHERIT */
	uint32_t queue_max;		  /* clients that may wait for a free server slot */
	uint64_t timeout_queue_ms;
	uint32_t maglev_table;		/* balance maglev: table slots, a prime */
	bool maglev_table_set;		/* written in the file */
	struct conf_where maglev_where; /* of its value */
	struct conf_server *servers;
	size_t nservers;
	struct util_hmap server_index; /* name -> position in servers */
	struct conf_where where;
	struct conf_pool_health health; /* conf_check.c */
	char resolvers[CONF_NAME_MAX];	/* its names go through this block ("default") */
	struct conf_where resolvers_where;
	struct conf_discover *discover; /* conf_resolvers.c */
	size_t ndiscover;
};

/* ---- source ACLs and per-source limits of a listener (conf_guard.c) ---- */

#define CONF_PATH_MAX 1024
#define CONF_GUARD_TABLE_DEFAULT 100000
#define CONF_GUARD_TABLE_MAX 16777216

enum conf_acl_action {
	CONF_ACL_ALLOW,
	CONF_ACL_DENY,
};

/* "allow CIDR;" / "deny CIDR;" */
struct conf_acl_rule {
	struct util_cidr cidr;
	enum conf_acl_action action;
	struct conf_where where;
};

/* "allow file PATH;" / "deny file PATH;" (read when the configuration is
 * loaded, not by the parser; a relative path is relative to the file's
 * directory) */
struct conf_acl_file {
	char path[CONF_PATH_MAX];
	enum conf_acl_action action;
	struct conf_where where;
};

struct conf_guard {
	struct conf_acl_rule *rules;
	size_t nrules;
	struct conf_acl_file *files;
	size_t nfiles;
	enum conf_acl_action dflt;    /* when no prefix matches; allow by default */
	struct conf_where dflt_where; /* line 0: not written */
	uint32_t conns;		      /* open connections per source; 0: no limit */
	uint32_t rate;		      /* new connections per rate_period_ms; 0: no limit */
	uint64_t rate_period_ms;
	uint32_t burst;
	uint8_t group4, group6; /* prefix lengths that make one source */
	uint32_t table;		/* sources tracked at most */
	struct conf_where conns_where, rate_where, group_where, table_where;
};

/* ---- TLS routes of a listener (conf_route.c) ---- */

#define CONF_ROUTE_NAME_MAX 256 /* a server name (253), or "*." and one */
#define CONF_ALPN_MAX 256	/* an ALPN protocol id: 1-255 bytes */
#define CONF_MAX_ROUTES 1024	/* per listener: they are tried in order */

enum conf_route_kind {
	CONF_ROUTE_SNI,	    /* route sni NAME [alpn PROTO] pool POOL; */
	CONF_ROUTE_ALPN,    /* route alpn PROTO pool POOL; */
	CONF_ROUTE_NO_SNI,  /* route no-sni pool POOL; a ClientHello without a name */
	CONF_ROUTE_NOT_TLS, /* route not-tls pool POOL; the first bytes are not TLS */
};

/* One `route` line: the first that matches a connection picks its pool. */
struct conf_route {
	enum conf_route_kind kind;
	char sni[CONF_ROUTE_NAME_MAX]; /* SNI: lowercase; "*.example.com" a wildcard */
	char alpn[CONF_ALPN_MAX];      /* "": any (or none) */
	char pool_name[CONF_NAME_MAX];
	size_t pool;		 /* index into conf.pools, once validated */
	struct conf_where where; /* the keyword */
	struct conf_where pool_where;
};

/* Default cap of a kernel-relayed direction's bytes in flight. */
#define CONF_RELAY_INFLIGHT (4ull * 1024 * 1024)

enum conf_relay {
	CONF_RELAY_UNSET,  /* listen: as in global */
	CONF_RELAY_USER,   /* buffers and splice() in the workers */
	CONF_RELAY_KERNEL, /* sockmap; BPF must load or start/reload fails */
	CONF_RELAY_AUTO,   /* sockmap when BPF loads and the connection qualifies */
};

struct conf_listen {
	char name[CONF_NAME_MAX];
	struct util_addr *binds;
	size_t nbinds;
	size_t pool;		   /* index into conf.pools, when has_pool */
	bool has_pool;		   /* with routes the default pool is optional */
	struct conf_route *routes; /* conf_route.c */
	size_t nroutes;
	uint64_t timeout_client_hello_ms; /* with routes: wait this long for a ClientHello */
	uint32_t maxconn;		  /* 0: only the global limit */
	uint64_t timeout_connect_ms;
	uint64_t timeout_idle_ms;
	uint64_t timeout_half_closed_ms;
	uint64_t timeout_proxy_header_ms; /* accept-proxy: the whole header within it */
	uint32_t retries;
	bool accept_proxy;
	enum conf_relay relay;	       /* resolved: never UNSET after parsing */
	uint64_t relay_inflight;       /* kernel relay cap per direction, bytes; resolved */
	struct conf_where relay_where; /* of the relay line (line 0: from global) */
	struct conf_where where;
	struct conf_guard guard; /* conf_guard.c */
};

enum conf_ctl_level {
	CONF_CTL_ADMIN,
	CONF_CTL_USER, /* show and wait commands only */
};

/* A control socket ("control PATH [mode 0600] [level admin|user];"). */
struct conf_control {
	char path[108]; /* sun_path */
	uint32_t mode;
	enum conf_ctl_level level;
	struct conf_where where;
};

struct conf_global {
	uint32_t workers;	 /* 0: one per CPU */
	uint32_t maxconn;	 /* 0: as many as the descriptor limit allows */
	enum conf_relay relay;	 /* the listeners' default: user unless written */
	uint64_t relay_inflight; /* their default cap, bytes; 0: CONF_RELAY_INFLIGHT */
	/* `log` lines (conf_log.c): at least one; none written is stderr info */
	struct log_target_conf logs[LOG_MAX_TARGETS];
	struct conf_where log_where[LOG_MAX_TARGETS]; /* line 0: the default */
	size_t nlogs;
	uint64_t bufmem; /* relay buffers and pipes, bytes; 0: derived from maxconn */
	uint64_t grace_ms;
	struct conf_control *controls;
	size_t ncontrols;
	struct util_addr metrics; /* len 0: no HTTP metrics listener */
	char state_file[256];	  /* empty: none */
	char user[64];		  /* empty: stay as started */
	char group[64];
};

/* ---- vrrp (conf_vrrp.c): `vrrp NAME { ... }` ---- */

#define CONF_VRRP_MAX_ADDRS 64 /* as VRRP_MAX_ADDRS: one advert carries them all */
#define CONF_VRRP_MAX_PEERS 16
#define CONF_VRRP_MAX_TRACKS 16
#define CONF_IFNAME_MAX 16 /* IF_NAMESIZE */

/* "address A[/N] [dev IF];" */
struct conf_vrrp_addr {
	struct util_addr addr;	   /* port 0 */
	uint32_t prefixlen;	   /* /32 or /128 when not given */
	char dev[CONF_IFNAME_MAX]; /* empty: the instance's interface */
	struct conf_where where;
};

enum conf_vrrp_track_kind {
	CONF_VRRP_TRACK_INTERFACE,
	CONF_VRRP_TRACK_POOL,
};

/* "track interface IF weight N;" or "track pool NAME weight N;" */
struct conf_vrrp_track {
	enum conf_vrrp_track_kind kind;
	char name[CONF_NAME_MAX]; /* interface or pool name */
	uint32_t weight;	  /* 1-254: subtracted while the thing is down */
	struct conf_where where;
};

enum conf_vrrp_csum {
	CONF_VRRP_CSUM_PSEUDO, /* keepalived's default: accepted by every keepalived */
	CONF_VRRP_CSUM_RFC,    /* RFC 9568: no pseudo-header for IPv4 */
};

/* One virtual router. */
struct conf_vrrp {
	char name[CONF_NAME_MAX];
	char interface[CONF_IFNAME_MAX];
	uint32_t vrid;		   /* 1-255 */
	uint32_t priority;	   /* 1-255, default 100 */
	uint64_t advert_ms;	   /* default 1s; v3: 10ms steps, v2: whole seconds */
	uint32_t version;	   /* 2 or 3 (default) */
	bool preempt;		   /* default on */
	uint64_t preempt_delay_ms; /* default 0 */
	struct conf_vrrp_addr *addrs;
	size_t naddrs;
	struct util_addr *peers; /* unicast peers; none: multicast */
	size_t npeers;
	struct conf_vrrp_track *tracks;
	size_t ntracks;
	uint32_t garp_repeat;	  /* gratuitous ARPs per burst, default 5 */
	uint64_t garp_delay_ms;	  /* second burst after takeover, default 5s; 0: none */
	uint64_t garp_refresh_ms; /* periodic burst while master; 0 (default): none */
	char notify[256];	  /* empty: none */
	enum conf_vrrp_csum checksum;
	struct conf_where where;
};

/* ---- cluster (conf_cluster.c): `cluster { ... }`, at most one ---- */

#define CONF_CLUSTER_MAX_PEERS 16  /* as CLUSTER_PEERS_MAX */
#define CONF_CLUSTER_MAX_UPLINKS 8 /* as CLUSTER_UPLINKS_MAX */

enum conf_cluster_attach {
	CONF_CLUSTER_ATTACH_AUTO, /* tcx where the kernel has it, else tc */
	CONF_CLUSTER_ATTACH_TCX,
	CONF_CLUSTER_ATTACH_TC,
};

/* "peer NAME ADDRESS;" */
struct conf_cluster_peer {
	char name[CONF_NAME_MAX];
	struct util_addr addr;	 /* port 0 */
	struct conf_where where; /* of the address */
};

struct conf_cluster {
	bool present;
	char interface[CONF_IFNAME_MAX]; /* the segment shared with the peers */
	struct conf_where interface_where;
	char uplinks[CONF_CLUSTER_MAX_UPLINKS][CONF_IFNAME_MAX]; /* may include interface */
	struct conf_where uplink_where[CONF_CLUSTER_MAX_UPLINKS];
	size_t nuplinks;
	struct conf_cluster_peer peers[CONF_CLUSTER_MAX_PEERS];
	size_t npeers;
	enum conf_cluster_attach attach;
	struct conf_where where;
};

/* ---- announce (conf_announce.c): `announce NAME { ... }` ---- */

#define CONF_ANNOUNCE_MAX_ADDRS 64
#define CONF_ANNOUNCE_MAX_POOLS 16

/* "address A[/32|/128];": one host route per node for the router. */
struct conf_announce_addr {
	struct util_addr addr; /* port 0 */
	struct conf_where where;
};

/* "require pool NAME;" */
struct conf_announce_pool {
	char name[CONF_NAME_MAX];
	struct conf_where where;
};

/* One announced group of addresses: put on the TUN device `device` while
 * the node can serve them, for the routing daemon to export. */
struct conf_announce {
	char name[CONF_NAME_MAX];
	struct conf_announce_addr *addrs;
	size_t naddrs;
	char device[CONF_IFNAME_MAX]; /* default vip0 */
	struct conf_announce_pool *pools;
	size_t npools;
	uint64_t hold_down_ms;	    /* default 2s: healthy this long before announcing */
	uint64_t withdraw_delay_ms; /* default 2s: SIGTERM keeps accepting this long */
	struct conf_where where;
	struct conf_where device_where;
};

/* Diagnostics collected while parsing: "FILE:LINE:COL: error: ..." lines. */
struct conf_errors {
	char *msgs[CONF_MAX_ERRORS];
	size_t n;
	bool truncated; /* more errors than CONF_MAX_ERRORS */
};

struct conf {
	char *file;
	struct conf_global global;
	struct conf_pool *pools;
	size_t npools;
	struct conf_listen *listens;
	size_t nlistens;
	struct conf_vrrp *vrrps; /* conf_vrrp.c */
	size_t nvrrps;
	struct conf_resolvers *resolvers; /* conf_resolvers.c; "default" always among them */
	size_t nresolvers;
	/* name -> position: every lookup by name is O(1), so reading and
	 * comparing files is linear in their size */
	struct util_hmap pool_index, listen_index;
	struct conf_cluster cluster;	 /* conf_cluster.c */
	struct conf_announce *announces; /* conf_announce.c */
	size_t nannounces;
	/* "FILE:LINE:COL: warning: ..." lines: valid, but likely not meant
	 * (a route that can never match); shown by sluice -c and logged */
	struct conf_errors warnings;
};

#endif
