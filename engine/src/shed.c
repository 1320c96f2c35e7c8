/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Flows moray ends itself (deadline, eviction, per-source cap, half-open
 * budget, blocklist, no message slot): both sides told (RST to the server
 * at the sequence number it expects; a reply and FIN, or an RST, to the
 * client), the 5-tuple remembered so its late frames are dropped, and one
 * aggregated "shed" event per reason per --shed-log-interval instead of a
 * line per flow (README, "Under floods").
 *
 * A new blocklist refuses its sources' new connections at once (the SYN is
 * checked in engine.c) and sheds their open flows in a sweep of the flow
 * table: SWEEP_SLOTS slots and at most SWEEP_SHED sheds per tick (each
 * shed puts up to three frames on the wire), so a block of a source with
 * thousands of flows neither stalls the worker nor floods its tx queue.
 * 65,536 slots take 256 ticks, a quarter of a second in moray.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "moray/blocklist.h"
#include "moray/engine.h"
#include "moray/event.h"
#include "moray/flow.h"
#include "moray/smtp.h"
#include "moray/tcp_reasm.h"

#include "engine_priv.h"

#define SWEEP_SLOTS 256u            /* flow slots a tick's sweep looks at */
#define SWEEP_SHED 64u              /* flows a tick's sweep ends at most */

/* ---- flows moray ends: aggregated shed events, both sides told ---------- */

const char *mry_shed_reason_name(enum shed_reason r)
{
	static const char *const names[SHED_MAX] = {
		"deadline", "evicted", "per_source_cap", "half_open_budget", "blocked",
		"no_msg_slot",
	};

	return r < SHED_MAX ? names[r] : "evicted";
}

void mry_shed_note(struct mry_engine *e, enum shed_reason r, unsigned phase,
		   uint8_t ip_version, const uint8_t *addr)
{
	struct shed_agg *a = &e->shed[r];
	size_t alen = ip_version == 6 ? 16 : 4;
	unsigned i, min = 0;

	switch (r) {
	case SHED_DEADLINE: e->st.shed_deadline++; break;
	case SHED_EVICTED: e->st.shed_evicted++; break;
	case SHED_PER_SOURCE_CAP: e->st.shed_per_source_cap++; break;
	case SHED_HALF_OPEN_BUDGET: e->st.shed_half_open_budget++; break;
	case SHED_BLOCKED: e->st.shed_blocked++; break;
	default: e->st.shed_no_msg_slot++; break;
	}
	if (a->count == 0 && e->shed_start_ns == 0)
		e->shed_start_ns = e->now_ns;
	a->count++;
	if (phase < MRY_FLOW_PHASE_MAX)
		a->phases[phase]++;
	/* top sources: exact while they fit, then the least counted is replaced */
	for (i = 0; i < a->nb; i++) {
		if (a->top[i].ip_version == ip_version && memcmp(a->top[i].addr, addr, alen) == 0) {
			a->top[i].count++;
			return;
		}
		if (a->top[i].count < a->top[min].count)
			min = i;
	}
	if (a->nb < SHED_TOP_TRACK)
		min = a->nb++;
	memset(a->top[min].addr, 0, sizeof(a->top[min].addr));
	memcpy(a->top[min].addr, addr, alen);
	a->top[min].ip_version = ip_version;
	a->top[min].count = 1;
}

/* One "shed" event per reason with flows, then a new interval. */
void mry_shed_flush(struct mry_engine *e)
{
	uint64_t ms = (e->now_ns - e->shed_start_ns) / 1000000u;

	for (unsigned r = 0; r < SHED_MAX; r++) {
		struct shed_agg *a = &e->shed[r];
		struct mry_event_shed_src top[SHED_TOP_LOG];
		bool used[SHED_TOP_TRACK] = { false };
		unsigned nt = 0;
		size_t n;

		if (a->count == 0)
			continue;
		while (nt < SHED_TOP_LOG && nt < a->nb) {
			unsigned best = SHED_TOP_TRACK;

			for (unsigned i = 0; i < a->nb; i++)
				if (!used[i] && (best == SHED_TOP_TRACK ||
						 a->top[i].count > a->top[best].count))
					best = i;
			used[best] = true;
			inet_ntop(a->top[best].ip_version == 6 ? AF_INET6 : AF_INET,
				  a->top[best].addr, top[nt].src, sizeof(top[nt].src));
			top[nt++].count = a->top[best].count;
		}
		n = mry_event_shed(e->evbuf, sizeof(e->evbuf), e->now_ns,
				   mry_shed_reason_name((enum shed_reason)r), a->count, ms,
				   a->phases, MRY_FLOW_PHASE_MAX, top, nt);
		mry_verdict_emit(e, n);
		memset(a, 0, sizeof(*a));
	}
	e->shed_start_ns = 0;
}

