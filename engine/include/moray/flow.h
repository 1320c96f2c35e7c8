/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-worker flow table keyed by a normalised 5-tuple (IPv4 and IPv6).
 * Capacity fixed at creation; a deadline per SMTP phase on a timer wheel
 * (RFC 5321 §4.5.3.2 defaults, a minimum data rate in DATA); eviction under
 * pressure in class order: half-open, idle pre-DATA, slow DATA, moving DATA
 * last, the most-connected source first within a class; a half-open budget;
 * per-source caps and top talkers; an emergency mode that shortens deadlines
 * (DESIGN.md, "Floods"). Per-source counts are exact because the dispatcher
 * hashes the IP pair (DESIGN.md, "Worker choice").
 */
#ifndef MORAY_FLOW_H
#define MORAY_FLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "moray/common.h"
#include "moray/decode.h"
#include "moray/tcp_reasm.h"

/*
 * SMTP phase of a flow; each has its own deadline (RFC 5321 §4.5.3.2 gives
 * the server-side minimums the defaults follow). The table arms them as
 * follows:
 *  - every phase: from phase entry, and again from each mry_flow_rearm();
 *    activity (mry_flow_touch()) never extends a deadline, so retransmitted
 *    SYNs, bare ACKs or a partial-line trickle cannot keep a flow alive;
 *  - DATA: phase entry + data timeout, moved later by mry_flow_data_progress()
 *    by nbytes / min_data_rate seconds, never past now + data timeout.
 *
 * The engine drives the phases from the SMTP parser's events (smtp.h, enum
 * mry_smtp_phase_event; engine/src/msg.c smtp_phase()), like Postfix's
 * smtpd_timeout, which bounds each wait for the other side (a request, a
 * reply), and smtpd_per_record_deadline/smtpd_min_data_rate, which bound a
 * whole transfer rather than the gaps in it:
 *  - the handshake's end enters GREETING (5 min, §4.5.3.2.1): only the
 *    server's first reply ends it; a client speaking first does not;
 *  - the greeting enters CMD (5 min, §4.5.3.2.2-4, §4.5.3.2.7). Each
 *    complete command line with a known verb re-arms it (the client waits
 *    for the reply), and so does each reply to one (the server waits for
 *    the next command); bytes that do not complete a line, lines of garbage
 *    and the 500s they draw never do;
 *  - DATA parsed enters DATA_INIT (2 min, §4.5.3.2.5); replies to commands
 *    pipelined before it re-arm it (the wait for 354 starts when the server
 *    reaches DATA); a reply other than 354 returns to CMD;
 *  - 354 enters DATA (3 min, §4.5.3.2.6, at --min-data-rate); so does each
 *    BDAT chunk's octets, and between chunks the flow is in CMD with its
 *    message still open;
 *  - the end of data, forwarded (or held), enters DATA_END (10 min,
 *    §4.5.3.2.6): the server stores the message and the client waits for
 *    the final reply, which returns to CMD (or to DATA_INIT when the next
 *    transaction's DATA was pipelined after the end). Cutting this wait
 *    short would make the client send again a message the server may have
 *    taken (RFC 5321 §6.1), and a client cannot make it last longer than
 *    its server takes. A message moray rejects or tempfails itself returns
 *    to CMD at once. A flow HELD while moray has no usable database is never
 *    ended by its deadline (--hold-timeout is); the hold's end re-arms;
 *  - on a flow the parser does not read (not SMTP under --track-all-tcp,
 *    encrypted after STARTTLS) the first payload enters CMD and any payload
 *    re-arms it: command boundaries cannot be seen, the deadline is idle-only;
 *  - FIN or RST enters CLOSING (10 s).
 */
enum mry_flow_phase {
	MRY_FLOW_PHASE_HALF_OPEN = 0, /* SYN seen, no data yet (default 10 s) */
	MRY_FLOW_PHASE_GREETING,  /* waiting for the server's greeting (5 min) */
	MRY_FLOW_PHASE_CMD,       /* command phase, per command (5 min) */
	MRY_FLOW_PHASE_DATA_INIT, /* DATA sent, waiting for 354 (2 min) */
	MRY_FLOW_PHASE_DATA,      /* message bytes moving: DATA, a BDAT chunk (3 min) */
	MRY_FLOW_PHASE_DATA_END,  /* end of data sent, waiting for the final reply (10 min) */
	MRY_FLOW_PHASE_CLOSING,   /* FIN or RST seen (10 s) */
	MRY_FLOW_PHASE_MAX,
};

