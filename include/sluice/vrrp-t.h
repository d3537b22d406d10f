/* vrrp types: wire layouts of VRRPv2 / VRRPv3 adverts, decoded adverts, drop
 * reasons, and the pure state machine with the actions it asks its caller for.
 * Plain data: nothing here owns memory beyond the struct itself. */
#ifndef SLUICE_VRRP_T_H
#define SLUICE_VRRP_T_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sluice/util-t.h"

/* ---- wire ---------------------------------------------------------------- */

#define VRRP_IPPROTO 112	   /* RFC 9568 section 5.1.1.4 / 5.1.2.3 */
#define VRRP_TTL 255		   /* RFC 9568 section 5.1.1.3 / 5.1.2.2 */
#define VRRP_TYPE_ADVERT 1	   /* RFC 9568 section 5.2.2: the only type */
#define VRRP_MCAST_V4 0xe0000012u  /* 224.0.0.18 in host order, RFC 9568 section 5.1.1.2 */
#define VRRP_HDR_LEN 8		   /* fixed header of both versions */
#define VRRP_V2_AUTH_LEN 8	   /* RFC 3768 section 5.3.10: authentication data */
#define VRRP_PRIO_STOP 0	   /* RFC 9568 section 5.2.4: master is leaving */
#define VRRP_PRIO_OWNER 255	   /* RFC 9568 section 5.2.4: address owner */
#define VRRP_V3_INTERVAL_MAX 4095  /* 12 bits of centiseconds, RFC 9568 section 5.2.7 */
#define VRRP_V2_INTERVAL_MAX_S 255 /* 8 bits of seconds, RFC 3768 section 5.3.7 */

/* Most addresses one advert may carry. 64 IPv6 addresses keep the advert
 * below the IPv6 minimum MTU (1280); more VIPs in one VRID is a
 * configuration mistake, and a peer sending more can never match our list. */
#define VRRP_MAX_ADDRS 64
/* Largest advert we encode or accept: v3 with VRRP_MAX_ADDRS IPv6 addresses. */
#define VRRP_PKT_MAX_LEN (VRRP_HDR_LEN + VRRP_MAX_ADDRS * 16)

/* VRRPv3 header, RFC 9568 section 5.1 (figure 2); followed by Count IPvX
 * addresses (4 bytes each for IPv4, 16 for IPv6, section 5.2.9).
 * All multi-byte fields in network order. */
struct vrrp_wire_v3 {
	uint8_t vers_type;	/* 5.2.1 version (high nibble, 3), 5.2.2 type (low, 1) */
	uint8_t vrid;		/* 5.2.3 Virtual Rtr ID, 1..255 */
	uint8_t priority;	/* 5.2.4 0 = master leaving, 255 = owner */
	uint8_t count;		/* 5.2.5 Count IPvX Addr */
	uint16_t rsvd_interval; /* 5.2.6 4 reserved bits (0 on send, ignored on
				 * receive) + 5.2.7 12-bit Max Adver Int, cs */
	uint16_t checksum;	/* 5.2.8 */
} __attribute__((packed));

/* VRRPv2 header, RFC 3768 section 5.1; followed by Count IP Addrs IPv4
 * addresses (5.3.9) and 8 bytes of authentication data (5.3.10). */
struct vrrp_wire_v2 {
	uint8_t vers_type;  /* 5.3.1 version 2, 5.3.2 type 1 */
	uint8_t vrid;	    /* 5.3.3 */
	uint8_t priority;   /* 5.3.4 */
	uint8_t count;	    /* 5.3.5 Count IP Addrs */
	uint8_t auth_type;  /* 5.3.6 we send and accept only 0 (no authentication) */
	uint8_t interval_s; /* 5.3.7 Adver Int, whole seconds */
	uint16_t checksum;  /* 5.3.8 over the VRRP message only */
} __attribute__((packed));

/* IPv4 pseudo-header (as for UDP/TCP, RFC 768) that keepalived sums into
 * VRRPv3 checksums; RFC 9568 section 5.2.8 sums none for IPv4. */
struct vrrp_pseudo4 {
	struct in_addr src;
	struct in_addr dst;
	uint8_t zero;
	uint8_t proto; /* VRRP_IPPROTO */
	uint16_t len;  /* VRRP message length, network order */
} __attribute__((packed));

/* IPv6 pseudo-header, RFC 8200 section 8.1, required by RFC 9568 section
 * 5.2.8 for VRRPv3 over IPv6. */
