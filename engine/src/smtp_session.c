/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the SMTP client and server parsers share: counting anomalies, the
 * message events handed to the consumer (begin, end, abort, final reply,
 * each with the envelope it was sent under), the end of a transaction, the
 * queue of replies the commands wait for, and ending a session. This is
 * the bottom of the module: it calls none of the other smtp files.
 *
 * Replies wait in a 16-run queue; runs of RCPT, OTHER and BDAT chunks
 * coalesce, and beyond 16 distinct runs the newest two fold into one whose
 * replies change nothing (PIPELINE_OVERFLOW), which keeps replies in step
 * at the cost of what those replies would have confirmed.
 */
#include <string.h>

#include "moray/common.h"
#include "moray/smtp.h"
#include "smtp_priv.h"

/* ---- anomalies -------------------------------------------------------- */

void mry_smtp_flag_anomaly(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			   enum mry_smtp_anomaly an)
{
	c->st.anomalies[an]++;
	if (c->cb.anomaly != NULL)
		c->cb.anomaly(s->user, an);
}

/* ---- envelope --------------------------------------------------------- */

/* The transaction is over (end of message, RSET, refused MAIL, EHLO). */
void mry_smtp_txn_end(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	smtp_env_put(c, s->env);
	s->env = NULL;
	s->env_lost = false;
	s->txn++;
}

/*
 * The message ended: its transaction is over for the client, but with
 * pipelining (RFC 2920; BDAT LAST sent with MAIL and RCPT, as Exim does)
 * the replies to its RCPTs may still be on their way. The envelope stays
 * (one per session) until the final reply, so that reply reports only the
 * recipients the server accepted.
 */
void mry_smtp_txn_done(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	smtp_env_put(c, s->env_done);
	s->env_done = s->env;
	s->txn_done = s->txn;
	s->done_msg = s->cur_msg;
	s->env = NULL;
	s->env_lost = false;
	s->txn++;
}

static void mi_build_env(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			 struct smtp_env *e, uint32_t idx, struct mry_smtp_msg_info *mi)
{
	memset(mi, 0, sizeof(*mi));
	mi->kind = s->msg_bdat ? MRY_SMTP_MSG_BDAT : MRY_SMTP_MSG_DATA;
	mi->msg_index = idx;
	mi->mail_from = "";
	mi->rcpt = c->rcpt_view;
	mi->size = s->msg_size;
	if (e != NULL) {
		const uint8_t *ref = smtp_env_refused(c, e);
		uint32_t i;

		mi->mail_from = smtp_env_from(c, e);
		for (i = 0; i < e->nb_slots; i++)
			if (ref[i] == 0)
				c->rcpt_view[mi->nb_rcpt++] = smtp_env_rcpt(c, e, i);
		mi->declared_size = e->declared_size;
		mi->body_8bit = e->body_8bit;
		mi->body_binary = e->body_binary;
		mi->smtputf8 = e->smtputf8;
		mi->has_envelope = true;
	}
}

static void mi_build(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		     struct mry_smtp_msg_info *mi)
{
	mi_build_env(c, s, s->env, s->cur_msg, mi);
	mi->envelope_lost = s->env_lost;
}

/* ---- message events --------------------------------------------------- */

void mry_smtp_msg_begin(struct mry_smtp_ctx *c, struct mry_smtp_session *s, bool bdat)
{
	struct mry_smtp_msg_info mi;

	s->in_msg = true;
	s->msg_bdat = bdat;
	s->cur_msg = s->msg_count++;
	s->msg_size = 0;
	c->st.messages_begun++;
	if (c->cb.msg_begin != NULL) {
		mi_build(c, s, &mi);
		c->cb.msg_begin(s->user, &mi);
	}
}

void mry_smtp_msg_end(struct mry_smtp_ctx *c, struct mry_smtp_session *s, uint64_t eom_off)
{
	struct mry_smtp_msg_info mi;

	s->in_msg = false;
	c->st.messages_ended++;
	if (c->cb.msg_end != NULL) {
		mi_build(c, s, &mi);
		c->cb.msg_end(s->user, &mi, eom_off);
	}
}

void mry_smtp_msg_abort(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			enum mry_smtp_abort_reason why)
{
	struct mry_smtp_msg_info mi;

	s->in_msg = false;
	c->st.messages_aborted++;
	if (c->cb.msg_abort != NULL) {
		mi_build(c, s, &mi);
		c->cb.msg_abort(s->user, &mi, why);
	}
}