enum mry_flow_end_reason {
	MRY_FLOW_END_CLOSED = 0,  /* both FINs or RST, released by the engine */
	MRY_FLOW_END_TIMEOUT,     /* deadline of its phase passed */
	MRY_FLOW_END_EVICTED,     /* table or half-open budget full, this one was
				   * chosen: mry_flow_evict_class() says why */
	MRY_FLOW_END_SHUTDOWN,    /* table destroyed / flushed */
	MRY_FLOW_END_BLOCKED,     /* source blocklisted: mry_flow_end() */
};

/*
 * Eviction classes, in the order they are taken from under pressure. A
 * flow with MRY_FLOW_F_HELD is in none of them.
 */
enum mry_flow_evict_class {
	MRY_FLOW_EVICT_HALF_OPEN = 0, /* HALF_OPEN */
	MRY_FLOW_EVICT_IDLE,          /* GREETING, CMD, DATA_INIT, DATA_END, CLOSING */
	MRY_FLOW_EVICT_DATA_SLOW,     /* DATA, behind min_data_rate */
	MRY_FLOW_EVICT_DATA_MOVING,   /* DATA, keeping up: a real message */
	MRY_FLOW_EVICT_MAX,
};

/* flow flags */
#define MRY_FLOW_F_MIDSTREAM   0x01u  /* start never seen */
#define MRY_FLOW_F_CLIENT_KNOWN 0x02u /* client side identified (SYN or server port) */
#define MRY_FLOW_F_EVASION     0x04u  /* an evasion was seen on this flow */
#define MRY_FLOW_F_HELD        0x08u  /* on the hold ring (never evicted) */

/* Normalised key: side 0 is the lower (address, port) pair. */
struct mry_flow_key {
	uint8_t addr[2][16];
	uint16_t port[2];
	uint8_t ip_version;
	uint8_t pad[3];
};

struct mry_flow_node;  /* table-private links: bucket chain, timer, LRU */

struct mry_flow {
	/* hot: first cache line (lookup compares hash then key; pinned by
	 * static_assert in flow_table.c) */
	uint32_t hash;
	uint8_t phase;             /* enum mry_flow_phase */
	uint8_t flags;             /* MRY_FLOW_F_* */
	uint8_t client_side;       /* normalised side index (0/1) of the client */
	uint8_t app_flags;         /* free for the engine */
	struct mry_flow_key key;
	uint64_t last_ns;          /* last activity */
	void *app;                 /* engine's session state (owned by the engine) */
	/* second cache line */
	uint16_t in_port[2];       /* port each side's packets arrive on */
	uint32_t pkts[2];
	/* per direction, indexed by sending side (normalised) */
	struct mry_tcp_stream stream[2];
};

/* Defaults (mry_flow_config_defaults()); why each is what it is in flow_table.c. */
#define MRY_FLOW_MAX_DEFAULT              65536u
#define MRY_FLOW_PER_SOURCE_DEFAULT       256u
#define MRY_FLOW_MIN_DATA_RATE_DEFAULT    500u   /* bytes/s, Postfix smtpd_min_data_rate */
#define MRY_FLOW_EMERGENCY_HIGH_DEFAULT   80u
#define MRY_FLOW_EMERGENCY_LOW_DEFAULT    60u
#define MRY_FLOW_EMERGENCY_TIMEOUT_DEFAULT 20u
#define MRY_FLOW_EVICT_SAMPLE             8u     /* candidates looked at per eviction */
#define MRY_FLOW_DATA_GRACE_NS            (5 * MRY_NS_PER_SEC)

