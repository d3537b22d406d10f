/* proxy internals shared by engine.c (workers, listeners, accept),
 * session.c (connect, retries, queue, timers, end of connection) and
 * relay.c (moving bytes: buffers and splice). Only src/proxy includes it. */
#ifndef SLUICE_PROXY_INT_H
#define SLUICE_PROXY_INT_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sluice/guard-t.h"
#include "sluice/krelay.h"
#include "sluice/list.h"
#include "sluice/log-t.h"
#include "sluice/pool-t.h"
#include "sluice/proxy-t.h"
#include "sluice/qsbr.h"
#include "sluice/util-t.h"

#define PROXY_BUF_SLACK 128 /* room to prepend a PROXY header */
#define PROXY_PIPE_SIZE (256 * 1024)

/* A relay buffer; from the worker's pool, owned by one direction while it
 * holds data. */
struct proxy_buf {
	struct proxy_buf *next; /* free list */
	char data[];
};

/* A pipe for splice(); from the worker's pool while it holds data. */
struct proxy_pipe {
	struct proxy_pipe *next;
	int fd[2];
	uint32_t size; /* capacity: what it counts against bufmem while out */
};

/* What a relay step did. An error names the side whose socket failed, so
 * it means the same whichever direction the step was moving. */
enum proxy_io {
	PROXY_IO_AGAIN,	     /* nothing more now: would block, or done for this event */
	PROXY_IO_FULL,	     /* a read filled the space it had: more may be waiting */
	PROXY_IO_SHORT,	     /* a read got less: the socket is most likely drained */
	PROXY_IO_EOF,	     /* a read saw the end of the stream */
	PROXY_IO_FLUSHED,    /* everything pending was written */
	PROXY_IO_CLIENT_ERR, /* the client's socket failed (errno set) */
	PROXY_IO_SERVER_ERR, /* the server's socket failed (errno set) */
	PROXY_IO_NO_MEMORY,  /* bytes wait and there is no buffer: bufmem or malloc */
	PROXY_IO_BROKEN,     /* the kernel relay repeated bytes: the stream cannot go on */
};

/* One direction of a connection: bytes read from one fd, to be written to
 * the other. Holds a buffer or a pipe only while bytes are in flight. */
struct proxy_dir {
	struct proxy_buf *buf;
	uint32_t off, len;
	struct proxy_pipe *pipe;
	uint32_t in_pipe;
	bool splice;	/* bulk seen: move bytes with splice() */
	bool eof;	/* read side saw FIN */
	bool shut;	/* FIN passed on: shutdown(SHUT_WR) done */
	bool kwait;	/* kernel relay: the destination has not taken every
			 * redirected byte yet; nothing is written until it has */
	uint64_t bytes; /* read */
	uint64_t sent;	/* written */
};

enum proxy_state {
	PROXY_ST_HEADER, /* accept-proxy: reading the client's PROXY header */
	PROXY_ST_PEEK,	 /* routes: reading the ClientHello to pick the pool (peek.c) */
	PROXY_ST_QUEUED, /* waiting for a server slot */
	PROXY_ST_CONNECTING,
	PROXY_ST_RELAY,
	PROXY_ST_CLOSED, /* waiting to be freed after this loop iteration */
};

