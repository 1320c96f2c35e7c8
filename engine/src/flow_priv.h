/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The flow table's private layout, shared by flow_table.c (index, deadlines,
 * eviction, the table), flow_source.c (per-source counts, top talkers) and
 * flow_key.c (keys and their hash).
 * See flow_table.c for how the pieces fit.
 */
#ifndef MORAY_FLOW_PRIV_H
#define MORAY_FLOW_PRIV_H

#include <assert.h>
#include <endian.h>
#include <stddef.h>
#include <string.h>
#include "moray/flow.h"

#define FLOW_DEFAULT_BUDGET     64u
#define FLOW_WHEEL_MIN_SLOTS    64u
#define FLOW_WHEEL_MAX_SLOTS    4096u
#define FLOW_TICKS_PER_TIMEOUT  8u
#define FLOW_SLOT_SCAN_FACTOR   16u
#define FLOW_IDX_EMPTY          UINT32_MAX

enum flow_list {
	FLOW_LIST_FREE = 0,
	FLOW_LIST_HALF,   /* HALF_OPEN */
	FLOW_LIST_PRE,    /* GREETING, CMD, DATA_INIT, DATA_END, CLOSING */
	FLOW_LIST_DATA,
	FLOW_LIST_HELD,
	FLOW_LIST_MAX,
};

struct flow_link {
	struct flow_link *prev;
	struct flow_link *next;
};

struct mry_flow_node {
	struct mry_flow flow;          /* first: a flow pointer is a node pointer */
	/* third cache line: what touch() writes, next to the flow's tail */
	struct flow_link lru;          /* free list or one of the LRU lists */
	uint64_t bytes;                /* payload bytes, both directions */
	uint32_t src_id;               /* entry in the source pool */
	uint8_t list;                  /* enum flow_list */
	uint8_t src_side;              /* side whose address is counted per source */
	uint8_t in_use;
	uint8_t scaled;                /* deadline armed or cut in emergency mode */
	/* fourth: timers and the DATA rate clock */
	struct flow_link tm;           /* timer wheel slot or pending list */
	uint64_t deadline_ns;          /* armed deadline; the wheel slot is at or before it */
	uint64_t data_start_ns;        /* DATA entry (rate clock) */
	uint64_t data_bytes;           /* message bytes since DATA entry */
} MRY_CACHE_ALIGNED;

static_assert(offsetof(struct mry_flow, hash) < MRY_CACHE_LINE &&
	      offsetof(struct mry_flow, phase) < MRY_CACHE_LINE &&
	      offsetof(struct mry_flow, flags) < MRY_CACHE_LINE &&
	      offsetof(struct mry_flow, key) + sizeof(struct mry_flow_key) <= MRY_CACHE_LINE &&
	      offsetof(struct mry_flow, last_ns) + sizeof(uint64_t) <= MRY_CACHE_LINE &&
	      offsetof(struct mry_flow, app) + sizeof(void *) <= MRY_CACHE_LINE,
	      "hot flow fields must stay in the first cache line");
static_assert(sizeof(struct mry_flow) <= 160, "struct mry_flow grew");
static_assert(sizeof(struct mry_flow_node) <= 256, "flow slot exceeds 256 bytes");
static_assert(offsetof(struct mry_flow_node, flow) == 0, "flow must come first");
static_assert(offsetof(struct mry_flow_node, lru) / MRY_CACHE_LINE ==
	      (offsetof(struct mry_flow_node, scaled)) / MRY_CACHE_LINE,
	      "touch() writes one cache line of the slot's tail");

struct flow_idx {
	uint32_t hash;
	uint32_t slot;
};

/*
 * A source: its address and what its flows hold. A closing flow still
 * refers to its source (its bytes) but no longer counts as a connection of
 * it: a sender that reuses connections at a high rate leaves many flows in
 * CLOSING for a few seconds, and Postfix's connection count does not see
 * those either.
 */
struct flow_src {
	uint8_t addr[16];
	uint32_t refs;                 /* flows referring to it; 0 = free entry */
	uint32_t flows;                /* of them, not CLOSING (the per-source count) */
	uint32_t data_flows;           /* of them, in DATA; free entry: next free id */
	uint8_t ver;
	uint8_t pad[3];
	uint64_t bytes;                /* filled by mry_flow_top_sources() only */
};

static_assert(sizeof(struct flow_src) == 40, "source entry layout");

static inline uint32_t src_count(const struct flow_src *e)
{
	return e->flows;
}

static inline uint8_t src_ver(const struct flow_src *e)
{
	return e->ver;
}

static inline bool phase_counted(uint8_t phase)
{
	return phase != MRY_FLOW_PHASE_CLOSING;
}

