/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Taking back another pool's objects (messages in progress, envelopes) from
 * the flows that waste them, when that pool runs dry (README, "Pools a
 * flood empties"). Both searches look at a bounded number of the least
 * recently active flows of one eviction class and end the chosen one as an
 * eviction (end_fn with MRY_FLOW_END_EVICTED), so a reclaim costs what one
 * eviction costs whatever the table holds.
 */
#include "flow_priv.h"

#define RECLAIM_LOOK (4u * MRY_FLOW_EVICT_SAMPLE)

/*
 * A DATA flow that may give its message slot: behind the minimum rate
 * after the grace period; or, within it, silent for MRY_FLOW_RECLAIM_SILENT_NS
 * with fewer bytes than the rate allows over the grace period (a flood
 * still opening its connections would otherwise hold every slot for the
 * first seconds; a sender that is moving is never silent that long).
 */
static bool reclaimable_data(const struct mry_flow_table *t, const struct mry_flow_node *n,
			     uint64_t now_ns)
{
	uint32_t r = t->min_data_rate != 0 ? t->min_data_rate : MRY_FLOW_MIN_DATA_RATE_DEFAULT;

	if (data_slow(t, n, now_ns))
		return true;
	return now_ns - n->flow.last_ns >= MRY_FLOW_RECLAIM_SILENT_NS &&
	       data_rate(n, now_ns) < (double)r;
}

bool mry_flow_evict_slow_data(struct mry_flow_table *t, const struct mry_flow *keep,
			      uint64_t now_ns)
{
	struct flow_link *h = &t->lists[FLOW_LIST_DATA], *it;
	struct mry_flow_node *best = NULL;
	uint32_t looked = 0, best_cnt = 0;
	double best_rate = 0;

	for (it = h->next; it != h && looked < RECLAIM_LOOK; it = it->next) {
		struct mry_flow_node *n = node_of_lru(it);
		uint32_t cnt = src_count(&t->src[n->src_id]);
		double rate;

		looked++;
		if (&n->flow == keep || (n->flow.flags & MRY_FLOW_F_HELD) ||
		    !reclaimable_data(t, n, now_ns))
			continue;
		rate = data_rate(n, now_ns);
		if (best == NULL || cnt > best_cnt || (cnt == best_cnt && rate < best_rate)) {
			best = n;
			best_cnt = cnt;
			best_rate = rate;
		}
	}
	if (best == NULL)
		return false;
	flow_evict(t, best, MRY_FLOW_EVICT_DATA_SLOW);
	return true;
}

bool mry_flow_evict_idle(struct mry_flow_table *t, const struct mry_flow *keep,
			 bool (*holds)(void *ctx, const struct mry_flow *f), void *ctx,
			 uint64_t now_ns)
{
	struct flow_link *h = &t->lists[FLOW_LIST_PRE], *it;
	struct mry_flow_node *best = NULL;
	uint32_t looked = 0, best_cnt = 0;

	for (it = h->next; it != h && looked < RECLAIM_LOOK; it = it->next) {
		struct mry_flow_node *n = node_of_lru(it);
		uint32_t cnt = src_count(&t->src[n->src_id]);

		looked++;
		if (now_ns - n->flow.last_ns < MRY_FLOW_IDLE_RECLAIM_NS ||
		    &n->flow == keep || (n->flow.flags & MRY_FLOW_F_HELD) ||
		    !holds(ctx, &n->flow))
			continue;
		if (best == NULL || cnt > best_cnt) {
			best = n;
			best_cnt = cnt;
		}
	}
	if (best == NULL)
		return false;
	flow_evict(t, best, MRY_FLOW_EVICT_IDLE);
	return true;
}