struct vrrp_pseudo6 {
	struct in6_addr src;
	struct in6_addr dst;
	uint32_t len; /* upper-layer packet length, network order */
	uint8_t zero[3];
	uint8_t next_header; /* VRRP_IPPROTO */
} __attribute__((packed));

/* An IPv4 or IPv6 address without port; family 0 means unset. Compared
 * byte-wise in network order, which is numeric order (the RFC tie-break). */
struct vrrp_addr {
	sa_family_t family; /* AF_INET, AF_INET6 or 0 */
	union {
		struct in_addr in4;
		struct in6_addr in6;
	} u;
};

/* Which checksum a v3 IPv4 advert carries (decode reports, encode takes). */
enum vrrp_csum_form {
	VRRP_CSUM_RFC = 0,	      /* over the VRRP message only: RFC 9568 IPv4,
				       * and always for v2 */
	VRRP_CSUM_PSEUDO,	      /* pseudo-header with the real destination:
				       * keepalived, and always for IPv6 */
	VRRP_CSUM_PSEUDO_OLD_UNICAST, /* unicast advert whose pseudo-header holds
				       * 224.0.0.18 (old keepalived): accepted,
				       * never sent */
};

/* An advertisement, decoded from or to be encoded to the wire. */
struct vrrp_advert {
	uint8_t version;			/* 2 or 3 */
	uint8_t vrid;				/* 1..255 */
	uint8_t priority;			/* 0..255 */
	uint16_t interval_cs;			/* Max Adver Int in centiseconds; v2 carries
						 * whole seconds so a multiple of 100 */
	enum vrrp_csum_form csum_form;		/* decode: the form that matched */
	uint8_t naddr;				/* 1..VRRP_MAX_ADDRS */
	struct vrrp_addr addrs[VRRP_MAX_ADDRS]; /* all of one family */
};

/* What the I/O layer read from the IP header and ancillary data. */
struct vrrp_rx_info {
	sa_family_t family;   /* AF_INET or AF_INET6 */
	uint8_t ttl;	      /* IPv4 TTL or IPv6 hop limit */
	struct vrrp_addr src; /* IP source */
	struct vrrp_addr dst; /* IP destination (multicast or unicast) */
};

/* What this virtual router expects of an advert. */
struct vrrp_pkt_expect {
	uint8_t version; /* 2 or 3 */
	uint8_t vrid;
	uint16_t v2_interval_cs;      /* v2 only: our interval; RFC 3768 section
				       * 7.1 drops a mismatch (as keepalived does);
				       * 0 skips the check */
	const struct vrrp_addr *vips; /* NULL skips the VIP list comparison */
	size_t nvips;
};

/* Why a received packet was dropped; VRRP_DROP_NONE means accepted.
 * Stable: the daemon counts drops per reason under vrrp_drop_reason_name(). */
enum vrrp_drop {
	VRRP_DROP_NONE = 0,
	VRRP_DROP_FAMILY,	     /* caller gave neither AF_INET nor AF_INET6 */
	VRRP_DROP_TTL,		     /* TTL / hop limit is not 255 */
	VRRP_DROP_TRUNCATED,	     /* shorter than the header or its addresses */
	VRRP_DROP_VERSION,	     /* not 2/3, not the expected one, or v2 on IPv6 */
	VRRP_DROP_TYPE,		     /* not an advertisement */
	VRRP_DROP_VRID,		     /* another virtual router */
	VRRP_DROP_ADDR_COUNT,	     /* 0 or more than VRRP_MAX_ADDRS */
	VRRP_DROP_LENGTH,	     /* longer than the header and addresses */
	VRRP_DROP_AUTH,		     /* v2 authentication type other than 0 */
	VRRP_DROP_CHECKSUM,	     /* no accepted checksum form matches */
	VRRP_DROP_INTERVAL,	     /* advert interval 0 */
	VRRP_DROP_INTERVAL_MISMATCH, /* v2 interval differs from ours */
	VRRP_DROP_ADDR_LIST,	     /* VIP list differs from the configured one */
	VRRP_DROP_NR		     /* number of values, for counter arrays */
};

/* ---- state machine ------------------------------------------------------- */

#define VRRP_NEVER UINT64_MAX /* a deadline that is not armed */
/* A new master repeats its gratuitous ARPs this long after taking over
 * (keepalived's garp_master_delay): clients that missed the first burst. */
#define VRRP_GARP_REPEAT_MS 5000