enum proxy_end {
	PROXY_END_CLIENT_CLOSED,
	PROXY_END_SERVER_CLOSED,
	PROXY_END_CLIENT_RESET,
	PROXY_END_SERVER_RESET,
	PROXY_END_IDLE_TIMEOUT,
	PROXY_END_CONNECT_FAILED,
	PROXY_END_NO_SERVER,
	PROXY_END_QUEUE_TIMEOUT,
	PROXY_END_QUEUE_FULL,
	PROXY_END_PROXY_HEADER,
	PROXY_END_PROXY_HEADER_TIMEOUT,
	PROXY_END_SHUTDOWN,
	PROXY_END_KILLED,	 /* the operator or on-down closed the server's connections */
	PROXY_END_REFUSED,	 /* the guard refused the client its PROXY header named */
	PROXY_END_LOCAL_ERROR,	 /* no descriptor, memory or port here to reach a server */
	PROXY_END_NO_MEMORY,	 /* no relay buffer: the bufmem ceiling or malloc */
	PROXY_END_HELLO_TIMEOUT, /* peek.c: no whole ClientHello in time */
	PROXY_END_BAD_HELLO,	 /* peek.c: a malformed ClientHello */
	PROXY_END_NOT_TLS,	 /* peek.c: not TLS, and no not-tls route */
	PROXY_END_NO_ROUTE,	 /* peek.c: no route matched, no default pool */
	PROXY_END_ERROR,
};

struct proxy_worker;
struct proxy_peek;

/* Kernel relay state of one direction (krelay_glue.c). */
struct proxy_kdir {
	uint64_t sent0;	    /* the direction's sent at insert: later writes are passed bytes */
	uint64_t acked0;    /* the destination's tcpi_bytes_acked at insert */
	uint64_t outq0;	    /* the destination's unacknowledged bytes at insert */
	uint64_t fwd_ok;    /* redirected bytes the destination is known to have taken */
	uint64_t taken;	    /* passed bytes written, as last told to the program */
	uint64_t bytes0;    /* the direction's bytes read at insert */
	uint64_t received0; /* the source socket's tcpi_bytes_received at insert */
};

/* A client connection and its server side. Owner: the worker that accepted
 * it; no other thread touches it. Embeds its watchers; freed after the loop
 * iteration in which it closed. */
struct proxy_session {
	struct proxy_worker *w;
	struct list_node link;	   /* worker's sessions */
	struct list_node qlink;	   /* worker's queue while queued */
	struct proxy_frontend *fe; /* reference */
	struct pool *pool;	   /* reference; NULL while a TLS route is not chosen yet */
	struct proxy_peek *peek;   /* owned, on a listener with routes (peek.c) */
	struct pool_server *srv;   /* acquired while connecting or relaying */
	ev_io cio, sio;
	ev_timer timer;
	int cfd, sfd;
	enum proxy_state state;
	enum proxy_end end;
	bool end_set;
	bool srv_up;	    /* the server connection is established (pool told): by the
			     * connect's completion or by traffic, never by the client */
	bool kwant;	    /* the listener asks for the kernel relay and the engine has it */
	bool kauto;	    /* relay auto: a connection that starts as bulk keeps splice() */
	uint64_t kreply_at; /* relay auto: c2s bytes + 1 when the first reply came */
	bool kernel;	    /* both sockets are in the kernel relay (kp valid) */
	bool kin;	    /* its sockets are watched for input too (bytes passed up) */
	bool kunwatch_c, kunwatch_s; /* until libev dropped the fd: see update_io */
	uint8_t hdr_len;	     /* PROXY header bytes at the front of c2s, unsent */
	uint8_t retries_left;
	uint32_t timeout_connect_ms, timeout_idle_ms, timeout_half_closed_ms;
	uint64_t start_ms, last_ms, deadline_ms;
	uint64_t kill_at_ms;	      /* 0, or when to close (server shutdown-sessions) */
	uint64_t connect_deadline_ms; /* of the current connect attempt */
	struct proxy_dir c2s, s2c;
	/* kernel relay (krelay_glue.c): direction 0 is c2s, 1 is s2c */
	struct krelay_pair kp;
	struct proxy_kdir kd[2];
	uint64_t kseen;	    /* the program's byte counts at the last idle look */
	uint64_t kinflight; /* the listener's cap */
	ev_timer ktimer;    /* polls a destination that has not taken everything */
	double kpoll_s;	    /* its next interval */
	struct util_addr client;
	struct util_addr dst; /* from an accept-proxy header; len 0 otherwise */
	struct pool_pick pick;
	struct guard_ticket ticket; /* given back to the guard at close */
};

