/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Message life as the SMTP layer reports it: a message begins (scan now,
 * or hold when no usable generation exists), its bytes arrive, it ends
 * (judged before the frame that carried its end is let through, or put on
 * hold) or is aborted; STARTTLS and SMTP anomalies are noted here too.
 */
#include <string.h>

#include "engine_priv.h"

/*
 * A message moray cannot judge (no message slot, or an envelope it could
 * not store): the client is answered now (451 4.3.2), the server reset
 * where forwarding stopped, so it never gets a message moray cannot judge;
 * logged with what is known of the envelope and @reason, counted.
 */
static void msg_refuse(struct mry_engine *e, struct session *s,
		       const struct mry_smtp_msg_info *mi, const char *reason)
{
	static struct msg tmp;
	struct mry_flow *f = s->flow;

	e->st.msgs_tempfail++;
	s->withhold_off = mry_tcp_stream_delivered(&f->stream[f->client_side & 1u]);
	memset(&tmp, 0, sizeof(tmp));
	tmp.sess = s;
	tmp.index = mi->msg_index;
	tmp.kind = (uint8_t)mi->kind;
	tmp.state = MSG_DONE;
	mry_verdict_conn_of(f, &tmp.conn);
	mry_verdict_copy_envelope(&tmp, mi);
	mry_shed_note(e, SHED_NO_MSG_SLOT, f->phase, f->key.ip_version,
		      f->key.addr[f->client_side & 1u]);
	mry_inject_answer_and_reset(e, s, "451 4.3.2 moray Error: no resources for this message\r\n",
				    s->withhold_off, NO_OFF);
	mry_verdict_message_event(e, &tmp, "tempfail", "tempfailed", NULL, reason);
}

/*
 * A message slot for @s. When the pool is empty, a DATA flow behind the
 * minimum data rate (a slow-DATA flood holds slots this way) is ended to
 * free one: a message that is moving is never traded for a new one.
 */
static struct msg *msg_slot(struct mry_engine *e, struct session *s)
{
	struct msg *m = mry_pool_get(e->msg_pool);

	if (m == NULL && mry_flow_evict_slow_data(e->flows, s->flow, e->now_ns)) {
		m = mry_pool_get(e->msg_pool);
		if (m != NULL)
			e->st.msg_slot_reclaimed++;
	}
	if (m != NULL)
		e->st.msgs_open++;
	return m;
}

static bool holds_envelope(void *ctx, const struct mry_flow *f)
{
	const struct session *s = f->app;

	(void)ctx;
	return s != NULL && s->smtp != NULL && mry_smtp_holds_envelope(s->smtp);
}

/*
 * MAIL found the envelope pool empty: a DATA flow behind the minimum data
 * rate gives its envelope back, else a connection idle in the command phase
 * for MRY_FLOW_IDLE_RECLAIM_NS that holds one (a flood that sends MAIL and
 * waits). A client that is moving keeps its envelope.
 */
static bool smtp_envelope_wanted(void *user)
{
	struct session *s = user;
	struct mry_engine *e = s->e;

	if (!mry_flow_evict_slow_data(e->flows, s->flow, e->now_ns) &&
	    !mry_flow_evict_idle(e->flows, s->flow, holds_envelope, e, e->now_ns))
		return false;
	e->st.env_slot_reclaimed++;
	return true;
}

