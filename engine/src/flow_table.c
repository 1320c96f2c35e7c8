/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-worker flow table (DESIGN.md "Why" 2 and "Floods": keep-alive floods
 * must not starve real mail). Everything is allocated at creation, sized by
 * max_flows:
 *
 *  - slots: one cache-line aligned struct mry_flow_node per flow (the public
 *    struct mry_flow first, then the table's links, deadline and DATA rate
 *    clock), 256 bytes;
 *  - index: open addressing with linear probing over (hash, slot) pairs, at
 *    most half full, backward-shift deletion so there are no tombstones. A
 *    probe compares the 32-bit hash held in the index before touching a slot,
 *    so a miss reads no flow at all;
 *  - LRU lists, one per eviction class: half-open, pre-DATA (GREETING, CMD,
 *    DATA_INIT, DATA_END, CLOSING), DATA, and "held". Eviction looks at up to
 *    MRY_FLOW_EVICT_SAMPLE least recently active flows of the first non-empty
 *    class and takes the one whose source has most open flows (then, in DATA,
 *    the slowest; then the least recently active), so one eviction costs a
 *    bounded amount of work whatever the table holds. DATA flows behind the
 *    minimum data rate (after a grace of MRY_FLOW_DATA_GRACE_NS) go before
 *    DATA flows that keep up: a moving message is the last thing to go.
 *    Flows flagged MRY_FLOW_F_HELD are moved to the held list as they are met;
 *  - a hashed timer wheel. Each flow has an absolute deadline (see enum
 *    mry_flow_phase for how each phase arms it); its tick is the shortest
 *    phase timeout / 8, and a flow sits in a slot at or before its deadline's
 *    tick. A deadline that moves later (data progress, a command re-arm)
 *    leaves the timer where it is (lazy re-arm: when the slot comes due, a
 *    flow whose deadline moved is filed again); one that moves earlier is
 *    filed again at once. mry_flow_expire() examines at most expire_budget
 *    flows and at most 16 x expire_budget wheel slots per call (Redis
 *    dictRehash() style); work left over is resumed by the next call;
 *  - sources: a pool of max_flows entries (address, flows, flows in DATA;
 *    40 bytes) found through an open-addressing index at most half full.
 *    Entries do not move, so a slot keeps its source's id: phase changes
 *    update its counts without a lookup. Bytes are counted per flow only
 *    (touch writes the slot's third cache line and nothing else) and summed
 *    per source when top talkers are asked for.
 *
 * "Source" is the client's address when the creator says which side is the
 * client (mry_flow_create_client(), mry_flow_set_client()), else side 0's
 * address (the lower one). The side counted is remembered in the slot, so
 * the engine may rewrite client_side/flags freely.
 *
 * Defaults, and why: see struct mry_flow_config in moray/flow.h.
 *
 * A flow whose deadline passes while MRY_FLOW_F_HELD is set is not ended:
 * the hold module owns its deadline (--hold-timeout); it is re-armed for
 * another period of its phase and counted in timeout_held.
 */
#include <assert.h>
#include <endian.h>
#include <stddef.h>
#include <string.h>

#include "flow_priv.h"

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

/* ---- deadlines and the timer wheel --------------------------------------- */

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
static void timer_file(struct mry_flow_table *t, struct mry_flow_node *n,
		       uint64_t deadline_ns)
{
	uint64_t tick = tick_of(t, deadline_ns);

	if (tick < t->cur_tick)
		tick = t->cur_tick;
	link_del(&n->tm);
	link_add_tail(&t->wheel[tick & t->wheel_mask], &n->tm);
}

/* Scale @v by emergency_timeout_pct (never to 0). */
static inline uint64_t em_scale(const struct mry_flow_table *t, uint64_t v)
{
	uint64_t s = v / 100 * t->em_pct + v % 100 * t->em_pct / 100;

	return s != 0 ? s : 1;
}

/* The timeout a deadline armed now gets in phase @ph. */
static inline uint64_t timeout_now(const struct mry_flow_table *t, unsigned ph)
{
	return t->emergency ? em_scale(t, t->timeout_ns[ph]) : t->timeout_ns[ph];
}

/*
 * Set @n's deadline. Later: the timer stays (lazy re-arm, it is filed again
 * when its slot comes due); earlier: filed again at once. @filed false for a
 * flow not on the wheel yet.
 */
static void deadline_set(struct mry_flow_table *t, struct mry_flow_node *n,
			 uint64_t deadline_ns, bool filed)
{
	bool earlier = deadline_ns < n->deadline_ns;

	n->deadline_ns = deadline_ns;
	if (!filed || earlier)
		timer_file(t, n, deadline_ns);
}

static void arm_phase(struct mry_flow_table *t, struct mry_flow_node *n,
		      uint64_t now_ns, bool filed)
{
	n->scaled = t->emergency;
	deadline_set(t, n, now_ns + timeout_now(t, n->flow.phase), filed);
}

/* ---- LRU --------------------------------------------------------------- */

static inline enum flow_list list_for(const struct mry_flow *f)
{
	if (f->flags & MRY_FLOW_F_HELD)
		return FLOW_LIST_HELD;
	if (f->phase == MRY_FLOW_PHASE_DATA)
		return FLOW_LIST_DATA;
	return f->phase == MRY_FLOW_PHASE_HALF_OPEN ? FLOW_LIST_HALF : FLOW_LIST_PRE;
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
	flow_src_release(t, n->src_id, f->phase == MRY_FLOW_PHASE_DATA,
		    phase_counted(f->phase));
	link_del(&n->tm);
	link_del(&n->lru);
	n->in_use = 0;
	n->list = FLOW_LIST_FREE;
	link_add_tail(&t->lists[FLOW_LIST_FREE], &n->lru);
	if (f->phase < MRY_FLOW_PHASE_MAX)
		t->st.open_by_phase[f->phase]--;
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

/*
 * Victim in list @l: among its MRY_FLOW_EVICT_SAMPLE least recently active
 * flows that are not HELD (HELD ones met are moved to the held list), the
 * one whose source has most open flows; in DATA, only the slow ones when
 * any is slow, and the slowest among equals; else the least recently active.
 */
static struct mry_flow_node *victim_in(struct mry_flow_table *t, enum flow_list l,
				       uint64_t now_ns, enum mry_flow_evict_class *cls)
{
	struct mry_flow_node *cand[MRY_FLOW_EVICT_SAMPLE], *best = NULL;
	bool slow[MRY_FLOW_EVICT_SAMPLE], any_slow = false;
	struct flow_link *h = &t->lists[l], *it = h->next;
	uint32_t nb = 0, best_cnt = 0, i;
	double best_rate = 0;

	while (it != h && nb < MRY_FLOW_EVICT_SAMPLE) {
		struct mry_flow_node *n = node_of_lru(it);

		it = it->next;
		if (n->flow.flags & MRY_FLOW_F_HELD) {
			link_del(&n->lru);
			link_add_tail(&t->lists[FLOW_LIST_HELD], &n->lru);
			n->list = FLOW_LIST_HELD;
			continue;
		}
		slow[nb] = l == FLOW_LIST_DATA && data_slow(t, n, now_ns);
		any_slow |= slow[nb];
		cand[nb++] = n;
	}
	for (i = 0; i < nb; i++) {
		uint32_t cnt = src_count(&t->src[cand[i]->src_id]);
		double rate = 0;

		if (any_slow && !slow[i])
			continue;
		if (l == FLOW_LIST_DATA)
			rate = data_rate(cand[i], now_ns);
		if (best == NULL || cnt > best_cnt ||
		    (cnt == best_cnt && rate < best_rate)) {
			best = cand[i];
			best_cnt = cnt;
			best_rate = rate;
		}
	}
	if (l == FLOW_LIST_HALF)
		*cls = MRY_FLOW_EVICT_HALF_OPEN;
	else if (l == FLOW_LIST_PRE)
		*cls = MRY_FLOW_EVICT_IDLE;
	else
		*cls = any_slow ? MRY_FLOW_EVICT_DATA_SLOW : MRY_FLOW_EVICT_DATA_MOVING;
	return best;
}

void flow_evict(struct mry_flow_table *t, struct mry_flow_node *n,
		enum mry_flow_evict_class cls)
{
	t->last_class = (uint8_t)cls;
	t->st.evicted[cls]++;
	if (cls <= MRY_FLOW_EVICT_IDLE)
		t->st.evicted_pre_data++;
	else
		t->st.evicted_data++;
	node_end(t, n, MRY_FLOW_END_EVICTED);
}

static MRY_COLD bool evict_one(struct mry_flow_table *t, uint64_t now_ns)
{
	enum mry_flow_evict_class cls;
	struct mry_flow_node *n = victim_in(t, FLOW_LIST_HALF, now_ns, &cls);
	struct flow_link *h, *l, *next;

	if (n == NULL)
		n = victim_in(t, FLOW_LIST_PRE, now_ns, &cls);
	if (n == NULL && !link_empty(&t->lists[FLOW_LIST_HELD])) {
		/* flows released from hold but not touched since */
		h = &t->lists[FLOW_LIST_HELD];
		for (l = h->next; l != h; l = next) {
			next = l->next;
			if (!(node_of_lru(l)->flow.flags & MRY_FLOW_F_HELD))
				lru_file(t, node_of_lru(l));
		}
		n = victim_in(t, FLOW_LIST_HALF, now_ns, &cls);
		if (n == NULL)
			n = victim_in(t, FLOW_LIST_PRE, now_ns, &cls);
	}
	if (n == NULL)
		n = victim_in(t, FLOW_LIST_DATA, now_ns, &cls);
	if (n == NULL)
		return false;
	flow_evict(t, n, cls);
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
	    flow_src_get(t, key->ip_version, key->addr[src_side]) >= t->max_per_source) {
		t->st.per_source_limit++;
		return NULL;
	}
	if (t->st.open_by_phase[MRY_FLOW_PHASE_HALF_OPEN] >= t->max_half_open) {
		/* half-open flows make room among themselves, never elsewhere */
		enum mry_flow_evict_class cls;

		n = victim_in(t, FLOW_LIST_HALF, now_ns, &cls);
		if (n != NULL) {
			t->st.half_open_full++;
			flow_evict(t, n, cls);
		}
	}
	if (link_empty(&t->lists[FLOW_LIST_FREE]) && !evict_one(t, now_ns)) {
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
	f->phase = MRY_FLOW_PHASE_HALF_OPEN;
	if (client_side >= 0) {
		f->client_side = src_side;
		f->flags = MRY_FLOW_F_CLIENT_KNOWN;
	}
	n->in_use = 1;
	n->src_side = src_side;
	n->bytes = 0;
	n->data_bytes = 0;
	n->data_start_ns = 0;
	idx_insert(t, hash, node_id(t, n));
	n->src_id = flow_src_acquire(t, key->ip_version, key->addr[src_side], true);
	lru_file(t, n);
	clock_start(t, now_ns);
	arm_phase(t, n, now_ns, false);
	t->st.created++;
	t->st.active++;
	t->st.open_by_phase[MRY_FLOW_PHASE_HALF_OPEN]++;
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
	bool in_data = f->phase == MRY_FLOW_PHASE_DATA;

	client_side &= 1;
	f->client_side = client_side;
	f->flags |= MRY_FLOW_F_CLIENT_KNOWN;
	if (n->src_side == client_side)
		return;
	/* release first: with every slot in use, the pool has no spare entry */
	flow_src_release(t, n->src_id, in_data, phase_counted(f->phase));
	n->src_id = flow_src_acquire(t, f->key.ip_version, f->key.addr[client_side],
				phase_counted(f->phase));
	if (in_data)
		t->src[n->src_id].data_flows++;
	n->src_side = client_side;
}

void mry_flow_touch(struct mry_flow_table *t, struct mry_flow *f, uint64_t now_ns)
{
	f->last_ns = now_ns;
	lru_file(t, node_of(f));
}

void mry_flow_touch_bytes(struct mry_flow_table *t, struct mry_flow *f,
			  uint32_t nbytes, uint64_t now_ns)
{
	struct mry_flow_node *n = node_of(f);

	f->last_ns = now_ns;
	lru_file(t, n);
	/* per flow only: a per-source sum here would cost a second random
	 * cache line per packet; mry_flow_top_sources() adds them up */
	n->bytes += nbytes;
}

void mry_flow_set_phase(struct mry_flow_table *t, struct mry_flow *f,
			enum mry_flow_phase phase, uint64_t now_ns)
{
	struct mry_flow_node *n = node_of(f);
	struct flow_src *e = &t->src[n->src_id];

	if ((unsigned)phase >= MRY_FLOW_PHASE_MAX || f->phase == phase)
		return;
	if (f->phase == MRY_FLOW_PHASE_DATA && e->data_flows > 0)
		e->data_flows--;
	if (phase == MRY_FLOW_PHASE_DATA) {
		e->data_flows++;
		n->data_start_ns = now_ns;
		n->data_bytes = 0;
	}
	if (phase_counted(f->phase) && !phase_counted(phase))
		e->flows--;
	else if (!phase_counted(f->phase) && phase_counted(phase))
		e->flows++;
	t->st.open_by_phase[f->phase]--;
	t->st.open_by_phase[phase]++;
	f->phase = (uint8_t)phase;
	f->last_ns = now_ns;
	lru_file(t, n);
	arm_phase(t, n, now_ns, true);
}

void mry_flow_rearm(struct mry_flow_table *t, struct mry_flow *f, uint64_t now_ns)
{
	arm_phase(t, node_of(f), now_ns, true);
}

void mry_flow_data_progress(struct mry_flow_table *t, struct mry_flow *f,
			    uint64_t nbytes, uint64_t now_ns)
{
	struct mry_flow_node *n = node_of(f);
	uint64_t cap, dl;

	if (f->phase != MRY_FLOW_PHASE_DATA || nbytes == 0)
		return;
	n->data_bytes += nbytes;
	cap = now_ns + timeout_now(t, MRY_FLOW_PHASE_DATA);
	if (t->min_data_rate == 0) {
		dl = cap;
	} else {
		/* credit nbytes / rate seconds; clamped so the product cannot wrap */
		uint64_t credit = MRY_MIN(nbytes, (uint64_t)UINT32_MAX) * MRY_NS_PER_SEC /
				  t->min_data_rate;

		dl = MRY_MIN(n->deadline_ns + credit, cap);
	}
	if (dl > n->deadline_ns || t->emergency)
		deadline_set(t, n, dl, true);
}

uint64_t mry_flow_deadline(const struct mry_flow_table *t, const struct mry_flow *f)
{
	(void)t;
	return node_of((struct mry_flow *)(uintptr_t)f)->deadline_ns;
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

/* ---- emergency mode ---------------------------------------------------- */

static void emergency_update(struct mry_flow_table *t)
{
	uint32_t own = (uint32_t)((uint64_t)t->st.active * 100 / t->max_flows);
	uint32_t p = MRY_MAX(own, t->pressure_ext);

	t->st.pressure_pct = p;
	if (!t->emergency && t->em_high <= 100 && p >= t->em_high) {
		t->emergency = true;
		t->em_cursor = 0;
		t->st.emergency_entered++;
		mry_log(MRY_LOG_WARNING, "flow",
			"emergency mode on: pressure %u%% >= %u%%, deadlines cut to %u%%",
			p, t->em_high, t->em_pct);
	} else if (t->emergency && p < t->em_low) {
		t->emergency = false;
		t->st.emergency_exited++;
		mry_log(MRY_LOG_INFO, "flow", "emergency mode off: pressure %u%% < %u%%",
			p, t->em_low);
	}
}

void mry_flow_set_pressure(struct mry_flow_table *t, uint32_t pct, uint64_t now_ns)
{
	(void)now_ns;
	t->pressure_ext = MRY_MIN(pct, 100u);
	emergency_update(t);
}

bool mry_flow_emergency(const struct mry_flow_table *t)
{
	return t->emergency;
}

/* Cut up to @budget slots' deadlines armed before emergency mode began. */
static void emergency_cut(struct mry_flow_table *t, uint32_t budget, uint64_t now_ns)
{
	while (budget-- > 0 && t->em_cursor < t->max_flows) {
		struct mry_flow_node *n = &t->nodes[t->em_cursor++];

		if (!n->in_use || n->scaled || n->deadline_ns <= now_ns)
			continue;
		n->scaled = 1;
		deadline_set(t, n, now_ns + em_scale(t, n->deadline_ns - now_ns), true);
		t->st.emergency_shortened++;
	}
}

/* ---- expiry ------------------------------------------------------------ */

void mry_flow_expire(struct mry_flow_table *t, uint64_t now_ns)
{
	uint32_t budget = t->budget;
	uint32_t slots = t->budget * FLOW_SLOT_SCAN_FACTOR;
	uint64_t target;

	clock_start(t, now_ns);
	emergency_update(t);
	if (t->emergency)
		emergency_cut(t, t->budget, now_ns);
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
		if (n->deadline_ns > now_ns) {
			timer_file(t, n, n->deadline_ns);   /* moved later, or a later round */
			continue;
		}
		if (f->flags & MRY_FLOW_F_HELD) {
			t->st.timeout_held++;
			arm_phase(t, n, now_ns, false);
			continue;
		}
		t->st.timeouts[f->phase]++;
		if (f->phase == MRY_FLOW_PHASE_DATA &&
		    now_ns - f->last_ns < t->timeout_ns[MRY_FLOW_PHASE_DATA])
			t->st.timeout_data_slow++;
		node_end(t, n, MRY_FLOW_END_TIMEOUT);
	}
}

/* ---- queries ----------------------------------------------------------- */

enum mry_flow_evict_class mry_flow_evict_class(const struct mry_flow_table *t)
{
	return (enum mry_flow_evict_class)t->last_class;
}

const char *mry_flow_evict_class_name(enum mry_flow_evict_class c)
{
	static const char *const names[MRY_FLOW_EVICT_MAX] = {
		"half_open", "idle", "data_slow", "data_moving",
	};

	return (unsigned)c < MRY_FLOW_EVICT_MAX ? names[c] : "unknown";
}

const char *mry_flow_phase_name(enum mry_flow_phase p)
{
	static const char *const names[MRY_FLOW_PHASE_MAX] = {
		"half_open", "greeting", "cmd", "data_init", "data", "data_end", "closing",
	};

	return (unsigned)p < MRY_FLOW_PHASE_MAX ? names[p] : "unknown";
}

/* ---- table ------------------------------------------------------------- */

static uint32_t pow2_at_least(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p <<= 1;
	return p > (1ULL << 31) ? (1u << 31) : (uint32_t)p;
}

void mry_flow_config_defaults(struct mry_flow_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_flows = MRY_FLOW_MAX_DEFAULT;
	cfg->max_per_source = MRY_FLOW_PER_SOURCE_DEFAULT;
	cfg->timeout_ns[MRY_FLOW_PHASE_HALF_OPEN] = 10 * MRY_NS_PER_SEC;
	cfg->timeout_ns[MRY_FLOW_PHASE_GREETING] = 300 * MRY_NS_PER_SEC;
	cfg->timeout_ns[MRY_FLOW_PHASE_CMD] = 300 * MRY_NS_PER_SEC;
	cfg->timeout_ns[MRY_FLOW_PHASE_DATA_INIT] = 120 * MRY_NS_PER_SEC;
	cfg->timeout_ns[MRY_FLOW_PHASE_DATA] = 180 * MRY_NS_PER_SEC;
	cfg->timeout_ns[MRY_FLOW_PHASE_DATA_END] = 600 * MRY_NS_PER_SEC;
	cfg->timeout_ns[MRY_FLOW_PHASE_CLOSING] = 10 * MRY_NS_PER_SEC;
	cfg->expire_budget = FLOW_DEFAULT_BUDGET;
	cfg->min_data_rate = MRY_FLOW_MIN_DATA_RATE_DEFAULT;
	cfg->emergency_high_pct = MRY_FLOW_EMERGENCY_HIGH_DEFAULT;
	cfg->emergency_low_pct = MRY_FLOW_EMERGENCY_LOW_DEFAULT;
	cfg->emergency_timeout_pct = MRY_FLOW_EMERGENCY_TIMEOUT_DEFAULT;
}

struct mry_flow_table *mry_flow_table_create(const struct mry_alloc *a,
					     const struct mry_flow_config *cfg,
					     mry_flow_end_fn end_fn, void *ctx)
{
	struct mry_flow_config def, c;
	struct mry_flow_table *t;
	uint64_t tmin = UINT64_MAX, tmax = 0;
	uint32_t i, nb_idx, nb_src_idx, nb_wheel;

	mry_flow_config_defaults(&def);
	c = cfg != NULL ? *cfg : def;
	t = mry_zalloc(a, sizeof(*t));
	if (t == NULL)
		goto fail;
	t->alloc = a;
	t->max_flows = c.max_flows != 0 ? c.max_flows : def.max_flows;
	if (t->max_flows > (1u << 28)) {
		mry_log(MRY_LOG_ERR, "flow", "max_flows %u too large", t->max_flows);
		goto fail;
	}
	t->max_per_source = c.max_per_source;
	t->min_data_rate = c.min_data_rate;
	t->max_half_open = c.max_half_open != 0 ? c.max_half_open
						: MRY_MAX(t->max_flows / 4, 1u);
	t->budget = c.expire_budget != 0 ? c.expire_budget : def.expire_budget;
	t->em_high = c.emergency_high_pct != 0 ? c.emergency_high_pct : def.emergency_high_pct;
	t->em_low = c.emergency_low_pct != 0 ? c.emergency_low_pct : def.emergency_low_pct;
	t->em_pct = c.emergency_timeout_pct != 0 ? c.emergency_timeout_pct
						 : def.emergency_timeout_pct;
	if (t->em_pct > 100 || (t->em_high <= 100 && t->em_low > t->em_high)) {
		mry_log(MRY_LOG_ERR, "flow",
			"emergency settings invalid: high %u%% low %u%% timeouts %u%%",
			t->em_high, t->em_low, t->em_pct);
		goto fail;
	}
	for (i = 0; i < MRY_FLOW_PHASE_MAX; i++) {
		t->timeout_ns[i] = c.timeout_ns[i] != 0 ? c.timeout_ns[i] : def.timeout_ns[i];
		tmin = MRY_MIN(tmin, t->timeout_ns[i]);
		tmax = MRY_MAX(tmax, t->timeout_ns[i]);
	}
	t->tick_ns = MRY_MAX(tmin / FLOW_TICKS_PER_TIMEOUT, 1);
	nb_wheel = pow2_at_least(tmax / t->tick_ns + 2);
	nb_wheel = MRY_MAX(nb_wheel, FLOW_WHEEL_MIN_SLOTS);
	nb_wheel = MRY_MIN(nb_wheel, FLOW_WHEEL_MAX_SLOTS);
	nb_idx = pow2_at_least((uint64_t)t->max_flows * 2);
	nb_src_idx = nb_idx;
	t->idx_mask = nb_idx - 1;
	t->src_idx_mask = nb_src_idx - 1;
	t->wheel_mask = nb_wheel - 1;

	t->nodes = mry_zalloc_aligned(a, sizeof(*t->nodes) * t->max_flows,
				      MRY_CACHE_LINE);
	t->idx = mry_zalloc_aligned(a, sizeof(*t->idx) * nb_idx, MRY_CACHE_LINE);
	t->src = mry_zalloc_aligned(a, sizeof(*t->src) * t->max_flows, MRY_CACHE_LINE);
	t->src_idx = mry_zalloc_aligned(a, sizeof(*t->src_idx) * nb_src_idx,
					MRY_CACHE_LINE);
	t->wheel = mry_zalloc_aligned(a, sizeof(*t->wheel) * nb_wheel, MRY_CACHE_LINE);
	if (t->nodes == NULL || t->idx == NULL || t->src == NULL ||
	    t->src_idx == NULL || t->wheel == NULL) {
		mry_log(MRY_LOG_ERR, "flow", "cannot allocate table for %u flows",
			t->max_flows);
		goto fail;
	}
	for (i = 0; i < nb_idx; i++)
		t->idx[i].slot = FLOW_IDX_EMPTY;
	for (i = 0; i < nb_src_idx; i++)
		t->src_idx[i].slot = FLOW_IDX_EMPTY;
	for (i = 0; i < t->max_flows; i++)
		t->src[i].data_flows = i + 1 < t->max_flows ? i + 1 : UINT32_MAX;
	t->src_free = 0;
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
		mry_free(a, t->src_idx);
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
	mry_free(t->alloc, t->src_idx);
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

bool mry_flow_walk(struct mry_flow_table *t, uint32_t *cursor, uint32_t budget,
		   bool (*fn)(void *ctx, struct mry_flow *f), void *ctx)
{
	/* by slot index, as foreach: fn may end the flow it is given */
	while (budget-- > 0 && *cursor < t->max_flows) {
		struct mry_flow_node *n = &t->nodes[(*cursor)++];

		if (n->in_use && !fn(ctx, &n->flow))
			break;
	}
	return *cursor >= t->max_flows;
}

void mry_flow_end(struct mry_flow_table *t, struct mry_flow *f, enum mry_flow_end_reason why)
{
	struct mry_flow_node *n = node_of(f);

	if (n->in_use)
		node_end(t, n, why);
}

void mry_flow_get_stats(const struct mry_flow_table *t, struct mry_flow_stats *st)
{
	*st = t->st;
	st->sources = t->nb_sources;
	st->half_open_budget = t->max_half_open;
	st->emergency = t->emergency ? 1 : 0;
}

size_t mry_flow_table_bytes_per_flow(const struct mry_flow_table *t)
{
	size_t total = sizeof(struct mry_flow_node) * t->max_flows +
		       sizeof(struct flow_idx) * ((size_t)t->idx_mask + 1) +
		       sizeof(struct flow_src) * t->max_flows +
		       sizeof(struct flow_idx) * ((size_t)t->src_idx_mask + 1) +
		       sizeof(struct flow_link) * ((size_t)t->wheel_mask + 1);

	return (total + t->max_flows - 1) / t->max_flows;
}
