/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Emergency mode fed by every pool of the engine (DESIGN.md "Floods",
 * README "Under floods"). The flow table knows its own use; each tick the
 * engine adds the use of its other pools (messages in progress and their
 * envelopes, MIME parsers and scans, sessions, reassembly segments, the
 * hold store's chunks) and of the held-message limit, and hands the
 * fullest to mry_flow_set_pressure(). So a flood that takes the message
 * slots (a few thousand connections that reach DATA and trickle) cuts the
 * deadlines just as one that fills the flow table does, before legitimate
 * messages meet "451 4.3.2 no resources". The half-open budget is left
 * out: a SYN flood fills it by design and it cannot push out other flows.
 *
 * O(pools) per tick: each pool keeps its own in-use count. Each change of
 * state writes one "emergency" event naming the fullest pool.
 */
#include "moray/common.h"
#include "moray/engine.h"
#include "moray/event.h"
#include "moray/flow.h"

#include "engine_priv.h"

static void consider(struct mry_engine *e, const char *name, uint64_t used, uint64_t cap)
{
	uint32_t pct;

	if (cap == 0)
		return;
	pct = (uint32_t)MRY_MIN(used * 100 / cap, 100u);
	if (e->pressure_pool == NULL || pct > e->pressure_pct) {
		e->pressure_pct = pct;
		e->pressure_pool = name;
	}
}

void mry_pressure_update(struct mry_engine *e)
{
	struct mry_pool_stats ps;

	e->pressure_pct = 0;
	e->pressure_pool = NULL;
	/* first the limits an operator sets (--max-msgs, the hold): on a tie
	 * with the pools that follow them (envelopes, MIME, scans) they are
	 * the ones named */
	mry_pool_get_stats(e->msg_pool, &ps);
	consider(e, mry_pool_name(e->msg_pool), ps.in_use, ps.capacity);
	consider(e, "hold_msgs", e->st.hold_msgs, e->cfg.hold_max_msgs);
	for (unsigned i = 0; i < e->pools.nb; i++) {
		mry_pool_get_stats(e->pools.pool[i], &ps);
		consider(e, mry_pool_name(e->pools.pool[i]), ps.in_use, ps.capacity);
	}
	mry_flow_set_pressure(e->flows, e->pressure_pct, e->now_ns);
}

void mry_pressure_event(struct mry_engine *e)
{
	const struct mry_flow_config *fc = &e->cfg.flow;
	struct mry_flow_stats fst;
	bool on = mry_flow_emergency(e->flows);
	const char *pool;
	size_t n;

	if (on == e->emergency)
		return;
	e->emergency = on;
	mry_flow_get_stats(e->flows, &fst);
	/* the table decides on the larger of its own use and ours */
	pool = fst.pressure_pct > e->pressure_pct || e->pressure_pool == NULL ?
	       "flows" : e->pressure_pool;
	n = mry_event_emergency(e->evbuf, sizeof(e->evbuf), e->now_ns, on,
				(uint32_t)fst.pressure_pct, pool,
				fc->emergency_high_pct != 0 ? fc->emergency_high_pct :
				MRY_FLOW_EMERGENCY_HIGH_DEFAULT,
				fc->emergency_low_pct != 0 ? fc->emergency_low_pct :
				MRY_FLOW_EMERGENCY_LOW_DEFAULT);
	mry_verdict_emit(e, n);
}