static void smtp_msg_begin(void *user, const struct mry_smtp_msg_info *mi)
{
	struct session *s = user;
	struct mry_engine *e = s->e;
	struct mry_sigdb_gen *g;
	struct msg *m;

	if (s->msg != NULL)       /* defensive: the SMTP layer ends one before the next */
		mry_verdict_msg_free(e, s->msg);
	if (mi->envelope_lost) {
		/* its sender and recipients are unknown: never an empty envelope */
		e->st.msg_no_envelope++;
		msg_refuse(e, s, mi, "no_envelope_slot");
		return;
	}
	m = msg_slot(e, s);
	if (m == NULL) {
		e->st.msg_pool_empty++;
		if (mry_ratelimit_ok(&e->rl_no_msg, e->now_ns, 10 * MRY_NS_PER_SEC, NULL))
			mry_log(MRY_LOG_WARNING, "engine",
				"message pool empty (--max-msgs %u) and no DATA flow behind --min-data-rate: new messages answered 451 4.3.2",
				e->cfg.max_msgs);
		msg_refuse(e, s, mi, "no_msg_slot");
		return;
	}
	m->sess = s;
	m->index = mi->msg_index;
	m->kind = (uint8_t)mi->kind;
	m->state = MSG_DATA;
	m->eom_off = NO_OFF;
	/* anomalies of this transaction seen before its data began */
	m->evasions = s->evasions;
	s->evasions = 0;
	mry_verdict_conn_of(s->flow, &m->conn);
	mry_verdict_copy_envelope(m, mi);
	s->msg = m;
	s->nb_msgs++;
	e->st.msgs++;
	mry_flow_set_phase(e->flows, s->flow, MRY_FLOW_PHASE_DATA, e->now_ns);

	g = mry_sigdb_ctl_usable(e->ctl);
	if (g == NULL || e->cfg.hold_store_bytes == 0) {
		m->hold = true;
		m->held_ns = e->now_ns;
		if (e->st.hold_msgs >= e->cfg.hold_max_msgs)
			mry_hold_store_full(e, m);
		return;
	}
	if (!mry_verdict_scan_open(e, m, g)) {
		/* resources short: judged by no one, so it cannot pass */
		mry_verdict_log_scan_error(e, m);
		mry_verdict_scan_abort(m);
		m->store_full = true;
		m->hold = false;
	}
}

static void smtp_msg_data(void *user, const uint8_t *d, size_t len)
{
	struct session *s = user;
	struct mry_engine *e = s->e;
	struct msg *m = s->msg;

	if (m == NULL)
		return;
	mry_flow_data_progress(e->flows, s->flow, len, e->now_ns);
	m->size += len;
	if (e->io.message != NULL)
		e->io.message(e->io_ctx, &m->conn, m->index, d, (uint32_t)len, false);
	if (m->hold) {
		if (!m->store_full)
			mry_hold_append(e, m, d, len);
		return;
	}
	mry_verdict_scan_feed(m, d, len);
}

static void smtp_msg_end(void *user, const struct mry_smtp_msg_info *mi, uint64_t eom_off)
{
	struct session *s = user;
	struct mry_engine *e = s->e;
	struct msg *m = s->msg;
	struct mry_scan_result res;
	enum msg_verdict v;
	const char *action;

	if (m == NULL) {
		/* message context was unavailable: never pass it */
		if (!(s->flags & SESS_CLOSED_BY_US)) {
			e->st.msgs_tempfail++;
			mry_inject_answer_and_reset(e, s, "451 4.7.1 Resources exhausted, try again later\r\n",
					 eom_off, NO_OFF);
		}
		return;
	}
	mry_verdict_copy_envelope(m, mi);
	m->size = mi->size;
	m->eom_off = eom_off;
	m->eom_end = mry_inject_eom_end(s, m);
	s->msg = NULL;
	if (e->io.message != NULL)
		e->io.message(e->io_ctx, &m->conn, m->index, NULL, 0, true);
	/* moray's own answer (tempfail, reject) ends the wait for a reply */
	mry_flow_set_phase(e->flows, s->flow, MRY_FLOW_PHASE_CMD, e->now_ns);

	if (m->store_full) {
		mry_verdict_tempfail_free(e, m, "hold_store_full");
		return;
	}
	if (m->hold) {
		/* withhold from the end-of-message until a usable generation judges it */
		m->state = MSG_HELD;
		s->pending = m;
		/* an ambiguous end of data earlier in the message stays withheld too */
		s->withhold_off = MRY_MIN(s->withhold_off, eom_off);
		mry_hold_queue_add(e, m);
		mry_flow_set_phase(e->flows, s->flow, MRY_FLOW_PHASE_DATA_END, e->now_ns);
		e->st.msgs_held++;
		if (e->st.hold_oldest_ns == 0)
			e->st.hold_oldest_ns = m->held_ns;
		mry_verdict_hold_event(e, m, "hold", mry_sigdb_ctl_reason(e->ctl));
		mry_verdict_message_event(e, m, "unscanned", "held", NULL, NULL);
		return;
	}
	mry_verdict_scan_close(m, &res);
	action = mry_verdict_apply(e, m, &res, &v);
	if (v == V_CLEAN) {
		e->st.msgs_clean++;
		e->st.last_clean_ns = e->now_ns;
	}
	if (v == V_CLEAN && m->ambiguous_end)
		s->withhold_off = NO_OFF;   /* --bare-lf strict: the rest may pass now */
	/* forwarded: the server stores it, its final reply may take 10 min
	 * (RFC 5321 §4.5.3.2.6) */
	if (!(s->flags & SESS_CLOSED_BY_US))
		mry_flow_set_phase(e->flows, s->flow, MRY_FLOW_PHASE_DATA_END, e->now_ns);
	mry_verdict_msg_done(e, m, mry_verdict_name(v), action, &res);
	e->ended_msg = true;
}