/* A listening socket of one worker. Owned by the worker. */
struct proxy_wlistener {
	ev_io io;
	struct list_node link;
	struct proxy_frontend *fe; /* reference */
	uint64_t bind_id;
	bool paused;
	/* closing (lclose.c): on the worker's closing list */
	bool syn_quiet;	     /* no handshake pending at the last look */
	bool accept_blocked; /* accept4 is out of descriptors */
	uint64_t close_deadline_ms;
	struct sockaddr_storage local; /* its address (family 0: unknown) */
	int pending;		       /* handshakes seen at the last look, -1: could not look */
	struct log_ratelimit rl_limit; /* accepting stopped at the listener's maxconn */
};

enum proxy_cmd_type {
	PROXY_CMD_ATTACH, /* accept on fd for fe's bind bind_id */
	PROXY_CMD_DETACH, /* stop accepting on fe (bind_id 0: all its binds) */
	PROXY_CMD_CLOSE_ALL,
	PROXY_CMD_CLOSE_SERVER,
	PROXY_CMD_CLOSE_SOURCES, /* fe's connections from cidr */
	PROXY_CMD_EXIT,
};

struct proxy_cmd {
	enum proxy_cmd_type type;
	struct proxy_frontend *fe; /* reference for ATTACH / DETACH */
	struct pool_server *srv;   /* reference for CLOSE_SERVER */
	uint32_t spread_ms;	   /* CLOSE_SERVER: spread the closes over this window */
	struct util_cidr cidr;	   /* CLOSE_SOURCES */
	uint64_t bind_id;
	int fd;
	bool drain; /* DETACH: serve what waits in the accept queue first */
};

struct proxy_worker {
	struct proxy_engine *e;
	unsigned id;
	pthread_t thread;
	struct ev_loop *loop;
	ev_async async;
	ev_prepare prepare;
	ev_check check;
	ev_timer pause_timer; /* EMFILE back-off */
	struct qsbr_reader qs;
	uint64_t rng;
	/* commands from the control thread */
	pthread_mutex_t cmd_lock;
	struct proxy_cmd *cmds;
	size_t ncmds, cmd_cap;
	_Atomic bool kick_resume; /* another worker freed a connection slot */
	_Atomic bool kick_queue;  /* a server slot freed in a pool with queued clients */
	_Atomic uint32_t nqueued;
	/* owned */
	struct list_node listeners;
	struct list_node closing; /* listeners closing: see lclose.c */
	ev_timer lclose_timer;
	struct list_node sessions;
	struct list_node queue;
	struct list_node dead; /* closed, freed in the next prepare */
	struct proxy_buf *free_bufs;
	uint32_t nfree_bufs;
	struct proxy_pipe *free_pipes;
	uint32_t nfree_pipes, pipes_out;
	/* memory after a burst (relay.c proxy_worker_after_close) */
	uint32_t nsessions, peak_sessions; /* open now; most since the last trim */
	ev_timer trim_timer;
	bool emfile_paused;
	bool in_queue_retry, queue_retry_again;
	struct log_ratelimit rl_accept;
	struct log_ratelimit rl_refused; /* guard refusals */
	struct log_ratelimit rl_local;	 /* connects that failed for a local reason */
	struct log_ratelimit rl_limit;	 /* accepting stopped at the global maxconn */
	struct log_ratelimit rl_bufmem;	 /* the relay memory ceiling refused */
	/* kernel relay (krelay_glue.c): an epoll set of the sockets in the
	 * kernel relay, edge-triggered, watched by kep_io; -1 until the first */
	int kep;
	ev_io kep_io;
	ev_io kring_io;		       /* this worker's note ring (sluice/krelay.h) */
	struct proxy_session **kslots; /* direction slot -> session, this worker's */
};