/*
 * Zero in max_flows, max_half_open, timeout_ns[], expire_budget and the
 * emergency percentages means "default". Zero in max_per_source (unlimited)
 * and min_data_rate (DATA deadline idle-only) is a setting: their defaults
 * come from mry_flow_config_defaults() or a NULL config.
 *
 * Defaults, and why:
 *  - deadlines follow RFC 5321 §4.5.3.2 (greeting 5 min, commands 5, DATA
 *    initiation 2, data block 3, final reply 10), armed per SMTP event as the
 *    comment of enum mry_flow_phase says (Postfix smtpd_timeout per wait,
 *    smtpd_min_data_rate per transfer); half-open 10 s because a handshake
 *    takes a round trip, a spoofed SYN must not hold a slot long; closing 10 s;
 *  - min_data_rate 500 B/s after Postfix smtpd_min_data_rate (its default):
 *    a trickle ends, a sender on any real link never notices;
 *  - max_per_source 256: real MTAs reuse connections and open few at once
 *    (Postfix smtpd_client_connection_count_limit defaults to 50 per
 *    client, its default_destination_concurrency_limit is 20); 256 leaves
 *    room for large senders and NATs and still stops one source from
 *    taking a 65,536-flow table;
 *  - max_half_open max_flows / 4: a SYN flood churns within a quarter of
 *    the table and never evicts an established flow;
 *  - emergency mode at 80 % use, off below 60 %, deadlines cut to 20 %
 *    (Postfix stress mode cuts smtpd_timeout from 300 s to 10 s; Suricata's
 *    emergency timeouts are a few seconds).
 */
struct mry_flow_config {
	uint32_t max_flows;                        /* default 65536 */
	uint32_t max_per_source;                   /* flows not CLOSING; 0 = unlimited; default 256 */
	uint64_t timeout_ns[MRY_FLOW_PHASE_MAX];   /* defaults: 10, 300, 300, 120, 180, 600, 10 s */
	uint32_t expire_budget;                    /* flows examined per expire call, default 64 */
	uint32_t max_half_open;                    /* default max_flows / 4 (at least 1) */
	uint32_t min_data_rate;                    /* bytes/s credited per DATA byte; 0 = idle-only; default 500 */
	uint8_t emergency_high_pct;                /* enter at or above; default 80; > 100 disables */
	uint8_t emergency_low_pct;                 /* leave below; default 60 */
	uint8_t emergency_timeout_pct;             /* deadlines scaled to this share; default 20 */
	uint8_t pad;
};

struct mry_flow_stats {
	uint64_t created;
	uint64_t closed;
	uint64_t timeouts[MRY_FLOW_PHASE_MAX];
	uint64_t evicted_pre_data;                 /* evicted[HALF_OPEN] + evicted[IDLE] */
	uint64_t evicted_data;                     /* evicted[DATA_SLOW] + evicted[DATA_MOVING] */
	uint64_t table_full;                       /* no flow could be created */
	uint64_t per_source_limit;                 /* creation refused: source over cap */
	uint32_t active;
	uint32_t capacity;
	uint64_t timeout_held;                     /* deadline passed on a HELD flow: re-armed, not ended */
	uint64_t evicted[MRY_FLOW_EVICT_MAX];      /* per eviction class */
	uint64_t half_open_full;                   /* a new flow found the half-open budget full
						    * and evicted the oldest half-open flow */
	uint64_t timeout_data_slow;                /* DATA timeouts of flows active within the data
						    * timeout: ended by min_data_rate, not idleness */
	uint64_t emergency_entered;
	uint64_t emergency_exited;
	uint64_t emergency_shortened;              /* armed deadlines cut by emergency mode */
	/* gauges are 64-bit so the counter table can read them (moray/counters.h) */
	uint64_t open_by_phase[MRY_FLOW_PHASE_MAX]; /* gauge: open flows per phase (HELD included) */
	uint64_t sources;                          /* gauge: distinct sources with open flows */
	uint64_t half_open_budget;                 /* max_half_open in force */
	uint64_t pressure_pct;                     /* gauge: max(last pressure given, flow use) */
	uint64_t emergency;                        /* gauge: 1 while in emergency mode */
};

