/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-worker flow table keyed by a normalised 5-tuple (IPv4 and IPv6).
 * Capacity fixed at creation; per-phase idle deadlines on a timer wheel;
 * eviction when full takes the oldest idle pre-DATA flow first and a flow
 * with a message in progress only when nothing else is left (DESIGN.md,
 * "Why" 2). Per-source connection counts are exact because the dispatcher
 * hashes the IP pair (DESIGN.md, "Worker choice").
 */
#ifndef MORAY_FLOW_H
#define MORAY_FLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "moray/common.h"
#include "moray/decode.h"
#include "moray/tcp_reasm.h"

/* Timer class of a flow; each has its own idle deadline. */
enum mry_flow_phase {
	MRY_FLOW_PHASE_SYN = 0,   /* handshake seen, no data yet */
	MRY_FLOW_PHASE_CMD,       /* SMTP command phase (RFC 5321 §4.5.3.2: 5 min) */
	MRY_FLOW_PHASE_DATA,      /* message in progress (RFC 5321: 3 min per block, 10 min after end) */
	MRY_FLOW_PHASE_CLOSING,   /* FIN or RST seen */
	MRY_FLOW_PHASE_MAX,
};

enum mry_flow_end_reason {
	MRY_FLOW_END_CLOSED = 0,  /* both FINs or RST, released by the engine */
	MRY_FLOW_END_TIMEOUT,     /* idle deadline of its phase passed */
	MRY_FLOW_END_EVICTED,     /* table full, this one was chosen */
	MRY_FLOW_END_SHUTDOWN,    /* table destroyed / flushed */
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

struct mry_flow_config {
	uint32_t max_flows;                        /* default 65536 */
	uint32_t max_per_source;                   /* 0 = unlimited; default 0 */
	uint64_t timeout_ns[MRY_FLOW_PHASE_MAX];   /* defaults: SYN 30 s, CMD 300 s, DATA 600 s, CLOSING 10 s */
	uint32_t expire_budget;                    /* flows examined per expire call, default 64 */
};

struct mry_flow_stats {
	uint64_t created;
	uint64_t closed;
	uint64_t timeouts[MRY_FLOW_PHASE_MAX];
	uint64_t evicted_pre_data;
	uint64_t evicted_data;                     /* a message in progress was sacrificed */
	uint64_t table_full;                       /* no flow could be created */
	uint64_t per_source_limit;                 /* creation refused: source over cap */
	uint32_t active;
	uint32_t capacity;
	uint64_t timeout_held;                     /* deadline passed on a HELD flow: re-armed, not ended */
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
 * (counted). The new flow is zeroed except key/hash/last_ns, phase SYN.
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

/** Activity: refresh last_ns and the idle deadline. Fast-path safe. */
void mry_flow_touch(struct mry_flow_table *t, struct mry_flow *f, uint64_t now_ns);
/** Change phase (re-arms the deadline with the phase's timeout). */
void mry_flow_set_phase(struct mry_flow_table *t, struct mry_flow *f,
			enum mry_flow_phase phase, uint64_t now_ns);
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
 * Current connection count from one source address: the client's address
 * for flows created with mry_flow_create_client() or given
 * mry_flow_set_client(), else the side-0 (lower) address. @addr is 4 bytes
 * for IPv4, 16 for IPv6.
 */
uint32_t mry_flow_source_count(const struct mry_flow_table *t,
			       uint8_t ip_version, const uint8_t *addr);

/** Iterate over all flows (control path / shutdown). Return false from fn to stop. */
void mry_flow_foreach(struct mry_flow_table *t,
		      bool (*fn)(void *ctx, struct mry_flow *f), void *ctx);

void mry_flow_get_stats(const struct mry_flow_table *t, struct mry_flow_stats *st);

/** Bytes the table uses per flow slot, including its index and timer overhead. */
size_t mry_flow_table_bytes_per_flow(const struct mry_flow_table *t);

#endif /* MORAY_FLOW_H */
