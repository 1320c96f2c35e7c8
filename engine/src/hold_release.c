/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Held messages leave the hold: when a generation becomes usable each is
 * scanned from the store and either released (the withheld end-of-message
 * goes to the server) or answered like any judged message; one that waited
 * past the hold timeout is tempfailed.
 */
#include <string.h>

#include "engine_priv.h"

/* ---- held messages ------------------------------------------------------ */

/*
 * The frame that carried the end never arrived in order while the message
 * was held (it came out of order and was dropped, and the client has not
 * retransmitted yet): send the end-of-message bytes themselves, the same
 * bytes the client sent at that offset (".\r\n" for DATA, the last octet
 * of the LAST chunk for BDAT), so the release does not wait for the
 * client's retransmission back-off. Retransmissions then pass as usual.
 */
static void release_synthesized(struct mry_engine *e, struct msg *m)
{
	struct session *s = m->sess;
	const struct mry_tcp_stream *cst = &s->flow->stream[s->flow->client_side & 1u];
	uint32_t seq = cst->base_seq + (uint32_t)m->eom_off, n;
	char last[4];
	uint32_t plen;

	if (m->kind == MRY_SMTP_MSG_DATA) {
		memcpy(last, ".\r\n", 3);
		plen = 3;
	} else if (m->size > 0 && m->chunk_tail != NULL && m->chunk_tail->len > 0) {
		last[0] = (char)m->chunk_tail->data[m->chunk_tail->len - 1];
		plen = 1;
	} else {
		return;   /* BDAT 0 LAST: the client's retransmission carries it */
	}
	n = mry_inject_segment(e, s, false, seq, s->tmpl_ack, MRY_TCP_ACK | MRY_TCP_PSH, last, plen);
	mry_inject_emit(e, s, MRY_EMIT_TO_SERVER, e->txbuf, n);
}

static void release_held(struct mry_engine *e, struct msg *m, struct mry_sigdb_gen *g)
{
	struct session *s = m->sess;
	struct mry_scan_result res;
	struct hold_chunk *c;
	enum msg_verdict v;
	const char *action;

	mry_hold_queue_del(e, m);
	m->state = MSG_DONE;
	if (!mry_verdict_scan_open(e, m, g)) {
		mry_verdict_log_scan_error(e, m);
		mry_verdict_tempfail_free(e, m, "scan_resources");
		return;
	}
	e->st.msgs_released++;
	for (c = m->chunks; c != NULL; c = c->next)
		mry_verdict_scan_feed(m, c->data, c->len);
	mry_verdict_scan_close(m, &res);
	action = mry_verdict_apply(e, m, &res, &v);
	if (v == V_CLEAN) {
		/* the withheld end-of-message, byte-identical to what the client sent */
		if (m->eom_frame != NULL)
			mry_inject_emit(e, s, MRY_EMIT_TO_SERVER, m->eom_frame, m->eom_frame_len);
		else
			release_synthesized(e, m);
		s->withhold_off = NO_OFF;
		e->st.msgs_clean++;
		e->st.last_clean_ns = e->now_ns;
		action = "released";
	}
	mry_verdict_hold_event(e, m, "release", mry_verdict_name(v));
	if (s->pending == m)
		s->pending = NULL;
	mry_verdict_msg_done(e, m, mry_verdict_name(v), action, &res);
}

void mry_hold_tick(struct mry_engine *e)
{
	struct mry_sigdb_gen *g = e->hold_head != NULL ? mry_sigdb_ctl_usable(e->ctl) : NULL;
	unsigned budget = TICK_BUDGET;
	struct msg *m = e->hold_head;

	/* arrival order: the oldest first */
	while (m != NULL && budget-- > 0) {
		struct msg *next = m->hold_next;

		if (g != NULL) {
			release_held(e, m, g);
		} else if (e->now_ns - m->held_ns >= e->cfg.hold_timeout_ns) {
			e->st.hold_timeouts++;
			mry_verdict_tempfail_free(e, m, "hold_timeout");
		}
		m = next;
	}
	e->st.hold_oldest_ns = e->hold_head != NULL ? e->hold_head->held_ns : 0;
}