/*
 * Called for every flow leaving the table other than by mry_flow_release().
 * The table frees the slot when it returns: the callback releases what the
 * flow holds outside the table (its streams' buffered segments through
 * mry_tcp_stream_release(), its app state). It may call mry_flow_release()
 * on @f, but must not create flows or expire the table.
 */
typedef void (*mry_flow_end_fn)(void *ctx, struct mry_flow *f,
				enum mry_flow_end_reason why);

struct mry_flow_table;

struct mry_flow_table *mry_flow_table_create(const struct mry_alloc *a,
					     const struct mry_flow_config *cfg,
					     mry_flow_end_fn end_fn, void *ctx);
/** Ends every flow with MRY_FLOW_END_SHUTDOWN, then frees. */
void mry_flow_table_destroy(struct mry_flow_table *t);

/** Build the normalised key; *side receives the packet sender's side. */
void mry_flow_key_from_pkt(const struct mry_pkt *pkt, struct mry_flow_key *key,
			   uint8_t *side);
uint32_t mry_flow_key_hash(const struct mry_flow_key *key);

/** Lookup only. NULL when absent. Fast-path safe. */
struct mry_flow *mry_flow_lookup(struct mry_flow_table *t,
				 const struct mry_flow_key *key, uint32_t hash);

/**
 * Insert a new flow (caller checked it is absent). When the table is full,
 * evicts per the eviction order (ending the victim through end_fn). Returns
 * NULL when the per-source cap refuses it or nothing can be evicted
 * (counted). The new flow is zeroed except key/hash/last_ns, phase
 * HALF_OPEN. When max_half_open flows are half-open already, the oldest
 * half-open flow (most-connected source first among the oldest
 * MRY_FLOW_EVICT_SAMPLE) is evicted first, whatever room the table has:
 * half-open flows never push out flows of another class.
 */
struct mry_flow *mry_flow_create(struct mry_flow_table *t,
				 const struct mry_flow_key *key, uint32_t hash,
				 uint64_t now_ns);

/**
 * As mry_flow_create(), with the client side known (0 or 1, normalised side
 * index): sets client_side and MRY_FLOW_F_CLIENT_KNOWN, and counts the flow
 * against the client's address for max_per_source. mry_flow_create() counts
 * it against side 0's address (the lower one) because it cannot tell.
 */
struct mry_flow *mry_flow_create_client(struct mry_flow_table *t,
					const struct mry_flow_key *key,
					uint32_t hash, uint8_t client_side,
					uint64_t now_ns);

/**
 * Client side learnt after creation (e.g. from the server port): sets
 * client_side and MRY_FLOW_F_CLIENT_KNOWN and moves the flow's per-source
 * count to the client's address. Never refuses (the flow exists already).
 */
void mry_flow_set_client(struct mry_flow_table *t, struct mry_flow *f,
			 uint8_t client_side);

/**
 * Activity: refresh last_ns and the flow's place in its eviction class (least
 * recently active first). Does not move any deadline (see enum
 * mry_flow_phase). Fast-path safe.
 */
void mry_flow_touch(struct mry_flow_table *t, struct mry_flow *f, uint64_t now_ns);

/**
 * mry_flow_touch() that also adds @nbytes (TCP payload) to the flow's bytes
 * (summed per source by mry_flow_top_sources()). Fast-path safe: O(1), the
 * same cache lines as mry_flow_touch().
 */
void mry_flow_touch_bytes(struct mry_flow_table *t, struct mry_flow *f,
			  uint32_t nbytes, uint64_t now_ns);

/**
 * Change phase and arm the new phase's deadline from @now_ns (scaled while
 * in emergency mode). Setting the phase the flow already has changes
 * nothing (use mry_flow_rearm()). Entering DATA starts its rate clock and
 * counts the flow in its source's data_flows; leaving DATA uncounts it.
 */
void mry_flow_set_phase(struct mry_flow_table *t, struct mry_flow *f,
			enum mry_flow_phase phase, uint64_t now_ns);

/**
 * Arm the current phase's deadline again from @now_ns: the engine calls it
 * when the turn changes in CMD or DATA_INIT (a command line, a reply; see
 * enum mry_flow_phase) and when a hold ends. Any phase is accepted.
 */