/* RFC 9568 section 6.4 states, plus FAULT (link down) as keepalived. */
enum vrrp_state {
	VRRP_STATE_INIT = 0,
	VRRP_STATE_BACKUP,
	VRRP_STATE_MASTER,
	VRRP_STATE_FAULT,
};

/* Why the state changed; vrrp_fsm fills a human text next to it. */
enum vrrp_reason {
	VRRP_REASON_STARTUP = 0,    /* INIT -> BACKUP */
	VRRP_REASON_OWNER,	    /* -> MASTER at once with priority 255 */
	VRRP_REASON_MASTER_DOWN,    /* BACKUP -> MASTER: no advert in time */
	VRRP_REASON_MASTER_STOPPED, /* BACKUP -> MASTER after a priority 0 */
	VRRP_REASON_PREEMPT,	    /* BACKUP -> MASTER over a lower priority */
	VRRP_REASON_HIGHER_PRIO,    /* MASTER -> BACKUP */
	VRRP_REASON_HIGHER_ADDR,    /* MASTER -> BACKUP, equal priority */
	VRRP_REASON_SHUTDOWN,	    /* -> INIT */
	VRRP_REASON_LINK_DOWN,	    /* -> FAULT */
	VRRP_REASON_LINK_UP,	    /* FAULT -> BACKUP or MASTER */
};

/* What the caller (the I/O layer) must do, in list order. */
enum vrrp_action_type {
	VRRP_ACT_SEND_ADVERT = 0, /* send an advert with action.priority */
	VRRP_ACT_ADD_VIPS,	  /* add the VIPs to the interface */
	VRRP_ACT_DEL_VIPS,	  /* remove them (idempotent: may be absent) */
	VRRP_ACT_SEND_GARP,	  /* one burst of gratuitous ARPs / unsolicited
				   * NAs for the VIPs (keepalived sends 5) */
	VRRP_ACT_STATE,		  /* state changed: notify, log, count */
};

#define VRRP_REASON_TEXT_LEN 96
#define VRRP_ACTIONS_MAX 8

struct vrrp_action {
	enum vrrp_action_type type;
	uint8_t priority;		 /* SEND_ADVERT: priority to advertise */
	enum vrrp_state old_state;	 /* STATE */
	enum vrrp_state new_state;	 /* STATE */
	enum vrrp_reason reason;	 /* STATE */
	char text[VRRP_REASON_TEXT_LEN]; /* STATE: e.g. "master down timer expired" */
};

/* Filled by every input of the machine; actions before a STATE action are
 * done in the old state, those after it in the new one. */
struct vrrp_actions {
	unsigned n;
	struct vrrp_action a[VRRP_ACTIONS_MAX];
};

/* Configuration of one virtual router's machine; copied into vrrp_fsm. */
struct vrrp_fsm_config {
	uint8_t version;	   /* 2 or 3; v2 never adopts a peer's interval */
	uint8_t priority;	   /* 1..255, 255 = address owner */
	uint16_t adver_int_cs;	   /* Advertisement_Interval, centiseconds:
				    * v3 1..4095, v2 a multiple of 100 */
	bool preempt;		   /* Preempt_Mode */
	uint64_t preempt_delay_ms; /* 0: preempt as soon as the master is late */
	struct vrrp_addr primary;  /* our source address, breaks priority ties */
	uint64_t garp_repeat_ms;   /* second GARP burst after a takeover: 0 means
				    * VRRP_GARP_REPEAT_MS, VRRP_NEVER none */
};

/* One virtual router's state machine (RFC 9568 section 6.4). Owned by the
 * caller, usually embedded in its VRRP instance; no pointers inside. */
struct vrrp_fsm {
	struct vrrp_fsm_config cfg;
	enum vrrp_state state;
	uint8_t priority; /* effective priority (tracking applied) */
	bool link_up;
	/* The current master as last heard (ourselves when MASTER). */
	struct vrrp_addr master_addr;
	uint8_t master_prio;
	uint16_t master_adver_int_cs; /* Master_Adver_Interval */
	/* Absolute deadlines in monotonic ms, VRRP_NEVER when not armed. */
	uint64_t adver_at_ms;	      /* MASTER: Adver_Timer */
	uint64_t garp_at_ms;	      /* MASTER: repeat of the takeover GARPs */
	uint64_t down_at_ms;	      /* BACKUP: Master_Down_Timer */
	uint64_t preempt_at_ms;	      /* BACKUP: end of the preempt delay, armed
				       * by the first lower-priority advert; not a
				       * wake-up, read when the next advert comes */
	enum vrrp_reason down_reason; /* BACKUP: why Master_Down_Timer would fire */
};