void mry_shed_maybe_flush(struct mry_engine *e)
{
	if (e->shed_start_ns != 0 &&
	    e->now_ns - e->shed_start_ns >= e->cfg.shed_log_interval_ns)
		mry_shed_flush(e);
}

static struct tomb *tomb_slot(struct mry_engine *e, uint32_t hash)
{
	return &e->tombs[hash & (TOMB_SLOTS - 1u)];
}

/*
 * Remember an ended 5-tuple until its slot is taken by another or a SYN
 * opens the 5-tuple again (a flood client that ignores the reply may go on
 * sending for minutes): its late frames are dropped, not taken for a new
 * mid-stream flow.
 */
static void tomb_add(struct mry_engine *e, const struct mry_flow *f)
{
	struct tomb *t = tomb_slot(e, f->hash);

	t->key = f->key;
	t->until_ns = UINT64_MAX;
}

/* The 5-tuple opens again (a new SYN): forget that it was shed. */
void mry_tomb_forget(struct mry_engine *e, uint32_t hash)
{
	tomb_slot(e, hash)->until_ns = 0;
}

bool mry_tomb_hit(struct mry_engine *e, const struct mry_flow_key *k, uint32_t hash)
{
	struct tomb *t = tomb_slot(e, hash);

	return t->until_ns > e->now_ns && memcmp(&t->key, k, sizeof(*k)) == 0;
}

/*
 * moray ends @f (deadline, eviction, block): the server gets an RST at the
 * sequence number it expects (where forwarding stopped), the client an RST
 * before it sent any payload, else a reply it can act on, then a FIN
 * (FLOOD-SPEC). A message in progress is logged tempfailed with @r.
 */
void mry_shed_flow(struct mry_engine *e, struct mry_flow *f, enum shed_reason r)
{
	struct session *s = f->app;
	unsigned cs = f->client_side & 1u;
	const struct mry_tcp_stream *cst = &f->stream[cs];
	const struct mry_tcp_stream *sst = &f->stream[cs ^ 1u];
	const char *reply;

	mry_shed_note(e, r, f->phase, f->key.ip_version, f->key.addr[cs]);
	tomb_add(e, f);
	if (s == NULL || (s->flags & (SESS_CLOSED_BY_US | SESS_MIDSTREAM)) || s->hdr_len == 0 ||
	    !(cst->flags & MRY_STREAM_STARTED))
		return;
	if (mry_tcp_stream_delivered(cst) == 0) {
		uint32_t srv_seq = (sst->flags & MRY_STREAM_STARTED) ? sst->next_seq : s->tmpl_ack;

		s->flags |= SESS_CLOSED_BY_US;
		mry_inject_reset_both(e, s, srv_seq, cst->next_seq,
				      cst->base_seq + (uint32_t)s->fwd_end, s->tmpl_ack);
		return;
	}
	if (s->pending != NULL && s->pending->state == MSG_HELD) {
		/* its end was withheld, waiting for a verdict (a blocked
		 * source): 451 acknowledging that end, the server reset; it
		 * never goes on unscanned */
		mry_verdict_tempfail_free(e, s->pending, mry_shed_reason_name(r));
		return;
	}
	if (s->msg != NULL) {
		struct msg *m = s->msg;

		reply = "451 4.4.2 moray Error: timeout exceeded\r\n";
		if (r == SHED_BLOCKED)
			reply = "451 4.7.1 moray Error: blocked\r\n";
		else if (r != SHED_DEADLINE)
			reply = "451 4.3.2 moray Error: no resources for this message\r\n";
		e->st.msgs_tempfail++;
		mry_inject_answer_and_reset(e, s, reply, NO_OFF, NO_OFF);
		mry_verdict_message_event(e, m, "tempfail", "tempfailed", NULL,
					  mry_shed_reason_name(r));
		mry_verdict_msg_free(e, m);
		s->msg = NULL;
		return;
	}
	switch (r) {
	case SHED_DEADLINE: reply = "421 4.4.2 moray Error: timeout exceeded\r\n"; break;
	case SHED_PER_SOURCE_CAP:
		reply = "421 4.7.0 moray Error: too many connections from your address\r\n";
		break;
	case SHED_BLOCKED: reply = "421 4.7.1 moray Error: blocked\r\n"; break;
	default: reply = "421 4.3.2 moray Error: system resources\r\n"; break;
	}
	mry_inject_answer_and_reset(e, s, reply, NO_OFF, NO_OFF);
}

