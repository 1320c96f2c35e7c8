/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-worker flow table (DESIGN.md "Why" 2: keep-alive floods must not starve
 * real mail). Everything is allocated at creation, sized by max_flows:
 *
 *  - slots: one cache-line aligned struct mry_flow_node per flow (the public
 *    struct mry_flow first, then the table's links), 192 bytes;
 *  - index: open addressing with linear probing over (hash, slot) pairs, at
 *    most half full, backward-shift deletion so there are no tombstones. A
 *    probe compares the 32-bit hash held in the index before touching a slot,
 *    so a miss reads no flow at all;
 *  - LRU lists: pre-DATA (SYN, CMD, CLOSING), DATA, and "held". Eviction
 *    takes the head (least recently active) of the pre-DATA list, then of the
 *    DATA list, skipping flows flagged MRY_FLOW_F_HELD (moved to the held
 *    list as they are met, so each is skipped once per touch);
 *  - a hashed timer wheel. Its tick is the shortest phase timeout / 8; a
 *    flow sits in the slot of the tick at or after its deadline. Touching a
 *    flow only moves last_ns later, so touch() does not move the timer
 *    (lazy re-arm): when the slot comes due, a flow whose deadline moved is
 *    filed again. A phase change to a shorter timeout moves it at once.
 *    mry_flow_expire() examines at most expire_budget flows and at most
 *    16 x expire_budget wheel slots per call (Redis dictRehash() style);
 *    work left over is resumed by the next call;
 *  - per-source counts: open addressing keyed by (ip_version, address),
 *    at most 80 % full even if every flow has its own source, 20 bytes an
 *    entry.
 *
 * "Source" is the client's address when the creator says which side is the
 * client (mry_flow_create_client(), mry_flow_set_client()), else side 0's
 * address (the lower one). The side counted is remembered in the slot, so
 * the engine may rewrite client_side/flags freely.
 *
 * A flow whose deadline passes while MRY_FLOW_F_HELD is set is not ended:
 * the hold module owns its deadline (--hold-timeout); it is re-armed for
 * another period of its phase and counted in timeout_held.
 */
#include <assert.h>
#include <endian.h>
#include <stddef.h>
#include <string.h>

#include "moray/flow.h"

#define FLOW_DEFAULT_MAX        65536u
#define FLOW_DEFAULT_BUDGET     64u
#define FLOW_WHEEL_MIN_SLOTS    64u
#define FLOW_WHEEL_MAX_SLOTS    4096u
#define FLOW_TICKS_PER_TIMEOUT  8u
#define FLOW_SLOT_SCAN_FACTOR   16u
#define FLOW_IDX_EMPTY          UINT32_MAX

enum flow_list {
	FLOW_LIST_FREE = 0,
	FLOW_LIST_PRE,    /* SYN, CMD, CLOSING */
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
	struct flow_link lru;          /* free list or one of the LRU lists */
	struct flow_link tm;           /* timer wheel slot or pending list */
	uint64_t tm_tick;              /* tick of the wheel slot it sits in */
	uint8_t list;                  /* enum flow_list */
	uint8_t src_side;              /* side whose address is counted per source */
	uint8_t in_use;
	uint8_t pad[5];
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

struct flow_idx {
	uint32_t hash;
	uint32_t slot;
};

struct flow_src {
	uint8_t addr[16];
	uint32_t cv;                   /* count << 1 | is_ipv6; 0 = empty entry */
};

static inline uint32_t src_count(const struct flow_src *e)
{
	return e->cv >> 1;
}

static inline uint8_t src_ver(const struct flow_src *e)
{
	return (e->cv & 1) != 0 ? 6 : 4;
}

struct mry_flow_table {
	const struct mry_alloc *alloc;
	struct mry_flow_node *nodes;
	struct flow_idx *idx;
	struct flow_src *src;
	struct flow_link *wheel;
	uint32_t max_flows;
	uint32_t idx_mask;
	uint32_t src_mask;
	uint32_t wheel_mask;
	uint32_t max_per_source;
	uint32_t budget;
	uint64_t timeout_ns[MRY_FLOW_PHASE_MAX];
	uint64_t tick_ns;
	uint64_t cur_tick;             /* every tick before this one was visited */
	bool clock_started;
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
static void link_splice_tail(struct flow_link *to, struct flow_link *from)
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

/*
 * The key is normalised (side 0 is the lower (address, port) pair), so the
 * hash is symmetric by construction: both directions build the same key.
 */
uint32_t mry_flow_key_hash(const struct mry_flow_key *key)
{
	const uint8_t *b = (const uint8_t *)key;
	uint64_t h = HASH_K2 ^ sizeof(*key);

	static_assert(sizeof(struct mry_flow_key) == 40, "key layout");
	h = hash_round(h, load64(b));
	h = hash_round(h, load64(b + 8));
	h = hash_round(h, load64(b + 16));
	h = hash_round(h, load64(b + 24));
	h = hash_round(h, load64(b + 32));
	return hash_final(h);
}

static uint32_t src_hash(uint8_t ip_version, const uint8_t *addr)
{
	uint64_t h = HASH_K1 ^ ip_version;

	h = hash_round(h, load64(addr));
	h = hash_round(h, load64(addr + 8));
	return hash_final(h);
}

static inline bool key_eq(const struct mry_flow_key *a, const struct mry_flow_key *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/* memcmp() order of the addresses, then ports; inline, once per packet */
static int side_cmp(const uint8_t *a1, uint16_t p1, const uint8_t *a2, uint16_t p2)
{
	for (int i = 0; i < 16; i += 8) {
		uint64_t x, y;

		memcpy(&x, a1 + i, 8);
		memcpy(&y, a2 + i, 8);
		if (x != y)
			return be64toh(x) < be64toh(y) ? -1 : 1;
	}
	return (int)p1 - (int)p2;
}

void mry_flow_key_from_pkt(const struct mry_pkt *pkt, struct mry_flow_key *key,
			   uint8_t *side)
{
	uint8_t src[16] = {0}, dst[16] = {0};
	size_t alen = pkt->ip_version == 6 ? 16 : 4;
	uint8_t s;

	/* IPv4 uses 4 bytes: never hash whatever follows them */
	memcpy(src, pkt->src, alen);
	memcpy(dst, pkt->dst, alen);
	memset(key, 0, sizeof(*key));
	s = side_cmp(src, pkt->sport, dst, pkt->dport) <= 0 ? 0 : 1;
	memcpy(key->addr[s], src, 16);
	memcpy(key->addr[s ^ 1], dst, 16);
	key->port[s] = pkt->sport;
	key->port[s ^ 1] = pkt->dport;
	key->ip_version = pkt->ip_version;
	if (side != NULL)
		*side = s;
}

/* ---- index ------------------------------------------------------------- */

static inline uint32_t node_id(const struct mry_flow_table *t,
			       const struct mry_flow_node *n)
{
	return (uint32_t)(n - t->nodes);
}

struct mry_flow *mry_flow_lookup(struct mry_flow_table *t,
				 const struct mry_flow_key *key, uint32_t hash)
{
	uint32_t i = hash & t->idx_mask;

	for (;;) {
		const struct flow_idx *e = &t->idx[i];

		if (e->slot == FLOW_IDX_EMPTY)
			return NULL;
		if (e->hash == hash && key_eq(&t->nodes[e->slot].flow.key, key))
			return &t->nodes[e->slot].flow;
		i = (i + 1) & t->idx_mask;
	}
}

static void idx_insert(struct mry_flow_table *t, uint32_t hash, uint32_t slot)
{
	uint32_t i = hash & t->idx_mask;

	while (t->idx[i].slot != FLOW_IDX_EMPTY)
		i = (i + 1) & t->idx_mask;
	t->idx[i].hash = hash;
	t->idx[i].slot = slot;
}

/* Linear probing deletion by backward shift (Knuth 6.4 algorithm R). */
static void idx_remove(struct mry_flow_table *t, uint32_t hash, uint32_t slot)
{
	uint32_t i = hash & t->idx_mask, j;

	while (t->idx[i].slot != slot) {
		MRY_ASSERT(t->idx[i].slot != FLOW_IDX_EMPTY);
		if (t->idx[i].slot == FLOW_IDX_EMPTY)
			return;
		i = (i + 1) & t->idx_mask;
	}
	j = i;
	for (;;) {
		uint32_t home;

		j = (j + 1) & t->idx_mask;
		if (t->idx[j].slot == FLOW_IDX_EMPTY)
			break;
		home = t->idx[j].hash & t->idx_mask;
		/* move j back to i unless its home lies cyclically in (i, j] */
		if (((j - home) & t->idx_mask) >= ((j - i) & t->idx_mask)) {
			t->idx[i] = t->idx[j];
			i = j;
		}
	}
	t->idx[i].slot = FLOW_IDX_EMPTY;
	t->idx[i].hash = 0;
}

/* ---- per-source counts ------------------------------------------------- */

static struct flow_src *src_find(const struct mry_flow_table *t, uint8_t ver,
				 const uint8_t *addr, bool *found)
{
	uint32_t i = src_hash(ver, addr) & t->src_mask;

	for (;;) {
		struct flow_src *e = &t->src[i];

		if (e->cv == 0) {
			*found = false;
			return e;
		}
		if (src_ver(e) == ver && memcmp(e->addr, addr, 16) == 0) {
			*found = true;
			return e;
		}
		i = (i + 1) & t->src_mask;
	}
}

static uint32_t src_get(const struct mry_flow_table *t, uint8_t ver,
			const uint8_t *addr)
{
	bool found;
	const struct flow_src *e = src_find(t, ver, addr, &found);

	return found ? src_count(e) : 0;
}

static void src_inc(struct mry_flow_table *t, uint8_t ver, const uint8_t *addr)
{
	bool found;
	struct flow_src *e = src_find(t, ver, addr, &found);

	if (!found) {
		memcpy(e->addr, addr, 16);
		e->cv = ver == 6 ? 1 : 0;
	}
	e->cv += 2;
}

static void src_dec(struct mry_flow_table *t, uint8_t ver, const uint8_t *addr)
{
	bool found;
	struct flow_src *e = src_find(t, ver, addr, &found);
	uint32_t i, j;

	MRY_ASSERT(found);
	if (!found)
		return;
	e->cv -= 2;
	if (src_count(e) != 0)
		return;
	/* backward-shift deletion, as idx_remove() */
	i = (uint32_t)(e - t->src);
	j = i;
	for (;;) {
		uint32_t home;

		j = (j + 1) & t->src_mask;
		if (t->src[j].cv == 0)
			break;
		home = src_hash(src_ver(&t->src[j]), t->src[j].addr) & t->src_mask;
		if (((j - home) & t->src_mask) >= ((j - i) & t->src_mask)) {
			t->src[i] = t->src[j];
			i = j;
		}
	}
	memset(&t->src[i], 0, sizeof(t->src[i]));
}

uint32_t mry_flow_source_count(const struct mry_flow_table *t,
			       uint8_t ip_version, const uint8_t *addr)
{
	uint8_t a[16] = {0};

	memcpy(a, addr, ip_version == 6 ? 16 : 4);
	return src_get(t, ip_version, a);
}

/* ---- timer wheel ------------------------------------------------------- */

static inline uint64_t deadline_of(const struct mry_flow_table *t,
				   const struct mry_flow *f)
{
	return f->last_ns + t->timeout_ns[f->phase];
}

static inline uint64_t tick_of(const struct mry_flow_table *t, uint64_t ns)
{
	return ns / t->tick_ns + (ns % t->tick_ns != 0);
}

static void clock_start(struct mry_flow_table *t, uint64_t now_ns)
{
	if (!t->clock_started) {
		t->cur_tick = now_ns / t->tick_ns;
		t->clock_started = true;
	}
}

/* File @n in the wheel slot of @deadline_ns (never before cur_tick). */
static void timer_arm_at(struct mry_flow_table *t, struct mry_flow_node *n,
			 uint64_t deadline_ns)
{
	uint64_t tick = tick_of(t, deadline_ns);

	if (tick < t->cur_tick)
		tick = t->cur_tick;
	n->tm_tick = tick;
	link_del(&n->tm);
	link_add_tail(&t->wheel[tick & t->wheel_mask], &n->tm);
}

static inline void timer_arm(struct mry_flow_table *t, struct mry_flow_node *n)
{
	timer_arm_at(t, n, deadline_of(t, &n->flow));
}

/* ---- LRU --------------------------------------------------------------- */

static inline enum flow_list list_for(const struct mry_flow *f)
{
	if (f->flags & MRY_FLOW_F_HELD)
		return FLOW_LIST_HELD;
	return f->phase == MRY_FLOW_PHASE_DATA ? FLOW_LIST_DATA : FLOW_LIST_PRE;
}

static inline void lru_file(struct mry_flow_table *t, struct mry_flow_node *n)
{
	enum flow_list l = list_for(&n->flow);

	link_del(&n->lru);
	link_add_tail(&t->lists[l], &n->lru);
	n->list = (uint8_t)l;
}

/* ---- create / free ----------------------------------------------------- */

static void node_free(struct mry_flow_table *t, struct mry_flow_node *n)
{
	struct mry_flow *f = &n->flow;

	idx_remove(t, f->hash, node_id(t, n));
	src_dec(t, f->key.ip_version, f->key.addr[n->src_side]);
	link_del(&n->tm);
	link_del(&n->lru);
	n->in_use = 0;
	n->list = FLOW_LIST_FREE;
	link_add_tail(&t->lists[FLOW_LIST_FREE], &n->lru);
	t->st.active--;
}

static void node_end(struct mry_flow_table *t, struct mry_flow_node *n,
		     enum mry_flow_end_reason why)
{
	if (t->end_fn != NULL)
		t->end_fn(t->end_ctx, &n->flow, why);
	/* end_fn may have released it already */
	if (n->in_use)
		node_free(t, n);
}

/* First evictable flow of list @l; HELD ones met are moved to the held list. */
static struct mry_flow_node *victim_in(struct mry_flow_table *t, enum flow_list l)
{
	struct flow_link *h = &t->lists[l];

	while (!link_empty(h)) {
		struct mry_flow_node *n = node_of_lru(h->next);

		if (!(n->flow.flags & MRY_FLOW_F_HELD))
			return n;
		link_del(&n->lru);
		link_add_tail(&t->lists[FLOW_LIST_HELD], &n->lru);
		n->list = FLOW_LIST_HELD;
	}
	return NULL;
}

static MRY_COLD bool evict_one(struct mry_flow_table *t)
{
	struct mry_flow_node *n = victim_in(t, FLOW_LIST_PRE);
	struct flow_link *h, *l, *next;

	if (n == NULL) {
		/* flows released from hold but not touched since */
		h = &t->lists[FLOW_LIST_HELD];
		for (l = h->next; l != h; l = next) {
			next = l->next;
			if (!(node_of_lru(l)->flow.flags & MRY_FLOW_F_HELD))
				lru_file(t, node_of_lru(l));
		}
		n = victim_in(t, FLOW_LIST_PRE);
	}
	if (n != NULL) {
		t->st.evicted_pre_data++;
	} else {
		n = victim_in(t, FLOW_LIST_DATA);
		if (n == NULL)
			return false;
		t->st.evicted_data++;
	}
	node_end(t, n, MRY_FLOW_END_EVICTED);
	return true;
}

static struct mry_flow *flow_create(struct mry_flow_table *t,
				    const struct mry_flow_key *key,
				    uint32_t hash, int client_side,
				    uint64_t now_ns)
{
	uint8_t src_side = client_side < 0 ? 0 : (uint8_t)client_side;
	struct mry_flow_node *n;
	struct mry_flow *f;

	if (t->max_per_source != 0 &&
	    src_get(t, key->ip_version, key->addr[src_side]) >= t->max_per_source) {
		t->st.per_source_limit++;
		return NULL;
	}
	if (link_empty(&t->lists[FLOW_LIST_FREE]) && !evict_one(t)) {
		t->st.table_full++;
		return NULL;
	}
	n = node_of_lru(t->lists[FLOW_LIST_FREE].next);
	link_del(&n->lru);
	f = &n->flow;
	memset(f, 0, sizeof(*f));
	f->key = *key;
	f->hash = hash;
	f->last_ns = now_ns;
	f->phase = MRY_FLOW_PHASE_SYN;
	if (client_side >= 0) {
		f->client_side = src_side;
		f->flags = MRY_FLOW_F_CLIENT_KNOWN;
	}
	n->in_use = 1;
	n->src_side = src_side;
	idx_insert(t, hash, node_id(t, n));
	src_inc(t, key->ip_version, key->addr[src_side]);
	lru_file(t, n);
	clock_start(t, now_ns);
	timer_arm(t, n);
	t->st.created++;
	t->st.active++;
	return f;
}

struct mry_flow *mry_flow_create(struct mry_flow_table *t,
				 const struct mry_flow_key *key, uint32_t hash,
				 uint64_t now_ns)
{
	return flow_create(t, key, hash, -1, now_ns);
}

struct mry_flow *mry_flow_create_client(struct mry_flow_table *t,
					const struct mry_flow_key *key,
					uint32_t hash, uint8_t client_side,
					uint64_t now_ns)
{
	return flow_create(t, key, hash, client_side & 1, now_ns);
}

void mry_flow_set_client(struct mry_flow_table *t, struct mry_flow *f,
			 uint8_t client_side)
{
	struct mry_flow_node *n = node_of(f);

	client_side &= 1;
	f->client_side = client_side;
	f->flags |= MRY_FLOW_F_CLIENT_KNOWN;
	if (n->src_side == client_side)
		return;
	src_dec(t, f->key.ip_version, f->key.addr[n->src_side]);
	src_inc(t, f->key.ip_version, f->key.addr[client_side]);
	n->src_side = client_side;
}

void mry_flow_touch(struct mry_flow_table *t, struct mry_flow *f, uint64_t now_ns)
{
	struct mry_flow_node *n = node_of(f);

	/* the timer stays where it is: deadlines only move later (lazy re-arm) */
	f->last_ns = now_ns;
	lru_file(t, n);
}

void mry_flow_set_phase(struct mry_flow_table *t, struct mry_flow *f,
			enum mry_flow_phase phase, uint64_t now_ns)
{
	struct mry_flow_node *n = node_of(f);

	if ((unsigned)phase >= MRY_FLOW_PHASE_MAX)
		return;
	f->phase = (uint8_t)phase;
	f->last_ns = now_ns;
	lru_file(t, n);
	/* a shorter timeout must fire before the slot the flow sits in */
	if (tick_of(t, deadline_of(t, f)) < n->tm_tick)
		timer_arm(t, n);
}

void mry_flow_release(struct mry_flow_table *t, struct mry_flow *f)
{
	struct mry_flow_node *n = node_of(f);

	if (!n->in_use)
		return;
	node_free(t, n);
	t->st.closed++;
}

uint64_t mry_flow_next_deadline(const struct mry_flow_table *t)
{
	if (t->st.active == 0 || !t->clock_started)
		return UINT64_MAX;
	if (!link_empty(&t->pending) && t->cur_tick > 0)
		return (t->cur_tick - 1) * t->tick_ns;
	return t->cur_tick * t->tick_ns;
}

void mry_flow_expire(struct mry_flow_table *t, uint64_t now_ns)
{
	uint32_t budget = t->budget;
	uint32_t slots = t->budget * FLOW_SLOT_SCAN_FACTOR;
	uint64_t target;

	clock_start(t, now_ns);
	target = now_ns / t->tick_ns;
	/* a long pause: every slot is due, visit each once */
	if (target >= t->cur_tick && target - t->cur_tick > t->wheel_mask)
		t->cur_tick = target - t->wheel_mask;
	while (budget > 0) {
		struct mry_flow_node *n;
		struct mry_flow *f;

		if (link_empty(&t->pending)) {
			if (t->cur_tick > target || slots == 0)
				break;
			slots--;
			link_splice_tail(&t->pending,
					 &t->wheel[t->cur_tick & t->wheel_mask]);
			t->cur_tick++;
			continue;
		}
		n = node_of_tm(t->pending.next);
		f = &n->flow;
		link_del(&n->tm);
		budget--;
		if (deadline_of(t, f) > now_ns) {
			timer_arm(t, n);   /* touched since, or a later round */
			continue;
		}
		if (f->flags & MRY_FLOW_F_HELD) {
			t->st.timeout_held++;
			timer_arm_at(t, n, now_ns + t->timeout_ns[f->phase]);
			continue;
		}
		t->st.timeouts[f->phase]++;
		node_end(t, n, MRY_FLOW_END_TIMEOUT);
	}
}

/* ---- table ------------------------------------------------------------- */

static uint32_t pow2_at_least(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p <<= 1;
	return p > (1ULL << 31) ? (1u << 31) : (uint32_t)p;
}

struct mry_flow_table *mry_flow_table_create(const struct mry_alloc *a,
					     const struct mry_flow_config *cfg,
					     mry_flow_end_fn end_fn, void *ctx)
{
	static const uint64_t def_timeout[MRY_FLOW_PHASE_MAX] = {
		[MRY_FLOW_PHASE_SYN] = 30 * MRY_NS_PER_SEC,
		[MRY_FLOW_PHASE_CMD] = 300 * MRY_NS_PER_SEC,
		[MRY_FLOW_PHASE_DATA] = 600 * MRY_NS_PER_SEC,
		[MRY_FLOW_PHASE_CLOSING] = 10 * MRY_NS_PER_SEC,
	};
	struct mry_flow_table *t;
	uint64_t tmin = UINT64_MAX, tmax = 0;
	uint32_t i, nb_idx, nb_src, nb_wheel;

	t = mry_zalloc(a, sizeof(*t));
	if (t == NULL)
		goto fail;
	t->alloc = a;
	t->max_flows = cfg != NULL && cfg->max_flows != 0 ? cfg->max_flows
							  : FLOW_DEFAULT_MAX;
	if (t->max_flows > (1u << 29)) {
		mry_log(MRY_LOG_ERR, "flow", "max_flows %u too large", t->max_flows);
		goto fail;
	}
	t->max_per_source = cfg != NULL ? cfg->max_per_source : 0;
	t->budget = cfg != NULL && cfg->expire_budget != 0 ? cfg->expire_budget
							   : FLOW_DEFAULT_BUDGET;
	for (i = 0; i < MRY_FLOW_PHASE_MAX; i++) {
		t->timeout_ns[i] = cfg != NULL && cfg->timeout_ns[i] != 0 ?
				   cfg->timeout_ns[i] : def_timeout[i];
		tmin = MRY_MIN(tmin, t->timeout_ns[i]);
		tmax = MRY_MAX(tmax, t->timeout_ns[i]);
	}
	t->tick_ns = MRY_MAX(tmin / FLOW_TICKS_PER_TIMEOUT, 1);
	nb_wheel = pow2_at_least(tmax / t->tick_ns + 2);
	nb_wheel = MRY_MAX(nb_wheel, FLOW_WHEEL_MIN_SLOTS);
	nb_wheel = MRY_MIN(nb_wheel, FLOW_WHEEL_MAX_SLOTS);
	nb_idx = pow2_at_least((uint64_t)t->max_flows * 2);
	nb_src = pow2_at_least((uint64_t)t->max_flows * 5 / 4 + 1);
	t->idx_mask = nb_idx - 1;
	t->src_mask = nb_src - 1;
	t->wheel_mask = nb_wheel - 1;

	t->nodes = mry_zalloc_aligned(a, sizeof(*t->nodes) * t->max_flows,
				      MRY_CACHE_LINE);
	t->idx = mry_zalloc_aligned(a, sizeof(*t->idx) * nb_idx, MRY_CACHE_LINE);
	t->src = mry_zalloc_aligned(a, sizeof(*t->src) * nb_src, MRY_CACHE_LINE);
	t->wheel = mry_zalloc_aligned(a, sizeof(*t->wheel) * nb_wheel, MRY_CACHE_LINE);
	if (t->nodes == NULL || t->idx == NULL || t->src == NULL || t->wheel == NULL) {
		mry_log(MRY_LOG_ERR, "flow", "cannot allocate table for %u flows",
			t->max_flows);
		goto fail;
	}
	for (i = 0; i < nb_idx; i++)
		t->idx[i].slot = FLOW_IDX_EMPTY;
	for (i = 0; i < nb_wheel; i++)
		link_init(&t->wheel[i]);
	for (i = 0; i < FLOW_LIST_MAX; i++)
		link_init(&t->lists[i]);
	link_init(&t->pending);
	for (i = 0; i < t->max_flows; i++) {
		link_init(&t->nodes[i].tm);
		link_add_tail(&t->lists[FLOW_LIST_FREE], &t->nodes[i].lru);
	}
	t->end_fn = end_fn;
	t->end_ctx = ctx;
	t->st.capacity = t->max_flows;
	return t;
fail:
	if (t != NULL) {
		mry_free(a, t->nodes);
		mry_free(a, t->idx);
		mry_free(a, t->src);
		mry_free(a, t->wheel);
		mry_free(a, t);
	}
	return NULL;
}

void mry_flow_table_destroy(struct mry_flow_table *t)
{
	uint32_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->max_flows; i++)
		if (t->nodes[i].in_use)
			node_end(t, &t->nodes[i], MRY_FLOW_END_SHUTDOWN);
	mry_free(t->alloc, t->nodes);
	mry_free(t->alloc, t->idx);
	mry_free(t->alloc, t->src);
	mry_free(t->alloc, t->wheel);
	mry_free(t->alloc, t);
}

void mry_flow_foreach(struct mry_flow_table *t,
		      bool (*fn)(void *ctx, struct mry_flow *f), void *ctx)
{
	uint32_t i;

	/* by slot index: fn may release the flow it is given */
	for (i = 0; i < t->max_flows; i++)
		if (t->nodes[i].in_use && !fn(ctx, &t->nodes[i].flow))
			return;
}

void mry_flow_get_stats(const struct mry_flow_table *t, struct mry_flow_stats *st)
{
	*st = t->st;
}

size_t mry_flow_table_bytes_per_flow(const struct mry_flow_table *t)
{
	size_t total = sizeof(struct mry_flow_node) * t->max_flows +
		       sizeof(struct flow_idx) * ((size_t)t->idx_mask + 1) +
		       sizeof(struct flow_src) * ((size_t)t->src_mask + 1) +
		       sizeof(struct flow_link) * ((size_t)t->wheel_mask + 1);

	return (total + t->max_flows - 1) / t->max_flows;
}