void mry_flow_rearm(struct mry_flow_table *t, struct mry_flow *f, uint64_t now_ns);

/**
 * Message bytes moved in DATA: the deadline moves later by
 * @nbytes / min_data_rate seconds, never past @now_ns + data timeout
 * (min_data_rate 0: straight to now + data timeout). A trickle below the
 * rate therefore ends within about one data timeout of entering DATA; a
 * transfer at or above it never times out while it moves. Ignored outside
 * DATA (the bytes still count toward the flow's DATA rate only in DATA).
 * Fast-path safe.
 */
void mry_flow_data_progress(struct mry_flow_table *t, struct mry_flow *f,
			    uint64_t nbytes, uint64_t now_ns);

/*
 * Reclaiming another pool's objects (messages in progress, envelopes) when
 * it runs dry: the caller asks the table to end a flow that holds one,
 * through end_fn with MRY_FLOW_END_EVICTED, in eviction order and never
 * @keep (the flow asking).
 *
 * mry_flow_evict_slow_data(): a DATA flow behind min_data_rate (the slowest
 * of the least recently active, most-connected source first); within its
 * grace period, one silent for MRY_FLOW_RECLAIM_SILENT_NS whose rate so far
 * is below min_data_rate. A DATA flow that keeps up is never taken: a
 * moving message is not traded for a new one.
 *
 * mry_flow_evict_idle(): a pre-DATA flow idle for MRY_FLOW_IDLE_RECLAIM_NS
 * or more for which @holds says true (of the least recently active, the
 * most-connected source first).
 *
 * Both look at a bounded number of flows and return false when none fits.
 */
#define MRY_FLOW_IDLE_RECLAIM_NS (10 * MRY_NS_PER_SEC)
#define MRY_FLOW_RECLAIM_SILENT_NS (2 * MRY_NS_PER_SEC)
bool mry_flow_evict_slow_data(struct mry_flow_table *t, const struct mry_flow *keep,
			      uint64_t now_ns);
bool mry_flow_evict_idle(struct mry_flow_table *t, const struct mry_flow *keep,
			 bool (*holds)(void *ctx, const struct mry_flow *f), void *ctx,
			 uint64_t now_ns);

/** Absolute deadline currently armed for @f (ns, same clock as now_ns). */
uint64_t mry_flow_deadline(const struct mry_flow_table *t, const struct mry_flow *f);

/**
 * Class of the flow being evicted: valid inside end_fn called with
 * MRY_FLOW_END_EVICTED (the last eviction's class otherwise).
 */
enum mry_flow_evict_class mry_flow_evict_class(const struct mry_flow_table *t);
/** Stable lower-case name of a class ("half_open", "idle", "data_slow", "data_moving"). */
const char *mry_flow_evict_class_name(enum mry_flow_evict_class c);
/**
 * Stable lower-case name of a phase ("half_open", "greeting", "cmd",
 * "data_init", "data", "data_end", "closing").
 */
const char *mry_flow_phase_name(enum mry_flow_phase p);

/**
 * Pool pressure in percent (the fullest pool the caller watches); the table
 * takes the larger of it and its own flow use. At or above
 * emergency_high_pct the table enters emergency mode: every deadline armed
 * from then on is scaled to emergency_timeout_pct, and deadlines armed
 * before are shortened the same way progressively (mry_flow_expire() walks
 * expire_budget slots per call), so the whole table is cut within
 * max_flows / expire_budget expire calls. Below emergency_low_pct it
 * leaves: deadlines armed from then on are full again; ones already
 * shortened stay so. Control or fast path: O(1).
 */
void mry_flow_set_pressure(struct mry_flow_table *t, uint32_t pct, uint64_t now_ns);
/** True while in emergency mode. */
bool mry_flow_emergency(const struct mry_flow_table *t);

enum mry_flow_top_key {
	MRY_FLOW_TOP_FLOWS = 0,    /* open flows */
	MRY_FLOW_TOP_DATA_FLOWS,   /* open flows in DATA (messages in progress) */
	MRY_FLOW_TOP_BYTES,        /* payload bytes of open flows */
};