static void smtp_msg_reply(void *user, const struct mry_smtp_msg_info *mi, unsigned code,
			   const char *text, size_t text_len)
{
	struct session *s = user;
	struct msg *p = s->pending;

	(void)text;
	(void)text_len;
	if (s->flow->phase == MRY_FLOW_PHASE_DATA_END) {
		/* a DATA pipelined after the end now waits for its 354 */
		bool data_sent = s->smtp != NULL && mry_smtp_withhold_from(s->smtp) != UINT64_MAX;

		mry_flow_set_phase(s->e->flows, s->flow, data_sent ? MRY_FLOW_PHASE_DATA_INIT :
				   MRY_FLOW_PHASE_CMD, s->e->now_ns);
	}
	/*
	 * Inline, a server never answers an end that moray withholds; in a
	 * replayed capture (moray-scan) it does, and its close afterwards is
	 * the recorded session ending, not a server giving up on the hold.
	 */
	if (p != NULL && p->index == mi->msg_index) {
		p->replayed_reply = true;
		p->server_reply = (uint16_t)code;
		if (mi->has_envelope)
			mry_verdict_copy_envelope(p, mi);
		return;
	}
	mry_verdict_server_reply(s->e, s, mi, code);
}

/*
 * A "." line some server takes as the end of data (SMTP smuggling): from
 * its dot on, nothing reaches the server until the message is judged, like
 * the real end of the message (DESIGN.md, "Verdicts toward the network").
 */
static void smtp_msg_ambiguous_end(void *user, enum mry_smtp_anomaly an, uint64_t off)
{
	struct session *s = user;

	(void)an;
	if (s->msg != NULL)
		s->msg->ambiguous_end = true;
	s->withhold_off = MRY_MIN(s->withhold_off, off);
}

static void smtp_msg_abort(void *user, const struct mry_smtp_msg_info *mi,
			   enum mry_smtp_abort_reason why)
{
	struct session *s = user;
	struct mry_engine *e = s->e;
	struct msg *m = s->msg;

	static const char *const why_names[] = { "closed", "rejected", "rset", "tls" };

	if (m == NULL)
		return;
	mry_verdict_copy_envelope(m, mi);
	if (e->io.message != NULL)
		e->io.message(e->io_ctx, &m->conn, m->index, NULL, 0, true);
	mry_flow_set_phase(e->flows, s->flow, MRY_FLOW_PHASE_CMD, e->now_ns);
	mry_verdict_msg_abort(e, m, why_names[why <= MRY_SMTP_ABORT_TLS ? why : 0]);
}