/*
 * A new connection moray refuses (per-source cap, table or half-open budget
 * full, blocked source): an RST acknowledging the client's SYN, built from
 * the SYN itself; nothing reaches the server.
 */
void mry_refuse_syn(struct mry_engine *e, const struct mry_pkt *p, uint8_t side,
		       const struct mry_flow_key *key, enum shed_reason r, uint16_t in_port)
{
	struct session tmp;          /* on the stack: workers refuse SYNs at once */
	struct mry_flow tf;
	uint32_t n;

	mry_shed_note(e, r, MRY_FLOW_PHASE_HALF_OPEN, key->ip_version, key->addr[side & 1u]);
	if ((p->tcp_flags & (MRY_TCP_SYN | MRY_TCP_ACK)) != MRY_TCP_SYN)
		return;
	memset(&tmp, 0, sizeof(tmp));
	memset(&tf, 0, sizeof(tf));
	tf.client_side = side;
	tf.in_port[side & 1u] = in_port;
	tmp.flow = &tf;
	tmp.e = e;
	mry_inject_save_template(&tmp, p);
	n = mry_inject_segment(e, &tmp, true, 0, p->seq + 1, MRY_TCP_RST | MRY_TCP_ACK, NULL, 0);
	mry_inject_emit(e, &tmp, MRY_EMIT_TO_CLIENT, e->txbuf, n);
	e->st.resets_injected++;
}

/* ---- blocklist: open flows of listed sources shed ------------------------ */

void mry_engine_set_blocklist(struct mry_engine *e, const struct mry_blocklist *bl)
{
	struct mry_flow_stats fst;

	if (bl == e->blocklist)
		return;
	e->blocklist = bl;
	/* flows created from now on meet the new list at their SYN; the
	 * open ones are swept from the first slot (again, if a sweep of an
	 * older list was under way) */
	mry_flow_get_stats(e->flows, &fst);
	e->sweep_cursor = 0;
	e->sweeping = bl != NULL && fst.active > 0;
}

struct sweep {
	struct mry_engine *e;
	uint32_t shed;
};

static bool sweep_one(void *ctx, struct mry_flow *f)
{
	struct sweep *sw = ctx;
	struct mry_engine *e = sw->e;
	const struct session *s = f->app;
	unsigned cs = f->client_side & 1u;

	/* SMTP flows only, as the SYN check: other tracked TCP is not refused */
	if (s == NULL || !(s->flags & SESS_SMTP) ||
	    !mry_blocklist_match(e->blocklist, f->key.ip_version, f->key.addr[cs], e->now_ns))
		return true;
	/* the end of every flow moray ends: engine.c flow_end() sheds it
	 * (SHED_BLOCKED: 421 4.7.1, 451 with a message, the server reset) */
	mry_flow_end(e->flows, f, MRY_FLOW_END_BLOCKED);
	return ++sw->shed < SWEEP_SHED;
}

void mry_shed_sweep(struct mry_engine *e)
{
	struct sweep sw = { .e = e, .shed = 0 };

	if (!e->sweeping)
		return;
	if (e->blocklist == NULL ||
	    mry_flow_walk(e->flows, &e->sweep_cursor, SWEEP_SLOTS, sweep_one, &sw))
		e->sweeping = false;
}