struct mry_flow_table {
	const struct mry_alloc *alloc;
	struct mry_flow_node *nodes;
	struct flow_idx *idx;
	struct flow_src *src;          /* pool, max_flows entries */
	struct flow_idx *src_idx;      /* (hash, id) of used entries */
	struct flow_link *wheel;
	uint32_t max_flows;
	uint32_t idx_mask;
	uint32_t src_idx_mask;
	uint32_t src_free;             /* head of the free entries, UINT32_MAX = none */
	uint32_t nb_sources;
	uint32_t wheel_mask;
	uint32_t max_per_source;
	uint32_t max_half_open;
	uint32_t min_data_rate;
	uint32_t budget;
	uint32_t em_high, em_low, em_pct;
	uint32_t pressure_ext;         /* last pressure given by the caller */
	uint32_t em_cursor;            /* next slot emergency mode cuts */
	bool emergency;
	bool clock_started;
	uint8_t last_class;            /* enum mry_flow_evict_class */
	uint64_t timeout_ns[MRY_FLOW_PHASE_MAX];
	uint64_t tick_ns;
	uint64_t cur_tick;             /* every tick before this one was visited */
	struct flow_link lists[FLOW_LIST_MAX];
	struct flow_link pending;      /* slot being expired (budget ran out) */
	mry_flow_end_fn end_fn;
	void *end_ctx;
	struct mry_flow_stats st;
};

/* ---- lists ------------------------------------------------------------- */

static inline void link_init(struct flow_link *h)
{
	h->prev = h;
	h->next = h;
}

static inline bool link_empty(const struct flow_link *h)
{
	return h->next == h;
}

static inline void link_del(struct flow_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l;
	l->next = l;
}

static inline void link_add_tail(struct flow_link *h, struct flow_link *l)
{
	l->prev = h->prev;
	l->next = h;
	h->prev->next = l;
	h->prev = l;
}

/* Move every element of @from to the tail of @to. */
static inline void link_splice_tail(struct flow_link *to, struct flow_link *from)
{
	if (link_empty(from))
		return;
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	link_init(from);
}

static inline struct mry_flow_node *node_of_lru(struct flow_link *l)
{
	return (struct mry_flow_node *)((uint8_t *)l - offsetof(struct mry_flow_node, lru));
}

static inline struct mry_flow_node *node_of_tm(struct flow_link *l)
{
	return (struct mry_flow_node *)((uint8_t *)l - offsetof(struct mry_flow_node, tm));
}

static inline struct mry_flow_node *node_of(struct mry_flow *f)
{
	return (struct mry_flow_node *)f;
}

/* ---- hashing ----------------------------------------------------------- */

#define HASH_K1 0x9e3779b97f4a7c15ULL
#define HASH_K2 0xc2b2ae3d27d4eb4fULL

static inline uint64_t hash_rotl(uint64_t x, unsigned r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t hash_round(uint64_t h, uint64_t w)
{
	h ^= hash_rotl(w * HASH_K2, 31) * HASH_K1;
	return hash_rotl(h, 27) * HASH_K1 + 0x52dce729u;
}

/* MurmurHash3 fmix64: full avalanche of the accumulated words. */
static inline uint32_t hash_final(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (uint32_t)h;
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline bool key_eq(const struct mry_flow_key *a, const struct mry_flow_key *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/* flow_source.c */
uint32_t flow_src_hash(uint8_t ip_version, const uint8_t *addr);
uint32_t flow_src_get(const struct mry_flow_table *t, uint8_t ver, const uint8_t *addr);
uint32_t flow_src_acquire(struct mry_flow_table *t, uint8_t ver, const uint8_t *addr,
			  bool counted);
void flow_src_release(struct mry_flow_table *t, uint32_t id, bool in_data, bool counted);

/* ---- DATA rate (eviction and reclaim) ---------------------------------- */

/* DATA rate in bytes/s, over at least the grace period */
static inline double data_rate(const struct mry_flow_node *n, uint64_t now_ns)
{
	uint64_t el = now_ns > n->data_start_ns ? now_ns - n->data_start_ns : 0;

	el = MRY_MAX(el, MRY_FLOW_DATA_GRACE_NS);
	return (double)n->data_bytes * (double)MRY_NS_PER_SEC / (double)el;
}

/* Behind the minimum data rate by more than the grace period's worth? */
static inline bool data_slow(const struct mry_flow_table *t, const struct mry_flow_node *n,
		      uint64_t now_ns)
{
	uint32_t r = t->min_data_rate != 0 ? t->min_data_rate : MRY_FLOW_MIN_DATA_RATE_DEFAULT;
	uint64_t el = now_ns > n->data_start_ns ? now_ns - n->data_start_ns : 0;

	if (el <= MRY_FLOW_DATA_GRACE_NS)
		return false;
	return (double)n->data_bytes <
	       (double)r * (double)(el - MRY_FLOW_DATA_GRACE_NS) / (double)MRY_NS_PER_SEC;
}

/* flow_table.c: end @n as an eviction of class @cls (counted) */
void flow_evict(struct mry_flow_table *t, struct mry_flow_node *n,
		enum mry_flow_evict_class cls);

#endif /* MORAY_FLOW_PRIV_H */