void mry_smtp_msg_reply(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			uint32_t idx, unsigned code, const char *text, size_t tlen)
{
	struct mry_smtp_msg_info mi;
	bool done = s->env_done != NULL && s->done_msg == idx;

	if (code >= 200 && code < 300)
		c->st.messages_accepted++;
	else
		c->st.messages_refused++;
	if (c->cb.msg_reply != NULL) {
		mi_build_env(c, s, done ? s->env_done : NULL, idx, &mi);
		mi.size = 0;
		c->cb.msg_reply(s->user, &mi, code, text, tlen);
	}
	if (done) {
		smtp_env_put(c, s->env_done);
		s->env_done = NULL;
	}
}

void mry_smtp_phase(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		    enum mry_smtp_phase_event ev)
{
	if (c->cb.phase != NULL)
		c->cb.phase(s->user, ev);
}

void mry_smtp_ambiguous_end(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
			    enum mry_smtp_anomaly an, uint64_t off)
{
	mry_smtp_flag_anomaly(c, s, an);
	if (c->cb.msg_ambiguous_end != NULL)
		c->cb.msg_ambiguous_end(s->user, an, off);
}

/* ---- reply queue ------------------------------------------------------ */
static bool q_can_merge(const struct smtp_qent *t, const struct smtp_qent *n)
{
	if (t->type != n->type || t->flags != n->flags || t->count == UINT16_MAX)
		return false;
	switch (t->type) {
	case SMTP_Q_OTHER:
		return true;
	case SMTP_Q_RCPT:
		if ((t->arg >> 16) != (n->arg >> 16))
			return false;
		if ((t->arg & 0xffff) == SMTP_SLOT_NONE)
			return (n->arg & 0xffff) == SMTP_SLOT_NONE;
		return (t->arg & 0xffff) + t->count == (n->arg & 0xffff);
	case SMTP_Q_BDAT:
		/* chunks of one message before LAST: only the count matters */
		return t->arg == n->arg && !(t->flags & SMTP_QF_LAST);
	default:
		return false;
	}
}

void mry_smtp_q_push(struct mry_smtp_ctx *c, struct mry_smtp_session *s,
		     uint8_t type, uint8_t flags, uint32_t arg)
{
	struct smtp_qent n = { .type = type, .flags = flags, .count = 1, .arg = arg };
	struct smtp_qent *t;

	if (s->q_len > 0) {
		t = smtp_q_at(s, s->q_len - 1u);
		if (q_can_merge(t, &n)) {
			t->count++;
			return;
		}
	}
	if (s->q_len == MRY_SMTP_QUEUE_CAP) {
		/*
		 * Only a client pipelining many different commands without
		 * reading replies gets here. Keep replies in step by folding
		 * the two newest runs into one whose replies change nothing.
		 */
		struct smtp_qent *a = smtp_q_at(s, s->q_len - 2u);
		uint32_t sum;

		t = smtp_q_at(s, s->q_len - 1u);
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_PIPELINE_OVERFLOW);
		if (a->type == SMTP_Q_DATA || t->type == SMTP_Q_DATA)
			s->withhold = UINT64_MAX;
		sum = (uint32_t)a->count + t->count;
		a->type = SMTP_Q_OTHER;
		a->flags = 0;
		a->arg = 0;
		a->count = (uint16_t)MRY_MIN(sum, (uint32_t)UINT16_MAX);
		s->q_len--;
	}
	*smtp_q_at(s, s->q_len) = n;
	s->q_len++;
}

/* ---- connection end --------------------------------------------------- */

void mry_smtp_pend_release(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	mry_pool_put(c->pend_pool, s->pend);
	s->pend = NULL;
	s->pend_len = 0;
}

void mry_smtp_session_stop(struct mry_smtp_ctx *c, struct mry_smtp_session *s)
{
	if (s->in_msg) {
		mry_smtp_flag_anomaly(c, s, MRY_SMTP_AN_MSG_UNTERMINATED);
		mry_smtp_msg_abort(c, s, MRY_SMTP_ABORT_CLOSED);
	}
	s->closed = true;
	s->gate = SMTP_GATE_NONE;
	s->withhold = UINT64_MAX;
	mry_smtp_pend_release(c, s);
	mry_pool_put(c->line_pool, s->lbig);
	s->lbig = NULL;
	s->lbuf_len = 0;
	mry_smtp_txn_end(c, s);
}