static void smtp_starttls(void *user)
{
	struct session *s = user;
	struct mry_engine *e = s->e;

	s->flags |= SESS_ENCRYPTED;
	e->st.msgs_encrypted++;
	if (e->cfg.encrypted == MRY_ENCRYPTED_BLOCK)
		s->flags |= SESS_BLOCK_TLS;
	mry_verdict_encrypted_event(e, s);
}

static void smtp_anomaly(void *user, enum mry_smtp_anomaly an)
{
	struct session *s = user;

	note_evasion(s->e, s, EV_SMTP_BASE + (unsigned)an);
}

/*
 * The flow's deadline follows the SMTP exchange (flow.h, enum
 * mry_flow_phase): the greeting ends GREETING, a command line or a reply
 * re-arms CMD (a reply also DATA_INIT and DATA_END: the wait for 354 or
 * the final reply starts once the server has answered what was pipelined
 * before), DATA enters DATA_INIT, a refusal returns to CMD; 354 (msg_begin)
 * enters DATA, the end (msg_end) DATA_END, the final reply (msg_reply) CMD.
 * A BDAT chunk's octets run on the DATA rate clock; between chunks the
 * client is in command phase again with its message still open.
 */
static void smtp_phase(void *user, enum mry_smtp_phase_event ev)
{
	struct session *s = user;
	struct mry_engine *e = s->e;
	struct mry_flow *f = s->flow;
	enum mry_flow_phase ph = (enum mry_flow_phase)f->phase;

	switch (ev) {
	case MRY_SMTP_PH_GREETING:
		if (ph == MRY_FLOW_PHASE_GREETING)
			mry_flow_set_phase(e->flows, f, MRY_FLOW_PHASE_CMD, e->now_ns);
		break;
	case MRY_SMTP_PH_REPLY:
		if (ph == MRY_FLOW_PHASE_CMD || ph == MRY_FLOW_PHASE_DATA_INIT ||
		    ph == MRY_FLOW_PHASE_DATA_END)
			mry_flow_rearm(e->flows, f, e->now_ns);
		break;
	case MRY_SMTP_PH_COMMAND:
		if (ph == MRY_FLOW_PHASE_CMD)
			mry_flow_rearm(e->flows, f, e->now_ns);
		break;
	case MRY_SMTP_PH_DATA_SENT:
		if (ph == MRY_FLOW_PHASE_CMD)
			mry_flow_set_phase(e->flows, f, MRY_FLOW_PHASE_DATA_INIT, e->now_ns);
		break;
	case MRY_SMTP_PH_DATA_REFUSED:
		if (ph == MRY_FLOW_PHASE_DATA_INIT)
			mry_flow_set_phase(e->flows, f, MRY_FLOW_PHASE_CMD, e->now_ns);
		break;
	case MRY_SMTP_PH_BDAT_CHUNK:
		if (ph == MRY_FLOW_PHASE_CMD && s->msg != NULL)
			mry_flow_set_phase(e->flows, f, MRY_FLOW_PHASE_DATA, e->now_ns);
		break;
	case MRY_SMTP_PH_BDAT_CHUNK_END:
		if (ph == MRY_FLOW_PHASE_DATA)
			mry_flow_set_phase(e->flows, f, MRY_FLOW_PHASE_CMD, e->now_ns);
		break;
	default:
		break;
	}
}

const struct mry_smtp_callbacks mry_msg_smtp_cb = {
	.msg_begin = smtp_msg_begin,
	.envelope_wanted = smtp_envelope_wanted,
	.msg_data = smtp_msg_data,
	.msg_end = smtp_msg_end,
	.msg_reply = smtp_msg_reply,
	.msg_abort = smtp_msg_abort,
	.starttls = smtp_starttls,
	.anomaly = smtp_anomaly,
	.msg_ambiguous_end = smtp_msg_ambiguous_end,
	.phase = smtp_phase,
};