struct proxy_engine {
	struct proxy_engine_conf conf;
	struct qsbr *qsbr;
	struct proxy_worker *workers;
	unsigned nworkers;
	bool started;
	_Atomic uint32_t cur_conns;
	_Atomic uint64_t total_conns;
	_Atomic uint64_t maxconn_reached;   /* times accepting stopped at the global maxconn */
	_Atomic uint64_t bufmem_used;	    /* relay buffers (cached too) and pipes out, bytes */
	_Atomic uint64_t no_memory;	    /* connections closed with end=no-memory */
	_Atomic uint64_t paused_workers;    /* bit per worker paused at global maxconn */
	_Atomic uint32_t closing_listeners; /* all workers: still serving handshakes */
	_Atomic uint32_t detaching;	    /* DETACH commands with drain not handled yet */
	struct krelay *_Atomic krelay;	    /* kernel relay; NULL until core loads it */
	_Atomic uint64_t krelay_conns;	    /* connections put in the kernel relay */
	_Atomic uint64_t krelay_fallbacks;  /* asked for it, stayed in user space */
	_Atomic uint64_t krelay_broken;	    /* streams reset: the kernel relay lost their bytes */
	_Atomic uint64_t krelay_cut;	    /* repeated segment heads the program cut off */
};

/* engine.c */
void proxy_worker_slot_freed(struct proxy_worker *w, struct proxy_frontend *fe);
void proxy_worker_queue_kick(struct proxy_worker *w);

/* lclose.c: stop wl taking new clients (new SYNs are dropped, so they are
 * refused once the socket closes), keep serving the handshakes the kernel
 * already answered, and close it when none is left; wl moves from the
 * worker's listeners to its closing list. */
void proxy_lclose_start(struct proxy_worker *w, struct proxy_wlistener *wl);
/* Close every closing listener of w now. */
void proxy_lclose_abort(struct proxy_worker *w);

/* engine.c: ask fe's guard about a client (accepted on fd, or whose PROXY
 * header named it): true when admitted, with *tk to give back at close;
 * false when refused, which is counted and logged (rate-limited), and the
 * caller closes the connection at once. */
bool proxy_guard_admit(struct proxy_worker *w, struct proxy_frontend *fe,
		       const struct util_addr *client, struct guard_ticket *tk);

/* session.c: tk is what the guard admitted the client with (NULL: nothing). */
void proxy_session_start(struct proxy_worker *w, struct proxy_frontend *fe, int fd,
			 const struct util_addr *client, const struct guard_ticket *tk);
void proxy_session_close(struct proxy_session *s, enum proxy_end end);
void proxy_session_retry_queue(struct proxy_worker *w);
void proxy_session_free(struct proxy_session *s);
void proxy_session_update_io(struct proxy_session *s);
/* Relay what can move now with no socket event (a timer's turn). */
void proxy_session_relay(struct proxy_session *s);
/* Close s at now + delay_ms (0: at once), if it uses srv. */
void proxy_session_kill_at(struct proxy_session *s, uint64_t delay_ms);

/* The pool is chosen (peek.c): count the connection and connect. */
void proxy_session_routed(struct proxy_session *s);
/* No buffer for bytes that wait (the bufmem ceiling or malloc, which
 * logged why): count it and close s with end=no-memory. */
void proxy_session_no_memory(struct proxy_session *s);

/* peek.c: TLS routing, called from session.c's marked hooks. new: at
 * accept on a listener with routes (settings st), before anything else;
 * returns -1 on no memory. begin: start waiting for the ClientHello (after
 * a PROXY header, if any). read: the client is readable in PROXY_ST_PEEK.
 * timeout: its timer fired in PROXY_ST_PEEK. end: the session closes
 * (after its log line). log_tail: " sni=... alpn=..." for the log line, or
 * "" on a listener without routes. read and timeout may close s. */