/* ---- I/O layer (vrrp_io.c): one running virtual router ------------------ */

#define VRRP_NAME_MAX 64
#define VRRP_IFNAME_MAX 16 /* IF_NAMESIZE */
#define VRRP_MAX_PEERS 16
#define VRRP_MAX_TRACKS 16

/* One VIP and where it goes. */
struct vrrp_vip {
	struct vrrp_addr addr;
	uint8_t prefixlen;
	char dev[VRRP_IFNAME_MAX]; /* empty: the instance's interface */
};

/* A tracked thing: an interface the instance watches itself, or an
 * external one (a pool) whose state the caller reports. */
enum vrrp_track_kind {
	VRRP_TRACK_INTERFACE,
	VRRP_TRACK_EXTERNAL,
};

struct vrrp_track {
	enum vrrp_track_kind kind;
	char name[VRRP_NAME_MAX]; /* interface or the caller's name */
	uint8_t weight;		  /* subtracted from the priority while down */
};

/* Settings of one instance. Plain data without pointers, zero-filled before
 * it is set, so memcmp() tells whether a reload changed anything. */
struct vrrp_instance_config {
	char name[VRRP_NAME_MAX];
	char ifname[VRRP_IFNAME_MAX];
	uint8_t version, vrid, priority;
	uint16_t adver_int_cs;
	bool preempt;
	uint64_t preempt_delay_ms;
	struct vrrp_vip vips[VRRP_MAX_ADDRS];
	size_t nvips;
	struct vrrp_addr peers[VRRP_MAX_PEERS]; /* none: multicast */
	size_t npeers;
	struct vrrp_track tracks[VRRP_MAX_TRACKS];
	size_t ntracks;
	uint32_t garp_repeat;	       /* announcements per VIP per burst */
	uint64_t garp_delay_ms;	       /* second burst after takeover; 0: none */
	uint64_t garp_refresh_ms;      /* periodic burst while master; 0: none */
	char notify[256];	       /* script run with NAME STATE; empty: none */
	enum vrrp_csum_form csum_form; /* v3 IPv4 sends: RFC or PSEUDO */
	/* where to count how late each advert is sent after its due time
	 * (owned by the caller, outlives the instance); NULL: nowhere */
	struct util_lathist *late_adverts;
};

/* Drops the I/O layer decides on top of the codec's. */
enum vrrp_io_drop {
	VRRP_IODROP_DEST = 0, /* not to 224.0.0.18 / ff02::12 (multicast mode) or
			       * not to us (unicast mode) */
	VRRP_IODROP_PEER,     /* unicast mode: source is not a configured peer */
	VRRP_IODROP_OWNER,    /* priority 255 from a source that owns no VIP */
	VRRP_IODROP_SHORT,    /* IP header unreadable */
	VRRP_IODROP_NR
};

/* Which checksum form a peer uses, as last seen. */
struct vrrp_peer_seen {
	struct vrrp_addr addr;
	enum vrrp_csum_form form;
	uint8_t version, priority;
	uint64_t adverts;
	uint64_t last_ms; /* monotonic */
};

/* What `show vrrp` prints. */
struct vrrp_status {
	const char *name, *ifname;
	enum vrrp_state state;
	bool left; /* `vrrp leave`: out of the election until `vrrp join` */
	uint8_t version, vrid, base_priority, priority;
	uint16_t adver_int_cs, master_adver_int_cs;
	struct vrrp_addr primary, master;
	uint8_t master_priority;
	bool multicast;
	enum vrrp_csum_form csum_form;
	uint64_t adverts_sent, adverts_rcvd, send_errors, transitions, garps_sent;
	uint64_t drops[VRRP_DROP_NR];
	uint64_t io_drops[VRRP_IODROP_NR];
	uint64_t last_transition_wall_ms; /* 0: never */
	char last_reason[VRRP_REASON_TEXT_LEN];
	size_t npeers_seen;
	struct vrrp_peer_seen peers_seen[VRRP_MAX_PEERS];
	size_t ntracks;
	struct {
		char name[VRRP_NAME_MAX];
		enum vrrp_track_kind kind;
		uint8_t weight;
		bool up;
	} tracks[VRRP_MAX_TRACKS];
};

#endif