struct mry_flow_source {
	uint8_t addr[16];          /* 4 bytes used for IPv4 */
	uint8_t ip_version;
	uint32_t flows;            /* open flows not in CLOSING (the per-source count) */
	uint32_t data_flows;       /* flows in DATA: messages in progress */
	uint64_t bytes;            /* payload bytes of its open flows, CLOSING included */
};

/**
 * The top @n sources by @key, highest first (ties: more flows, then lower
 * address), into @out. Returns how many were written (at most @n, at most
 * the number of sources). Control path, on the table's own thread (it sums
 * per-flow bytes into the source entries): O(max_flows + sources x n), no
 * allocation.
 */
uint32_t mry_flow_top_sources(struct mry_flow_table *t,
			      enum mry_flow_top_key key, uint32_t n,
			      struct mry_flow_source *out);

/** Fill @cfg with every default (max_per_source 256, min_data_rate 500 ...). */
void mry_flow_config_defaults(struct mry_flow_config *cfg);

/** Remove and free without calling end_fn (the engine already cleaned up). */
void mry_flow_release(struct mry_flow_table *t, struct mry_flow *f);

/**
 * Advance the timer wheel; ends expired flows (end_fn TIMEOUT). Bounded by
 * expire_budget flows examined (and 16 x that many wheel slots) per call;
 * the rest is resumed by the next call. A flow ends at the first call at or
 * after its deadline (last_ns + its phase's timeout) rounded up to the wheel
 * tick, which is the shortest phase timeout / 8 (1.25 s by default). A flow
 * with MRY_FLOW_F_HELD is not ended: it is re-armed and counted in
 * timeout_held (the hold module owns its deadline).
 */
void mry_flow_expire(struct mry_flow_table *t, uint64_t now_ns);

/**
 * The earliest time at which mry_flow_expire() may end or re-arm a flow: the
 * start of the next wheel tick not yet visited (or now, when a visit was cut
 * short by the budget); UINT64_MAX when the table holds no flow. For replays
 * that advance a clock between packets (moray-scan).
 */
uint64_t mry_flow_next_deadline(const struct mry_flow_table *t);

/**
 * Current connection count from one source address (flows not in CLOSING:
 * what max_per_source compares with): the client's address
 * for flows created with mry_flow_create_client() or given
 * mry_flow_set_client(), else the side-0 (lower) address. @addr is 4 bytes
 * for IPv4, 16 for IPv6.
 */
uint32_t mry_flow_source_count(const struct mry_flow_table *t,
			       uint8_t ip_version, const uint8_t *addr);

/** Iterate over all flows (control path / shutdown). Return false from fn to stop. */
void mry_flow_foreach(struct mry_flow_table *t,
		      bool (*fn)(void *ctx, struct mry_flow *f), void *ctx);

/**
 * A walk in bounded steps (a blocklist sweep): visits at most @budget slots
 * from *@cursor (start at 0), calling @fn for each flow in use; @fn may end
 * (mry_flow_end()) or release the flow it is given, and returns false to
 * stop after it. *@cursor moves past every slot visited. A flow created
 * after the walk began may or may not be visited. Fast-path safe: O(@budget).
 * @return true when the walk has visited every slot (*@cursor at the end).
 */
bool mry_flow_walk(struct mry_flow_table *t, uint32_t *cursor, uint32_t budget,
		   bool (*fn)(void *ctx, struct mry_flow *f), void *ctx);

/**
 * End @f now, for a reason of the table's owner (@why, e.g.
 * MRY_FLOW_END_BLOCKED): end_fn is called with @why as for a deadline or an
 * eviction, then the slot is freed (unless end_fn released it).
 */
void mry_flow_end(struct mry_flow_table *t, struct mry_flow *f, enum mry_flow_end_reason why);

void mry_flow_get_stats(const struct mry_flow_table *t, struct mry_flow_stats *st);

/** Bytes the table uses per flow slot, including its index and timer overhead. */
size_t mry_flow_table_bytes_per_flow(const struct mry_flow_table *t);

#endif /* MORAY_FLOW_H */