int proxy_peek_new(struct proxy_session *s, const struct proxy_fe_settings *st);
void proxy_peek_begin(struct proxy_session *s);
void proxy_peek_read(struct proxy_session *s);
void proxy_peek_timeout(struct proxy_session *s);
void proxy_peek_end(struct proxy_session *s);
const char *proxy_peek_log_tail(const struct proxy_session *s);
/* engine.c frees settings: their routes' references (peek.c). */
void proxy_peek_settings_free(struct proxy_fe_settings *st);

/* relay.c: move what can move in direction d (c2s or s2c of s): write what
 * is pending, pass a FIN on, and read when may_read (the source socket
 * reported readable). Returns PROXY_IO_AGAIN when it would block or is
 * done, PROXY_IO_CLIENT_ERR / PROXY_IO_SERVER_ERR when that side's socket
 * failed (errno set), PROXY_IO_NO_MEMORY when bytes wait and no buffer can
 * be had. */
enum proxy_io proxy_relay(struct proxy_session *s, struct proxy_dir *d, bool may_read);
void proxy_dir_release(struct proxy_worker *w, struct proxy_dir *d);
/* Read once into d while its destination is not connected yet. Returns
 * PROXY_IO_AGAIN (end of stream sets d->eof), the side's error (errno set)
 * or PROXY_IO_NO_MEMORY. */
enum proxy_io proxy_relay_read_only(struct proxy_session *s, struct proxy_dir *d, int from);
/* A relay buffer, or NULL when bufmem or malloc says no. */
struct proxy_buf *proxy_buf_get(struct proxy_worker *w);
void proxy_buf_put(struct proxy_worker *w, struct proxy_buf *b);
void proxy_worker_pools_free(struct proxy_worker *w);
/* A session of w closed: when a burst is over (sessions down to an eighth
 * of their peak), give the cached buffers and pipes and the allocator's
 * free memory back to the system a second later. */
void proxy_worker_after_close(struct proxy_worker *w);
void proxy_worker_trim_init(struct proxy_worker *w);

/* krelay_glue.c: the kernel relay of one session (struct proxy_kdir).
 * Try to move an established, quiet session into the kernel relay; on
 * failure it stays in user space for good. */
void proxy_krelay_try(struct proxy_session *s);
/* May d write (or pass its FIN on) now? False while the destination has
 * not taken every byte the program redirected: user-space bytes written
 * earlier would overtake them; a 1 ms timer looks again. */
bool proxy_krelay_may_write(struct proxy_session *s, struct proxy_dir *d);
/* recv() said end of stream: true when it is, false while bytes the
 * program passed up have not reached the socket's queue yet (the kernel
 * still holds them); a timer looks again. */
bool proxy_krelay_eof_ok(struct proxy_session *s, struct proxy_dir *d);
/* At d's end of stream: false when the bytes relayed since the insert (the
 * program's redirects and user space's reads) differ from what the source
 * socket received, or the program dropped some; the stream is broken then,
 * counted and logged, and the caller resets both sides. */
bool proxy_krelay_stream_ok(struct proxy_session *s, struct proxy_dir *d);
/* The program dropped bytes of s (logged and counted): true. Kernel relay only. */
bool proxy_krelay_lost(struct proxy_session *s);
/* After user space wrote passed bytes: tell the program (order, cap). */
void proxy_krelay_wrote(struct proxy_session *s);
/* Idle timer: true when the program moved bytes since the last look. */
bool proxy_krelay_active(struct proxy_session *s);
/* The session closes: count the program's bytes into c2s / s2c and take
 * the pair out. */
void proxy_krelay_end(struct proxy_session *s);
void proxy_krelay_init(struct proxy_session *s);
/* Come back to s at the next loop iteration (bytes were left unread). */
void proxy_krelay_again(struct proxy_session *s);
void proxy_krelay_worker_init(struct proxy_worker *w);
void proxy_krelay_worker_free(struct proxy_worker *w);

#endif
